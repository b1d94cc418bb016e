"""The shape of kharness, enforced: the layer contracts in .importlinter hold (import-linter, run
here so `make test` checks them), and no module imports another module's ``_private`` name."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.argv[0] = 'lint-imports'; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the kharness package under ``root`` (PYTHONPATH: not an installed copy)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", str(root / ".importlinter")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    p = lint_imports(ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    shutil.copytree(ROOT / "kharness", tmp_path / "kharness", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    with open(tmp_path / "kharness" / "debian" / "mirror.py", "a") as f:
        f.write("\n\ndef _upward():\n    from kharness.runner import run   # the archive reaching up\n    return run\n")
    p = lint_imports(tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "kharness.debian is not allowed to import kharness.runner" in p.stdout


# --- no module imports another module's _private name ------------------------------------------

def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_uses(root: Path, package: str = "kharness") -> list[str]:
    """``file:line: what`` for every ``from m import _x`` and ``m._x`` (``m`` a module alias) that
    reaches into another module of ``package``. Dunders are not private."""
    modules = {_module_name(root, p): p for p in (root / package).rglob("*.py")}
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for me, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, str] = {}     # local name -> the kharness module it is
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == package:
                for a in node.names:
                    whole = f"{node.module}.{a.name}"
                    if whole in modules:
                        aliases[a.asname or a.name] = whole
                    elif private(a.name) and node.module != me:
                        found.append(f"{path.relative_to(root)}:{node.lineno}: from {node.module} import {a.name}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == package:   # `import a.b as c` binds c; `import a.b`, a
                        aliases[a.asname or package] = a.name if a.asname else package
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and private(node.attr)):
                continue
            chain, v = [], node.value
            while isinstance(v, ast.Attribute):
                chain.append(v.attr)
                v = v.value
            if isinstance(v, ast.Name) and v.id in aliases:
                target = ".".join([aliases[v.id], *reversed(chain)])
                if target in modules and target != me:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {target}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    assert private_uses(ROOT) == []


def test_the_private_name_check_finds_both_forms(tmp_path):
    pkg = tmp_path / "kharness"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "lib.py").write_text("_hidden = 1\nshown = 2\n\ndef _own():\n    return _hidden\n")
    (pkg / "user.py").write_text(
        "from kharness.sub.lib import _hidden, shown\n"
        "from kharness.sub import lib\n"
        "import kharness.sub.lib\n"
        "import kharness.sub.lib as L\n"
        "x = lib._own() + lib.__name__.count('x') + kharness.sub.lib._hidden + L._hidden\n"
        "class C:\n    def f(self):\n        return self._private   # an object's own: not a module's\n")
    assert sorted(private_uses(tmp_path)) == [
        "kharness/user.py:1: from kharness.sub.lib import _hidden",
        "kharness/user.py:5: kharness.sub.lib._hidden",     # kharness.sub.lib._hidden
        "kharness/user.py:5: kharness.sub.lib._hidden",     # L._hidden
        "kharness/user.py:5: kharness.sub.lib._own",
    ]
