"""Unit tests for kharness.build.makefile: what a module directory builds, and the generated Makefile."""

from __future__ import annotations

from pathlib import Path

import pytest

from kharness import __version__
from kharness.build.makefile import BuildPlan, ModuleSpec, check_name, own_rules, plan_build, render_makefile
from kharness.errors import UsageError

ROOT_C = """\
#include <linux/module.h>
static int __init m_init(void) { return 0; }
static void __exit m_exit(void) { }
module_init(m_init);
module_exit(m_exit);
MODULE_LICENSE("GPL");
"""
HELPER_C = "int helper(int x) { return x + 1; }\n"
DRIVER_C = "#include <linux/platform_device.h>\nstatic struct platform_driver d;\nmodule_platform_driver(d);\n"


def _dir(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    d = tmp_path / name
    d.mkdir(parents=True)
    for n, text in files.items():
        (d / n).parent.mkdir(parents=True, exist_ok=True)
        (d / n).write_text(text)
    return d


def test_single_file(tmp_path):
    d = _dir(tmp_path, "hello_dir", {"hello.c": ROOT_C})
    plan = plan_build(d)
    assert plan == BuildPlan(d.resolve(), None, (ModuleSpec("hello"),), ())
    assert plan.generated is True


def test_single_file_without_module_init(tmp_path):
    d = _dir(tmp_path, "x", {"lonely.c": HELPER_C})
    assert plan_build(d).modules == (ModuleSpec("lonely"),)


def test_root_plus_helper_is_one_module_named_after_dir(tmp_path):
    d = _dir(tmp_path, "multi", {"main.c": ROOT_C, "util.c": HELPER_C, "util.h": "int helper(int);\n"})
    assert plan_build(d).modules == (ModuleSpec("multi", ("main.o", "util.o")),)


def test_two_roots_are_two_modules(tmp_path):
    d = _dir(tmp_path, "twomods", {"b.c": ROOT_C, "a.c": ROOT_C})
    assert plan_build(d).modules == (ModuleSpec("a"), ModuleSpec("b"))


def test_platform_driver_macro_counts_as_root(tmp_path):
    d = _dir(tmp_path, "drv", {"a.c": ROOT_C, "b.c": DRIVER_C})
    assert plan_build(d).modules == (ModuleSpec("a"), ModuleSpec("b"))


def test_several_roots_plus_helper(tmp_path):
    d = _dir(tmp_path, "mixed", {"a.c": ROOT_C, "b.c": ROOT_C, "common.c": HELPER_C})
    with pytest.raises(UsageError) as ei:
        plan_build(d)
    assert ei.value.message == f"{d.resolve()} holds several modules (a, b) and helper files (common)"
    assert ei.value.hint == "write a Kbuild file, or set [module] name and sources in kharness.toml"


def test_no_root_several_files_is_one_module(tmp_path):
    d = _dir(tmp_path, "lib_only", {"x.c": HELPER_C, "y.c": HELPER_C})
    assert plan_build(d).modules == (ModuleSpec("lib_only", ("x.o", "y.o")),)


def test_commented_out_module_init_not_at_line_start_is_ignored(tmp_path):
    d = _dir(tmp_path, "cm", {"a.c": ROOT_C, "b.c": HELPER_C + "/* see module_init(x) */\n"})
    assert plan_build(d).modules == (ModuleSpec("cm", ("a.o", "b.o")),)


def test_own_makefile_with_obj_m(tmp_path):
    d = _dir(tmp_path, "own", {"foo.c": ROOT_C, "Makefile": "obj-m += foo.o\n\nall:\n\t$(MAKE) -C $(KDIR) M=$(PWD)\n"})
    plan = plan_build(d)
    assert plan.own_rules == d.resolve() / "Makefile"
    assert plan.modules == ()
    assert plan.generated is False


@pytest.mark.parametrize("line", ["obj-m := foo.o", "  obj-m=foo.o", "obj-$(CONFIG_FOO) += foo.o"])
def test_own_rules_variants(tmp_path, line):
    d = _dir(tmp_path, "own", {"foo.c": ROOT_C, "makefile": f"# x\n{line}\n"})
    assert own_rules(d) == d / "makefile"


def test_makefile_without_obj_m_is_not_own_rules(tmp_path):
    d = _dir(tmp_path, "tool", {"mod.c": ROOT_C,
                                "Makefile": "CC ?= gcc\nuser_tool: user_tool.o\n\t$(CC) -o $@ $^\n# obj-m is in Kbuild\n"})
    plan = plan_build(d)
    assert plan.own_rules is None
    assert plan.modules == (ModuleSpec("mod"),)


def test_kbuild_file_is_own_rules(tmp_path):
    d = _dir(tmp_path, "kb", {"foo.c": ROOT_C, "Kbuild": "obj-y += whatever\n", "Makefile": "all:\n"})
    assert plan_build(d).own_rules == d.resolve() / "Kbuild"


def test_kbuild_ignored_when_sources_listed(tmp_path):
    d = _dir(tmp_path, "kb", {"foo.c": ROOT_C, "bar.c": HELPER_C, "Kbuild": "obj-m += foo.o\n"})
    plan = plan_build(d, name="combo", sources=["foo.c", "bar.c"])
    assert plan.own_rules is None
    assert plan.modules == (ModuleSpec("combo", ("foo.o", "bar.o")),)


def test_name_alone_does_not_override_own_rules(tmp_path):
    d = _dir(tmp_path, "kb", {"foo.c": ROOT_C, "Kbuild": "obj-m += foo.o\n"})
    assert plan_build(d, name="other").own_rules == d.resolve() / "Kbuild"


def test_no_c_files(tmp_path):
    d = _dir(tmp_path, "empty", {"README": "nothing\n", "x.h": "\n"})
    with pytest.raises(UsageError) as ei:
        plan_build(d)
    assert ei.value.message == f"{d.resolve()} has no .c files and no Kbuild/Makefile with obj-m"


def test_c_files_in_subdirs_are_not_roots(tmp_path):
    d = _dir(tmp_path, "nested", {"sub/a.c": ROOT_C})
    with pytest.raises(UsageError):
        plan_build(d)


def test_dashed_directory_name(tmp_path):
    d = _dir(tmp_path, "my-mod", {"main.c": ROOT_C, "util.c": HELPER_C})
    assert plan_build(d).modules == (ModuleSpec("my_mod", ("main.o", "util.o")),)


def test_dotted_directory_name(tmp_path):
    d = _dir(tmp_path, "drv.v2", {"main.c": ROOT_C, "util.c": HELPER_C})
    assert plan_build(d).modules == (ModuleSpec("drv_v2", ("main.o", "util.o")),)


def test_directory_named_like_a_source(tmp_path):
    d = _dir(tmp_path, "main", {"main.c": ROOT_C, "util.c": HELPER_C})
    with pytest.raises(UsageError) as ei:
        plan_build(d)
    assert ei.value.message == "module 'main' would be built from several files, one of them main.c"


def test_name_override_equal_to_a_stem(tmp_path):
    d = _dir(tmp_path, "dir", {"main.c": ROOT_C, "util.c": HELPER_C})
    with pytest.raises(UsageError):
        plan_build(d, name="util")


def test_name_override(tmp_path):
    d = _dir(tmp_path, "dir", {"main.c": ROOT_C, "util.c": HELPER_C})
    assert plan_build(d, name="renamed").modules == (ModuleSpec("renamed", ("main.o", "util.o")),)


def test_name_override_single_file(tmp_path):
    d = _dir(tmp_path, "dir", {"hello.c": ROOT_C})
    assert plan_build(d, name="hello").modules == (ModuleSpec("hello"),)
    assert plan_build(d, name="greeting").modules == (ModuleSpec("greeting", ("hello.o",)),)


def test_name_override_overrides_two_roots(tmp_path):
    d = _dir(tmp_path, "dir", {"a.c": ROOT_C, "b.c": ROOT_C, "c.c": HELPER_C})
    assert plan_build(d, name="all3").modules == (ModuleSpec("all3", ("a.o", "b.o", "c.o")),)


def test_invalid_name_override(tmp_path):
    d = _dir(tmp_path, "dir", {"a.c": ROOT_C})
    with pytest.raises(UsageError) as ei:
        plan_build(d, name="9lives")
    assert ei.value.message == "invalid module name '9lives' (module name)"


def test_sources_override(tmp_path):
    d = _dir(tmp_path, "dir", {"a.c": ROOT_C, "b.c": HELPER_C, "unused.c": ROOT_C})
    assert plan_build(d, sources=["b.c", "a.c"]).modules == (ModuleSpec("dir", ("b.o", "a.o")),)
    assert plan_build(d, sources=["a.c"]).modules == (ModuleSpec("a"),)


def test_missing_source(tmp_path):
    d = _dir(tmp_path, "dir", {"a.c": ROOT_C})
    with pytest.raises(UsageError) as ei:
        plan_build(d, sources=["a.c", "gone.c"])
    assert ei.value.message == f"source 'gone.c' listed in kharness.toml does not exist in {d.resolve()}"


def test_unusable_source_name(tmp_path):
    d = _dir(tmp_path, "dir", {"a b.c": ROOT_C})
    with pytest.raises(UsageError) as ei:
        plan_build(d)
    assert ei.value.message == "source file a b.c has a name kbuild cannot use"


def test_include_dirs_and_ccflags(tmp_path):
    d = _dir(tmp_path, "a/b/mod", {"m.c": ROOT_C})
    (tmp_path / "a/b/include").mkdir()
    (d / "local").mkdir()
    plan = plan_build(d, ccflags=["-DDEBUG", "-Wno-unused"], include_dirs=["../include", "local", "."])
    # Within the shadow tree's reach: relative to $(src), so the Makefile works in the user's tree too.
    assert plan.ccflags == ("-DDEBUG", "-Wno-unused", "-I$(src)/../include", "-I$(src)/local", "-I$(src)")


def test_missing_include_dir(tmp_path):
    d = _dir(tmp_path, "mod", {"m.c": ROOT_C})
    with pytest.raises(UsageError) as ei:
        plan_build(d, include_dirs=["../nope"])
    assert ei.value.message == f"include directory '../nope' does not exist (relative to {d.resolve()})"


def test_flags_kept_with_own_rules(tmp_path):
    d = _dir(tmp_path, "mod", {"m.c": ROOT_C, "Kbuild": "obj-m += m.o\n"})
    assert plan_build(d, ccflags=["-DX"]).ccflags == ("-DX",)


@pytest.mark.parametrize("name,ok", [("foo", True), ("_x1", True), ("my-mod", True), ("1x", False),
                                     ("a.b", False), ("", False), ("a b", False)])
def test_check_name(name, ok):
    if ok:
        assert check_name(name, "here") == name
    else:
        with pytest.raises(UsageError):
            check_name(name, "here")


def test_render_makefile_multi(tmp_path):
    d = _dir(tmp_path, "multi", {"main.c": ROOT_C, "util.c": HELPER_C})
    text = render_makefile(plan_build(d, ccflags=["-DDEBUG", "-O2"]))
    lines = text.splitlines()
    assert lines[0] == f"# kbuild Makefile generated by kharness {__version__} for multi."
    assert "obj-m += multi.o" in lines
    assert "multi-objs := main.o util.o" in lines
    assert "ccflags-y += -DDEBUG -O2" in lines
    assert "KDIR ?= /lib/modules/$(shell uname -r)/build" in lines
    assert "\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules" in lines
    i = lines.index("clean:")
    assert lines[i + 1] == "\t$(MAKE) -C $(KDIR) M=$(CURDIR) clean"
    assert lines.index("ifneq ($(KERNELRELEASE),)") < lines.index("obj-m += multi.o") < lines.index("else")
    assert text.endswith("endif\n")


def test_render_makefile_two_single_file_modules(tmp_path):
    d = _dir(tmp_path, "two", {"a.c": ROOT_C, "b.c": ROOT_C})
    text = render_makefile(plan_build(d))
    kbuild_part = text.split("ifneq ($(KERNELRELEASE),)\n", 1)[1].split("\nelse\n", 1)[0]
    assert kbuild_part == "# kbuild part: what to build.\nobj-m += a.o\nobj-m += b.o"
    assert "-objs" not in text
    assert "ccflags-y" not in text


# --- nothing a user names becomes make syntax (issue 13, item 12) ------------------------------

HOSTILE = "hello\n$(shell touch PWNED)"


def test_a_hostile_directory_name_is_only_ever_a_comment(tmp_path):
    d = _dir(tmp_path, HOSTILE, {"main.c": ROOT_C, "util.c": HELPER_C})
    text = render_makefile(plan_build(d))
    code = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in code if "$(shell touch" in line], text
    assert "hello___shell_touch_PWNED_-objs := main.o util.o" in code   # the module name is made a C name
    assert text.splitlines()[0] == f"# kbuild Makefile generated by kharness {__version__} for hello?$(shell touch PWNED)."


