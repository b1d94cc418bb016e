"""Which suites the mirror has, and what each is: read from the archive's own signed Release files.

Debian moves: a release becomes oldstable, bullseye leaves the mirrors, sid moves to a new kernel
series. So kharness never decides which codename is ``stable``; it asks the mirror. Each of the
archive's permanent aliases (``stable``, ``testing``, ...) has a signed ``InRelease`` whose
``Codename`` field names the suite behind it; ``<codename>-backports`` of each stable release is
probed too. Codenames that carried kharness's named series when it was written are probed as well,
so a mirror that serves codenames only (a partial or private one) still works; one that has left
the mirror is simply absent. Which *kernel series* each suite offers is read from its Packages
index by :mod:`kharness.kernels.resolve`.

The discovered list is cached for ``SUITES_TTL`` (the indices behind it have their own lifetime);
if the mirror cannot be reached then, the previous list is used with a warning.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass

from kharness import ui
from kharness.debian.download import fetch_bytes
from kharness.debian.mirror import debian_mirror
from kharness.debian.release import IN_RELEASE_LIMIT, IndexRefused, SignatureRefused, SignedRelease, verify_inrelease
from kharness.errors import InfraError
from kharness.lock import file_lock
from kharness.paths import cache_dir

SUITES_TTL = 3600
SUITES_FORMAT = 2

# The archive's permanent aliases, oldest first: this order ranks suites that offer one series.
ARCHIVE_ALIASES = ("oldoldstable", "oldstable", "stable", "testing", "unstable")
_RANK = ("oldoldstable", "oldoldstable-backports", "oldstable", "oldstable-backports", "stable",
         "stable-backports", "testing", "unstable")

# Where kharness's named series lived when this was written, first choice first. Only a hint: the
# resolver looks there first (one index instead of all), and scans every suite when the hint misses.
# 6.12: bookworm-backports' build uses gcc-12, trixie's gcc-14 (see resolve's host-compiler ranking).
LAST_KNOWN: dict[str, tuple[str, ...]] = {
    "5.10": ("bullseye",),
    "6.1": ("bookworm",),
    "6.12": ("bookworm-backports", "trixie"),
    "7.2": ("sid",),
}

# A codename read from a Release goes into URLs and cache file names: nothing but a plain name.
_NAME_RE = re.compile(r"^[a-z][a-z0-9.+-]{0,40}$")


@dataclass(frozen=True)
class Suite:
    name: str    # the directory under dists/: a codename (bookworm, trixie-backports, sid)
    alias: str   # the archive's Suite field for it (oldstable, stable-backports, unstable), or ""
    archs: tuple[str, ...] = ()   # its Architectures field (bullseye has no ppc64el); () = unknown

    def has_arch(self, arch: str) -> bool:
        return not self.archs or arch in self.archs

    @property
    def rank(self) -> int:
        return _RANK.index(self.alias) if self.alias in _RANK else len(_RANK)

    def label(self) -> str:
        return f"{self.name} ({self.alias})" if self.alias and self.alias != self.name else self.name


def _absent(e: BaseException) -> bool:
    """The mirror answered that this suite is not there (as opposed to: it could not be asked)."""
    import urllib.error   # (here: a run that downloads nothing does not import urllib)

    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 5:
        if isinstance(cur, urllib.error.HTTPError) and cur.code in (404, 410):
            return True
        if isinstance(cur, FileNotFoundError):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return "HTTP Error 404" in str(e) or "HTTP Error 410" in str(e)


def signed_payload(signed: bytes) -> str:
    """The text of a clearsigned message, as gpgv checked it: the one signed block, nothing around it.

    release.py verifies the signature but keeps only the checksums; the Suite and Codename fields are
    read here from the same bytes, and :func:`read_suite` checks that what was read lists exactly
    the checksums that verified."""
    text = signed.decode("utf-8", "replace").replace("\r\n", "\n")
    head = "-----BEGIN PGP SIGNED MESSAGE-----\n"
    if not text.startswith(head) or text.count(head) != 1:
        raise InfraError("an InRelease that is not exactly one clearsigned message: refusing it")
    _, sep, body = text[len(head):].partition("\n\n")      # armor headers ("Hash: ...") end here
    payload, sig, _ = body.partition("\n-----BEGIN PGP SIGNATURE-----")
    if not sep or not sig:
        raise InfraError("an InRelease without a complete clearsigned block: refusing it")
    return "\n".join(ln[2:] if ln.startswith("- ") else ln for ln in payload.split("\n")) + "\n"


def release_fields(signed: bytes, verified: SignedRelease) -> tuple[str, str, tuple[str, ...]]:
    """``(Suite, Codename, Architectures)`` of a verified InRelease."""
    from debian.deb822 import Release   # here: deb822 costs every run its import; few read a Release

    rel = Release(signed_payload(signed))
    files = {e["name"]: (e["sha256"], int(e["size"])) for e in rel.get("SHA256", [])}
    if files != verified.files:
        raise InfraError(f"the {verified.suite} InRelease read two ways differs from what verified: refusing it")
    return (str(rel.get("Suite", "")).strip(), str(rel.get("Codename", "")).strip(),
            tuple(str(rel.get("Architectures", "")).split()))


def read_suite(mirror: str, name: str) -> Suite | None:
    """The suite behind ``dists/<name>`` (an alias or a codename), verified; None if the mirror lacks it."""
    try:
        signed = fetch_bytes(f"{mirror}/dists/{name}/InRelease", limit=IN_RELEASE_LIMIT)
    except InfraError as e:
        if _absent(e):
            return None
        raise
    verified = verify_inrelease(name, signed)
    alias, codename, archs = release_fields(signed, verified)
    codename = codename or name
    if not _NAME_RE.match(codename) or (alias and not _NAME_RE.match(alias)):
        raise InfraError(f"the signed {name} Release names its suite {codename!r}/{alias!r}: refusing it")
    if not all(_NAME_RE.match(a) for a in archs):
        archs = ()
    return Suite(codename, alias if alias != codename else "", archs)


def discover(mirror: str) -> list[Suite]:
    """Every suite of interest the mirror has, ranked oldest first."""
    found: dict[str, Suite] = {}
    errors: list[InfraError] = []

    def probe(name: str) -> None:
        try:
            s = read_suite(mirror, name)
        except InfraError as e:
            errors.append(e)
            return
        if s is not None and s.name not in found:
            found[s.name] = s

    for alias in ARCHIVE_ALIASES:
        probe(alias)
    for s in list(found.values()):
        if s.alias.endswith("stable"):
            probe(f"{s.name}-backports")
    # What the alias paths said is the truth about the aliases: a codename probed below whose own
    # (older) Release still claims one of them keeps its name only.
    claimed = {s.alias for s in found.values()}
    for names in LAST_KNOWN.values():
        for name in names:
            if name not in found:
                probe(name)
                if name in found and found[name].alias in claimed:
                    found[name] = Suite(name, "", found[name].archs)
    if not found and errors:
        raise errors[0]
    for e in errors:
        ui.info(f"[yellow]not using a suite: {e}[/yellow]")
    return sorted(found.values(), key=lambda s: (s.rank, s.name))


def archive_suites(*, refresh: bool = False) -> list[Suite]:
    """The suites the mirror has (cached for ``SUITES_TTL``)."""
    path = cache_dir() / "index" / "suites.json"
    mirror = debian_mirror()
    with file_lock(path.with_suffix(".lock")):
        stale: list[Suite] | None = None
        try:
            data = json.loads(path.read_text())
            if data.get("format") == SUITES_FORMAT and data.get("mirror") == mirror:
                stale = [Suite(n, a, tuple(archs)) for n, a, archs in data["suites"]]
                if not refresh and time.time() - data["fetched"] < SUITES_TTL:
                    return stale
        except (OSError, ValueError, KeyError, TypeError):
            stale = None
        try:
            with ui.step("reading which suites the mirror has (signed)"):
                suites = discover(mirror)
        except InfraError as e:
            if isinstance(e, (SignatureRefused, IndexRefused)) or "refusing it" in str(e):
                raise   # a verdict on the archive, never papered over with an older list
            if stale is not None:
                ui.info(f"[yellow]could not re-read the mirror's suites ({e}); using the list read earlier[/yellow]")
                return stale
            # Offline on first use: the codenames last known, whose indices may be cached.
            ui.info(f"[yellow]could not read the mirror's suites ({e}); trying the suites last known[/yellow]")
            return [Suite(n, "") for n in dict.fromkeys(n for ns in LAST_KNOWN.values() for n in ns)]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": SUITES_FORMAT, "fetched": time.time(), "mirror": mirror,
                                   "suites": [[s.name, s.alias, list(s.archs)] for s in suites]}))
        os.replace(tmp, path)
        return suites


def alias_names(suites: list[Suite]) -> dict[str, str]:
    """What ``--kernel`` accepts for a suite: its alias, its codename, and ``backports`` (the
    current stable release's backports) -> the suite's directory name."""
    out: dict[str, str] = {}
    for s in suites:
        out[s.name] = s.name
        if s.alias:
            out[s.alias] = s.name
    stable = next((s for s in suites if s.alias == "stable"), None)
    if stable and f"{stable.name}-backports" in out:
        out["backports"] = f"{stable.name}-backports"
    return out
