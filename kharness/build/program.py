"""Companion programs: a module's own user-space C programs, compiled static for the target.

A program (one or several C sources, with its cflags and include directories; the module's
directory is always on the include path, as the module's own header is what such a program
includes) is built with the target's cross compiler: ``-static -O2``, stripped, so that it runs in
the guest's busybox initramfs with no shared library.

Builds are cached by content, the way ccache's "direct mode" does it: the entry's key is the
compiler (its path, size and modification time: no process is started to ask it), the target,
the flags and the sources; beside the binary the entry keeps every header the compiler read
(gcc ``-MD``) with its SHA256. A lookup hashes those headers again: all equal, the cached binary
is used without running the compiler; one changed, the program is compiled again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from kharness import proc, seal
from kharness.errors import InfraError
from kharness.hostcc import libc_package, target_cc
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir
from kharness.targets import TargetProfile

FORMAT = "1"              # bump when an entry's layout or the way programs are built changes
BASE_FLAGS = ("-static", "-O2", "-s")
COMPILE_TIMEOUT = 300     # a second or two normally; a wedged compiler must not hold the lock
BINARY, DEPS, LOG = "program", "deps.json", "build.log"
_NO_LIBC_RE = re.compile(r"cannot find -lc\b|cannot find crt1\.o|(?:stdio|stdlib|unistd|string|features)\.h: "
                         r"No such file")
_ERROR_RE = re.compile(r"\b(?:fatal )?error\b|undefined reference", re.I)


@dataclass(frozen=True)
class ProgramSpec:
    """What is compiled: absolute source paths, extra flags, extra include directories, and the
    module directory (``-I``)."""

    sources: tuple[str, ...]
    module_dir: str
    cflags: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The binary's name: its first source's, without ``.c``."""
        return Path(self.sources[0]).stem


@dataclass(frozen=True)
class BuiltProgram:
    name: str
    spec: ProgramSpec
    target: str
    path: Path                  # the cached binary
    cached: bool                # reused without running the compiler
    compiler: str               # its --version line, as recorded when it was compiled
    warnings: str = ""          # what the compiler said while succeeding

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def record(self, guest_path: str) -> dict:
        return {"name": self.name, "sources": list(self.spec.sources), "target": self.target,
                "cached": self.cached, "size": self.size, "binary": str(self.path), "guest_path": guest_path,
                "compiler": self.compiler}


class ProgramBuildError(Exception):
    """The program did not compile: the module's failure (its own code), not kharness's.
    ``output``: everything the compiler said; ``errors``: its error lines."""

    def __init__(self, name: str, output: str, command: str = "", errors: list[str] | None = None):
        self.name, self.output, self.command, self.errors = name, output, command, list(errors or [])
        first = "; ".join(self.errors[:3]) or (output.strip().splitlines() or ["no output"])[-1]
        super().__init__(f"program {name} did not compile: {first}")


def compiler(profile: TargetProfile) -> Path:
    """The target's C compiler; InfraError naming the Debian package when it is missing."""
    return Path(target_cc(profile, f"to build companion programs for {profile.name}"))


def _identity(cc: Path) -> str:
    real = cc.resolve()
    st = real.stat()
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _flags(spec: ProgramSpec) -> list[str]:
    incs = [f"-I{d}" for d in (*spec.include_dirs, spec.module_dir)]
    return [*BASE_FLAGS, *incs, *spec.cflags]


