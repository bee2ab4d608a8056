"""Sealed intents in committee members: the same revealed items on every member at the same
block, shares exchanged only after the closing block and attributed to their link's member,
a faulty leader's garbage key skipped alike, and a restarted member rebuilt from its log."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from asyncdex.committee.execution import BlockExecutor, resume_point
from asyncdex.committee.items import KIND_INTENT, ItemDecoder, intent_item
from asyncdex.committee.sealed import KIND_EPOCH_KEY, SealedReveal, key_item, sealed_item
from asyncdex.committee.transport import InvalidFrame
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Secp256k1Signer
from asyncdex.consensus.messages import GENESIS_QC, Block, QuorumCertificate
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.reveal import KeyAssembler
from asyncdex.fairness.sealing import SealingKey, seal_intent, sealed_intent_id, venue_id
from asyncdex.fairness.threshold import DecryptionShare, KeyShare, create_decryption_share
from asyncdex.messages.commands import CommitteeBlock, Signed
from asyncdex.sequencer.journal import FileJournal, GroupCommitter
from asyncdex.sequencer.records import decode_record
from asyncdex.sequencer.sequencer import Sequenced, Sequencer
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    PlaceOrder,
    asyncdex_domain,
    decode_intent_payload,
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


def _sealed_bid(nonce: int, epoch: int) -> bytes:
    """A small sealed bid for ``epoch`` (another epoch than the victim's, in the tests)."""
    order = PlaceOrder(TRADER.address, nonce, 0, 0, True, 1, 1, 0, 0, False, NO_CLIENT_ID, 0, 0, 0)
    signed = sign_intent(TRADER, DOMAIN, order)
    return sealed_item(
        seal_intent(SealingKey(DOMAIN, KEY.public_key), TRADER, signed, epoch).encode()
    )


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


def test_shares_go_out_at_the_commit_of_the_block_past_the_epoch_before_execution() -> None:
    members = [Member(k) for k in range(4)]
    sealed, body = _sealed_victim()
    other_epoch = _sealed_bid(40, E + 1)
    for m in members:
        m.reveal.on_committed(T0 + 10, [other_epoch])  # refused when executed: counts for none
        assert m.reveal.closing_block_due_ms() is None
        m.reveal.on_committed(T0 + 20, [sealed])
        assert m.reveal.closing_block_due_ms() == T0 + EPOCH_MS  # E's end: a block is wanted
        m.reveal.on_committed(T0 + EPOCH_MS - 1, [])
        assert m.frames == []  # nothing committed past E yet: no share
        m.reveal.on_committed(T0 + EPOCH_MS, [])
        assert len(m.frames) == 1 and m.reveal.closing_block_due_ms() is None
    _exchange(members)
    keys = {item for m in members for item in m.items}
    assert len(keys) == 1  # the key, before any member has executed a block
    (key,) = keys
    for m in members:  # executing the same blocks later sends nothing again and opens it
        m.reveal.execute_block(1, T0 + 10, [other_epoch])
        m.reveal.execute_block(2, T0 + 20, [sealed])
        m.reveal.execute_block(3, T0 + EPOCH_MS, [])
        m.reveal.after_commit()
        assert len(m.frames) == 0
        revealed, _, _ = m.reveal.execute_block(4, T0 + EPOCH_MS + 5, [key])
        assert revealed == [bytes((KIND_INTENT,)) + body]


def test_a_member_refuses_a_key_share_that_is_not_its_public_share() -> None:
    # its own shares count toward the key unchecked, so a wrong key share must not load
    for wrong in (KeyShare(1, SHARES[1].secret), KeyShare(5, SHARES[0].secret)):
        with pytest.raises(ValueError, match="does not match public share"):
            SealedReveal(
                DOMAIN, KEY, wrong, epoch_ms=EPOCH_MS, reveal_timeout_ms=EPOCH_MS,
                broadcast=lambda frame: None, submit_item=lambda item: None,
            )  # fmt: skip


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


# ---------------------------------------------------------------------------------------------
# Through the executor into a real journal


SIGNERS = [Secp256k1Signer.from_seed(bytes([i])) for i in range(4)]
CONSENSUS = Committee(tuple(s.address for s in SIGNERS))


def _blocks() -> tuple[list[Block], bytes]:
    sealed, body = _sealed_victim(nonce=21)
    venue = venue_id(DOMAIN)
    (key,) = KeyAssembler(KEY, DOMAIN).add_all(
        create_decryption_share(s, venue, E) for s in SHARES[:2]
    )
    payloads = [
        [sealed, intent_item(_order(20))],
        [intent_item(_order(22))],
        [key_item(key), intent_item(_order(23))],
    ]
    stamps = [T0 + 10, T0 + EPOCH_MS, T0 + EPOCH_MS + 5]
    blocks, justify = [], GENESIS_QC
    for height, (payload, stamp) in enumerate(zip(payloads, stamps, strict=True), start=1):
        block = Block(height, height, justify, height % 4, tuple(payload), stamp)
        blocks.append(block)
        justify = QuorumCertificate(height, block.hash, ((0, b""), (1, b""), (2, b"")))
    return blocks, body


async def _journal(directory: Path, blocks: list[Block], stop_after: int) -> None:
    journal, _ = FileJournal.open(directory)
    committer = GroupCommitter(journal)
    sequencer = Sequencer(committer, lambda: 0)
    seen: list[Sequenced] = []
    sequencer.add_consumer(seen.extend)
    member = Member(0)
    executor = BlockExecutor(
        sequencer,
        ItemDecoder(DOMAIN, CONSENSUS, CachingVerifier()),
        journal,
        lambda height: [(b, None) for b in blocks[height - 1 :]],
        sealed=member.reveal,
    )
    executor.start()
    for _ in range(6_000):  # only so that a lost record fails instead of hanging
        if len(seen) >= stop_after or executor.failed is not None:
            break
        await asyncio.sleep(0.01)
    await executor.stop()
    await sequencer.close()
    committer.close()
    journal.close()
    assert executor.failed is None
    assert len(seen) == stop_after


def _records(directory: Path) -> list[bytes]:
    journal, _ = FileJournal.open(directory)
    try:
        return [payload for _, payload in journal.read(1)]
    finally:
        journal.close()


def test_the_executor_journals_revealed_intents_after_the_marker_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    blocks, body = _blocks()
    reference = tmp_path / "reference"
    asyncio.run(_journal(reference, blocks, stop_after=7))
    expected = _records(reference)
    commands = [decode_record(payload).command for payload in expected]
    kinds = [type(c).__name__ for c in commands]
    # block 1: its own intent (the sealed one waits); block 2: its intent; block 3: the
    # revealed intent first, then its own
    assert kinds == ["CommitteeBlock", "Signed"] * 2 + ["CommitteeBlock", "Signed", "Signed"]
    block3 = commands[4:]
    assert type(block3[0]) is CommitteeBlock and block3[0].height == 3
    revealed = block3[1]
    assert isinstance(revealed, Signed)
    victim, _ = decode_intent_payload(body)
    assert (revealed.signer, revealed.nonce) == (TRADER.address, victim.nonce)
    assert revealed.command.price == victim.price  # the body sealed in block 1, now in clear

    # a crash right after block 3's marker and revealed intent: resumed from the journal
    crashed = tmp_path / "crashed"
    journal, _ = FileJournal.open(crashed)
    for seq, payload in enumerate(expected[:6], start=1):
        journal.append(seq, payload)
    journal.flush()
    assert resume_point(journal) == (3, 1)
    journal.close()
    asyncio.run(_journal(crashed, blocks, stop_after=1))
    assert _records(crashed) == expected


def test_verdicts_say_what_each_sealed_intent_became() -> None:
    member = Member(0)
    sealed, body = _sealed_victim(nonce=31)
    stale = _sealed_bid(32, E - 1)
    member.reveal.execute_block(1, T0 + 10, [sealed, stale])
    victim_id = sealed_intent_id(sealed[1:])
    assert member.reveal.verdict(victim_id) is None  # ordered, still sealed
    assert member.reveal.verdict(sealed_intent_id(stale[1:])) == (1, None, "epoch_closed")
    (key,) = KeyAssembler(KEY, DOMAIN).add_all(
        create_decryption_share(s, venue_id(DOMAIN), E) for s in SHARES[:2]
    )
    member.reveal.execute_block(2, T0 + EPOCH_MS, [key_item(key)])
    victim, _ = decode_intent_payload(body)
    assert member.reveal.verdict(victim_id) == (2, intent_digest(DOMAIN, victim), None)


def test_the_executor_knows_where_a_sealed_intent_was_ordered(tmp_path: Path) -> None:
    blocks, _ = _blocks()
    asyncio.run(_journal(tmp_path / "journal", blocks, stop_after=7))
    journal, _ = FileJournal.open(tmp_path / "again")
    executor = BlockExecutor(
        Sequencer(GroupCommitter(journal), lambda: 0),
        ItemDecoder(DOMAIN, CONSENSUS, CachingVerifier()),
        journal,
        lambda height: [(b, None) for b in blocks[height - 1 :]],
    )
    certificate = QuorumCertificate(2, blocks[1].hash, ((0, b""), (1, b""), (2, b"")))
    executor.on_commit(blocks[:1], certificate)
    (sealed,) = [item for item in blocks[0].payload if item[0] == 4]
    where = executor.ordered(sealed_intent_id(sealed[1:]))
    assert where is not None and where.height == 1 and where.certificate == certificate
    journal.close()
