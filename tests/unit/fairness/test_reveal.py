"""Where sealed intents open: right before the first committed block past their epoch, with
the epoch's key, so every member opens the same intents at the same point of its log; nothing
can be opened before its epoch is closed by a certified block, and nothing in a committed
block is ever dropped: a block that needs a key it is not given does not execute."""

from __future__ import annotations

import dataclasses

import pytest

from asyncdex.fairness.reveal import (
    KeyAssembler,
    MissingEpochKey,
    SealedLog,
    SealedRejection,
)
from asyncdex.fairness.sealing import Opened, SealingKey, seal_intent
from asyncdex.fairness.threshold import (
    DecryptionShare,
    EpochKey,
    ShareFault,
    create_decryption_share,
)
from asyncdex.signing.eip712 import Domain, LocalSigner
from asyncdex.signing.intents import encode_signed_intent

from .conftest import THRESHOLD, Committee, place_order

EPOCH_MS = 1_000
E = 1_765_000_000  # the epoch the victim and the attacker seal for
T0 = E * EPOCH_MS  # its first millisecond


def _members(committee: Committee, domain: Domain) -> list[SealedLog]:
    return [SealedLog(domain, committee.key, EPOCH_MS) for _ in committee.shares]


def _sealed(
    sealing_key: SealingKey, domain: Domain, signer: LocalSigner, nonce: int, epoch: int = E
) -> tuple[bytes, bytes]:
    signed = place_order(signer, domain, nonce=nonce)
    return seal_intent(sealing_key, signer, signed, epoch).encode(), encode_signed_intent(signed)


