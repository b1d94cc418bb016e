"""Typed records of what a run used: its kernel, its build, its guest image, the kernel's taint.

Each field carries its documentation (``doc(...)``), from which :mod:`kharness.result.schema`
writes docs/result-schema.md and the JSON Schema, so the model, the document and the schema
cannot drift apart. A field made with ``optional=True`` is left out of the JSON while it is
None (it exists only for some runs: a self-built kernel, a build environment).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

_MISSING: Any = dataclasses.MISSING


def doc(text: str, *, default: Any = _MISSING, default_factory: Any = _MISSING, optional: bool = False,
        schema: dict | None = None) -> Any:
    """A dataclass field with its documentation. ``schema`` refines the JSON Schema the type alone
    gives (the keys of a plain dict, say)."""
    meta = {"doc": text, "optional": optional, "schema": schema}
    if optional and default is _MISSING and default_factory is _MISSING:
        default = None
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


class Record:
    """A dataclass written to JSON as a dict of its fields (optional ones only when set).

    Read access by key (``record["release"]``, ``record.get(...)``) is kept because these were
    plain dicts in a run's result, public through ``Session.result``, before this model."""

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue
            out[f.name] = value.to_dict() if isinstance(value, Record) else _plain(value)
        return out

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)


def _plain(value):
    """A deep copy of JSON-ready data, so a result's dict never aliases the live record."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_PACKAGE = {"type": "object", "required": ["name", "version", "arch"],
            "properties": {k: {"type": t} for k, t in (("name", "string"), ("version", "string"),
                                                       ("arch", "string"), ("suite", "string"),
                                                       ("sha256", "string"), ("size", "integer"),
                                                       ("filename", "string"))}}


@dataclass
class KernelRecord(Record):
    """The kernel the module was built for and loaded into."""

    release: str = doc("`uname -r`")
    series: str = doc("e.g. `6.1`")
    suite: str = doc("the Debian suite it came from (`\"\"` for a kernel built from a tree)")
    version: str = doc("the Debian package version")
    gcc: str | None = doc("the compiler the headers ask for, e.g. `gcc-12`")
    packages: list = doc("every .deb used: `{name, version, arch, suite, sha256, size, filename}`",
                         default_factory=list, schema={"type": "array", "items": _PACKAGE})
    built_from: dict | None = doc("for a kernel kharness built (ppc64, `--kernel-tree`, debug kernels): the "
                                  "`linux-source` package record (`{package}`) or the tree and its git HEAD "
                                  "(`{tree, git_head}`), and `debug` for a debug kernel", optional=True)
    config_fragments: list | None = doc("for a kernel kharness built: the config fragments applied",
                                        optional=True, schema={"type": "array", "items": {"type": "string"}})
    build_tree: str | None = doc("for a kernel kharness built: where it was built", optional=True)
    built_on: dict | None = doc("with `--build-on-remote`: the module was built on the board, against the board's "
                                "own kernel (no Debian package used): `{board, build_tree}`", optional=True)
    headers: dict | None = doc("with `--remote`: where the headers the module was built against came from: "
                               "`{source, dir}`; `source` is `archive` (Debian's package, in `packages`), "
                               "`headers-dir` (`--headers DIR`), `kernel-tree` (`--kernel-tree DIR`) or `board` "
                               "(`--build-on-remote`: `dir` is on the board); a tree on the host also says "
                               "`module_symvers` (whether it had a Module.symvers)", optional=True)
    debug: list | None = doc("for a debug kernel: its checkers, e.g. `[\"kasan\", \"kmemleak\", \"lockdep\", "
                             "\"ubsan\"]`", optional=True, schema={"type": "array", "items": {"type": "string"}})
    build_seconds: float | None = doc("for a debug kernel: how long its `make` took, when it was built (null "
                                      "when that was not recorded)", optional=True,
                                      schema={"type": ["number", "null"]})

    def to_dict(self) -> dict:
        d = super().to_dict()
        if self.debug is not None:
            d["build_seconds"] = self.build_seconds   # a debug kernel always says, null if unknown
        return d


_DIAGNOSTIC = {"type": "object", "required": ["severity", "message"],
               "properties": {"file": {"type": ["string", "null"]}, "line": {"type": ["integer", "null"]},
                              "column": {"type": ["integer", "null"]}, "severity": {"type": "string"},
                              "message": {"type": "string"}, "tool": {"type": "string"}}}


@dataclass
class BuildRecord(Record):
    """How the module was built."""

    cached: bool = doc("the build was reused from the cache")
    command: str = doc("the make command line")
    directory: str = doc("the (cached) build directory")
    generated_makefile: str | None = doc("the Makefile kharness generated; null if the module's own rules were used")
    compiler: str = doc("the compiler, as `gcc --version` names it")
    diagnostics: list = doc("`{file, line, column, severity, message, tool}` of every compiler/modpost "
                            "diagnostic; paths are the user's own files", default_factory=list,
                            schema={"type": "array", "items": _DIAGNOSTIC})
    environment: dict | None = doc("only when the module was built inside a Debian build environment: "
                                   "`{suite, packages: [\"name version arch\", ...]}`", optional=True)
    khgpio: dict | None = doc("when `[gpio]` loaded the kharness virtual GPIO controller: its build, "
                              "`{cached, directory}`", optional=True)
    built_by: str | None = doc("which way the module was built: `\"dkms\"` (its dkms.conf: PRE_BUILD, MAKE, "
                               "PATCH, BUILT_MODULE_*), `\"own-makefile\"` (its Makefile's default target) or "
                               "`\"kbuild\"` (`make -C <headers> M=` on its Kbuild file or the generated one)",
                               optional=True, schema={"enum": ["dkms", "own-makefile", "kbuild"]})
    built_by_note: str | None = doc("why it was built that way when the first way tried did not build it, e.g. "
                                    "\"the Makefile's default target built no .ko file; built with kbuild M= "
                                    "instead\"", optional=True)
    dkms: dict | None = doc("for a dkms build: what its dkms.conf said for this kernel, `{package, version, "
                            "make, patches, pre_build, post_build}`", optional=True)


@dataclass
class ImageRecord(Record):
    """The guest's image."""

    base: str = doc("the base initramfs (busybox, /init, kh-agent)")
    key: str = doc("its cache key")
    busybox: dict = doc("the busybox package record")
    kernel: str = doc("the kernel image booted")
    snapshot: str | None = doc("the ready snapshot restored, when one was", optional=True)


@dataclass
class TaintRecord(Record):
    """The kernel's taint after the last phase."""

    value: int = doc("`/proc/sys/kernel/tainted`")
    flags: str = doc("its letters, e.g. `\"OE\"`")
    decoded: list = doc("one line per flag set: `\"<letter>: <meaning>\"`",
                        default_factory=list, schema={"type": "array", "items": {"type": "string"}})
