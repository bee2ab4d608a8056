"""Building unsigned intents from what a trader means: symbols, sides, decimal prices.

Invariants:

- Every intent built here acts for the wallet's account and carries a fresh nonce from the
  client's :class:`~asyncdex.client.nonces.NonceSource`, taken when it is built: intents
  built one after another have increasing nonces, so a batch goes out in nonce order. The
  nonce is taken after every value is converted, so a refused value costs none.
- Numbers are converted exactly or refused (:mod:`asyncdex.client.markets`); nothing is
  rounded, clipped or defaulted behind the caller's back. A market order is the one place a
  price may be left out: the engine then fills at most the market's slippage bound from the
  mark price.
- Only what is stateless is checked here (types, ranges, enum values, via the intent
  codec's own ``validate_intent`` and field checks). Whether the order fits the book, the
  margin or the agent's rights is the engine's decision, returned as a rejection.
- Times (``expiry``, ``valid_until``, ``schedule_cancel``, ``expires_after``) are ms since
  the epoch, or timezone-aware ``datetime``; naive datetimes are refused (their zone would
  be a guess).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple, TypeAlias

from asyncdex.client.errors import AgentNotAllowed
from asyncdex.client.keys import AgentWallet, BaseWallet, Wallet
from asyncdex.client.markets import (
    AmountError,
    MarketInfo,
    Markets,
    Number,
    price_units,
    size_units,
    usdc_units,
)
from asyncdex.client.nonces import NonceSource, wall_clock_ms
from asyncdex.signing.eip712 import parse_address
from asyncdex.signing.intents import (
    ALL_MARKETS,
    NO_CLIENT_ID,
    ApproveAgent,
    Cancel,
    CancelAll,
    CancelByClientId,
    Intent,
    Modify,
    OrderType,
    PlaceOrder,
    ScheduleCancel,
    SetLeverage,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
    asyncdex_domain,
    intent_digest,
    validate_intent,
)

Side: TypeAlias = Literal["buy", "sell"]
Tif: TypeAlias = Literal["GTC", "IOC", "FOK", "ALO"]
Time: TypeAlias = int | datetime
ClientId: TypeAlias = int | bytes | str
"""An int (``0 < id < 2**128``), 16 bytes, or ``0x`` + 32 hex digits; 0 / zeros mean none."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_ANY_DOMAIN = asyncdex_domain(1, bytes(20))
"""Digesting under any domain runs the codec's per-field type and range checks."""


class Trigger(NamedTuple):
    """A stop or take-profit condition on the mark price; ``price`` as for the order."""

    kind: Literal["stop", "take_profit"]
    price: Number


_TRIGGER_KINDS = {"stop": TriggerKind.STOP, "take_profit": TriggerKind.TAKE_PROFIT}


def parse_side(side: str) -> bool:
    """``"buy"`` -> True, ``"sell"`` -> False (any case)."""
    normal = side.lower() if isinstance(side, str) else None
    if normal == "buy":
        return True
    if normal == "sell":
        return False
    raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")


def parse_tif(tif: str | TimeInForce) -> TimeInForce:
    if isinstance(tif, TimeInForce):
        return tif
    try:
        return TimeInForce[tif.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"tif must be one of GTC, IOC, FOK, ALO, got {tif!r}") from None


def client_id_bytes(client_id: ClientId | None) -> bytes:
    """The 16-byte wire form of a client order id (``NO_CLIENT_ID`` for ``None``)."""
    if client_id is None:
        return NO_CLIENT_ID
    if type(client_id) is int:
        if not 0 <= client_id < 1 << 128:
            raise ValueError("client_id must be in 0 .. 2**128 - 1")
        return client_id.to_bytes(16, "big")
    if type(client_id) is bytes:
        if len(client_id) != 16:
            raise ValueError(f"client_id must be 16 bytes, got {len(client_id)}")
        return client_id
    if isinstance(client_id, str):
        body = client_id[2:] if client_id[:2] in ("0x", "0X") else ""
        if len(body) != 32:
            raise ValueError("a client_id string is 0x followed by 32 hex digits")
        try:
            return bytes.fromhex(body)
        except ValueError:
            raise ValueError("a client_id string is 0x followed by 32 hex digits") from None
    raise ValueError(f"client_id must be an int, 16 bytes or a hex string, got {client_id!r}")


def time_ms(value: Time, *, field: str) -> int:
    """Milliseconds since the epoch from an int or a timezone-aware datetime."""
    if type(value) is int:
        if value < 0:
            raise ValueError(f"{field}: must not be negative")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{field}: a naive datetime has no time zone; use an aware one")
        # timedelta arithmetic is exact (whole microseconds); flooring to ms is the only
        # rounding, towards the past.
        ms = (value - _EPOCH) // _MILLISECOND
        if ms < 0:
            raise ValueError(f"{field}: before the epoch")
        return ms
    raise ValueError(f"{field}: expected ms since the epoch (int) or an aware datetime")


