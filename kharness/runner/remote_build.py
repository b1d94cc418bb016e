"""``--remote ... --build-on-remote``: the module built on the board, against the board's own
``/lib/modules/$(uname -r)/build``, for boards whose kernel Debian's archive does not have
(Raspberry Pi OS's ``6.6.31+rpt-rpi-v8``, a vendor kernel, one the user built).

The module's directory goes to /kh/src (regular files only; a symlink only when it points inside
the directory; no .git, no build products), kbuild ``M=`` builds it there (with kharness's
generated Kbuild when the directory has no rules of its own), and the .ko files come back to the
run directory, where their modinfo is read as a host build's is. No kernel package is downloaded:
the kernel the modules need (``depends=``, ``[module] requires``) is the board's own, resolved by
its ``modprobe --show-depends`` and loaded from its own files (see :func:`board_deps`). /kh goes
when the run ends (kharness.vm.ssh cleanup), the source with it."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from kharness import ui
from kharness.build.diagnostics import parse_diagnostics
from kharness.build.kbuild import BuiltModule, collect_modules, source_files
from kharness.build.makefile import render_makefile
from kharness.elf import depends
from kharness.errors import InfraError, UsageError
from kharness.hw.agent import build_agent
from kharness.kernels.modtree import ChainModule, MissingKernelModule, external_depends, normalise
from kharness.kernels.resolve import KernelSpec, series_of
from kharness.result.model import cap
from kharness.result.records import BuildRecord, KernelRecord
from kharness.runner import deps as kdeps
from kharness.runner.context import Context
from kharness.runner.options import reproducer_cmd
from kharness.runner.workdir import make_run_dir
from kharness.vm.errors import CommandTimeout

SRC = "/kh/src"             # the module's directory on the board (under /kh: removed with it)
BUILD_TIMEOUT = 900.0       # a Pi 3 builds a small module in well under a minute, a big driver in minutes
FETCH_CHUNK = 700 * 1024    # bytes of a .ko per command: their base64 stays under the 1 MiB an output keeps
# Hints for a board that cannot build: what to install there.
HEADERS_HINT = ("install the headers of the board's running kernel there (Debian: linux-headers-{release}; "
                "Raspberry Pi OS: raspberrypi-kernel-headers)")
TOOLS_HINT = "install make and gcc on the board (Debian, Raspberry Pi OS: apt install build-essential)"
_MISSING_TOOL_RE = re.compile(r"^(?:/bin/sh: \d+: |make(?:\[\d+\])?: )?(\S*(?:gcc|cc|ld|as)\S*): "
                              r"(?:command )?not found|No such file or directory: '?\S*gcc", re.M)


def build_tree(release: str) -> str:
    return f"/lib/modules/{release}/build"


def not_in_archive(release: str, target: str) -> UsageError:
    """A board whose kernel kharness cannot get headers for from Debian's archive: say so, and how
    to build anyway."""
    return UsageError(f"the board runs kernel {release}, which is not in Debian's archive for {target}",
                      hint="add --build-on-remote to build on the board against its own headers, or "
                           "--headers DIR with them on this host")


def upload_files(directory: Path) -> dict[str, bytes]:
    """``{path relative to directory: bytes}``: the regular files a build reads (no .git, no build
    products: kharness.build.kbuild.source_files); a symlink is followed only when it stays in the
    directory, so nothing outside it goes to the board."""
    root = directory.resolve()
    out = {}
    for p in source_files(root):
        real = p.resolve()
        if p.is_symlink() and not real.is_relative_to(root):
            continue
        if real.is_file():
            out[p.relative_to(root).as_posix()] = real.read_bytes()
    return out


def build(run: Context, prep, finish):
    """The build phase on the board; ``finish`` (kharness.runner.build.finish) makes the Built
    from the kernel spec and the modules, as for a host build."""
    opts, r, g = run.opts, run.result, run.guest
    release = g.release
    spec = KernelSpec(release, series_of(release), "", "", (), (), None)
    tree = build_tree(release)
    r.kernel = KernelRecord(**spec.to_dict(), built_on={"board": opts.remote, "build_tree": tree},
                            headers={"source": "board", "dir": tree})
    r.reproducer["kharness"] = reproducer_cmd(opts, release)
    if prep.config.gpio is not None:
        raise UsageError("[gpio] (the kharness virtual GPIO controller) cannot be used with --build-on-remote",
                         hint="test [gpio] modules in a guest; a board has its own GPIO")
    with run.phase("build") as ph:
        # kh-agent first: commands then go over the command session (kharness.vm.ssh_session),
        # which returns a command's whole output; an exec channel may lose the end of a long one
        # (sshd can send the exit status before the last of it), and a build log and a .ko are long.
        g.install_agent(build_agent(run.profile).read_bytes(), prep.timeout)
        facts = _board_tools(run, tree, prep.timeout)
        plan = prep.build
        generated = render_makefile(plan) if plan.generated else None
        files = upload_files(plan.directory)
        if generated is not None:
            # kbuild reads Kbuild before Makefile: the generated rules win over a Makefile that
            # builds no module (as kharness.build.kbuild does on the host).
            files["Kbuild"] = generated.encode()
        with ui.step(f"sending {len(files)} file(s) of {plan.directory.name} to {opts.remote}"):
            for rel, data in sorted(files.items()):
                g.put_file(f"{SRC}/{rel}", data, prep.timeout)
        cmd = ["make", "-C", tree, f"M={SRC}", "CONFIG_DEBUG_INFO_BTF_MODULES=", f"-j{facts['jobs']}", "modules"]
        start = time.monotonic()
        with ui.step(f"building {plan.directory.name} on {opts.remote} against {tree}"):
            try:
                res = g.run(f"cd {SRC} && LC_ALL=C {shlex.join(cmd)} 2>&1", BUILD_TIMEOUT)
                log, rc = res.stdout + res.stderr, res.rc
            except CommandTimeout as e:
                log = (e.console_tail or "") + f"\n[kharness: the build on the board did not finish within " \
                                               f"{BUILD_TIMEOUT:g}s; make and its compilers were stopped]"
                rc = -1
        duration = time.monotonic() - start
        ph.log = cap(f"$ {shlex.join(cmd)}\n{log}\n(built on the board in {duration:.1f}s)\n")
        if rc != 0 and _MISSING_TOOL_RE.search(log):
            raise InfraError(f"the board's build tools are incomplete: {_MISSING_TOOL_RE.search(log).group(0)}",
                             hint=TOOLS_HINT)
        diags = parse_diagnostics(log, {SRC: str(plan.directory)})
        modules = fetch_modules(run, prep.timeout) if rc == 0 else []
        r.build = BuildRecord(cached=False, command=shlex.join(cmd), directory=f"{opts.remote}:{SRC}",
                              generated_makefile=generated, compiler=facts["compiler"],
                              diagnostics=[d.to_dict() for d in diags], built_by="kbuild",
                              built_by_note=f"built on the board {opts.remote} against its own {tree}")
        r.compiler = facts["compiler"]
        r.modules = [m.to_dict() for m in modules]
        if rc != 0 or not modules:
            err = next((d.format() for d in diags if d.severity == "error"),
                       f"the build on the board failed (exit {rc})" if rc != 0 else "the build produced no .ko file")
            raise run.fail("build", err)
        for m in modules:
            if m.vermagic.split(" ")[0] != release:
                raise run.fail("build", f"{m.name}.ko has vermagic {m.vermagic.strip()!r}, the board runs {release}")
        run.shadow_map = (SRC, str(opts.module_dir.resolve()))
        warnings = sum(1 for x in diags if x.severity == "warning")
        ph.message = f"{len(modules)} module(s) built on the board in {duration:.1f}s" + \
            (f", {warnings} warning(s)" if warnings else "")
    return finish(run, prep, spec, None, modules, None)


def _board_tools(run: Context, tree: str, timeout: float) -> dict:
    """The board's build tree and tools, checked before anything is sent: a missing one is the
    board's setup (exit 2, with what to install), not the module's build failure."""
    q = shlex.quote(tree)
    r = run.guest.run(f"test -d {q}/ && echo tree; command -v make >/dev/null && echo make; "
                      f"nproc 2>/dev/null || echo 1; "
                      f"grep -h '^CONFIG_CC_VERSION_TEXT=' {q}/.config {q}/include/config/auto.conf "
                      f"2>/dev/null | head -n 1", timeout)
    lines = r.stdout.splitlines()
    release = run.guest.release
    if "tree" not in lines:
        raise InfraError(f"the board has no build tree for its kernel {release} ({tree} is missing)",
                         hint=HEADERS_HINT.format(release=release))
    if "make" not in lines:
        raise InfraError("the board has no make", hint=TOOLS_HINT)
    jobs = next((x for x in lines if x.isdigit()), "1")
    cc = next((x.split("=", 1)[1].strip().strip('"') for x in lines if x.startswith("CONFIG_CC_VERSION_TEXT=")), "")
    return {"jobs": jobs, "compiler": cc or "the board's compiler"}


def fetch_modules(run: Context, timeout: float) -> list[BuiltModule]:
    """The .ko files built in /kh/src, copied into the run directory (base64 over commands: there
    is no SFTP get), checked against their size and sha256 on the board, with their modinfo."""
    g = run.guest
    if run.workdir is None:
        run.workdir = make_run_dir()   # (the image phase keeps it: the run's one directory)
    dest = run.workdir / "board-build"
    dest.mkdir(exist_ok=True)
    listing = g.run(f"cd {SRC} && find . -name '*.ko' -type f | sort", timeout)
    names = [n.removeprefix("./") for n in listing.stdout.split() if n.endswith(".ko")]
    got = []
    for rel in names:
        path = f"{SRC}/{rel}"
        q = shlex.quote(path)
        facts = g.run(f"wc -c < {q} && sha256sum < {q}", timeout).stdout.split()
        if len(facts) < 2 or not facts[0].isdigit():
            raise InfraError(f"cannot read {path} on the board: {facts!r}")
        size, digest = int(facts[0]), facts[1]
        data = bytearray()
        for i in range((size + FETCH_CHUNK - 1) // FETCH_CHUNK):
            chunk = g.run(f"dd if={q} bs={FETCH_CHUNK} skip={i} count=1 2>/dev/null | base64", timeout)
            data += base64.b64decode("".join(chunk.stdout.split()))
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise InfraError(f"copying {path} from the board went wrong ({len(data)} of {size} bytes, or a "
                             f"different sha256)", hint="run again; if it persists, the board's storage is suspect")
        local = dest / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(bytes(data))
        got.append(rel)
    return collect_modules(dest, got)


def _no_tree():
    raise InfraError("the board's kernel modules are on the board: kharness does not read their tree")


@dataclass
class BoardDeps(kdeps.Deps):
    """The board's own modules that the modules under test need, loaded by the board's modprobe
    before the load phase (``chain`` stays empty: the load phase has nothing to insmod), and
    removed when the board is closed (:class:`LeavesAsFound`), on every way out: a distro's udev
    may meanwhile have loaded modules that hold them (scsi_debug's host brings sd_mod and sg),
    which go too, and the unload phase must not blame the module under test for those."""

    board_chain: list[ChainModule] = field(default_factory=list)   # as modprobe --show-depends lists them
    loaded_here: list[str] = field(default_factory=list)          # what this run's modprobe loaded, in load order
    before: set[str] = field(default_factory=set)                 # what the board had loaded before

    def to_unload(self) -> list[str]:
        return []   # (not in the unload phase: LeavesAsFound.close)

    def record(self) -> dict | None:
        if not self.per_module:
            return None
        by_name = {c.name: c for c in self.board_chain}
        return {who: [dict(by_name[n].to_dict(), params=self.args.get(n, []), status=self.status.get(n, "not loaded"))
                      for n in names] for who, names in self.per_module.items()}

    def unload_command(self) -> str:
        """The board command that removes what this run's modprobe loaded, each after the modules
        that hold it and were not there before the run (none the board had is touched)."""
        before = " ".join(sorted(self.before))
        mine = " ".join(shlex.quote(n) for n in reversed(self.loaded_here))
        return ("kh_rm() { for h in /sys/module/$1/holders/*; do [ -e \"$h\" ] && kh_rm \"${h##*/}\"; done; "
                f"case ' {before} ' in *\" $1 \"*) ;; *) rmmod \"$1\" 2>/dev/null;; esac; }}; "
                f"for m in {mine}; do grep -q \"^$m \" /proc/modules && kh_rm \"$m\"; done; "
                # then what those brought in and nothing uses any more (t10_pi's crc64, sg on
                # scsi_debug's host), a few rounds as each removal frees the next
                f"for i in 1 2 3 4; do for m in $(cut -d' ' -f1 /proc/modules); do case ' {before} ' in "
                "*\" $m \"*) ;; *) [ \"$(cat /sys/module/$m/refcnt 2>/dev/null)\" = 0 ] && rmmod \"$m\" 2>/dev/null;; "
                "esac; done; done; true")


class LeavesAsFound:
    """The board, which on close first removes the modules this run's modprobe loaded (and what
    came to hold them), then closes as it would. Everything else is the board's own (attribute
    reads and writes go through)."""

    def __init__(self, guest, deps: BoardDeps):
        object.__setattr__(self, "_guest", guest)
        object.__setattr__(self, "_deps", deps)

    def __getattr__(self, name):
        return getattr(self._guest, name)

    def __setattr__(self, name, value):
        setattr(self._guest, name, value)

    def close(self) -> None:
        if self._deps.loaded_here:
            try:
                self._guest.run(self._deps.unload_command(), CLOSE_UNLOAD_TIMEOUT)
            except Exception:   # noqa: BLE001 - close() never raises (a dead board: nothing to do)
                pass
        self._guest.close()


CLOSE_UNLOAD_TIMEOUT = 20.0


def board_deps(run: Context, modules, config, timeout: float) -> kdeps.Deps:
    """The board's own kernel modules that ``modules`` need (``depends=``, ``[module] requires``),
    loaded now with the board's modprobe (its depmod, soft dependencies and modprobe.d options).
    What it already had stays loaded after the run; what modprobe loaded is unloaded after the
    modules under test. The result's ``dependencies`` says which was which."""
    owner = modules[0].name if len(modules) == 1 else kdeps.REQUIRES
    wanted = {r.name: owner for r in config.requires}
    for dep, who in external_depends({m.name: depends(m.modinfo) for m in modules}).items():
        wanted.setdefault(dep, who)
    if not wanted:
        return kdeps.Deps([], {}, {}, _no_tree)
    g = run.guest
    args = {normalise(r.name): r.insmod_args() for r in config.requires}
    chain: dict[str, ChainModule] = {}
    per_module: dict[str, list[str]] = {}
    missing = {}
    for n, who in wanted.items():
        show = g.run(f"modprobe --show-depends {shlex.quote(n)} 2>&1", timeout)
        for words in (line.split() for line in show.stdout.splitlines()):
            if words[:1] == ["insmod"] and len(words) > 1:
                name = normalise(posixpath.basename(words[1]).split(".ko", 1)[0])
                chain.setdefault(name, ChainModule(name, words[1], None, who))
                names = per_module.setdefault(who, [])
                if name not in names:
                    names.append(name)
            elif words and words[0] != "builtin":
                missing[n] = who
    if missing:
        raise MissingKernelModule(missing, f"the board's kernel {g.release}")
    before = _loaded(g, timeout)
    deps = BoardDeps([], args, per_module, _no_tree, board_chain=list(chain.values()), before=before)
    to_load = [n for n in wanted if normalise(n) not in before]
    run.guest = LeavesAsFound(g, deps)   # from here on, closing the board unloads what modprobe loads
    log = ""
    for n in to_load:
        cmd = shlex.join(["modprobe", n, *args.get(normalise(n), [])])
        res = g.run(cmd, timeout)
        log += f"$ {cmd}\n{res.stdout}{res.stderr}"
        after = _loaded(g, timeout)
        deps.loaded_here += [c.name for c in chain.values() if c.name in after and c.name not in before
                             and c.name not in deps.loaded_here]
        if res.rc != 0:
            run.result.phase("image").log += log
            run.result.dependencies = _statuses(deps, before)
            raise InfraError(f"the board's modprobe {n} (which {wanted[n]} needs) failed: "
                             f"{(res.stderr or res.stdout).strip()[:200] or f'exit {res.rc}'}",
                             hint="load it by hand on the board to see why (dmesg)")
    run.result.dependencies = _statuses(deps, before)
    run.result.phase("image").log += log + (f"loaded by the board's modprobe (removed when the run ends): "
                                            f"{', '.join(deps.loaded_here)}\n" if deps.loaded_here else "") + \
        (f"already loaded on the board: {', '.join(sorted(n for n in chain if n in before))}\n"
         if any(n in before for n in chain) else "")
    return deps


def _loaded(g, timeout: float) -> set[str]:
    # (module names only: they go into a board command at the end)
    return {w[0] for w in (line.split() for line in g.run("cat /proc/modules", timeout).stdout.splitlines())
            if w and re.fullmatch(r"\w+", w[0])}


def _statuses(deps: BoardDeps, before: set[str]) -> dict | None:
    for c in deps.board_chain:
        deps.status[c.name] = "already loaded" if c.name in before else \
            "loaded" if c.name in deps.loaded_here else "not loaded"
    return deps.record()


__all__ = ["BoardDeps", "LeavesAsFound", "board_deps", "build", "build_tree", "fetch_modules", "not_in_archive", "upload_files"]
