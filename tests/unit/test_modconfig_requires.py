"""``[module] requires``: kernel modules (with parameters) to load before the module under test."""

from __future__ import annotations

import pytest

from kharness.errors import UsageError
from kharness.modconfig import Requirement, load_config, parse_requires


def _load(tmp_path, body: str):
    (tmp_path / "kharness.toml").write_text(body)
    return load_config(tmp_path)


def test_requires_parsed_with_parameters(tmp_path):
    cfg = _load(tmp_path, '[module]\nrequires = ["i2c-stub chip_addr=0x48", "snd-dummy", '
                          '"scsi_debug dev_size_mb=8 num_tgts=2"]\n')
    assert cfg.requires == (Requirement("i2c-stub", (("chip_addr", "0x48"),)),
                            Requirement("snd-dummy"),
                            Requirement("scsi_debug", (("dev_size_mb", "8"), ("num_tgts", "2"))))
    assert [r.module for r in cfg.requires] == ["i2c_stub", "snd_dummy", "scsi_debug"]
    assert cfg.requires[2].insmod_args() == ["dev_size_mb=8", "num_tgts=2"]
    assert cfg.requires[0].to_dict() == {"name": "i2c-stub", "params": {"chip_addr": "0x48"}}


def test_no_requires_is_empty(tmp_path):
    assert _load(tmp_path, '[module]\nname = "x"\n').requires == ()
    assert load_config(tmp_path / "nowhere").requires == ()


def test_a_quoted_value_with_spaces_is_passed_quoted():
    (r,) = parse_requires(['dummy_hcd label="two words"'], "t")
    assert r.params == (("label", "two words"),)
    assert r.insmod_args() == ['label="two words"']


@pytest.mark.parametrize("entry, why", [
    ("", "does not start with a kernel module's name"),
    ("../evil", "does not start with a kernel module's name"),
    ("i2c-stub;reboot", "does not start with a kernel module's name"),
    ("$(reboot)", "does not start with a kernel module's name"),
    ("i2c-stub chip_addr", "'chip_addr' is not key=value"),
    ("i2c-stub 1bad=2", "is not a module parameter name"),
    ('i2c-stub "unclosed', "No closing quotation"),
])
def test_bad_entries_refused_before_any_work(tmp_path, entry, why):
    with pytest.raises(UsageError, match=why) as ei:
        _load(tmp_path, f"[module]\nrequires = ['{entry}']\n")   # (a TOML literal string: as written)
    assert ei.value.exit_code == 2
    assert "[module] requires" in ei.value.message


def test_requires_must_be_a_list_of_strings(tmp_path):
    with pytest.raises(UsageError, match="must be a list of strings"):
        _load(tmp_path, '[module]\nrequires = "snd-dummy"\n')
    with pytest.raises(UsageError, match="must be a list of strings"):
        _load(tmp_path, '[module]\nrequires = [{ name = "snd-dummy" }]\n')


def test_the_same_module_twice_is_refused():
    with pytest.raises(UsageError, match="snd_dummy is required twice|snd-dummy is required twice"):
        parse_requires(["snd-dummy", "snd_dummy index=1"], "t")
