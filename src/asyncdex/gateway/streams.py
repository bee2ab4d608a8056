"""Native WebSocket streams (``GET /v1/ws``): book deltas, trades, account events, intent
status, and intent submission over the socket. The protocol is in ``docs/streams.md``.

Invariants:

- Book messages are exact. A subscription starts with a snapshot of every level of the book
  after ``seq`` (the node's applied seq when it was taken); each later record that changed
  a level of that market sends one delta with the record's ``seq``, the ``prevSeq`` of the
  previous book message of that market on this connection, and the new total size of every
  level it changed (``"0"``: the level is gone). Snapshot + deltas in order equal the engine's
  book after the delta's seq, and a book the engine never leaves crossed is never crossed
  there. Exactness rests on one engine property: every change to a resting order (rest,
  fill, cancel, modify, trigger) is in the record's events under the order's id. The node
  keeps each resting order's level and size as last counted; after a record, each named
  order's old contribution leaves its old level and its new one (if it still rests) joins
  its new level. The property test checks the totals against the engine after every command.
- The engine is never blocked or slowed by a client: listeners only format and enqueue,
  each message encoded once for all its subscribers (a book delta once per distinct
  ``prevSeq``: once, but for connections that just took a snapshot), and written out in
  batches that yield to the event loop (:mod:`asyncdex.gateway.fanout`). Each connection's
  backlog (queued messages plus the transport's buffer) is bounded in messages and bytes.
  When it overflows, the connection's book subscriptions are dropped first (their queued
  messages discarded, one ``dropped`` notice per market: resubscribe for a fresh snapshot);
  if that frees nothing, the connection is closed with 1008, as is one that has a backlog
  and has not read for ``stall_seconds``; a socket is aborted when its close cannot be
  delivered. Memory per connection is bounded by the backlog limits, ``max_subscriptions``
  and ``max_followed_intents``. Sockets are capped per node and per client address, counted
  until closed.
- Every client op is answered, echoing its ``id``: a reply, or ``{"op": "error", "code",
  ...}``; an op that is refused changes nothing. Frames above ``frame_limit`` (the intake's
  body limit plus room for the op) close the socket with 1009 (aiohttp's ``max_msg_size``);
  binary frames are refused.
- ``submit`` is ``POST /v1/intents`` over the socket: the same body forms, decoded and
  verified by the node's intake and acknowledged by ``Node.submit_intents``; receipts only
  for durable records, refusals with the HTTP status and code the HTTP API gives.
- Intent status is reported per intent in order, each status once: ``sequenced``,
  ``executed`` (with the events), then ``committed`` (tx hash) and ``finalized`` when the
  node settles. A record reaches the engine only once durable, so an intent first seen when
  it executes is reported ``sequenced`` then ``executed`` together (and a batch committed
  and final between two looks, ``committed`` then ``finalized``). A follower that arrives
  late hears the current status, then what follows.
- Shutdown (``close``): new sockets are refused, in-flight submissions get a moment to be
  answered, queued messages a moment to leave, then every socket closes with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from asyncdex.engine.orderbook import Book, Order
from asyncdex.fairness.intake import SealedIntakeError, parse_sealed_body
from asyncdex.gateway.fanout import FanOut, Outbox, SocketLimits
from asyncdex.gateway.node import OutcomeUnknown, SubmitRefused, event_json
from asyncdex.gateway.ratelimit import BATCH_PER_WEIGHT, RateLimited
from asyncdex.messages.commands import Signed
from asyncdex.messages.events import (
    AgentApproved,
    BuilderFeeApproved,
    BuilderFeePaid,
    CommitteeRewardPaid,
    Deposited,
    Event,
    FundingPaid,
    IsolatedMarginMoved,
    L1MessageConsumed,
    LeverageSet,
    LiquidationSettled,
    LiquidationStarted,
    OrderAccepted,
    OrderCancelled,
    OrderModified,
    OrderRested,
    OrderTriggered,
    PositionDeleveraged,
    Rejected,
    ScheduledCancelSet,
    TradeExecuted,
    TriggerArmed,
    Withdrawn,
)
from asyncdex.sequencer.sequencer import Receipt, Sequenced
from asyncdex.signing import jsonbody
from asyncdex.signing.eip712 import parse_address
from asyncdex.signing.intake import IntakeError
from asyncdex.types.market import MarketSpec
from asyncdex.types.numeric import format_scaled

if TYPE_CHECKING:
    from asyncdex.engine.reader import StateReader
    from asyncdex.gateway.node import Node

_log = logging.getLogger(__name__)

WS_PATH = "/v1/ws"
CLOSE_GOING_AWAY = 1001  # the node shuts down
CLOSE_POLICY = 1008  # slow consumer: the send queue overflowed
FRAME_OVERHEAD = 4_096  # room around a submit body for the op's own fields

STATUS_RANK = {"sequenced": 0, "executed": 1, "committed": 2, "finalized": 3}


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Per-connection bounds (and a few per node)."""

    max_queue_messages: int = 4_096  # the backlog: queued, plus the transport's buffer
    max_queue_bytes: int = 8 * 1024 * 1024
    max_subscriptions: int = 64  # book, trades, account and intents-by-account together
    max_followed_intents: int = 1_000  # intent ids followed before they execute
    max_pending_settlement: int = 10_000  # executed intents awaiting committed / finalized
    max_in_flight_submits: int = 16
    max_connections: int = 1_000
    max_connections_per_address: int = 100
    stall_seconds: float = 10.0  # a backlog and no read progress this long: closed
    heartbeat_seconds: float = 30.0  # ping an idle peer; a dead one is dropped
    settlement_poll_seconds: float = 0.25
    close_grace_seconds: float = 2.0  # shutdown: for in-flight submits and queued messages


