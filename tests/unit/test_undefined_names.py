"""No name in kharness, bench or the tests is used without being defined (pyflakes). A typo on a
path that only one target takes (an SD card's first boot, say) is otherwise found by the long grids
only, as a NameError reported as an internal error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What pyflakes says that is a defect, not style (unused imports and the like are left to review).
DEFECTS = ("undefined name", "may be undefined", "undefined local variable", "referenced before assignment")


def undefined_names(*paths: Path) -> list[str]:
    p = subprocess.run([sys.executable, "-m", "pyflakes", *map(str, paths)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr
    return [line for line in (p.stdout + p.stderr).splitlines() if any(d in line for d in DEFECTS)]


def test_no_name_is_used_that_is_never_defined():
    assert undefined_names(ROOT / "kharness", ROOT / "bench", ROOT / "tests") == []


def test_an_undefined_name_is_found(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def first_boot(disk):\n    if base_format == 'raw':\n        return disk\n")
    assert [line for line in undefined_names(bad) if "undefined name 'base_format'" in line]
