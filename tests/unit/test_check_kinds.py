"""Check kinds as a registry: one module per kind, each with only its own fields; a new kind is
one file (proved with a kind written by the test into a package of its own)."""

import dataclasses
import textwrap
from pathlib import Path

import pytest

from kharness import checks
from kharness.checks import kinds
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.errors import UsageError
from kharness.targets import get_target

P = Path("/m/kharness.toml")
KINDS_DIR = Path(kinds.__file__).parent

PROGRAM_KIND = '''
"""``exe``: a program already in the guest, as a later kind might be: this file is all it takes."""
from dataclasses import dataclass
from typing import ClassVar

from kharness.checks.base import STEP_CURSOR, BaseCheck

NAME = "exe"
ORDER = 90
KEYS = frozenset({"program", "args"})


@dataclass(frozen=True, kw_only=True)
class ProgramCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    program: str
    args: tuple = ()


CHECK = ProgramCheck


def parse(table, base, err):
    if not isinstance(table.get("program"), str):
        raise err("'program' (a path in the guest) is required")
    return ProgramCheck(name=table.get("name") or table["program"], **base, program=table["program"],
                        args=tuple(table.get("args", ())))


def command(c, values, target=None):
    return STEP_CURSOR + " ".join([c.program, *c.args])


def judge(c, rc, stdout, stderr, values, target=None):
    return [] if rc == 0 else [f"{c.program} exited with {rc}"]


def texts(c):
    yield "program", c.program


def validate(c, target):
    if target.name == "rpi2":
        raise ValueError("'program' is not built for rpi2")
'''


@pytest.fixture
def registry():
    """The registry as it was, whatever the test registers."""
    saved, found = dict(kinds.REGISTRY), dict(kinds.FOUND)
    yield kinds.REGISTRY
    kinds.REGISTRY.clear()
    kinds.REGISTRY.update(saved)
    kinds.FOUND.clear()
    kinds.FOUND.update(found)


@pytest.fixture
def program_kind(registry, tmp_path, monkeypatch):
    pkg = tmp_path / "morekinds_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "exe.py").write_text(textwrap.dedent(PROGRAM_KIND))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    kinds.discover(importlib.import_module("morekinds_for_test"))
    return kinds.get("exe")


def test_every_module_of_the_kinds_package_is_a_registered_kind():
    files = {p.stem for p in KINDS_DIR.glob("*.py")} - {"__init__"}
    assert kinds.names() == ("run", "proc", "sysfs", "file", "dmesg", "ioctl", "chardev", "gpio", "program")
    assert set(kinds.REGISTRY) == files and not kinds.FOUND
    for name, mod in kinds.REGISTRY.items():
        assert mod.NAME == name == mod.CHECK.kind


def test_each_kind_has_only_its_own_fields():
    base = {f.name for f in dataclasses.fields(BaseCheck)}
    for name, mod in kinds.REGISTRY.items():
        own = {f.name for f in dataclasses.fields(mod.CHECK)} - base
        assert own <= mod.KEYS, (name, own - mod.KEYS)
        assert dataclasses.is_dataclass(mod.CHECK) and issubclass(mod.CHECK, BaseCheck)
    assert not hasattr(checks.parse_check(P, 1, {"run": "true"}), "path")
    assert not hasattr(checks.parse_check(P, 1, {"kind": "proc", "path": "/proc/x"}), "device")
    with pytest.raises(dataclasses.FrozenInstanceError):
        checks.parse_check(P, 1, {"run": "true"}).run = "false"


def test_check_builds_the_kinds_own_class():
    c = checks.Check("r", "ioctl", device="/dev/k", request=1)
    assert type(c) is kinds.REGISTRY["ioctl"].CHECK and c.kind == "ioctl"
    assert checks.Check("r", run="true") == checks.parse_check(P, 1, {"name": "r", "run": "true"})
    with pytest.raises(ValueError, match="unknown check kind 'nope'"):
        checks.Check("x", "nope")


