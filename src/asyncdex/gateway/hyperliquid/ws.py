"""WebSocket ``/ws``: Hyperliquid's subscriptions and ``post`` requests.

Invariants:
- Never blocks the engine. Messages are built in the node's listener (on the event loop,
  after each applied record, in seq order), each encoded once for all the connections that
  subscribe to it, and put on each connection's bounded backlog without waiting; batched
  writes that yield to the event loop send them (:mod:`asyncdex.gateway.fanout`). A
  connection whose backlog passes its bound, or that has a backlog and has not read for
  ``stall_seconds``, is closed (code 1008; aborted if the close cannot be delivered) rather
  than slowing anything else down: a client that cannot keep up must reconnect and take a
  fresh snapshot. What one connection holds is bounded: its backlog and the socket's kernel
  send buffer (``SO_SNDBUF``). Sockets are capped per node and per client address, counted
  until closed.
- ``l2Book`` and ``bbo`` are sent when the levels they show change, not when only the
  state's ``time`` moved.
- Every message is ``{"channel", "data"}`` in Hyperliquid's shapes (those of
  :mod:`asyncdex.gateway.hyperliquid.info`), so the ``hyperliquid-python-sdk`` routes each
  to its subscription's callback: ``allMids``, ``l2Book``, ``trades``, ``bbo``, ``candle``,
  ``userFills``, ``userFundings``, ``orderUpdates`` and ``user`` (for ``userEvents``).
- A subscription is acknowledged with ``subscriptionResponse`` before anything it streams;
  ``allMids``, ``l2Book``, ``bbo`` and ``userFills`` (``isSnapshot: true``) then send the
  current state, and from then on every record that changes what they show. Within one
  connection messages keep the order of the records that caused them.
- A bad request (not JSON, unknown method or subscription type, bad field) is answered with
  ``{"channel": "error", "data": reason}`` and changes nothing; the connection stays open.
- ``post`` answers ``info`` requests through :meth:`InfoApi.handle` and ``action`` requests
  through :meth:`ExchangeApi.handle`, the same code as ``POST /info`` and ``/exchange``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WSMsgType, web

from asyncdex.engine.state import MarketState
from asyncdex.gateway.fanout import FanOut, Outbox, SocketLimits
from asyncdex.gateway.hyperliquid.info import (
    CANDLE_INTERVALS_MS,
    MAX_ID,
    ZERO_HASH,
    InfoRequestError,
    RecordActivity,
    basic_order_json,
    candle_json,
    format_address,
    format_px,
    format_sz,
    parse_optional_int,
    parse_uint,
    parse_user,
    side_code,
    trade_id,
)
from asyncdex.gateway.ratelimit import RateLimited, action_weight, info_weight
from asyncdex.messages.events import LiquidationStarted, OrderCancelled, TradeExecuted
from asyncdex.messages.reasons import CancelReason
from asyncdex.signing import jsonbody
from asyncdex.types.numeric import format_usdc

if TYPE_CHECKING:
    from asyncdex.gateway.hyperliquid.exchange import ExchangeApi
    from asyncdex.gateway.hyperliquid.info import InfoApi
    from asyncdex.gateway.node import Node

_log = logging.getLogger(__name__)

HEARTBEAT_SECONDS: Final = 30.0  # ping an idle peer; one that does not answer is dropped
MAX_SUBSCRIPTIONS: Final = 1_000  # per connection, as Hyperliquid's per-IP limit
MAX_MESSAGE_BYTES: Final = 64 * 1024
CLOSE_TOO_SLOW: Final = 1008
CLOSE_GOING_AWAY: Final = 1001
# cancels the user asked for are not "non-user" cancels
USER_CANCEL_REASONS: Final = frozenset(
    {CancelReason.USER, CancelReason.IOC_REMAINDER, CancelReason.MODIFIED_AWAY}
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One parsed subscription: ``key`` identifies it (and what it streams)."""

    key: tuple[Any, ...]
    request: dict[str, Any]


