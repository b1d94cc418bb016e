"""Unit tests for kharness.vm.channel: the framing of guest replies, and one exchange over pipes."""

from __future__ import annotations

import base64
import fcntl
import os
import threading

import pytest

from bounded import bounded

from kharness.vm.channel import READY_RE, CommandChannel, CommandResult, parse_framed
from kharness.vm.errors import CommandTimeout


def _b64(data: bytes) -> bytes:
    # busybox base64 (like base64.encodebytes) wraps at 76 columns and ends with a newline
    return base64.encodebytes(data)


def frame(cid: int, out: bytes, err: bytes, *, out_size: int | None = None, err_size: int | None = None) -> bytes:
    """What the guest's kh_emit prints for one command, before the KHE line."""
    return (b"\x1eKHO %d %d\n" % (cid, len(out) if out_size is None else out_size) + _b64(out)
            + b"\x1eKHR %d %d\n" % (cid, len(err) if err_size is None else err_size) + _b64(err))


def test_parse_framed_simple():
    buf = b"\x1eKHO 3 5\n" + _b64(b"hello") + b"\x1eKHR 3 0\n"
    assert parse_framed(buf, 3) == ("hello", 5, "", 0)


def test_parse_framed_long_output_wrapped_at_76():
    out = bytes(range(256)).decode("latin-1").encode("utf-8") * 3 + b"\nlast line\n"
    enc = _b64(out)
    assert max(len(line) for line in enc.splitlines()) == 76
    assert enc.count(b"\n") > 5
    got = parse_framed(frame(7, out, b"warning: x\n"), 7)
    assert got == (out.decode("utf-8"), len(out), "warning: x\n", 11)


def test_parse_framed_utf8_and_binary():
    text = "ünïcødé ✓ \u2603\n"
    out, size, err, esize = parse_framed(frame(1, text.encode(), b"\xff\xfe bad utf-8"), 1)
    assert out == text
    assert size == len(text.encode())
    assert err == "\ufffd\ufffd bad utf-8"
    assert esize == 12


def test_parse_framed_reports_untruncated_sizes():
    assert parse_framed(frame(2, b"head", b"", out_size=1048576 * 3), 2) == ("head", 3145728, "", 0)


def test_parse_framed_ignores_noise_before_and_earlier_commands():
    buf = b"garbage\r\n" + frame(1, b"old", b"") + b"\x1eKHE 1 0\n" + frame(2, b"new", b"e")
    assert parse_framed(buf, 2) == ("new", 3, "e", 1)


def test_parse_framed_does_not_confuse_ids():
    buf = frame(12, b"twelve", b"")
    with pytest.raises(ValueError):
        parse_framed(buf, 1)
    assert parse_framed(buf, 12)[0] == "twelve"


@pytest.mark.parametrize("buf", [
    b"",
    b"\x1eKHO 3 5\n" + _b64(b"hello"),                       # no stderr frame
    b"\x1eKHR 3 0\n\x1eKHO 3 5\n" + _b64(b"hello"),           # frames in the wrong order
    b"\x1eKHO 3 five\n" + _b64(b"hello") + b"\x1eKHR 3 0\n",  # size not a number
])
def test_parse_framed_malformed(buf):
    with pytest.raises(ValueError) as ei:
        parse_framed(buf, 3)
    assert str(ei.value).startswith("malformed reply to command 3: ")


def test_parse_framed_corrupt_base64():
    with pytest.raises(ValueError) as ei:
        parse_framed(b"\x1eKHO 3 5\n@@@not*base64\n\x1eKHR 3 0\n", 3)
    assert str(ei.value).startswith("corrupt output of command 3: ")


def test_ready_re():
    m = READY_RE.search(b"noise\x1eKH-READY 6.1.0-50-amd64\nmore")
    assert m.group(1) == b"6.1.0-50-amd64"


def test_command_result_truncated():
    r = CommandResult("c", 0, "ab", "", 0.1, 2, 0)
    assert r.truncated is False
    assert CommandResult("c", 0, "ab", "", 0.1, 5, 0).truncated is True
    assert CommandResult("c", 0, "é", "x", 0.1, 2, 1).truncated is False


