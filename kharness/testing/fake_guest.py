"""A guest without a kernel: recorded replies and console text, scripted per command.

Implements the :class:`kharness.guest.Guest` protocol (and the optional console side channel and
QEMU lifecycle, so ``Run(opts, guest_factory=...)`` can boot it), the way labgrid's fake drivers
stand in for hardware: a verdict test scripts what the guest answers and judges the runner's
verdict in milliseconds.

What it emulates by itself, as kh-agent and busybox do (docs/protocol.md): ``kh-agent health``,
``dmesg-since`` and ``restored``, ``insmod``/``rmmod`` (busybox's or kh-agent's: the list of
loaded modules), file delivery (``put_file``), ``true``. Everything else needs a :class:`Rule`;
an unscripted command answers exit 127, so a test never passes by accident. A command is matched
whole first, then split at ``;`` and ``&&`` (outside single quotes) and each simple command is
matched on its own::

    guest = FakeGuest([Rule(r"^insmod /kh/bad\\.ko", rc=1, stderr="insmod: ... No such device\\n")])
    guest = FakeGuest([Rule(r"^insmod", raises=CommandTimeout("insmod did not finish"))],
                      sysrq_text=recorded_backtrace, module_states={"bad": "coming"})
"""

from __future__ import annotations

import gzip
import re
import stat
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from kharness.agent_client import AgentCalls, HealthLook, format_health
from kharness.image.cpio import read_newc
from kharness.vm.channel import CommandResult
from kharness.vm.errors import CommandTimeout, GuestDied, GuestError

_SPLIT_RE = re.compile(r"\s*(&&|;)\s*(?=(?:[^']*'[^']*')*[^']*$)")   # outside single quotes
_QUIET_RE = re.compile(r"\s*(?:2>&1|2>\s*/dev/null|>\s*/dev/null)")
_LEVEL_RE = re.compile(r"^<\d+>")


@dataclass
class Rule:
    """The answer to a command that matches ``pattern`` (``re.search``)."""
    pattern: str
    stdout: str = ""
    stderr: str = ""
    rc: int = 0
    raises: GuestError | None = None    # CommandTimeout (a hang), GuestDied (a panic, a dead QEMU)
    kernel_log: str = ""                # printed by the kernel meanwhile (raw or console lines)
    taint: int = 0                      # OR-ed into the kernel's taint
    loads: str | None = None            # the module this command leaves loaded
    unloads: str | None = None          # the module this command leaves unloaded
    times: int | None = None            # matches this often, then no more (None: always)
    used: int = field(default=0, init=False)

    def matches(self, command: str) -> bool:
        return (self.times is None or self.used < self.times) and re.search(self.pattern, command) is not None


