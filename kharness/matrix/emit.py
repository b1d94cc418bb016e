"""A matrix as CI configuration, so a team fans the cells out over its runners.

* ``github``: the value for ``strategy.matrix`` (one include per cell), for a workflow of one's own;
* ``github-workflow``: a complete workflow: one job per cell in a ``debian:bookworm`` container
  (GitHub's Ubuntu runners have no Debian archive in their apt sources), each running the kharness
  action (action.yml at the root of kharness), then one job merging the cells' reports;
* ``gitlab``: a job with ``parallel:matrix``, in the same Debian image, with its code-quality report.

Every string that comes from the command line goes into the YAML as a JSON string (a valid YAML
double-quoted scalar) and into a shell line through shlex.quote, so a directory named
``a b: "c"`` or ``$(rm -rf ~)`` is only ever a name.
"""

from __future__ import annotations

import json
import re
import shlex

from kharness.cells import Cell
from kharness.errors import UsageError

DEFAULT_ACTION = "kharness/kharness@main"
KINDS = ("github", "github-workflow", "gitlab")
IMAGE = "debian:bookworm"
# What `uses:` takes: OWNER/REPO[/PATH]@REF, or a local ./path (a kharness checkout in the repository).
ACTION_RE = re.compile(r"[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[\w./-]+|\./[\w./-]*")


def q(text: str) -> str:
    """``text`` as a YAML (double-quoted) scalar."""
    return json.dumps(text)   # ASCII: a raw U+2028 is a line break to a YAML 1.1 reader


def github(cells: list[Cell]) -> str:
    """The value for ``strategy.matrix`` (``fromJSON`` of a job output): one include per cell."""
    return json.dumps({"include": [{"target": c.target, "kernel": c.kernel} for c in cells]})


def github_workflow(cells: list[Cell], module_dir: str, action: str = "") -> str:
    """A workflow running every cell as its own job with the kharness action, then merging the
    cells' reports into one artifact. Nightly and on demand: a matrix is too long for every push."""
    if action and not ACTION_RE.fullmatch(action):
        raise UsageError(f"--action {action!r} is not an action reference",
                         hint="give OWNER/REPO@REF (where you host kharness), or ./PATH for a kharness checkout "
                              "inside the repository")
    include = "\n".join(f"          - {{target: {q(c.target)}, kernel: {q(c.kernel)}}}" for c in cells)
    return f"""\
# kharness matrix for {q(module_dir)}: {len(cells)} cell(s), one job each.
# Written by `kharness matrix --emit github-workflow`; save it as .github/workflows/kharness-matrix.yml.
name: kharness matrix
on:
  schedule:
    - cron: "17 2 * * *"
  workflow_dispatch:
permissions:
  contents: read
jobs:
  cell:
    name: ${{{{ matrix.target }}}} / ${{{{ matrix.kernel }}}}
    runs-on: ubuntu-latest
    # A Debian container: kharness downloads Debian's kernels and packages through the image's
    # apt sources. --privileged: the build environments' namespaces (bubblewrap), and /dev/kvm
    # where the runner has it (else QEMU emulates: slower, same verdict).
    container:
      image: {IMAGE}
      options: --privileged
    timeout-minutes: 150
    strategy:
      fail-fast: false
      matrix:
        include:
{include}
    steps:
      - uses: actions/checkout@v4
      - uses: {action or DEFAULT_ACTION}
        with:
          module: {q(module_dir)}
          targets: ${{{{ matrix.target }}}}
          kernels: ${{{{ matrix.kernel }}}}
  report:
    needs: cell
    if: always()
    runs-on: ubuntu-latest
    steps:
      - uses: actions/upload-artifact/merge@v4
        with:
          name: kharness-matrix
          pattern: kharness-*
          separate-directories: true
"""


def gitlab(cells: list[Cell], module_dir: str) -> str:
    """A job using ``parallel:matrix`` (one entry per cell), in the Debian image."""
    script = [
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
        "python3 python3-pip python3-venv git ca-certificates",
        "python3 -m venv /opt/kharness",
        '/opt/kharness/bin/pip install "${KHARNESS_PIP:?set the CI/CD variable KHARNESS_PIP to what pip installs '
        'kharness from (a git URL, a wheel or a checkout)}"',
        'export PATH="/opt/kharness/bin:$PATH"',
        "kharness doctor --install",
    ]
    run = (f"kharness run {shlex.quote(module_dir)} --target \"$KH_TARGET\" --kernel \"$KH_KERNEL\" "
           f"--json result.json --codequality codequality.json")
    lines = [f"# kharness matrix for {q(module_dir)}: {len(cells)} cell(s). "
             "Written by `kharness matrix --emit gitlab`.",
             "# Set KHARNESS_PIP (a CI/CD variable) to what pip installs kharness from. The runner's Docker",
             "# executor needs privileged = true for the build environments (bubblewrap) and /dev/kvm.",
             "kharness-matrix:", f"  image: {IMAGE}", "  variables:",
             f"    KHARNESS_CACHE: {q('$CI_PROJECT_DIR/.kharness-cache')}",
             "  cache:", f"    key: {q('kharness-$KH_TARGET-$KH_KERNEL')}", "    paths: [.kharness-cache]",
             "  before_script:", *(f"    - {q(s)}" for s in script),
             "  script:", f"    - {q(run)}",
             "  artifacts:", "    when: always", "    paths: [result.json]",
             "    reports:", "      codequality: codequality.json",
             "  parallel:", "    matrix:"]
    for c in cells:
        lines.append(f"      - {{KH_TARGET: {q(c.target)}, KH_KERNEL: {q(c.kernel)}}}")
    return "\n".join(lines) + "\n"


def emit(kind: str, cells: list[Cell], module_dir: str, action: str = "") -> str:
    if kind == "github":
        return github(cells) + "\n"
    if kind == "github-workflow":
        return github_workflow(cells, module_dir, action)
    if kind == "gitlab":
        return gitlab(cells, module_dir)
    raise UsageError(f"--emit {kind!r}: use {', '.join(KINDS)}")
