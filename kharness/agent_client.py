"""The host's half of kh-agent: every guest command the harness builds for kh-agent (and for the
khgpio controller and file delivery), and every parser of their replies.

docs/protocol.md specifies the commands and replies; ``kharness/hw/agent/kh-agent.c`` is the
guest half. Nothing here talks to a guest: a :class:`~kharness.guest.Guest` runs the strings,
these functions read what came back. :class:`AgentCalls` gives any guest that can run a command
the protocol's ``put_file``, ``dmesg_since`` and ``health`` on top of it.
"""

from __future__ import annotations

import gzip
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from kharness.hw.agent import parse_reply
from kharness.vm.errors import GuestError

if TYPE_CHECKING:
    from kharness.vm.channel import CommandResult

__all__ = ["parse_reply"]   # kh-agent's key=value reply line (kept next to the agent's builder)

# --- the health look ------------------------------------------------------------------------------
# One guest process after every phase: taint, the kernel log since the last look, the loaded
# modules, the character devices; four sections separated by HEALTH_SEP lines.
HEALTH_CMD = "kh-agent health"
HEALTH_SEP = "@@KH@@\n"

# --- kernel-log cursors (kh-agent dmesg-since NAME) -------------------------------------------------
HEALTH_CURSOR = "health"    # the health look's own
STEP_CURSOR_NAME = "step"   # a dmesg check's window: moved at the start of every other check step
SESSION_CURSOR = "python"   # a Session's dmesg.since()
# Prefix of every check command but a dmesg check's: moves the step cursor, so that a dmesg check
# reads "the kernel log since the previous step".
STEP_CURSOR = f"kh-agent dmesg-since {STEP_CURSOR_NAME} >/dev/null 2>&1; "
# Run with the look that ends the boot phase: the first dmesg check and a Session's first
# dmesg.since() start at the load, not at boot (that look itself scans the boot log).
LOAD_MARK = " && ".join(f"kh-agent dmesg-since {name} >/dev/null" for name in (STEP_CURSOR_NAME, SESSION_CURSOR))

# --- a restored guest's first command ---------------------------------------------------------------
RESTORED_CMD = "kh-agent restored {epoch} {seed}"

_CURSOR_RE = re.compile(r"\w+")


def health() -> str:
    return HEALTH_CMD


def boot_look() -> str:
    """The look that ends the boot phase (";": the look runs even if a cursor could not move)."""
    return f"{LOAD_MARK}; {HEALTH_CMD}"


def restored(epoch: int, seed: str, template: str | None = None) -> str:
    """Prove the timers run, set the clock to ``epoch``, mix ``seed`` (hex) into the entropy pool,
    make /kh. ``template`` (default: RESTORED_CMD as it is now): a test's stand-in."""
    if not re.fullmatch(r"[0-9a-f]*", seed):
        raise ValueError(f"seed must be lowercase hex, not {seed!r}")
    return (template or RESTORED_CMD).format(epoch=int(epoch), seed=seed)


def dmesg_since(cursor: str = HEALTH_CURSOR) -> str:
    """The raw kernel log lines logged since the previous call with ``cursor``."""
    if not _CURSOR_RE.fullmatch(cursor):
        raise ValueError(f"a kernel-log cursor is a word, not {cursor!r}")
    return f"kh-agent dmesg-since {cursor}"


@dataclass(frozen=True)
class HealthLook:
    """One ``kh-agent health`` reply."""
    taint: int | None                 # /proc/sys/kernel/tainted; None if unreadable
    log: str                          # the kernel log since the previous look
    modules: frozenset[str] = frozenset()            # /proc/modules
    char_devices: dict[str, str] = field(default_factory=dict)   # {name: major}, first major wins


def parse_health(stdout: str) -> HealthLook:
    """A health reply; missing sections read as empty (a guest that died mid-reply)."""
    head, log, mods, devs = (stdout.split(HEALTH_SEP, 3) + ["", "", ""])[:4]
    try:
        taint: int | None = int(head.strip() or "0")
    except ValueError:
        taint = None
    chardevs: dict[str, str] = {}
    for line in devs.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            chardevs.setdefault(parts[1], parts[0])
    return HealthLook(taint, log, frozenset(mods.split()), chardevs)


def format_health(look: HealthLook) -> str:
    """The reply kh-agent would give for ``look`` (for fakes and recorded replies)."""
    devs = "".join(f"{major} {name}\n" for name, major in look.char_devices.items())
    return (f"{0 if look.taint is None else look.taint}\n{HEALTH_SEP}{look.log}{HEALTH_SEP}"
            + "".join(m + "\n" for m in sorted(look.modules)) + HEALTH_SEP + devs)


