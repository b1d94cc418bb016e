"""kharness.hw.cprobe with the real cross compilers of every target: ioctl numbers, sizes and
struct layouts as the target's compiler sees them, its errors in one line, and its cache."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import pytest

from kharness import proc
from kharness.errors import InfraError
from kharness.hw import cprobe, cstruct
from kharness.hw.ioctl import layout_for, parse_request
from kharness.targets import all_targets

TARGETS = all_targets()
FIVE = ["x86_64", "arm64", "rpi2", "ppc64le", "ppc64"]
KHDEMO_H = Path(__file__).resolve().parents[2] / "examples" / "chardev-ioctl" / "khdemo_ioctl.h"
KH_MSG = ["flag", "a", "b", "c", "text"]

WIDE_H = """\
#include <linux/types.h>
struct kh_hdr { __u16 len; __s8 level; };
struct kh_wide {
	long l;
	char *p;
	__s16 s;
	__u32 arr[3];
	struct kh_hdr hdr;
	unsigned int bits : 3;
	char name[5];
	double d;
	int (*fn)(void);
};
typedef struct kh_wide kh_wide_t;
#define KH_WIDE _IOWR('w', 7, struct kh_wide)
#define KH_NEG (-42)
"""


def needs(name: str):
    prof = TARGETS[name]
    if shutil.which(f"{prof.cross_compile}gcc") is None:
        pytest.skip(f"{prof.cross_compile}gcc is not installed")
    return prof


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    cprobe.forget()
    yield
    cprobe.forget()


@pytest.fixture
def compiles(monkeypatch):
    """The number of compiler runs so far (every compiler run goes through proc.run)."""
    calls = []
    real = proc.run

    def counting(argv, **kw):
        calls.append(argv)
        return real(argv, **kw)

    monkeypatch.setattr(proc, "run", counting)
    return calls


@pytest.fixture
def wide_h(tmp_path):
    p = tmp_path / "mod" / "kh_wide.h"
    p.parent.mkdir()
    p.write_text(WIDE_H)
    return p


# --- numbers and layouts, per target ------------------------------------------------------------

@pytest.mark.parametrize("name", FIVE)
def test_requests_agree_with_kharness_own_encoder(name):
    prof = needs(name)
    enc = layout_for(prof.kernel_arch)
    ptr = prof.bits // 8
    exprs = {"KH_SET": "_IOW('k', 1, 40)", "KH_GET": "_IOR('k', 2, 40)", "KH_XFORM": "_IOWR('k', 3, 40)",
             "KH_RESET": "_IO('k', 4)", "_IOW(100, 0, char *)": f"_IOW(100, 0, {ptr})",
             "_IOWR('k', 3, struct kh_msg)": "_IOWR('k', 3, 40)", "_IOR('T', 0x2A, int)": "_IOR('T', 0x2A, 4)"}
    got = cprobe.probe(prof, headers=[KHDEMO_H], exprs=list(exprs))
    for expr, legacy in exprs.items():
        assert got.values[expr] == parse_request(legacy, enc), (name, expr)
    # powerpc's 3 direction bits are not the generic 2: the compiler says so too.
    assert (got.values["KH_RESET"] >> 29 == 1) == (prof.kernel_arch == "powerpc")


@pytest.mark.parametrize("name", FIVE)
def test_kh_msg_layout(name):
    prof = needs(name)
    s = cprobe.probe(prof, headers=[KHDEMO_H], exprs=["sizeof(struct kh_msg)"],
                     structs={"struct kh_msg": KH_MSG}).structs["struct kh_msg"]
    assert s.size == 40
    assert [(f.name, f.offset, f.size, f.kind) for f in s.fields] == [
        ("flag", 0, 1, "int"), ("a", 4, 4, "int"), ("b", 8, 2, "int"), ("c", 16, 8, "int"), ("text", 24, 16, "array")]
    assert not any(f.signed for f in s.fields[:4])
    assert s.field("text").char and s.field("text").elem_size == 1 and s.field("text").count == 16


@pytest.mark.parametrize("name", FIVE)
def test_word_size_signedness_arrays_nesting(name, wide_h):
    prof = needs(name)
    w = prof.bits // 8
    got = cprobe.probe(prof, headers=[wide_h], exprs=["KH_WIDE", "KH_NEG", "sizeof(kh_wide_t)"],
                       structs={"struct kh_wide": ["l", "p", "s", "arr", "hdr", "hdr.len", "hdr.level", "name", "d", "fn"]})
    s = got.structs["struct kh_wide"]
    # long and pointers are the target's word; arr is 4-aligned, a double 8-aligned on every ABI here.
    size = 64 if w == 8 else 56
    assert got.values["sizeof(kh_wide_t)"] == s.size == size
    assert got.values["KH_WIDE"] == parse_request(f"_IOWR('w', 7, {size})", layout_for(prof.kernel_arch))
    assert got.values["KH_NEG"] == -42
    f = {x.name: x for x in s.fields}
    assert (f["l"].offset, f["l"].size, f["l"].kind, f["l"].signed) == (0, w, "int", True)
    assert (f["p"].offset, f["p"].size, f["p"].kind) == (w, w, "pointer")
    assert (f["s"].offset, f["s"].size, f["s"].signed) == (2 * w, 2, True)
    assert (f["arr"].kind, f["arr"].elem_size, f["arr"].count, f["arr"].char) == ("array", 4, 3, False)
    assert f["arr"].offset == 2 * w + 4
    assert (f["hdr"].kind, f["hdr"].what) == ("other", "struct")
    assert f["hdr.len"].offset == f["hdr"].offset and f["hdr.level"].offset == f["hdr"].offset + 2
    assert f["hdr.level"].signed and not f["hdr.len"].signed
    assert f["name"].char and f["name"].size == 5
    assert (f["d"].kind, f["d"].what) == ("other", "floating-point")
    assert (f["fn"].kind, f["fn"].size) == ("pointer", w)


def test_big_endian_packing_on_ppc64():
    prof = needs("ppc64")
    s = cprobe.probe(prof, headers=[KHDEMO_H], structs={"struct kh_msg": KH_MSG}).structs["struct kh_msg"]
    vals = {"flag": 1, "a": 0x12345678, "b": 0xBEEF, "c": 0x1122334455667788, "text": "hi"}
    be, le = cstruct.pack(s, vals, "big"), cstruct.pack(s, vals, "little")
    assert len(be) == 40
    assert be[0:8] == bytes([1, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]) and le[4:8] == bytes([0x78, 0x56, 0x34, 0x12])
    assert be[8:10] == b"\xbe\xef" and be[16:24] == bytes.fromhex("1122334455667788")
    assert be[24:40] == b"hi" + bytes(14)
    for f in s.fields:
        assert cstruct.read(f, be, "big") == vals[f.name]
    # Unnamed fields are zero; a too-long string or an out-of-range integer is refused.
    assert cstruct.pack(s, {"b": 1}, "big") == bytes(8) + b"\x00\x01" + bytes(30)
    with pytest.raises(ValueError, match=r"text \(char array of 16 bytes\).*does not fit with its terminating NUL"):
        cstruct.pack(s, {"text": "x" * 16}, "big")
    with pytest.raises(ValueError, match=r"b \(unsigned 2-byte integer\): 65536 does not fit \(it takes 0 to 65535\)"):
        cstruct.pack(s, {"b": 65536}, "big")
    with pytest.raises(ValueError, match=r"flag .* -1 does not fit"):
        cstruct.pack(s, {"flag": -1}, "big")


# --- errors, one line each ----------------------------------------------------------------------

def _error(prof, **kw) -> str:
    with pytest.raises(cprobe.ProbeError) as e:
        cprobe.probe(prof, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_the_compilers_errors_in_one_line(tmp_path, wide_h):
    prof = needs("rpi2")
    h = [KHDEMO_H]
    assert _error(prof, headers=h, exprs=["KH_NOPE"]) == "khdemo_ioctl.h does not define KH_NOPE"
    assert _error(prof, headers=h, exprs=["_IOW(KH_MAGICX, 1, int)"]) == \
        "khdemo_ioctl.h does not define KH_MAGICX (in '_IOW(KH_MAGICX, 1, int)')"
    assert _error(prof, headers=h, exprs=["KH_NOPE(3)"]) == "khdemo_ioctl.h does not define KH_NOPE (in 'KH_NOPE(3)')"
    assert _error(prof, headers=h, structs={"struct kh_nope": ["x"]}) == "khdemo_ioctl.h does not define struct kh_nope"
    assert _error(prof, headers=h, structs={"kh_msg_t": ["x"]}) == "khdemo_ioctl.h does not define kh_msg_t"
    assert _error(prof, headers=h, exprs=["_IOW('k', 1, struct kh_nope)"]) == \
        "khdemo_ioctl.h does not define struct kh_nope (in '_IOW('k', 1, struct kh_nope)')"
    assert _error(prof, headers=h, structs={"struct kh_msg": ["flag", "nope"]}) == "struct kh_msg has no field nope"
    assert _error(prof, headers=[wide_h], structs={"struct kh_wide": ["hdr.nope"]}) == "struct kh_hdr has no field nope"
    assert _error(prof, headers=[wide_h], structs={"struct kh_wide": ["bits"]}) == \
        "field bits of struct kh_wide is a bit-field, which has no byte offset of its own"
    assert _error(prof, headers=[KHDEMO_H, wide_h], exprs=["KH_NOPE"]) == \
        "none of khdemo_ioctl.h, kh_wide.h defines KH_NOPE"
    assert _error(prof, exprs=["KH_SET"]) == \
        "<sys/ioctl.h> does not define KH_SET; name the module's header that does: header = \"...\""
    assert _error(prof, headers=h, exprs=["KH_SET +"]).startswith("'KH_SET +' is not a C expression (the compiler says: expected")
    assert _error(prof, headers=h, exprs=["(int)&kh_probe"]) == "'(int)&kh_probe' is not a constant expression for the compiler"
    kern = tmp_path / "kern.h"
    kern.write_text("#include <linux/slab.h>\n")
    assert _error(prof, headers=[kern], exprs=["1"]) == \
        "kern.h does not compile in user space for rpi2: kern.h:1: fatal error: linux/slab.h: No such file or directory"
    syntax = tmp_path / "syntax.h"
    syntax.write_text("struct a { int x; };\nint int;\n")
    assert _error(prof, headers=[syntax], exprs=["1"]).startswith(
        "syntax.h does not compile in user space for rpi2: syntax.h:2: error: ")


@pytest.mark.parametrize("expr, why", [
    ("a;b", r"not a single-line C expression \(it holds ;\)"), ("x // y", "holds //"), ("a /* b */", r"holds /\* \*/"),
    ("a\nb", "control character"), ("{1}", "holds { }"), ("#x", "holds #"), ("(1", "unbalanced"), ("1)", "unbalanced"),
    ("1, 2", "a comma outside brackets"), ("", "non-empty"), ("a\\", "holds \\\\"),
])
def test_text_that_is_not_one_c_expression_is_refused_before_the_compiler(expr, why, compiles):
    with pytest.raises(ValueError, match=why):
        cprobe.probe(TARGETS["x86_64"], exprs=[expr])
    assert compiles == []


def test_bad_names_are_refused_before_the_compiler(compiles):
    with pytest.raises(ValueError, match="is not a struct name"):
        cprobe.probe(TARGETS["x86_64"], structs={"struct a; int": ["x"]})
    with pytest.raises(ValueError, match="is not a field name"):
        cprobe.probe(TARGETS["x86_64"], structs={"struct a": ["x)"]})
    with pytest.raises(ValueError, match="absolute path without quotes"):
        cprobe.probe(TARGETS["x86_64"], headers=['/tmp/a".h'], exprs=["1"])
    assert compiles == []


def test_a_missing_compiler_is_an_infra_error():
    prof = dataclasses.replace(TARGETS["x86_64"], cross_compile="kh-no-such-arch-")
    with pytest.raises(InfraError) as e:
        cprobe.probe(prof, exprs=["1"])
    assert "kh-no-such-arch-gcc" in e.value.message and "kharness doctor --install" in e.value.hint


def test_a_hung_compiler_is_stopped_at_its_deadline(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "kh-slow-gcc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(cprobe, "COMPILE_TIMEOUT", 0.5)
    with pytest.raises(proc.ProcessTimeout, match="did not finish within 0.5s"):
        cprobe.probe(dataclasses.replace(TARGETS["x86_64"], cross_compile="kh-slow-"), exprs=["1"])


# --- the cache ------------------------------------------------------------------------------------

def test_a_second_call_does_not_run_the_compiler(compiles):
    prof = needs("ppc64")
    ask = dict(headers=[KHDEMO_H], exprs=["KH_SET"], structs={"struct kh_msg": KH_MSG})
    first = cprobe.probe(prof, **ask)
    assert len(compiles) == 1 and compiles[0][0].endswith("powerpc64-linux-gnu-gcc")
    assert cprobe.probe(prof, **ask) == first                 # in memory
    cprobe.forget()                                           # as a new process: from disk
    assert cprobe.probe(prof, **ask) == first
    assert len(compiles) == 1
    # Another target, or another question, is another probe.
    cprobe.probe(needs("x86_64"), **ask)
    cprobe.probe(prof, headers=[KHDEMO_H], exprs=["KH_GET"])
    assert len(compiles) == 3


def test_a_changed_header_invalidates_the_cache(tmp_path, compiles):
    prof = needs("arm64")
    inner = tmp_path / "inner.h"
    outer = tmp_path / "outer.h"
    inner.write_text("#define KH_BASE 1\n")
    outer.write_text('#include "inner.h"\n#define KH_VAL (KH_BASE + 10)\n')
    assert cprobe.probe(prof, headers=[outer], exprs=["KH_VAL"]).values["KH_VAL"] == 11
    # A header the module's header includes changes (same size): the next probe sees it, in this
    # process and in a new one.
    inner.write_text("#define KH_BASE 2\n")
    os.utime(inner, ns=(time.time_ns(), inner.stat().st_mtime_ns + 1_000_000))
    assert cprobe.probe(prof, headers=[outer], exprs=["KH_VAL"]).values["KH_VAL"] == 12
    assert len(compiles) == 2
    cprobe.forget()
    assert cprobe.probe(prof, headers=[outer], exprs=["KH_VAL"]).values["KH_VAL"] == 12
    assert len(compiles) == 2
    # Touched but not changed: still the cached answer.
    os.utime(outer, ns=(time.time_ns(), outer.stat().st_mtime_ns + 1_000_000))
    assert cprobe.probe(prof, headers=[outer], exprs=["KH_VAL"]).values["KH_VAL"] == 12
    assert len(compiles) == 2
    # A cache entry whose header is gone is not used.
    outer.rename(tmp_path / "gone.h")
    outer.write_text('#include "inner.h"\n#define KH_VAL (KH_BASE + 20)\n')
    cprobe.forget()
    assert cprobe.probe(prof, headers=[outer], exprs=["KH_VAL"]).values["KH_VAL"] == 22
    assert len(compiles) == 3


def test_compiler_errors_are_not_cached(compiles):
    prof = needs("x86_64")
    for _ in range(2):
        with pytest.raises(cprobe.ProbeError):
            cprobe.probe(prof, headers=[KHDEMO_H], exprs=["KH_NOPE"])
    assert len(compiles) == 2
