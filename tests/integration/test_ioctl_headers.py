"""ioctl checks that name the module's own header, through the real CLI: what the target's
compiler refuses is one line on stderr, exit 2, before anything is built or booted.

(examples/chardev-ioctl, whose checks all use khdemo_ioctl.h's macros and struct, passes for
real on every target: tests/integration/test_examples.py.)"""

from __future__ import annotations

import shutil

import pytest

from conftest import EXAMPLES

pytestmark = pytest.mark.vm

CHECK = '[[check]]\nname = "probe"\nkind = "ioctl"\ndevice = "/dev/khdemo"\n'


@pytest.fixture
def module(tmp_path):
    d = tmp_path / "khdemo"
    d.mkdir()
    for f in ("khdemo.c", "khdemo_ioctl.h"):
        shutil.copy(EXAMPLES / "chardev-ioctl" / f, d / f)
    (d / "kernel_only.h").write_text("#include <linux/slab.h>\n#define KH_X 1\n")
    return d


@pytest.mark.parametrize("target, table, needle", [
    ("x86_64", 'header = "khdemo_ioctl.h"\nrequest = "KH_NOPE"\n', "khdemo_ioctl.h does not define KH_NOPE"),
    ("ppc64", 'header = "khdemo_ioctl.h"\nrequest = "_IOWR(KH_MAGIC, 3, struct kh_req)"\n',
     "on ppc64: khdemo_ioctl.h does not define struct kh_req (in '_IOWR(KH_MAGIC, 3, struct kh_req)')"),
    ("rpi2", 'header = "khdemo_ioctl.h"\nrequest = "KH_SET"\npayload_struct = "struct kh_nope"\npayload = { a = 1 }\n',
     "on rpi2: khdemo_ioctl.h does not define struct kh_nope"),
    ("x86_64", 'header = "khdemo_ioctl.h"\nrequest = "KH_SET"\npayload_struct = "struct kh_msg"\n'
     'payload = { flags = 1 }\n', "struct kh_msg has no field flags"),
    ("x86_64", 'header = "kernel_only.h"\nrequest = "KH_X"\n',
     "kernel_only.h does not compile in user space for x86_64: kernel_only.h:1: fatal error: linux/slab.h: "
     "No such file or directory"),
    ("x86_64", 'header = "missing.h"\nrequest = "KH_SET"\n', "'header': missing.h does not exist"),
    ("x86_64", 'header = "khdemo_ioctl.h"\nrequest = "KH_SET; KH_GET"\n', "is not a single-line C expression"),
    ("ppc64", 'header = "khdemo_ioctl.h"\nrequest = "KH_SET"\npayload_struct = "struct kh_msg"\n'
     'payload = { text = "sixteen-chars-xx" }\n', "does not fit with its terminating NUL"),
    ("rpi2", 'header = "khdemo_ioctl.h"\nrequest = "KH_NTH"\narg = 5000000000\n',
     "'arg' 5000000000 does not fit in the 32-bit argument"),
    ("x86_64", 'header = "khdemo_ioctl.h"\nrequest = "KH_NTH"\narg = 1\npayload = [["u8", 1]]\n',
     "'arg' passes an integer by value: it cannot go with payload"),
])
def test_bad_ioctl_checks_stop_before_the_build(kharness, module, target, table, needle):
    (module / "kharness.toml").write_text(CHECK + table)
    o = kharness("run", str(module), "--target", target, "--kernel", "6.1")
    assert o.rc == 2, (o.stdout, o.stderr)
    line = [ln for ln in o.stderr.splitlines() if ln.strip()]
    assert len(line) == 1 and needle in line[0] and "check #1 (probe)" in line[0], o.stderr
    assert "Traceback" not in o.stderr
    # Nothing built, nothing booted.
    assert o.result is None or all(p["status"] != "pass" for p in o.result["phases"]), o.result
    assert "building" not in o.stderr and "restoring" not in o.stderr


def test_session_ioctl_by_the_header_on_big_endian_ppc64(monkeypatch):
    """The Python API takes the same: macros, a struct by field name, an integer by value, and
    its older field-by-field form still works."""
    from kharness.hw import cprobe
    from kharness.errors import UsageError
    from kharness.session import session
    from kharness.targets import get_target

    monkeypatch.setenv("KHARNESS_PROGRESS", "0")
    h = dict(header="khdemo_ioctl.h", payload_struct="struct kh_msg")
    names = ["flag", "a", "b", "c", "text"]
    with session(EXAMPLES / "chardev-ioctl", target="ppc64", kernel="6.1", boot_timeout=600, timeout=120) as s:
        r = s.ioctl("/dev/khdemo", "KH_XFORM", {"a": 21, "b": 65535, "c": 41, "text": "abc"}, names, **h)
        assert (r.ret, r.errno, r.out) == (0, "0", {"flag": 1, "a": 42, "b": 0, "c": 42, "text": "ABC"})
        assert s.ioctl("/dev/khdemo", "KH_SET", {"flag": 1, "text": "py"}, **h).ret == 0
        assert s.ioctl("/dev/khdemo", "KH_GET", out=["text", "flag"], **h).out == {"text": "py", "flag": 1}
        old = s.ioctl("/dev/khdemo", "_IOR('k', 2, 40)", out=[["u8", 0], ["u32", 0], ["u16", 0], ["u64", 0],
                                                               ["char[16]", ""]])
        assert old.out == [1, 0, 0, 0, "py"]
        s.run("echo -n kharness > /dev/khdemo")
        assert s.ioctl("/dev/khdemo", "KH_NTH", header="khdemo_ioctl.h", arg=2).ret == ord("a")
        past = s.ioctl("/dev/khdemo", "KH_NTH", header="khdemo_ioctl.h", arg=8)
        assert (past.ret, past.errno) == (-1, "EINVAL")
        nth = cprobe.probe(get_target("ppc64"), headers=[EXAMPLES / "chardev-ioctl" / "khdemo_ioctl.h"],
                           exprs=["KH_NTH"]).values["KH_NTH"]
        assert nth == 0x20006B05                      # powerpc's _IOC_NONE is 1
        with s.chardev.open("/dev/khdemo") as dev:
            assert dev.ioctl(nth, arg=0) == (ord("k"), b"")
        with pytest.raises(UsageError, match="khdemo_ioctl.h does not define KH_NOPE"):
            s.ioctl("/dev/khdemo", "KH_NOPE", header="khdemo_ioctl.h")
    assert s.result.status == "pass"