# --- exact system calls: one key=value reply line ---------------------------------------------------

def _hex(data: bytes) -> str:
    return data.hex() or "-"


def write(path: str, data: bytes) -> str:
    """One write() of exactly ``data``: ``ret=N errno=NAME|0``."""
    return f"kh-agent write {shlex.quote(path)} {_hex(data)}"


def redirect(path: str, data: bytes) -> str:
    """As the shell's ``> PATH`` (created if missing, truncated), then one write() of exactly
    ``data``: ``ret=N errno=NAME|0``, or ``open_errno=NAME`` with exit status 3."""
    return f"kh-agent redirect {shlex.quote(path)} {_hex(data)}"


def read(path: str, count: int) -> str:
    """One read() of up to ``count`` bytes: ``ret=N errno=NAME|0 data=HEX``."""
    return f"kh-agent read {shlex.quote(path)} {int(count)}"


def _ioctl_in(payload: bytes, out_len: int, arg: int | None) -> str:
    """The IN argument of an ioctl: the payload's hex, or ``=VALUE`` for an integer by value."""
    if arg is None:
        return _hex(payload)
    if payload or out_len:
        raise ValueError("an ioctl argument passed by value has no payload and no output")
    return f"={int(arg)}"


def ioctl(path: str, request: int, payload: bytes = b"", out_len: int = 0, arg: int | None = None) -> str:
    """``ret=N errno=NAME|0 out=HEX`` (HEX: the ``out_len`` bytes of the argument afterwards);
    ``arg``: pass this integer itself as the argument (``ioctl(fd, REQ, 5)``), no payload."""
    return f"kh-agent ioctl {shlex.quote(path)} {int(request):#x} {_ioctl_in(payload, out_len, arg)} {int(out_len)}"


def cat(path: str) -> str:
    """The file's content on stdout, as cat (``cat: PATH: MESSAGE`` on stderr and exit 1 when it
    cannot be read): one static process where a Debian guest's cat is a dynamic binary."""
    return f"kh-agent cat {shlex.quote(path)}"


def last_reply(stdout: str) -> dict:
    """The reply line (the last line of ``stdout``) parsed; {} when there is none."""
    text = stdout.strip()
    return parse_reply(text.splitlines()[-1]) if text else {}


# --- sessions: steps on one open file ----------------------------------------------------------------
AGAIN, OTHER, CLOSE, REOPEN = "again", "other", "close", "open"


def step_write(data: bytes) -> str:
    return f"w:{_hex(data)}"


def step_read(count: int) -> str:
    return f"r:{int(count)}"


def step_seek(offset: int) -> str:
    return f"s:{int(offset)}"


def step_ioctl(request: int, payload: bytes = b"", out_len: int = 0, arg: int | None = None) -> str:
    return f"i:{int(request):x}:{_ioctl_in(payload, out_len, arg)}:{int(out_len)}"


def session(path: str, mode: str, ops: Iterable[str]) -> str:
    """Steps on one open file; one ``step=K op=NAME ret=N errno=NAME|0 [data=HEX]`` line each."""
    return f"kh-agent session {shlex.quote(path)} {mode} " + " ".join(shlex.quote(o) for o in ops)


def hold(path: str, mode: str, fifo_dir: str) -> str:
    """A server in the guest holding ``path`` open, driven one step at a time by :func:`hold_step`."""
    return f"mkdir -p {fifo_dir} && kh-agent hold {shlex.quote(path)} {mode} {fifo_dir}"


def hold_step(fifo_dir: str, op: str) -> str:
    return f"echo {shlex.quote(op)} > {fifo_dir}/in && cat {fifo_dir}/out"


def gpio_chips() -> str:
    return "kh-agent gpio-chips"


def gpio_line(chip: str, line: int, what: str) -> str:
    if what not in ("in", "0", "1"):
        raise ValueError("gpio-line wants in, 0 or 1")
    return f"kh-agent gpio-line {shlex.quote(chip)} {int(line)} {what}"


# --- the khgpio controller (its debugfs directory, driven with shell) --------------------------------
KHGPIO_DEBUGFS = "/sys/kernel/debug/khgpio"
_KHGPIO_STEP_RE = re.compile(r"irqs=(-?\d+) level=([01]) direction=(in|out)")


