"""``POST /exchange``: Hyperliquid's signed actions mapped onto the node's engine commands.

Invariants:
- One engine, one book: a verified action becomes one ``Signed`` envelope handed to
  :meth:`Node.submit_intents` (precheck, journal, receipt, engine, settlement: the native
  path). A trading action is ``Signed(signer, nonce, expiresAfter, Batch(account, commands))``:
  its one nonce is spent once, then each order, cancel or modify runs in order, and the
  engine's ``BatchItem`` events say which events are whose. ``withdraw3``,
  ``approveAgent`` and ``approveBuilderFee`` are plain ``Signed(..., Withdraw |
  ApproveAgent | ApproveBuilderFee)``.
- Builder codes: an ``order`` action's ``builder: {b, f}`` makes each of its orders a
  ``PlaceBuilderOrder`` paying ``b`` ``f`` tenths of a basis point of each fill's notional;
  the engine refuses each order (Hyperliquid's text in its status slot) when the user has
  not approved ``b`` for at least ``f``, or ``f`` is above the 0.1% perp cap. A modify keeps
  the order's builder (``batchModify`` carries none, as on Hyperliquid).
- A signature is verified over exactly the bytes received (see
  :mod:`asyncdex.signing.hl_signing`) with the venue's network flag (``self.mainnet``), never
  the client's. A wrong flag recovers a stranger, refused as an unknown user.
- The signer acts for itself, or for its master when it is an approved agent, or for
  ``vaultAddress`` when given (then it must be that account or its agent). Withdrawals and
  agent approvals are user-signed by the account's own key; an agent's are refused.
- Whole-request failures (malformed action, bad signature, unknown user or asset, nonce or
  deadline refused, an agent withdrawing) answer ``{"status": "err", "response": text}``
  with HTTP 200 and sequence nothing; per-order failures (Hyperliquid's price and size
  rules, the engine's rejections) are ``{"error": text}`` in their own slot. A body that is
  not JSON is answered 422 with a plain-text reason, as Hyperliquid does. A journal failure
  that may have left the action journaled is such a text too: it names the intent and says
  its outcome is unknown (resend the same signed action to learn it).
- Order ids are the engine's order ids; a cloid is the engine's 128-bit client id.
- A modify is the engine's ``ModifyOrder``: it keeps the order id and may change price and
  size only (anything else is refused for that order). The tp/sl of a ``normalTpsl`` or
  ``positionTpsl`` group are placed at once as independent trigger orders: the engine has
  no order waiting on another's fill.
- A request seen before (same signed bytes) or reusing a nonce is refused as a duplicate
  nonce; nothing runs twice (two copies in flight at once get the one outcome: the node
  answers a resubmission with its first receipt).
- Statuses are built from the record's own events once the engine applied it; the
  post-only ``bbo`` is read from the book after that record.
- On a batch-auction market nothing fills on arrival, so an IOC (or market) order's record
  shows it waiting in the book. Hyperliquid's answer to an IOC is final (filled, or the
  could-not-match error), so the answer waits for the market's next auction and is built from
  the fills and the cancellation of the remainder in the records applied up to it. If the
  auction has not run within ``AUCTION_WAIT_S`` past the interval (an idle node without
  time ticks), the answer is Hyperliquid's plain ``"waitingForFill"`` (the order is live:
  ``orderStatus`` and ``openOrders`` find it, by cloid too), never ``resting``. A GTC or
  ALO order waiting for the auction is ``resting``, as it rests in the book after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from asyncdex.committee.items import SCHEME_HL_L1, SCHEME_HL_USER
from asyncdex.engine.reader import StateReader
from asyncdex.engine.state import MarketState
from asyncdex.gateway.hyperliquid.common import (
    ACTION_EXPIRED,
    AGENT_NOT_ALLOWED,
    DUPLICATE_NONCE,
    IOC_CANCEL,
    MISSING_ORDER,
    REDUCE_ONLY,
    OrderRuleError,
    format_cloid,
    format_sz,
    market_of_asset,
    min_value_text,
    order_error,
    parse_cloid,
    parse_fee_rate,
    parse_px,
    parse_sz,
    parse_usd,
    parse_user,
    post_only_text,
    reject_text,
    unknown_user_text,
)
from asyncdex.gateway.node import OutcomeUnknown, SubmitRefused
from asyncdex.gateway.ratelimit import RateLimited
from asyncdex.messages.commands import (
    ApproveAgent,
    ApproveBuilderFee,
    Batch,
    CancelByClientId,
    CancelOrder,
    Command,
    ModifyOrder,
    OrderType,
    PlaceBuilderOrder,
    PlaceOrder,
    ScheduleCancel,
    SetLeverage,
    Signed,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.messages.events import (
    AgentApproved,
    BatchItem,
    BuilderFeeApproved,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderModified,
    OrderRested,
    OrderTriggered,
    Rejected,
    TradeExecuted,
    TriggerArmed,
    Withdrawn,
)
from asyncdex.messages.reasons import CancelReason, Reject
from asyncdex.sequencer.records import encode_record
from asyncdex.sequencer.sequencer import SequencerClosed, Submission
from asyncdex.signing import hl_signing, jsonbody
from asyncdex.signing.eip712 import SignatureError, recover_address
from asyncdex.types.numeric import (
    MAX_COLLATERAL,
    DecimalFormatError,
    format_scaled,
    format_usdc,
)

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node

MAX_ITEMS: Final = 1_000  # orders, cancels or modifies in one action
SCHEDULE_CANCEL_MIN_DELAY_MS: Final = 5_000  # Hyperliquid's: at least 5 s ahead
AVG_PX_EXTRA_DECIMALS: Final = 4  # an average fill price may fall between ticks
AUCTION_WAIT_S: Final = 5.0  # past the auction interval: time ticks are well inside this

_TIFS: Mapping[str, int] = {
    "Gtc": TimeInForce.GTC,
    "Ioc": TimeInForce.IOC,
    "Alo": TimeInForce.ALO,
    "FrontendMarket": TimeInForce.IOC,  # what Hyperliquid's own web page sends for market
}
_TPSL: Mapping[str, int] = {"tp": TriggerKind.TAKE_PROFIT, "sl": TriggerKind.STOP}
_GROUPINGS = frozenset({"na", "normalTpsl", "positionTpsl"})
_ORDER_KEYS = frozenset({"a", "b", "p", "s", "r", "t", "c"})
_USER_SIGNED = frozenset(hl_signing.USER_SIGNED_TYPES)
# The user-signed action's own replay field, which must equal the request's nonce.
_USER_SIGNED_NONCE_FIELD: Mapping[str, str] = {
    "usdSend": "time",
    "spotSend": "time",
    "withdraw3": "time",
    "usdClassTransfer": "nonce",
    "sendAsset": "nonce",
    "approveAgent": "nonce",
    "approveBuilderFee": "nonce",
}

Answer = dict[str, Any]


class ActionRefused(Exception):
    """The whole request is refused: answered ``{"status": "err", "response": str(self)}``."""


def err(text: str) -> Answer:
    return {"status": "err", "response": text}


def ok_default() -> Answer:
    return {"status": "ok", "response": {"type": "default"}}


def ok_statuses(kind: str, statuses: list[Any]) -> Answer:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


# ---------------------------------------------------------------------------------------------
# Envelope and field checks (validate_*: read no state)


@dataclass(frozen=True, slots=True)
class Envelope:
    action: dict[str, Any]
    kind: str
    nonce: int
    signature: Mapping[str, Any]
    vault_address: str | None
    expires_after: int | None


def _is_uint64(value: object) -> bool:
    return type(value) is int and 0 <= value < 1 << 64


def validate_envelope(body: object) -> Envelope:
    if not isinstance(body, dict):
        raise ActionRefused("the request must be an object {action, nonce, signature}")
    unknown = set(body) - {"action", "nonce", "signature", "vaultAddress", "expiresAfter"}
    if unknown:
        raise ActionRefused(f"unknown request field(s): {', '.join(sorted(unknown))}")
    action, nonce, signature = body.get("action"), body.get("nonce"), body.get("signature")
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise ActionRefused('action must be an object with a string "type"')
    if not _is_uint64(nonce):
        raise ActionRefused("nonce must be an unsigned 64-bit integer (ms timestamp)")
    assert isinstance(nonce, int)
    if not isinstance(signature, dict):
        raise ActionRefused("signature must be an object {r, s, v}")
    vault = body.get("vaultAddress")
    if vault is not None and not isinstance(vault, str):
        raise ActionRefused("vaultAddress must be an address or null")
    expires = body.get("expiresAfter")
    if expires is not None and not _is_uint64(expires):
        raise ActionRefused("expiresAfter must be an unsigned 64-bit integer or null")
    if expires == 0:
        raise ActionRefused(ACTION_EXPIRED)  # the engine reads 0 as "no deadline"
    return Envelope(action, action["type"], nonce, signature, vault, expires)


def _field(obj: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    # ``type() is``: a bool is an int to isinstance, and never an asset id or a leverage
    if type(value) is not kind:
        raise ActionRefused(f"{what}: {key} must be {kind.__name__}")
    return value


def _items(action: Mapping[str, Any], key: str) -> list[Any]:
    items = action.get(key)
    if not isinstance(items, list):
        raise ActionRefused(f"{action['type']}: {key} must be a list")
    if len(items) > MAX_ITEMS:
        raise ActionRefused(f"{action['type']}: at most {MAX_ITEMS} {key} per action")
    return items


# ---------------------------------------------------------------------------------------------
# Plans: engine commands plus one status slot per order, cancel or modify


@dataclass(slots=True)
class Slot:
    kind: str  # "order" | "cancel" | "modify" | "default" (a single-command action)
    asset: int
    item: int | None = None  # the inner command's position in the Batch; None: not sent
    error: str | None = None  # refused before the engine
    tpsl_child: bool = False  # a trigger of a tp/sl group: Hyperliquid answers a bare string
    client_id: int = 0  # the order's cloid, echoed in its status as Hyperliquid does


@dataclass(slots=True)
class Plan:
    response_type: str  # "order" (modifies too, as on Hyperliquid) | "cancel" | "default"
    commands: list[Command] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)

    def add(self, slot: Slot, command: Command | None) -> None:
        if command is not None:
            slot.item = len(self.commands)
            self.commands.append(command)
        self.slots.append(slot)


class Mapper:
    """Turns one trading action of ``account`` into a :class:`Plan` (check_*: reads state)."""

    def __init__(self, state: StateReader, account: bytes) -> None:
        self.state = state
        self.account = account

    def market(self, asset: object) -> MarketState:
        market = market_of_asset(self.state, asset)
        if market is None:
            raise ActionRefused(f"Invalid asset: {asset!r}")
        return market

    def place_order(self, wire: object, *, tpsl_child: bool = False) -> tuple[Slot, Command | None]:
        """One order wire ``{a, b, p, s, r, t, c?}`` -> its slot and PlaceOrder (or its error)."""
        if not isinstance(wire, dict) or not _ORDER_KEYS >= set(wire) >= _ORDER_KEYS - {"c"}:
            raise ActionRefused("order: each order is {a, b, p, s, r, t, c?}")
        market = self.market(wire["a"])
        spec = market.spec
        asset = spec.market_id
        is_buy = _field(wire, "b", bool, "order")
        reduce_only = _field(wire, "r", bool, "order")
        client_id = self.cloid(wire.get("c"))
        tif, order_type, trigger_kind, trigger_text = self.order_type(wire["t"])
        slot = Slot("order", asset, tpsl_child=tpsl_child and trigger_kind != TriggerKind.NONE)
        try:
            price = parse_px(spec, wire["p"])
            size = parse_sz(spec, wire["s"])
        except OrderRuleError as rule:
            slot.error = order_error(str(rule), asset)
            return slot, None
        trigger_price = 0
        if trigger_text is not None:
            try:
                trigger_price = parse_px(spec, trigger_text)
            except OrderRuleError:
                slot.error = order_error(reject_text(Reject.INVALID_TRIGGER), asset)
                return slot, None
        slot.client_id = client_id
        command = PlaceOrder(
            self.account, asset, is_buy, price, size, tif, order_type, reduce_only, client_id,
            0, trigger_price, trigger_kind,
        )  # fmt: skip
        return slot, command

    @staticmethod
    def cloid(value: object) -> int:
        if value is None:
            return 0
        try:
            return parse_cloid(value)
        except ValueError as exc:
            raise ActionRefused(f"order: c: {exc}") from None

    @staticmethod
    def order_type(value: object) -> tuple[int, int, int, str | None]:
        """``{limit: {tif}}`` or ``{trigger: {isMarket, triggerPx, tpsl}}`` -> (tif, order
        type, trigger kind, trigger price text)."""
        if isinstance(value, dict) and set(value) == {"limit"}:
            limit = value["limit"]
            tif_name = limit.get("tif") if isinstance(limit, dict) else None
            tif = _TIFS.get(tif_name) if isinstance(tif_name, str) else None
            if tif is None:
                raise ActionRefused("order: t.limit.tif must be Gtc, Ioc or Alo")
            return tif, OrderType.LIMIT, TriggerKind.NONE, None
        if isinstance(value, dict) and set(value) == {"trigger"}:
            trigger = value["trigger"]
            if not isinstance(trigger, dict) or set(trigger) != {"isMarket", "triggerPx", "tpsl"}:
                raise ActionRefused("order: t.trigger is {isMarket, triggerPx, tpsl}")
            is_market = _field(trigger, "isMarket", bool, "order trigger")
            kind = _TPSL.get(trigger["tpsl"]) if isinstance(trigger["tpsl"], str) else None
            if kind is None:
                raise ActionRefused('order: t.trigger.tpsl must be "tp" or "sl"')
            order_type = OrderType.MARKET if is_market else OrderType.LIMIT
            # once fired a trigger rests (limit) or takes what it can up to its price (market)
            return TimeInForce.GTC, order_type, kind, trigger["triggerPx"]
        raise ActionRefused("order: t must be {limit: {tif}} or {trigger: {...}}")

    def order_action(self, action: Mapping[str, Any]) -> Plan:
        grouping = action.get("grouping", "na")
        if not isinstance(grouping, str) or grouping not in _GROUPINGS:
            raise ActionRefused(f"order: unsupported grouping {grouping!r}")
        builder = self.builder(action.get("builder"))
        plan = Plan("order")
        for index, wire in enumerate(_items(action, "orders")):
            # in a normalTpsl group the first order is the entry and the others its tp/sl
            child = grouping == "positionTpsl" or (grouping == "normalTpsl" and index > 0)
            slot, command = self.place_order(wire, tpsl_child=child)
            if builder is not None and type(command) is PlaceOrder:
                command = with_builder(command, *builder)
            plan.add(slot, command)
        return plan

    @staticmethod
    def builder(value: object) -> tuple[bytes, int] | None:
        """An order action's ``builder: {b, f}`` -> (address, fee in tenths of a basis
        point); None when absent. The fee's cap and the user's approval are the engine's."""
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"b", "f"}:
            raise ActionRefused("order: builder is {b, f}")
        try:
            address = parse_user(value["b"])
        except ValueError:
            raise ActionRefused("order: builder.b must be 0x and 40 hex digits") from None
        fee = value["f"]
        if not _is_uint64(fee):
            raise ActionRefused("order: builder.f must be a fee in tenths of a basis point")
        return address, fee

    def cancel_action(self, action: Mapping[str, Any]) -> Plan:
        plan = Plan("cancel")
        for wire in _items(action, "cancels"):
            if not isinstance(wire, dict) or set(wire) != {"a", "o"}:
                raise ActionRefused("cancel: each cancel is {a, o}")
            asset = self.market(wire["a"]).spec.market_id
            order_id = wire["o"]
            if not _is_uint64(order_id):
                raise ActionRefused("cancel: o must be an order id")
            plan.add(Slot("cancel", asset), CancelOrder(self.account, asset, order_id))
        return plan

    def cancel_by_cloid_action(self, action: Mapping[str, Any]) -> Plan:
        plan = Plan("cancel")
        for wire in _items(action, "cancels"):
            if not isinstance(wire, dict) or set(wire) != {"asset", "cloid"}:
                raise ActionRefused("cancelByCloid: each cancel is {asset, cloid}")
            asset = self.market(wire["asset"]).spec.market_id
            try:
                client_id = parse_cloid(wire["cloid"])
            except ValueError as exc:
                raise ActionRefused(f"cancelByCloid: cloid: {exc}") from None
            plan.add(Slot("cancel", asset), CancelByClientId(self.account, asset, client_id))
        return plan

    def batch_modify_action(self, action: Mapping[str, Any]) -> Plan:
        plan = Plan("order")
        for wire in _items(action, "modifies"):
            if not isinstance(wire, dict) or set(wire) != {"oid", "order"}:
                raise ActionRefused("batchModify: each modify is {oid, order}")
            plan.add(*self.modify(wire["oid"], wire["order"]))
        return plan

    def modify(self, oid: object, wire: object) -> tuple[Slot, Command | None]:
        """A modify keeps the order's id: it may change price and size (the engine's
        ``ModifyOrder``); side, time in force, reduce-only, trigger and cloid must stay."""
        slot, placed = self.place_order(wire)
        slot.kind = "modify"
        if placed is None:
            return slot, None
        assert type(placed) is PlaceOrder
        if isinstance(oid, str):
            order_id = self.order_id_of_cloid(oid)
            if order_id is None:
                slot.error = order_error(MISSING_ORDER, slot.asset)
                return slot, None
        elif _is_uint64(oid):
            assert isinstance(oid, int)
            order_id = oid
        else:
            raise ActionRefused("batchModify: oid must be an order id or a cloid")
        order = self.state.orders.get(order_id)
        if order is not None and order.account == self.account:
            changed = [
                name
                for name, same in (
                    ("side", order.is_buy == placed.is_buy),
                    ("time in force", order.tif == placed.tif or order.trigger_kind != 0),
                    ("reduce-only", order.reduce_only == placed.reduce_only),
                    ("trigger", order.trigger_price == placed.trigger_price),
                    ("order type", order.order_type == placed.order_type),
                    ("cloid", placed.client_id in (0, order.client_id)),
                )
                if not same
            ]
            if changed:
                slot.error = order_error(
                    "A modify may change only price and size on this venue (not "
                    + ", ".join(changed)
                    + "); cancel and place instead.",
                    slot.asset,
                )
                return slot, None
            slot.client_id = order.client_id
        # an order that is gone, or another account's, is the engine's to refuse
        return slot, ModifyOrder(self.account, slot.asset, order_id, placed.price, placed.size)

    def order_id_of_cloid(self, text: str) -> int | None:
        try:
            client_id = parse_cloid(text)
        except ValueError as exc:
            raise ActionRefused(f"batchModify: oid: {exc}") from None
        account = self.state.accounts.get(self.account)
        return None if account is None else account.client_ids.get(client_id)

    def update_leverage(self, action: Mapping[str, Any]) -> Plan:
        asset = self.market(action.get("asset")).spec.market_id
        is_cross = _field(action, "isCross", bool, "updateLeverage")
        leverage = _field(action, "leverage", int, "updateLeverage")
        plan = Plan("default")
        plan.add(Slot("default", asset), SetLeverage(self.account, asset, leverage, not is_cross))
        return plan

    def update_isolated_margin(self, action: Mapping[str, Any]) -> Plan:
        asset = self.market(action.get("asset")).spec.market_id
        _field(action, "isBuy", bool, "updateIsolatedMargin")  # one-way positions: no side
        delta = _field(action, "ntli", int, "updateIsolatedMargin")  # micro-USD, signed
        if abs(delta) > MAX_COLLATERAL:
            raise ActionRefused(f"updateIsolatedMargin: ntli must be within +-{MAX_COLLATERAL}")
        plan = Plan("default")
        plan.add(Slot("default", asset), UpdateIsolatedMargin(self.account, asset, delta))
        return plan

    def schedule_cancel(self, action: Mapping[str, Any], now_ms: int) -> Plan:
        at_time = action.get("time")
        if at_time is None:
            at_time = 0  # unset
        elif not _is_uint64(at_time):
            raise ActionRefused("scheduleCancel: time must be a ms timestamp or absent")
        elif at_time < now_ms + SCHEDULE_CANCEL_MIN_DELAY_MS:
            raise ActionRefused(
                "Scheduled cancel time too early, must be at least 5 seconds after current time."
            )
        plan = Plan("default")
        plan.add(Slot("default", -1), ScheduleCancel(self.account, at_time))
        return plan


