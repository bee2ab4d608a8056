"""Streams: delta computation and attribution over a real engine, the client's book mirror,
and the per-connection bounds against an in-process node on a free loopback port.

The slow-consumer tests use a real socket whose client stops reading: once the kernel's
buffers are full the node's writer blocks, its bounded queue fills, and the node must drop
the book subscription (telling the client to resync) or, when that frees nothing, close the
socket with 1008 — while the node keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_type_hints

import aiohttp
import pytest

from asyncdex.client import BookMirror, StaleBook
from asyncdex.engine.transition import Engine
from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.gateway.streams import (
    _ACCOUNT_FIELDS,
    _ORDER_ONLY,
    BookLevels,
    NativeStreams,
    StreamLimits,
    account_events,
    book_changes,
)
from asyncdex.messages.commands import (
    AdvanceTime,
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    TimeInForce,
)
from asyncdex.messages.events import (
    EVENT_TYPES,
    Event,
    FundingPaid,
    OrderAccepted,
    OrderModified,
    OrderRested,
    TradeExecuted,
)
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec

ALICE = b"\xaa" * 20
BOB = b"\xbb" * 20
CAROL = b"\xcc" * 20
PUBLISHER = b"\x01" * 20
SPEC = MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10)
CONFIG = EngineConfig(markets=(SPEC,), oracle_publishers=(PUBLISHER,))
T0 = 1_767_225_600_000
MARK = 600_000
DOMAIN = asyncdex_domain(31337, keccak256(b"streams unit contract")[-20:])
WAIT = 30.0  # seconds: a deadline, never an expected duration


class Venue:
    """A real engine and the node's tracked levels of its one market."""

    def __init__(self) -> None:
        self.engine = Engine(CONFIG)
        self.now = T0
        for index, account in enumerate((ALICE, BOB, CAROL)):
            self.run(Deposit(account, 10**12, index))
        self.run(PublishOraclePrice(PUBLISHER, 0, MARK))
        self.tracked = {0: BookLevels(self.engine.state.markets[0].book)}

    def run(self, command: Command, after_ms: int = 1) -> list[Event]:
        self.now += after_ms
        if isinstance(command, PlaceOrder | CancelOrder | ModifyOrder):
            command = Signed(command.account, self.now, 0, command)  # a trader's intent
        return self.engine.apply(command, self.now)

    def changes(self, command: Command) -> list[tuple[bool, int, int]]:
        events = self.run(command)
        return book_changes(self.engine.state, events, self.tracked).get(0, [])


def test_deltas_name_each_changed_level_with_its_new_total() -> None:
    venue = Venue()
    assert venue.changes(PlaceOrder(ALICE, 0, True, 599_990, 30)) == [(True, 599_990, 30)]
    assert venue.changes(PlaceOrder(BOB, 0, True, 599_990, 20)) == [(True, 599_990, 50)]
    assert venue.changes(PlaceOrder(BOB, 0, False, 600_100, 40)) == [(False, 600_100, 40)]
    # a sell sweeping the bid level: both makers filled, the taker's rest on its own level
    sweep = venue.changes(PlaceOrder(CAROL, 0, False, 599_990, 70))
    assert sweep == [(True, 599_990, 0), (False, 599_990, 20)]
    # a modify moving an order: the old level shrinks, the new one grows, in one delta
    order_id = next(iter(venue.engine.state.markets[0].book.asks[600_100]))
    moved = venue.changes(ModifyOrder(BOB, 0, order_id, 600_200, 40))
    assert moved == [(False, 600_100, 0), (False, 600_200, 40)]
    # shrinking in place keeps the level, with its new total
    assert venue.changes(ModifyOrder(BOB, 0, order_id, 600_200, 30)) == [(False, 600_200, 30)]
    assert venue.changes(CancelOrder(BOB, 0, order_id)) == [(False, 600_200, 0)]
    # a rejected command touches nothing
    assert venue.changes(CancelOrder(BOB, 0, order_id)) == []
    # what the node tracks is the engine's book
    book = venue.engine.state.markets[0].book
    levels = venue.tracked[0]
    assert levels.bids == {p: sum(o.size for o in lv.values()) for p, lv in book.bids.items()}
    assert levels.asks == {p: sum(o.size for o in lv.values()) for p, lv in book.asks.items()}
    assert levels.sides() == ([], [(599_990, 20)])


