"""Unit tests for kharness.debian.mirror: which Debian mirror the host's apt sources name."""

from __future__ import annotations

from pathlib import Path

import pytest

from kharness.debian import mirror
from kharness.errors import InfraError
from kharness.debian.mirror import (
    debian_mirror,
    host_mirrors,
    parse_deb822_sources,
    parse_one_line_sources,
)

DEB822 = """\
Types: deb deb-src
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://thirdparty.example/node_20.x
Suites: nodistro
Components: main

Types: deb-src
URIs: http://src-only.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://second.example/debian https://third.example/debian/
Suites: trixie
Components: main
"""


def test_deb822_keeps_only_enabled_main_archive_binary_entries():
    assert parse_deb822_sources(DEB822) == [
        "http://mirror.example/debian",
        "http://second.example/debian",
        "https://third.example/debian",
    ]


def test_deb822_enabled_yes_and_case_insensitive_no():
    text = (
        "Types: deb\nURIs: http://a.example/debian\nSuites: sid\nEnabled: yes\n\n"
        "Types: deb\nURIs: http://b.example/debian\nSuites: sid\nEnabled: No\n"
    )
    assert parse_deb822_sources(text) == ["http://a.example/debian"]


def test_deb822_paragraph_mixing_security_suite_is_skipped():
    text = "Types: deb\nURIs: http://mix.example/debian\nSuites: bookworm bookworm-security\n"
    assert parse_deb822_sources(text) == []


def test_deb822_non_http_uri_is_skipped_but_file_uri_kept():
    text = (
        "Types: deb\nURIs: cdrom:/media/cdrom/\nSuites: bookworm\n\n"
        "Types: deb\nURIs: file:/srv/mirror/debian/\nSuites: bookworm\n"
    )
    assert parse_deb822_sources(text) == ["file:/srv/mirror/debian"]


def test_deb822_comments_and_multiline_signed_by():
    text = (
        "# Modernized from /etc/apt/sources.list\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n\n"
        "## another entry\n"
        "Types: deb\n# a comment inside the paragraph\nURIs: http://m2.example/debian\nSuites: trixie\n"
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n -----END PGP PUBLIC KEY BLOCK-----\n"
    )
    assert parse_deb822_sources(text) == ["http://mirror.example/debian", "http://m2.example/debian"]


def test_deb822_empty_text():
    assert parse_deb822_sources("") == []


ONE_LINE = """\
# The main archive
deb http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg] http://signed.example/debian/ bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/y.gpg] http://multi.example/debian sid main
deb http://security.example/debian-security bookworm-security main
deb [signed-by=/k.gpg] https://thirdparty.example/repo nodistro main
#deb http://commented.example/debian bookworm main
deb http://trailing.example/debian trixie main # a trailing comment
deb http://nosuite.example/debian
"""


def test_one_line_sources():
    assert parse_one_line_sources(ONE_LINE) == [
        "http://mirror.example/debian",
        "http://signed.example/debian",
        "http://multi.example/debian",
        "http://trailing.example/debian",
    ]


def test_one_line_options_with_spaces_inside_brackets():
    text = "deb [ arch=amd64 signed-by=/k.gpg ] http://spaced.example/debian bookworm main\n"
    assert parse_one_line_sources(text) == ["http://spaced.example/debian"]


def test_one_line_indented_entry_and_blank_lines():
    text = "\n   deb http://indent.example/debian/ unstable main\n\n"
    assert parse_one_line_sources(text) == ["http://indent.example/debian"]


def _apt_dir(tmp_path: Path) -> Path:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "deb http://one-line.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    (apt / "sources.list.d" / "b-debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n"
    )
    (apt / "sources.list.d" / "a-extra.list").write_text(
        "deb http://extra.example/debian trixie main\n"
        # a duplicate of the .sources entry: reported once, at its first position
        "deb http://mirror.example/debian/ bookworm main\n"
    )
    (apt / "sources.list.d" / "c-node.sources").write_text(
        "Types: deb\nURIs: https://thirdparty.example/node\nSuites: nodistro\nComponents: main\n"
    )
    (apt / "sources.list.d" / "d-ignored.save").write_text(
        "deb http://ignored.example/debian bookworm main\n"
    )
    return apt


def test_host_mirrors_reading_order_and_dedup(tmp_path):
    assert host_mirrors(_apt_dir(tmp_path)) == [
        "http://one-line.example/debian",
        "http://extra.example/debian",
        "http://mirror.example/debian",
    ]


def test_host_mirrors_missing_dir(tmp_path):
    assert host_mirrors(tmp_path / "nothing") == []


def test_debian_mirror_env_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.ENV_VAR, "  http://env.example/debian/  ")
    assert debian_mirror(_apt_dir(tmp_path)) == "http://env.example/debian"


def test_debian_mirror_from_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    assert debian_mirror(_apt_dir(tmp_path)) == "http://one-line.example/debian"


def test_debian_mirror_blank_env_falls_back_to_apt(tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.ENV_VAR, "   ")
    assert debian_mirror(_apt_dir(tmp_path)) == "http://one-line.example/debian"


