"""SafetyRules alone: the vote, lock, timeout and proposal rules, and their persistence."""

from __future__ import annotations

import pytest

from asyncdex.consensus import Committee, SafetyRules, SafetyState, UnsafeToSign
from asyncdex.consensus.messages import GENESIS_BLOCK, GENESIS_QC, Block, QuorumCertificate

from .harness import signers

SIGNERS = signers(4)
COMMITTEE = Committee(tuple(s.address for s in SIGNERS))


def block(view: int, justify: QuorumCertificate, height: int = 1, payload: bytes = b"") -> Block:
    return Block(view, height, justify, COMMITTEE.leader(view), (payload,) if payload else ())


def qc(view: int, name: bytes) -> QuorumCertificate:
    # SafetyRules trusts its caller to pass verified certificates: content is what matters
    return QuorumCertificate(view, name.ljust(32, b"\0"), ((0, b"s"), (1, b"s"), (2, b"s")))


def rules(state: SafetyState | None = None) -> SafetyRules:
    return SafetyRules(COMMITTEE, 3, SIGNERS[3], state)


def test_votes_once_per_view() -> None:
    safety = rules()
    safety.sign_vote(block(1, GENESIS_QC, payload=b"a"))
    with pytest.raises(UnsafeToSign, match="already voted"):
        safety.sign_vote(block(1, GENESIS_QC, payload=b"b"))


def test_refuses_a_view_below_the_last_vote() -> None:
    safety = rules()
    safety.sign_vote(block(5, GENESIS_QC))
    with pytest.raises(UnsafeToSign, match="already voted"):
        safety.sign_vote(block(4, GENESIS_QC))
    assert safety.state.last_voted_view == 5


def test_refuses_a_block_justified_below_the_lock() -> None:
    safety = rules()
    assert safety.observe_qc(qc(3, b"b3"))
    with pytest.raises(UnsafeToSign, match="below the lock"):
        safety.sign_vote(block(5, qc(2, b"b2"), height=3))
    assert safety.state.last_voted_view == 0  # a refusal changes nothing


def test_votes_for_a_block_justified_at_or_above_the_lock_and_moves_the_lock() -> None:
    safety = rules()
    safety.observe_qc(qc(3, b"b3"))
    safety.sign_vote(block(5, qc(3, b"b3"), height=4))
    safety.sign_vote(block(6, qc(5, b"b5"), height=5))
    assert safety.lock == qc(5, b"b5")


def test_the_lock_only_rises() -> None:
    safety = rules()
    assert safety.observe_qc(qc(4, b"b4"))
    assert not safety.observe_qc(qc(2, b"b2"))
    assert safety.lock.view == 4


def test_a_timeout_ends_voting_in_its_view() -> None:
    safety = rules()
    safety.sign_timeout(7, GENESIS_QC, None)
    with pytest.raises(UnsafeToSign):
        safety.sign_vote(block(7, GENESIS_QC))
    safety.sign_vote(block(8, GENESIS_QC))


def test_proposes_once_per_view() -> None:
    safety = SafetyRules(COMMITTEE, 1, SIGNERS[1])
    safety.sign_proposal(block(1, GENESIS_QC, payload=b"a"), None)
    with pytest.raises(UnsafeToSign, match="already proposed"):
        safety.sign_proposal(block(1, GENESIS_QC, payload=b"b"), None)


def test_persisted_state_survives_a_restart() -> None:
    safety = rules()
    safety.observe_qc(qc(3, b"b3"))
    safety.sign_vote(block(4, qc(3, b"b3"), height=4))
    restarted = rules(SafetyState.from_bytes(safety.state.to_bytes()))
    assert restarted.state == safety.state
    with pytest.raises(UnsafeToSign):
        restarted.sign_vote(block(4, qc(3, b"b3"), height=4, payload=b"other"))


def test_invalid_signer_for_the_index() -> None:
    with pytest.raises(ValueError, match="not member 2"):
        SafetyRules(COMMITTEE, 2, SIGNERS[3])


def test_genesis_is_the_initial_lock() -> None:
    assert rules().lock == GENESIS_QC
    assert GENESIS_QC.block_hash == GENESIS_BLOCK.hash