def test_a_leader_sees_only_ciphertexts_until_a_certified_block_closes_the_epoch(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    attacker = LocalSigner(b"\x66" * 32)
    victim_wire, victim_body = _sealed(sealing_key, domain, trader, nonce=10)
    attacker_wire, attacker_body = _sealed(
        SealingKey(domain, committee.key.public_key), domain, attacker, nonce=11
    )
    logs = _members(committee, domain)

    # block 1, in epoch E: what the leader orders is opaque
    for log in logs:
        effects = log.apply_block(1, T0 + 200, [victim_wire, attacker_wire])
        assert [p.index for p in effects.ordered] == [0, 1]
        assert [p.signer for p in effects.ordered] == [trader.address, attacker.address]
        assert effects.outcomes == ()
        assert victim_body not in victim_wire
        # the epoch is still open: no block closes it yet, and no member may release a share
        assert log.closes(T0 + EPOCH_MS - 1) == ()

    # t - 1 colluding members' shares give no key
    assembler = KeyAssembler(committee.key, domain)
    for share in committee.shares[: THRESHOLD - 1]:
        assert assembler.add(create_decryption_share(share, venue, E)) is None

    # block 2 lies past E: it closes the epoch (members release their shares at its commit)
    # and opens it before its own items, so it needs E's key
    for log in logs:
        assert log.closes(T0 + EPOCH_MS + 5) == (E,)
    key = None
    for share in committee.shares[THRESHOLD - 1 :]:
        key = key or assembler.add(create_decryption_share(share, venue, E))
    assert key is not None

    # every member opens the same intents in certified order, before block 2's own
    late, _ = _sealed(sealing_key, domain, trader, nonce=12, epoch=E + 1)
    results = []
    for log in logs:
        effects = log.apply_block(2, T0 + EPOCH_MS + 5, [late], {E: key})
        assert effects.revealed_epochs == (E,)
        assert [(p.height, p.epoch) for p in effects.ordered] == [(2, E + 1)]
        results.append(effects.outcomes)
        assert log.pending_epochs() == (E + 1,)  # still open
    assert all(r == results[0] for r in results)
    opened = [outcome.result for outcome in results[0]]
    assert all(isinstance(o, Opened) for o in opened)
    assert [o.body for o in opened if isinstance(o, Opened)] == [victim_body, attacker_body]
    assert [(o.height, o.index) for o in results[0]] == [(1, 0), (1, 1)]


def test_envelopes_for_another_epoch_are_rejected_in_the_block(
    committee: Committee, domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    (log,) = _members(committee, domain)[:1]
    stale, _ = _sealed(sealing_key, domain, trader, nonce=1, epoch=E - 1)
    early, _ = _sealed(sealing_key, domain, trader, nonce=2, epoch=E + 1)
    effects = log.apply_block(1, T0 + 10, [stale, early, b"\x00garbage"])
    assert effects.ordered == ()
    assert [o.result for o in effects.outcomes] == [
        SealedRejection.EPOCH_CLOSED,
        SealedRejection.EPOCH_NOT_OPEN,
        SealedRejection.MALFORMED,
    ]
    assert [o.index for o in effects.outcomes] == [0, 1, 2]


def test_a_block_that_closes_an_epoch_does_not_execute_without_its_key(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    log = _members(committee, domain)[0]
    wire, body = _sealed(sealing_key, domain, trader, nonce=3)
    log.apply_block(1, T0 + 1, [wire])
    assert log.apply_block(2, T0 + EPOCH_MS - 1, []).outcomes == ()  # still epoch E
    # however long the key takes, the closing block waits for it: nothing is given up
    for late in (T0 + EPOCH_MS, T0 + 3_600_000):
        with pytest.raises(MissingEpochKey) as refused:
            log.apply_block(3, late, [], {})
        assert refused.value.epochs == (E,)
        assert log.waiting(E) == 1 and log.last_timestamp_ms == T0 + EPOCH_MS - 1
    assembler = KeyAssembler(committee.key, domain)
    (key,) = assembler.add_all(
        create_decryption_share(s, venue, E) for s in committee.shares[-THRESHOLD:]
    )
    (other,) = assembler.add_all(
        create_decryption_share(s, venue, E + 7) for s in committee.shares[:THRESHOLD]
    )
    # a key for an epoch the block does not close is not used
    effects = log.apply_block(3, T0 + 3_600_000, [], {E: key, E + 7: other})
    assert effects.revealed_epochs == (E,)
    (outcome,) = effects.outcomes
    assert isinstance(outcome.result, Opened)
    assert outcome.result.body == body
    assert log.pending_epochs() == ()


def test_a_wrong_key_cannot_open_an_epoch(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    """Keys are trusted input (assembled from checked shares): a wrong one is a bug, and it
    shows as a refusal of every intent, never as another plaintext."""
    log = _members(committee, domain)[0]
    wire, _ = _sealed(sealing_key, domain, trader, nonce=4)
    log.apply_block(1, T0 + 1, [wire])
    assembler = KeyAssembler(committee.key, domain)
    (other,) = assembler.add_all(
        create_decryption_share(s, venue, E + 7) for s in committee.shares[:THRESHOLD]
    )
    effects = log.apply_block(2, T0 + EPOCH_MS, [], {E: EpochKey(E, other.key)})
    (outcome,) = effects.outcomes
    assert not isinstance(outcome.result, Opened)


def test_the_assembler_refuses_and_attributes_faulty_shares(
    committee: Committee, domain: Domain, venue: bytes
) -> None:
    assembler = KeyAssembler(committee.key, domain)
    honest = [create_decryption_share(s, venue, E) for s in committee.shares]
    wrong = dataclasses.replace(honest[0], share=honest[1].share)
    outsider = DecryptionShare(E, 9, honest[2].share)
    assert assembler.add(wrong) is None
    assert assembler.add(outsider) is None
    assert assembler.add(honest[1]) is None
    assert assembler.add(honest[1]) is None  # a member twice counts once
    key = assembler.add(honest[3])
    assert key is not None and assembler.key(E) == key
    assert [(f.member, f.fault) for f in assembler.faults] == [
        (1, ShareFault.FAILED_EQUATION),
        (9, ShareFault.NOT_A_MEMBER),
    ]
    assert assembler.add(honest[2]) is None  # complete already
    assembler.forget(E)
    assert assembler.key(E) is None