DEFAULT_STREAM_LIMITS = StreamLimits()


def socket_limits(limits: StreamLimits) -> SocketLimits:
    return SocketLimits(
        max_connections=limits.max_connections,
        max_connections_per_address=limits.max_connections_per_address,
        max_backlog_messages=limits.max_queue_messages,
        max_backlog_bytes=limits.max_queue_bytes,
        stall_seconds=limits.stall_seconds,
        close_grace_seconds=limits.close_grace_seconds,
    )


class OpError(Exception):
    """A client op refused: answered with an error frame, nothing changed."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        index: int | None = None,
        status: int | None = None,
        retry_after_ms: int | None = None,
        unknown: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.index = index
        self.status = status
        self.retry_after_ms = retry_after_ms
        self.unknown = unknown  # outcome_unknown: the intents that may be in the journal

    def to_json(self, op_id: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"op": "error", "id": op_id, "code": self.code, "error": str(self)}
        if self.field is not None:
            out["field"] = self.field
        if self.index is not None:
            out["index"] = self.index
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after_ms is not None:
            out["retryAfterMs"] = self.retry_after_ms
        if self.unknown is not None:
            out["unknown"] = self.unknown
        return out


def _dumps(document: Any) -> str:
    # ASCII only: a message's length in characters is its size in bytes on the wire
    return json.dumps(document, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Book levels: what a book subscription mirrors


class BookLevels:
    """The aggregated levels (price -> total size, per side) of one market's book, and where
    each resting order sits with its size, kept equal to the engine's book by
    :meth:`refresh`. A level's total moves by the size changes of the orders a record named,
    so a record costs its events, never the depth of a level."""

    __slots__ = ("asks", "bids", "market", "orders")

    def __init__(self, book: Book) -> None:
        self.market = book.market
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        # resting order id -> (is_buy, price, size) as the totals count it
        self.orders: dict[int, tuple[bool, int, int]] = {}
        for is_buy, levels, totals in ((True, book.bids, self.bids), (False, book.asks, self.asks)):
            for price, level in levels.items():
                totals[price] = sum(order.size for order in level.values())
                for order_id, order in level.items():
                    self.orders[order_id] = (is_buy, price, order.size)

    def refresh(
        self, order_ids: Iterable[int], orders: Mapping[int, Order]
    ) -> list[tuple[bool, int, int]]:
        """Bring the levels up to the engine's book after a record whose events named
        ``order_ids`` (``orders``: the engine's live orders); returns the changed levels as
        ``(is_buy, price, new total size)``, bids first, each side by ascending price."""
        moved: dict[tuple[bool, int], int] = {}  # (is_buy, price) -> change of its total
        for order_id in dict.fromkeys(order_ids):
            before = self.orders.pop(order_id, None)
            if before is not None:
                where = (before[0], before[1])
                moved[where] = moved.get(where, 0) - before[2]
            order = orders.get(order_id)
            if order is None or order.market != self.market:
                continue
            # a live order rests in the book at its price unless it is an armed trigger (a
            # fired one has trigger_kind 0): no need to look into the book itself
            if not order.trigger_kind:
                self.orders[order_id] = (order.is_buy, order.price, order.size)
                where = (order.is_buy, order.price)
                moved[where] = moved.get(where, 0) + order.size
        changes: list[tuple[bool, int, int]] = []
        for (is_buy, price), change in sorted(moved.items(), key=_bids_first):
            if change == 0:
                continue
            totals = self.bids if is_buy else self.asks
            size = totals.get(price, 0) + change
            if size:
                totals[price] = size
            else:
                del totals[price]
            changes.append((is_buy, price, size))
        return changes

    def sides(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first) as (price, total size)."""
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def _bids_first(item: tuple[tuple[bool, int], int]) -> tuple[bool, int]:
    (is_buy, price), _ = item
    return not is_buy, price


_ORDER_FIELDS: dict[type, tuple[str, ...]] = {
    OrderAccepted: ("order_id",),
    OrderRested: ("order_id",),
    OrderCancelled: ("order_id",),
    OrderModified: ("order_id",),
    OrderTriggered: ("order_id",),
    TriggerArmed: ("order_id",),
    TradeExecuted: ("maker_order", "taker_order"),
}


def order_ids_by_market(
    events: Iterable[Event], orders: Mapping[int, Order], tracked: dict[int, BookLevels]
) -> dict[int, list[int]]:
    """The order ids each event names, grouped by the market of each tracked book they may
    concern (an order gone from the engine is looked up where it rested)."""
    out: dict[int, list[int]] = {}
    for event in events:
        fields = _ORDER_FIELDS.get(type(event))
        if fields is None:
            continue
        known = getattr(event, "market", None)
        for name in fields:
            order_id = getattr(event, name)
            if not order_id:
                continue  # a protocol trade's taker
            market = known
            if market is None:
                order = orders.get(order_id)
                if order is not None:
                    market = order.market
                else:
                    market = next((m for m, b in tracked.items() if order_id in b.orders), None)
            if market is not None and market in tracked:
                out.setdefault(market, []).append(order_id)
    return out


def book_changes(
    state: StateReader, events: list[Event], tracked: dict[int, BookLevels]
) -> dict[int, list[tuple[bool, int, int]]]:
    """Refresh every tracked book a record's events touched; the changed levels by market."""
    changes: dict[int, list[tuple[bool, int, int]]] = {}
    for market, order_ids in order_ids_by_market(events, state.orders, tracked).items():
        changed = tracked[market].refresh(order_ids, state.orders)
        if changed:
            changes[market] = changed
    return changes


def level_json(spec: MarketSpec, price: int, size: int) -> list[str]:
    """``[price, size]`` as the REST book writes them (decimal strings)."""
    return [format_scaled(price, spec.price_decimals), format_scaled(size, spec.sz_decimals)]


def change_json(spec: MarketSpec, is_buy: bool, price: int, size: int) -> list[str]:
    return ["bid" if is_buy else "ask", *level_json(spec, price, size)]


# ---------------------------------------------------------------------------------------------
# Account events


_ACCOUNT_FIELDS: dict[type, tuple[str, ...]] = {
    Rejected: ("account",),
    OrderAccepted: ("account",),
    TradeExecuted: ("maker", "taker"),
    OrderCancelled: ("account",),
    Deposited: ("account",),
    Withdrawn: ("account",),
    LeverageSet: ("account",),
    IsolatedMarginMoved: ("account",),
    ScheduledCancelSet: ("account",),
    LiquidationStarted: ("account",),
    LiquidationSettled: ("account",),
    PositionDeleveraged: ("account", "counterparty"),
    L1MessageConsumed: ("account",),
    AgentApproved: ("account",),  # the agent is a key acting for the account, not one
    BuilderFeeApproved: ("account", "builder"),  # the builder is an account: it may watch
    BuilderFeePaid: ("account", "builder"),  # money leaves one account for the other
    CommitteeRewardPaid: ("member",),  # a committee member's earnings land in its collateral
}
_ORDER_ONLY = (OrderRested, OrderModified, OrderTriggered, TriggerArmed)


def account_events(
    state: StateReader, events: list[Event], wanted: Iterable[bytes]
) -> dict[bytes, list[Event]]:
    """The events of one record that concern each ``wanted`` account, in order: those naming
    it, those naming one of its orders, and funding of a market it holds a position in."""
    wanted = set(wanted)
    owners: dict[int, bytes] = {}
    for event in events:
        kind = type(event)
        if kind is OrderAccepted or kind is OrderCancelled:
            owners[event.order_id] = event.account  # type: ignore[union-attr]
        elif kind is TradeExecuted:
            owners[event.maker_order] = event.maker  # type: ignore[union-attr]
            owners[event.taker_order] = event.taker  # type: ignore[union-attr]
    out: dict[bytes, list[Event]] = {}
    for event in events:
        kind = type(event)
        named: Iterable[bytes]
        if kind in _ORDER_ONLY:
            order_id: int = event.order_id  # type: ignore[union-attr]
            owner = owners.get(order_id)
            if owner is None:
                order = state.orders.get(order_id)
                owner = None if order is None else order.account
            named = () if owner is None else (owner,)
        elif kind is FundingPaid:
            holders = state.markets[event.market].holders  # type: ignore[union-attr]
            named = [account for account in wanted if account in holders]
        else:
            fields = _ACCOUNT_FIELDS.get(kind, ())
            named = dict.fromkeys(getattr(event, name) for name in fields)
        for account in named:
            if account in wanted:
                out.setdefault(account, []).append(event)
    return out


# ---------------------------------------------------------------------------------------------
# One connection


def _address_hex(account: bytes) -> str:
    return "0x" + account.hex()


class _Connection:
    """One socket: its subscriptions and its bounded outbox (written by the door's fan-out)."""

    def __init__(self, ws: web.WebSocketResponse, outbox: Outbox, symbols: dict[int, str]) -> None:
        self.ws = ws
        self.outbox = outbox
        self.symbols = symbols  # market id -> symbol
        self.books: dict[int, int] = {}  # market -> seq of the last book message sent
        self.trades: set[int] = set()
        self.accounts: set[bytes] = set()
        self.intent_accounts: set[bytes] = set()
        self.followed: dict[bytes, int] = {}  # intent id -> rank reported (-1: none yet)
        # executed intents awaiting committed / finalized, in seq order:
        # intent id -> [seq, rank reported, timestamp]
        self.pending: OrderedDict[bytes, list[int]] = OrderedDict()
        self.submits: set[asyncio.Task[None]] = set()
        self.on_drop_books: Any = None  # set by NativeStreams: unsubscribes the books
        outbox.on_overflow = self._on_overflow

    @property
    def closed(self) -> bool:
        return self.outbox.closed

    @property
    def subscriptions(self) -> int:
        return len(self.books) + len(self.trades) + len(self.accounts) + len(self.intent_accounts)

    def send(self, document: Any) -> None:
        """An answer the client waits for (a reply, a receipt, an intent's status): it
        leaves in this loop iteration, not with the next market-data flush."""
        self.outbox.send_text(_dumps(document), urgent=True)

    def send_text(self, text: str, *, book: bool = False) -> None:
        """Enqueue a frame; never waits. On overflow book subscriptions go first, then the
        connection."""
        self.outbox.send_text(text, book)

    def send_frame(self, frame: bytes, *, book: bool = False) -> None:
        """Enqueue a frame encoded once for many connections."""
        self.outbox.put(frame, book)

    def _on_overflow(self, outbox: Outbox, book: bool) -> bool:
        if not self.books:
            return False
        self.drop_books("slow_consumer", "the send queue overflowed: resubscribe")
        return book  # a book message's subscription is gone

    def drop_books(self, reason: str, message: str) -> None:
        markets = list(self.books)
        outbox = self.outbox
        outbox.shed(lambda book: not book)
        if self.on_drop_books is not None:
            self.on_drop_books(self, markets)
        for market in markets:
            # a handful of small notices (at most max_subscriptions) may pass the limits
            text = _dumps(
                {
                    "channel": "book",
                    "type": "dropped",
                    "market": self.symbols[market],
                    "code": reason,
                    "error": message,
                }
            )
            outbox.force(outbox.fanout.encode(text))

    def abort(self, code: int, reason: str) -> None:
        self.outbox.close(code, reason)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until everything queued was handed to the kernel."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        outbox = self.outbox
        while outbox.backlog_bytes() and not outbox.closed and loop.time() < deadline:
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Op parsing


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise OpError("invalid_json", f"duplicate key {key!r}")
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise OpError("invalid_json", f"{name} is not JSON")


def _parse_frame(text: str) -> dict[str, Any]:
    try:
        document = jsonbody.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as exc:
        raise OpError("invalid_json", f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OpError("invalid_op", 'an op is a JSON object {"op": ..., ...}')
    return document


def _op_id(document: dict[str, Any]) -> Any:
    op_id = document.get("id")
    if op_id is None or type(op_id) is int or (isinstance(op_id, str) and len(op_id) <= 64):
        return op_id
    raise OpError("invalid_field", "id must be an integer or a string of at most 64 characters",
                  field="id")  # fmt: skip


def _check_fields(document: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in document:
        if key not in allowed:
            raise OpError("unknown_field", f"unknown field {key!r}", field=key)


_CHANNEL_FIELDS = {
    "book": frozenset({"op", "id", "channel", "market"}),
    "trades": frozenset({"op", "id", "channel", "market"}),
    "account": frozenset({"op", "id", "channel", "address"}),
    "intents": frozenset({"op", "id", "channel", "ids", "account"}),
}


def _refused(refusal: SubmitRefused) -> OpError:
    """A refused submit's error frame: what the HTTP API answers, as an op error."""
    unknown = refusal.unknown_json() if isinstance(refusal, OutcomeUnknown) else None
    return OpError(refusal.code, str(refusal), index=refusal.index, status=refusal.status,
                   retry_after_ms=refusal.retry_after_ms, unknown=unknown)  # fmt: skip


_NOT_ACKNOWLEDGED = OpError("internal_error", "internal error: not acknowledged", status=500)
_SUBMIT_FIELDS = frozenset({"op", "id", "intents", "intent", "sealed", "follow"})
_PING_FIELDS = frozenset({"op", "id"})


def _parse_intent_id(text: Any, index: int) -> bytes:
    if isinstance(text, str) and text.startswith("0x") and len(text) == 66:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            pass
    raise OpError("invalid_intent_id", f"ids[{index}]: an intent id is 0x and 64 hex digits",
                  field="ids", index=index)  # fmt: skip


def _parse_account(document: dict[str, Any], key: str) -> bytes:
    try:
        return parse_address(document.get(key))  # type: ignore[arg-type]  # checks the type
    except ValueError as exc:
        raise OpError("invalid_address", f"{key}: {exc}", field=key) from None


# ---------------------------------------------------------------------------------------------
# The extension


class NativeStreams:
    """The ``/v1/ws`` endpoint of one node."""

    def __init__(self, node: Node, limits: StreamLimits | None = None) -> None:
        self.node = node
        if limits is None:
            caps = node.settings.connection_caps
            limits = dataclasses.replace(
                DEFAULT_STREAM_LIMITS,
                max_connections=caps.per_door,
                max_connections_per_address=caps.per_address,
            )
        self.limits = limits
        specs = node.settings.engine_config.markets
        self._specs = {spec.market_id: spec for spec in specs}
        self._market_ids = {spec.symbol: spec.market_id for spec in specs}
        self._symbols = {spec.market_id: spec.symbol for spec in specs}
        self._connections: set[_Connection] = set()
        self._closing = False
        # subscribers by key
        self._books: dict[int, set[_Connection]] = {}
        self._tracked: dict[int, BookLevels] = {}  # markets with book subscribers
        self._trades: dict[int, set[_Connection]] = {}
        self._accounts: dict[bytes, set[_Connection]] = {}
        self._intent_ids: dict[bytes, set[_Connection]] = {}
        self._intent_accounts: dict[bytes, set[_Connection]] = {}
        self._poller: asyncio.Task[None] | None = None
        self.fanout = FanOut(socket_limits(limits))
        self.frame_limit = node.settings.limits.max_body_bytes + FRAME_OVERHEAD
        node.add_listener(self._on_record)

    def install(self, app: web.Application) -> None:
        app.router.add_get(WS_PATH, self.handle)

    async def close(self) -> None:
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        grace = self.limits.close_grace_seconds
        submits = [task for conn in self._connections for task in conn.submits]
        if submits:
            await asyncio.wait(submits, timeout=grace)
        connections = list(self._connections)
        await asyncio.gather(*(conn.drain(grace) for conn in connections))
        # a peer that does not read cannot hold the shutdown: its socket is cut at the grace
        for conn in connections:
            conn.outbox.close(CLOSE_GOING_AWAY, "node shutting down", going_away=True)
        await self.fanout.close()

    # ------------------------------------------------------------------ the socket

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._closing or self.node.draining:
            return web.json_response(
                {"error": "node is shutting down", "code": "shutting_down"}, status=503
            )
        refusal = self.fanout.refusal(request)
        if refusal is not None:
            return refusal
        # counted from here until the transport is closed (``FanOut.release``)
        outbox = self.fanout.open(request)
        conn: _Connection | None = None
        try:
            ws = web.WebSocketResponse(
                max_msg_size=self.frame_limit,
                heartbeat=self.limits.heartbeat_seconds,
                compress=False,
            )
            await ws.prepare(request)
            conn = _Connection(ws, outbox, self._symbols)
            conn.on_drop_books = self._unsubscribe_books
            self._connections.add(conn)
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_frame(conn, message.data)
                elif message.type == WSMsgType.BINARY:
                    conn.send(OpError("binary_frame", "frames are JSON text").to_json(None))
        finally:
            if conn is not None:
                self._connections.discard(conn)
                self._forget(conn)
            self.fanout.release(outbox)
        return ws

    def _on_frame(self, conn: _Connection, text: str) -> None:
        op_id: Any = None
        try:
            document = _parse_frame(text)
            op_id = _op_id(document)
            op = document.get("op")
            if op == "subscribe":
                self._subscribe(conn, document, op_id)
            elif op == "unsubscribe":
                self._unsubscribe(conn, document, op_id)
            elif op == "ping":
                _check_fields(document, _PING_FIELDS)
                conn.send({"op": "pong", "id": op_id, "seq": self.node.applied_seq})
            elif op == "submit":
                self._submit(conn, document, op_id)
            else:
                raise OpError(
                    "unknown_op", "op must be one of subscribe, unsubscribe, ping, submit",
                    field="op",
                )  # fmt: skip
        except OpError as error:
            conn.send(error.to_json(op_id))

    # ------------------------------------------------------------------ subscribe

    def _channel(self, document: dict[str, Any]) -> str:
        channel = document.get("channel")
        if not isinstance(channel, str) or channel not in _CHANNEL_FIELDS:
            raise OpError(
                "unknown_channel", "channel must be one of book, trades, account, intents",
                field="channel",
            )  # fmt: skip
        _check_fields(document, _CHANNEL_FIELDS[channel])
        return channel

    def _market(self, document: dict[str, Any]) -> int:
        symbol = document.get("market")
        market = self._market_ids.get(symbol) if isinstance(symbol, str) else None
        if market is None:
            raise OpError("unknown_market", f"no market {symbol!r}", field="market")
        return market

    def _room_for(self, conn: _Connection) -> None:
        if conn.subscriptions >= self.limits.max_subscriptions:
            raise OpError(
                "too_many_subscriptions",
                f"at most {self.limits.max_subscriptions} subscriptions per connection",
            )

    def _intent_target(self, document: dict[str, Any]) -> list[bytes] | bytes:
        """A list of intent ids, or one account."""
        has_ids, has_account = "ids" in document, "account" in document
        if has_ids == has_account:
            code = "invalid_field" if has_ids else "missing_field"
            raise OpError(code, 'intents takes either "ids" or "account"', field="ids")
        if has_account:
            return _parse_account(document, "account")
        ids = document["ids"]
        if not isinstance(ids, list) or not ids:
            raise OpError("invalid_field", "ids must be a non-empty list", field="ids")
        if len(ids) > self.limits.max_followed_intents:
            limit = self.limits.max_followed_intents
            raise OpError("too_many_intents_followed", f"at most {limit} intent ids", field="ids")
        return [_parse_intent_id(text, index) for index, text in enumerate(ids)]

    def _subscribe(self, conn: _Connection, document: dict[str, Any], op_id: Any) -> None:
        channel = self._channel(document)
        ack: dict[str, Any] = {"op": "subscribed", "id": op_id, "channel": channel}
        if channel == "book":
            market = self._market(document)
            if market not in conn.books:
                self._room_for(conn)
            conn.send({**ack, "market": document["market"]})
            self._subscribe_book(conn, market)
        elif channel == "trades":
            market = self._market(document)
            if market not in conn.trades:
                self._room_for(conn)
            conn.trades.add(market)
            self._trades.setdefault(market, set()).add(conn)
            conn.send({**ack, "market": document["market"]})
        elif channel == "account":
            account = _parse_account(document, "address")
            if account not in conn.accounts:
                self._room_for(conn)
            conn.accounts.add(account)
            self._accounts.setdefault(account, set()).add(conn)
            conn.send({**ack, "address": _address_hex(account)})
        else:
            target = self._intent_target(document)
            if isinstance(target, bytes):
                if target not in conn.intent_accounts:
                    self._room_for(conn)
                conn.intent_accounts.add(target)
                self._intent_accounts.setdefault(target, set()).add(conn)
                conn.send({**ack, "account": _address_hex(target)})
            else:
                new = [i for i in dict.fromkeys(target) if i not in conn.followed]
                if len(conn.followed) + len(new) > self.limits.max_followed_intents:
                    raise OpError(
                        "too_many_intents_followed",
                        f"at most {self.limits.max_followed_intents} intents followed at once",
                        field="ids",
                    )
                conn.send({**ack, "ids": ["0x" + i.hex() for i in target]})
                for intent_id in new:
                    self._follow(conn, intent_id)

    def _subscribe_book(self, conn: _Connection, market: int) -> None:
        """Subscribe (or resubscribe: a fresh snapshot) to a market's book."""
        levels = self._tracked.get(market)
        if levels is None:
            levels = self._tracked[market] = BookLevels(self.node.state.markets[market].book)
        self._books.setdefault(market, set()).add(conn)
        seq = self.node.applied_seq
        conn.books[market] = seq
        spec = self._specs[market]
        bids, asks = levels.sides()
        snapshot = {
            "channel": "book",
            "type": "snapshot",
            "market": spec.symbol,
            "seq": seq,
            "bids": [level_json(spec, price, size) for price, size in bids],
            "asks": [level_json(spec, price, size) for price, size in asks],
        }
        if spec.auction_interval_ms:
            # a batch-auction book is crossed between auctions on purpose: say so, so that a
            # mirror does not take it for a lost message (continuous snapshots are unchanged)
            snapshot["auction"] = True
        conn.send_text(_dumps(snapshot), book=True)

    def _unsubscribe_books(self, conn: _Connection, markets: list[int]) -> None:
        for market in markets:
            conn.books.pop(market, None)
            subscribers = self._books.get(market)
            if subscribers is not None:
                subscribers.discard(conn)
                if not subscribers:
                    # nobody mirrors it: stop tracking (rebuilt from the book when wanted)
                    del self._books[market]
                    del self._tracked[market]

    def _unsubscribe(self, conn: _Connection, document: dict[str, Any], op_id: Any) -> None:
        channel = self._channel(document)
        ack: dict[str, Any] = {"op": "unsubscribed", "id": op_id, "channel": channel}
        not_subscribed = OpError("not_subscribed", f"not subscribed to that {channel} stream")
        if channel == "book":
            market = self._market(document)
            if market not in conn.books:
                raise not_subscribed
            self._unsubscribe_books(conn, [market])
            conn.send({**ack, "market": document["market"]})
        elif channel == "trades":
            market = self._market(document)
            if market not in conn.trades:
                raise not_subscribed
            conn.trades.discard(market)
            _discard(self._trades, market, conn)
            conn.send({**ack, "market": document["market"]})
        elif channel == "account":
            account = _parse_account(document, "address")
            if account not in conn.accounts:
                raise not_subscribed
            conn.accounts.discard(account)
            _discard(self._accounts, account, conn)
            conn.send({**ack, "address": _address_hex(account)})
        else:
            target = self._intent_target(document)
            if isinstance(target, bytes):
                if target not in conn.intent_accounts:
                    raise not_subscribed
                conn.intent_accounts.discard(target)
                _discard(self._intent_accounts, target, conn)
                conn.send({**ack, "account": _address_hex(target)})
            else:
                if not any(i in conn.followed or i in conn.pending for i in target):
                    raise not_subscribed
                for intent_id in target:
                    self._unfollow(conn, intent_id)
                    conn.pending.pop(intent_id, None)
                conn.send({**ack, "ids": ["0x" + i.hex() for i in target]})

    def _forget(self, conn: _Connection) -> None:
        """Drop every subscription of a closed connection."""
        self._unsubscribe_books(conn, list(conn.books))
        for market in conn.trades:
            _discard(self._trades, market, conn)
        for account in conn.accounts:
            _discard(self._accounts, account, conn)
        for account in conn.intent_accounts:
            _discard(self._intent_accounts, account, conn)
        for intent_id in conn.followed:
            _discard(self._intent_ids, intent_id, conn)
        conn.trades.clear()
        conn.accounts.clear()
        conn.intent_accounts.clear()
        conn.followed.clear()
        conn.pending.clear()

    # ------------------------------------------------------------------ intents

    def _follow(self, conn: _Connection, intent_id: bytes) -> None:
        """Follow one intent: report what is known of it now, and what comes next."""
        conn.followed[intent_id] = -1
        self._intent_ids.setdefault(intent_id, set()).add(conn)
        seq = self.node.index.seq_of(intent_id)
        if seq is None:
            return  # not executed yet: the listener reports it
        status = self.node.record_status(seq)
        # a late follower hears the status now, not the ones the intent went through before
        conn.followed[intent_id] = STATUS_RANK[status["status"]] - 1
        self._report(conn, intent_id, seq, None, status)

    def _unfollow(self, conn: _Connection, intent_id: bytes) -> None:
        if conn.followed.pop(intent_id, None) is not None:
            _discard(self._intent_ids, intent_id, conn)

    def _report(
        self,
        conn: _Connection,
        intent_id: bytes,
        seq: int,
        timestamp: int | None,
        status: dict[str, Any],
    ) -> None:
        """Send the statuses of an intent not yet sent, in order, up to ``status``."""
        reached = STATUS_RANK[status["status"]]
        pending = conn.pending.get(intent_id)
        sent = conn.followed.get(intent_id, -1) if pending is None else pending[1]
        for rank in range(sent + 1, reached + 1):
            # A status passed between two looks is still one the intent went through: a
            # record is durable (sequenced) before it is applied, and a batch is committed
            # before it is final.
            if rank == reached:
                passed = status
            elif rank == 0:
                passed = {"status": "sequenced"}
            elif rank == 1:
                passed = {**status, "status": "executed", "batch": None, "txHash": None}
            else:
                passed = {**status, "status": "committed"}
            conn.send(_intent_message(intent_id, seq, timestamp, passed))
        final = reached == 3 or (reached == 1 and self.node.settlement is None)
        if final:
            self._unfollow(conn, intent_id)
            conn.pending.pop(intent_id, None)
        elif reached >= 1:
            self._unfollow(conn, intent_id)
            self._await_settlement(conn, intent_id, seq, reached, timestamp)
        elif intent_id in conn.followed:
            conn.followed[intent_id] = max(reached, sent)

    def _await_settlement(
        self, conn: _Connection, intent_id: bytes, seq: int, rank: int, timestamp: int | None
    ) -> None:
        pending = conn.pending
        if intent_id in pending:
            pending[intent_id][1] = rank
            return
        if len(pending) >= self.limits.max_pending_settlement:
            # bounded: the oldest stops being followed (its status stays queryable by id)
            pending.popitem(last=False)
        out_of_order = bool(pending) and next(reversed(pending.values()))[0] > seq
        pending[intent_id] = [seq, rank, -1 if timestamp is None else timestamp]
        if out_of_order:
            conn.pending = OrderedDict(sorted(pending.items(), key=lambda item: item[1][0]))
        if self._poller is None and self.node.settlement is not None and not self._closing:
            self._poller = asyncio.get_running_loop().create_task(self._poll_settlement())

    async def _poll_settlement(self) -> None:
        """Report committed and finalized for executed intents; reads memory only."""
        settlement = self.node.settlement
        assert settlement is not None
        while True:
            await asyncio.sleep(self.limits.settlement_poll_seconds)
            for conn in list(self._connections):
                for intent_id, (seq, rank, timestamp) in list(conn.pending.items()):
                    settled, _, _ = settlement.settled_status(seq)
                    if settled is None:
                        break  # batches commit in seq order: nothing later is committed
                    if STATUS_RANK[settled] > rank:
                        status = self.node.record_status(seq)
                        self._report(conn, intent_id, seq, timestamp if timestamp >= 0 else None,
                                     status)  # fmt: skip

    def _submit(self, conn: _Connection, document: dict[str, Any], op_id: Any) -> None:
        _check_fields(document, _SUBMIT_FIELDS)
        if ("intents" in document) + ("intent" in document) + ("sealed" in document) != 1:
            raise OpError("malformed_body", 'submit takes "intents": [...], "intent": {...} '
                          'or "sealed": ["0x...", ...]', status=400)  # fmt: skip
        follow = document.get("follow", False)
        if type(follow) is not bool:
            raise OpError("invalid_field", "follow must be true or false", field="follow")
        if "sealed" in document and follow:
            raise OpError("invalid_field", "a sealed intent is followed by the intent id it "
                          "reveals (the receipts do not know it): subscribe to it on the "
                          "intents channel", field="follow")  # fmt: skip
        if len(conn.submits) >= self.limits.max_in_flight_submits:
            limit = self.limits.max_in_flight_submits
            raise OpError("too_many_in_flight", f"at most {limit} submits in flight")
        limiter = self.node.rate_limiter
        if limiter is not None:
            # the IP's budget, as POST /v1/intents weighs it: 1 + floor(batch length / 40)
            intents = document.get("intents", document.get("sealed"))
            batch = len(intents) if isinstance(intents, list) else 1
            try:
                limiter.charge_ip(conn.outbox.address, 1 + batch // BATCH_PER_WEIGHT)
            except RateLimited as limited:
                raise OpError("rate_limited", str(limited), status=429,
                              retry_after_ms=limited.retry_after_ms) from None  # fmt: skip
        if "sealed" in document:
            self._submit_sealed(conn, document["sealed"], op_id)
            return
        body = _dumps(
            {"intents": document["intents"]} if "intents" in document else document["intent"]
        )
        intake = self.node.intake
        try:
            parsed = intake.decode(body.encode(), "application/json")
            submissions = intake.verify(parsed)
            self.node.note_signed_intents(parsed, submissions)
        except IntakeError as error:
            raise OpError(error.code, error.message, field=error.field, index=error.index,
                          status=error.status) from None  # fmt: skip
        ids = list(dict.fromkeys(s.intent_id for s in submissions if s.intent_id))
        if follow:
            new = [i for i in ids if i not in conn.followed]
            if len(conn.followed) + len(new) > self.limits.max_followed_intents:
                limit = self.limits.max_followed_intents
                raise OpError("too_many_intents_followed", f"at most {limit} intents followed")
            for intent_id in new:
                conn.followed[intent_id] = -1
                self._intent_ids.setdefault(intent_id, set()).add(conn)
        task = asyncio.get_running_loop().create_task(
            self._finish_submit(conn, op_id, submissions, ids if follow else [])
        )
        conn.submits.add(task)
        task.add_done_callback(conn.submits.discard)

    def _submit_sealed(self, conn: _Connection, sealed: Any, op_id: Any) -> None:
        """``submit`` of sealed envelopes: the body ``POST /v1/sealed`` takes, the same
        checks (``Node.submit_sealed``), the same receipts."""
        try:
            envelopes = parse_sealed_body(_dumps({"sealed": sealed}).encode())
        except SealedIntakeError as error:
            raise OpError(error.code, str(error), field=error.field, index=error.index,
                          status=error.status) from None  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._finish_sealed(conn, op_id, envelopes))
        conn.submits.add(task)
        task.add_done_callback(conn.submits.discard)

    async def _finish_sealed(self, conn: _Connection, op_id: Any, envelopes: list[bytes]) -> None:
        try:
            receipts = await self.node.submit_sealed(envelopes)
        except SealedIntakeError as error:
            conn.send(OpError(error.code, str(error), field=error.field, index=error.index,
                              status=error.status).to_json(op_id))  # fmt: skip
            return
        except SubmitRefused as refusal:
            conn.send(_refused(refusal).to_json(op_id))
            return
        except Exception:
            _log.exception("stream sealed submit failed")
            conn.send(_NOT_ACKNOWLEDGED.to_json(op_id))
            return
        conn.send({"op": "receipts", "id": op_id, "receipts": receipts})

    async def _finish_submit(
        self, conn: _Connection, op_id: Any, submissions: list[Any], followed: list[bytes]
    ) -> None:
        try:
            receipts = await self.node.submit_intents(submissions)
        except SubmitRefused as refusal:
            for intent_id in followed:
                if conn.followed.get(intent_id) == -1:
                    self._unfollow(conn, intent_id)  # never sequenced: nothing to follow
            conn.send(_refused(refusal).to_json(op_id))
            return
        except Exception:
            _log.exception("stream submit failed")
            conn.send(_NOT_ACKNOWLEDGED.to_json(op_id))
            return
        for receipt in receipts:
            if conn.followed.get(receipt.intent_id) != -1:
                continue  # reported by the listener already
            if receipt.seq <= self.node.applied_seq:
                # a retry answered with the first receipt of an intent applied long ago
                status = self.node.record_status(receipt.seq)
                self._report(conn, receipt.intent_id, receipt.seq, receipt.timestamp, status)
            else:
                # acknowledged, not yet applied (a batching policy may hold it back)
                conn.followed[receipt.intent_id] = 0
                conn.send(_intent_message(receipt.intent_id, receipt.seq, receipt.timestamp,
                                          {"status": "sequenced"}))  # fmt: skip
        conn.send({"op": "receipts", "id": op_id, "receipts": [_receipt_json(r) for r in receipts]})

    # ------------------------------------------------------------------ the listener

    def _on_record(self, record: Sequenced, events: list[Event]) -> None:
        """After each applied record: fan its effects out to the subscribers (enqueue only)."""
        if self._tracked:
            self._send_book_deltas(record, events)
        if self._trades:
            self._send_trades(record, events)
        if self._accounts and events:
            self._send_account_events(record, events)
        if record.intent_id and (self._intent_ids or self._intent_accounts):
            self._send_intent_status(record)

    def _send_book_deltas(self, record: Sequenced, events: list[Event]) -> None:
        seq = record.seq
        for market, changes in book_changes(self.node.state, events, self._tracked).items():
            spec = self._specs[market]
            head = f'{{"channel":"book","type":"delta","market":{_dumps(spec.symbol)},"seq":{seq}'
            tail = ',"changes":' + _dumps([change_json(spec, *change) for change in changes]) + "}"
            # every subscriber but one that took a snapshot since the last delta shares the
            # same prevSeq, hence the same frame
            frames: dict[int, bytes] = {}
            encode = self.fanout.encode
            for conn in list(self._books.get(market, ())):
                previous = conn.books.get(market)
                if previous is None:
                    continue  # dropped by an overflow while this loop ran
                conn.books[market] = seq
                frame = frames.get(previous)
                if frame is None:
                    frame = frames[previous] = encode(f'{head},"prevSeq":{previous}{tail}')
                conn.outbox.put(frame, True)

    def _send_trades(self, record: Sequenced, events: list[Event]) -> None:
        by_market: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            if type(event) is TradeExecuted and event.market in self._trades:
                spec = self._specs[event.market]
                by_market.setdefault(event.market, []).append(
                    {
                        "seq": record.seq,
                        "time": record.timestamp,
                        "price": format_scaled(event.price, spec.price_decimals),
                        "size": format_scaled(event.size, spec.sz_decimals),
                        "side": "buy" if event.taker_is_buy else "sell",
                        "makerOrder": event.maker_order,
                        "takerOrder": event.taker_order,
                    }
                )
        for market, trades in by_market.items():
            frame = self.fanout.encode(
                _dumps(
                    {
                        "channel": "trades",
                        "market": self._specs[market].symbol,
                        "seq": record.seq,
                        "time": record.timestamp,
                        "trades": trades,
                    }
                )
            )
            for conn in list(self._trades.get(market, ())):
                conn.outbox.put(frame)

    def _send_account_events(self, record: Sequenced, events: list[Event]) -> None:
        for account, mine in account_events(self.node.state, events, self._accounts).items():
            frame = self.fanout.encode(
                _dumps(
                    {
                        "channel": "account",
                        "address": _address_hex(account),
                        "seq": record.seq,
                        "time": record.timestamp,
                        "events": [event_json(event) for event in mine],
                    }
                )
            )
            for conn in list(self._accounts.get(account, ())):
                conn.outbox.put(frame)

    def _send_intent_status(self, record: Sequenced) -> None:
        intent_id = record.intent_id
        connections = set(self._intent_ids.get(intent_id, ()))
        if self._intent_accounts and type(record.command) is Signed:
            account = getattr(record.command.command, "account", None)
            if account is not None:
                connections.update(self._intent_accounts.get(account, ()))
        if not connections:
            return
        status = self.node.record_status(record.seq)
        for conn in connections:
            self._report(conn, intent_id, record.seq, record.timestamp, status)


def _discard(index: dict[Any, set[_Connection]], key: Any, conn: _Connection) -> None:
    subscribers = index.get(key)
    if subscribers is not None:
        subscribers.discard(conn)
        if not subscribers:
            del index[key]


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "intentId": "0x" + receipt.intent_id.hex() if receipt.intent_id else None,
        "seq": receipt.seq,
        "timestamp": receipt.timestamp,
    }


def _intent_message(
    intent_id: bytes, seq: int, timestamp: int | None, status: dict[str, Any]
) -> dict[str, Any]:
    return {
        "channel": "intents",
        "intentId": "0x" + intent_id.hex(),
        "seq": seq,
        "timestamp": timestamp,
        "status": status["status"],
        "events": status.get("events"),
        "batch": status.get("batch"),
        "txHash": status.get("txHash"),
    }