def test_a_new_kind_is_one_file(program_kind):
    assert kinds.names()[-1] == "exe"
    c = checks.parse_check(P, 1, {"kind": "exe", "program": "/kh/prog", "args": ["-v"], "repeat": 2})
    assert (type(c).__name__, c.name, c.repeat) == ("ProgramCheck", "/kh/prog", 2)
    assert checks.command_for(c, {}) == STEP_CURSOR + "/kh/prog -v"
    assert checks.judge(c, 3, "", "", {}) == ["/kh/prog exited with 3"]
    assert checks.judge(c, 0, "", "", {}) == []
    assert checks.Check("p", "exe", program="/x").program == "/x"
    # the common rules and messages hold for it as for the built-in kinds
    with pytest.raises(UsageError, match=r"unknown key\(s\) \['path'\] for a exe check; it takes args, name, "
                                         r"program, repeat, targets, timeout"):
        checks.parse_check(P, 3, {"kind": "exe", "program": "/x", "path": "/y"})
    with pytest.raises(UsageError, match=r"check #3: 'repeat' must be an integer"):
        checks.parse_check(P, 3, {"kind": "exe", "program": "/x", "repeat": 0})
    with pytest.raises(UsageError, match=r"^/m/kharness.toml: check #3: 'program' \(a path in the guest\)"):
        checks.parse_check(P, 3, {"kind": "exe"})
    with pytest.raises(UsageError, match=r"known: run, proc, sysfs, file, dmesg, ioctl, chardev, gpio, program, exe"):
        checks.parse_check(P, 3, {"kind": "prgram"})
    # its placeholders and its validation hook are judged before a run, like every kind's
    with pytest.raises(UsageError, match=r"check #1 \(/kh/\{param.p\}\): 'program' uses \{param.p\}"):
        checks.validate_for_run(P, (checks.parse_check(P, 1, {"kind": "exe", "program": "/kh/{param.p}"}),),
                                get_target("x86_64"), params=set(), gpio_lines=None)
    checks.validate_for_run(P, (c,), get_target("x86_64"), params=set(), gpio_lines=None)
    with pytest.raises(UsageError, match=r"^/m/kharness.toml: check #1 \(/kh/prog\): 'program' is not built for rpi2$"):
        checks.validate_for_run(P, (c,), get_target("rpi2"), params=set(), gpio_lines=None)


def test_registering_refuses_a_half_kind_and_a_second_of_a_name(registry, program_kind):
    from types import SimpleNamespace

    half = SimpleNamespace(NAME="half", ORDER=1, KEYS=frozenset(), CHECK=BaseCheck, parse=None)
    with pytest.raises(TypeError, match="lacks command, judge, texts"):
        kinds.register(half)
    twin = SimpleNamespace(**{a: getattr(program_kind, a) for a in kinds.REQUIRED}, __name__="twin")
    with pytest.raises(TypeError, match="'exe' is defined twice"):
        kinds.register(twin)
    wrong = SimpleNamespace(**{a: getattr(program_kind, a) for a in kinds.REQUIRED}, __name__="wrong")
    wrong.NAME = "other"
    with pytest.raises(TypeError, match="its CHECK class says kind 'exe'"):
        kinds.register(wrong)
    assert "half" not in registry and "other" not in registry


def test_a_kind_that_is_not_a_string_is_an_unknown_kind():
    with pytest.raises(UsageError, match=r"check #3: unknown check kind \['run'\]; known: run, proc"):
        checks.parse_check(P, 3, {"kind": ["run"], "run": "true"})


def test_the_session_builds_its_ioctl_through_the_kind():
    from kharness.checks.kinds import ioctl

    c = ioctl.make("/dev/k", "_IOWR('k', 3, payload)", payload=[["u8", 1], ["u32", 2]], out=[["u8", 0], ["u32", 0]])
    assert isinstance(c, ioctl.IoctlCheck) and c.name == "ioctl /dev/k"
    assert ioctl.command(c, {}, get_target("ppc64")) == \
        STEP_CURSOR + "kh-agent ioctl /dev/k 0xc0086b03 0100000000000002 8"
    with pytest.raises(UsageError, match=r"payload must be a list of \[type, value\] pairs"):
        ioctl.make("/dev/k", 1, payload=[["u8"]])


def test_a_run_imports_only_the_kinds_its_checks_use():
    """Importing every kind costs a frozen dataclass each at start-up: a kind's module is imported
    when a check of that kind is first met (a fresh interpreter, so no earlier test has)."""
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from kharness import checks; "
            "c = checks.parse_check(Path('k.toml'), 1, {'kind': 'proc', 'path': '/proc/x'}); "
            "checks.judge(c, 0, '', '', {}); "
            "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('kharness.checks.kinds.')))")
    root = Path(checks.__file__).parents[2]            # this tree's kharness, not an installed one
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         timeout=60).stdout
    assert out.strip() == "['file', 'proc', 'run']"      # proc reuses file's code, which reuses run's


def test_a_kind_file_must_be_named_for_its_kind(registry, tmp_path, monkeypatch):
    import importlib

    pkg = tmp_path / "misnamed_kinds_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "prog.py").write_text(textwrap.dedent(PROGRAM_KIND))
    monkeypatch.syspath_prepend(str(tmp_path))
    kinds.discover(importlib.import_module("misnamed_kinds_for_test"))
    with pytest.raises(TypeError, match=r"misnamed_kinds_for_test.prog must define the kind it is named for: "
                                        r"NAME = 'prog'"):
        kinds.get("prog")