def khgpio_load(insmod_argv: list[str]) -> str:
    """insmod khgpio (``insmod_argv``: busybox's insmod or kh-agent's), then print its base (the
    last line: see :func:`parse_khgpio_base`)."""
    return shlex.join(insmod_argv) + " && " + cat(f"{KHGPIO_DEBUGFS}/base")


def parse_khgpio_base(stdout: str) -> int:
    """khgpio's base GPIO number; ValueError or IndexError when it did not load."""
    return int(stdout.strip().splitlines()[-1])


def khgpio_step(line: int, set_level: int | None = None, pulses: int | None = None,
                interval_ms: float = 5.0) -> str:
    """Shell for one GPIO step: act on ``line``, then print
    ``irqs=<delivered during the step> level=<0|1> direction=<in|out>``."""
    d = f"{KHGPIO_DEBUGFS}/line{line}"
    act = ""
    if set_level is not None:
        act = f"echo {set_level} > {d}/value && "
    elif pulses is not None:
        act = f"echo '{line} {pulses} {int(interval_ms * 1000)}' > {KHGPIO_DEBUGFS}/pulse && "
    return (f"test -d {d} || {{ echo 'khgpio has no line {line}' >&2; exit 2; }}; "
            f"a=$(cat {d}/irqs) && {act}"
            f"echo irqs=$(( $(cat {d}/irqs) - a )) level=$(cat {d}/value) direction=$(cat {d}/direction)")


def parse_khgpio_step(stdout: str) -> dict | None:
    m = _KHGPIO_STEP_RE.search(stdout)
    if not m:
        return None
    return {"irqs": int(m.group(1)), "level": int(m.group(2)), "direction": m.group(3)}


def khgpio_events() -> str:
    return f"cat {KHGPIO_DEBUGFS}/events"


def parse_khgpio_events(stdout: str) -> list[tuple[int, ...]]:
    """``(ns since boot, line, level)`` per recorded output change, oldest first."""
    return [tuple(int(x) for x in ln.split()) for ln in stdout.splitlines() if len(ln.split()) == 3]


# --- file delivery --------------------------------------------------------------------------------
# Files reach the guest as a command's stdin (a ``put`` request, docs/protocol.md): the bytes follow
# the request line and kh-agent reads them in bulk. gzip first: they cross an emulated serial port,
# where each byte costs far more than decompressing it (a stripped module is a quarter of its size
# gzipped).
PAYLOAD_DIR = "/kh"


def put_file_command(path: str) -> str:
    """The guest command that writes its (gzip-compressed) stdin to ``path``."""
    parent = path.rsplit("/", 1)[0] or "/"
    return f"mkdir -p {shlex.quote(parent)} && gunzip > {shlex.quote(path)}"


def unpack_command(dest: str = PAYLOAD_DIR, *, made: bool = False, compressed: bool = True) -> str:
    """The guest command that unpacks a bundle (a newc cpio, gzip-compressed or not, its stdin: see
    kharness.image.initramfs.bundle) into ``dest``: by default /kh, where modules are loaded from.
    ``made``: ``dest`` exists (the restored guest's first step makes /kh), no mkdir. Each left-out
    tool is an exec fewer, ~40 ms of a Debian guest's under TCG."""
    d = shlex.quote(dest)
    # Uncompressed (a guest over SSH): kh-agent unpacks it, not the guest's cpio (a dynamic binary).
    return ("" if made else f"mkdir -p {d} && ") + f"cd {d} && " + ("gunzip | cpio -idmu" if compressed else "kh-agent unpack")


# --- the protocol's agent calls for any guest that can run a command ----------------------------------

class AgentCalls:
    """``put_file``, ``dmesg_since`` and ``health`` of the Guest protocol, over the guest's own
    ``run`` (what a guest must provide)."""

    def run(self, command: str, timeout: float, stdin: bytes = b"") -> "CommandResult":   # pragma: no cover - abstract
        raise NotImplementedError

    def put_file(self, path: str, data: bytes, timeout: float) -> None:
        """Write ``data`` to ``path`` in the guest; GuestError when the guest could not."""
        r = self.run(put_file_command(path), timeout, stdin=gzip.compress(data, 6, mtime=0))
        if r.rc != 0:
            raise GuestError(f"writing {path} in the guest failed (exit {r.rc}): {r.stderr.strip()[:200]}")

    def dmesg_since(self, cursor: str, timeout: float) -> str:
        return self.run(dmesg_since(cursor), timeout).stdout

    def health(self, timeout: float) -> HealthLook:
        return parse_health(self.run(HEALTH_CMD, timeout).stdout)
