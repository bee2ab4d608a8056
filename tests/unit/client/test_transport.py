"""The client against a scripted node on loopback: receipts, refusals, safe retries, polling.

The fake node (``conftest.FakeNode``) runs the real intake, so receipts carry the real
intent ids; its scripts inject 503s, dropped connections, 500s and status sequences.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from asyncdex.client import (
    AsyncClient,
    Client,
    DomainMismatch,
    IntakeRefused,
    NodeError,
    NodeUnavailable,
    Receipt,
    RetryPolicy,
    StatusTimeout,
    UnknownIntent,
    Wallet,
)
from asyncdex.client.nonces import NonceSource
from asyncdex.messages.reasons import Reject
from asyncdex.signing.intents import Intent, asyncdex_domain
from asyncdex.types.market import MarketSpec

from .conftest import CHAIN_ID, CONTRACT, DROP, NO_ROUTE, SLOW, FakeNode

WALLET = Wallet(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
MARKETS = [MarketSpec(0, "BTC", 5, tick=10, lot=10)]
T = TypeVar("T")
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)


def async_client(url: str, **options: Any) -> AsyncClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("nonces", NonceSource())
    return AsyncClient(url, WALLET, CHAIN_ID, CONTRACT, MARKETS, **options)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def run_with(url: str, call: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """One call on a fresh client, closed afterwards whatever happens."""

    async def scenario() -> T:
        async with async_client(url) as client:
            return await call(client)

    return asyncio.run(scenario())


def status_json(intent_id: str, status: str, events: list[dict[str, Any]] | None = None) -> Any:
    return {
        "seq": 1,
        "intentId": intent_id,
        "status": status,
        "events": events,
        "batch": 3 if status in ("committed", "finalized") else None,
        "txHash": "0x" + "ab" * 32 if status in ("committed", "finalized") else None,
    }


REJECTED = {
    "type": "Rejected",
    "account": "0x" + WALLET.account.hex(),
    "command": 2,
    "market": 0,
    "ref": 0,
    "reason": int(Reject.INSUFFICIENT_MARGIN),
    "reasonName": "INSUFFICIENT_MARGIN",
}


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# ---------------------------------------------------------------------------------------------
# Submitting


def test_batch_is_one_request_with_receipts_in_order(fake_node: FakeNode) -> None:
    async def scenario() -> list[Receipt]:
        async with async_client(fake_node.url) as client:
            intents: list[Intent] = [
                client.build.place_order("BTC", "buy", "0.001", "60000"),
                client.build.cancel("BTC", 4),
                client.build.cancel_all(),
            ]
            receipts = await client.batch(intents)
            assert [r.intent_id for r in receipts] == [client.intent_id(i) for i in intents]
            return receipts

    receipts = run(scenario())
    assert [r.seq for r in receipts] == [1, 2, 3]
    assert len(fake_node.posts) == 1
    assert [i["kind"] for i in json.loads(fake_node.posts[0])["intents"]] == [
        "PlaceOrder",
        "Cancel",
        "CancelAll",
    ]


def test_retry_after_503_resends_the_same_signed_bytes(fake_node: FakeNode) -> None:
    busy = (503, {"error": "node is shutting down", "code": "shutting_down"})
    fake_node.post_script = [busy, busy]
    receipt = run_with(fake_node.url, lambda c: c.cancel_all())
    assert receipt.seq == 1
    assert len(fake_node.posts) == 3
    assert fake_node.posts[0] == fake_node.posts[1] == fake_node.posts[2]


def test_dropped_connections_exhaust_retries_and_resubmitting_is_safe(fake_node: FakeNode) -> None:
    fake_node.post_script = [DROP, DROP, DROP]

    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            intent = client.build.cancel("BTC", 9)
            with pytest.raises(NodeUnavailable) as caught:
                await client.submit_one(intent)
            error = caught.value
            assert error.maybe_sequenced  # the node may have read it before the drop
            assert [s.intent for s in error.signed] == [intent]
            (receipt,) = await client.submit(error.signed)  # the same signed intent again
            assert receipt.intent_id == client.intent_id(intent)

    run(scenario())
    assert len(fake_node.posts) == 4
    assert len(set(fake_node.posts)) == 1  # never re-signed, never a new nonce


def test_timeout_waiting_for_the_answer_is_maybe_sequenced(fake_node: FakeNode) -> None:
    fake_node.post_script = [SLOW, SLOW]

    async def scenario() -> None:
        # the timeout leaves a loaded machine time for the answers that are not slow
        async with async_client(fake_node.url, request_timeout=0.4) as client:
            # Two slow answers time out and are retried; the third attempt gets a receipt.
            assert (await client.cancel_all()).seq == 1
            fake_node.post_script = [SLOW, SLOW, SLOW]
            with pytest.raises(NodeUnavailable) as caught:
                await client.cancel_all()
            assert caught.value.maybe_sequenced

    run(scenario())
    assert len(fake_node.posts) == 6


def test_outcome_unknown_is_maybe_sequenced_and_resolved_by_id(fake_node: FakeNode) -> None:
    failed = (503, {"error": "journal failure", "code": "journal_failed"})

    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            intents = [client.sign(client.build.cancel("BTC", n)) for n in (1, 2)]
            ids = [client.intent_id(i) for i in intents]
            unknown = (
                503,
                {"error": "journal failure: outcome unknown", "code": "outcome_unknown",
                 "unknown": [{"index": 0, "intentId": ids[0], "seq": 7, "timestamp": 1}]},
            )  # fmt: skip
            # journal_failed: certainly nothing sequenced
            fake_node.post_script = [failed, failed, failed]
            with pytest.raises(NodeUnavailable) as caught:
                await client.submit(intents)
            assert not caught.value.maybe_sequenced
            # outcome_unknown, even once among plain refusals: maybe sequenced
            fake_node.post_script = [unknown, failed, failed]
            with pytest.raises(NodeUnavailable) as caught:
                await client.submit(intents)
            error = caught.value
            assert error.maybe_sequenced and list(error.signed) == intents
            fake_node.statuses[ids[0]] = [status_json(ids[0], "executed", [])]
            found = await client.resolve(error.signed)
            assert found[0] is not None and found[0].intent_id == ids[0]
            assert found[1] is None  # the node does not have it: never sequenced

    run(scenario())


def test_connection_refused_is_not_maybe_sequenced(refused_url: str) -> None:
    with pytest.raises(NodeUnavailable) as caught:
        run_with(refused_url, lambda c: c.cancel_all())
    assert not caught.value.maybe_sequenced
    assert "after 3 attempts" in str(caught.value)


def test_intake_refusal_is_typed_and_not_retried(fake_node: FakeNode) -> None:
    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            good = client.sign(client.build.cancel_all())
            # r = 0: the real intake refuses it before sequencing, naming the field.
            bad = good._replace(signature=bytes(64) + b"\x1b")
            with pytest.raises(IntakeRefused) as caught:
                await client.submit([good, bad])
            error = caught.value
            assert (error.status, error.code, error.field, error.index) == (
                400,
                "signature_out_of_range",
                "signature",
                1,
            )
            assert "signature" in str(error)

    run(scenario())
    assert len(fake_node.posts) == 1


def test_node_fault_is_a_node_error_and_not_retried(fake_node: FakeNode) -> None:
    fake_node.post_script = [(500, {"error": "internal error", "code": "internal_error"})]
    with pytest.raises(NodeError) as caught:
        run_with(fake_node.url, lambda c: c.cancel_all())
    assert caught.value.status == 500
    assert len(fake_node.posts) == 1


def test_malformed_receipts_are_a_node_error(fake_node: FakeNode) -> None:
    fake_node.post_script = [(200, {"receipts": []})]
    with pytest.raises(NodeError, match="expected 1 receipts"):
        run_with(fake_node.url, lambda c: c.cancel_all())


def test_domain_mismatch_is_caught_from_the_receipt(fake_node: FakeNode) -> None:
    fake_node.domain = asyncdex_domain(CHAIN_ID + 1, bytes.fromhex(CONTRACT[2:]))
    with pytest.raises(DomainMismatch) as caught:
        run_with(fake_node.url, lambda c: c.cancel_all())
    assert len(caught.value.receipts) == 1  # sequenced: the engine will reject it


# ---------------------------------------------------------------------------------------------
# Following an intent


def test_wait_for_polls_until_executed_and_reads_the_rejection(fake_node: FakeNode) -> None:
    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            receipt = await client.cancel_all()
            fake_node.statuses[receipt.intent_id] = [
                None,  # not in the node's index yet
                status_json(receipt.intent_id, "sequenced"),
                status_json(receipt.intent_id, "executed", [REJECTED]),
            ]
            result = await client.wait_for(receipt, "executed", timeout=30)
            assert result.status == "executed" and result.seq == 1
            assert result.rejection is not None
            assert result.rejection.reject is Reject.INSUFFICIENT_MARGIN
            assert result.rejection.name == "INSUFFICIENT_MARGIN"
            assert result.fills == [] and result.order_id is None

    run(scenario())
    assert len(fake_node.gets) == 3


def test_wait_for_accepts_a_later_status_and_reads_fills(fake_node: FakeNode) -> None:
    trade = {
        "type": "TradeExecuted",
        "market": 0,
        "price": 600_000,
        "size": 100,
        "takerIsBuy": True,
        "makerOrder": 3,
        "takerOrder": 4,
        "maker": "0x" + "11" * 20,
        "taker": "0x" + WALLET.account.hex(),
        "makerFee": 9,
        "takerFee": 27,
    }
    accepted = {"type": "OrderAccepted", "orderId": 4, "account": "0x..", "market": 0}

    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            receipt = await client.place_order("BTC", "buy", "0.001", "60000")
            fake_node.statuses[receipt.intent_id] = [
                status_json(receipt.intent_id, "committed", [accepted, trade])
            ]
            result = await client.wait_for(receipt.intent_id, "executed")
            assert result.reached("committed") and not result.reached("finalized")
            assert result.batch == 3 and result.tx_hash == "0x" + "ab" * 32
            assert result.order_id == 4 and result.rejection is None
            (fill,) = result.fills
            assert (fill.price, fill.size, fill.taker_fee, fill.taker_order) == (
                600_000,
                100,
                27,
                4,
            )

    run(scenario())


def test_wait_for_times_out_with_the_last_status(fake_node: FakeNode) -> None:
    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            receipt = await client.cancel_all()
            fake_node.statuses[receipt.intent_id] = [status_json(receipt.intent_id, "executed")]
            with pytest.raises(StatusTimeout) as caught:
                await client.wait_for(receipt, "finalized", timeout=0.05, poll_interval=0.01)
            assert caught.value.last is not None and caught.value.last.status == "executed"
            with pytest.raises(ValueError, match="unknown status"):
                await client.wait_for(receipt, "filled")

    run(scenario())


def test_status_unknown_intent_and_missing_route(fake_node: FakeNode) -> None:
    unknown, routeless = "0x" + "01" * 32, "0x" + "02" * 32
    fake_node.statuses[routeless] = [NO_ROUTE]

    async def scenario() -> None:
        async with async_client(fake_node.url) as client:
            with pytest.raises(UnknownIntent):
                await client.status(unknown)
            with pytest.raises(NodeError, match="no such endpoint"):
                await client.status(routeless)
            with pytest.raises(ValueError):
                await client.status("0x1234")

    run(scenario())


def test_status_reads_are_retried_after_503(fake_node: FakeNode) -> None:
    intent_id = "0x" + "03" * 32
    fake_node.statuses[intent_id] = [
        (503, {"error": "busy", "code": "shutting_down"}),
        status_json(intent_id, "sequenced"),
    ]
    result = run_with(fake_node.url, lambda c: c.status(intent_id))
    assert result.status == "sequenced" and result.events_known is False


# ---------------------------------------------------------------------------------------------
# The sync client


def test_sync_client_places_and_waits(fake_node: FakeNode) -> None:
    with Client(
        fake_node.url, WALLET, CHAIN_ID, CONTRACT, MARKETS, retry=FAST_RETRY, nonces=NonceSource()
    ) as client:
        receipt = client.place_order("BTC", "sell", "0.001", "61000", tif="ALO")
        fake_node.statuses[receipt.intent_id] = [status_json(receipt.intent_id, "executed", [])]
        assert client.wait_for(receipt).status == "executed"
        receipts = client.batch([client.build.cancel("BTC", 1), client.build.cancel("BTC", 2)])
        assert [r.seq for r in receipts] == [2, 3]
    with pytest.raises(RuntimeError, match="closed"):
        client.cancel_all()


def test_sync_client_is_shared_by_threads(fake_node: FakeNode) -> None:
    receipts: list[Receipt] = []
    lock = threading.Lock()
    with Client(
        fake_node.url, WALLET, CHAIN_ID, CONTRACT, MARKETS, retry=FAST_RETRY, nonces=NonceSource()
    ) as client:

        def worker() -> None:
            for _ in range(10):
                receipt = client.cancel_all("BTC")
                with lock:
                    receipts.append(receipt)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len({r.intent_id for r in receipts}) == 40  # 40 distinct nonces, 40 distinct ids
    assert sorted(r.seq for r in receipts) == list(range(1, 41))


def test_sync_client_works_under_a_running_loop(fake_node: FakeNode) -> None:
    # asyncio.run per call would fail here ("cannot be called from a running event loop").
    async def inside() -> Receipt:
        with Client(fake_node.url, WALLET, CHAIN_ID, CONTRACT, nonces=NonceSource()) as client:
            return client.cancel_all()

    assert run(inside()).seq == 1


def test_a_rate_limited_retry_waits_the_nodes_hint(
    fake_node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a 429 the next try waits what the node asked, not the policy's few ms."""
    limited = (429, {"error": "rate limited", "code": "rate_limited", "retryAfterMs": 1500})
    fake_node.post_script = [limited]
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("asyncdex.client.client.asyncio.sleep", record)
    receipt = run_with(fake_node.url, lambda c: c.cancel_all())
    assert receipt.seq == 1
    assert len(fake_node.posts) == 2 and fake_node.posts[0] == fake_node.posts[1]
    assert waits == [1.5]


def test_retry_after_hint_sources_and_cap() -> None:
    from asyncdex.client.client import MAX_RETRY_AFTER, retry_after_seconds

    assert retry_after_seconds("3", {"retryAfterMs": 250}) == 0.25  # the body is finer
    assert retry_after_seconds("3", None) == 3.0
    assert retry_after_seconds(None, {"error": "busy"}) == 0.0
    assert retry_after_seconds("soon", None) == 0.0
    assert retry_after_seconds("999999", None) == MAX_RETRY_AFTER
    assert retry_after_seconds(None, {"retryAfterMs": -5}) == 0.0
