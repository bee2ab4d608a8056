"""``POST /info``: Hyperliquid's read-only requests answered from the node's state.

Invariants:
- Read only: nothing here changes the engine state or sequences anything. Every answer is
  built on the event loop from ``node.state`` (the state after ``node.applied_seq``),
  ``node.market_data`` and this module's :class:`Activity`, which is fed by the same
  records in seq order; so one answer never mixes two seqs.
- Hyperliquid's shapes: decimals are strings without trailing zeros (``"60000.5"``,
  ``"0.001"``); ids, millisecond times, ``szDecimals`` and leverages are JSON numbers;
  addresses are lowercase ``0x`` hex. Times are the engine clock's (the records' sequenced
  timestamps), never this process's wall clock.
- Asset id = market id = position in ``meta.universe``; the coin is the market's symbol.
  Markets are never reordered. There is no spot: ``spotMeta`` is empty.
- A request this module cannot read (not JSON, no or unknown ``type``, a bad field) is
  answered 422 with a plain-text reason, as Hyperliquid does for a body it cannot
  deserialize; nothing else happens. An unknown user is not an error: it reads as an empty
  account, as on Hyperliquid.
- What Hyperliquid reports and the engine does not keep — a fill's start position, closed
  PnL and direction; the status of an order that left the book; each account's funding
  payments; the day's notional volume — is derived by :class:`Activity` from the records the
  node applies after it starts, bounded (oldest dropped first). It is exact for those
  records: positions are mirrored from the state seen when the node started and re-read from
  the state after every record that traded them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from aiohttp import web

from asyncdex.engine.margin import funding_payment
from asyncdex.engine.reader import StateReader
from asyncdex.engine.state import MarketState
from asyncdex.gateway.market_data import Candle, account_view
from asyncdex.messages.commands import (
    Batch,
    OrderType,
    PlaceBuilderOrder,
    PlaceOrder,
    Signed,
    TimeInForce,
    TriggerKind,
)
from asyncdex.messages.events import (
    BatchItem,
    BuilderFeePaid,
    Event,
    FundingPaid,
    OrderAccepted,
    OrderCancelled,
    OrderModified,
    OrderRested,
    OrderTriggered,
    TradeExecuted,
    TriggerArmed,
)
from asyncdex.messages.reasons import CancelReason
from asyncdex.signing import jsonbody
from asyncdex.types.market import MarketSpec
from asyncdex.types.numeric import PPM, format_scaled, format_usdc

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node
    from asyncdex.sequencer.sequencer import Sequenced

BOOK_LEVELS: Final = 20  # levels per side in an l2Book answer, as Hyperliquid
MAX_FILLS: Final = 2_000  # fills in one userFills / userFillsByTime answer, as Hyperliquid
FILL_CAPACITY: Final = 2_000  # fills kept per account
FUNDING_CAPACITY: Final = 2_000  # funding payments kept per account
ACCOUNT_CAPACITY: Final = 10_000  # accounts whose fills and payments are kept
ORDER_CAPACITY: Final = 100_000  # orders that left the book whose final status is kept
HISTORY_CAPACITY: Final = 2_000  # of those, per account, for historicalOrders
MINUTE_MS: Final = 60_000
DAY_MS: Final = 24 * 60 * MINUTE_MS
ZERO_HASH: Final = "0x" + "00" * 32
MAX_TIME_MS: Final = 2**63 - 1  # times are int64 milliseconds, as the engine's clock
MAX_ID: Final = 2**64 - 1  # order ids, and the ids a client gives its requests, are uint64
# Hyperliquid's candle intervals that the node's one-minute candles can be aggregated into
# (bucket = time - time % interval). 3d, 1w and 1M are not epoch-aligned on Hyperliquid.
CANDLE_INTERVALS_MS: Final[dict[str, int]] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
}
# The final status Hyperliquid reports for an order that left the book for each reason.
CANCEL_STATUS: Final[dict[int, str]] = {
    CancelReason.USER: "canceled",
    CancelReason.IOC_REMAINDER: "canceled",
    CancelReason.SELF_TRADE: "selfTradeCanceled",
    CancelReason.EXPIRED: "canceled",
    CancelReason.REDUCE_ONLY: "reduceOnlyCanceled",
    CancelReason.LIQUIDATION: "liquidatedCanceled",
    CancelReason.SCHEDULED: "scheduledCancel",
    CancelReason.MARGIN: "marginCanceled",
    CancelReason.MODIFIED_AWAY: "canceled",
}
TIF_NAMES: Final[dict[int, str]] = {
    TimeInForce.GTC: "Gtc",
    TimeInForce.IOC: "Ioc",
    TimeInForce.FOK: "Ioc",  # Hyperliquid has no fill-or-kill; the closest it shows
    TimeInForce.ALO: "Alo",
}


class InfoRequestError(ValueError):
    """A request that cannot be answered: answered 422 with ``str(error)`` as a text body."""


# ---------------------------------------------------------------------------------------------
# Formatting: engine units -> Hyperliquid decimal strings


def format_px(spec: MarketSpec, price: int) -> str:
    """A price in 10^-(6-szDecimals) USDC."""
    return format_scaled(price, spec.price_decimals)


def format_sz(spec: MarketSpec, size: int) -> str:
    """A size in 10^-szDecimals of the base asset."""
    return format_scaled(size, spec.sz_decimals)


def format_mid(spec: MarketSpec, bid: int, ask: int) -> str:
    """The exact mid of two prices: one more decimal than the price unit when it is odd."""
    return format_scaled((bid + ask) * 5, spec.price_decimals + 1)


def format_ppb(value: int) -> str:
    """A rate in parts per billion as a decimal fraction (``12500`` -> ``"0.0000125"``)."""
    return format_scaled(value, 9)


def format_address(address: bytes) -> str:
    return "0x" + address.hex()


def format_cloid(client_id: int) -> str:
    return "0x" + client_id.to_bytes(16, "big").hex()


def side_code(is_buy: bool) -> str:
    """Hyperliquid's side letters: ``"B"`` bid (buy), ``"A"`` ask (sell)."""
    return "B" if is_buy else "A"


def trade_id(seq: int, index: int) -> int:
    """A trade's id: its record's seq and its place among the record's trades."""
    return seq << 20 | index


