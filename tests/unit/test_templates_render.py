"""Module templates: every template renders a complete directory; names and texts are validated
so nothing typed by a user can inject into the generated C, TOML or Makefile."""

from __future__ import annotations

import tomllib

import pytest

from kharness.build.makefile import plan_build
from kharness.errors import UsageError
from kharness.modconfig import load_config
from kharness.templates import TEMPLATES, create, render


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_makes_a_complete_module(tmp_path, template):
    files = create(template, "mymod", tmp_path / "m", author="A. Author <a@example.com>", description="Demo")
    names = {f.name for f in files}
    assert {"Makefile", "kharness.toml", "README.md"} <= names
    assert any(n.endswith(".c") for n in names)
    text = "".join(f.read_text() for f in files)
    assert "{{" not in text and "{%" not in text
    assert 'MODULE_LICENSE("GPL")' in text and 'MODULE_AUTHOR("A. Author <a@example.com>")' in text
    cfg = load_config(tmp_path / "m")          # the checks parse
    assert cfg.checks
    tomllib.loads((tmp_path / "m" / "kharness.toml").read_text())
    mk = (tmp_path / "m" / "Makefile").read_text()
    assert "obj-m += mymod.o" in mk and "KDIR ?=" in mk and "M=$(CURDIR)" in mk and "clean:" in mk
    plan = plan_build(tmp_path / "m")          # kharness uses the module's own Makefile
    assert plan.own_rules is not None


def test_multifile_lists_its_objects(tmp_path):
    files = render("multifile", "mf", "a", "d")
    assert "mf-objs := mf_main.o mf_util.o" in files["Makefile"]
    assert {"mf_main.c", "mf_util.c", "mf.h"} <= set(files)


@pytest.mark.parametrize("name", ["9lives", "My-Mod", "a b", "x" * 56, "int", "", "mod;rm", "é"])
def test_bad_names(name):
    with pytest.raises(UsageError, match="invalid module name"):
        render("hello", name, "a", "d")


@pytest.mark.parametrize("text", ['say "hi"', "back\\slash", "a */ b", "new\nline", "$(shell id)", "`id`"])
def test_texts_cannot_inject(text):
    with pytest.raises(UsageError, match="cannot go into the generated files"):
        render("hello", "ok", text, "d")
    with pytest.raises(UsageError, match="cannot go into the generated files"):
        render("hello", "ok", "a", text)


def test_unknown_template_and_no_clobbering(tmp_path):
    with pytest.raises(UsageError, match="unknown template 'nope'"):
        render("nope", "m", "a", "d")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "keep.c").write_text("x")
    with pytest.raises(UsageError, match="already exists and is not empty"):
        create("hello", "m", tmp_path / "m", author="a", description="d")
    create("hello", "m", tmp_path / "m", author="a", description="d", force=True)
    assert (tmp_path / "m" / "keep.c").read_text() == "x"
