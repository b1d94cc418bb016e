"""Run kbuild for a module directory, out of tree, with a content-addressed cache.

The user's directory is never written to. kharness builds in a *shadow tree* under its cache:
real directories whose files are symlinks to the user's files. It reaches two levels above the
module directory, so Makefiles that say ``-I$(PWD)/../include`` or ``$(src)/../common`` still
find their files, and kbuild's objects land in the shadow, not next to the sources.

A build is reused when nothing that went into it changed: the manifest records the SHA256 of
every source file in the directory and of every file outside the kernel headers that the
compiler read (from kbuild's ``.*.cmd`` dependency lists).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from kharness import proc, seal, ui
from kharness.build import buildenv
from kharness.build.diagnostics import Diagnostic, parse_diagnostics
from kharness.build.makefile import PLAIN_PATH_RE, SHADOW_LEVELS, BuildPlan, render_makefile, shadow_chain
from kharness.build.toolchain import Toolchain
from kharness.elf import read_modinfo
from kharness.errors import DamagedCacheEntry, UsageError
from kharness.kernels.store import HeadersBundle
from kharness.lock import file_lock
from kharness.paths import cache_dir

MAX_FILES = 5000
# What kbuild writes into M=: never link these from the user's tree (a stale host build would
# be written *through* the link into the user's directory).
PRODUCTS = ("*.o", "*.ko", "*.mod", "*.mod.c", "*.cmd", "*.a", "*.order", "*.symvers",
            "*.dwo", "*.su", "*.lds", ".cache.mk", ".tmp_versions", ".*.d", "*.ko.*", ".git", "*.orig")
_DEPS_RE = re.compile(r"^(?:source_\S+|deps_\S+)\s*:=\s*(.*?)(?=^\S|\Z)", re.M | re.S)
MANIFEST_VERSION = 1


@dataclass
class BuiltModule:
    name: str
    path: Path
    vermagic: str
    modinfo: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.path.name, "path": str(self.path), "size": self.path.stat().st_size,
                "vermagic": self.vermagic,
                "modinfo": {k: v for k, v in self.modinfo.items() if k in
                            ("license", "author", "description", "depends", "parm", "parmtype", "version")}}


@dataclass
class BuildOutcome:
    ok: bool
    modules: list[BuiltModule]
    diagnostics: list[Diagnostic]
    log: str
    duration: float
    cached: bool
    command: list[str]
    build_dir: Path
    makefile: str | None = None   # the generated Makefile, if one was generated
    error: str = ""
    compiler: str = ""
    extra: dict = field(default_factory=dict)
    built_by: str = "kbuild"      # "dkms" | "own-makefile" | "kbuild" (see kharness.build.route)
    note: str = ""                # why it was built that way, when it was not the first way tried


def _is_product(name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in PRODUCTS)


def source_files(directory: Path) -> list[Path]:
    """The files of a module directory that a build reads (and `kharness watch` polls): all but
    build products and hidden directories, in a stable order."""
    out = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not _is_product(d) and not d.startswith("."))
        for f in sorted(files):
            if not _is_product(f):
                out.append(Path(root) / f)
        if len(out) > MAX_FILES:
            break
    return out


def _mirror_dir(src: Path, dst: Path) -> None:
    """``dst`` mirrors ``src``: real directories, symlinked files; stale links removed."""
    dst.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for entry in sorted(src.iterdir()):
        if _is_product(entry.name):
            continue
        wanted.add(entry.name)
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if target.is_symlink() or target.is_file():
                target.unlink()
            _mirror_dir(entry, target)
        else:
            if target.is_symlink() and os.readlink(target) == str(entry):
                continue
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)  # was a directory, is a file now
            os.symlink(entry, target)
    for entry in dst.iterdir():
        if entry.name in wanted or _is_product(entry.name):
            continue
        if entry.is_symlink() or entry.is_file():
            entry.unlink()   # a source file that was removed (or a generated file we rewrite)
        elif entry.is_dir():
            shutil.rmtree(entry)  # a source directory that was removed


def shadow_name(name: str) -> str:
    """The shadow's name for a directory on the module's path. The shadow module directory is
    make's M=, and kbuild pastes M= into rules and commands: a space splits it, a ``$`` or a newline
    becomes make code. A name with anything but letters, digits and ``_.+,@-`` is replaced by a
    harmless one (its hash keeps it apart from a sibling of that spelling)."""
    if PLAIN_PATH_RE.fullmatch(name):
        return name
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_.")[:40] or "dir"
    return f"{stem}-{hashlib.sha256(name.encode(errors='surrogateescape')).hexdigest()[:8]}"


def copy_dir(src: Path, dst: Path) -> None:
    """``dst`` made a fresh copy of ``src`` (real files, modes and times kept; build products and
    hidden directories left out). For builds that run the module's own commands: a Makefile rule,
    ``./configure`` or ``patch`` writes its files, and through a symlink that would be the user's."""
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    count = 0
    seen: set[str] = set()
    top, out = os.path.realpath(src), os.path.realpath(dst)
    # Linked directories are copied too (include -> ../common builds with kbuild M=, whose shadow
    # keeps the link), each real directory once; never a link to the module's own ancestors (or
    # the copy itself): that would copy the copy, or the world.
    for root, dirs, files in os.walk(src, followlinks=True):
        real = os.path.realpath(root)
        if real in seen or (real != top and top.startswith(real + os.sep)) or \
                real == out or real.startswith(out + os.sep):
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not _is_product(d) and not d.startswith("."))
        here = dst / os.path.relpath(root, src)
        here.mkdir(exist_ok=True)
        for f in files:
            if _is_product(f):
                continue
            count += 1
            if count > MAX_FILES:
                raise UsageError(f"{src} holds more than {MAX_FILES} files", hint="point kharness at the module's own directory")
            s, d = Path(root) / f, here / f
            if not s.is_file():
                continue   # a dangling link copies to nothing; a device or FIFO (/dev/zero) is no source
            shutil.copy2(s, d)