def round_to_sig_figs(price: int, sig_figs: int, mantissa: int, up: bool) -> int:
    """``price`` (integer units) moved to a multiple of ``mantissa * 10^k``, where ``10^k``
    keeps ``sig_figs`` significant digits: down for bids, up for asks (Hyperliquid's
    ``nSigFigs`` book aggregation). Prices with at most ``sig_figs`` digits stay."""
    digits = len(str(price))
    if digits <= sig_figs:
        return price
    step = 10 ** (digits - sig_figs) * mantissa
    return -(-price // step) * step if up else price // step * step


# ---------------------------------------------------------------------------------------------
# Request fields


def parse_user(request: dict[str, Any], key: str = "user") -> bytes:
    value = request.get(key)
    if not isinstance(value, str):
        raise InfoRequestError(f"missing field `{key}`: a 0x address")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) != 40:
        raise InfoRequestError(f"invalid `{key}`: expected 20 bytes of hex, got {value!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InfoRequestError(f"invalid `{key}`: not hex: {value!r}") from None


def parse_uint(value: object, key: str, high: int, what: str) -> int:
    """``value`` if it is a JSON integer in 0..``high``, else the field's 422: the one range
    check of every integer a Hyperliquid request carries (``/info``, ``/ws`` subscriptions
    and posts), so none beyond what the node keeps (int64 times, uint64 ids) reads as valid."""
    if type(value) is not int or not 0 <= value <= high:
        raise InfoRequestError(f"invalid `{key}`: expected {what}, an integer in 0..{high}")
    return value


def parse_ms(request: dict[str, Any], key: str, default: int | None = None) -> int:
    value = request.get(key)
    if value is None:
        if default is None:
            raise InfoRequestError(f"missing field `{key}`: a time in ms")
        return default
    return parse_uint(value, key, MAX_TIME_MS, "a time in ms")


def parse_optional_int(request: dict[str, Any], key: str, allowed: Iterable[int]) -> int | None:
    value = request.get(key)
    if value is None:
        return None
    allowed = tuple(allowed)
    if isinstance(value, bool) or value not in allowed:
        raise InfoRequestError(f"invalid `{key}`: expected one of {list(allowed)} or null")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Orders: live ones (engine ``Order``) and those that left the book (``OrderRecord``)


class OrderLike(Protocol):
    order_id: int
    account: bytes
    market: int
    is_buy: bool
    price: int
    size: int
    orig_size: int
    tif: int
    reduce_only: bool
    client_id: int
    timestamp: int
    trigger_kind: int
    trigger_price: int
    order_type: int


class OrderRecord:
    """An order as last seen, with its Hyperliquid status (``"open"``, ``"filled"``, ...)."""

    __slots__ = (
        "account",
        "client_id",
        "is_buy",
        "market",
        "order_id",
        "order_type",
        "orig_size",
        "price",
        "reduce_only",
        "size",
        "status",
        "status_time",
        "tif",
        "timestamp",
        "trigger_kind",
        "trigger_price",
    )

    def __init__(
        self,
        order_id: int,
        account: bytes,
        market: int,
        is_buy: bool,
        price: int,
        size: int,
        client_id: int,
        timestamp: int,
    ) -> None:
        # what ``OrderAccepted`` tells; ``refresh`` takes the rest from the live order
        self.order_id = order_id
        self.account = account
        self.market = market
        self.is_buy = is_buy
        self.price = price
        self.size = size
        self.orig_size = size
        self.tif = int(TimeInForce.GTC)
        self.reduce_only = False
        self.client_id = client_id
        self.timestamp = timestamp
        self.trigger_kind = int(TriggerKind.NONE)
        self.trigger_price = 0
        self.order_type = int(OrderType.LIMIT)
        self.status = "open"
        self.status_time = timestamp

    @classmethod
    def of_live(cls, order: OrderLike) -> OrderRecord:
        record = cls(
            order.order_id, order.account, order.market, order.is_buy, order.price, order.size,
            order.client_id, order.timestamp,
        )  # fmt: skip
        record.refresh(order)
        return record

    def frozen(self) -> tuple[Any, ...]:
        """The record as a plain tuple: what is kept of an order that left the book. The cycle
        collector stops tracking a plain tuple of atomic values (never a slotted object), so
        a hundred thousand kept orders cost full collections nothing."""
        return tuple([getattr(self, name) for name in _ORDER_SLOTS])

    @classmethod
    def thaw(cls, values: tuple[Any, ...]) -> OrderRecord:
        record = cls.__new__(cls)
        for name, value in zip(_ORDER_SLOTS, values, strict=True):
            setattr(record, name, value)
        return record

    def take_terms(self, command: PlaceOrder | PlaceBuilderOrder) -> None:
        """What the placing command says and ``OrderAccepted`` does not."""
        self.tif = command.tif
        self.reduce_only = command.reduce_only
        self.trigger_kind = command.trigger_kind
        self.trigger_price = command.trigger_price
        self.order_type = command.order_type

    def refresh(self, order: OrderLike) -> None:
        """Take the live order's current values (after a fill, modify or trigger)."""
        self.price = order.price
        self.size = order.size
        self.orig_size = order.orig_size
        self.tif = order.tif
        self.reduce_only = order.reduce_only
        self.trigger_kind = order.trigger_kind
        self.trigger_price = order.trigger_price
        self.order_type = order.order_type


_ORDER_SLOTS = OrderRecord.__slots__
_new_tuple = tuple.__new__


def candle_json(
    spec: MarketSpec, interval: str, interval_ms: int, candle: Candle
) -> dict[str, Any]:
    """A candle in Hyperliquid's shape (``candleSnapshot`` and the ``candle`` channel)."""
    return {
        "t": candle.start,
        "T": candle.start + interval_ms - 1,
        "s": spec.symbol,
        "i": interval,
        "o": format_px(spec, candle.open),
        "c": format_px(spec, candle.close),
        "h": format_px(spec, candle.high),
        "l": format_px(spec, candle.low),
        "v": format_sz(spec, candle.volume),
        "n": candle.trades,
    }


def basic_order_json(spec: MarketSpec, order: OrderLike) -> dict[str, Any]:
    """``openOrders``' order shape (also the ``order`` of ``orderUpdates``)."""
    answer: dict[str, Any] = {
        "coin": spec.symbol,
        "side": side_code(order.is_buy),
        "limitPx": format_px(spec, order.price or order.trigger_price),
        "sz": format_sz(spec, order.size),
        "oid": order.order_id,
        "timestamp": order.timestamp,
        "origSz": format_sz(spec, order.orig_size),
    }
    if order.client_id:
        answer["cloid"] = format_cloid(order.client_id)
    return answer


def order_type_name(order: OrderLike) -> str:
    market = order.order_type == OrderType.MARKET
    if order.trigger_kind == TriggerKind.STOP:
        return "Stop Market" if market else "Stop Limit"
    if order.trigger_kind == TriggerKind.TAKE_PROFIT:
        return "Take Profit Market" if market else "Take Profit Limit"
    return "Market" if market else "Limit"


def trigger_condition(spec: MarketSpec, order: OrderLike) -> str:
    """Hyperliquid's words for when a trigger fires: a stop fires when the mark moves against
    the order's side, a take-profit when it moves in its favour."""
    if order.trigger_kind == TriggerKind.NONE:
        return "N/A"
    rising = order.is_buy == (order.trigger_kind == TriggerKind.STOP)
    return f"Price {'above' if rising else 'below'} {format_px(spec, order.trigger_price)}"


def frontend_order_json(spec: MarketSpec, order: OrderLike, armed: bool) -> dict[str, Any]:
    """``frontendOpenOrders``' shape; ``armed``: a trigger order still waiting for its price."""
    answer = basic_order_json(spec, order)
    is_trigger = order.trigger_kind != TriggerKind.NONE
    answer.update(
        {
            "isTrigger": armed and is_trigger,
            "triggerPx": format_px(spec, order.trigger_price) if is_trigger else "0",
            "triggerCondition": trigger_condition(spec, order) if armed else "N/A",
            "reduceOnly": order.reduce_only,
            "orderType": order_type_name(order),
            "tif": None if armed and is_trigger else TIF_NAMES.get(order.tif, "Gtc"),
            "children": [],
            "isPositionTpsl": False,
        }
    )
    return answer


# ---------------------------------------------------------------------------------------------
# Activity: what Hyperliquid reports that the engine does not keep


class HlFill(NamedTuple):
    """One side of one trade, with what Hyperliquid reports of it."""

    seq: int
    time: int
    account: bytes
    market: int
    price: int
    size: int
    is_buy: bool
    start_position: int
    closed_pnl: int  # micro-USDC, before the fee
    direction: str
    hash: str
    order_id: int
    crossed: bool  # taker
    fee: int
    tid: int
    client_id: int
    builder_fee: int = 0  # micro-USDC paid to the order's builder (Hyperliquid's builderFee)


class HlFunding(NamedTuple):
    """One account's funding payment in one market (``usdc`` < 0: the account paid)."""

    seq: int
    time: int
    account: bytes
    market: int
    usdc: int
    size: int
    rate_ppb: int


class OrderUpdate(NamedTuple):
    account: bytes
    order: OrderRecord
    status: str
    status_time: int


class RecordActivity(NamedTuple):
    """What one applied record did, in Hyperliquid's terms (for the WebSocket)."""

    record: Sequenced
    events: list[Event]
    fills: list[HlFill]
    fundings: list[HlFunding]
    order_updates: list[OrderUpdate]


def fill_direction(old: int, delta: int) -> str:
    if old == 0 or (old > 0) == (delta > 0):
        return "Open Long" if delta > 0 else "Open Short"
    if abs(delta) <= abs(old):
        return "Close Long" if old > 0 else "Close Short"
    return "Long > Short" if old > 0 else "Short > Long"


def apply_fill(size: int, entry: int, price: int, delta: int) -> tuple[int, int, int]:
    """(new size, new entry notional, closed PnL) of a position after a fill of signed size
    ``delta`` at ``price``: the engine's entry-notional rule (a reduction keeps the entry
    price, rounding the notional toward zero), so the PnL is exactly what the balance got."""
    new = size + delta
    if size == 0 or (size > 0) == (delta > 0):
        return new, entry + price * delta, 0
    if abs(delta) <= abs(size):
        new_entry = entry * new // size if new else 0
        return new, new_entry, -price * delta - (entry - new_entry)
    return new, price * new, price * size - entry


class Activity:
    """Fills, funding payments, order statuses and daily volume derived from applied
    records; see the module docstring for what it keeps and for how long."""

    def __init__(self, state: StateReader) -> None:
        self._positions: dict[tuple[bytes, int], tuple[int, int]] = {}
        self._orders: dict[int, OrderRecord] = {}  # live orders
        # Orders that left the book (oldest first) and each account's, and every kept fill and
        # funding payment, are plain tuples (``OrderRecord.frozen``, ``tuple(fill)``): the
        # cycle collector does not track those, so what is kept never slows a collection.
        self._done: OrderedDict[int, tuple[Any, ...]] = OrderedDict()
        self._history: OrderedDict[bytes, deque[tuple[Any, ...]]] = OrderedDict()
        self._cloids: dict[tuple[bytes, int], int] = {}
        self._fills: OrderedDict[bytes, deque[tuple[Any, ...]]] = OrderedDict()
        self._fundings: OrderedDict[bytes, deque[tuple[Any, ...]]] = OrderedDict()
        self._volume: list[deque[list[int]]] = [deque() for _ in state.markets]
        for account in state.accounts.values():
            for market_id, position in account.positions.items():
                if position.size:
                    key = (account.address, market_id)
                    self._positions[key] = (position.size, position.entry_notional)
        for order in state.orders.values():
            self._track(OrderRecord.of_live(order))

    # -- queries

    def fills(self, account: bytes) -> list[HlFill]:
        """The account's kept fills, newest first."""
        return [_new_tuple(HlFill, fill) for fill in reversed(self._fills.get(account, ()))]

    def fundings(self, account: bytes) -> list[HlFunding]:
        """The account's kept funding payments, oldest first."""
        return [_new_tuple(HlFunding, paid) for paid in self._fundings.get(account, ())]

    def order(self, order_id: int) -> OrderRecord | None:
        live = self._orders.get(order_id)
        if live is not None:
            return live
        done = self._done.get(order_id)
        return None if done is None else OrderRecord.thaw(done)

    def history(self, account: bytes) -> list[OrderRecord]:
        """The account's kept orders that left the book, newest first."""
        return [OrderRecord.thaw(order) for order in reversed(self._history.get(account, ()))]

    def order_by_cloid(self, account: bytes, client_id: int) -> OrderRecord | None:
        order_id = self._cloids.get((account, client_id))
        return None if order_id is None else self.order(order_id)

    def day_volume(self, market: int, now: int) -> tuple[int, int]:
        """(notional in micro-USDC, size) traded in the 24 hours before ``now``."""
        notional = base = 0
        for minute, minute_notional, minute_base in self._volume[market]:
            if minute > now - DAY_MS:
                notional += minute_notional
                base += minute_base
        return notional, base

    # -- feeding

    def add(self, record: Sequenced, events: list[Event], state: StateReader) -> RecordActivity:
        """Fold one applied record in (``state`` is the state after it). On the node's
        listener path: one pass over the events, no work for events it does not use."""
        now = record.timestamp
        fills: list[HlFill] = []
        fundings: list[HlFunding] = []
        updates: list[OrderUpdate] = []
        # (account, market) -> (size, entry notional) as of the event being folded, for the
        # positions this record trades; ``self._positions`` holds them as before the record
        running: dict[tuple[bytes, int], tuple[int, int]] = {}
        record_hash = ""
        trades = 0
        command = record.command
        if type(command) is Signed:
            command = command.command
        item = 0
        for index, event in enumerate(events):
            kind = type(event)
            if kind is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                if not record_hash:
                    record_hash = "0x" + record.intent_id.hex() if record.intent_id else ZERO_HASH
                tid = trade_id(record.seq, trades)
                trades += 1
                self._add_volume(event.market, now, event.price, event.size)
                for account, order_id, is_buy, fee, crossed in (
                    (event.maker, event.maker_order, not event.taker_is_buy, event.maker_fee,
                     False),
                    (event.taker, event.taker_order, event.taker_is_buy, event.taker_fee, True),
                ):  # fmt: skip
                    key = (account, event.market)
                    size, entry = running.get(key) or self._positions.get(key, (0, 0))
                    delta = event.size if is_buy else -event.size
                    new_size, new_entry, closed = apply_fill(size, entry, event.price, delta)
                    running[key] = (new_size, new_entry)
                    tracked = self._orders.get(order_id)
                    fill = HlFill(
                        record.seq, now, account, event.market, event.price, event.size,
                        is_buy, size, closed, fill_direction(size, delta), record_hash,
                        order_id, crossed, fee, tid, tracked.client_id if tracked else 0,
                    )  # fmt: skip
                    fills.append(fill)
                    self._keep(self._fills, account, tuple(fill), FILL_CAPACITY)
                    if tracked is not None:
                        tracked.size -= event.size
            elif kind is OrderAccepted:
                assert isinstance(event, OrderAccepted)
                order = OrderRecord(
                    event.order_id, event.account, event.market, event.is_buy, event.price,
                    event.size, event.client_id, now,
                )  # fmt: skip
                # the rest of the order is in the command (it may never rest to be read)
                placed = command.commands[item] if type(command) is Batch else command
                if type(placed) is PlaceOrder or type(placed) is PlaceBuilderOrder:
                    order.take_terms(placed)
                self._track(order)
            elif kind is BuilderFeePaid:
                assert isinstance(event, BuilderFeePaid)
                self._add_builder_fee(fills, event)
            elif kind is BatchItem:
                assert isinstance(event, BatchItem)
                item = event.item
            elif kind is OrderRested or kind is TriggerArmed or kind is OrderModified:
                assert isinstance(event, OrderRested | TriggerArmed | OrderModified)
                self._set_status(event.order_id, "open", now, state, updates)
            elif kind is OrderCancelled:
                assert isinstance(event, OrderCancelled)
                status = CANCEL_STATUS.get(event.reason, "canceled")
                self._set_status(event.order_id, status, now, state, updates)
            elif kind is OrderTriggered:
                assert isinstance(event, OrderTriggered)
                self._set_status(event.order_id, "triggered", now, state, updates)
            elif kind is FundingPaid:
                assert isinstance(event, FundingPaid)
                later = events[index + 1 :]
                fundings.extend(self._fund(event, record, state, running, later))
        if fills:
            for fill in fills:
                tracked = self._orders.get(fill.order_id)
                if tracked is not None and tracked.size <= 0 and fill.order_id not in state.orders:
                    self._set_status(fill.order_id, "filled", now, state, updates)
            for key in running:
                values = state.position_values(*key)
                if values is not None and values[0]:
                    self._positions[key] = values
                else:
                    self._positions.pop(key, None)
        return RecordActivity(record, events, fills, fundings, updates)

    def _fund(
        self,
        event: FundingPaid,
        record: Sequenced,
        state: StateReader,
        running: dict[tuple[bytes, int], tuple[int, int]],
        later: list[Event],
    ) -> list[HlFunding]:
        """Each holder's payment, as the engine computed it, at the size held when it paid:
        the running size for a position this record traded before, the size before the
        record for one it trades after, else the current one."""
        market_id = event.market
        traded_later: dict[bytes, None] = {}
        for other in later:
            if isinstance(other, TradeExecuted) and other.market == market_id:
                traded_later[other.maker] = None
                traded_later[other.taker] = None
        holders = dict.fromkeys(state.markets[market_id].holders)
        holders.update(traded_later)
        holders.update((account, None) for account, market in running if market == market_id)
        out = []
        for account in holders:
            key = (account, market_id)
            if key in running:
                size = running[key][0]
            elif account in traded_later:
                size = self._positions.get(key, (0, 0))[0]
            else:
                values = state.position_values(account, market_id)
                size = 0 if values is None else values[0]
            if size == 0:
                continue
            payment = funding_payment(size, event.rate_ppb, event.index_price)
            funding = HlFunding(
                record.seq, record.timestamp, account, market_id, -payment, size, event.rate_ppb
            )
            out.append(funding)
            self._keep(self._fundings, account, tuple(funding), FUNDING_CAPACITY)
        return out

    def _add_builder_fee(self, fills: list[HlFill], event: BuilderFeePaid) -> None:
        """The builder fee of the fill just folded in: the engine pays it right after the
        trade, so the payer's newest fill (here and in the kept store) is the one."""
        for index in range(len(fills) - 1, -1, -1):
            fill = fills[index]
            if fill.account == event.account and fill.order_id == event.order_id:
                fills[index] = fill._replace(builder_fee=event.amount)
                kept = self._fills.get(event.account)
                if kept and kept[-1] == tuple(fill):
                    kept[-1] = tuple(fills[index])
                return

    def _add_volume(self, market: int, now: int, price: int, size: int) -> None:
        minutes = self._volume[market]
        minute = now - now % MINUTE_MS
        if minutes and minutes[-1][0] == minute:
            minutes[-1][1] += price * size
            minutes[-1][2] += size
        else:
            minutes.append([minute, price * size, size])
        while minutes and minutes[0][0] <= now - DAY_MS:
            minutes.popleft()

    @staticmethod
    def _keep(store: OrderedDict[bytes, deque[Any]], account: bytes, item: Any, cap: int) -> None:
        items = store.get(account)
        if items is None:
            items = store[account] = deque(maxlen=cap)
            if len(store) > ACCOUNT_CAPACITY:
                store.popitem(last=False)
        else:
            store.move_to_end(account)
        items.append(item)

    def _track(self, order: OrderRecord) -> None:
        self._orders[order.order_id] = order
        if order.client_id:
            self._cloids[(order.account, order.client_id)] = order.order_id

    def _set_status(
        self, order_id: int, status: str, now: int, state: StateReader, updates: list[OrderUpdate]
    ) -> None:
        order = self._orders.get(order_id)
        if order is None:
            return
        live = state.orders.get(order_id)
        if live is not None:
            order.refresh(live)
        order.status = status
        order.status_time = now
        updates.append(OrderUpdate(order.account, order, status, now))
        if live is None and status != "open" and status != "triggered":
            del self._orders[order_id]
            kept = order.frozen()
            self._done[order_id] = kept
            self._keep(self._history, order.account, kept, HISTORY_CAPACITY)
            if len(self._done) > ORDER_CAPACITY:
                _, forgotten = self._done.popitem(last=False)
                gone = OrderRecord.thaw(forgotten)
                key = (gone.account, gone.client_id)
                if self._cloids.get(key) == gone.order_id:
                    del self._cloids[key]


# ---------------------------------------------------------------------------------------------
# The API


Handler = Callable[[dict[str, Any]], Awaitable[Any]]
ActivityListener = Callable[[RecordActivity], None]


class InfoApi:
    """Answers ``{"type": ...}`` requests; see the module docstring."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.activity = Activity(node.state)
        self._activity_listeners: list[ActivityListener] = []
        node.add_listener(self._on_record)
        self._handlers: dict[str, Handler] = {
            "meta": self._meta,
            "metaAndAssetCtxs": self._meta_and_asset_ctxs,
            "spotMeta": self._spot_meta,
            "spotMetaAndAssetCtxs": self._spot_meta_and_asset_ctxs,
            "spotClearinghouseState": self._spot_clearinghouse_state,
            "perpDexs": self._perp_dexs,
            "allMids": self._all_mids,
            "l2Book": self._l2_book,
            "clearinghouseState": self._clearinghouse_state,
            "openOrders": self._open_orders,
            "frontendOpenOrders": self._frontend_open_orders,
            "userFills": self._user_fills,
            "userFillsByTime": self._user_fills_by_time,
            "orderStatus": self._order_status,
            "historicalOrders": self._historical_orders,
            "candleSnapshot": self._candle_snapshot,
            "fundingHistory": self._funding_history,
            "userFunding": self._user_funding,
            "exchangeStatus": self._exchange_status,
            "userRateLimit": self._user_rate_limit,
            "userRole": self._user_role,
            "userAbstraction": self._user_abstraction,
            "maxBuilderFee": self._max_builder_fee,
            "referral": self._referral,
            "userFees": self._user_fees,
        }

    def install(self, app: web.Application) -> None:
        app.router.add_post("/info", self.handle_http)

    def add_activity_listener(self, listener: ActivityListener) -> None:
        """Call ``listener`` after each applied record with what it did (must not raise)."""
        self._activity_listeners.append(listener)

    def _on_record(self, record: Sequenced, events: list[Event]) -> None:
        activity = self.activity.add(record, events, self.node.state)
        for listener in self._activity_listeners:
            listener(activity)

    async def handle_http(self, request: web.Request) -> web.Response:
        # the app bounds the body (413 beyond the node's limit)
        body = await request.read()
        try:
            document = jsonbody.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return web.Response(
                status=422, text=f"Failed to deserialize the JSON body into the target type: {exc}"
            )
        try:
            answer = await self.handle(document)
        except InfoRequestError as error:
            return web.Response(
                status=422,
                text=f"Failed to deserialize the JSON body into the target type: {error}",
            )
        return web.json_response(answer)

    async def handle(self, request: Any) -> Any:
        """The answer to one parsed info request (also used by ``/ws`` ``post``).

        Raises :class:`InfoRequestError` for a request it cannot answer."""
        if not isinstance(request, dict):
            raise InfoRequestError("expected a JSON object with a `type`")
        kind = request.get("type")
        if not isinstance(kind, str):
            raise InfoRequestError("missing field `type`")
        handler = self._handlers.get(kind)
        if handler is None:
            raise InfoRequestError(f"unknown variant `{kind}`")
        return await handler(request)

    # -- helpers

    @property
    def _state(self) -> StateReader:
        return self.node.state

    def market_of_coin(self, coin: Any) -> MarketState:
        if not isinstance(coin, str):
            raise InfoRequestError("missing field `coin`")
        for market in self._state.markets:
            if market.spec.symbol == coin:
                return market
        raise InfoRequestError(f"unknown coin {coin!r}")

    @staticmethod
    def _check_dex(request: dict[str, Any]) -> None:
        if request.get("dex") not in ("", None):
            raise InfoRequestError(f"unknown perp dex {request['dex']!r}: only the default")

    def mid(self, market: MarketState) -> str | None:
        """The book's mid, else the mark, else the oracle price; None with none of them."""
        spec = market.spec
        bid, ask = market.book.best_bid(), market.book.best_ask()
        if bid is not None and ask is not None:
            return format_mid(spec, bid, ask)
        price = market.mark_price or market.index_price
        return format_px(spec, price) if price else None

    # -- metadata

    def meta_json(self) -> dict[str, Any]:
        universe = []
        tables: dict[int, dict[str, Any]] = {}
        for market in self._state.markets:
            spec = market.spec
            # one margin table per maximum leverage, as Hyperliquid numbers its single-tier
            # tables by their leverage
            universe.append(
                {
                    "name": spec.symbol,
                    "szDecimals": spec.sz_decimals,
                    "maxLeverage": spec.max_leverage,
                    "marginTableId": spec.max_leverage,
                }
            )
            tables[spec.max_leverage] = {
                "description": "",
                "marginTiers": [{"lowerBound": "0.0", "maxLeverage": spec.max_leverage}],
            }
        return {
            "universe": universe,
            "marginTables": [[table_id, table] for table_id, table in sorted(tables.items())],
        }

    async def _meta(self, request: dict[str, Any]) -> Any:
        self._check_dex(request)
        return self.meta_json()

    def asset_ctx(self, market: MarketState) -> dict[str, Any]:
        """Hyperliquid's per-asset context. ``funding`` is the rate the interval under way
        would pay at its premium samples so far (as the engine computes it); ``premium`` is
        their average; ``impactPxs`` are the best bid and ask."""
        spec = market.spec
        state = self._state
        now = state.time
        samples = market.premium_count
        average = market.premium_sum // samples if samples else 0
        cap = spec.funding_cap_ppb
        funding = min(max(average + spec.interest_ppb, -cap), cap)
        open_interest = 0
        for address in market.holders:
            size = state.accounts[address].positions[spec.market_id].size
            open_interest += max(size, 0)
        notional, base = self.activity.day_volume(spec.market_id, now)
        day_ago = now - DAY_MS
        earlier = self.node.market_data.candles(spec.market_id, MINUTE_MS, 0, day_ago)
        if earlier:
            prev_day = earlier[-1].close
        else:
            later = self.node.market_data.candles(spec.market_id, MINUTE_MS, day_ago + 1, now)
            prev_day = later[0].open if later else market.mark_price
        bid, ask = market.book.best_bid(), market.book.best_ask()
        return {
            "funding": format_ppb(funding),
            "openInterest": format_sz(spec, open_interest),
            "prevDayPx": format_px(spec, prev_day),
            "dayNtlVlm": format_usdc(notional),
            "premium": format_ppb(average) if samples else None,
            "oraclePx": format_px(spec, market.index_price),
            "markPx": format_px(spec, market.mark_price),
            "midPx": format_mid(spec, bid, ask) if bid is not None and ask is not None else None,
            "impactPxs": (
                [format_px(spec, bid), format_px(spec, ask)]
                if bid is not None and ask is not None
                else None
            ),
            "dayBaseVlm": format_sz(spec, base),
        }

    async def _meta_and_asset_ctxs(self, request: dict[str, Any]) -> Any:
        self._check_dex(request)
        return [self.meta_json(), [self.asset_ctx(market) for market in self._state.markets]]

    async def _spot_meta(self, request: dict[str, Any]) -> Any:
        return {"universe": [], "tokens": []}

    async def _spot_meta_and_asset_ctxs(self, request: dict[str, Any]) -> Any:
        return [{"universe": [], "tokens": []}, []]

    async def _spot_clearinghouse_state(self, request: dict[str, Any]) -> Any:
        parse_user(request)
        return {"balances": []}

    async def _perp_dexs(self, request: dict[str, Any]) -> Any:
        return [None]

    async def _exchange_status(self, request: dict[str, Any]) -> Any:
        return {"specialStatuses": None, "time": self._state.time}

    # -- market data

    def all_mids_json(self) -> dict[str, str]:
        mids = {}
        for market in self._state.markets:
            mid = self.mid(market)
            if mid is not None:
                mids[market.spec.symbol] = mid
        return mids

    async def _all_mids(self, request: dict[str, Any]) -> Any:
        self._check_dex(request)
        return self.all_mids_json()

    def l2_book_json(
        self, market: MarketState, sig_figs: int | None = None, mantissa: int | None = None
    ) -> dict[str, Any]:
        spec = market.spec
        book = market.book

        def side(is_buy: bool) -> list[dict[str, Any]]:
            levels = book.bids if is_buy else book.asks
            prices = reversed(book.bid_prices) if is_buy else iter(book.ask_prices)
            out: list[list[int]] = []  # [price, size, orders]
            for price in prices:
                level = levels[price]
                size = sum(order.size for order in level.values())
                if sig_figs is not None:
                    price = round_to_sig_figs(price, sig_figs, mantissa or 1, up=not is_buy)
                if out and out[-1][0] == price:
                    out[-1][1] += size
                    out[-1][2] += len(level)
                    continue
                if len(out) == BOOK_LEVELS:
                    break
                out.append([price, size, len(level)])
            return [
                {"px": format_px(spec, price), "sz": format_sz(spec, size), "n": count}
                for price, size, count in out
            ]

        return {
            "coin": spec.symbol,
            "time": self._state.time,
            "levels": [side(True), side(False)],
        }

    async def _l2_book(self, request: dict[str, Any]) -> Any:
        market = self.market_of_coin(request.get("coin"))
        sig_figs = parse_optional_int(request, "nSigFigs", (2, 3, 4, 5))
        mantissa = parse_optional_int(request, "mantissa", (1, 2, 5))
        if mantissa is not None and sig_figs != 5:
            raise InfoRequestError("`mantissa` is allowed only with `nSigFigs` 5")
        return self.l2_book_json(market, sig_figs, mantissa)

    async def _candle_snapshot(self, request: dict[str, Any]) -> Any:
        req = request.get("req")
        if not isinstance(req, dict):
            raise InfoRequestError("missing field `req`: {coin, interval, startTime, endTime}")
        market = self.market_of_coin(req.get("coin"))
        interval = req.get("interval")
        interval_ms = CANDLE_INTERVALS_MS.get(interval) if isinstance(interval, str) else None
        if interval_ms is None or not isinstance(interval, str):
            raise InfoRequestError(
                f"invalid `interval` {interval!r}: one of {', '.join(CANDLE_INTERVALS_MS)}"
            )
        start = parse_ms(req, "startTime")
        end = parse_ms(req, "endTime", default=self._state.time)
        spec = market.spec
        # a candle whose interval overlaps [start, end] is answered, as Hyperliquid does
        first = start - start % interval_ms
        candles = self.node.market_data.candles(spec.market_id, interval_ms, first, end)
        return [candle_json(spec, interval, interval_ms, candle) for candle in candles]

    async def _funding_history(self, request: dict[str, Any]) -> Any:
        market = self.market_of_coin(request.get("coin"))
        start = parse_ms(request, "startTime")
        end = parse_ms(request, "endTime", default=self._state.time)
        spec = market.spec
        cap = spec.funding_cap_ppb
        out = []
        for record in self.node.market_data.funding(spec.market_id, start, end):
            # the engine's rate is clamp(average premium + interest); within the caps the
            # premium is the rate less the interest
            premium = min(max(record.rate_ppb - spec.interest_ppb, -cap), cap)
            out.append(
                {
                    "coin": spec.symbol,
                    "fundingRate": format_ppb(record.rate_ppb),
                    "premium": format_ppb(premium),
                    "time": record.time,
                }
            )
        return out

    # -- accounts

    def clearinghouse_json(self, user: bytes) -> dict[str, Any]:
        state = self._state
        account = state.accounts.get(user)
        positions = []
        total_ntl = cross_ntl = signed_ntl = 0
        margin_used = cross_margin_used = 0
        equity = cross_equity = collateral = cross_initial = cross_maintenance = 0
        if account is not None:
            view = account_view(state, account)
            equity, cross_equity = view.equity, view.cross_equity
            collateral = view.collateral
            cross_initial, cross_maintenance = view.cross_initial, view.cross_maintenance
            for position in view.positions:
                notional = position.size * position.mark_price
                total_ntl += abs(notional)
                signed_ntl += notional
                # an isolated position's margin is its balance plus its value (the balance
                # alone is negative for a long: it paid for what it holds)
                used = notional + position.isolated_margin if position.isolated else (
                    position.margin_used
                )  # fmt: skip
                margin_used += used
                if not position.isolated:
                    cross_ntl += abs(notional)
                    cross_margin_used += used
                if position.size == 0:
                    continue
                spec = state.markets[position.market].spec
                engine_position = account.positions[position.market]
                entry_notional = abs(engine_position.entry_notional)
                # return on the margin the position needed when it opened, as Hyperliquid
                roe = (
                    position.unrealized_pnl * position.leverage * PPM // entry_notional
                    if entry_notional
                    else 0
                )
                leverage: dict[str, Any] = {
                    "type": "isolated" if position.isolated else "cross",
                    "value": position.leverage,
                }
                if position.isolated:
                    leverage["rawUsd"] = format_usdc(position.isolated_margin)
                funding = format_usdc(position.funding_paid)
                positions.append(
                    {
                        "type": "oneWay",
                        "position": {
                            "coin": spec.symbol,
                            "szi": format_sz(spec, position.size),
                            "leverage": leverage,
                            "entryPx": format_px(spec, position.entry_price),
                            "positionValue": format_usdc(abs(notional)),
                            "unrealizedPnl": format_usdc(position.unrealized_pnl),
                            "returnOnEquity": format_scaled(roe, 6),
                            "liquidationPx": (
                                None
                                if position.liquidation_price is None
                                else format_px(spec, position.liquidation_price)
                            ),
                            "marginUsed": format_usdc(used),
                            "maxLeverage": spec.max_leverage,
                            # the engine keeps funding since the position opened only
                            "cumFunding": {
                                "allTime": funding,
                                "sinceOpen": funding,
                                "sinceChange": funding,
                            },
                        },
                    }
                )
        return {
            "marginSummary": {
                "accountValue": format_usdc(equity),
                "totalNtlPos": format_usdc(total_ntl),
                "totalRawUsd": format_usdc(equity - signed_ntl),
                "totalMarginUsed": format_usdc(margin_used),
            },
            "crossMarginSummary": {
                "accountValue": format_usdc(cross_equity),
                "totalNtlPos": format_usdc(cross_ntl),
                "totalRawUsd": format_usdc(collateral),
                "totalMarginUsed": format_usdc(cross_margin_used),
            },
            "crossMaintenanceMarginUsed": format_usdc(cross_maintenance),
            # what a withdrawal may take: the engine keeps the initial margin in the account
            "withdrawable": format_usdc(max(0, cross_equity - cross_initial)),
            "assetPositions": positions,
            "time": state.time,
        }

    async def _clearinghouse_state(self, request: dict[str, Any]) -> Any:
        self._check_dex(request)
        return self.clearinghouse_json(parse_user(request))

    def live_orders(self, user: bytes) -> list[tuple[MarketState, OrderLike, bool]]:
        """The account's live orders, newest first, with whether each is an armed trigger."""
        state = self._state
        account = state.accounts.get(user)
        if account is None:
            return []
        out: list[tuple[MarketState, OrderLike, bool]] = []
        for market_id, position in account.positions.items():
            market = state.markets[market_id]
            for order in position.orders.values():
                out.append((market, order, order.order_id in market.triggers))
        out.sort(key=lambda item: item[1].order_id, reverse=True)
        return out

    async def _open_orders(self, request: dict[str, Any]) -> Any:
        self._check_dex(request)
        return [
            basic_order_json(market.spec, order)
            for market, order, _ in self.live_orders(parse_user(request))
        ]

    async def _frontend_open_orders(self, request: dict[str, Any]) -> Any:
        self._check_dex(request)
        return [
            frontend_order_json(market.spec, order, armed)
            for market, order, armed in self.live_orders(parse_user(request))
        ]

    def fill_json(self, fill: HlFill) -> dict[str, Any]:
        spec = self._state.markets[fill.market].spec
        answer: dict[str, Any] = {
            "coin": spec.symbol,
            "px": format_px(spec, fill.price),
            "sz": format_sz(spec, fill.size),
            "side": side_code(fill.is_buy),
            "time": fill.time,
            "startPosition": format_sz(spec, fill.start_position),
            "dir": fill.direction,
            "closedPnl": format_usdc(fill.closed_pnl),
            "hash": fill.hash,
            "oid": fill.order_id,
            "crossed": fill.crossed,
            "fee": format_usdc(fill.fee),
            "tid": fill.tid,
            "feeToken": "USDC",
        }
        if fill.client_id:
            answer["cloid"] = format_cloid(fill.client_id)
        if fill.builder_fee:
            answer["builderFee"] = format_usdc(fill.builder_fee)
        return answer

    async def _user_fills(self, request: dict[str, Any]) -> Any:
        fills = self.activity.fills(parse_user(request))
        return [self.fill_json(fill) for fill in fills[:MAX_FILLS]]

    async def _user_fills_by_time(self, request: dict[str, Any]) -> Any:
        user = parse_user(request)
        start = parse_ms(request, "startTime")
        end = parse_ms(request, "endTime", default=self._state.time)
        fills = [fill for fill in self.activity.fills(user) if start <= fill.time <= end]
        fills.reverse()  # oldest first: the first MAX_FILLS from the start time
        return [self.fill_json(fill) for fill in fills[:MAX_FILLS]]

    def order_status_json(self, order: OrderRecord) -> dict[str, Any]:
        spec = self._state.markets[order.market].spec
        live = self._state.orders.get(order.order_id)
        source: OrderLike = live if live is not None else order
        armed = live is not None and live.order_id in self._state.markets[order.market].triggers
        return {
            "order": frontend_order_json(spec, source, armed),
            "status": order.status,
            "statusTimestamp": order.status_time,
        }

    async def _historical_orders(self, request: dict[str, Any]) -> Any:
        """The user's live orders, then those that left the book, newest status first."""
        user = parse_user(request)
        live = [
            self.order_status_json(tracked)
            for _, order, _ in self.live_orders(user)
            if (tracked := self.activity.order(order.order_id)) is not None
        ]
        done = [self.order_status_json(order) for order in self.activity.history(user)]
        answer = sorted(live + done, key=lambda item: item["statusTimestamp"], reverse=True)
        return answer[:HISTORY_CAPACITY]

    async def _order_status(self, request: dict[str, Any]) -> Any:
        user = parse_user(request)
        oid = request.get("oid")
        order: OrderRecord | None
        if isinstance(oid, str):
            text = oid[2:] if oid[:2] in ("0x", "0X") else oid
            try:
                if len(text) != 32:
                    raise ValueError
                client_id = int(text, 16)
            except ValueError:
                raise InfoRequestError(f"invalid `oid`: not a 16-byte hex cloid: {oid!r}") from None
            order = self.activity.order_by_cloid(user, client_id)
        elif type(oid) is int:
            order = self.activity.order(parse_uint(oid, "oid", MAX_ID, "an order id"))
        else:
            raise InfoRequestError("missing field `oid`: an order id or a cloid")
        if order is None or order.account != user:
            return {"status": "unknownOid"}
        return {"status": "order", "order": self.order_status_json(order)}

    def funding_json(self, funding: HlFunding) -> dict[str, Any]:
        spec = self._state.markets[funding.market].spec
        return {
            "time": funding.time,
            "coin": spec.symbol,
            "usdc": format_usdc(funding.usdc),
            "szi": format_sz(spec, funding.size),
            "fundingRate": format_ppb(funding.rate_ppb),
            "nSamples": None,
        }

    async def _user_funding(self, request: dict[str, Any]) -> Any:
        user = parse_user(request)
        start = parse_ms(request, "startTime")
        end = parse_ms(request, "endTime", default=self._state.time)
        return [
            {"time": funding.time, "hash": ZERO_HASH, "delta": {"type": "funding"}
             | self.funding_json(funding)}
            for funding in self.activity.fundings(user)
            if start <= funding.time <= end
        ]  # fmt: skip

    def _traded_volume(self, user: bytes) -> int:
        return sum(fill.price * fill.size for fill in self.activity.fills(user))

    async def _user_rate_limit(self, request: dict[str, Any]) -> Any:
        user = parse_user(request)
        limiter = self.node.rate_limiter
        if limiter is None:
            # no budgets on this node: nothing is counted; the cap is Hyperliquid's rule
            volume = self._traded_volume(user)
            used, cap = 0, 10_000 + volume // 10**6
        else:
            # the limiter's own counters (since the node started)
            volume, used, cap = limiter.user_rate_limit(user)
        return {
            "cumVlm": format_usdc(volume),
            "nRequestsUsed": used,
            "nRequestsCap": cap,
            "nRequestsSurplus": 0,  # requests bought with reserveRequestWeight: none here
        }

    async def _user_role(self, request: dict[str, Any]) -> Any:
        user = parse_user(request)
        state = self._state
        master = state.agent_master.get(user)
        if master is not None:
            return {"role": "agent", "data": {"user": format_address(master)}}
        return {"role": "user" if user in state.accounts else "missing"}

    async def _user_abstraction(self, request: dict[str, Any]) -> Any:
        parse_user(request)
        return "disabled"

    async def _max_builder_fee(self, request: dict[str, Any]) -> Any:
        """The most ``builder`` may charge ``user``'s orders, in tenths of a basis point (0
        when never approved), as Hyperliquid answers it: a bare integer."""
        user = parse_user(request)
        builder = parse_user(request, "builder")
        account = self._state.accounts.get(user)
        return 0 if account is None else account.builders.get(builder, 0)

    async def _referral(self, request: dict[str, Any]) -> Any:
        user = parse_user(request)
        return {
            "referredBy": None,
            "cumVlm": format_usdc(self._traded_volume(user)),
            "unclaimedRewards": "0",
            "claimedRewards": "0",
            "builderRewards": "0",
            "referrerState": {"stage": "needToCreateCode", "data": {}},
            "rewardHistory": [],
        }

    async def _user_fees(self, request: dict[str, Any]) -> Any:
        parse_user(request)
        # fees are per market here; Hyperliquid answers one rate: the first market's
        markets = self._state.markets
        spec = markets[0].spec if markets else None
        taker = spec.taker_fee_ppm if spec else 0
        maker = spec.maker_fee_ppm if spec else 0
        return {
            "userCrossRate": format_scaled(taker, 6),
            "userAddRate": format_scaled(maker, 6),
            "activeReferralDiscount": "0",
            "dailyUserVlm": [],
            "feeSchedule": {"cross": format_scaled(taker, 6), "add": format_scaled(maker, 6)},
        }
