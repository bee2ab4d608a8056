"""Sealed intents in committee members: the same revealed items on every member at the same
block (the closing block, once its key is at hand), shares exchanged only after that block is
committed and attributed to their link's member, shares asked for again by a member that
waits, and a restarted member rebuilt from its log and its key store."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from asyncdex.committee.execution import BlockExecutor, resume_point
from asyncdex.committee.items import KIND_INTENT, ItemDecoder, intent_item
from asyncdex.committee.sealed import (
    ASK,
    EpochKeyStore,
    SealedReveal,
    ask_frame,
    sealed_item,
    share_frame,
)
from asyncdex.committee.transport import InvalidFrame
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Secp256k1Signer
from asyncdex.consensus.messages import GENESIS_QC, Block, QuorumCertificate
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.reveal import KeyAssembler
from asyncdex.fairness.sealing import SealingKey, seal_intent, sealed_intent_id, venue_id
from asyncdex.fairness.threshold import (
    DecryptionShare,
    EpochKey,
    KeyShare,
    create_decryption_share,
)
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
    def __init__(self, index: int, share: bool = True, keys: EpochKeyStore | None = None) -> None:
        self.index = index
        self.frames: list[bytes] = []
        self.sent: list[tuple[int, bytes]] = []
        self.reveal = SealedReveal(
            DOMAIN,
            KEY,
            SHARES[index] if share else None,
            epoch_ms=EPOCH_MS,
            alarm_ms=5 * EPOCH_MS,
            broadcast=self.frames.append,
            send=lambda to, frame: self.sent.append((to, frame)),
            keys=keys,
        )

    def keys(self, epochs: tuple[int, ...]) -> dict[int, EpochKey]:
        async def get() -> dict[int, EpochKey]:
            keys = await self.reveal.keys_for(epochs)
            await self.reveal.save_keys()
            return keys

        return asyncio.run(get())


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
        m.reveal.on_committed(T0 + 10, [sealed, plain])
        revealed, others, effects = m.reveal.execute_block(1, T0 + 10, [sealed, plain])
        assert revealed == [] and others == [plain] and len(effects.ordered) == 1
        assert m.frames == []  # epoch E is still open: nothing released

    for m in members:  # block 2, past E, is committed: each member releases its share, once
        m.reveal.on_committed(T0 + EPOCH_MS, [])
        m.reveal.on_committed(T0 + EPOCH_MS + 1, [])
        assert len(m.frames) == 1
    _exchange(members)
    keys = [m.reveal.assembler.key(E) for m in members]
    assert keys[0] is not None and all(k == keys[0] for k in keys)  # the key is unique

    results = []
    for m in members:  # block 2 opens E before its own items, on every member alike
        assert m.reveal.log.closes(T0 + EPOCH_MS) == (E,)
        results.append(m.reveal.execute_block(2, T0 + EPOCH_MS, [plain], m.keys((E,))))
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
    assert len({m.reveal.assembler.key(E) for m in members}) == 1  # before any execution
    for m in members:  # executing the same blocks later sends nothing again and opens it
        m.reveal.execute_block(1, T0 + 10, [other_epoch])
        m.reveal.execute_block(2, T0 + 20, [sealed])
        revealed, _, _ = m.reveal.execute_block(3, T0 + EPOCH_MS, [], m.keys((E,)))
        assert revealed == [bytes((KIND_INTENT,)) + body]
        m.reveal.on_committed(T0 + EPOCH_MS + 9, [])
        assert len(m.frames) == 0 and m.sent == []


def test_a_member_refuses_a_key_share_that_is_not_its_public_share() -> None:
    # its own shares count toward the key unchecked, so a wrong key share must not load
    for wrong in (KeyShare(1, SHARES[1].secret), KeyShare(5, SHARES[0].secret)):
        with pytest.raises(ValueError, match="does not match public share"):
            SealedReveal(
                DOMAIN, KEY, wrong, epoch_ms=EPOCH_MS, alarm_ms=EPOCH_MS,
                broadcast=lambda frame: None,
            )  # fmt: skip


def test_share_frames_are_attributed_to_their_link() -> None:
    members = [Member(k) for k in range(2)]
    sealed, _ = _sealed_victim()
    for m in members:
        m.reveal.execute_block(1, T0 + 10, [sealed])
        m.reveal.on_committed(T0 + EPOCH_MS, [])
    (frame,) = members[0].frames
    with pytest.raises(InvalidFrame, match="in the name of"):
        members[1].reveal.on_share_frame(2, frame)  # member 2's link carrying member 0's share
    with pytest.raises(InvalidFrame, match="decryption share"):
        members[1].reveal.on_share_frame(0, frame + b"\x00")
    with pytest.raises(InvalidFrame, match="unknown tag"):
        members[1].reveal.on_share_frame(0, b"\x09" + frame[1:])
    with pytest.raises(InvalidFrame, match="8-byte epoch"):
        members[1].reveal.on_share_frame(0, bytes((ASK,)) + b"\x01")
    wrong = DecryptionShare.decode(frame[1:])
    forged = share_frame(DecryptionShare(wrong.epoch, 2, wrong.share))  # member 1's index
    members[1].reveal.on_share_frame(1, forged)
    assert [f.member for f in members[1].reveal.assembler.faults] == [2]


def test_a_member_answers_a_request_only_for_an_epoch_a_committed_block_closed() -> None:
    asked = Member(0)
    sealed, _ = _sealed_victim()
    asked.reveal.on_committed(T0 + 10, [sealed])
    asked.reveal.on_share_frame(2, ask_frame(E))
    assert asked.sent == []  # E is still open here: its share must not exist yet
    asked.reveal.on_committed(T0 + EPOCH_MS + 3, [])
    asked.frames.clear()
    for epoch in (E, E - 5, E + 1):
        asked.reveal.on_share_frame(2, ask_frame(epoch))
    # closed epochs get this member's share, sent to the asker alone (E + 1 is still open)
    assert [(to, DecryptionShare.decode(f[1:]).epoch) for to, f in asked.sent] == [
        (2, E),
        (2, E - 5),
    ]
    assert all(DecryptionShare.decode(f[1:]).member == 1 for _, f in asked.sent)


def test_a_member_waits_for_a_key_asks_again_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    sealed, body = _sealed_victim()
    venue = venue_id(DOMAIN)

    async def run() -> tuple[list[bytes], dict[int, EpochKey]]:
        member = Member(0)
        member.reveal.alarm_ms = 150
        member.reveal.execute_block(1, T0 + 10, [sealed])
        member.reveal.on_committed(T0 + EPOCH_MS, [])
        waiting = asyncio.ensure_future(member.reveal.keys_for((E,)))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # one share of the two it needs: it waits, gives up nothing
        assert member.reveal.status_json()["waitingForKeys"] == [E]
        member.reveal.on_share_frame(3, share_frame(create_decryption_share(SHARES[3], venue, E)))
        keys = await waiting
        status = member.reveal.status_json()
        assert status["waitingForKeys"] == [] and status["keyWaits"] == 1
        assert status["keysStored"] == 1
        return member.frames, keys

    with caplog.at_level("WARNING", logger="asyncdex.committee.sealed"):
        frames, keys = asyncio.run(run())
    asks = [f for f in frames if f[0] == ASK]
    assert len(asks) >= 2 and all(f == ask_frame(E) for f in asks)  # asked again
    assert any("waits for the key of epoch(s)" in r.message for r in caplog.records)
    member = Member(0)
    member.reveal.execute_block(1, T0 + 10, [sealed])
    revealed, _, _ = member.reveal.execute_block(2, T0 + EPOCH_MS, [], keys)
    assert revealed == [bytes((KIND_INTENT,)) + body]


def test_a_restarted_member_rebuilds_from_its_key_store_and_sends_its_share_again(
    tmp_path: Path,
) -> None:
    sealed, _ = _sealed_victim()
    blocks = [(1, T0 + 10, [sealed]), (2, T0 + EPOCH_MS, [])]
    store = EpochKeyStore(tmp_path / "keys")
    live = [Member(k, keys=store if k == 1 else None) for k in range(4)]
    for m in live:
        m.reveal.execute_block(*blocks[0])
        m.reveal.on_committed(blocks[1][1], [])
    sent_before = list(live[1].frames)
    _exchange(live)
    live[1].reveal.execute_block(*blocks[1], live[1].keys((E,)))
    live[1].reveal.close()
    victim_id = sealed_intent_id(sealed[1:])
    verdict = live[1].reveal.verdict(victim_id)
    assert verdict is not None and verdict.intent_id is not None

    # restarted before block 2 executed: it sends its share again (it may never have left)
    early = Member(1)
    early.reveal.rebuild(blocks[:1])
    early.reveal.on_committed(blocks[1][1], [])
    assert early.frames == sent_before

    # restarted after: the key store opens what the journal holds, without the network
    again = EpochKeyStore(tmp_path / "keys")
    assert len(again) == 1
    restarted = Member(1, keys=again)
    restarted.reveal.rebuild(blocks)
    restarted.reveal.on_committed(T0 + EPOCH_MS + 9, [])
    assert restarted.frames == [] and restarted.reveal.verdict(victim_id) == verdict
    again.close()

    # a store that lost the key (a torn tail) does not stop the restart
    lost = Member(1, keys=EpochKeyStore(tmp_path / "empty"))
    lost.reveal.rebuild(blocks)
    assert lost.reveal.log.pending_epochs() == () and lost.reveal.verdict(victim_id) is None


# ---------------------------------------------------------------------------------------------
# Through the executor into a real journal


SIGNERS = [Secp256k1Signer.from_seed(bytes([i])) for i in range(4)]
CONSENSUS = Committee(tuple(s.address for s in SIGNERS))


def _blocks() -> tuple[list[Block], bytes]:
    sealed, body = _sealed_victim(nonce=21)
    payloads = [
        [sealed, intent_item(_order(20))],
        [intent_item(_order(22))],
        [intent_item(_order(23))],
    ]
    stamps = [T0 + 10, T0 + EPOCH_MS, T0 + EPOCH_MS + 5]
    blocks, justify = [], GENESIS_QC
    for height, (payload, stamp) in enumerate(zip(payloads, stamps, strict=True), start=1):
        block = Block(height, height, justify, height % 4, tuple(payload), stamp)
        blocks.append(block)
        justify = QuorumCertificate(height, block.hash, ((0, b""), (1, b""), (2, b"")))
    return blocks, body


async def _journal(
    directory: Path, blocks: list[Block], stop_after: int, keys: Path, peer_answers: bool = True
) -> None:
    journal, _ = FileJournal.open(directory)
    committer = GroupCommitter(journal)
    sequencer = Sequencer(committer, lambda: 0)
    seen: list[Sequenced] = []
    sequencer.add_consumer(seen.extend)
    store = EpochKeyStore(keys)
    member = Member(0, keys=store)
    loop = asyncio.get_running_loop()
    peer_share = share_frame(create_decryption_share(SHARES[1], venue_id(DOMAIN), E))

    def network(frame: bytes) -> None:  # member 1 answers a request, a moment later
        if peer_answers and frame[0] == ASK:
            loop.call_soon(member.reveal.on_share_frame, 1, peer_share)

    member.reveal._broadcast = network
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
    store.close()
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
    asyncio.run(_journal(reference, blocks, stop_after=7, keys=tmp_path / "reference-keys"))
    expected = _records(reference)
    commands = [decode_record(payload).command for payload in expected]
    kinds = [type(c).__name__ for c in commands]
    # block 1: its own intent (the sealed one waits); block 2, past the epoch: the revealed
    # intent first, then its own; block 3: its own
    block = "CommitteeBlock"
    assert kinds == [block, "Signed", block, "Signed", "Signed", block, "Signed"]
    block2 = commands[2:5]
    assert type(block2[0]) is CommitteeBlock and block2[0].height == 2
    revealed = block2[1]
    assert isinstance(revealed, Signed)
    victim, _ = decode_intent_payload(body)
    assert (revealed.signer, revealed.nonce) == (TRADER.address, victim.nonce)
    assert revealed.command.price == victim.price  # the body sealed in block 1, now in clear

    # a crash right after block 2's marker and revealed intent: resumed from the journal and
    # the key store, with no member answering
    crashed = tmp_path / "crashed"
    journal, _ = FileJournal.open(crashed)
    for seq, payload in enumerate(expected[:4], start=1):
        journal.append(seq, payload)
    journal.flush()
    assert resume_point(journal) == (2, 1)
    journal.close()
    keys = tmp_path / "reference-keys"
    asyncio.run(_journal(crashed, blocks, stop_after=3, keys=keys, peer_answers=False))
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
    member.reveal.execute_block(2, T0 + EPOCH_MS, [], {E: key})
    victim, _ = decode_intent_payload(body)
    assert member.reveal.verdict(victim_id) == (2, intent_digest(DOMAIN, victim), None)


def test_the_executor_knows_where_a_sealed_intent_was_ordered(tmp_path: Path) -> None:
    blocks, _ = _blocks()
    asyncio.run(_journal(tmp_path / "journal", blocks, stop_after=7, keys=tmp_path / "keys"))
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
