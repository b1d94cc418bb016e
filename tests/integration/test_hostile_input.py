"""Input that once became syntax (issue 13, items 10 and 12), run for real on x86_64 (6.1):

* a module parameter holding spaces and regex syntax reaches the kernel exactly, and checks that
  name it by {param.NAME} match it literally;
* a value the kernel's parameter parser cannot take as one value is refused before the build;
* a module directory whose path has spaces builds (it used to end in "build failed");
* a directory named to run make code (``hello<newline>$(shell touch PWNED)``) runs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES

pytestmark = pytest.mark.vm

VALUE = "hi (there 1.5"     # spaces for insmod, "(" for a regex compiler, "." for a false match
HOSTILE_NAME = "hello\n$(shell touch PWNED)"

CONFIG = """\
[module]
name = "hello"
params = { myint = 5, mystring = "%s" }

[build]
ccflags = ['-DKH_GREETING="a b"']        # one argument with a space: quoted for kbuild's shell
include_dirs = ["../include"]            # through a parent directory with a space in its name

[load]
expect_dmesg = 'mystring is {param.mystring}$'

[[check]]
name = "sysfs shows exactly the value"
kind = "sysfs"
path = "/sys/module/hello/parameters/mystring"
expect = "{param.mystring}"

[[check]]
name = "and a regex naming it matches it literally"
run = "cat /sys/module/hello/parameters/mystring"
expect_stdout = '\\A{param.mystring}\\n\\Z'
"""


def _hello_copy(parent: Path, name: str, config: str | None = None) -> Path:
    d = parent / name
    d.mkdir(parents=True)
    shutil.copy(EXAMPLES / "hello" / "hello.c", d / "hello.c")
    shutil.copy(EXAMPLES / "hello" / "kharness.toml", d / "kharness.toml")
    if config is not None:
        (d / "kharness.toml").write_text(config)
    return d


def _cache() -> Path:
    from kharness.paths import cache_dir
    return cache_dir()


def test_a_parameter_with_spaces_and_regex_syntax_in_a_directory_with_spaces(kharness, tmp_path):
    top = tmp_path / "my modules"
    (top / "include").mkdir(parents=True)
    d = _hello_copy(top, "hello world", CONFIG % VALUE)
    o = kharness("run", str(d), "--kernel", "6.1")
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert o.result["params"]["hello"]["mystring"] == VALUE
    assert [(c["name"], c["status"]) for c in o.result["checks"]] == [
        ("sysfs shows exactly the value", "pass"), ("and a regex naming it matches it literally", "pass")]
    assert o.result["checks"][0]["stdout"] == VALUE + "\n"
    assert f"mystring is {VALUE}" in o.result["dmesg"]["load"]


def test_a_value_the_kernel_cannot_take_is_refused_before_the_build(kharness, tmp_path):
    name = f"refused_{os.getpid()}_{tmp_path.name}"[:60]
    d = _hello_copy(tmp_path, name)
    o = kharness("run", str(d), "--kernel", "6.1", "--param", 'mystring=x" other=1 "')
    assert o.rc == 2, (o.stdout, o.stderr)
    assert "parameter mystring" in o.stderr and "double quote" in o.stderr, o.stderr
    # nothing was built for it
    assert not [p for p in (_cache() / "builds").glob(f"{name}*")]


def test_a_directory_named_to_run_make_code_runs_nothing(kharness, tmp_path):
    d = _hello_copy(tmp_path, HOSTILE_NAME)
    try:
        o = kharness("run", str(d), "--kernel", "6.1")
    finally:
        # make runs $(shell ...) in its working directory: the kernel build tree or the shadow
        # tree, both in the (shared) cache. Find it, and never leave it there.
        found = subprocess.run(["find", str(tmp_path), str(_cache()), "-name", "PWNED"],
                               capture_output=True, text=True, timeout=300).stdout.split()
        for f in found:
            os.unlink(f)
    assert found == []
    # The name is harmless: the module was built (in a shadow tree of a plain name) and passed.
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert [c["status"] for c in o.result["checks"]] == ["pass"] * 3
    cmd = o.result["build"]["command"]       # M= names the shadow module directory, by a plain name
    assert " M=/" in cmd and "\n" not in cmd and "$(shell" not in cmd, cmd