class Connection:
    """One client's socket, its subscriptions and its bounded outbox."""

    def __init__(self, socket: web.WebSocketResponse, outbox: Outbox) -> None:
        self.socket = socket
        self.outbox = outbox
        self.subscriptions: dict[tuple[Any, ...], Subscription] = {}

    def send(self, channel: str, data: Any) -> None:
        """An answer the client waits for: it leaves in this loop iteration."""
        self.outbox.send_text(_message(channel, data), urgent=True)

    def send_text(self, text: str) -> None:
        self.outbox.send_text(text, urgent=True)


class HyperliquidStreams:
    def __init__(
        self,
        node: Node,
        info: InfoApi,
        exchange: ExchangeApi,
        limits: SocketLimits | None = None,
    ) -> None:
        self.node = node
        self.info = info
        self.exchange = exchange
        if limits is None:
            caps = node.settings.connection_caps
            limits = SocketLimits(
                max_connections=caps.per_door, max_connections_per_address=caps.per_address
            )
        self.fanout = FanOut(limits)
        self._connections: dict[Connection, None] = {}
        # subscribers by key: a record's messages are built per key, then put on each of its
        # subscribers (a key nobody subscribes to costs nothing, nor does a connection
        # subscribed to keys the record leaves unchanged)
        self._subscribers: dict[tuple[Any, ...], dict[Connection, None]] = {}
        # what was last shown per key for the streams that send on change (allMids, l2Book,
        # bbo): the message without its ``time``, which moves with every record
        self._last: dict[tuple[Any, ...], str] = {}
        info.add_activity_listener(self._on_activity)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/ws", self.handle)

    async def close(self) -> None:
        # the close frame goes out behind what is queued; a peer that does not read is cut
        # at the grace
        for connection in list(self._connections):
            connection.outbox.close(CLOSE_GOING_AWAY, "node stopping", going_away=True)
        await self.fanout.close()

    # -- connections

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refusal = self.fanout.refusal(request)
        if refusal is not None:
            return refusal
        # counted from here until the transport is closed (``FanOut.release``)
        outbox = self.fanout.open(request)
        connection: Connection | None = None
        try:
            socket = web.WebSocketResponse(
                max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT_SECONDS, compress=False
            )
            await socket.prepare(request)
            connection = Connection(socket, outbox)
            self._connections[connection] = None
            connection.send_text("Websocket connection established.")
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    if message.type == WSMsgType.BINARY:
                        connection.send("error", "expected text frames of JSON")
                    continue
                await self._on_message(connection, message.data)
        finally:
            if connection is not None:
                del self._connections[connection]
                for key in connection.subscriptions:
                    self._drop_subscriber(key, connection)
                self._forget_unused_keys()
            self.fanout.release(outbox)
        return socket

    async def _on_message(self, connection: Connection, text: str) -> None:
        try:
            document = jsonbody.loads(text)
        except ValueError:
            connection.send("error", f"Error parsing JSON into valid websocket request: {text}")
            return
        method = document.get("method") if isinstance(document, dict) else None
        if method == "ping":
            connection.send("pong", None)
            return
        if method in ("subscribe", "unsubscribe"):
            try:
                subscription = self.parse_subscription(document.get("subscription"))
            except InfoRequestError as error:
                connection.send("error", f"Invalid subscription: {error}")
                return
            if method == "subscribe":
                self._subscribe(connection, subscription)
            else:
                self._unsubscribe(connection, subscription)
            return
        if method == "post":
            await self._post(connection, document)
            return
        connection.send("error", f"Unknown method in websocket request: {text}")

    # -- subscriptions

    def parse_subscription(self, request: Any) -> Subscription:
        if not isinstance(request, dict):
            raise InfoRequestError("expected an object with a `type`")
        kind = request.get("type")
        if kind == "allMids":
            if request.get("dex") not in ("", None):
                raise InfoRequestError("only the default perp dex exists")
            return Subscription(("allMids",), request)
        if kind in ("l2Book", "trades", "bbo", "candle"):
            market = self.info.market_of_coin(request.get("coin"))
            if kind == "l2Book":
                sig_figs = parse_optional_int(request, "nSigFigs", (2, 3, 4, 5))
                mantissa = parse_optional_int(request, "mantissa", (1, 2, 5))
                if mantissa is not None and sig_figs != 5:
                    raise InfoRequestError("`mantissa` is allowed only with `nSigFigs` 5")
                return Subscription(("l2Book", market.spec.market_id, sig_figs, mantissa), request)
            if kind == "candle":
                interval = request.get("interval")
                if not isinstance(interval, str) or interval not in CANDLE_INTERVALS_MS:
                    raise InfoRequestError(
                        f"invalid `interval` {interval!r}: one of {', '.join(CANDLE_INTERVALS_MS)}"
                    )
                return Subscription(("candle", market.spec.market_id, interval), request)
            return Subscription((kind, market.spec.market_id), request)
        if kind in ("userEvents", "orderUpdates", "userFills", "userFundings"):
            return Subscription((kind, parse_user(request)), request)
        raise InfoRequestError(f"unknown subscription type {kind!r}")

    def _subscribe(self, connection: Connection, subscription: Subscription) -> None:
        if subscription.key in connection.subscriptions:
            connection.send("error", f"Already subscribed: {json.dumps(subscription.request)}")
            return
        if len(connection.subscriptions) >= MAX_SUBSCRIPTIONS:
            connection.send("error", f"Too many subscriptions (at most {MAX_SUBSCRIPTIONS})")
            return
        connection.subscriptions[subscription.key] = subscription
        self._subscribers.setdefault(subscription.key, {})[connection] = None
        connection.send(
            "subscriptionResponse", {"method": "subscribe", "subscription": subscription.request}
        )
        snapshot = self._snapshot(subscription.key)
        if snapshot is not None:
            connection.send_text(snapshot)

    def _unsubscribe(self, connection: Connection, subscription: Subscription) -> None:
        if connection.subscriptions.pop(subscription.key, None) is None:
            connection.send("error", f"Not subscribed: {json.dumps(subscription.request)}")
            return
        self._drop_subscriber(subscription.key, connection)
        connection.send(
            "subscriptionResponse",
            {"method": "unsubscribe", "subscription": subscription.request},
        )
        self._forget_unused_keys()

    def _drop_subscriber(self, key: tuple[Any, ...], connection: Connection) -> None:
        subscribers = self._subscribers.get(key)
        if subscribers is not None:
            subscribers.pop(connection, None)
            if not subscribers:
                del self._subscribers[key]

    def _forget_unused_keys(self) -> None:
        for key in [key for key in self._last if key not in self._subscribers]:
            del self._last[key]

    def _snapshot(self, key: tuple[Any, ...]) -> str | None:
        """What a new subscriber is sent first (and remembered as the last value sent)."""
        kind = key[0]
        if kind in ("allMids", "l2Book", "bbo"):
            current = self._current(key)
            if current is None:
                return None
            text, shown = current
            self._last[key] = shown
            return text
        if kind == "userFills":
            user: bytes = key[1]
            fills = [self.info.fill_json(fill) for fill in self.info.activity.fills(user)]
            data = {"isSnapshot": True, "user": format_address(user), "fills": fills}
            return _message("userFills", data)
        return None

    def _current(self, key: tuple[Any, ...]) -> tuple[str, str] | None:
        """The message for the current value of a send-on-change stream, and what it shows
        (compared with what was last shown: a new ``time`` alone is no change)."""
        kind = key[0]
        if kind == "allMids":
            text = _message("allMids", {"mids": self.info.all_mids_json()})
            return text, text
        market = self.node.state.markets[key[1]]
        if kind == "l2Book":
            book = self.info.l2_book_json(market, key[2], key[3])
            return _message("l2Book", book), _dumps(book["levels"])
        bbo = self._bbo(market)
        return _message("bbo", bbo), _dumps(bbo["bbo"])

    def _bbo(self, market: MarketState) -> dict[str, Any]:
        spec = market.spec
        book = market.book

        def best(is_buy: bool) -> dict[str, Any] | None:
            levels = book.level_sizes(is_buy, 1)
            if not levels:
                return None
            price, size, count = levels[0]
            return {"px": format_px(spec, price), "sz": format_sz(spec, size), "n": count}

        return {"coin": spec.symbol, "time": self.node.state.time, "bbo": [best(True), best(False)]}

    # -- streaming

    def _on_activity(self, activity: RecordActivity) -> None:
        if not self._subscribers:
            return
        try:
            messages = _RecordMessages(self, activity)
            for key, subscribers in list(self._subscribers.items()):
                frames = messages.get(key)
                if not frames:
                    continue
                for connection in list(subscribers):
                    put = connection.outbox.put
                    for frame in frames:
                        put(frame)
        except Exception:
            # a stream must never stop the engine; subscribers miss this record
            _log.exception("building stream messages for seq %d failed", activity.record.seq)

    # -- post

    async def _post(self, connection: Connection, document: dict[str, Any]) -> None:
        request = document.get("request")
        try:
            request_id = parse_uint(document.get("id"), "id", MAX_ID, "the post's id")
        except InfoRequestError as error:
            connection.send("error", f"post needs an integer `id`: {error}")
            return
        kind = request.get("type") if isinstance(request, dict) else None
        payload = request.get("payload") if isinstance(request, dict) else None
        response: dict[str, Any]
        limiter = self.node.rate_limiter
        if limiter is not None and kind in ("info", "action"):
            # a post weighs what the same request over HTTP weighs, on the same budget
            weight = info_weight(payload) if kind == "info" else action_weight(payload)
            try:
                limiter.charge_ip(connection.outbox.address, weight)
            except RateLimited as limited:
                connection.send("post", {"id": request_id, "response": _limited(limited)})
                return
        if kind == "info":
            try:
                data = await self.info.handle(payload)
            except InfoRequestError as error:
                response = {"type": "error", "payload": str(error)}
            else:
                info_type = payload["type"] if isinstance(payload, dict) else None
                response = {"type": "info", "payload": {"type": info_type, "data": data}}
        elif kind == "action":
            try:
                answer = await self.exchange.handle(payload)
            except RateLimited as limited:
                response = _limited(limited)
            except Exception:
                # the exchange answers refusals itself; an exception is a fault of ours
                _log.exception("post action %d failed", request_id)
                response = {"type": "error", "payload": "internal error"}
            else:
                response = {"type": "action", "payload": answer}
        else:
            response = {"type": "error", "payload": "`request.type` must be info or action"}
        connection.send("post", {"id": request_id, "response": response})