class IntentBuilder:
    """Builds the unsigned intents of one wallet; thread-safe (nonces are taken under a lock)."""

    def __init__(
        self,
        wallet: BaseWallet,
        markets: Markets,
        nonces: NonceSource,
        *,
        intent_ttl_ms: int | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.wallet = wallet
        self.markets = markets
        self.nonces = nonces
        self.intent_ttl_ms = intent_ttl_ms
        self.clock = clock

    # ------------------------------------------------------------------ shared parts

    def _head(self, expires_after: Time | None) -> tuple[bytes, int, int]:
        """``(account, nonce, expires_after)`` of a new intent."""
        if expires_after is not None:
            deadline = time_ms(expires_after, field="expires_after")
        elif self.intent_ttl_ms is not None:
            deadline = self.clock() + self.intent_ttl_ms
        else:
            deadline = 0
        return self.wallet.account, self.nonces.next(self.wallet.address), deadline

    def _market(self, market: int | str) -> tuple[int, MarketInfo | None]:
        info = self.markets.resolve(market)
        return (info.market_id if info is not None else int(market)), info

    @staticmethod
    def _checked(intent: Intent) -> Intent:
        # The codec's own checks: field types and ranges (by digesting) and meaningful enum
        # values, so a bad value fails here with its field named instead of at the node.
        validate_intent(intent)
        intent_digest(_ANY_DOMAIN, intent)
        return intent

    # ------------------------------------------------------------------ orders

    def place_order(
        self,
        market: int | str,
        side: Side,
        size: Number,
        price: Number | None = None,
        *,
        tif: Tif | TimeInForce = "GTC",
        reduce_only: bool = False,
        client_id: ClientId | None = None,
        expiry: Time | None = None,
        trigger: Trigger | None = None,
        expires_after: Time | None = None,
    ) -> PlaceOrder:
        """A limit order at ``price``, or a market order when ``price`` is ``None``.

        A market order (no price) is immediate: GTC becomes IOC, FOK stays, ALO is refused.
        ``expiry`` (good-til-time, ms) applies to GTC orders; ``trigger`` makes it a stop or
        take-profit order, fired by the mark price (a market one without a price).
        """
        market_id, info = self._market(market)
        is_buy = parse_side(side)
        time_in_force = parse_tif(tif)
        is_market = price is None
        if is_market:
            if time_in_force == TimeInForce.ALO:
                raise ValueError("a market order cannot be post-only (ALO)")
            if time_in_force == TimeInForce.GTC:
                time_in_force = TimeInForce.IOC
        trigger_price, trigger_kind = 0, TriggerKind.NONE
        if trigger is not None:
            kind = _TRIGGER_KINDS.get(trigger.kind)
            if kind is None:
                raise ValueError(f"trigger kind must be 'stop' or 'take_profit': {trigger.kind!r}")
            trigger_kind = kind
            trigger_price = price_units(info, trigger.price, field="trigger_price")
            if trigger_price == 0:
                raise AmountError("must be positive", field="trigger_price")
        price_value = 0 if price is None else price_units(info, price)
        size_value = size_units(info, size)
        wire_client_id = client_id_bytes(client_id)
        expiry_ms = 0 if expiry is None else time_ms(expiry, field="expiry")
        account, nonce, deadline = self._head(expires_after)
        intent = PlaceOrder(
            account,
            nonce,
            deadline,
            market_id,
            is_buy,
            price_value,
            size_value,
            int(OrderType.MARKET if is_market else OrderType.LIMIT),
            int(time_in_force),
            bool(reduce_only),
            wire_client_id,
            expiry_ms,
            trigger_price,
            int(trigger_kind),
        )
        self._checked(intent)
        return intent

    def market_order(
        self,
        market: int | str,
        side: Side,
        size: Number,
        *,
        worst_price: Number | None = None,
        tif: Literal["IOC", "FOK"] | TimeInForce = "IOC",
        reduce_only: bool = False,
        client_id: ClientId | None = None,
        expires_after: Time | None = None,
    ) -> PlaceOrder:
        """An immediate order at the book, never worse than ``worst_price`` if given.

        The engine caps a market order at the mark price ± the market's slippage bound; a
        ``worst_price`` tighter than that bound is kept, a looser one is replaced by it.
        """
        market_id, info = self._market(market)
        time_in_force = parse_tif(tif)
        if time_in_force not in (TimeInForce.IOC, TimeInForce.FOK):
            raise ValueError("a market order is IOC or FOK")
        is_buy = parse_side(side)
        price_value = (
            0 if worst_price is None else price_units(info, worst_price, field="worst_price")
        )
        size_value = size_units(info, size)
        wire_client_id = client_id_bytes(client_id)
        account, nonce, deadline = self._head(expires_after)
        intent = PlaceOrder(
            account,
            nonce,
            deadline,
            market_id,
            is_buy,
            price_value,
            size_value,
            int(OrderType.MARKET),
            int(time_in_force),
            bool(reduce_only),
            wire_client_id,
            0,
            0,
            int(TriggerKind.NONE),
        )
        self._checked(intent)
        return intent

    def cancel(
        self, market: int | str, order_id: int, *, expires_after: Time | None = None
    ) -> Cancel:
        market_id, _ = self._market(market)
        account, nonce, deadline = self._head(expires_after)
        intent = Cancel(account, nonce, deadline, market_id, order_id)
        self._checked(intent)
        return intent

    def cancel_by_client_id(
        self, market: int | str, client_id: ClientId, *, expires_after: Time | None = None
    ) -> CancelByClientId:
        market_id, _ = self._market(market)
        wire_id = client_id_bytes(client_id)
        if wire_id == NO_CLIENT_ID:
            raise ValueError("client_id 0 means 'none': name the order's client id")
        account, nonce, deadline = self._head(expires_after)
        intent = CancelByClientId(account, nonce, deadline, market_id, wire_id)
        self._checked(intent)
        return intent

    def cancel_all(
        self, market: int | str | None = None, *, expires_after: Time | None = None
    ) -> CancelAll:
        """Cancel every open order of the account in ``market``, or in all markets."""
        market_id = ALL_MARKETS if market is None else self._market(market)[0]
        account, nonce, deadline = self._head(expires_after)
        intent = CancelAll(account, nonce, deadline, market_id)
        self._checked(intent)
        return intent

    def modify(
        self,
        market: int | str,
        order_id: int,
        price: Number,
        size: Number,
        *,
        expires_after: Time | None = None,
    ) -> Modify:
        """New price and size for a resting order; it keeps its id, and its time priority only
        when the price is unchanged and the size shrinks."""
        market_id, info = self._market(market)
        price_value, size_value = price_units(info, price), size_units(info, size)
        account, nonce, deadline = self._head(expires_after)
        intent = Modify(account, nonce, deadline, market_id, order_id, price_value, size_value)
        self._checked(intent)
        return intent

    def schedule_cancel(
        self, time: Time | None, *, expires_after: Time | None = None
    ) -> ScheduleCancel:
        """Dead-man switch: cancel all the account's orders at ``time`` unless renewed;
        ``None`` (or 0) clears it."""
        at = 0 if time is None else time_ms(time, field="time")
        account, nonce, deadline = self._head(expires_after)
        intent = ScheduleCancel(account, nonce, deadline, at)
        self._checked(intent)
        return intent

    # ------------------------------------------------------------------ margin and money

    def set_leverage(
        self,
        market: int | str,
        leverage: int,
        *,
        isolated: bool = False,
        expires_after: Time | None = None,
    ) -> SetLeverage:
        market_id, _ = self._market(market)
        if type(leverage) is not int:
            raise ValueError(f"leverage must be an int, got {type(leverage).__name__}")
        account, nonce, deadline = self._head(expires_after)
        intent = SetLeverage(account, nonce, deadline, market_id, leverage, bool(isolated))
        self._checked(intent)
        return intent

    def update_isolated_margin(
        self, market: int | str, delta: Number, *, expires_after: Time | None = None
    ) -> UpdateIsolatedMargin:
        """Move collateral into (``delta`` > 0) or out of an isolated position; micro-USDC as
        an int, or a decimal string of USDC."""
        market_id, _ = self._market(market)
        units = usdc_units(delta, field="delta", signed=True)
        account, nonce, deadline = self._head(expires_after)
        intent = UpdateIsolatedMargin(account, nonce, deadline, market_id, units)
        self._checked(intent)
        return intent

    def withdraw(
        self,
        amount: Number,
        *,
        destination: bytes | str | None = None,
        expires_after: Time | None = None,
    ) -> Withdraw:
        """Withdraw collateral (micro-USDC int, or decimal USDC) to the account's address
        on the base chain (the only destination the venue pays today)."""
        units = usdc_units(amount)
        to = self.wallet.account if destination is None else _address(destination)
        account, nonce, deadline = self._head(expires_after)
        intent = Withdraw(account, nonce, deadline, units, to)
        self._checked(intent)
        return intent

    def approve_agent(
        self,
        agent: bytes | str | AgentWallet,
        valid_until: Time = 0,
        *,
        name: str = "",
        expires_after: Time | None = None,
    ) -> ApproveAgent:
        """Let ``agent`` sign for this account until ``valid_until`` (0: no end; a past time
        revokes it). Only the account's own key can sign this."""
        wallet = self.wallet
        if not isinstance(wallet, Wallet):
            raise AgentNotAllowed(
                "ApproveAgent must be signed by the account's own key, not by an agent"
            )
        until = time_ms(valid_until, field="valid_until")
        _account, nonce, deadline = self._head(expires_after)
        intent = wallet.approve_agent_intent(
            agent, nonce=nonce, valid_until=until, name=name, expires_after=deadline
        )
        self._checked(intent)
        return intent


def _address(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return parse_address(value)
    if type(value) is not bytes or len(value) != 20:
        raise ValueError("an address is 20 bytes or 0x followed by 40 hex digits")
    return value