def make_shadow(src: Path, root: Path, levels: int = SHADOW_LEVELS, *, copy: bool = False) -> Path:
    """Build the shadow of ``src`` under ``root`` and return the shadow module directory. With
    ``copy`` the module directory is a fresh copy instead of links (the levels above stay links)."""
    chain = shadow_chain(src, levels)
    here = root
    # Levels above the module: link every sibling, descend into the one on our path.
    for i in range(len(chain) - 1, 0, -1):
        parent, child = chain[i], chain[i - 1]
        here.mkdir(parents=True, exist_ok=True)
        for entry in parent.iterdir():
            link = here / entry.name
            if entry.name == child.name or link.exists() or link.is_symlink():
                continue
            os.symlink(entry, link)
        here = here / shadow_name(child.name)
        if here.is_symlink():
            here.unlink()
    if copy:
        copy_dir(src, here)
    else:
        _mirror_dir(src, here)
    return here


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_inputs(plan: BuildPlan, shadow: Path, headers: HeadersBundle) -> dict[str, str]:
    """What went into a build: the module's files and what the compiler read outside the headers."""
    files = {str(p): file_sha(p) for p in source_files(plan.directory)}
    # Sealed headers never change under their path; a tree the user gave may be rebuilt in place,
    # so the headers the compiler read from it count as inputs.
    hdr_root = str(headers.root.resolve())
    skip_headers = not headers.stamp
    for cmd in shadow.rglob(".*.cmd"):
        for m in _DEPS_RE.finditer(cmd.read_text(errors="replace")):
            for word in m.group(1).replace("\\\n", " ").split():
                if word.startswith("$(") or word.startswith("wildcard") or "/" not in word:
                    continue
                p = Path(word) if word.startswith("/") else shadow / word
                try:
                    real = p.resolve(strict=True)
                except (OSError, RuntimeError):
                    continue
                if skip_headers and str(real).startswith(hdr_root):
                    continue
                if str(real) in files or str(real).startswith("/usr/lib/gcc"):
                    continue
                if real.is_file() and not str(real).startswith(str(shadow)):
                    files[str(real)] = file_sha(real)
    return files


def inputs_unchanged(recorded: dict[str, str], plan: BuildPlan) -> bool:
    current = {str(p) for p in source_files(plan.directory)}
    if not current <= set(recorded):
        return False  # a new file appeared in the module directory
    for path, digest in recorded.items():
        try:
            if file_sha(Path(path)) != digest:
                return False
        except OSError:
            return False
    return True


