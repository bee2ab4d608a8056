"""Committee items become the same journal records on every member, resumed exactly after a
crash in the middle of a block."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asyncdex.committee.execution import BlockExecutor, block_marker, resume_point
from asyncdex.committee.items import (
    KIND_INTENT,
    SCHEME_HL_L1,
    ItemDecoder,
    ItemRefused,
    intent_item,
    relayed_item,
    system_item,
)
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Secp256k1Signer
from asyncdex.consensus.messages import GENESIS_QC, Block, QuorumCertificate
from asyncdex.messages.commands import (
    AdvanceTime,
    Batch,
    CancelOrder,
    CommitteeBlock,
    Deposit,
    PublishOraclePrice,
    Signed,
)
from asyncdex.sequencer.journal import FileJournal, GroupCommitter
from asyncdex.sequencer.records import decode_record
from asyncdex.sequencer.sequencer import Sequenced, Sequencer
from asyncdex.signing import hl_signing
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    encode_signed_intent,
    sign_intent,
)

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
TRADER = LocalSigner(bytes(range(1, 33)))
MEMBERS = [Secp256k1Signer.from_seed(bytes([i])) for i in range(4)]
COMMITTEE = Committee(tuple(member.address for member in MEMBERS))
NOW = 1_767_225_600_000


def order_item(nonce: int, price: int = 1_000_000) -> bytes:
    intent = PlaceOrder(
        TRADER.address, nonce, 0, 0, True, price, 20, OrderType.LIMIT, TimeInForce.GTC, False,
        bytes(16), 0, 0, TriggerKind.NONE,
    )  # fmt: skip
    return intent_item(encode_signed_intent(sign_intent(TRADER, DOMAIN, intent)))


def decoder() -> ItemDecoder:
    return ItemDecoder(DOMAIN, COMMITTEE, CachingVerifier())


def test_a_signed_intent_item_yields_the_verified_envelope() -> None:
    (submission,) = decoder().submissions_of([order_item(NOW)])
    assert type(submission.command) is Signed
    assert submission.command.signer == TRADER.address
    assert len(submission.intent_id) == 32


def test_an_altered_intent_never_speaks_for_its_trader() -> None:
    item = bytearray(order_item(NOW))
    item[-70] ^= 1  # a byte of the signed fields: the signature recovers some other key
    altered = bytes(item)
    first, second = decoder().submissions_of([altered]), decoder().submissions_of([altered])
    assert first == second  # every member decides the same
    for submission in first:
        assert type(submission.command) is Signed
        assert submission.command.signer != TRADER.address  # the engine refuses it: no agent
    cut = decoder()
    assert cut.submissions_of([order_item(NOW)[:-1], order_item(NOW + 1)])[0].command.nonce == (
        NOW + 1
    )  # type: ignore[union-attr]
    assert cut.refused == {"malformed_intent": 1}


def test_system_items_are_attributed_to_a_member_and_cannot_be_forged() -> None:
    command = PublishOraclePrice(b"\x0f" * 20, 0, 600_000)
    item = system_item(COMMITTEE, 2, MEMBERS[2], 7, command)
    assert decoder().decode(item).command == command
    # member 3 signs but claims to be member 2
    forged = system_item(COMMITTEE, 2, MEMBERS[3], 7, command)
    with pytest.raises(ItemRefused) as refused:
        decoder().decode(forged)
    assert refused.value.reason == "bad_member_signature"
    outsider = Secp256k1Signer.from_seed(b"outsider")
    with pytest.raises(ItemRefused):
        decoder().decode(system_item(COMMITTEE, 0, outsider, 7, command))


def cancel_batch(account: bytes) -> Batch:
    return Batch(account, (CancelOrder(account, 0, 7),))


def hyperliquid_item(relayer: int, signer: Secp256k1Signer, trader: Secp256k1Signer) -> bytes:
    action = {"type": "cancel", "cancels": [{"a": 0, "o": 7}]}
    nonce = NOW + 9
    signature = trader.sign(hl_signing.l1_action_digest(action, nonce, None, None))
    command = Signed(
        trader.address, nonce, 0, Batch(trader.address, (CancelOrder(trader.address, 0, 7),))
    )
    return relayed_item(
        COMMITTEE, relayer, signer, 1, SCHEME_HL_L1, [action, nonce, None, None, False],
        command, signature,
    )  # fmt: skip


def test_a_relayed_action_is_checked_against_what_the_client_signed() -> None:
    trader = Secp256k1Signer.from_seed(b"hyperliquid trader")
    (submission,) = decoder().submissions_of([hyperliquid_item(1, MEMBERS[1], trader)])
    assert submission.command.signer == trader.address  # type: ignore[union-attr]
    assert decoder().intent_id_of(hyperliquid_item(1, MEMBERS[1], trader)) == submission.intent_id
    # a member that claims another trader signed it: the signature says otherwise
    other = Secp256k1Signer.from_seed(b"someone else")
    action = {"type": "cancel", "cancels": [{"a": 0, "o": 7}]}
    signature = other.sign(hl_signing.l1_action_digest(action, NOW + 9, None, None))
    command = Signed(
        trader.address, NOW + 9, 0, Batch(trader.address, (CancelOrder(trader.address, 0, 7),))
    )
    forged = relayed_item(
        COMMITTEE, 1, MEMBERS[1], 2, SCHEME_HL_L1, [action, NOW + 9, None, None, False],
        command, signature,
    )  # fmt: skip
    with pytest.raises(ItemRefused) as refused:
        decoder().decode(forged)
    assert refused.value.reason == "bad_signature"
    # relayed in the name of member 1 by member 2
    with pytest.raises(ItemRefused) as refused:
        decoder().decode(hyperliquid_item(1, MEMBERS[2], trader))
    assert refused.value.reason == "bad_member_signature"


def test_block_markers_and_time_ticks_are_never_items() -> None:
    with pytest.raises(ValueError):
        system_item(COMMITTEE, 0, MEMBERS[0], 1, CommitteeBlock(1, 0, 1))
    with pytest.raises(ValueError):
        system_item(COMMITTEE, 0, MEMBERS[0], 1, AdvanceTime())
    with pytest.raises(ItemRefused) as refused:
        decoder().decode(bytes((KIND_INTENT,)) + b"\x93\x01\x02\x03")
    assert refused.value.reason == "malformed_intent"
    with pytest.raises(ItemRefused):
        decoder().decode(b"\x09payload")


def chain(payloads: list[list[bytes]]) -> list[Block]:
    blocks, justify = [], GENESIS_QC
    for height, payload in enumerate(payloads, start=1):
        block = Block(height, height, justify, height % 4, tuple(payload), NOW + height * 100)
        blocks.append(block)
        justify = QuorumCertificate(height, block.hash, ((0, b""), (1, b""), (2, b"")))
    return blocks


def deposits(count: int, base: int) -> list[bytes]:
    return [
        system_item(COMMITTEE, 1, MEMBERS[1], base + i, Deposit(bytes([i + 1]) * 20, 1_000, i))
        for i in range(count)
    ]


async def journal_blocks(directory: Path, blocks: list[Block], stop_after: int) -> list[int]:
    """Run an executor over ``blocks`` until ``stop_after`` records are durable; the seqs of
    the markers it journaled."""
    journal, _ = FileJournal.open(directory)
    committer = GroupCommitter(journal)
    sequencer = Sequencer(committer, lambda: 0)
    seen: list[Sequenced] = []
    sequencer.add_consumer(seen.extend)
    executor = BlockExecutor(
        sequencer, decoder(), journal, lambda height: [(b, None) for b in blocks[height - 1 :]]
    )
    executor.start()
    while len(seen) < stop_after:
        await asyncio.sleep(0.01)
    await executor.stop()
    await sequencer.close()
    committer.close()
    journal.close()
    return [record.seq for record in seen if type(record.command) is CommitteeBlock]


def read_all(directory: Path) -> list[bytes]:
    journal, _ = FileJournal.open(directory)
    try:
        return [payload for _, payload in journal.read(1)]
    finally:
        journal.close()


def test_a_crash_inside_a_block_resumes_with_its_missing_records(tmp_path: Path) -> None:
    blocks = chain([deposits(3, 0), deposits(2, 10), deposits(4, 20)])
    reference = tmp_path / "reference"
    asyncio.run(journal_blocks(reference, blocks, stop_after=12))

    # the same journal cut after the first block and two items of the second ...
    expected = read_all(reference)
    assert len(expected) == 12
    crashed = tmp_path / "crashed"
    journal, _ = FileJournal.open(crashed)
    for seq, payload in enumerate(expected[:6], start=1):
        journal.append(seq, payload)
    journal.flush()
    assert resume_point(journal) == (2, 1)
    journal.close()
    # ... resumed: the rest of block 2, then block 3
    asyncio.run(journal_blocks(crashed, blocks, stop_after=12 - 6))
    assert read_all(crashed) == expected
    records = [decode_record(payload) for payload in expected]
    assert [r.command for r in records if type(r.command) is CommitteeBlock] == [
        block_marker(block) for block in blocks
    ]
    # every record is stamped with its block's time
    assert [r.timestamp for r in records][:4] == [blocks[0].timestamp] * 4