def _limited(limited: RateLimited) -> dict[str, Any]:
    return {
        "type": "error",
        "payload": f"{limited} (retry after {limited.retry_after_ms} ms)",
        "retryAfterMs": limited.retry_after_ms,
    }


def _dumps(document: Any) -> str:
    return json.dumps(document, separators=(",", ":"))


def _message(channel: str, data: Any) -> str:
    return _dumps({"channel": channel, "data": data})


class _RecordMessages:
    """The messages one record causes, built once per key for all connections."""

    def __init__(self, streams: HyperliquidStreams, activity: RecordActivity) -> None:
        self.streams = streams
        self.info = streams.info
        self.activity = activity
        self._built: dict[tuple[Any, ...], list[bytes]] = {}
        self._trades_by_market: dict[int, list[dict[str, Any]]] | None = None

    def get(self, key: tuple[Any, ...]) -> list[bytes]:
        """The frames ``key``'s subscribers get for this record, encoded once for all."""
        built = self._built.get(key)
        if built is None:
            encode = self.streams.fanout.encode
            built = self._built[key] = [encode(text) for text in self._build(key)]
        return built

    def _build(self, key: tuple[Any, ...]) -> list[str]:
        kind = key[0]
        if kind in ("allMids", "l2Book", "bbo"):
            current = self.streams._current(key)
            if current is None:
                return []
            text, shown = current
            if self.streams._last.get(key) == shown:
                return []
            self.streams._last[key] = shown
            return [text]
        builders: dict[str, Callable[[tuple[Any, ...]], list[str]]] = {
            "trades": self._trades,
            "candle": self._candle,
            "userFills": self._user_fills,
            "orderUpdates": self._order_updates,
            "userFundings": self._user_fundings,
            "userEvents": self._user_events,
        }
        return builders[kind](key)

    def trades_by_market(self) -> dict[int, list[dict[str, Any]]]:
        if self._trades_by_market is None:
            trades: dict[int, list[dict[str, Any]]] = {}
            self._trades_by_market = trades
            record = self.activity.record
            record_hash = "0x" + record.intent_id.hex() if record.intent_id else ZERO_HASH
            specs = self.streams.node.state.config.markets  # the specs alone: no market state read
            index = 0
            for event in self.activity.events:
                if type(event) is not TradeExecuted:
                    continue
                assert isinstance(event, TradeExecuted)
                spec = specs[event.market]
                buyer, seller = (
                    (event.taker, event.maker) if event.taker_is_buy else (event.maker, event.taker)
                )
                trades.setdefault(event.market, []).append(
                    {
                        "coin": spec.symbol,
                        "side": side_code(event.taker_is_buy),
                        "px": format_px(spec, event.price),
                        "sz": format_sz(spec, event.size),
                        "time": record.timestamp,
                        "hash": record_hash,
                        "tid": trade_id(record.seq, index),
                        "users": [format_address(buyer), format_address(seller)],
                    }
                )
                index += 1
        return self._trades_by_market

    def _trades(self, key: tuple[Any, ...]) -> list[str]:
        trades = self.trades_by_market().get(key[1])
        return [_message("trades", trades)] if trades else []

    def _candle(self, key: tuple[Any, ...]) -> list[str]:
        _, market_id, interval = key
        if market_id not in self.trades_by_market():
            return []
        interval_ms = CANDLE_INTERVALS_MS[interval]
        now = self.activity.record.timestamp
        bucket = now - now % interval_ms
        candles = self.streams.node.market_data.candles(market_id, interval_ms, bucket, bucket)
        spec = self.streams.node.state.config.markets[market_id]
        return [
            _message("candle", candle_json(spec, interval, interval_ms, candle))
            for candle in candles
        ]

    def _user_fills(self, key: tuple[Any, ...]) -> list[str]:
        user: bytes = key[1]
        fills = [self.info.fill_json(f) for f in self.activity.fills if f.account == user]
        if not fills:
            return []
        return [_message("userFills", {"user": format_address(user), "fills": fills})]

    def _order_updates(self, key: tuple[Any, ...]) -> list[str]:
        user: bytes = key[1]
        specs = self.streams.node.state.config.markets  # the specs alone: no market state read
        updates = [
            {
                "order": basic_order_json(specs[update.order.market], update.order),
                "status": update.status,
                "statusTimestamp": update.status_time,
            }
            for update in self.activity.order_updates
            if update.account == user
        ]
        return [_message("orderUpdates", updates)] if updates else []

    def _user_fundings(self, key: tuple[Any, ...]) -> list[str]:
        user: bytes = key[1]
        fundings = [self.info.funding_json(f) for f in self.activity.fundings if f.account == user]
        if not fundings:
            return []
        return [_message("userFundings", {"user": format_address(user), "fundings": fundings})]

    def _user_events(self, key: tuple[Any, ...]) -> list[str]:
        user: bytes = key[1]
        activity = self.activity
        specs = self.streams.node.state.config.markets  # the specs alone: no market state read
        out = []
        fills = [f for f in activity.fills if f.account == user]
        if fills:
            out.append(_message("user", {"fills": [self.info.fill_json(f) for f in fills]}))
        for funding in activity.fundings:
            if funding.account == user:
                out.append(_message("user", {"funding": self.info.funding_json(funding)}))
        cancels = []
        for event in activity.events:
            if type(event) is OrderCancelled:
                assert isinstance(event, OrderCancelled)
                if event.account == user and event.reason not in USER_CANCEL_REASONS:
                    coin = specs[event.market].symbol
                    cancels.append({"coin": coin, "oid": event.order_id})
            elif type(event) is LiquidationStarted:
                assert isinstance(event, LiquidationStarted)
                if event.account == user:
                    notional = sum(f.price * f.size for f in fills)
                    liquidation = {
                        "lid": activity.record.seq,
                        "liquidator": format_address(bytes(20)),
                        "liquidated_user": format_address(user),
                        "liquidated_ntl_pos": format_usdc(notional),
                        "liquidated_account_value": format_usdc(event.equity),
                    }
                    out.append(_message("user", {"liquidation": liquidation}))
        if cancels:
            out.append(_message("user", {"nonUserCancel": cancels}))
        return out