def test_account_events_reach_the_owner_of_each_order() -> None:
    venue = Venue()
    rest = venue.run(PlaceOrder(ALICE, 0, False, 600_100, 30))
    by_account = account_events(venue.engine.state, rest, [ALICE, BOB])
    assert [type(e) for e in by_account[ALICE]] == [OrderAccepted, OrderRested]
    assert BOB not in by_account
    order_id = rest[0].order_id  # type: ignore[union-attr]
    moved = venue.run(ModifyOrder(ALICE, 0, order_id, 600_000, 30))  # OrderModified: no account
    assert [type(e) for e in account_events(venue.engine.state, moved, [ALICE])[ALICE]] == [
        OrderModified,
        OrderRested,
    ]
    fill = venue.run(PlaceOrder(BOB, 0, True, 600_000, 30, TimeInForce.IOC))
    by_account = account_events(venue.engine.state, fill, [ALICE, BOB, CAROL])
    assert [type(e) for e in by_account[ALICE]] == [TradeExecuted]  # the maker
    assert [type(e) for e in by_account[BOB]] == [OrderAccepted, TradeExecuted]
    assert CAROL not in by_account
    # funding concerns the holders of the market's positions, and only them
    venue.run(PublishOraclePrice(PUBLISHER, 0, MARK), 3_600_000)
    funding = venue.run(AdvanceTime(), 3_600_000)
    assert any(type(e) is FundingPaid for e in funding), funding
    by_account = account_events(venue.engine.state, funding, [ALICE, BOB, CAROL])
    assert set(by_account) == {ALICE, BOB}
    assert all(type(e) is FundingPaid for e in by_account[ALICE])


def test_every_event_naming_an_account_is_routed_to_it() -> None:
    """A new event kind with an account field must be routed (or listed here as not one)."""
    not_accounts = {("OraclePriceAccepted", "publisher"), ("AgentApproved", "agent")}
    order_only = {kind.__name__ for kind in _ORDER_ONLY}
    for kind in EVENT_TYPES:
        hints = get_type_hints(kind)
        named = {field for field in kind._fields if hints[field] is bytes}
        named -= {field for name, field in not_accounts if name == kind.__name__}
        if kind.__name__ in order_only or kind is FundingPaid:
            assert not named, kind
            continue
        assert set(_ACCOUNT_FIELDS.get(kind, ())) == named, kind


