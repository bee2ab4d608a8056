"""Messages from peers wait in one bounded queue per peer, served in turn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asyncdex.committee import CommitteeMember, InvalidFrame
from asyncdex.committee.runtime import _INBOUND_PER_PEER, _MESSAGES_PER_TURN
from asyncdex.consensus import Committee, ForwardItem, Secp256k1Signer
from asyncdex.consensus.messages import encode

SIGNERS = [Secp256k1Signer.from_seed(b"inbound-member-%d" % i) for i in range(4)]
COMMITTEE = Committee(tuple(signer.address for signer in SIGNERS))


def forward(sender: int, item: bytes) -> bytes:
    message = ForwardItem((item,), sender)
    signature = SIGNERS[sender].sign(message.signing_digest(COMMITTEE.domain))
    return encode(replace(message, signature=signature))


def member(tmp_path: Path) -> CommitteeMember:
    peers = [("127.0.0.1", 0)] * 4
    return CommitteeMember(COMMITTEE, 0, SIGNERS[0], peers, tmp_path, on_commit=print)


def test_a_flooding_member_cannot_crowd_out_the_others(tmp_path: Path) -> None:
    host = member(tmp_path)
    flood = forward(1, b"spam")
    for _ in range(_INBOUND_PER_PEER + 100):
        host._on_consensus_frame(1, flood)
    host._on_consensus_frame(2, forward(2, b"honest"))
    assert host.dropped_messages == 100  # only the flooder's own excess
    batch = host._take_inbound()
    assert len(batch) == _MESSAGES_PER_TURN
    assert [m.sender for m in batch[:2]] == [1, 2]  # served in turn, not behind the flood


def test_a_message_naming_another_sender_is_an_invalid_frame(tmp_path: Path) -> None:
    host = member(tmp_path)
    with pytest.raises(InvalidFrame, match="names member 2"):
        host._on_consensus_frame(1, forward(2, b"impersonated"))
    with pytest.raises(InvalidFrame):
        host._on_consensus_frame(1, b"\x93not a message")


def test_a_turn_takes_what_is_queued_when_that_is_less_than_a_turn(tmp_path: Path) -> None:
    host = member(tmp_path)
    host._on_consensus_frame(3, forward(3, b"one"))
    host._on_consensus_frame(1, forward(1, b"two"))
    assert [m.sender for m in host._take_inbound()] == [1, 3]
    assert host._take_inbound() == []