@pytest.mark.skipif(not __import__("shutil").which("make"), reason="needs make")
@pytest.mark.parametrize("kbuild_part", [True, False])
def test_make_reads_the_generated_makefile_without_running_the_name(tmp_path, kbuild_part):
    """make itself reads the file (both halves): nothing is created."""
    import subprocess

    d = _dir(tmp_path, HOSTILE, {"main.c": ROOT_C, "util.c": HELPER_C})
    work = tmp_path / "work"
    work.mkdir()
    (work / "Makefile").write_text(render_makefile(plan_build(d, ccflags=["-DX=1"])))
    argv = ["make", "-n", "-C", str(work), "KDIR=/nonexistent"] + (["KERNELRELEASE=1", "nothing"] if kbuild_part else ["all"])
    subprocess.run(argv, capture_output=True, timeout=60)
    assert sorted(p.name for p in tmp_path.rglob("PWNED")) == []


def test_makefile_comments_cannot_end_early():
    from kharness.build.makefile import comment_text

    assert comment_text("a\nb\rc\\") == "a?b?c?"
    assert comment_text("plain name-1.2") == "plain name-1.2"


def test_ccflags_are_one_argument_each_and_never_make_syntax(tmp_path):
    d = _dir(tmp_path, "mod", {"m.c": ROOT_C})
    plan = plan_build(d, ccflags=["-DDEBUG", '-DGREETING="hi there"', "-O2"])
    assert plan.ccflags == ("-DDEBUG", """'-DGREETING="hi there"'""", "-O2")
    assert """ccflags-y += -DDEBUG '-DGREETING="hi there"' -O2""" in render_makefile(plan).splitlines()
    for bad, shown in (("-DX=$(shell id)", "'$'"), ("-DX=1 # c", "'#'"), ("-DX=1\nall:", "'\\n'"), ("-DX=a\\", "'\\\\'")):
        with pytest.raises(UsageError) as ei:
            plan_build(d, ccflags=[bad])
        assert ei.value.message == f"ccflags entry {bad!r} holds {shown}, which cannot go into a Makefile"