def test_channel_run_over_pipes():
    g2h_r, g2h_w = os.pipe()   # guest -> host
    h2g_r, h2g_w = os.pipe()   # host -> guest
    try:
        os.write(g2h_w, b"\x1eKH-READY 6.1.0-50-amd64\n")
        os.write(g2h_w, frame(1, b"out\n", b"err\n") + b"\x1eKHE 1 3\n")
        ch = CommandChannel(g2h_r, h2g_w)
        assert ch.wait_ready(5, lambda: None) == "6.1.0-50-amd64"
        res = ch.run("echo 'héllo' | cat", 5, lambda: None)
        assert (res.command, res.rc, res.stdout, res.stderr, res.stdout_size, res.stderr_size) == \
            ("echo 'héllo' | cat", 3, "out\n", "err\n", 4, 4)
        sent = os.read(h2g_r, 4096)
        assert sent == b"run 1 " + base64.b64encode("echo 'héllo' | cat".encode()) + b"\n"
        ch.bye()
        assert os.read(h2g_r, 4096) == b"bye\n"
        ch.close()
    finally:
        for fd in (g2h_r, g2h_w, h2g_r, h2g_w):
            os.close(fd)


def test_channel_timeout_calls_check():
    g2h_r, g2h_w = os.pipe()
    h2g_r, h2g_w = os.pipe()
    calls = []
    try:
        ch = CommandChannel(g2h_r, h2g_w)
        with pytest.raises(CommandTimeout) as ei:
            ch.run("sleep 100", 0.15, lambda: calls.append(1))
        assert ei.value.message == "command 'sleep 100' did not finish within 0.15s"
        assert len(calls) >= 1
    finally:
        for fd in (g2h_r, g2h_w, h2g_r, h2g_w):
            os.close(fd)


_bounded = bounded


def _fifo(path) -> int:
    """A FIFO opened read-write, as the host holds QEMU's (see machine._fifo_pair)."""
    os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR)


def test_command_larger_than_the_pipe_times_out_when_the_guest_stops_reading(tmp_path):
    # The guest is wedged: nothing drains cmd.in, and the host's own read-write open of the FIFO
    # means the write never fails with EPIPE. A request bigger than the pipe must still give up
    # at its deadline.
    h2g = _fifo(tmp_path / "cmd.in")
    g2h = _fifo(tmp_path / "cmd.out")
    pipe_size = fcntl.fcntl(h2g, 1032)   # F_GETPIPE_SZ
    command = "printf '%s' " + "A" * (2 * pipe_size + 1)
    calls = []
    try:
        ch = CommandChannel(g2h, h2g)
        box = _bounded(lambda: ch.run(command, 0.5, lambda: calls.append(1)))
        err = box.get("error")
        assert isinstance(err, CommandTimeout), box
        assert err.message.startswith(f"command {command[:77] + '...'!r} did not finish within 0.5s "
                                      "(the guest stopped reading its input: ")
        assert calls, "the guest's health was not checked while the pipe was full"
        assert ch.bye(timeout=0.1) is False   # the pipe is still full
    finally:
        os.close(h2g)
        os.close(g2h)


def test_command_larger_than_the_pipe_goes_through_to_a_reading_guest():
    g2h_r, g2h_w = os.pipe()
    h2g_r, h2g_w = os.pipe()
    command = "printf '%s' " + "B" * (4 * fcntl.fcntl(h2g_w, 1032))
    want = b"run 1 " + base64.b64encode(command.encode()) + b"\n"
    got = bytearray()

    def guest():   # reads the whole request, then answers it
        while not got.endswith(b"\n"):
            got.extend(os.read(h2g_r, 65536))
        os.write(g2h_w, frame(1, b"ok", b"") + b"\x1eKHE 1 0\n")

    t = threading.Thread(target=guest, daemon=True)
    t.start()
    try:
        ch = CommandChannel(g2h_r, h2g_w)
        box = _bounded(lambda: ch.run(command, 30, lambda: None))
        assert "error" not in box, box
        assert (box["value"].rc, box["value"].stdout) == (0, "ok")
        assert bytes(got) == want
    finally:
        t.join(30)
        for fd in (g2h_r, g2h_w, h2g_r, h2g_w):
            os.close(fd)
