"""Debian ``Packages`` indices, reduced to the packages kharness cares about and cached.

A full index is tens of MB; kharness keeps only kernel, kbuild and busybox paragraphs, parsed with
python-debian, in a small JSON file per suite and architecture. The JSON is refreshed after
``INDEX_TTL`` seconds. If the refresh fails for a reason that says nothing about the archive (no
network, a captive portal's page instead of a signed file, no keyring, no gpgv), the copy verified
earlier is used, with a one-line warning. A refusal of the archive itself is never papered over:
an index whose bytes are not the signed ones is refused, and a signature that does not verify is
refused and remembered (for ``INDEX_TTL``, so a suite does not download the index again per test),
keyed by the mirror and keyring that gave it, so changing either (what the error's hint says to
do) tries again at once.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import time
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version

from kharness import ui
from kharness.debian.download import fetch_bytes
from kharness.debian.mirror import debian_mirror
from kharness.debian.release import IndexRefused, SignatureRefused, keyring, signed_release
from kharness.errors import InfraError
from kharness.lock import file_lock
from kharness.paths import cache_dir

INDEX_TTL = 12 * 3600
INDEX_FORMAT = 3  # bump when the kept subset changes: older cached indices are refetched
_KEEP_PREFIXES = (
    "Package: linux-image-",
    "Package: linux-headers-",
    "Package: linux-kbuild-",
    "Package: linux-binary-",
    "Package: linux-modules-",
    "Package: linux-base-",         # from 7.2: device trees, System.map, modules.builtin
    "Package: linux-source-",
    "Package: busybox-static\n",
)
_FIELDS = ("Package", "Version", "Architecture", "Filename", "Size", "SHA256", "Depends", "Source")


def dep_names(depends: str) -> list[str]:
    """Package names in a Depends field (first alternative of each)."""
    out = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        if first:
            out.append(first.split()[0].split(":")[0])
    return out


@dataclass(frozen=True)
class Pkg:
    """One binary package as the index describes it."""

    name: str
    version: str
    arch: str
    filename: str
    size: int
    sha256: str
    depends: str
    suite: str

    def url(self, mirror: str) -> str:
        return f"{mirror}/{self.filename}"

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "arch": self.arch, "suite": self.suite,
                "sha256": self.sha256, "size": self.size, "filename": self.filename}


class PackageIndex:
    """The kept paragraphs of one suite/arch index: ``name -> [Pkg, ...]`` newest first."""

    def __init__(self, suite: str, arch: str, pkgs: list[Pkg]):
        self.suite = suite
        self.arch = arch
        self.by_name: dict[str, list[Pkg]] = {}
        for p in pkgs:
            self.by_name.setdefault(p.name, []).append(p)
        for lst in self.by_name.values():
            lst.sort(key=lambda p: Version(p.version), reverse=True)

    def get(self, name: str) -> Pkg | None:
        lst = self.by_name.get(name)
        return lst[0] if lst else None

    def names(self) -> list[str]:
        return list(self.by_name)


def filter_index_text(text: str, suite: str) -> list[Pkg]:
    """The paragraphs kharness keeps, parsed with python-debian."""
    # Here, not at the top: a cached index is JSON, and deb822 (with the email and logging
    # modules it pulls in) would cost every run that reads one ~15 ms of imports.
    from debian.deb822 import Packages

    kept = [p for p in text.split("\n\n") if p.startswith(_KEEP_PREFIXES)]
    pkgs = []
    for para in Packages.iter_paragraphs("\n\n".join(kept).splitlines(keepends=True), use_apt_pkg=False):
        if "SHA256" not in para or "Filename" not in para:
            continue
        pkgs.append(
            Pkg(
                name=para["Package"],
                version=para["Version"],
                arch=para.get("Architecture", ""),
                filename=para["Filename"],
                size=int(para["Size"]),
                sha256=para["SHA256"],
                depends=para.get("Depends", ""),
                suite=suite,
            )
        )
    return pkgs


def _digest(packages) -> str:
    """Of the kept paragraphs as verified: an entry edited on disk no longer matches it."""
    return hashlib.sha256(json.dumps(packages, sort_keys=True).encode()).hexdigest()


def _attempt(mirror: str) -> dict | None:
    """What a signature verdict depends on: the mirror and the keyring (path and content). None
    when there is no keyring to read: that error is raised by the verification itself."""
    try:
        ring = keyring()
        ring_sha = hashlib.sha256(ring.read_bytes()).hexdigest()
    except (InfraError, OSError):
        return None
    return {"mirror": mirror, "keyring": str(ring), "keyring_sha256": ring_sha}


def _remembered_refusal(refused: Path, mirror: str) -> str | None:
    """The message of a signature refusal given recently for this very mirror and keyring."""
    try:
        if time.time() - refused.stat().st_mtime >= INDEX_TTL:
            return None
        data = json.loads(refused.read_text())
        attempt = _attempt(mirror)
        if attempt is None or data.get("attempt") != attempt:
            return None      # another mirror or keyring since: try again
        return str(data["message"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None          # none, or an older kharness's record: not a reason to refuse


def _remember_refusal(refused: Path, mirror: str, message: str) -> None:
    attempt = _attempt(mirror)
    if attempt is None:
        return
    tmp = refused.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"attempt": attempt, "message": message}))
    os.replace(tmp, refused)


def _cache_path(suite: str, arch: str) -> Path:
    return cache_dir() / "index" / f"{suite}_{arch}.json"


def load_index(suite: str, arch: str, *, refresh: bool = False) -> PackageIndex:
    """The index for ``suite``/``arch``, from the cache when fresh enough."""
    path = _cache_path(suite, arch)
    with file_lock(path.with_suffix(".lock")):
        stale: dict | None = None
        if path.exists():
            try:
                data = json.loads(path.read_text())
                stale = data
                if data.get("digest") != _digest(data["packages"]):
                    raise ValueError("altered")
                if (not refresh and data.get("format") == INDEX_FORMAT
                        and time.time() - data["fetched"] < INDEX_TTL):
                    return PackageIndex(suite, arch, [Pkg(**p) for p in data["packages"]])
            except (ValueError, KeyError, TypeError):
                stale = None  # a corrupt or altered cache entry is refetched, never used
        refused = path.with_suffix(".refused")
        mirror = debian_mirror()
        remembered = None if refresh else _remembered_refusal(refused, mirror)
        if remembered is not None:
            # The same mirror and keyring refused the signature recently: the same verdict again,
            # without downloading the index again.
            raise InfraError(remembered)
        rel_path = f"main/binary-{arch}/Packages.xz"
        url = f"{mirror}/dists/{suite}/{rel_path}"
        try:
            with ui.step(f"reading the {suite} {arch} package index (signed)"):
                release = signed_release(mirror, suite)
                text = lzma.decompress(release.fetch(mirror, rel_path)).decode("utf-8", "replace")
        except SignatureRefused as e:
            msg = f"could not read the {suite} {arch} package index: {e}"
            _remember_refusal(refused, mirror, msg)
            raise InfraError(msg) from None
        except IndexRefused as e:
            # Not the signed bytes: never replaced by an older copy, but not remembered either
            # (a mirror caught mid-update serves the right file a moment later).
            raise InfraError(f"could not read the {suite} {arch} package index: {e}") from None
        except (InfraError, lzma.LZMAError) as e:
            why = getattr(e, "message", None) or str(e)
            if stale is not None:
                from rich.markup import escape

                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(stale.get("fetched", 0)))
                ui.info(f"[yellow]{escape(f'could not refresh the {suite} {arch} index ({why}); using the copy verified on {when}')}[/yellow]")
                return PackageIndex(suite, arch, [Pkg(**p) for p in stale["packages"]])
            raise InfraError(f"could not read the {suite} {arch} package index: {why}",
                             hint=getattr(e, "hint", None) or "check the network or KHARNESS_DEBIAN_MIRROR") from None
        pkgs = filter_index_text(text, suite)
        refused.unlink(missing_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fetched": time.time(), "url": url, "format": INDEX_FORMAT,
                                   "release_signers": list(release.signers),
                                   "digest": _digest([p.__dict__ for p in pkgs]),
                                   "packages": [p.__dict__ for p in pkgs]}))
        os.replace(tmp, path)
        return PackageIndex(suite, arch, pkgs)


@dataclass(frozen=True)
class SourcePkg:
    """A source package from a ``Sources`` index: its files with their SHA256 and size."""

    name: str
    version: str
    directory: str
    files: tuple[tuple[str, int, str], ...]   # (sha256, size, name)
    suite: str

    def file_pkg(self, fname: str) -> Pkg:
        sha, size, name = next(f for f in self.files if f[2] == fname)
        return Pkg(name=name, version=self.version, arch="source", filename=f"{self.directory}/{name}",
                   size=size, sha256=sha, depends="", suite=self.suite)


_KEEP_SOURCES = ("Package: busybox\n",)


def load_sources(suite: str, *, refresh: bool = False) -> dict[str, SourcePkg]:
    """The kept paragraphs of a suite's ``Sources`` index (busybox), cached like ``load_index``."""
    from debian.deb822 import Sources

    path = cache_dir() / "index" / f"{suite}_source.json"
    with file_lock(path.with_suffix(".lock")):
        if path.exists() and not refresh:
            try:
                data = json.loads(path.read_text())
                if time.time() - data["fetched"] < INDEX_TTL:
                    return {k: SourcePkg(**{**v, "files": tuple(tuple(f) for f in v["files"])})
                            for k, v in data["packages"].items()}
            except (ValueError, KeyError, TypeError):
                pass
        mirror = debian_mirror()
        url = f"{mirror}/dists/{suite}/main/source/Sources.xz"
        with ui.step(f"reading the {suite} source index (signed)"):
            release = signed_release(mirror, suite)
            text = lzma.decompress(release.fetch(mirror, "main/source/Sources.xz")).decode("utf-8", "replace")
        kept = [p for p in text.split("\n\n") if p.startswith(_KEEP_SOURCES)]
        out: dict[str, SourcePkg] = {}
        for para in Sources.iter_paragraphs("\n\n".join(kept).splitlines(keepends=True), use_apt_pkg=False):
            files = tuple((f["sha256"], int(f["size"]), f["name"]) for f in para.get("Checksums-Sha256", []))
            sp = SourcePkg(para["Package"], para["Version"], para["Directory"], files, suite)
            old = out.get(sp.name)
            if old is None or Version(sp.version) > Version(old.version):
                out[sp.name] = sp
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fetched": time.time(), "url": url,
                                   "packages": {k: v.__dict__ for k, v in out.items()}}))
        os.replace(tmp, path)
        return out