def test_include_dirs_with_spaces_or_make_syntax_are_refused(tmp_path):
    d = _dir(tmp_path, "a/b/mod", {"m.c": ROOT_C})
    for name in ("my include", "inc$(x)", "a:b", "we#ird"):
        (tmp_path / "a/b" / name).mkdir()
        with pytest.raises(UsageError) as ei:
            plan_build(d, include_dirs=[f"../{name}"])
        assert ei.value.message == (f"include directory '../{name}' (../{name}) has characters kbuild cannot take "
                                    f"in an include path (spaces, quotes, $, #, :, %, = ...)")


def test_include_dirs_out_of_the_shadow_reach_are_absolute(tmp_path):
    d = _dir(tmp_path, "x/a/b/mod", {"m.c": ROOT_C})
    far = tmp_path / "x" / "inc"
    far.mkdir()
    assert plan_build(d, include_dirs=["../../../inc"]).ccflags == (f"-I{far.resolve()}",)
    (tmp_path / "x" / "far away").mkdir()
    with pytest.raises(UsageError, match="has characters kbuild cannot take"):
        plan_build(d, include_dirs=["../../../far away"])


def test_a_module_directory_with_spaces_needs_no_quoting(tmp_path):
    d = _dir(tmp_path, "my modules/hello world", {"hello.c": ROOT_C})
    (tmp_path / "my modules" / "include").mkdir()
    plan = plan_build(d, include_dirs=["../include"])
    assert plan.ccflags == ("-I$(src)/../include",)
    text = render_makefile(plan)
    assert "obj-m += hello.o" in text.splitlines()
    assert "# Regenerate with `kharness makefile 'hello world'`; edit freely once it is yours." in text