# ---------------------------------------------------------------------------------------------
# Statuses from the record's events


def split_items(events: Sequence[Event]) -> tuple[list[Event], list[list[Event]]]:
    """(events before the first ``BatchItem``, the events of each inner command)."""
    head: list[Event] = []
    items: list[list[Event]] = []
    current = head
    for event in events:
        if type(event) is BatchItem:
            current = []
            items.append(current)
        else:
            current.append(event)
    return head, items


def _avg_px(market: MarketState, notional: int, size: int) -> str:
    """``notional / size`` in price units (exact in engine units), rounded half-even to a few
    decimals below the price unit: an average may fall between ticks."""
    quotient, remainder = divmod(notional * 10**AVG_PX_EXTRA_DECIMALS, size)
    if 2 * remainder > size or (2 * remainder == size and quotient % 2):
        quotient += 1
    return format_scaled(quotient, market.spec.price_decimals + AVG_PX_EXTRA_DECIMALS)


def order_status(state: StateReader, slot: Slot, events: Sequence[Event]) -> Any:
    """The Hyperliquid status of one order or modify from its inner command's events."""
    market = state.markets[slot.asset]
    order_id = 0
    for event in events:
        kind = type(event)
        if kind is Rejected:
            assert isinstance(event, Rejected)
            if event.reason == Reject.POST_ONLY_WOULD_CROSS:
                return {"error": order_error(post_only_text(state, slot.asset), slot.asset)}
            if event.reason == Reject.BELOW_MIN_VALUE:
                return {"error": order_error(min_value_text(market.spec), slot.asset)}
            return {"error": order_error(reject_text(event.reason), slot.asset)}
        if kind is OrderAccepted or kind is OrderModified:
            order_id = event[0]  # type: ignore[assignment]  # order_id is the first field
            break
    if not order_id:
        return {"error": order_error("Order was not placed.", slot.asset)}
    filled = notional = 0
    rested = armed = fired = False
    reduce_only_cancel = False
    for event in events:
        kind = type(event)
        if kind is TradeExecuted:
            assert isinstance(event, TradeExecuted)
            if event.taker_order == order_id:
                filled += event.size
                notional += event.size * event.price
        elif kind is OrderRested and event[0] == order_id:
            rested = True
        elif kind is OrderModified and event[0] == order_id:
            assert isinstance(event, OrderModified)
            rested = rested or event.kept_priority or order_id in market.triggers
        elif kind is TriggerArmed and event[0] == order_id:
            armed = True
        elif kind is OrderTriggered and event[0] == order_id:
            fired = True
        elif kind is OrderCancelled and event[0] == order_id:
            assert isinstance(event, OrderCancelled)
            reduce_only_cancel = event.reason == CancelReason.REDUCE_ONLY
    ids: dict[str, Any] = {"oid": order_id}
    cloid = format_cloid(slot.client_id)
    if cloid is not None:
        ids["cloid"] = cloid
    if armed and not fired:
        return "waitingForTrigger" if slot.tpsl_child else {"resting": ids}
    if rested:
        return {"resting": ids}
    if filled:
        totals = {
            "totalSz": format_sz(market.spec, filled),
            "avgPx": _avg_px(market, notional, filled),
        }
        return {"filled": {**totals, **ids}}
    if reduce_only_cancel:
        return {"error": order_error(REDUCE_ONLY, slot.asset)}
    return {"error": order_error(IOC_CANCEL, slot.asset)}


