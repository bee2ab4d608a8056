"""The sealing key file's JSON form: round trip, and every flaw refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from asyncdex.fairness.keyfile import parse_sealing_key_document, sealing_key_document

from .conftest import Committee


def test_round_trip_with_and_without_a_share(committee: Committee) -> None:
    for share in (committee.shares[2], None):
        document = sealing_key_document(committee.key, share)
        assert parse_sealing_key_document(document) == (committee.key, share)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": 1}, "unknown key"),
        ({"threshold": None}, "threshold"),
        ({"public_key": "0x12"}, "public_key"),
        ({"public_shares": "0x"}, "public_shares"),
        ({"member": 9}, "member"),
        ({"member": 2}, "does not match public_shares"),
        ({"share": "0x" + "ff" * 32}, "share"),
    ],
)
def test_flaws_are_named(committee: Committee, change: dict[str, Any], message: str) -> None:
    document = sealing_key_document(committee.key, committee.shares[0]) | change
    with pytest.raises(ValueError, match=message):
        parse_sealing_key_document(document)


def test_member_and_share_go_together(committee: Committee) -> None:
    document = sealing_key_document(committee.key, committee.shares[0])
    del document["share"]
    with pytest.raises(ValueError, match="together"):
        parse_sealing_key_document(document)
    with pytest.raises(ValueError, match="missing"):
        parse_sealing_key_document({"threshold": 2})