def build_key(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, extra: list[str]) -> str:
    ident = json.dumps([str(plan.directory), str(headers.root), headers.stamp, tc.cc, tc.version, tc.arch, str(tc.sysroot),
                        tc.cross_compile, sorted(extra), list(plan.ccflags),
                        [(m.name, m.objs) for m in plan.modules]])
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def collect_modules(module_dir: Path, files: list[str] | None = None) -> list[BuiltModule]:
    """The modules built in ``module_dir``: ``files`` (paths relative to it) when given, else
    those of kbuild's modules.order, else every .ko below it."""
    order = module_dir / "modules.order"
    names: list[Path] = []
    if files is not None:
        names = [module_dir / f for f in files if (module_dir / f).is_file()]
    elif order.exists():
        for line in order.read_text().split():
            p = module_dir / line.removeprefix("kernel/")
            p = p.with_suffix(".ko") if p.suffix == ".o" else p
            if p.exists():
                names.append(p)
    if not names and files is None:
        names = sorted(module_dir.rglob("*.ko"))
    out = []
    for p in names:
        info = read_modinfo(p)
        out.append(BuiltModule(name=info.get("name", [p.stem])[0].replace("-", "_"), path=p,
                               vermagic=info.get("vermagic", [""])[0], modinfo=info))
    return out


def build_dir(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, extra: list[str]) -> Path:
    """The cache directory of this build; refused when make could not build there."""
    bdir = cache_dir() / "builds" / f"{shadow_name(plan.directory.name)}-{headers.release}-{build_key(plan, headers, tc, extra)}"
    # make's M= and -C: the module's own path never gets there (the shadow's names are safe),
    # but the cache's does.
    plain = "only letters, digits and ._+,@~/-"
    for what, path, fix in (("the kharness cache", bdir, f"set KHARNESS_CACHE to a directory whose path has {plain}"),
                            ("the kernel build tree", headers.build_dir, f"keep kernel trees at paths with {plain}")):
        if not PLAIN_PATH_RE.fullmatch(str(path)):
            raise UsageError(f"{what} is at {str(path)!r}, a path kbuild cannot build in (it holds spaces or "
                             f"characters make or the shell would interpret)", hint=fix)
    return bdir


def run_kbuild(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, *, extra_vars: list[str] | None = None,
               jobs: int | None = None, timeout: float = 900) -> BuildOutcome:
    """kbuild with ``M=`` on the shadow tree (the module's own Makefile's targets are not run:
    kharness.build.route decides when they are)."""
    extra_vars = extra_vars or []
    bdir = build_dir(plan, headers, tc, extra_vars)
    with file_lock(bdir.with_name(bdir.name + ".lock")):
        return _build_locked(plan, headers, tc, extra_vars, jobs, timeout, bdir)


def reuse(bdir: Path, plan: BuildPlan, tc: Toolchain, generated: str | None = None) -> BuildOutcome | None:
    """The build recorded in ``bdir``, when nothing that went into it changed (else None, and
    the record is removed)."""
    manifest_path = bdir / "manifest.json"
    if not manifest_path.exists():
        return None
    try:
        man = json.loads(manifest_path.read_text())
        if (man.get("version") == MANIFEST_VERSION and man.get("makefile") == generated
                and inputs_unchanged(man["inputs"], plan)):
            mods = collect_modules(Path(man["module_dir"]), man.get("module_files"))
            # The .ko files must be the ones this build made: a file altered since is rebuilt.
            outputs = man.get("outputs", {})
            if mods and all(outputs.get(str(m.path)) == file_sha(m.path) for m in mods):
                return BuildOutcome(True, mods, [Diagnostic(**d) for d in man["diagnostics"]],
                                    man["log"], 0.0, True, man["command"], bdir, generated,
                                    compiler=tc.version, built_by=man.get("built_by", "kbuild"),
                                    note=man.get("note", ""), extra=man.get("extra", {}))
    except (ValueError, KeyError, TypeError, OSError):
        pass  # a damaged manifest means: build again
    manifest_path.unlink(missing_ok=True)
    return None


