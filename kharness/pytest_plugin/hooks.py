"""pytest hooks: options, markers, parametrisation, per-test health, reports."""

from __future__ import annotations

import pytest

from kharness.pytest_plugin.cells import cells, split


def pytest_addoption(parser) -> None:
    g = parser.getgroup("kharness", "kharness: kernel modules in QEMU guests")
    g.addoption("--kh-target", action="append", default=None,
                help="target board(s), repeatable or comma-separated (default x86_64)")
    g.addoption("--kh-kernel", action="append", default=None,
                help="kernel series or release(s), repeatable or comma-separated (default: the target's)")
    g.addoption("--kh-module", default=None, help="the module directory (default: the test file's directory)")
    g.addoption("--kh-accel", default="auto", help="auto, kvm or tcg")
    g.addoption("--kh-keep-logs", default=None, metavar="DIR",
                help="write each guest's result JSON, console and dmesg logs under DIR")
    g.addoption("--kh-timeout", type=float, default=None, help="per guest step timeout (seconds)")
    g.addoption("--kh-guest", default="busybox", help="busybox (default) or debian: a Debian guest driven over SSH")
    g.addoption("--kh-remote", default=None, metavar="USER@HOST[:PORT]",
                help="test on this board over SSH instead of a guest (its kernel; --kh-target must fit it)")
    g.addoption("--kh-identity", default=None, metavar="KEY", help="SSH private key for --kh-remote")
    g.addoption("--kh-headers", default=None, metavar="DIR",
                help="with --kh-remote: build on this host against this kbuild tree of the board's kernel")
    parser.addini("kh_module", "the module directory, relative to the rootdir", default="")


def pytest_configure(config) -> None:
    for line in ("kh_targets(*names): run this test only on these targets",
                 "kh_kernels(*series): run this test only with these kernels",
                 "kh_fresh: give this test a guest of its own instead of the module's shared one"):
        config.addinivalue_line("markers", line)


def _marker_values(metafunc, name: str) -> list[str] | None:
    vals: list[str] = []
    for m in metafunc.definition.iter_markers(name):
        vals += [str(a) for a in m.args]
    return vals or None


def pytest_generate_tests(metafunc) -> None:
    # kh_cell is in the closure of every kharness fixture (and of nothing else).
    if "kh_cell" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    targets = split(opt("--kh-target")) or ["x86_64"]
    kernels = split(opt("--kh-kernel"))
    cs = cells(targets, kernels, _marker_values(metafunc, "kh_targets"), _marker_values(metafunc, "kh_kernels"))
    if not cs:
        metafunc.parametrize("kh_cell", [pytest.param(None, marks=pytest.mark.skip(
            reason="no selected target x kernel matches this test's kh_targets/kh_kernels markers"))],
            ids=["no-cell"], scope="module")
        return
    # Module scope: the tests of one file share a guest per cell (kh_fresh asks for its own).
    metafunc.parametrize("kh_cell", cs, ids=[c.id for c in cs], scope="module")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A kernel report (oops, WARN, BUG, taint...) during a test fails that test."""
    res = yield
    session = getattr(item, "_kh_session", None)
    if session is not None:
        bad = session.health()
        if bad:
            f = bad[0]
            pytest.fail(f"kernel reported {f.kind} during the test: {f.summary}\n{f.report[:4000]}",
                        pytrace=False)
    return res


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test carries the guest's kernel log and console in its failure report: on the
    terminal and in the JUnit XML <failure> body, where CI shows it (custom report sections would
    reach only the terminal)."""
    report = yield
    session = getattr(item, "_kh_session", None)
    if session is not None and report.failed:
        r = session.result
        attach = [("kharness dmesg", "".join(r.dmesg.values())[-20000:]),
                  ("kharness console", session.console_tail()[-20000:] or "(nothing on the console yet)")]
        for name, text in attach:
            if hasattr(report.longrepr, "addsection"):
                report.longrepr.addsection(name, text)
            elif isinstance(report.longrepr, str):
                report.longrepr += f"\n{'-' * 20} {name} {'-' * 20}\n{text}"
            else:
                report.sections.append((name, text))
    return report
