"""``--ktap`` and ``--kcidb`` of ``kharness run`` and ``kharness matrix``: the result in the
kernel's test format and in KernelCI's, next to kharness's own JSON.

The writers are pure (:mod:`kharness.result.ktap`, :mod:`kharness.result.kcidb`); here are the
parts that touch the host: the output paths (checked before any work), the module's source
identity for KCIDB's checkout (its git commit, or a hash of its files), the target's kernel
architecture, a matrix's cell results, and the files themselves (replaced atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from kharness import proc
from kharness.errors import KharnessError
from kharness.outputs import check_output_file

GIT_TIMEOUT = 30.0
# Build products a module directory may hold from a build outside kharness: not its sources.
_PRODUCTS = re.compile(r"(\.(o|ko|a|mod|mod\.c|order|symvers|cmd|dwo)|^Module\.symvers|^modules\.order)$")
_SCP_URL = re.compile(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)")


def check_outputs(ktap: Path | None, kcidb: Path | None) -> None:
    for path, option in ((ktap, "--ktap"), (kcidb, "--kcidb")):
        if path is not None:
            check_output_file(path, option)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def content_sha256(directory: Path) -> str:
    """A hash of the module's source files (names and contents; .git and build products left
    out), so that the same sources give the same checkout outside a git work tree."""
    h = hashlib.sha256()
    files = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        files += [Path(root) / n for n in names if not _PRODUCTS.search(n)]
    for f in sorted(files, key=lambda p: p.relative_to(directory).as_posix()):
        if not f.is_file():
            continue
        h.update(f.relative_to(directory).as_posix().encode() + b"\0")
        try:
            h.update(hashlib.sha256(f.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable")   # its name still counts
    return h.hexdigest()


def https_url(remote: str) -> str | None:
    """The https:// URL of a git remote (``git@host:path``, ``ssh://``, ``https://``), without
    any user name or token in it; None for a local path or another scheme."""
    remote = remote.strip()
    m = re.fullmatch(r"(?:ssh|git|https?)://(?:[^@/]+@)?([^/:]+)(?::\d+)?/(.+)", remote)
    if m is None and "://" not in remote:
        m = _SCP_URL.fullmatch(remote)
        if m and (m.group(1).startswith((".", "/")) or "." not in m.group(1)):
            m = None    # a local path with a colon in it, or a host alias
    return f"https://{m.group(1)}/{m.group(2)}" if m else None


def _git(directory: Path, *args: str) -> str | None:
    try:
        p = proc.run(["git", "-C", str(directory), *args], timeout=GIT_TIMEOUT, what=f"git {args[0]}")
    except (OSError, KharnessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def source_identity(directory: Path) -> dict:
    """What KCIDB's checkout says of the module: its git commit, branch and remote when the
    directory is in a git work tree (dirty when it has changes there), and its content hash."""
    digest = content_sha256(directory)
    out = {"module_dir": str(directory), "content_sha256": digest, "key": f"sha256-{digest[:32]}"}
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return out
    remote = _git(directory, "remote", "get-url", "origin") or ""
    branch = _git(directory, "rev-parse", "--abbrev-ref", "HEAD")
    dirty = bool(_git(directory, "status", "--porcelain", "--", "."))
    url = https_url(remote) if remote else None
    out["git"] = {"commit": commit, "url": url, "branch": branch if branch and branch != "HEAD" else None,
                  "name": _git(directory, "describe", "--always", "--tags", "--dirty"), "dirty": dirty,
                  # A remote that is no https URL (a path, say) is kept for the reader, never its credentials.
                  "remote": None if url or not remote else re.sub(r"//[^@/]+@", "//", remote)}
    out["key"] = commit + (f"-dirty-{digest[:16]}" if dirty else "")
    return out


def architecture(target: str) -> str:
    """The target's kernel architecture as KCIDB names builds (x86_64, arm64, arm, powerpc)."""
    from kharness.targets import get_target

    try:
        t = get_target(target)
    except KharnessError:
        return target
    return "x86_64" if t.kernel_arch == "x86" and t.bits == 64 else t.kernel_arch


def write(docs: list[dict], module_dir: Path, ktap: Path | None, kcidb: Path | None,
          ktap_text: str | None = None) -> None:
    """The KCIDB file of ``docs`` (result documents) and the KTAP file (``ktap_text``)."""
    from kharness.result import kcidb as kcidb_writer

    if ktap is not None and ktap_text is not None:
        _write(ktap, ktap_text)
    if kcidb is not None:
        source = source_identity(module_dir)
        data = kcidb_writer.document(source, [(d, architecture(d.get("target", ""))) for d in docs])
        _write(kcidb, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_run(doc: dict, module_dir: Path, ktap: Path | None, kcidb: Path | None) -> None:
    """``kharness run --ktap/--kcidb``: ``doc`` is the run's result document."""
    from kharness.result import ktap as ktap_writer

    write([doc], module_dir, ktap, kcidb, ktap_writer.run_document(doc) if ktap is not None else None)


def write_matrix(out: Path, module_dir: Path, results: list, ktap: Path | None, kcidb: Path | None) -> None:
    """``kharness matrix --ktap/--kcidb``: ``results`` are the cells' CellResults; each cell's
    run is read from the result file its ``kharness run`` wrote (a cell without one is a test
    with no subtests)."""
    from kharness.result import ktap as ktap_writer

    docs, nodes = [], []
    for r in results:
        doc = None
        if r.files.get("result"):
            try:
                doc = json.loads((out / r.files["result"]).read_text())
            except (OSError, ValueError):
                doc = None
        if doc is not None:
            docs.append(doc)
        nodes.append(ktap_writer.cell_node(r.cell.id, r.status, r.summary, doc))
    write(docs, module_dir, ktap, kcidb,
          ktap_writer.matrix_document(str(module_dir), nodes) if ktap is not None else None)
