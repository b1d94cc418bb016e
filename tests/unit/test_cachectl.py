"""`kharness cache ls|clean`: entries by kind and size, pruning, and staging directories left by
killed runs (removed) versus ones being filled right now (kept)."""

from __future__ import annotations

import os
import time

from kharness import cachectl
from kharness.lock import file_lock


def _tree(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path))
    builds = tmp_path / "builds"
    (builds / "hello-6.1").mkdir(parents=True)
    (builds / "hello-6.1" / "hello.ko").write_bytes(b"x" * 1000)
    (builds / "hello-6.1.lock").touch()
    (builds / ".hello-6.1.abc123.tmp").mkdir()                 # its producer was killed
    (builds / ".hello-6.1.abc123.tmp" / "part").write_bytes(b"y" * 10)
    (builds / ".busy-6.1.def456.tmp").mkdir()                  # being produced (lock held below)
    (builds / "busy-6.1.lock").touch()
    return builds


def test_entries_and_abandoned_staging(tmp_path, monkeypatch):
    builds = _tree(tmp_path, monkeypatch)
    assert cachectl.cache_entries() == [("builds", "hello-6.1", 1000)]
    with file_lock(builds / "busy-6.1.lock"):
        assert cachectl.abandoned_staging() == [builds / ".hello-6.1.abc123.tmp"]


def test_clean_removes_abandoned_staging_and_old_entries(tmp_path, monkeypatch):
    builds = _tree(tmp_path, monkeypatch)
    with file_lock(builds / "busy-6.1.lock"):
        n, size = cachectl.clean(None, older_than_days=30)      # the entry is new: kept
        assert (n, size) == (1, 10)
        assert (builds / "hello-6.1").is_dir() and (builds / ".busy-6.1.def456.tmp").is_dir()
        assert not (builds / ".hello-6.1.abc123.tmp").exists()
    old = time.time() - 40 * 86400
    os.utime(builds / "hello-6.1", (old, old))
    assert cachectl.clean(["builds"], older_than_days=30) == (2, 1000)   # the entry, the dead staging dir
    assert cachectl.cache_entries() == []


def test_clean_removes_abandoned_downloads_but_not_one_in_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path))
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "aaa.deb").write_bytes(b"d" * 7)                   # a verified download: an entry
    (debs / "aaa.deb.lock").touch()
    (debs / "bbb.deb.part").write_bytes(b"p" * 100)            # its downloader was killed
    (debs / "bbb.deb.lock").touch()
    (debs / "ccc.deb.part").write_bytes(b"q" * 50)             # being downloaded (lock held below)
    (debs / "ddd.deb.part").write_bytes(b"r" * 5)              # no lock file at all: nobody writes it
    with file_lock(debs / "ccc.deb.lock"):
        assert cachectl.clean(None, older_than_days=30) == (2, 105)
        assert (debs / "ccc.deb.part").exists() and (debs / "aaa.deb").exists()
        assert not (debs / "bbb.deb.part").exists() and not (debs / "ddd.deb.part").exists()
    assert cachectl.cache_entries() == [("debs", "aaa.deb", 7)]
    assert cachectl.reap_abandoned_staging() == 1               # every run reaps it too
    assert not (debs / "ccc.deb.part").exists()
