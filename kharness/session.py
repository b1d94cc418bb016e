"""Drive a loaded module from Python: the check language's operations as methods.

    from kharness.session import session

    with session("examples/chardev-ioctl", target="ppc64", kernel="6.1") as s:
        with s.chardev.open("/dev/khdemo") as dev:
            dev.write(b"hello")
            assert dev.read(5) == b"hello"
        r = s.ioctl("/dev/khdemo", "_IOR('k', 2, 40)", out=[["u8", 0], ["u32", 0], ["u16", 0],
                                                            ["u64", 0], ["char[16]", ""]])
        assert s.proc.read("/proc/modules").startswith("khdemo")
        s.gpio.pulse(17, 5)                      # with [gpio] in kharness.toml
        print(s.dmesg.since())
    # leaving the block unloads the module and checks the kernel's health; a failure raises
    # RunFailed carrying the structured Result.

Every call runs in the guest at once and raises :class:`GuestOSError` (with the errno name) when
the guest's system call fails. Requests and structs are encoded for the target, as in checks.
"""

from __future__ import annotations

import itertools
import shlex
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kharness import agent_client as agent
from kharness import checks
from kharness.build.program import ProgramBuildError
from kharness.checks.kinds import ioctl as ioctl_check
from kharness.errors import KharnessError, ModuleFailure, UsageError
from kharness.hw.payload import layout, pack, parse_description
from kharness.result.model import CheckResult, Finding, Result
from kharness.runner import DEFAULT_BOOT_TIMEOUT, Run, RunOptions, Skipped
from kharness.vm.channel import CommandResult


__all__ = ["GuestOSError", "IoctlReply", "ProgramBuildError", "RunFailed", "RunSkipped", "Session", "session"]


class GuestOSError(Exception):
    """A system call in the guest failed: ``errno`` is its name (``"EINVAL"``)."""

    def __init__(self, what: str, errno: str):
        super().__init__(f"{what}: {errno}")
        self.errno = errno


class RunFailed(Exception):
    """The session's module failed (build, load, a kernel report, unload) or the harness could
    not run it; ``result`` is the structured Result, as ``kharness run --json`` writes it."""

    def __init__(self, result: Result):
        super().__init__(f"{result.status}: {result.summary}")
        self.result = result


class RunSkipped(RunFailed):
    """The module's own files exclude this target or kernel (a dkms.conf's ``BUILD_EXCLUSIVE_*``):
    nothing was built or booted. ``result.status`` is ``skipped``; the pytest plugin skips the test."""


@dataclass(frozen=True)
class IoctlReply:
    ret: int
    errno: str          # "0" when the call succeeded
    out: list | dict    # the output fields, decoded for the target ({field: value} with payload_struct)


