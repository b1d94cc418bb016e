"""Unit tests for kharness.build.kbuild's shadow tree (no make, no compiler)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kharness.build.kbuild import _is_product, make_shadow, source_files


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tree(tmp_path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    mod = src / "a" / "b" / "mod"
    (mod / "sub").mkdir(parents=True)
    (mod / "x.c").write_text("int x;\n")
    (mod / "sub" / "y.c").write_text("int y;\n")
    (mod / "x.o").write_bytes(b"\x7fELF stale host build")
    (mod / ".x.o.cmd").write_text("cmd\n")
    (mod / "Makefile").write_text("obj-m += x.o\n")
    (src / "a" / "b" / "include").mkdir()
    (src / "a" / "b" / "include" / "h.h").write_text("#define H 1\n")
    (src / "a" / "other.txt").write_text("two levels up\n")
    return mod, tmp_path / "shadow"


def _listing(d: Path) -> dict[str, str]:
    """relative path -> "dir" | "link:<target>" | "file"."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = "file"
    return out


def test_shadow_layout(tree):
    mod, root = tree
    shadow = make_shadow(mod, root)
    assert shadow == root / "b" / "mod"
    assert _listing(shadow) == {
        "Makefile": f"link:{mod / 'Makefile'}",
        "sub": "dir",
        "sub/y.c": f"link:{mod / 'sub' / 'y.c'}",
        "x.c": f"link:{mod / 'x.c'}",
    }
    assert not (shadow / "x.o").exists()
    assert not (shadow / "sub").is_symlink()
    # one and two levels up reach the user's files
    assert (shadow / ".." / "include" / "h.h").read_text() == "#define H 1\n"
    assert os.path.realpath(shadow / ".." / "include" / "h.h") == str((mod.parent / "include" / "h.h").resolve())
    assert (shadow / ".." / ".." / "other.txt").read_text() == "two levels up\n"
    # but the levels above are real directories: kbuild never writes through them into the user's tree
    assert not (root / "b").is_symlink() and (root / "b").is_dir()
    assert sorted(os.listdir(root)) == ["b", "other.txt"]
    assert sorted(os.listdir(root / "b")) == ["include", "mod"]


def test_shadow_is_idempotent_and_prunes_deleted_files(tree):
    mod, root = tree
    shadow = make_shadow(mod, root)
    (shadow / "x.o").write_bytes(b"kbuild output")  # build products in the shadow survive
    before = _listing(root)
    assert make_shadow(mod, root) == shadow
    assert _listing(root) == before
    (mod / "sub" / "y.c").unlink()
    (mod / "x.c").unlink()
    (mod / "new.c").write_text("int n;\n")
    make_shadow(mod, root)
    assert _listing(shadow) == {
        "Makefile": f"link:{mod / 'Makefile'}",
        "new.c": f"link:{mod / 'new.c'}",
        "sub": "dir",
        "x.o": "file",
    }
    assert (shadow / "x.o").read_bytes() == b"kbuild output"


def test_shadow_replaces_a_file_that_became_a_directory(tree):
    mod, root = tree
    shadow = make_shadow(mod, root)
    (mod / "x.c").unlink()
    (mod / "x.c").mkdir()
    (mod / "x.c" / "inner.c").write_text("")
    make_shadow(mod, root)
    assert (shadow / "x.c").is_dir() and not (shadow / "x.c").is_symlink()
    assert os.readlink(shadow / "x.c" / "inner.c") == str(mod / "x.c" / "inner.c")


def test_shadow_links_symlinked_directories_as_links(tree):
    mod, root = tree
    os.symlink(mod.parent / "include", mod / "inc")
    shadow = make_shadow(mod, root)
    assert os.readlink(shadow / "inc") == str(mod / "inc")
    assert (shadow / "inc" / "h.h").read_text() == "#define H 1\n"


def test_shadow_levels_zero(tree):
    mod, root = tree
    shadow = make_shadow(mod, root, levels=0)
    assert shadow == root
    assert sorted(os.listdir(root)) == ["Makefile", "sub", "x.c"]


@pytest.mark.parametrize("name,product", [
    ("x.o", True), ("x.ko", True), ("x.mod", True), ("x.mod.c", True), (".x.o.cmd", True),
    ("modules.order", True), ("Module.symvers", True), ("x.ko.xz", True), (".git", True), (".x.o.d", True),
    ("x.c", False), ("x.h", False), ("Makefile", False), ("Kbuild", False), ("kharness.toml", False),
])
def test_is_product(name, product):
    assert _is_product(name) is product


