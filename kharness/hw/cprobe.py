"""Ask the target's C compiler: constant expressions, sizes and struct layouts as the target
sees them (``KH_SET``, ``_IOW(100, 0, char *)``, the offsets of ``struct kh_msg``).

One small probe C file is compiled to assembly with the target's cross compiler (user space:
``<sys/ioctl.h>``, then the module's headers); each answer is an ``"i"`` operand of an asm
statement, which the compiler must fold to a constant and prints into the assembly (the
kernel's asm-offsets trick), so the numbers are right on powerpc, big-endian and 32-bit targets
by construction. Each question sits on a line of its own: a compiler error is traced back to
the question and said in one line (a macro or struct the header does not define, a field the
struct does not have, a header that does not compile in user space).

Answers are kept on disk per compiler, target and probe text, with every file the compiler read
(``-MD``) and its size, time and SHA256: a changed header makes the probe run again, an
unchanged one costs a stat per file. Within a process they are also kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kharness import proc, seal
from kharness.errors import InfraError
from kharness.hostcc import cc_identity, target_cc
from kharness.hw.cstruct import ARRAY, INT, OTHER, POINTER, CField, CStruct
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir
from kharness.targets import TargetProfile

COMPILE_TIMEOUT = 120     # a few hundredths of a second normally; a wedged compiler must not hang a run
LOCK_TIMEOUT = 2 * COMPILE_TIMEOUT + 30
FLAGS = ("-S", "-O0", "-fdiagnostics-plain-output", "-MD", "-MF", "probe.d", "-MT", "kh", "-o", "probe.s")
VERSION = 1               # of the probe text and the cache entry's format
ANSWERS = "answers.json"  # a cache entry: the answers and the files the probe read, sealed

_NAME_RE = re.compile(r"(?:(?:struct|union)\s+)?[A-Za-z_]\w*")
_FIELD_RE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_MARK_RE = re.compile(r"@KH@ (\S+)((?: +[$#]?-?\d+)*)")
_DIAG_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?:\d+:)? (?P<sev>fatal error|error|warning|note): (?P<msg>.*)$")
_M32 = 0xFFFFFFFF

# __builtin_classify_type's classes (gcc's typeclass.h); arrays decay to pointers first.
_CLASSES = {1: INT, 3: INT, 4: INT, 5: POINTER, 8: "floating-point", 9: "complex", 12: "struct", 13: "union"}


class ProbeError(ValueError):
    """What the compiler refused, in one line."""


@dataclass(frozen=True)
class Answers:
    values: dict[str, int]          # expression -> its value
    structs: dict[str, CStruct]     # struct name -> its size and the fields asked about


def check_expression(expr: str) -> str:
    """``expr`` if it can go into the probe as one C constant expression; ValueError if it
    could be anything else (a statement, a directive, a comment, more than one line)."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError("a C expression must be a non-empty string")
    bad = [t for t in (";", "{", "}", "#", "\\", "/*", "*/", "//") if t in expr]
    if bad or any(ord(ch) < 32 for ch in expr):
        raise ValueError(f"{expr!r} is not a single-line C expression"
                         + (f" (it holds {' '.join(bad)})" if bad else " (it holds a control character)"))
    depth = []
    for ch in expr:
        if ch in "([":
            depth.append(")" if ch == "(" else "]")
        elif ch in ")]":
            if not depth or depth.pop() != ch:
                raise ValueError(f"{expr!r} has unbalanced brackets")
        elif ch == "," and not depth:
            raise ValueError(f"{expr!r} is not one C expression (a comma outside brackets)")
    if depth:
        raise ValueError(f"{expr!r} has unbalanced brackets")
    return expr.strip()


def check_struct_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name.strip()):
        raise ValueError(f"{name!r} is not a struct name such as \"struct kh_msg\" (or a typedef name)")
    return " ".join(name.split())