class Session:
    """A booted guest with the module loaded (see :func:`session`)."""

    def __init__(self, run: Run):
        self._run = run
        self.proc = Files(self, "/proc/")
        self.sysfs = Files(self, "/sys/")
        self.file = Files(self, "/")
        self.chardev = CharDevs(self)
        self.gpio = Gpio(self)
        self.dmesg = Dmesg(self)

    @property
    def result(self) -> Result:
        return self._run.result

    @property
    def target(self):
        return self._run.profile

    @property
    def values(self) -> dict[str, str]:
        """What ``{placeholders}`` resolve to: module, param.*, major*, gpio.*."""
        return self._run.check_values()

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """A shell command in the guest; a hang or a dead guest raises ModuleFailure."""
        return self._run.command(command, timeout)

    def health(self) -> list[Finding]:
        """Kernel reports (oops, WARN, BUG, taint...) since the last look that fail a run."""
        return self._run.health_look("check")

    def console_tail(self) -> str:
        return self._run.console_tail()

    def check(self, table: dict) -> CheckResult:
        """Run one check written as in kharness.toml (``{"kind": "proc", "path": ...}``)."""
        c = checks.parse_check(Path("<python>"), 1, table)
        return self._run.run_check(c, self.values, self._run.step_timeout)

    def program(self, source, args=(), stdin: str | None = None, timeout: float | None = None, *,
                cflags=(), include_dirs=(), background: bool = False) -> CheckResult:
        """Compile ``source`` (a C file, or a list of them, relative to the module directory) for
        the guest's target (through the program cache), put it into the guest and run it in
        /tmp with ``args`` and ``stdin``: its ``rc``, ``stdout`` and ``stderr`` (a CheckResult).
        A compile error raises :class:`ProgramBuildError` with the compiler's output.

        ``background=True`` returns at once; the result is completed when the program is stopped
        (:meth:`stop_programs`, or when the session ends: stopped and judged before the unload)."""
        table = {"kind": "program", "source": [str(x) for x in source] if isinstance(source, (list, tuple))
                 else str(source), "args": [str(a) for a in args], "cflags": list(cflags),
                 "background": background}
        if include_dirs:
            table["include_dirs"] = [str(d) for d in include_dirs]
        if stdin is not None:
            table["stdin"] = stdin
        if timeout is not None:
            table["timeout"] = timeout
        c = checks.parse_check(Path(self._run.opts.module_dir).resolve() / "<python>", 1, table)
        return self._run.run_check(c, self.values, self._run.step_timeout)

    def stop_programs(self) -> list[CheckResult]:
        """Stop the background programs still running (SIGTERM, then SIGKILL) and judge them."""
        return self._run.stop_programs()

    def ioctl(self, device: str, request, payload=(), out=(), *, header=None, headers=(), include_dirs=(),
              payload_struct: str | None = None, arg: int | None = None) -> IoctlReply:
        """``request``: a number, ``"_IOWR('k', 1, payload)"``, or C the target's compiler
        evaluates with the module's ``header``/``headers`` (``"KH_SET"``; paths relative to the
        module directory, ``include_dirs`` too). ``payload``/``out`` as in checks: field-by-field
        lists (``[["u32", 5], ["char[16]", "hi"]]``), or with ``payload_struct="struct kh_msg"``
        a dict by field name and the out fields' names (the reply's ``out`` is then a dict).
        ``arg``: an integer passed by value (``ioctl(fd, REQ, 5)``)."""
        paths: dict = {}
        if header is not None:
            paths["headers"] = [str(header)]
        if headers:
            paths["headers"] = paths.get("headers", []) + [str(h) for h in headers]
        if include_dirs:
            paths["include_dirs"] = [str(d) for d in include_dirs]
        paths = checks.resolve_paths(paths, ("headers", "include_dirs"), self._run.opts.module_dir.resolve(),
                                     lambda msg: UsageError(f"ioctl {device}: {msg}"))
        c = ioctl_check.make(device, request, payload, out, payload_struct=payload_struct, arg=arg,
                             headers=paths.get("headers", ()), include_dirs=paths.get("include_dirs", ()))
        try:
            ioctl_check.validate(c, self.target)
        except ValueError as e:
            raise UsageError(f"ioctl {device}: {e}") from None
        res = self.run(ioctl_check.command(c, self.values, self.target))
        reply = agent.last_reply(res.stdout)
        if "open_errno" in reply:
            raise GuestOSError(f"open {device}", reply["open_errno"])
        if "ret" not in reply:
            raise KharnessError(f"no answer from kh-agent: {(res.stderr or res.stdout).strip()[:200]}")
        values = ioctl_check.out_values(c, reply.get("out", b""), self.target) \
            if c.expect_out and reply["ret"] >= 0 else ({} if payload_struct is not None else [])
        return IoctlReply(reply["ret"], reply.get("errno", "0"), values)

    def pack(self, fields) -> bytes:
        """Bytes of a struct described field by field, laid out for the target."""
        return pack(parse_description(list(fields), "fields"), endian=self.target.endian, bits=self.target.bits)

    def sizeof(self, fields) -> int:
        return layout([t for t, _ in parse_description(list(fields), "fields")],
                      endian=self.target.endian, bits=self.target.bits).size