def record(bdir: Path, plan: BuildPlan, headers: HeadersBundle, shadow: Path, outcome: BuildOutcome,
           module_files: list[str] | None = None) -> None:
    """Write the manifest that lets :func:`reuse` return ``outcome`` next time."""
    (bdir / "manifest.json").write_text(json.dumps({
        "version": MANIFEST_VERSION, "inputs": manifest_inputs(plan, shadow, headers),
        "module_dir": str(shadow), "module_files": module_files, "makefile": outcome.makefile,
        "log": outcome.log, "command": outcome.command, "built_by": outcome.built_by, "note": outcome.note,
        "extra": outcome.extra, "outputs": {str(m.path): file_sha(m.path) for m in outcome.modules},
        "diagnostics": [d.to_dict() for d in outcome.diagnostics]}, indent=1))


def check_headers(headers: HeadersBundle) -> None:
    """The headers are about to be used for real: every one of their files must match its seal
    (altered headers would make a build fail, or succeed wrongly, and blame the module). A tree
    the user gave is theirs: not a cache entry, never checked (nor discarded) as one."""
    if headers.stamp:
        return
    why = seal.problem(headers.root)
    if why is not None and why != "missing":
        raise DamagedCacheEntry(headers.root, why)


def _build_locked(plan, headers, tc, extra_vars, jobs, timeout, bdir: Path) -> BuildOutcome:
    generated = render_makefile(plan) if plan.generated else None
    cached = reuse(bdir, plan, tc, generated)
    if cached is not None:
        return cached
    check_headers(headers)
    shadow = make_shadow(plan.directory, bdir / "tree")
    if generated is not None:
        # kbuild reads Kbuild before Makefile: the generated rules win over a Makefile that has
        # no obj-m (for instance one that only builds user-space tools).
        (shadow / "Kbuild").unlink(missing_ok=True)
        (shadow / "Kbuild").write_text(generated)
    for old in shadow.rglob("*.ko"):
        old.unlink()
    cmd = ["make", "-C", str(headers.build_dir), f"M={shadow}", *tc.make_vars(),
           f"KDIR={headers.build_dir}", f"KERNELDIR={headers.build_dir}", f"KERNEL_DIR={headers.build_dir}",
           # No BTF for test builds: it needs pahole matching the kernel's, and insmod does not.
           "CONFIG_DEBUG_INFO_BTF_MODULES=",
           f"-j{jobs or os.cpu_count() or 2}", *extra_vars, "modules"]
    env = dict(os.environ, PWD=str(shadow), LC_ALL="C")
    env.pop("MAKEFLAGS", None)
    env.pop("KBUILD_OUTPUT", None)
    run_cmd = cmd
    if tc.sysroot is not None:
        # Inside the kernel suite's build environment: the headers, the build tree and the user's
        # directories (reached through the shadow's links) appear at the same paths.
        top = plan.directory
        for _ in range(SHADOW_LEVELS):
            if top.parent != top and top.parent != Path("/"):
                top = top.parent
        ro = [headers.root, top, *(Path(f[2:]) for f in plan.ccflags if f.startswith("-I/"))]
        run_cmd = buildenv.wrap(tc.sysroot, cmd, cwd=shadow, rw=[bdir], ro=ro,
                                env={"PATH": "/usr/bin:/bin", "PWD": str(shadow), "LC_ALL": "C", "HOME": "/tmp"})
    start = time.monotonic()
    with ui.step(f"building {plan.directory.name} for {headers.release}"):
        try:
            p = proc.run(run_cmd, cwd=shadow, env=env, timeout=timeout, what="the module build")
            log, rc = p.stdout + p.stderr, p.returncode
        except proc.ProcessTimeout as e:
            log = e.stdout + e.stderr + f"\n[kharness: build timed out after {timeout:g}s; make and its compilers were stopped]"
            rc = -1
        except FileNotFoundError:
            log, rc = "make is not installed", 127
    duration = time.monotonic() - start
    diags = parse_diagnostics(log, {str(shadow): str(plan.directory)})
    mods = collect_modules(shadow) if rc == 0 else []
    if rc != 0 or not mods:
        err = next((d.format() for d in diags if d.severity == "error"),
                   "build failed" if rc != 0 else "the build produced no .ko file")
        return BuildOutcome(False, [], diags, log, duration, False, cmd, bdir, generated,
                            error=err, compiler=tc.version)
    outcome = BuildOutcome(True, mods, diags, log, duration, False, cmd, bdir, generated, compiler=tc.version)
    record(bdir, plan, headers, shadow, outcome)
    return outcome