class FakeGuest(AgentCalls):
    def __init__(self, rules: list[Rule] | tuple[Rule, ...] = (), *, kernel_log: str = "", console: str = "",
                 release: str = "6.1.0-fake", char_devices: dict[str, str] | None = None,
                 module_states: dict[str, str] | None = None, sysrq_text: str = "", taint: int = 0):
        self.rules = list(rules)
        self.release: str | None = None
        self.boot_seconds: float | None = None
        self.argv = ["fake-guest"]
        self.commands: list[str] = []         # every command run, in order
        self.files: dict[str, bytes] = {}     # what was written to the guest
        self.modes: dict[str, int] = {}       # the modes of the files a bundle unpacked
        self._stdin = b""                     # the stdin of the command being run
        self._cwd = "/"
        self.modules: list[str] = []
        self.char_devices = dict(char_devices or {})
        self.module_states = dict(module_states or {})
        self.sysrq_text = sysrq_text
        self.sysrqs: list[str] = []          # the sysrq keys asked for, in order
        self.taint = taint
        self.closed = False
        self._release = release
        self._log: list[str] = []
        self._cursors: dict[str, int] = {}
        self._console = console
        self._broken: GuestError | None = None   # once hung or dead, every command fails alike
        self.print_kernel(kernel_log)

    # -- what a test does to the kernel ------------------------------------------------------------
    def print_kernel(self, text: str) -> None:
        """The kernel logs ``text``: it reaches the log (kh-agent dmesg-since) and the console."""
        for line in text.splitlines():
            self._log.append(line if _LEVEL_RE.match(line) else f"<6>{line}")
            self._console += _LEVEL_RE.sub("", line) + "\n"

    # -- Bootable ----------------------------------------------------------------------------------
    def start(self) -> None:
        pass

    def wait_ready(self, timeout: float) -> str:
        self.release, self.boot_seconds = self._release, 0.0
        return self._release

    def wait_restored(self, timeout: float, release: str) -> None:
        self.release, self.boot_seconds = release, 0.0

    # -- Guest -------------------------------------------------------------------------------------
    def run(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        self.commands.append(command)
        self._stdin = stdin
        if self.closed:
            raise GuestDied("the guest was closed", self._console)
        if self._broken is not None:
            raise self._broken
        rule = self._rule(command)
        if rule is not None:
            out, err, rc = self._apply(rule)
        else:
            out, err, rc = self._script(command)
        return CommandResult(command, rc, out, err, 0.001, len(out.encode()), len(err.encode()))

    def console_text(self, last: int = 32768) -> str:
        return self._console[-last:]

    def close(self) -> None:
        self.closed = True

    # -- ConsoleSideChannel --------------------------------------------------------------------------
    def sysrq(self, keys: str, settle: float = 1.0) -> str:
        self.sysrqs.append(keys)
        self._console += self.sysrq_text
        return self.sysrq_text

    def console_mark(self) -> int:
        return len(self._console)

    def console_since(self, mark: int) -> str:
        return self._console[mark:]

    def module_state(self, name: str, timeout: float = 5.0) -> str | None:
        return self.module_states.get(name, "live" if name in self.modules else "gone")

    # -- the emulation -------------------------------------------------------------------------------
    def _rule(self, command: str) -> Rule | None:
        return next((r for r in self.rules if r.matches(command)), None)

    def _apply(self, rule: Rule) -> tuple[str, str, int]:
        rule.used += 1
        self.print_kernel(rule.kernel_log)
        self.taint |= rule.taint
        if rule.loads and rule.loads not in self.modules:
            self.modules.append(rule.loads)
        if rule.unloads in self.modules:
            self.modules.remove(rule.unloads)
        if rule.raises is not None:
            if not rule.raises.console_tail:
                rule.raises.console_tail = self._console
            if isinstance(rule.raises, (CommandTimeout, GuestDied)):
                self._broken = rule.raises
            raise rule.raises
        return rule.stdout, rule.stderr, rule.rc

    def _script(self, command: str) -> tuple[str, str, int]:
        """A list of simple commands joined by ``;`` and ``&&``, as sh runs it."""
        parts = _SPLIT_RE.split(command.strip())
        out, err, rc, skip = [], [], 0, False
        for i in range(0, len(parts), 2):
            sep_before = parts[i - 1] if i else ";"
            if sep_before == ";":
                skip = False
            if skip:
                continue
            simple = parts[i]
            quiet = re.search(r"(?<!2)>\s*/dev/null", simple) is not None
            rule = self._rule(simple)
            o, e, rc = self._apply(rule) if rule else self._one(_QUIET_RE.sub("", simple).strip())
            if not quiet:
                out.append(o)
            err.append(e)
            skip = rc != 0   # "a && b": b only if a succeeded
        return "".join(out), "".join(err), rc

    def _since(self, cursor: str) -> str:
        new = self._log[self._cursors.get(cursor, 0):]
        self._cursors[cursor] = len(self._log)
        return "".join(line + "\n" for line in new)

    def _one(self, simple: str) -> tuple[str, str, int]:
        try:
            argv = shlex.split(simple)
        except ValueError:
            argv = simple.split()
        if not argv or argv == ["true"]:
            return "", "", 0
        if argv[:2] == ["kh-agent", "dmesg-since"]:
            return self._since(argv[2] if len(argv) > 2 else "health"), "", 0
        if argv[:2] == ["kh-agent", "health"]:
            look = HealthLook(self.taint, self._since("health"), frozenset(self.modules), self.char_devices)
            return format_health(look), "", 0
        if argv[:2] == ["kh-agent", "restored"]:
            return "", "", 0
        if argv[:2] in (["kh-agent", "insmod"], ["kh-agent", "rmmod"]):
            argv = argv[1:]   # kh-agent's, with busybox's messages
        if argv[0] == "insmod" and len(argv) > 1:
            # As the kernel names it: snd-dummy.ko.xz is the module snd_dummy.
            name = PurePosixPath(argv[1]).name.split(".ko", 1)[0].replace("-", "_")
            if name in self.modules:
                return "", f"insmod: can't insert '{argv[1]}': File exists\n", 1
            self.modules.append(name)
            return "", "", 0
        if argv[0] == "rmmod" and len(argv) > 1:
            argv[1] = argv[1].replace("-", "_")
            if argv[1] not in self.modules:
                return "", f"rmmod: can't unload module '{argv[1]}': No such file or directory\n", 1
            self.modules.remove(argv[1])
            return "", "", 0
        return self._delivery(simple)

    def _delivery(self, simple: str) -> tuple[str, str, int]:
        """agent_client's file delivery (put_file_command, unpack_command's tar), from the stdin."""
        if re.fullmatch(r"mkdir -p \S+", simple):
            return "", "", 0
        m = re.fullmatch(r"gunzip > (\S+)", simple)
        if m:
            self.files[shlex.split(m.group(1))[0]] = gzip.decompress(self._stdin)
            return "", "", 0
        m = re.fullmatch(r"cd (\S+)", simple)
        if m:
            self._cwd = shlex.split(m.group(1))[0]
            return "", "", 0
        m = re.fullmatch(r"gunzip \| cpio -idmu|kh-agent unpack", simple)
        if m:
            archive = gzip.decompress(self._stdin) if simple.startswith("gunzip") else self._stdin
            for name, mode, data in read_newc(archive):
                if stat.S_ISREG(mode):
                    self.files[f"{self._cwd}/{name}"] = data
                    self.modes[f"{self._cwd}/{name}"] = stat.S_IMODE(mode)
            return "", "", 0
        if re.fullmatch(r"rm -f \S+", simple):
            return "", "", 0
        return "", f"sh: no rule in the fake guest for: {simple[:200]}\n", 127