class Files:
    def __init__(self, s: Session, prefix: str):
        self._s, self._prefix = s, prefix

    def _path(self, path: str) -> str:
        if not path.startswith(self._prefix):
            raise UsageError(f"{path!r} is not under {self._prefix}")
        return shlex.quote(path)

    def read(self, path: str) -> str:
        r = self._s.run(f"cat {self._path(path)}")
        if r.rc != 0:
            raise GuestOSError(f"read {path}", checks.errno_of(r.stderr) or r.stderr.strip())
        return r.stdout

    def write(self, path: str, value) -> None:
        """One write() of ``value`` (str, int or bytes)."""
        data = value if isinstance(value, bytes) else str(value).encode()
        self._path(path)   # refuses a path outside the prefix
        r = self._s.run(agent.write(path, data))
        reply = agent.last_reply(r.stdout)
        if "open_errno" in reply:
            raise GuestOSError(f"open {path}", reply["open_errno"])
        if reply.get("ret", -1) < 0:
            raise GuestOSError(f"write {path}", reply.get("errno", r.stderr.strip()))


class CharDevs:
    _ids = itertools.count(1)

    def __init__(self, s: Session):
        self._s = s

    def open(self, path: str, mode: str = "rw") -> "CharDevice":
        """Open ``path`` and keep it open (a small server in the guest holds the file)."""
        if mode not in ("r", "w", "rw"):
            raise UsageError("mode is r, w or rw")
        d = f"/tmp/kh-hold-{next(self._ids)}"
        r = self._s.run(agent.hold(path, mode, d))
        reply = agent.last_reply(r.stdout)
        if "open_errno" in reply:
            raise GuestOSError(f"open {path}", reply["open_errno"])
        if reply.get("ret") != 0:
            raise KharnessError(f"kh-agent could not hold {path}: {(r.stderr or r.stdout).strip()[:200]}")
        return CharDevice(self._s, path, d)


class CharDevice:
    """An open file in the guest: every call is one system call on it."""

    def __init__(self, s: Session, path: str, d: str):
        self._s, self.path, self._d, self.closed = s, path, d, False

    def _step(self, op: str) -> dict:
        if self.closed:
            raise ValueError(f"{self.path} is closed")
        r = self._s.run(agent.hold_step(self._d, op))
        reply = agent.last_reply(r.stdout)
        if not reply:
            raise KharnessError(f"no answer from the kh-agent holding {self.path}: {r.stderr.strip()[:200]}")
        return reply

    def _ok(self, op: str, what: str) -> dict:
        reply = self._step(op)
        if reply["ret"] < 0:
            raise GuestOSError(f"{what} {self.path}", reply["errno"])
        return reply

    def write(self, data) -> int:
        data = data if isinstance(data, bytes) else str(data).encode()
        return self._ok(agent.step_write(data), "write")["ret"]

    def read(self, n: int) -> bytes:
        return self._ok(agent.step_read(n), "read").get("data", b"")

    def seek(self, offset: int) -> int:
        return self._ok(agent.step_seek(offset), "seek")["ret"]

    def open_again(self) -> None:
        """A second open by the same process while this one is held (GuestOSError if refused)."""
        self._ok(agent.AGAIN, "second open of")

    def open_other(self) -> None:
        """An open by another process while this one is held (GuestOSError if refused)."""
        self._ok(agent.OTHER, "open from another process of")

    def ioctl(self, request: int, payload: bytes = b"", out_len: int = 0, arg: int | None = None) -> tuple[int, bytes]:
        """A raw ioctl on this open file: (return value, output bytes); ``arg``: an integer
        passed by value instead of the payload."""
        reply = self._ok(agent.step_ioctl(request, payload, out_len, arg), "ioctl on")
        return reply["ret"], reply.get("data", b"")

    def close(self) -> None:
        if not self.closed:
            self._step(agent.CLOSE)
            self.closed = True

    def __enter__(self) -> "CharDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Gpio:
    """Lines of the kharness virtual GPIO controller (``[gpio]`` in kharness.toml)."""

    def __init__(self, s: Session):
        self._s = s

    def _step(self, line: int, **kw) -> dict:
        if not self._s.result.gpio:
            raise UsageError("the kharness virtual GPIO controller is not loaded: add [gpio] to kharness.toml")
        if not 0 <= line < self._s.result.gpio["lines"]:
            raise UsageError(f"GPIO line {line} is out of range: khgpio has lines 0 to "
                             f"{self._s.result.gpio['lines'] - 1}")
        r = self._s.run(agent.khgpio_step(line, **kw))
        got = agent.parse_khgpio_step(r.stdout)
        if got is None:
            raise GuestOSError(f"gpio line {line}", checks.errno_of(r.stderr) or r.stderr.strip())
        return got

    @property
    def base(self) -> int:
        return self._s.result.gpio["base"]

    def set(self, line: int, level: int) -> int:
        """Drive input ``line`` to ``level``; the interrupts that raised."""
        return self._step(line, set_level=int(bool(level)))["irqs"]

    def pulse(self, line: int, count: int = 1, interval_ms: float = 5.0) -> int:
        """``count`` low-high-low pulses; the interrupts they raised."""
        return self._step(line, pulses=int(count), interval_ms=interval_ms)["irqs"]

    def get(self, line: int) -> int:
        return self._step(line)["level"]

    def direction(self, line: int) -> str:
        return self._step(line)["direction"]

    def events(self, line: int | None = None) -> list[tuple[int, int, int]]:
        """The output level changes khgpio recorded (the last 256): ``(ns since boot, line,
        level)``, oldest first; only ``line``'s if given. Shows the order and spacing of what the
        module drove, beyond its final level."""
        if not self._s.result.gpio:
            raise UsageError("the kharness virtual GPIO controller is not loaded: add [gpio] to kharness.toml")
        evs = agent.parse_khgpio_events(self._s.run(agent.khgpio_events()).stdout)
        return [e for e in evs if line is None or e[1] == line]


