"""PATH_KEYS: a check kind's file arguments are resolved against the module directory."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness.checks import resolve_paths
from kharness.errors import UsageError


def err(msg):
    return UsageError(msg)


def test_relative_paths_become_absolute_and_may_point_above(tmp_path: Path):
    (tmp_path / "mod" / "other").mkdir(parents=True)
    (tmp_path / "mod" / "other" / "t.c").write_text("int main(void){return 0;}")
    (tmp_path / "chardev.h").write_text("")
    out = resolve_paths({"source": "other/t.c", "header": "../chardev.h", "x": 1},
                        ("source", "header", "absent"), tmp_path / "mod", err)
    assert out == {"source": str(tmp_path / "mod" / "other" / "t.c"), "header": str(tmp_path / "chardev.h"), "x": 1}


def test_a_list_keeps_its_order(tmp_path: Path):
    for n in ("b.c", "a.c"):
        (tmp_path / n).write_text("")
    out = resolve_paths({"source": ["b.c", "a.c"]}, ("source",), tmp_path, err)
    assert out["source"] == [str(tmp_path / "b.c"), str(tmp_path / "a.c")]


@pytest.mark.parametrize("value, words", [("nope.c", "nope.c does not exist"), ([], "non-empty list"),
                                          (5, "must be a path"), (["a.c", 3], "must be a path")])
def test_bad_paths_are_one_line(tmp_path: Path, value, words):
    (tmp_path / "a.c").write_text("")
    with pytest.raises(UsageError) as e:
        resolve_paths({"source": value}, ("source",), tmp_path, err)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_parse_check_resolves_a_kinds_path_keys(tmp_path: Path, monkeypatch):
    from kharness.checks import kinds, parse_check

    seen = {}
    fake = SimpleNamespace(NAME="pathy", ORDER=99, KEYS=frozenset({"source"}), PATH_KEYS=("source",),
                           CHECK=SimpleNamespace(kind="pathy"), command=None, judge=None, texts=None,
                           parse=lambda table, base, e: seen.update(table) or "parsed")
    monkeypatch.setitem(kinds.REGISTRY, "pathy", fake)
    (tmp_path / "t.c").write_text("")
    assert parse_check(tmp_path / "kharness.toml", 1, {"kind": "pathy", "source": "t.c"}) == "parsed"
    assert seen["source"] == str(tmp_path / "t.c")
