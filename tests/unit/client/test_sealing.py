"""The SDK seals signed intents for the committee key the node announces; the envelopes it
sends open with the members' combined epoch key to the exact signed bytes."""

from __future__ import annotations

import asyncio
import random
import time
import types
from typing import Any

import pytest

from asyncdex.client import AsyncClient, Client, ClientError, Wallet
from asyncdex.client.sealing import SealingInfo
from asyncdex.client.venue import Venue
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.sealing import (
    Opened,
    envelope_signer,
    open_sealed_intent,
    sealed_intent_id,
    venue_id,
)
from asyncdex.fairness.threshold import combine_decryption_shares, create_decryption_share
from asyncdex.gateway.venue import venue_json
from asyncdex.signing.intents import encode_signed_intent
from asyncdex.types.market import EngineConfig, MarketSpec

from .conftest import CONTRACT, DOMAIN, FakeNode

CONFIG = EngineConfig((MarketSpec(0, "BTC", 5, 10, 10), MarketSpec(1, "ETH", 4, 1, 10)))
COMMITTEE_KEY, COMMITTEE_SHARES = run_local_dkg(4, 2, bytes(32), random.Random(21).getrandbits)
EPOCH_MS = 1_000
WALLET = Wallet(bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9c86dae88c7a8412f4603b6b78690d"))


def _venue(epoch: int) -> dict[str, Any]:
    sealing = SealingInfo(epoch, EPOCH_MS, COMMITTEE_KEY.public_key).to_json()
    return venue_json(
        DOMAIN,
        CONFIG,
        settlement_contract=bytes.fromhex(CONTRACT[2:]),
        settlement_chain="embedded",
        extras={"sealing": sealing},
    )


def _open(envelope_epoch: int, fake_node: FakeNode) -> list[bytes]:
    """What the members reveal once any two of them release their shares."""
    venue = venue_id(DOMAIN)
    shares = [create_decryption_share(s, venue, envelope_epoch) for s in COMMITTEE_SHARES[2:]]
    key = combine_decryption_shares(COMMITTEE_KEY, venue, envelope_epoch, shares).key
    assert key is not None
    bodies = []
    for envelope in fake_node.sealed:
        opened = open_sealed_intent(DOMAIN, key, envelope)
        assert isinstance(opened, Opened), opened
        bodies.append(opened.body)
    return bodies


def test_seal_true_sends_envelopes_that_open_to_the_exact_signed_bytes(
    fake_node: FakeNode,
) -> None:
    epoch = int(time.time() * 1000) // EPOCH_MS
    fake_node.venue = _venue(epoch)

    async def run() -> tuple[list[Any], list[bytes]]:
        async with AsyncClient.connect(fake_node.url, WALLET, seal=True) as client:
            intents = [
                client.build.place_order("ETH", "buy", "1.5", "2000.5"),
                client.build.cancel("ETH", 17),
            ]
            signed = [client.sign(i) for i in intents]
            receipts = await client.submit(signed)
            return receipts, [encode_signed_intent(s) for s in signed]

    receipts, expected = asyncio.run(run())
    assert len(fake_node.sealed) == 2
    targets = {envelope.header.epoch for envelope in fake_node.sealed}
    assert len(targets) == 1
    (target,) = targets
    assert epoch <= target <= epoch + 1  # the clock may cross an epoch boundary meanwhile
    assert _open(target, fake_node) == expected
    for receipt, envelope, body in zip(receipts, fake_node.sealed, expected, strict=True):
        assert receipt.sealed_id == "0x" + sealed_intent_id(envelope.encode()).hex()
        assert envelope_signer(venue_id(DOMAIN), envelope) == WALLET.address
        assert body not in fake_node.posts[-1]  # the plaintext never crossed the wire
    # the receipts name the ids the intents get once revealed
    assert receipts[0].intent_id.startswith("0x") and receipts[0].intent_id != receipts[1].intent_id


def test_the_sync_client_seals_an_action_for_a_given_epoch(fake_node: FakeNode) -> None:
    fake_node.venue = _venue(100)
    with Client.connect(fake_node.url, WALLET) as client:
        envelope = client.seal(client.build.place_order("BTC", "sell", "0.001", "50000"), epoch=123)
        (receipt,) = client.submit_sealed([client.build.cancel_all()], epoch=123, fee_cap=5)
    assert envelope.header.epoch == 123
    (sent,) = fake_node.sealed
    assert (sent.header.epoch, sent.header.fee_cap) == (123, 5)
    assert receipt.sealed_id is not None
    assert len(_open(123, fake_node)) == 1


def test_a_slow_clock_never_targets_an_epoch_before_the_nodes() -> None:
    info = SealingInfo(500, EPOCH_MS, COMMITTEE_KEY.public_key)
    assert info.target_epoch(now_ms=10 * EPOCH_MS) == 500
    assert info.target_epoch(now_ms=600 * EPOCH_MS + 999) == 600


def test_less_than_the_lead_left_of_an_epoch_targets_the_next_one() -> None:
    info = SealingInfo(500, EPOCH_MS, COMMITTEE_KEY.public_key)
    start = 600 * EPOCH_MS
    assert info.target_epoch(start + 979, lead_ms=20) == 600  # 21 ms left
    assert info.target_epoch(start + 980, lead_ms=20) == 600  # 20 ms left: enough
    assert info.target_epoch(start + 981, lead_ms=20) == 601  # 19 ms left
    assert info.target_epoch(start + 999) == 600  # no lead: the clock's epoch to its end
    assert info.target_epoch(start, lead_ms=EPOCH_MS + 1) == 601  # the next, never further
    assert info.target_epoch(start, lead_ms=50 * EPOCH_MS) == 601
    assert info.target_epoch(10 * EPOCH_MS + 999, lead_ms=20) == 500  # nor before the node's
    with pytest.raises(ValueError, match="lead_ms"):
        info.target_epoch(start, lead_ms=-1)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 701),
        ({"seal_lead_ms": 0}, 700),
        ({"seal_lead_ms": 9}, 700),
        ({"seal_lead_ms": 11}, 701),
    ],
)
def test_seal_targets_the_next_epoch_within_seal_lead_ms_of_the_end(
    fake_node: FakeNode, monkeypatch: pytest.MonkeyPatch, options: dict[str, int], expected: int
) -> None:
    fake_node.venue = _venue(0)
    ten_ms_left = (701 * EPOCH_MS - 10) / 1000
    monkeypatch.setattr(
        "asyncdex.client.client.time", types.SimpleNamespace(time=lambda: ten_ms_left)
    )
    with Client.connect(fake_node.url, WALLET, **options) as client:
        intent = client.build.cancel_all()
        assert client.seal(intent).header.epoch == expected  # the default lead is 20 ms
        assert client.seal(intent, epoch=700).header.epoch == 700  # a given epoch is kept