def snapshot(seq: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {"channel": "book", "type": "snapshot", "market": "BTC", "seq": seq, "bids": bids,
            "asks": asks}  # fmt: skip


def delta(seq: int, prev: int, *changes: list[str]) -> dict[str, Any]:
    return {"channel": "book", "type": "delta", "market": "BTC", "seq": seq, "prevSeq": prev,
            "changes": list(changes)}  # fmt: skip


def test_book_mirror_applies_deltas_and_refuses_gaps_drops_and_crossings() -> None:
    mirror = BookMirror("BTC")
    with pytest.raises(StaleBook):
        mirror.bids()
    assert not mirror.apply(delta(4, 3, ["bid", "1", "1"]))  # before any snapshot: ignored
    assert not mirror.apply(snapshot(5, [["100", "2"], ["99", "1"]], [["101", "3"]]))
    assert not mirror.apply(delta(7, 5, ["bid", "100", "0"], ["ask", "102", "0.5"]))
    assert [(str(p), str(s)) for p, s in mirror.bids()] == [("99", "1")]
    assert [(str(p), str(s)) for p, s in mirror.asks()] == [("101", "3"), ("102", "0.5")]
    assert [str(x) for x in mirror.best()] == ["99", "101"]
    assert mirror.seq == 7

    # a gap: the delta does not follow seq 7
    assert mirror.apply(delta(9, 8, ["bid", "98", "1"]))
    assert not mirror.synced and mirror.resyncs == 1
    with pytest.raises(StaleBook):
        mirror.best()
    assert not mirror.apply(delta(10, 9, ["bid", "97", "1"]))  # still waiting: ignored
    assert not mirror.apply(snapshot(10, [["99", "1"]], []))
    assert mirror.synced and mirror.seq == 10

    # a delta that would cross the book is never shown
    assert mirror.apply(delta(11, 10, ["ask", "99", "1"]))
    assert not mirror.synced and mirror.resyncs == 2
    assert not mirror.apply(snapshot(11, [["99", "1"]], [["100", "1"]]))
    # the node dropped the subscription (slow consumer): out of sync until a new snapshot
    assert mirror.apply({"channel": "book", "type": "dropped", "market": "BTC"})
    assert not mirror.synced


def test_book_mirror_shows_a_batch_auction_book_crossed_between_auctions() -> None:
    mirror = BookMirror("BTC")
    message = snapshot(5, [["101", "1"]], [["99", "1"]])
    assert mirror.apply(message)  # a continuous book is never crossed: out of sync
    assert not mirror.apply({**message, "auction": True})
    assert mirror.synced and [str(x) for x in mirror.best()] == ["101", "99"]
    assert not mirror.apply(delta(6, 5, ["bid", "102", "1"]))
    assert mirror.synced and mirror.seq == 6


# ---------------------------------------------------------------------------------------------
# An in-process node


def run_node(
    tmp_path: Path,
    limits: StreamLimits,
    scenario: Callable[[Node, NativeStreams, aiohttp.ClientSession], Awaitable[None]],
) -> None:
    async def main() -> None:
        made: list[NativeStreams] = []

        def factory(node: Node) -> NativeStreams:
            made.append(NativeStreams(node, limits))
            return made[-1]

        node = Node(NodeSettings(tmp_path / "data", CONFIG, DOMAIN, extensions=(factory,)))
        await node.start()
        try:
            async with aiohttp.ClientSession() as http:
                await scenario(node, made[0], http)
        finally:
            await node.stop()

    asyncio.run(main())


BIG_OP = json.dumps({"op": "subscribe", "channel": "book", "market": "X" * 100_000})


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def block_writer(ws: aiohttp.ClientWebSocketResponse, streams: NativeStreams) -> Any:
    """Send ops with ~100 kB error replies, unread, until the node's writer for this socket
    is stuck (its queue holds two of them); the node's connection."""
    (conn,) = streams._connections
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while len(conn.outbox.frames) < 2:
        assert loop.time() < deadline, "the writer never blocked"
        await ws.send_str(BIG_OP)
        await asyncio.sleep(0.005)  # let the node read it (a poll, bounded by the deadline)
    return conn


def test_a_slow_consumer_loses_its_book_subscription_and_is_told_to_resync(
    tmp_path: Path,
) -> None:
    limits = StreamLimits(max_queue_messages=32, max_queue_bytes=1024 * 1024)

    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(node.url + "/v1/ws") as ws:
            await ws.send_str(json.dumps({"op": "subscribe", "channel": "book", "market": "BTC"}))
            assert (await ws.receive_json())["op"] == "subscribed"
            assert (await ws.receive_json())["type"] == "snapshot"
            conn = await block_writer(ws, streams)
            # the engine goes on while this client's writer is stuck
            (receipt,) = await node.submit_commands([Deposit(ALICE, 10**9, 0)])
            await node.submit_commands([PublishOraclePrice(PUBLISHER, 0, MARK)])
            assert await node.wait_applied(receipt.seq) is not None
            for index in range(20):  # each: an ack and a fresh snapshot, unread
                op = {"op": "subscribe", "channel": "book", "market": "BTC", "id": index}
                await ws.send_str(json.dumps(op))
            await ws.send_str(json.dumps({"op": "ping", "id": "last"}))
            await until(lambda: any(b'"last"' in frame for _, frame in conn.outbox.frames),
                        "the ping")  # fmt: skip
            assert len(conn.outbox.frames) <= limits.max_queue_messages + limits.max_subscriptions
            # the client reads again: a dropped notice, and the socket still serves it
            mirror = BookMirror("BTC")
            dropped = resynced = 0
            while True:
                message = await asyncio.wait_for(ws.receive_json(), WAIT)
                if message.get("id") == "last":
                    break
                if message.get("channel") == "book" and "op" not in message:
                    if message["type"] == "dropped":
                        assert (message["code"], message["market"]) == ("slow_consumer", "BTC")
                        dropped += 1
                    elif message["type"] == "snapshot" and not mirror.synced and dropped:
                        resynced += 1
                    mirror.apply(message)
            assert dropped >= 1
            await ws.send_str(json.dumps({"op": "subscribe", "channel": "book", "market": "BTC"}))
            assert (await ws.receive_json())["op"] == "subscribed"
            assert mirror.apply(await ws.receive_json()) is False and mirror.synced
            assert not ws.closed

    run_node(tmp_path, limits, scenario)


def test_a_slow_consumer_without_a_book_to_drop_is_closed_1008(tmp_path: Path) -> None:
    limits = StreamLimits(max_queue_messages=8, max_queue_bytes=1024 * 1024)

    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(node.url + "/v1/ws") as ws:
            (conn,) = streams._connections
            async with http.ws_connect(node.url + "/v1/ws") as other:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT
                while not conn.closed:  # ~100 kB error replies, unread
                    assert loop.time() < deadline, "the connection was never closed"
                    await ws.send_str(BIG_OP)
                    await asyncio.sleep(0.005)  # let the node read it
                # a client that reads is not affected
                await other.send_str(json.dumps({"op": "ping", "id": 1}))
                assert (await other.receive_json())["op"] == "pong"
                while True:
                    message = await asyncio.wait_for(ws.receive(), WAIT)
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1008)
                assert message.extra == "slow consumer: send queue overflow"
                await until(lambda: conn not in streams._connections, "the socket forgotten")
                assert len(streams._connections) == 1

    run_node(tmp_path, limits, scenario)