def test_source_files(tree):
    mod, _ = tree
    (mod / ".hidden").mkdir()
    (mod / ".hidden" / "z.c").write_text("")
    (mod / ".tmp_versions").mkdir()
    assert [str(p.relative_to(mod)) for p in source_files(mod)] == ["Makefile", "x.c", "sub/y.c"]


def test_shadow_directory_that_became_a_file(tree):
    mod, root = tree
    shadow = make_shadow(mod, root)
    (mod / "sub" / "y.c").unlink()
    (mod / "sub").rmdir()
    (mod / "sub").write_text("now a file\n")
    make_shadow(mod, root)
    assert os.readlink(shadow / "sub") == str(mod / "sub")


def test_shadow_prunes_deleted_subdirectory(tree):
    mod, root = tree
    shadow = make_shadow(mod, root)
    (mod / "sub" / "y.c").unlink()
    (mod / "sub").rmdir()
    make_shadow(mod, root)
    assert sorted(os.listdir(shadow)) == ["Makefile", "x.c"]


# --- a module directory's path never reaches make as it is (issue 13, item 12) ----------------

def test_shadow_of_a_directory_with_spaces_and_make_syntax_has_a_plain_path(tmp_path):
    from kharness.build.makefile import PLAIN_PATH_RE

    top = tmp_path / "src" / "my projects"
    mod = top / "hello\n$(shell touch PWNED)"
    mod.mkdir(parents=True)
    (mod / "hello.c").write_text("int x;\n")
    (top / "include").mkdir()
    (top / "include" / "h.h").write_text("#define H 1\n")
    root = tmp_path / "shadow"
    shadow = make_shadow(mod, root)
    assert PLAIN_PATH_RE.fullmatch(str(shadow)), shadow
    assert os.readlink(shadow / "hello.c") == str(mod / "hello.c")
    # one level up still reaches the user's files, by their own names
    assert (shadow / ".." / "include" / "h.h").read_text() == "#define H 1\n"
    assert make_shadow(mod, root) == shadow          # the same place every time
    # two directories whose names differ only in what was replaced do not share a shadow
    other = top / "hello $(shell touch PWNED)"
    other.mkdir()
    assert make_shadow(other, root) != shadow


def test_shadow_names_keep_plain_names():
    from kharness.build.kbuild import shadow_name

    assert shadow_name("hello_dir-1.2+x") == "hello_dir-1.2+x"
    assert shadow_name("hello world").startswith("hello_world-")
    assert shadow_name("$(x)").startswith("x-")


def test_a_cache_path_kbuild_cannot_take_is_refused_with_the_fix(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from kharness.build.kbuild import run_kbuild
    from kharness.build.makefile import plan_build
    from kharness.errors import UsageError
    from kharness.kernels.store import HeadersBundle

    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "my cache"))
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "m.c").write_text("int m;\n")
    headers = HeadersBundle(release="6.1.0-1-amd64", root=tmp_path / "h", build_dir=tmp_path / "h" / "build")
    tc = SimpleNamespace(cc="gcc", version="gcc 12", arch="x86", sysroot=None, cross_compile="")
    with pytest.raises(UsageError) as ei:
        run_kbuild(plan_build(tmp_path / "mod"), headers, tc)
    assert ei.value.message.startswith("the kharness cache is at ") and "kbuild cannot build in" in ei.value.message
    assert ei.value.hint.startswith("set KHARNESS_CACHE to a directory")


def test_a_copy_keeps_linked_directories_and_leaves_out_devices(tmp_path):
    from kharness.build.kbuild import copy_dir

    common = tmp_path / "common"
    common.mkdir()
    (common / "shared.h").write_text("#define X 1\n")
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "a.c").write_text("int a;\n")
    (mod / "include").symlink_to("../common")      # a linked directory: copied
    (mod / "loop").symlink_to("..")                # a link to an ancestor: copied once, no cycle
    (mod / "zero").symlink_to("/dev/zero")         # not a regular file: left out
    copy_dir(mod, tmp_path / "copy")
    assert (tmp_path / "copy" / "include" / "shared.h").read_text() == "#define X 1\n"
    assert not (tmp_path / "copy" / "include").is_symlink()
    assert not (tmp_path / "copy" / "zero").exists()
