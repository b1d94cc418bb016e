"""Host keys against a real SSH server (paramiko's server side on 127.0.0.1): a pinned key, the
user's known_hosts (plain and hashed entries, the [host]:port form), accept-new, and a changed key
that is refused whatever the options."""

from __future__ import annotations

import stat

import paramiko
import pytest
from ssh_server import Keys, SshServer, public_line

from kharness.errors import InfraError, UsageError
from kharness.vm.ssh import HostKeyRefused, HostKeys, SshAddress, SshGuest
from kharness.vm.ssh_hostkeys import parse_public_key

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


@pytest.fixture
def server(keys):
    with SshServer(keys.host, [keys.client]) as s:
        yield s


def _connect(server, keys, host_keys: HostKeys) -> SshGuest:
    g = SshGuest(SshAddress("root", "127.0.0.1", server.port), identity=keys.identity, host_keys=host_keys,
                 use_agent=False, cleanup=False)
    try:
        g.connect(20)
    except BaseException:
        g.close()
        raise
    return g


def _name(server) -> str:
    return f"[127.0.0.1]:{server.port}"


def test_the_pinned_key_is_accepted(server, keys):
    g = _connect(server, keys, HostKeys(pinned=public_line(keys.host) + " comment"))
    assert g.run("echo ok", 10).stdout == "ok\n"
    g.close()


def test_another_pinned_key_is_refused_with_both_fingerprints(server, keys):
    other = paramiko.ECDSAKey.generate()
    with pytest.raises(HostKeyRefused) as e:
        _connect(server, keys, HostKeys(pinned=public_line(other)))
    msg = str(e.value)
    assert keys.host.fingerprint in msg and other.fingerprint in msg and "pinned" in msg
    assert keys.host.fingerprint.startswith("SHA256:") and "\n" not in msg
    assert isinstance(e.value, InfraError)


def test_a_pinned_key_of_another_type_is_refused(server, keys, tmp_path):
    rsa = paramiko.RSAKey.generate(2048)
    with pytest.raises(HostKeyRefused) as e:
        _connect(server, keys, HostKeys(pinned=public_line(rsa)))
    assert keys.host.fingerprint in str(e.value)


def test_an_unknown_host_is_refused_and_known_hosts_left_alone(server, keys, tmp_path):
    kh = tmp_path / "ssh" / "known_hosts"
    with pytest.raises(HostKeyRefused) as e:
        _connect(server, keys, HostKeys(known_hosts=kh))
    assert "unknown host key" in str(e.value) and keys.host.fingerprint in str(e.value)
    assert "--accept-new-host-key" in str(e.value)
    assert not kh.exists()


def test_accept_new_adds_the_key_then_it_is_known(server, keys, tmp_path):
    kh = tmp_path / "ssh" / "known_hosts"
    _connect(server, keys, HostKeys(known_hosts=kh, accept_new=True)).close()
    assert kh.read_text() == f"{_name(server)} {public_line(keys.host)}\n"
    assert stat.S_IMODE(kh.stat().st_mode) == 0o600
    assert stat.S_IMODE(kh.parent.stat().st_mode) == 0o700
    _connect(server, keys, HostKeys(known_hosts=kh)).close()   # no accept_new needed any more
    assert kh.read_text().count("\n") == 1


def test_accept_new_appends_to_an_existing_file(server, keys, tmp_path):
    kh = tmp_path / "known_hosts"
    other = paramiko.ECDSAKey.generate()
    kh.write_text(f"elsewhere {public_line(other)}")   # no final newline
    _connect(server, keys, HostKeys(known_hosts=kh, accept_new=True)).close()
    assert kh.read_text().splitlines() == [f"elsewhere {public_line(other)}", f"{_name(server)} {public_line(keys.host)}"]


@pytest.mark.parametrize("accept_new", [False, True])
@pytest.mark.parametrize("old", ["ecdsa", "rsa"])
def test_a_changed_key_is_refused_even_with_accept_new(server, keys, tmp_path, accept_new, old):
    kh = tmp_path / "known_hosts"
    was = paramiko.ECDSAKey.generate() if old == "ecdsa" else paramiko.RSAKey.generate(2048)
    kh.write_text(f"{_name(server)} {public_line(was)}\n")
    before = kh.read_text()
    with pytest.raises(HostKeyRefused) as e:
        _connect(server, keys, HostKeys(known_hosts=kh, accept_new=accept_new))
    msg = str(e.value)
    assert "CHANGED" in msg and keys.host.fingerprint in msg and "ssh-keygen" in msg and "-R" in msg
    assert kh.read_text() == before


def test_hashed_entries_and_other_lines_are_read(server, keys, tmp_path):
    kh = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host(_name(server))
    kh.write_text("# comment\n\n@cert-authority *.example ssh-ed25519 AAAA\nnot a key line\n"
                  f"{hashed} {public_line(keys.host)}\n")
    _connect(server, keys, HostKeys(known_hosts=kh)).close()


def test_port_22_entries_are_not_used_for_another_port(server, keys, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(f"127.0.0.1 {public_line(keys.host)}\n")   # the same host on port 22: a different entry
    with pytest.raises(HostKeyRefused, match="unknown host key"):
        _connect(server, keys, HostKeys(known_hosts=kh))


def test_a_bad_pinned_line_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_public_key("ssh-ed25519")
    with pytest.raises(UsageError):
        parse_public_key("ssh-ed25519 !!!notbase64")