def test_connections_beyond_the_limit_are_refused(tmp_path: Path) -> None:
    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(node.url + "/v1/ws"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(node.url + "/v1/ws")
            assert refused.value.status == 503

    run_node(tmp_path, StreamLimits(max_connections=1), scenario)


def test_sockets_past_the_cap_per_address_are_refused_until_one_is_closed(
    tmp_path: Path,
) -> None:
    limits = StreamLimits(max_connections=10, max_connections_per_address=2)

    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        first = await http.ws_connect(node.url + "/v1/ws")
        async with http.ws_connect(node.url + "/v1/ws"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(node.url + "/v1/ws")
            assert refused.value.status == 503
            await first.close()
            # counted until the node has closed it, then there is room again
            await until(lambda: sum(streams.fanout.per_address.values()) == 1, "the release")
            async with http.ws_connect(node.url + "/v1/ws") as again:
                await again.send_str(json.dumps({"op": "ping", "id": 1}))
                assert (await again.receive_json())["op"] == "pong"

    run_node(tmp_path, limits, scenario)


def test_a_subscriber_that_never_reads_is_closed_after_the_stall_bound(tmp_path: Path) -> None:
    """Backlog bounds far away: the silence bound alone closes it, and the socket is really
    closed (the client sees the end once it reads) before it stops being counted."""
    limits = StreamLimits(max_queue_messages=1_000_000, max_queue_bytes=1 << 30, stall_seconds=0.5)

    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        async with http.ws_connect(node.url + "/v1/ws") as ws:
            raw = ws.get_extra_info("socket")
            conn = await block_writer(ws, streams)
            await until(lambda: conn not in streams._connections, "the stalled socket closed")
            assert conn.outbox.transport.is_closing()
            assert streams.fanout.outboxes == {} and streams.fanout.per_address == {}
            # reset, not left to linger in the node's kernel with what it could not send
            await until(lambda: tcp_state(raw) != TCP_ESTABLISHED, "the connection reset")
            while True:  # what was sent before, then the end
                message = await asyncio.wait_for(ws.receive(), WAIT)
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
            assert message.type in (
                aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR
            )  # fmt: skip

    run_node(tmp_path, limits, scenario)


TCP_ESTABLISHED = 1


def tcp_state(raw: socket.socket) -> int:
    """The kernel's TCP state of a connected socket (the first byte of ``TCP_INFO``)."""
    return raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def signed(command: PlaceOrder, nonce: int) -> Signed:
    return Signed(command.account, nonce, 0, command)


def test_a_message_is_encoded_once_for_all_its_subscribers(tmp_path: Path) -> None:
    subscribers = 20

    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        await node.submit_commands(
            [Deposit(ALICE, 10**12, 0), Deposit(BOB, 10**12, 1),
             PublishOraclePrice(PUBLISHER, 0, MARK)]
        )  # fmt: skip
        sockets = [await http.ws_connect(node.url + "/v1/ws") for _ in range(subscribers)]
        try:
            for ws in sockets:
                for channel in ("book", "trades"):
                    op = {"op": "subscribe", "channel": channel, "market": "BTC"}
                    await ws.send_str(json.dumps(op))
                    assert (await ws.receive_json())["op"] == "subscribed"
                    if channel == "book":
                        assert (await ws.receive_json())["type"] == "snapshot"
            before = streams.fanout.encoded
            nonce = node.settings.clock()
            (rest,) = await node.submit_commands([signed(PlaceOrder(ALICE, 0, False, MARK, 1_000),
                                                         nonce)])  # fmt: skip
            (take,) = await node.submit_commands(
                [signed(PlaceOrder(BOB, 0, True, MARK, 1_000, TimeInForce.IOC), nonce + 1)]
            )
            await node.wait_applied(take.seq)
            for ws in sockets:
                kinds = [
                    (await asyncio.wait_for(ws.receive_json(), WAIT)).get("type", "trades")
                    for _ in range(3)
                ]
                assert kinds == ["delta", "delta", "trades"]
            # two book deltas and one trades message, for twenty subscribers: three encodings
            assert streams.fanout.encoded - before == 3
            assert rest.seq < take.seq
        finally:
            for ws in sockets:
                await ws.close()

    run_node(tmp_path, StreamLimits(), scenario)


def test_receipts_keep_flowing_while_subscribers_do_not_read(tmp_path: Path) -> None:
    """Ten subscribers stuck with a backlog; a trader's intents are all acknowledged and
    applied meanwhile, and the stuck ones are closed."""
    limits = StreamLimits(stall_seconds=1.0)

    async def scenario(node: Node, streams: NativeStreams, http: aiohttp.ClientSession) -> None:
        await node.submit_commands([Deposit(ALICE, 10**12, 0),
                                    PublishOraclePrice(PUBLISHER, 0, MARK)])  # fmt: skip
        stuck = [await http.ws_connect(node.url + "/v1/ws") for _ in range(10)]
        subscribe = json.dumps({"op": "subscribe", "channel": "book", "market": "BTC"})
        for ws in stuck:
            await ws.send_str(subscribe)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        # never read: ~100 kB error replies pile up until the node holds some for every one
        while not all(len(conn.outbox.frames) >= 2 for conn in streams._connections):
            assert loop.time() < deadline, "the writers never blocked"
            for ws in stuck:
                await ws.send_str(BIG_OP)
            await asyncio.sleep(0.005)  # let the node read them
        backlogged = set(streams._connections)
        nonce = node.settings.clock()
        seqs = []
        for index in range(50):
            price = MARK - 10 * (index + 1)
            (receipt,) = await node.submit_commands(
                [signed(PlaceOrder(ALICE, 0, True, price, 1_000), nonce + index)]
            )
            seqs.append(receipt.seq)
        assert await node.wait_applied(seqs[-1]) is not None
        # those the node holds a backlog for are closed (the others' replies all fit in the
        # kernel's buffers: nothing is held for them)
        await until(lambda: not (backlogged & streams._connections), "the stuck ones closed")
        for ws in stuck:
            await ws.close()

    run_node(tmp_path, limits, scenario)
