"""Every GitHub workflow in the repository, the action, the workflow `kharness matrix --emit
github-workflow` prints and the GitLab job `--emit gitlab` prints validate against check-jsonschema's
vendored schemas (offline), and say what the documentation promises: a Debian container, kharness
installed with pip and `kharness doctor --install`, the cache restored and saved, no host names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from kharness.cells import Cell
from kharness.cli import app
from kharness.matrix import emit

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CELLS = [Cell("x86_64", "6.1"), Cell("arm64", "6.12"), Cell("ppc64", "6.1")]
HOSTILE = 'my mod/a b: "c" $(touch /tmp/x) #x\n- y'


def validate(schema: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=300)


def load(text: str):
    return YAML(typ="safe").load(text)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_the_repository_has_the_documented_workflows():
    assert {p.name for p in WORKFLOWS} >= {"kharness.yml", "kharness-matrix.yml", "ci.yml"}


def test_every_workflow_and_the_action_validate():
    p = validate("vendor.github-workflows", *WORKFLOWS)
    assert p.returncode == 0, p.stdout + p.stderr
    p = validate("vendor.github-actions", ROOT / "action.yml")
    assert p.returncode == 0, p.stdout + p.stderr


def test_the_validator_can_fail(tmp_path):
    bad = load((ROOT / ".github" / "workflows" / "kharness.yml").read_text())
    bad["jobs"]["hello"]["runs-on"] = 3
    del bad["jobs"]["hello"]["steps"]
    f = tmp_path / "bad.yml"
    YAML(typ="safe").dump(bad, f)
    assert validate("vendor.github-workflows", f).returncode == 1
    f = write(tmp_path, "action.yml", "name: x\ndescription: y\nruns:\n  using: composite\n")
    assert validate("vendor.github-actions", f).returncode == 1
    f = write(tmp_path, "gl.yml", "job:\n  script: 3\n  parallel: {matrix: 7}\n")
    assert validate("vendor.gitlab-ci", f).returncode == 1


@pytest.mark.parametrize("module_dir", ["mymod", "examples/hello", HOSTILE])
def test_the_emitted_workflow_validates_and_runs_every_cell_with_the_action(tmp_path, module_dir):
    text = emit.github_workflow(CELLS, module_dir, "me/kharness@v1")
    p = validate("vendor.github-workflows", write(tmp_path, "wf.yml", text))
    assert p.returncode == 0, p.stdout + p.stderr + text
    wf = load(text)
    cell = wf["jobs"]["cell"]
    assert cell["container"]["image"] == "debian:bookworm"
    assert cell["strategy"]["fail-fast"] is False
    assert cell["strategy"]["matrix"]["include"] == [{"target": c.target, "kernel": c.kernel} for c in CELLS]
    [action] = [s for s in cell["steps"] if s.get("uses") == "me/kharness@v1"]
    assert action["with"]["module"] == module_dir     # the name survives as one value, whatever it holds
    assert wf["jobs"]["report"]["needs"] == "cell"
    assert emit.github_workflow(CELLS, "m").count(emit.DEFAULT_ACTION) == 1


@pytest.mark.parametrize("module_dir", ["mymod", HOSTILE])
def test_the_emitted_gitlab_job_validates_and_installs_kharness_with_pip(tmp_path, module_dir):
    text = emit.gitlab(CELLS, module_dir)
    p = validate("vendor.gitlab-ci", write(tmp_path, "gl.yml", text))
    assert p.returncode == 0, p.stdout + p.stderr + text
    job = load(text)["kharness-matrix"]
    assert job["image"] == "debian:bookworm"
    assert any(re.search(r"/pip install \"\$\{KHARNESS_PIP:\?", s) for s in job["before_script"])
    assert "kharness doctor --install" in job["before_script"]
    assert job["artifacts"]["reports"]["codequality"] == "codequality.json"
    assert job["parallel"]["matrix"] == [{"KH_TARGET": c.target, "KH_KERNEL": c.kernel} for c in CELLS]
    [run] = job["script"]
    # The directory is one shell word, whatever it holds.
    import shlex
    assert shlex.split(run)[:3] == ["kharness", "run", module_dir]


def test_the_nightly_workflow_is_what_the_emitter_prints_for_examples_hello():
    """.github/workflows/kharness-matrix.yml is generated: regenerate it with
    `kharness matrix examples/hello --emit github-workflow --action ./ > .github/workflows/kharness-matrix.yml`."""
    out = CliRunner().invoke(app, ["matrix", "examples/hello", "--emit", "github-workflow", "--action", "./"])
    assert out.exit_code == 0, out.output
    assert (ROOT / ".github" / "workflows" / "kharness-matrix.yml").read_text() == out.output


def test_emit_github_stays_the_matrix_json_and_bad_values_exit_2():
    r = CliRunner()
    out = r.invoke(app, ["matrix", "examples/hello", "--targets", "x86_64", "--kernels", "6.1", "--emit", "github"])
    assert out.exit_code == 0 and out.output == '{"include": [{"target": "x86_64", "kernel": "6.1"}]}\n'
    out = r.invoke(app, ["matrix", "examples/hello", "--emit", "jenkins"])
    assert out.exit_code == 2 and "github-workflow" in out.output
    out = r.invoke(app, ["matrix", "examples/hello", "--emit", "github-workflow", "--action", "x y\nz"])
    assert out.exit_code == 2 and "--action" in out.output


def test_the_action_installs_with_pip_and_doctor_and_keeps_the_cache():
    action = load((ROOT / "action.yml").read_text())
    assert "debian:bookworm" in action["description"]
    steps = action["runs"]["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "apt-get install" in runs and "python3-pip python3-venv" in runs
    assert re.search(r'/pip" install .*"\$\{KH_FROM:-\$GITHUB_ACTION_PATH\}"', runs)
    assert "kharness doctor --install" in runs
    uses = [s.get("uses", "") for s in steps]
    assert uses.index("actions/cache/restore@v4") < uses.index("actions/cache/save@v4")
    assert "actions/upload-artifact@v4" in uses
    save = steps[uses.index("actions/cache/save@v4")]
    assert save["if"].startswith("always()")
    # Inputs reach the shell through the environment, never pasted into a script (${{ }} in run:
    # would make a module name a command), and github.action_path is wrong inside a container.
    assert "${{" not in runs and "github.action_path" not in runs
    assert set(action["inputs"]) >= {"module", "targets", "kernels", "args"}


@pytest.mark.parametrize("path", [*WORKFLOWS, ROOT / "action.yml"], ids=lambda p: p.name)
def test_jobs_running_kharness_run_in_the_debian_container_and_name_no_host(path):
    text = path.read_text()
    assert "://" not in text
    if path.name == "action.yml":
        return
    for job in load(text)["jobs"].values():
        if "steps" in job and any(s.get("uses") in ("./", emit.DEFAULT_ACTION) or "make test" in s.get("run", "")
                                  for s in job["steps"]):
            assert job["container"]["image"] == "debian:bookworm"


def test_the_emitted_configurations_name_no_host():
    assert "://" not in emit.github_workflow(CELLS, "m") + emit.gitlab(CELLS, "m")


def test_the_workflows_in_docs_ci_md_validate(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "ci.md").read_text(), re.S)
    whole = [b for b in blocks if b.startswith(("name:", "#"))]
    assert len(whole) >= 2
    files = [write(tmp_path, f"doc{i}.yml", b) for i, b in enumerate(whole)]
    github = [f for f, b in zip(files, whole) if "jobs:" in b]
    gitlab = [f for f, b in zip(files, whole) if "jobs:" not in b]
    p = validate("vendor.github-workflows", *github)
    assert p.returncode == 0, p.stdout + p.stderr
    if gitlab:
        p = validate("vendor.gitlab-ci", *gitlab)
        assert p.returncode == 0, p.stdout + p.stderr