class Dmesg:
    def __init__(self, s: Session):
        self._s = s

    def since(self) -> str:
        """The kernel log since the previous call (the first call: since the module was loaded)."""
        return self._s.run(agent.dmesg_since(agent.SESSION_CURSOR)).stdout


@contextmanager
def session(module_dir, *, target: str = "x86_64", kernel: str | None = None, params=(),
            accel: str = "auto", timeout: float | None = None,
            boot_timeout: float = DEFAULT_BOOT_TIMEOUT, keep: bool = False, guest: str = "busybox",
            guest_packages=(), remote: str | None = None, identity=None,
            known_hosts=None, accept_new_host_key: bool = False, headers=None) -> Iterator[Session]:
    """Build, boot and load ``module_dir`` (as ``kharness run`` does, without its checks) and
    yield a :class:`Session`; on leaving, unload and check the kernel's health. A failure at
    either end raises :class:`RunFailed` with the Result; the guest is always torn down.
    ``guest="debian"``: a Debian distro guest driven over SSH; ``remote="user@host[:port]"``: a
    board over SSH (``identity``, ``known_hosts``, ``accept_new_host_key``, ``headers`` as for `kharness run`)."""
    run = Run(RunOptions(module_dir=Path(module_dir), target=target, kernel=kernel, params=list(params),
                         timeout=timeout, boot_timeout=boot_timeout, accel=accel, keep=keep, guest=guest,
                         guest_packages=tuple(guest_packages), remote=remote,
                         identity=Path(identity) if identity else None,
                         known_hosts=Path(known_hosts) if known_hosts else None,
                         accept_new_host_key=accept_new_host_key,
                         target_given=remote is not None and target != "x86_64",
                         headers=Path(headers) if headers else None))
    start = time.monotonic()
    try:
        with ExitStack() as stack:
            stack.callback(run.close)   # waits for QEMU to be gone
            run.up()
            yield Session(run)
            run.down()
        run.settle(None)
    except (ModuleFailure, KharnessError, Skipped) as e:
        run.settle(e)
        run.result.duration = time.monotonic() - start
        raise (RunSkipped if isinstance(e, Skipped) else RunFailed)(run.result) from None
    run.result.duration = time.monotonic() - start