def test_a_negative_seal_lead_is_refused() -> None:
    with pytest.raises(ValueError, match="seal_lead_ms"):
        AsyncClient("http://127.0.0.1:1", WALLET, 1, CONTRACT, seal_lead_ms=-1)


def test_a_venue_without_sealing_refuses_to_seal(fake_node: FakeNode) -> None:
    document = _venue(1)
    del document["sealing"]
    fake_node.venue = document
    with (
        Client.connect(fake_node.url, WALLET, seal=True) as client,
        pytest.raises(ClientError, match="no sealing key"),
    ):
        client.place_order("ETH", "buy", "1", "2000")
    assert fake_node.sealed == [] and fake_node.posts == []


@pytest.mark.parametrize(
    ("sealing", "message"),
    [
        ({"epoch": -1, "epoch_ms": 1000}, "sealing.epoch"),
        ({"epoch": 1, "epoch_ms": 0}, "sealing.epoch_ms"),
        ({"epoch": 1, "epoch_ms": 1000, "public_key": "0x" + "00" * 48}, "sealing.public_key"),
        ({"epoch": 1, "epoch_ms": 1000, "public_key": "0x12"}, "sealing.public_key"),
        ({"epoch": 1, "epoch_ms": 1000, "extra": 1}, "unknown field"),
        ("0x00", "expected an object"),
    ],
)
def test_a_malformed_sealing_object_is_refused(sealing: Any, message: str) -> None:
    document = _venue(1)
    if isinstance(sealing, dict):
        sealing = {"public_key": document["sealing"]["public_key"], **sealing}
    document["sealing"] = sealing
    with pytest.raises(ValueError, match=message):
        Venue.from_json(document)


def test_the_venue_reads_the_sealing_key() -> None:
    venue = Venue.from_json(_venue(7))
    assert venue.sealing == SealingInfo(7, EPOCH_MS, COMMITTEE_KEY.public_key)


def test_wait_for_follows_a_sealed_receipt_by_its_sealed_id(fake_node: FakeNode) -> None:
    fake_node.venue = _venue(100)
    with Client.connect(fake_node.url, WALLET) as client:
        first, second = client.submit_sealed(
            [client.build.cancel_all(), client.build.cancel("ETH", 3)], epoch=100
        )
        assert first.sealed_id is not None and second.sealed_id is not None
        still_sealed = {"seq": None, "status": "ordered", "sealedId": first.sealed_id}
        revealed = {**still_sealed, "intentId": first.intent_id, "status": "revealed"}
        fake_node.statuses[first.sealed_id] = [
            still_sealed,
            revealed,
            revealed,
            {**still_sealed, "intentId": first.intent_id, "seq": 9, "status": "executed",
             "events": []},
        ]  # fmt: skip
        fake_node.statuses[second.sealed_id] = [
            {"seq": None, "status": "ordered", "sealedId": second.sealed_id},
            {"seq": None, "status": "ordered", "sealedId": second.sealed_id,
             "sealedRejection": "epoch_closed"},
        ]  # fmt: skip
        opened = client.wait_for(first, "revealed", timeout=10, poll_interval=0.01)
        assert (opened.status, opened.intent_id, opened.seq) == ("revealed", first.intent_id, None)
        executed = client.wait_for(first, timeout=10, poll_interval=0.01)
        refused = client.wait_for(second, timeout=10, poll_interval=0.01)
    assert (executed.status, executed.seq, executed.sealed_id) == ("executed", 9, first.sealed_id)
    assert executed.intent_id == first.intent_id and executed.sealed_rejection is None
    assert (refused.status, refused.sealed_rejection) == ("ordered", "epoch_closed")
    assert first.sealed_id[2:] in " ".join(fake_node.gets)  # polled by the sealed id