def check_field_name(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_RE.fullmatch(name):
        raise ValueError(f"{name!r} is not a field name (a C identifier, or \"hdr.len\" for a nested member)")
    return name


# --- the probe text -----------------------------------------------------------------------------

_PRELUDE = """\
#define KHPROBE_F(S, f) (((S *)0)->f)
#define KHPROBE_D(S, f) (0, KHPROBE_F(S, f))
#define KHPROBE_SIGNED(x) _Generic((x), signed char: 1, short: 1, int: 1, long: 1, long long: 1, \\
	char: (char)-1 < 0, default: 0)
#define KHPROBE_ESIZE(x) _Generic((x), char *: 1, signed char *: 1, unsigned char *: 1, \\
	short *: sizeof(short), unsigned short *: sizeof(short), int *: sizeof(int), unsigned *: sizeof(int), \\
	long *: sizeof(long), unsigned long *: sizeof(long), long long *: sizeof(long long), \\
	unsigned long long *: sizeof(long long), default: 0)
#define KHPROBE_ESIGNED(x) _Generic((x), char *: (char)-1 < 0, signed char *: 1, short *: 1, int *: 1, \\
	long *: 1, long long *: 1, default: 0)
void kh_probe(void);
void kh_probe(void)
{
"""


def _probe_text(headers, exprs, structs) -> tuple[str, dict[int, tuple]]:
    """The probe's C text, and for each line that asks something: what it asks."""
    lines = ["/* kharness probe: every \"i\" operand is an answer, printed into the assembly */",
             "#include <sys/ioctl.h>"]
    for h in headers:
        lines.append(f'#include "{h}"')
    lines += ["#include <stddef.h>", *_PRELUDE.rstrip("\n").split("\n")]
    asks: dict[int, tuple] = {}

    def ask(what: tuple, mark: str, operands: list[str]) -> None:
        ops = " ".join(f"%c{i}" for i in range(len(operands)))
        lines.append(f'__asm__ volatile("@KH@ {mark} {ops}" :: ' + ", ".join(f'"i"({o})' for o in operands) + ");")
        asks[len(lines)] = what

    for i, e in enumerate(exprs):
        ask(("expr", e), f"e{i}", [f"(unsigned)(((unsigned long long)({e})) >> 32)",
                                   f"(unsigned)((unsigned long long)({e}))", f"({e}) < 0"])
    for j, (s, names) in enumerate(structs):
        ask(("struct", s), f"s{j}", [f"sizeof({s})"])
        for k, f in enumerate(names):
            d = f"KHPROBE_D({s}, {f})"
            ask(("field", s, f), f"f{j}.{k}", [
                f"offsetof({s}, {f})", f"sizeof(KHPROBE_F({s}, {f}))", f"__builtin_classify_type({d})",
                f"!__builtin_types_compatible_p(__typeof__(KHPROBE_F({s}, {f})), __typeof__({d}))",
                f"KHPROBE_SIGNED({d})", f"KHPROBE_ESIZE({d})", f"_Generic({d}, char *: 1, default: 0)",
                f"KHPROBE_ESIGNED({d})"])
    lines.append("}")
    return "\n".join(lines) + "\n", asks


# --- the compiler and the cache -----------------------------------------------------------------

def _compiler(profile: TargetProfile) -> tuple[str, str]:
    """The compiler's path and its identity (its file's path, size and time: an upgrade changes
    them), found without running it."""
    cc = target_cc(profile, f"to read ioctl numbers and struct layouts for {profile.name} from the module's header")
    return cc, cc_identity(cc)


def _dep_record(path: str) -> list | None:
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None
    return [path, st.st_size, st.st_mtime_ns, digest]


def _fresh(deps) -> bool:
    """Every file the probe read is as it was (same size and time; or, touched, same content)."""
    for path, size, mtime, digest in deps:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_size != size:
            return False
        if st.st_mtime_ns != mtime:
            rec = _dep_record(path)
            if rec is None or rec[3] != digest:
                return False
    return True


def _parse_deps(text: str, skip: Path) -> list[str]:
    body = text.partition(":")[2].replace("\\\n", " ")
    out = []
    for tok in re.findall(r"(?:\\.|[^\s\\])+", body):
        p = re.sub(r"\\(.)", r"\1", tok).replace("$$", "$")
        if os.path.isabs(p) and not p.startswith(str(skip) + os.sep):
            out.append(p)
    return sorted(set(out))


_MEMO: dict[str, tuple[list, Answers]] = {}


def forget() -> None:
    """Drop the answers kept in memory (the disk cache stays): as a new process starts."""
    _MEMO.clear()


def probe(profile: TargetProfile, *, headers=(), include_dirs=(), exprs=(), structs=None) -> Answers:
    """Evaluate ``exprs`` (C constant expressions) and measure ``structs`` (struct name -> the
    field names wanted) for ``profile``, with ``headers`` (absolute paths) included after
    ``<sys/ioctl.h>`` and each header's directory and ``include_dirs`` on the include path.
    ProbeError (a ValueError) says in one line what the compiler refused; InfraError when the
    compiler is missing or hangs."""
    headers = tuple(str(h) for h in headers)
    for h in headers:
        if not os.path.isabs(h) or any(c in h for c in '"\\') or any(ord(c) < 32 for c in h):
            raise ProbeError(f"header {h!r}: kharness includes headers by an absolute path without quotes, "
                             "backslashes or control characters")
    exprs = tuple(dict.fromkeys(check_expression(e) for e in exprs))
    wanted = tuple((check_struct_name(s), tuple(dict.fromkeys(check_field_name(f) for f in names)))
                   for s, names in (structs or {}).items())
    text, asks = _probe_text(headers, exprs, wanted)
    idirs = list(dict.fromkeys([str(Path(h).parent) for h in headers] + [str(d) for d in include_dirs]))
    argv_flags = [*FLAGS, *(f"-I{d}" for d in idirs)]
    cc, ident = _compiler(profile)
    key = hashlib.sha256("\0".join([str(VERSION), ident, profile.name, *argv_flags, text]).encode()).hexdigest()
    memo = _MEMO.get(key)
    if memo is not None and _fresh(memo[0]):
        return memo[1]
    entry = cache_dir() / "cprobe" / f"{profile.name}-{key[:24]}"
    got = _load(entry)
    if got is None:
        with file_lock(entry.with_name(entry.name + ".lock"), timeout=LOCK_TIMEOUT):
            got = _load(entry)
            if got is None:
                got = _compile(profile, cc, argv_flags, text, asks, headers)
                with staging_dir(entry) as tmp:
                    (tmp / ANSWERS).write_text(json.dumps(got))
                    seal.seal(tmp)
    answers = _answers(got["answers"])
    _MEMO[key] = (got["deps"], answers)
    return answers


def _load(entry: Path) -> dict | None:
    """The entry's answers, if it is sound and every file its probe read is unchanged."""
    if seal.problem(entry) is not None:
        return None
    try:
        got = json.loads((entry / ANSWERS).read_text())
        if got.get("version") != VERSION or not _fresh(got["deps"]):
            return None
        return got
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _answers(raw: dict) -> Answers:
    structs = {name: CStruct(name, s["size"], tuple(CField(**f) for f in s["fields"]))
               for name, s in raw["structs"].items()}
    return Answers(dict(raw["values"]), structs)


def _compile(profile, cc, argv_flags, text, asks, headers) -> dict:
    with tempfile.TemporaryDirectory(prefix="kh-cprobe-") as d:
        tmp = Path(d)
        (tmp / "probe.c").write_text(text)
        p = proc.run([cc, *argv_flags, "probe.c"], timeout=COMPILE_TIMEOUT, cwd=tmp,
                     env=dict(os.environ, LC_ALL="C"), what=f"the {profile.name} compiler's probe of the ioctl header")
        if p.returncode != 0:
            raise ProbeError(_explain(p.stderr, asks, headers, profile))
        asm = (tmp / "probe.s").read_text(errors="replace")
        deps = [r for r in (_dep_record(x) for x in _parse_deps((tmp / "probe.d").read_text(), tmp)) if r]
    marks = {m.group(1): [int(x.lstrip("$#")) for x in m.group(2).split()] for m in _MARK_RE.finditer(asm)}
    values: dict[str, int] = {}
    structs: dict[str, dict] = {}
    for i, e in enumerate(a[1] for a in asks.values() if a[0] == "expr"):
        hi, lo, neg = _mark(marks, f"e{i}", 3, profile)
        v = ((hi & _M32) << 32) | (lo & _M32)
        values[e] = v - (1 << 64) if neg else v
    j = -1
    for what in asks.values():
        if what[0] == "struct":
            j, k = j + 1, 0
            structs[what[1]] = {"size": _mark(marks, f"s{j}", 1, profile)[0], "fields": []}
        elif what[0] == "field":
            off, size, cls, is_array, signed, esize, char, esigned = _mark(marks, f"f{j}.{k}", 8, profile)
            k += 1
            kind = ARRAY if is_array else _CLASSES.get(cls, "other type")
            structs[what[1]]["fields"].append(dict(
                name=what[2], offset=off, size=size, kind=kind if kind in (INT, POINTER, ARRAY) else OTHER,
                signed=bool(signed), elem_size=esize if is_array else 0, elem_signed=bool(esigned),
                char=bool(char and is_array), what="" if kind in (INT, POINTER, ARRAY) else kind))
    return {"version": VERSION, "deps": deps, "answers": {"values": values, "structs": structs}}


def _mark(marks: dict, name: str, n: int, profile) -> list[int]:
    got = marks.get(name)
    if got is None or len(got) != n:
        raise InfraError(f"the {profile.name} compiler's probe gave no answer for {name} "
                         "(its assembly output is not what kharness reads)")
    return got


# --- compiler errors, one line each -------------------------------------------------------------

def _headers_phrase(headers) -> str:
    names = [Path(h).name for h in headers]
    return "<sys/ioctl.h>" if not names else names[0] if len(names) == 1 else ", ".join(names)


def _explain(stderr: str, asks: dict[int, tuple], headers, profile) -> str:
    """The first error the compiler reported, as one line about what was asked."""
    diags = [m.groupdict() for m in map(_DIAG_RE.match, stderr.splitlines()) if m]
    for i, d in enumerate(diags):
        if d["sev"] not in ("error", "fatal error"):
            continue
        line = int(d["line"]) if d["file"] == "probe.c" else None
        if line not in asks:
            # Inside a header: an expansion note points at the question that used the macro.
            for n in diags[i + 1:]:
                if n["sev"] != "note":
                    break
                if n["file"] == "probe.c" and int(n["line"]) in asks and "expansion of macro" in n["msg"]:
                    line = int(n["line"])
                    break
        if line not in asks:
            if "sys/ioctl.h: No such file" in d["msg"]:
                raise InfraError(f"{profile.cross_compile}gcc has no C library headers for {profile.name} "
                                 f"(Debian package libc6-dev-{profile.debian_arch}-cross)", hint="run `make install`")
            where = f"{Path(d['file']).name}:{d['line']}"
            return (f"{_headers_phrase(headers)} does not compile in user space for {profile.name}: "
                    f"{where}: {d['sev']}: {d['msg']}")
        # The implicit declaration of an undefined function-like macro is only a warning in gcc 12.
        same = [x for x in diags if x["file"] == "probe.c" and x["line"] == str(line)]
        return _about(asks[line], d["msg"], same, headers)
    tail = " | ".join(stderr.strip().splitlines()[-3:])
    return f"the {profile.name} compiler refused the probe: {tail}"


def _about(what: tuple, msg: str, same: list[dict], headers) -> str:
    names = _headers_phrase(headers)
    subject = f"'{what[1]}'" if what[0] == "expr" else what[1] if what[0] == "struct" else \
        f"field {what[2]} of {what[1]}"

    def undefined(thing: str) -> str:
        verb = f"none of {names} defines" if len(headers) > 1 else f"{names} does not define"
        return (f"{verb} {thing}" + (f" (in {subject})" if what[0] == "expr" and thing != what[1] else "")
                + ("; name the module's header that does: header = \"...\"" if not headers else ""))

    for d in [{"msg": msg}, *same]:
        m = re.search(r"'([^']+)' undeclared|implicit declaration of function '([^']+)'", d["msg"])
        if m:
            return undefined(m.group(1) or m.group(2))
    m = (re.search(r"(?:incomplete|undefined) type '((?:struct|union|enum) [^']+)'", msg)
         or re.search(r"unknown type name '([^']+)'", msg))
    if m:
        return undefined(m.group(1))
    m = re.search(r"'([^']+)' has no member named '([^']+)'", msg)
    if m:
        return f"{m.group(1)} has no field {m.group(2)}"
    if "bit-field" in msg:
        return f"{subject} is a bit-field, which has no byte offset of its own"
    if "impossible constraint" in msg or "not constant" in msg or "non-constant" in msg:
        return f"{subject} is not a constant expression for the compiler"
    if what[0] == "expr" and msg.startswith("expected "):
        return f"{subject} is not a C expression (the compiler says: {msg})"
    return f"{subject}: the compiler says: {msg}"
