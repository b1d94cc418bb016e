"""Fixtures: a booted guest with the module loaded, shared by a test file per target x kernel
(``@pytest.mark.kh_fresh`` for a guest of one's own), and the Python API's parts."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from kharness.pytest_plugin.cells import Cell
from kharness.result.writers import write_json
from kharness.session import RunFailed, RunSkipped, Session, session

_seq = itertools.count(1)


def _module_dir(request) -> Path:
    cfg = request.config
    opt = cfg.getoption("--kh-module") or cfg.getini("kh_module")
    if opt:
        p = Path(opt)
        return p if p.is_absolute() else Path(cfg.rootpath) / p
    here = Path(request.path).parent
    # The test file's directory when it holds the module, else its parent (tests/ beside the sources).
    if any(here.glob("*.c")) or (here / "Kbuild").exists() or (here / "kharness.toml").exists():
        return here
    return here.parent


def _keep(request, cell: Cell, s_result, console: str) -> None:
    d = request.config.getoption("--kh-keep-logs")
    if not d:
        return
    out = Path(d) / f"{cell.id}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}-{next(_seq)}"
    out.mkdir(parents=True, exist_ok=True)
    write_json(s_result, out / "result.json")
    (out / "dmesg.log").write_text("".join(s_result.dmesg.values()))
    (out / "console.log").write_text(console)


def _guest(request, cell: Cell):
    """Generator: open a session for ``cell``, yield it, close it; failures fail the tests."""
    if cell is None:
        pytest.skip("no target x kernel selected")
    cfg = request.config
    remote = cfg.getoption("--kh-remote")
    cm = session(_module_dir(request), target=cell.target, kernel=None if remote else cell.kernel,
                 accel=cfg.getoption("--kh-accel"), timeout=cfg.getoption("--kh-timeout"),
                 guest=cfg.getoption("--kh-guest"), remote=remote, identity=cfg.getoption("--kh-identity"),
                 headers=cfg.getoption("--kh-headers"))
    try:
        s = cm.__enter__()
    except RunSkipped as e:   # the module's own files exclude this cell: no failure
        pytest.skip(f"{cell.id}: {e.result.summary}")
    except RunFailed as e:
        _keep(request, cell, e.result, e.result.artifacts.get("console_log_tail", ""))
        pytest.fail(f"{cell.id}: {e.result.status}: {e.result.summary}", pytrace=False)
    console = ""
    try:
        yield s
        console = s.console_tail()
        cm.__exit__(None, None, None)
    except RunFailed as e:
        _keep(request, cell, e.result, console)
        pytest.fail(f"{cell.id}: at unload: {e.result.summary}", pytrace=False)
    except BaseException as e:  # teardown of a test that raised: still tear the guest down
        cm.__exit__(type(e), e, e.__traceback__)
        raise
    _keep(request, cell, s.result, console)


@pytest.fixture(scope="module")
def kh_session_shared(request, kh_cell):
    """One guest per test file and cell, the module loaded; unloaded and health-checked last."""
    yield from _guest(request, kh_cell)


@pytest.fixture
def kh_guest(request, kh_cell) -> Session:
    """The booted guest (a kharness.session.Session) with the module loaded."""
    if request.node.get_closest_marker("kh_fresh"):
        gen = _guest(request, kh_cell)
        s = next(gen)
    else:
        gen, s = None, request.getfixturevalue("kh_session_shared")
    request.node._kh_session = s
    r = s.result
    for k, v in (("kh_target", r.target), ("kh_kernel", r.kernel.release if r.kernel else ""),
                 ("kh_accelerator", r.accelerator or "")):
        request.node.user_properties.append((k, v))
    yield s
    request.node._kh_session = None
    if gen is not None:
        for _ in gen:  # runs the teardown (unload + health)
            pass


@dataclass(frozen=True)
class LoadedModule:
    name: str
    params: dict
    modinfo: dict
    session: Session


@pytest.fixture
def kh_module(kh_guest) -> LoadedModule:
    """The module under test, built and loaded in ``kh_guest``."""
    r = kh_guest.result
    first = r.modules[0] if r.modules else {"name": "", "modinfo": {}}
    return LoadedModule(first["name"], r.params.get(first["name"], {}), first.get("modinfo", {}), kh_guest)


@pytest.fixture
def proc(kh_guest):
    return kh_guest.proc


@pytest.fixture
def sysfs(kh_guest):
    return kh_guest.sysfs


@pytest.fixture
def chardev(kh_guest):
    return kh_guest.chardev


@pytest.fixture
def ioctl(kh_guest):
    return kh_guest.ioctl


@pytest.fixture
def program(kh_guest):
    """``program("test.c", args=[...], stdin=..., timeout=...)``: the module's own C program,
    compiled for the target and run in the guest (see Session.program)."""
    return kh_guest.program


@pytest.fixture
def gpio(kh_guest):
    return kh_guest.gpio


@pytest.fixture
def dmesg(kh_guest):
    return kh_guest.dmesg
