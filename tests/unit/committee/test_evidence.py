"""A replica's equivocation report becomes the contract's evidence, checkable by ecrecover."""

from __future__ import annotations

import pytest

from asyncdex.committee.venue import evidence_of
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.consensus.messages import GENESIS_QC, Block, Proposal, Vote
from asyncdex.consensus.replica import ReportEquivocation
from asyncdex.settlement.certificate import ProposalEquivocation, VoteEquivocation

MEMBERS = [Secp256k1Signer.from_seed(bytes([i])) for i in range(4)]
COMMITTEE = Committee(tuple(member.address for member in MEMBERS), b"asyncdex/test-evidence")


def vote(sender: int, view: int, block_hash: bytes) -> Vote:
    unsigned = Vote(view, block_hash, sender)
    signature = MEMBERS[sender].sign(unsigned.signing_digest(COMMITTEE.domain))
    return Vote(view, block_hash, sender, signature)


def proposal(sender: int, view: int, payload: bytes) -> Proposal:
    block = Block(view, 1, GENESIS_QC, sender, (payload,), 1)
    unsigned = Proposal(block, None, sender)
    signature = MEMBERS[sender].sign(unsigned.signing_digest(COMMITTEE.domain))
    return Proposal(block, None, sender, signature)


def test_two_votes_for_one_view_are_vote_evidence_against_their_signer() -> None:
    first, second = vote(2, 9, b"\xaa" * 32), vote(2, 9, b"\xbb" * 32)
    evidence = evidence_of(COMMITTEE, ReportEquivocation(first, second))
    assert isinstance(evidence, VoteEquivocation)
    assert (evidence.member, evidence.view) == (MEMBERS[2].address, 9)
    assert (evidence.signature_a, evidence.signature_b) == (first.signature, second.signature)


def test_two_proposals_for_one_view_are_leader_evidence() -> None:
    first, second = proposal(1, 5, b"a"), proposal(1, 5, b"b")
    evidence = evidence_of(COMMITTEE, ReportEquivocation(first, second))
    assert isinstance(evidence, ProposalEquivocation)
    assert (evidence.block_hash_a, evidence.block_hash_b) == (first.block.hash, second.block.hash)


def test_what_is_no_equivocation_makes_no_evidence() -> None:
    with pytest.raises(ValueError):  # a vote and a proposal
        evidence_of(COMMITTEE, ReportEquivocation(vote(1, 5, b"\xaa" * 32), proposal(1, 5, b"a")))
    with pytest.raises(ValueError):  # signed by another member than the one it names
        forged = Vote(9, b"\xbb" * 32, 2, vote(3, 9, b"\xbb" * 32).signature)
        evidence_of(COMMITTEE, ReportEquivocation(vote(2, 9, b"\xaa" * 32), forged))
