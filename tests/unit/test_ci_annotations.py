"""GitHub workflow commands: GitHub's escaping rules, paths relative to the checkout, the per-step cap."""

from __future__ import annotations

from pathlib import Path

from kharness.result import annotations as gh
from kharness.result.problems import Problem


def test_message_escaping_follows_githubs_rules():
    assert gh.escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    # ':' and ',' are left alone in a message (they end nothing there)...
    assert gh.escape_data("a: b, c") == "a: b, c"
    # ...but would end a property's value.
    assert gh.escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"
    # '%' first, so an escape already in the text is not decoded by GitHub into something else.
    assert gh.escape_data("%0A") == "%250A"


def test_a_problem_in_the_checkout_names_its_file_line_and_column(tmp_path):
    src = tmp_path / "mod" / "m.c"
    src.parent.mkdir()
    src.write_text("int x;\n")
    p = Problem("error", "build", "compile error", "'y' undeclared, first use", str(src), 17, 16)
    assert gh.command(p, tmp_path) == \
        "::error file=mod/m.c,line=17,col=16,title=compile error::'y' undeclared, first use"


def test_properties_and_the_message_are_escaped_in_the_command(tmp_path):
    p = Problem("error", "check", "check failed: a, b: c", "expected 5\ngot 6 (100%)", str(tmp_path / "kharness.toml"), 3)
    line = gh.command(p, tmp_path, prefix="x86_64-6.1")
    assert line == ("::error file=kharness.toml,line=3,title=x86_64-6.1%3A check failed%3A a%2C b%3A c"
                    "::expected 5%0Agot 6 (100%25)")
    assert "\n" not in line


def test_a_file_outside_the_checkout_moves_into_the_message(tmp_path):
    p = Problem("warning", "build", "compile warning", "unused", "/elsewhere/m.c", 4, 2)
    line = gh.command(p, tmp_path / "repo")
    assert line == "::warning title=compile warning::/elsewhere/m.c:4:2: unused"


def test_a_problem_without_a_location_has_only_a_title():
    p = Problem("error", "finding", "kernel oops", "Oops: 0000 [#1]")
    assert gh.command(p, Path("/")) == "::error title=kernel oops::Oops: 0000 [#1]"


def test_links_are_resolved_before_the_path_is_made_relative(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.c").write_text("")
    (tmp_path / "repo").symlink_to(tmp_path / "real")
    assert gh.relative(str(tmp_path / "real" / "m.c"), tmp_path / "repo") == "m.c"
    assert gh.relative(str(tmp_path / "m.c"), tmp_path / "repo") is None


def test_repo_root_is_the_workspace_then_gitlab_s_project_dir_then_the_cwd(monkeypatch, tmp_path):
    assert gh.repo_root({"GITHUB_WORKSPACE": "/w", "CI_PROJECT_DIR": "/g"}) == Path("/w")
    assert gh.repo_root({"CI_PROJECT_DIR": "/g"}) == Path("/g")
    monkeypatch.chdir(tmp_path)
    assert gh.repo_root({}) == tmp_path


def test_past_githubs_per_step_limit_one_notice_counts_the_rest():
    items = [("", Problem("error", "build", "compile error", f"e{i}")) for i in range(13)]
    items += [("", Problem("warning", "build", "compile warning", f"w{i}")) for i in range(2)]
    lines = gh.commands(items, Path("/"))
    assert sum(x.startswith("::error ") for x in lines) == gh.MAX_PER_SEVERITY
    assert sum(x.startswith("::warning ") for x in lines) == 2
    assert lines[-1].startswith("::notice ") and "3 more problem(s)" in lines[-1]
