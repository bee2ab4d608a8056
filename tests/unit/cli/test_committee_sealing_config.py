"""A local committee's sealing keys: one DKG run at the first start, each member's share in its
own file, read strictly from the ``[committee.sealing]`` table, kept for later starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncdex.cli.committee_cmd import member_dir, write_member_configs
from asyncdex.cli.committee_config import CommitteeConfigError, load_committee
from asyncdex.fairness.bls import encode_g1, g1_generator, g1_mul

REPO = Path(__file__).resolve().parents[3]
BASE = REPO / "examples" / "committee.toml"


def test_every_member_gets_the_same_key_and_its_own_share(tmp_path: Path) -> None:
    paths = write_member_configs(tmp_path, BASE, 4, 19_100, sealing_epoch_ms=500)
    settings = [load_committee(path) for path in paths]
    keys = set()
    for index, member in enumerate(settings):
        assert member is not None and member.sealing is not None
        sealing = member.sealing
        assert sealing.epoch_ms == 500 and sealing.key.threshold == 2
        assert sealing.share is not None and sealing.share.index == index + 1
        public = encode_g1(g1_mul(g1_generator(), sealing.share.secret))
        assert public == sealing.key.public_shares[index]
        keys.add(sealing.key)
        mode = (member_dir(tmp_path, index) / "sealing.json").stat().st_mode & 0o777
        assert mode == 0o600
    assert len(keys) == 1
    # a later start keeps them
    again = write_member_configs(tmp_path, BASE, 4, 19_100, sealing_epoch_ms=500)
    first = load_committee(again[0])
    assert first is not None and first.sealing is not None
    assert first.sealing.key in keys


def test_without_sealing_there_is_no_table(tmp_path: Path) -> None:
    (path,) = write_member_configs(tmp_path, BASE, 1, 19_200)
    member = load_committee(path)
    assert member is not None and member.sealing is None
    assert not (member_dir(tmp_path, 0) / "sealing.json").exists()


def test_a_share_of_another_member_or_a_damaged_file_is_refused(tmp_path: Path) -> None:
    paths = write_member_configs(tmp_path, BASE, 4, 19_300, sealing_epoch_ms=500)
    first, second = (member_dir(tmp_path, i) / "sealing.json" for i in (0, 1))
    first_text, second_text = first.read_text(), second.read_text()
    first.write_text(second_text)
    with pytest.raises(CommitteeConfigError, match="share of DKG member 2"):
        load_committee(paths[0])
    document = json.loads(first_text)
    document["share"] = "0x" + "11" * 32
    first.write_text(json.dumps(document))
    with pytest.raises(CommitteeConfigError, match="does not match"):
        load_committee(paths[0])
    first.write_text("{")
    with pytest.raises(CommitteeConfigError, match=r"sealing\.json"):
        load_committee(paths[0])


def test_half_made_sealing_keys_are_refused(tmp_path: Path) -> None:
    write_member_configs(tmp_path, BASE, 4, 19_400, sealing_epoch_ms=500)
    (member_dir(tmp_path, 3) / "sealing.json").unlink()
    with pytest.raises(ValueError, match=r"some members have a sealing\.json"):
        write_member_configs(tmp_path, BASE, 4, 19_400, sealing_epoch_ms=500)