def waits_for_auction(state: StateReader, command: Command | None, status: Any) -> int:
    """The order id of a ``resting`` status whose order is an IOC (or market order) that
    ``command`` placed on a batch-auction market, where it waits for the next auction (it may
    already be out of the book by now), else 0."""
    if not isinstance(status, dict) or "resting" not in status:
        return 0
    if type(command) is not PlaceOrder and type(command) is not PlaceBuilderOrder:
        return 0
    if not state.markets[command.market].auction_interval:
        return 0
    if command.trigger_kind != TriggerKind.NONE:
        return 0  # an armed trigger waits for its price, not for the auction
    if command.tif != TimeInForce.IOC and command.order_type != OrderType.MARKET:
        return 0
    order_id: int = status["resting"]["oid"]
    return order_id


def plan_command(plan: Plan, slot: Slot) -> Command | None:
    return None if slot.item is None else plan.commands[slot.item]


def auction_status(state: StateReader, slot: Slot, order_id: int, events: Sequence[Event]) -> Any:
    """The final status of an IOC that waited for an auction, from the events of the records
    applied after it (its fills, at one price, as maker or taker, and its remainder's
    cancellation)."""
    market = state.markets[slot.asset]
    filled = notional = 0
    for event in events:
        if type(event) is TradeExecuted:
            assert isinstance(event, TradeExecuted)
            if event.taker_order == order_id or event.maker_order == order_id:
                filled += event.size
                notional += event.size * event.price
    if not filled:
        return {"error": order_error(IOC_CANCEL, slot.asset)}
    ids: dict[str, Any] = {"oid": order_id}
    cloid = format_cloid(slot.client_id)
    if cloid is not None:
        ids["cloid"] = cloid
    totals = {
        "totalSz": format_sz(market.spec, filled),
        "avgPx": _avg_px(market, notional, filled),
    }
    return {"filled": {**totals, **ids}}


