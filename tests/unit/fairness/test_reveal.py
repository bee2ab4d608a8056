"""Where sealed intents open: the key travels in a block, so every member opens the same
intents at the same point of its log; nothing can be opened before its epoch is closed by a
certified block, and nothing in a committed block is ever dropped."""

from __future__ import annotations

import dataclasses

import pytest

from asyncdex.fairness.reveal import (
    InvalidBlockKey,
    KeyAssembler,
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
TIMEOUT_MS = 3_000
E = 1_765_000_000  # the epoch the victim and the attacker seal for
T0 = E * EPOCH_MS  # its first millisecond


def _members(committee: Committee, domain: Domain) -> list[SealedLog]:
    return [SealedLog(domain, committee.key, EPOCH_MS, TIMEOUT_MS) for _ in committee.shares]


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
        # the epoch is still open: no member may release a share for it yet
        assert log.epochs_to_release() == ()

    # t - 1 colluding members' shares give no key
    assembler = KeyAssembler(committee.key, domain)
    for share in committee.shares[: THRESHOLD - 1]:
        assert assembler.add(create_decryption_share(share, venue, E)) is None

    # block 2 lies past E: the epoch is closed, now members release
    for log in logs:
        log.apply_block(2, T0 + EPOCH_MS + 5, [])
        assert log.epochs_to_release() == (E,)
    key = None
    for share in committee.shares[THRESHOLD - 1 :]:
        key = key or assembler.add(create_decryption_share(share, venue, E))
    assert key is not None

    # block 3 carries the key: every member opens the same intents in certified order
    results = []
    for log in logs:
        log.check_block(T0 + EPOCH_MS + 50, [key])
        effects = log.apply_block(3, T0 + EPOCH_MS + 50, [], [key])
        assert effects.revealed_epochs == (E,)
        results.append(effects.outcomes)
        assert log.pending_epochs() == ()
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


def test_a_key_that_never_comes_rejects_the_epoch_at_the_timeout_never_drops_it(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    log = _members(committee, domain)[0]
    wire, _ = _sealed(sealing_key, domain, trader, nonce=3)
    log.apply_block(1, T0 + 1, [wire])
    end = T0 + EPOCH_MS
    assert log.apply_block(2, end + TIMEOUT_MS - 1, []).outcomes == ()
    effects = log.apply_block(3, end + TIMEOUT_MS, [])
    assert effects.expired_epochs == (E,)
    assert [o.result for o in effects.outcomes] == [SealedRejection.KEY_UNAVAILABLE]
    # a key arriving afterwards has nothing to open, and is refused
    shares = [create_decryption_share(s, venue, E) for s in committee.shares[:THRESHOLD]]
    key = KeyAssembler(committee.key, domain).add_all(shares)[0]
    with pytest.raises(InvalidBlockKey, match="nothing waiting"):
        log.check_block(end + TIMEOUT_MS + 1, [key])


def test_blocks_with_unacceptable_keys_are_refused(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    log = _members(committee, domain)[0]
    wire, _ = _sealed(sealing_key, domain, trader, nonce=4)
    log.apply_block(1, T0 + 1, [wire])
    assembler = KeyAssembler(committee.key, domain)
    (key,) = assembler.add_all(
        create_decryption_share(s, venue, E) for s in committee.shares[:THRESHOLD]
    )
    (other,) = assembler.add_all(
        create_decryption_share(s, venue, E + 7) for s in committee.shares[:THRESHOLD]
    )
    with pytest.raises(InvalidBlockKey, match="not closed"):
        log.check_block(T0 + 500, [key])  # a block still in epoch E
    with pytest.raises(InvalidBlockKey, match="fails"):
        log.check_block(T0 + EPOCH_MS, [EpochKey(E, other.key)])
    with pytest.raises(InvalidBlockKey, match="two keys"):
        log.check_block(T0 + EPOCH_MS, [key, key])
    with pytest.raises(InvalidBlockKey, match="before its parent"):
        log.check_block(T0, [])
    log.check_block(T0 + EPOCH_MS, [key])  # the same key, in a block past E, is fine
    assert log.waiting(E) == 1


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


def test_a_faulty_leaders_bad_keys_are_skipped_alike_and_a_good_one_still_opens(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    logs = _members(committee, domain)[:2]
    wire, body = _sealed(sealing_key, domain, trader, nonce=5)
    assembler = KeyAssembler(committee.key, domain)
    (good,) = assembler.add_all(
        create_decryption_share(s, venue, E) for s in committee.shares[:THRESHOLD]
    )
    (other,) = assembler.add_all(
        create_decryption_share(s, venue, E + 3) for s in committee.shares[:THRESHOLD]
    )
    for log in logs:
        log.apply_block(1, T0 + 1, [wire])
    early = [log.apply_block(2, T0 + 2, [], [good]) for log in logs]
    assert early[0] == early[1]
    assert early[0].refused_keys == ((E, f"key of epoch {E}, which is not closed"),)
    assert early[0].outcomes == () and logs[0].waiting(E) == 1
    # a forged key, then the real one, then the real one again
    effects = [
        log.apply_block(3, T0 + EPOCH_MS, [], [EpochKey(E, other.key), good, good]) for log in logs
    ]
    assert effects[0] == effects[1]
    assert [why for _, why in effects[0].refused_keys] == [
        f"key of epoch {E} fails e(g1, key) = e(P, Q)",
        f"two keys for epoch {E}",
    ]
    (outcome,) = effects[0].outcomes
    assert isinstance(outcome.result, Opened) and outcome.result.body == body