def entry_key(profile: TargetProfile, spec: ProgramSpec, cc: Path) -> str:
    """The cache key of everything but the headers (those are checked against the entry's list)."""
    h = hashlib.sha256()
    for part in (FORMAT, profile.name, _identity(cc), json.dumps(_flags(spec)),
                 *(f"{s}\0{seal.file_sha256(Path(s))}" for s in spec.sources)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def _deps_unchanged(entry: Path) -> bool:
    try:
        deps = json.loads((entry / DEPS).read_text())
    except (OSError, ValueError):
        return False
    for path, digest in deps.items():
        try:
            if seal.file_sha256(Path(path)) != digest:
                return False
        except OSError:
            return False
    return True


def build_program(profile: TargetProfile, spec: ProgramSpec) -> BuiltProgram:
    """The program compiled for ``profile`` (from the cache when nothing it reads changed).
    ProgramBuildError when it does not compile; InfraError when the target has no compiler or
    no static C library."""
    cc = compiler(profile)
    key = entry_key(profile, spec, cc)
    final = cache_dir() / "programs" / f"{profile.name}-{spec.name}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if seal.usable(final, "program") and _deps_unchanged(final):
            meta = seal.read_meta(final)
            return BuiltProgram(spec.name, spec, profile.name, final / BINARY, True, meta.get("compiler", ""),
                                (final / LOG).read_text(errors="replace"))
        with staging_dir(final) as tmp:
            version, log = _compile(profile, spec, cc, tmp)
            (tmp / LOG).write_text(log)
            seal.seal(tmp, {"compiler": version, "sources": list(spec.sources), "flags": _flags(spec)},
                      only=[BINARY, DEPS, LOG])
    return BuiltProgram(spec.name, spec, profile.name, final / BINARY, False, version, log)


def _run(cc: Path, argv: list[str], profile: TargetProfile, spec: ProgramSpec, what: str):
    env = dict(os.environ, LC_ALL="C")
    return proc.run([str(cc), *argv], timeout=COMPILE_TIMEOUT, env=env, merge_stderr=True,
                    what=f"{what} {spec.name} for {profile.name}")


def _compile(profile: TargetProfile, spec: ProgramSpec, cc: Path, tmp: Path) -> tuple[str, str]:
    """Compile into ``tmp`` (the binary, its header list); (compiler version, compiler output)."""
    flags = _flags(spec)
    out = tmp / BINARY
    if len(spec.sources) == 1:
        # One source: one compiler process compiles, links and lists the headers.
        steps = [[*flags, "-MD", "-MF", str(tmp / "0.d"), "-o", str(out), spec.sources[0]]]
    else:
        # gcc writes one -MD list per output: compile each source on its own, then link.
        steps = [[*flags, "-c", "-MD", "-MF", str(tmp / f"{i}.d"), "-o", str(tmp / f"{i}.o"), s]
                 for i, s in enumerate(spec.sources)]
        steps.append([*flags, "-o", str(out), *(str(tmp / f"{i}.o") for i in range(len(spec.sources)))])
    log = ""
    for argv in steps:
        p = _run(cc, argv, profile, spec, "compiling")
        log += p.stdout
        if p.returncode != 0:
            if _NO_LIBC_RE.search(p.stdout):
                raise InfraError(f"{cc.name} has no static C library to build {spec.name} for {profile.name} "
                                 f"(Debian package {libc_package(profile)})", hint="run `make install`")
            errors = [ln.strip() for ln in p.stdout.splitlines() if _ERROR_RE.search(ln)]
            raise ProgramBuildError(spec.name, p.stdout, shlex.join([cc.name, *argv]), errors)
    deps: dict[str, str] = {}
    for d in sorted(tmp.glob("*.d")):
        for path in parse_depfile(d.read_text()):
            p = Path(path) if os.path.isabs(path) else Path(spec.sources[0]).parent / path
            if str(p) not in spec.sources:
                deps[str(p)] = seal.file_sha256(p)
        d.unlink()
    for o in tmp.glob("*.o"):
        o.unlink()
    (tmp / DEPS).write_text(json.dumps(deps, indent=0))
    version = _run(cc, ["--version"], profile, spec, "asking the version of the compiler of").stdout
    return version.partition("\n")[0].strip(), log


def parse_depfile(text: str) -> list[str]:
    """The prerequisites of a make rule as ``gcc -MD`` writes it (``target: a.c b.h \\``)."""
    body = text.replace("\\\n", " ")
    _, _, deps = body.partition(": ")
    out, word = [], ""
    i = 0
    while i < len(deps):
        ch = deps[i]
        if ch == "\\" and i + 1 < len(deps) and deps[i + 1] in " #":
            word += deps[i + 1]
            i += 2
            continue
        if ch.isspace():
            if word:
                out.append(word)
            word = ""
        else:
            word += ch
        i += 1
    if word:
        out.append(word)
    return out