def cancel_status(slot: Slot, events: Sequence[Event]) -> Any:
    for event in events:
        if type(event) is Rejected:
            assert isinstance(event, Rejected)
            return {"error": order_error(reject_text(event.reason), slot.asset)}
    if any(type(event) is OrderCancelled for event in events):
        return "success"
    return {"error": order_error(MISSING_ORDER, slot.asset)}


def whole_request_refusal(events: Sequence[Event], signer: bytes) -> Rejected | None:
    """The envelope's own rejection (authorization, nonce, deadline), if the engine refused it:
    a ``Rejected`` of the signer before any ``BatchItem``."""
    for event in events:
        if type(event) is BatchItem:
            return None
        if type(event) is Rejected:
            assert isinstance(event, Rejected)
            if event.account == signer:
                return event
    return None


# ---------------------------------------------------------------------------------------------
# The endpoint


class ExchangeApi:
    """``POST /exchange`` of one node; ``handle`` also serves ``/ws`` ``post`` actions."""

    def __init__(self, node: Node, mainnet: bool = False) -> None:
        self.node = node
        self.mainnet = mainnet
        self._l1: Mapping[str, Callable[[Mapper, Mapping[str, Any]], Plan]] = {
            "order": Mapper.order_action,
            "cancel": Mapper.cancel_action,
            "cancelByCloid": Mapper.cancel_by_cloid_action,
            "batchModify": Mapper.batch_modify_action,
            "modify": _single_modify,
            "updateLeverage": Mapper.update_leverage,
            "updateIsolatedMargin": Mapper.update_isolated_margin,
            "scheduleCancel": lambda mapper, action: mapper.schedule_cancel(
                action, self.node.settings.clock()
            ),
            "noop": lambda mapper, action: Plan("default"),
        }

    def install(self, app: web.Application) -> None:
        app.router.add_post("/exchange", self.handle_http)

    async def handle_http(self, request: web.Request) -> web.Response:
        # the app bounds the body (413 beyond the node's limit)
        raw = await request.read()
        try:
            body = jsonbody.loads(raw)
        except (ValueError, RecursionError) as exc:
            return web.Response(
                status=422,
                text=f"Failed to deserialize the JSON body into the target type: {exc}",
            )
        try:
            return web.json_response(await self.handle(body))
        except RateLimited as limited:
            return limited.response()

    async def handle(self, body: Any) -> Any:
        """The answer to one parsed exchange request (also used by ``/ws`` ``post``)."""
        try:
            envelope = validate_envelope(body)
            if envelope.kind in self._l1:
                return await self.trading_action(envelope)
            if envelope.kind in _USER_SIGNED:
                return await self.user_signed_action(envelope)
            if envelope.kind == "setReferrer":
                # no referral program here: nothing to record, nothing refused
                self.verify_l1(envelope)
                return ok_default()
            return err(f"Unsupported action: {envelope.kind}")
        except ActionRefused as refusal:
            return err(str(refusal))

    # -- trading (L1) actions

    def verify_l1(self, envelope: Envelope) -> tuple[bytes, bytes, bytes]:
        """(signer, 65-byte signature, intent id = the EIP-712 digest signed)."""
        try:
            digest = hl_signing.l1_action_digest(
                envelope.action,
                envelope.nonce,
                envelope.vault_address,
                envelope.expires_after,
                is_mainnet=self.mainnet,
            )
            signature = hl_signing.parse_signature(envelope.signature)
            return recover_address(digest, signature), signature, digest
        except (hl_signing.MalformedAction, SignatureError) as exc:
            raise ActionRefused(f"Invalid signature: {exc}") from None

    def account_for(self, signer: bytes, vault_address: str | None) -> bytes:
        state = self.node.state
        if vault_address is not None:
            try:
                return parse_user(vault_address)
            except ValueError:
                raise ActionRefused("vaultAddress must be 0x and 40 hex digits") from None
        account = state.agent_master.get(signer, signer)
        if account == signer and account not in state.accounts:
            raise ActionRefused(unknown_user_text(signer))
        return account

    async def trading_action(self, envelope: Envelope) -> Answer:
        signer, signature, intent_id = self.verify_l1(envelope)
        account = self.account_for(signer, envelope.vault_address)
        plan = self._l1[envelope.kind](Mapper(self.node.state, account), envelope.action)
        command = Signed(
            signer,
            envelope.nonce,
            envelope.expires_after or 0,
            Batch(account, tuple(plan.commands)),
        )
        relay = [envelope.action, envelope.nonce, envelope.vault_address,
                 envelope.expires_after, self.mainnet]  # fmt: skip
        seq, events = await self.execute_seq(
            Submission(command, signature, intent_id), signer, (SCHEME_HL_L1, relay)
        )
        refusal = whole_request_refusal(events, signer)
        if refusal is not None:
            raise ActionRefused(self.refusal_text(refusal.reason, signer))
        _, items = split_items(events)
        state = self.node.state
        if plan.response_type == "default":
            for slot in plan.slots:
                for event in items[slot.item] if slot.item is not None else ():
                    if type(event) is Rejected:
                        raise ActionRefused(reject_text(event.reason))
            return ok_default()
        statuses: list[Any] = []
        for slot in plan.slots:
            if slot.error is not None:
                statuses.append({"error": slot.error})
            elif slot.kind == "cancel":
                assert slot.item is not None
                statuses.append(cancel_status(slot, items[slot.item]))
            else:
                assert slot.item is not None
                statuses.append(order_status(state, slot, items[slot.item]))
        waiting = {
            index: order_id
            for index, status in enumerate(statuses)
            if (order_id := waits_for_auction(state, plan_command(plan, plan.slots[index]), status))
        }
        if waiting:
            await self.answer_after_auction(seq, plan.slots, statuses, waiting)
        return ok_statuses(plan.response_type, statuses)

    async def answer_after_auction(
        self, seq: int, slots: Sequence[Slot], statuses: list[Any], waiting: dict[int, int]
    ) -> None:
        """Replace the statuses of the IOC orders in ``waiting`` (status index -> order id),
        placed by record ``seq``, with their outcome once their auction ran: by then each is
        out of the book (filled, or its remainder cancelled). Until then, or if the records
        after ``seq`` are no longer kept, ``"waitingForFill"``."""
        node = self.node
        state = node.state
        intervals = [state.markets[slots[index].asset].auction_interval for index in waiting]
        later: list[Event] = []

        async def read_until_out_of_book() -> bool:
            current = seq
            while any(order_id in node.state.orders for order_id in waiting.values()):
                current += 1
                events = await node.wait_applied(current)
                if events is None:
                    return False
                later.extend(events)
            # gone from the book by the applied seq: its last events are at or before it
            while current < node.applied_seq:
                current += 1
                events = await node.wait_applied(current)
                if events is None:
                    return False
                later.extend(events)
            return True

        try:
            complete = await asyncio.wait_for(
                read_until_out_of_book(), max(intervals) / 1000 + AUCTION_WAIT_S
            )
        except TimeoutError:
            complete = False
        except SequencerClosed:
            complete = False
        for index, order_id in waiting.items():
            if complete:
                statuses[index] = auction_status(node.state, slots[index], order_id, later)
            else:
                statuses[index] = "waitingForFill"

    # -- user-signed (transfer-type) actions

    async def user_signed_action(self, envelope: Envelope) -> Answer:
        action = envelope.action
        if envelope.expires_after is not None:
            raise ActionRefused(f"{envelope.kind}: expiresAfter does not apply to this action")
        nonce_field = _USER_SIGNED_NONCE_FIELD[envelope.kind]
        if action.get(nonce_field) != envelope.nonce:
            raise ActionRefused(f"{envelope.kind}: {nonce_field} must equal the request's nonce")
        try:
            digest = hl_signing.user_signed_digest(action, is_mainnet=self.mainnet)
            signature = hl_signing.parse_signature(envelope.signature)
            signer = recover_address(digest, signature)
        except (hl_signing.MalformedAction, SignatureError) as exc:
            raise ActionRefused(f"Invalid signature: {exc}") from None
        state = self.node.state
        # The account's own key must sign; an agent's signature is mapped to its master so
        # that the engine's authorization refuses it by name (agents may not do this).
        account = state.agent_master.get(signer, signer)
        if account not in state.accounts:
            raise ActionRefused(unknown_user_text(signer))
        if envelope.kind == "withdraw3":
            command: Command = self.withdraw(action, account)
        elif envelope.kind == "approveAgent":
            command = ApproveAgent(account, self.agent_address(action), 0)
        elif envelope.kind == "approveBuilderFee":
            command = self.approve_builder_fee(action, account)
        elif envelope.kind == "usdClassTransfer":
            raise ActionRefused(
                "usdClassTransfer: this venue has no spot balances; all USDC is perp collateral"
            )
        else:
            raise ActionRefused(
                f"Unsupported action: {envelope.kind} (transfers between users are not supported; "
                "withdraw, then deposit)"
            )
        submission = Submission(Signed(signer, envelope.nonce, 0, command), signature, digest)
        events = await self.execute(submission, signer, (SCHEME_HL_USER, [action, self.mainnet]))
        for event in events:
            if type(event) is Rejected:
                raise ActionRefused(self.refusal_text(event.reason, signer))
        expected = {
            Withdraw: Withdrawn,
            ApproveAgent: AgentApproved,
            ApproveBuilderFee: BuilderFeeApproved,
        }[type(command)]
        if not any(type(event) is expected for event in events):
            raise ActionRefused(f"{envelope.kind}: not carried out")
        return ok_default()

    @staticmethod
    def withdraw(action: Mapping[str, Any], account: bytes) -> Withdraw:
        try:
            destination = parse_user(action.get("destination"))
        except ValueError:
            raise ActionRefused("withdraw3: destination must be 0x and 40 hex digits") from None
        if destination != account:
            raise ActionRefused(
                "withdraw3: withdrawals are paid to the account's own address on this venue"
            )
        try:
            amount = parse_usd(action.get("amount"))
        except DecimalFormatError:
            raise ActionRefused(
                "withdraw3: amount must be a USD amount, at most 6 decimals"
            ) from None
        if not 0 < amount <= MAX_COLLATERAL:
            raise ActionRefused(
                f"withdraw3: amount must be positive and at most {format_usdc(MAX_COLLATERAL)}"
            )
        return Withdraw(account, amount)

    @staticmethod
    def approve_builder_fee(action: Mapping[str, Any], account: bytes) -> ApproveBuilderFee:
        try:
            builder = parse_user(action.get("builder"))
        except ValueError:
            raise ActionRefused("approveBuilderFee: builder must be 0x and 40 hex digits") from None
        try:
            max_fee = parse_fee_rate(action.get("maxFeeRate"))
        except DecimalFormatError:
            raise ActionRefused(
                "approveBuilderFee: maxFeeRate must be a percent with at most 3 decimals, "
                'like "0.01%"'
            ) from None
        return ApproveBuilderFee(account, builder, max_fee)

    @staticmethod
    def agent_address(action: Mapping[str, Any]) -> bytes:
        try:
            return parse_user(action.get("agentAddress"))
        except ValueError:
            raise ActionRefused("approveAgent: agentAddress must be 0x and 40 hex digits") from None

    # -- submission

    async def execute(
        self, submission: Submission, signer: bytes, relay: tuple[str, list[Any]]
    ) -> list[Event]:
        """Sequence one verified envelope and return its events once applied; ``relay`` is
        what the client signed, for a committee to check (``Node.relay``)."""
        _, events = await self.execute_seq(submission, signer, relay)
        return events

    async def execute_seq(
        self, submission: Submission, signer: bytes, relay: tuple[str, list[Any]]
    ) -> tuple[int, list[Event]]:
        """``execute``, with the seq the envelope was sequenced at."""
        node = self.node
        command = submission.command
        assert type(command) is Signed
        # The same signed bytes again, or a nonce already spent: Hyperliquid refuses both (the
        # node itself would answer a resubmission with its first receipt).
        kept = node.state.nonces.get(signer)
        if node.index.seq_of(submission.intent_id) is not None or (
            kept is not None and command.nonce in kept
        ):
            raise ActionRefused(DUPLICATE_NONCE)
        try:
            encode_record(0, command, submission.signature)
        except (OverflowError, TypeError, ValueError) as exc:
            raise ActionRefused(f"the action cannot be journaled: {exc}") from None
        node.relay(submission, *relay)
        try:
            (receipt,) = await node.submit_intents([submission])
        except SubmitRefused as refusal:
            if refusal.status == 429:
                # over the address's budget: answered 429, as Hyperliquid does
                raise RateLimited("address", str(refusal), refusal.retry_after_ms or 1) from None
            raise ActionRefused(self.submit_refusal_text(refusal, signer)) from None
        try:
            seq, events = await node.wait_outcome(receipt)
        except SequencerClosed:
            # durable, so it is not lost: say so rather than guess its outcome
            raise ActionRefused(
                "the node stopped before the action's outcome was known (it is durable); "
                "read it from /info once the node is back"
            ) from None
        if events is None:
            raise ActionRefused(
                f"the action was sequenced (seq {seq}) but its outcome is no longer "
                "kept; read it from /info"
            )
        return seq, events

    def submit_refusal_text(self, refusal: SubmitRefused, signer: bytes) -> str:
        if isinstance(refusal, OutcomeUnknown):
            # Hyperliquid clients resend by the same signed action: after the node is back,
            # a resend is either refused as a spent nonce (it was journaled) or runs once.
            intents = ", ".join(
                f"intent {entry['intentId']} (seq {entry['seq']} if journaled)"
                for entry in refusal.unknown_json()
            )
            return (
                f"journal failure: the outcome of the action is unknown ({intents}); resend "
                "the same signed action to learn its outcome"
            )
        try:
            reason = Reject[refusal.code.upper()]
        except KeyError:
            return str(refusal)
        return self.refusal_text(reason, signer)

    @staticmethod
    def refusal_text(reason: int, signer: bytes) -> str:
        if reason == Reject.UNKNOWN_AGENT or reason == Reject.AGENT_EXPIRED:
            return unknown_user_text(signer)
        if reason == Reject.AGENT_NOT_ALLOWED:
            return AGENT_NOT_ALLOWED
        if reason == Reject.INTENT_EXPIRED:
            return ACTION_EXPIRED
        return reject_text(reason)


def with_builder(order: PlaceOrder, builder: bytes, fee: int) -> PlaceBuilderOrder:
    return PlaceBuilderOrder(
        order.account, order.market, order.is_buy, order.price, order.size, builder, fee,
        order.tif, order.order_type, order.reduce_only, order.client_id, order.expiry,
        order.trigger_price, order.trigger_kind,
    )  # fmt: skip


def _single_modify(mapper: Mapper, action: Mapping[str, Any]) -> Plan:
    """``{type: "modify", oid, order}``: Hyperliquid's older single modify."""
    plan = Plan("default")
    if set(action) != {"type", "oid", "order"}:
        raise ActionRefused("modify: the action is {type, oid, order}")
    slot, command = mapper.modify(action["oid"], action["order"])
    if slot.error is not None:
        raise ActionRefused(slot.error)
    plan.add(Slot("default", slot.asset), command)
    return plan
