"""Unpack a .deb's data safely.

python-debian opens the archive; every member is then checked before anything touches the disk:
no absolute paths, no ``..``, no device files, no link that points out of the unpack root, no
write through a symlinked parent. Absolute symlinks (``build -> /usr/src/...``) are rewritten to
point inside the unpack root, which is where the package's files really are.

Links are judged by where the OS resolves them (``realpath``), never by their text: a link
through another link (``a/s -> ..`` then ``a/t -> s/..``) reads as inside and resolves outside.
A link is checked once made, and every link under the root once more after the unpack, since a
later member can turn a directory an earlier link runs through into a link. Files are created
with ``O_EXCL | O_NOFOLLOW``. (tarfile's ``filter="data"`` does not fit: it refuses the absolute
links that kernel packages ship and kharness re-roots, and this module writes members itself.)
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path
from typing import Callable

from kharness.errors import InfraError


class UnsafeArchive(InfraError):
    pass


def _clean_name(name: str, deb: Path) -> str:
    if name.startswith("/"):
        raise UnsafeArchive(f"{deb.name}: absolute path {name!r} in archive: refusing to unpack it")
    norm = posixpath.normpath(name)
    parts = norm.split("/")
    if ".." in parts:
        raise UnsafeArchive(f"{deb.name}: path {name!r} leaves the unpack directory: refusing to unpack it")
    return "" if norm == "." else norm


def _inside(root: Path, path: str) -> bool:
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(str(root) + os.sep)


def escaping_links(root: Path) -> list[str]:
    """The symlinks under ``root`` (relative paths) that resolve outside it."""
    root = Path(os.path.realpath(root))
    bad = []
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            if os.path.islink(p) and not _inside(root, p):
                bad.append(os.path.relpath(p, root))
    return sorted(bad)


def extract_deb(deb: Path, dest: Path, select: Callable[[str], bool] | None = None) -> list[str]:
    """Unpack the members of ``deb`` that ``select`` accepts (all by default) under ``dest``.

    Returns the relative paths written.
    """
    # Here, not at the top: every run imports this module, few unpack a package, and
    # python-debian's debfile (with deb822 and changelog) and tarfile are ~15 ms of imports.
    import tarfile

    from debian.arfile import ArError
    from debian.debfile import DebError, DebFile

    dest.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(dest))
    written: list[str] = []
    try:
        tar = DebFile(str(deb)).data.tgz()
    except (DebError, ArError, OSError, tarfile.TarError) as e:
        raise InfraError(f"{deb.name} is not a readable Debian package: {e}") from e
    try:
        for m in tar:
            rel = _clean_name(m.name, deb)
            if not rel or (select is not None and not select(rel)):
                continue
            target = root / rel
            if not _inside(root, str(target.parent)):
                raise UnsafeArchive(f"{deb.name}: {rel!r} would be written through a link out of the unpack directory")
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            if m.issym():
                link = m.linkname
                if link.startswith("/"):
                    # Re-root an absolute link inside the unpack directory.
                    link = os.path.relpath(root / link.lstrip("/"), target.parent)
                # Judge the link where the OS will resolve it: through the real (symlink-free)
                # path of its parent, not the textual one.
                resolved = posixpath.normpath(posixpath.join(os.path.realpath(target.parent), link))
                if not (resolved == str(root) or resolved.startswith(str(root) + "/")):
                    raise UnsafeArchive(f"{deb.name}: symlink {rel!r} -> {m.linkname!r} points out of the unpack directory")
                os.symlink(link, target)
                # The text stayed inside; where it resolves through earlier links may not.
                if not _inside(root, str(target)):
                    os.unlink(target)
                    raise UnsafeArchive(f"{deb.name}: symlink {rel!r} -> {m.linkname!r} points out of the unpack "
                                        "directory through another link")
            elif m.islnk():
                src = root / _clean_name(m.linkname, deb)
                if not _inside(root, str(src)):
                    raise UnsafeArchive(f"{deb.name}: hard link {rel!r} points out of the unpack directory")
                os.link(src, target)
            elif m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                # O_EXCL | O_NOFOLLOW: whatever stood at target was removed above; never write
                # through a link that appeared meanwhile.
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, m.mode & 0o755)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(f, out, 1 << 20)
                    os.fchmod(out.fileno(), m.mode & 0o755)
            else:
                continue  # devices, fifos: nothing a kernel package needs
            written.append(rel)
    except tarfile.TarError as e:
        raise InfraError(f"{deb.name}: corrupt archive: {e}") from e
    finally:
        tar.close()
    # A later member can retarget a directory an earlier link runs through (``d/`` then ``l -> d/..``
    # then ``d -> .``): judge every link again, as it resolves now.
    bad = escaping_links(root)
    if bad:
        for rel in bad:
            os.unlink(root / rel)
        raise UnsafeArchive(f"{deb.name}: symlink {bad[0]!r} resolves out of the unpack directory "
                            f"through another link: refusing to unpack it")
    return written
