"""Sealed intents in committee members: the same revealed items on every member at the same
block, shares exchanged only after the closing block and attributed to their link's member,
a faulty leader's garbage key skipped alike, and a restarted member rebuilt from its log."""

from __future__ import annotations

import random

import pytest

from asyncdex.committee.items import KIND_INTENT, ItemDecoder, intent_item
from asyncdex.committee.sealed import KIND_EPOCH_KEY, SealedReveal, sealed_item
from asyncdex.committee.transport import InvalidFrame
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Secp256k1Signer
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.sealing import SealingKey, seal_intent
from asyncdex.fairness.threshold import DecryptionShare
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    PlaceOrder,
    asyncdex_domain,
    encode_signed_intent,
    intent_digest,
    sign_intent,
)

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
KEY, SHARES = run_local_dkg(4, 2, bytes(32), random.Random(3).getrandbits)
EPOCH_MS = 1_000
E = 1_765_000_000
T0 = E * EPOCH_MS
TRADER = LocalSigner(b"\x31" * 32)


def _order(nonce: int) -> bytes:
    intent = PlaceOrder(
        TRADER.address, nonce, 0, 0, True, 600_000, 2, 0, 0, False, NO_CLIENT_ID, 0, 0, 0
    )
    return encode_signed_intent(sign_intent(TRADER, DOMAIN, intent))


class Member:
    def __init__(self, index: int, share: bool = True) -> None:
        self.index = index
        self.frames: list[bytes] = []
        self.items: list[bytes] = []
        self.reveal = SealedReveal(
            DOMAIN,
            KEY,
            SHARES[index] if share else None,
            epoch_ms=EPOCH_MS,
            reveal_timeout_ms=5 * EPOCH_MS,
            broadcast=self.frames.append,
            submit_item=self.items.append,
        )


def _exchange(members: list[Member]) -> None:
    """Deliver every broadcast share frame to every other member."""
    for sender in members:
        frames, sender.frames[:] = list(sender.frames), []
        for frame in frames:
            for receiver in members:
                if receiver is not sender:
                    receiver.reveal.on_share_frame(sender.index, frame)


def _sealed_victim(nonce: int = 9) -> tuple[bytes, bytes]:
    signed = sign_intent(
        TRADER,
        DOMAIN,
        PlaceOrder(
            TRADER.address, nonce, 0, 0, False, 610_000, 5, 0, 0, False, NO_CLIENT_ID, 0, 0, 0
        ),
    )
    envelope = seal_intent(SealingKey(DOMAIN, KEY.public_key), TRADER, signed, E)
    return sealed_item(envelope.encode()), encode_signed_intent(signed)


def test_members_reveal_the_same_items_at_the_same_block() -> None:
    members = [Member(k) for k in range(4)]
    sealed, body = _sealed_victim()
    plain = intent_item(_order(1))

    for m in members:
        revealed, others, effects = m.reveal.execute_block(1, T0 + 10, [sealed, plain])
        assert revealed == [] and others == [plain] and len(effects.ordered) == 1
        m.reveal.after_commit()
        assert m.frames == []  # epoch E is still open: nothing released

    for m in members:
        m.reveal.execute_block(2, T0 + EPOCH_MS, [])
        m.reveal.after_commit()
        assert len(m.frames) == 1  # its share for E, once
        m.reveal.after_commit()
        assert len(m.frames) == 1
    _exchange(members)
    submitted = [item for m in members for item in m.items]
    assert submitted and all(item[0] == KIND_EPOCH_KEY for item in submitted)
    assert len(set(submitted)) == 1  # every member that assembled it got the same key

    results = [m.reveal.execute_block(3, T0 + EPOCH_MS + 5, [submitted[0]]) for m in members]
    assert all(r[0] == [bytes((KIND_INTENT,)) + body] for r in results)
    assert all(r[2] == results[0][2] for r in results)

    # the revealed item is an ordinary intent item for the executor
    signers = [Secp256k1Signer.from_seed(bytes([k])) for k in range(4)]
    decoder = ItemDecoder(DOMAIN, Committee(tuple(s.address for s in signers)), CachingVerifier())
    (submission,) = decoder.submissions_of(results[0][0])
    assert submission.intent_id == intent_digest(
        DOMAIN,
        PlaceOrder(TRADER.address, 9, 0, 0, False, 610_000, 5, 0, 0, False, NO_CLIENT_ID, 0, 0, 0),
    )


def test_share_frames_are_attributed_to_their_link() -> None:
    members = [Member(k) for k in range(2)]
    sealed, _ = _sealed_victim()
    for m in members:
        m.reveal.execute_block(1, T0 + 10, [sealed])
        m.reveal.execute_block(2, T0 + EPOCH_MS, [])
    members[0].reveal.after_commit()
    (frame,) = members[0].frames
    with pytest.raises(InvalidFrame, match="in the name of"):
        members[1].reveal.on_share_frame(2, frame)  # member 2's link carrying member 0's share
    with pytest.raises(InvalidFrame, match="decryption share"):
        members[1].reveal.on_share_frame(0, frame + b"\x00")
    wrong = DecryptionShare.decode(frame)
    forged = DecryptionShare(wrong.epoch, 2, wrong.share).encode()  # member 1's index, wrong point
    members[1].reveal.on_share_frame(1, forged)
    assert [f.member for f in members[1].reveal.assembler.faults] == [2]


def test_a_garbage_key_item_is_skipped_alike() -> None:
    members = [Member(k) for k in range(2)]
    sealed, _ = _sealed_victim()
    garbage = bytes((KIND_EPOCH_KEY,)) + b"\x92\x01\xc4\x01\x00"
    effects = []
    for m in members:
        m.reveal.execute_block(1, T0 + 10, [sealed])
        effects.append(m.reveal.execute_block(2, T0 + EPOCH_MS, [garbage]))
        assert m.reveal.refused_items == 1
        assert m.reveal.log.waiting(E) == 1
    assert effects[0] == effects[1]


def test_a_restarted_member_rebuilds_and_sends_its_share_again() -> None:
    sealed, body = _sealed_victim()
    blocks = [(1, T0 + 10, [sealed]), (2, T0 + EPOCH_MS, [])]
    live = [Member(k) for k in range(4)]
    for m in live:
        for block in blocks:
            m.reveal.execute_block(*block)
        m.reveal.after_commit()
    sent_before = list(live[1].frames)
    _exchange(live)
    key = next(item for m in live for item in m.items)

    restarted = Member(1)
    restarted.reveal.rebuild(blocks)
    restarted.reveal.after_commit()
    assert restarted.frames == sent_before  # the same share bytes, in case they were lost
    revealed, _, _ = restarted.reveal.execute_block(3, T0 + EPOCH_MS + 9, [key])
    assert revealed == [bytes((KIND_INTENT,)) + body]
    restarted.reveal.after_commit()
    assert restarted.frames == sent_before  # nothing more once revealed
