"""Files that stay the same run after run (the kernel's own modules a module needs, its programs)
are sent to a restored guest once: that run saves the guest with them as a snapshot of its own
(kharness.vm.snapshot.save_derived), and the next runs restore it and send only the module under
test. Real boots on x86_64 (a virtio console: the files ride along, kharness.runner.image)."""

from __future__ import annotations

import shutil
import uuid

import pytest

from conftest import EXAMPLES, require_series

pytestmark = pytest.mark.vm

PROGRAM = """#include <stdio.h>
int main(void)
{
\tputs("%s");
\treturn 0;
}
"""


def test_a_program_is_sent_once_then_restored_with_the_guest(kharness, tmp_path):
    require_series("x86_64", "6.1")
    d = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", d)
    token = uuid.uuid4().hex            # new content: no run has saved a guest with it yet
    (d / "test").mkdir()
    (d / "test" / "hi.c").write_text(PROGRAM % token)
    with open(d / "kharness.toml", "a") as f:
        f.write(f'\n[[check]]\nname = "its own program"\nkind = "program"\nsource = "test/hi.c"\n'
                f"expect_stdout = '\\A{token}\\n\\Z'\n")
    first = kharness("run", str(d))
    assert first.rc == 0, first.result and first.result["summary"]
    assert first.result["boot_mode"] == "snapshot"
    assert "saved with the run's unchanging files" in first.result["boot_mode_note"]
    # Edit the module (it is rebuilt and sent again), not the program: the saved guest is used.
    c = d / "hello.c"
    c.write_text(c.read_text() + "\n/* edited */\n")
    again = kharness("run", str(d))
    assert again.rc == 0, again.result and again.result["summary"]
    assert again.result["boot_mode"] == "snapshot"
    note = again.result["boot_mode_note"]
    assert "+" in note and "with the run's unchanging files" in note and "saved" not in note
    assert "+" in again.result["image"]["snapshot"]
    check = next(x for x in again.result["checks"] if x["name"] == "its own program")
    assert check["status"] == "pass" and check["stdout"] == token + "\n"
    assert next(x for x in again.result["checks"] if x["name"] != "its own program")["status"] == "pass"