def test_debian_mirror_nothing_configured(tmp_path, monkeypatch):
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "node.sources").write_text(
        "Types: deb\nURIs: https://thirdparty.example/node\nSuites: nodistro\n"
    )
    with pytest.raises(InfraError) as ei:
        debian_mirror(apt)
    assert ei.value.message == f"no Debian mirror: the host's apt sources in {apt} name no Debian suite, " \
                               "only nodistro (not a Debian host)"
    assert ei.value.hint == mirror.NO_MIRROR_HINT
    assert ei.value.exit_code == 2


# An Ubuntu runner's sources (ubuntu-latest): deb822, Ubuntu's suites only.
UBUNTU_SOURCES = """\
Types: deb
URIs: http://mirror.example/ubuntu/
Suites: noble noble-updates noble-backports
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/ubuntu/
Suites: noble-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""


def test_an_ubuntu_host_is_told_it_is_not_debian_and_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("# Ubuntu sources have moved to /etc/apt/sources.list.d/ubuntu.sources\n")
    (apt / "sources.list.d" / "ubuntu.sources").write_text(UBUNTU_SOURCES)
    # The default directory is read when asked (not bound at import): doctor and the CLI use it.
    monkeypatch.setattr(mirror, "APT_DIR", apt)
    with pytest.raises(InfraError) as ei:
        debian_mirror()
    line = str(ei.value)
    assert "\n" not in line
    assert line == (f"no Debian mirror: the host's apt sources in {apt} name no Debian suite, only noble, "
                    "noble-updates, noble-backports, noble-security (not a Debian host) (run kharness in a "
                    "Debian container (GitHub Actions: `container: debian:bookworm`) or set "
                    "KHARNESS_DEBIAN_MIRROR=<URL of a Debian archive mirror>)")
    monkeypatch.setenv(mirror.ENV_VAR, "http://mirror.example/debian")   # the other fix
    assert debian_mirror() == "http://mirror.example/debian"


def test_no_apt_sources_at_all(tmp_path, monkeypatch):
    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    with pytest.raises(InfraError) as ei:
        debian_mirror(tmp_path / "none")
    assert ei.value.message == f"no Debian mirror: the host has no apt sources in {tmp_path / 'none'} " \
                               "(not a Debian host)"


# --- the deb822 reader agrees with python-debian's -------------------------------------------

TRICKY = [
    "",
    "\n\n  \n",
    "# only a comment\n",
    "Types: deb\r\nURIs: http://crlf.example/debian\r\nSuites: bookworm\r\n\r\nTypes: deb\r\n",
    "\n\n \t\nTypes: deb\nURIs:   http://a.example/debian   \nSuites: bookworm\n \t \nTypes: deb-src\n",
    " continuation before any field\nTypes: deb\nURIs: http://b.example/debian\n",
    "Types: deb\nURIs: http://c.example/debian\n\njust junk, no field\n\nTypes: deb\nURIs: http://after-junk.example\n",
    "types: deb\nTYPES: deb-src\nUris: http://case.example/debian\nURIs: http://case2.example/debian\n",
    "Types: deb\nURIs:\n http://x.example/debian\n\thttp://y.example/debian\nSuites: trixie\n",
    "Types: deb\n#URIs: http://commented.example\nURIs: http://d.example/debian\n  # indented, not a comment\n",
    "Types: deb\nnot a field\n more of the field before it\nEnabled: No\n",
    "Types: deb\nURIs: http://e.example/debian\n\u00a0\nSuites: sid\n",
    "X-Empty:\nTypes:deb\nURIs:http://f.example/debian\nSuites:  sid  trixie  \n",
]


@pytest.mark.parametrize("text", [DEB822, *TRICKY], ids=range(len(TRICKY) + 1))
def test_deb822_paragraphs_read_as_python_debian_reads_them(text):
    from debian.deb822 import Deb822

    from kharness.debian.mirror import deb822_paragraphs

    want = [{k.lower(): v for k, v in p.items()} for p in Deb822.iter_paragraphs(text.splitlines())]
    assert deb822_paragraphs(text) == want


def test_deb822_paragraphs_of_this_hosts_apt_sources():
    from debian.deb822 import Deb822

    from kharness.debian.mirror import APT_DIR, deb822_paragraphs

    files = sorted((APT_DIR / "sources.list.d").glob("*.sources")) if (APT_DIR / "sources.list.d").is_dir() else []
    if not files:
        pytest.skip("no deb822 apt sources on this host")
    for f in files:
        text = f.read_text(errors="replace")
        assert deb822_paragraphs(text) == [{k.lower(): v for k, v in p.items()}
                                           for p in Deb822.iter_paragraphs(text.splitlines())], f


def test_on_an_ubuntu_host_a_command_that_needs_the_archive_says_so_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from kharness.cli import app

    monkeypatch.delenv(mirror.ENV_VAR, raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "ubuntu.sources").write_text(UBUNTU_SOURCES)
    monkeypatch.setattr(mirror, "APT_DIR", apt)
    r = CliRunner().invoke(app, ["kernels"], env={"KHARNESS_CACHE": str(tmp_path / "cache"), "COLUMNS": "80"})
    assert r.exit_code == 2
    assert r.output.splitlines() == [
        f"kharness: error: no Debian mirror: the host's apt sources in {apt} name no Debian suite, only noble, "
        "noble-updates, noble-backports, noble-security (not a Debian host) (run kharness in a Debian container "
        "(GitHub Actions: `container: debian:bookworm`) or set KHARNESS_DEBIAN_MIRROR=<URL of a Debian archive "
        "mirror>)"]