# --- the Makefile is rendered without jinja2, byte for byte as jinja2 rendered it -------------

def test_render_makefile_is_byte_identical_to_the_jinja2_rendering(monkeypatch):
    """tests/data/kbuild/rendered_by_jinja2.json holds what the jinja2 template made of these
    plans (one module, objects and ccflags, two modules, a hostile and a quoted directory name,
    no rules at all)."""
    import json

    from kharness.build import makefile

    golden = json.loads((Path(__file__).parents[1] / "data" / "kbuild" / "rendered_by_jinja2.json").read_text())
    monkeypatch.setattr(makefile, "__version__", golden["version"])
    assert len(golden["cases"]) >= 7
    for name, case in golden["cases"].items():
        plan = BuildPlan(Path(case["directory"]), None,
                         tuple(ModuleSpec(n, tuple(objs)) for n, objs in case["modules"]), tuple(case["ccflags"]))
        assert render_makefile(plan) == case["makefile"], name


def test_render_makefile_fills_placeholders_once(tmp_path):
    """A directory named like a placeholder stays a name in a comment."""
    text = render_makefile(BuildPlan(tmp_path / "@{kbuild} @@ $x", None, (ModuleSpec("m"),)))
    assert text.splitlines()[0] == f"# kbuild Makefile generated by kharness {__version__} for @{{kbuild}} @@ $x."
    assert text.count("obj-m += m.o") == 1
