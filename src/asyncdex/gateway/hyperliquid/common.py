"""What the Hyperliquid-compatible ``/info``, ``/exchange`` and ``/ws`` share: asset ids, coins,
exact decimal strings, Hyperliquid's price and size rules, client order ids, error texts.

Invariants:
- Asset id = market id = position in ``meta.universe`` = position in the engine config's
  market list; the coin is the market's symbol. Ids never move. Spot asset ids (10000 and
  up) name no market here: there is no spot.
- Decimal strings become integer engine units exactly, through
  :func:`asyncdex.types.numeric.parse_scaled`: never through a float, never rounded. A
  string that would need rounding is refused with Hyperliquid's text for it.
- Hyperliquid's price rules come first, then the market's own grid: a price has at most 5
  significant figures unless it is an integer, at most ``6 - szDecimals`` decimals (which
  is exactly what the engine's price unit can hold) and must be a multiple of the market's
  tick; a size has at most ``szDecimals`` decimals and must be a multiple of the lot.
- Decimal strings out are plain (no exponent), without trailing zeros: ``"60000.5"``,
  ``"0.001"``, ``"0"``. Addresses out are lowercase ``0x`` hex.
- A client order id (cloid) is ``0x`` and 32 hex digits on the wire and the same 128-bit
  integer in the engine; 0 means none on both sides, so the all-zero cloid is refused.
- Error texts are Hyperliquid's where Hyperliquid has one (clients match on them); the
  per-order ones end with `` asset=N`` as Hyperliquid's do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from asyncdex.engine.reader import StateReader
from asyncdex.engine.state import MarketState
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import MarketSpec
from asyncdex.types.numeric import (
    USDC_DECIMALS,
    DecimalFormatError,
    format_scaled,
    parse_scaled,
)

SPOT_ASSET_OFFSET: Final = 10_000
MAX_SIGNIFICANT_FIGURES: Final = 5
PERP_MAX_DECIMALS: Final = USDC_DECIMALS  # a perp price has at most 6 - szDecimals decimals

# A plain non-negative decimal: what hyperliquid-python-sdk's ``float_to_wire`` writes. Signs,
# exponents, spaces and other scripts' digits are refused (``Decimal`` would take them).
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_CLOID = re.compile(r"0x[0-9a-fA-F]{32}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class OrderRuleError(ValueError):
    """A price or size breaks Hyperliquid's rules or the market's grid; ``str()`` is the
    Hyperliquid text (without the ``asset=N`` suffix, see :func:`order_error`)."""


# ---------------------------------------------------------------------------------------------
# Assets and coins


def market_of_asset(state: StateReader, asset: object) -> MarketState | None:
    """The perp market whose asset id is ``asset`` (an int), or None."""
    markets = state.markets
    if type(asset) is int and 0 <= asset < len(markets):
        return markets[asset]
    return None


def market_of_coin(state: StateReader, coin: object) -> MarketState | None:
    """The perp market whose coin (symbol) is ``coin``, or None."""
    if not isinstance(coin, str):
        return None
    for market in state.markets:
        if market.spec.symbol == coin:
            return market
    return None


def coin_of(spec: MarketSpec) -> str:
    return spec.symbol


def asset_of(spec: MarketSpec) -> int:
    return spec.market_id


# ---------------------------------------------------------------------------------------------
# Decimal strings


def format_px(spec: MarketSpec, price: int) -> str:
    """A price in engine units (10^-(6-szDecimals) USDC) as Hyperliquid writes it."""
    return format_scaled(price, spec.price_decimals)


def format_sz(spec: MarketSpec, size: int) -> str:
    """A size in engine units (10^-szDecimals) as Hyperliquid writes it."""
    return format_scaled(size, spec.sz_decimals)


def format_usd(amount: int) -> str:
    """Micro-USDC as a USD decimal string."""
    return format_scaled(amount, USDC_DECIMALS)


def _plain_decimal(text: object) -> str:
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise DecimalFormatError(f"not a plain decimal string: {text!r}")
    return text


def significant_figures(text: str) -> int:
    """Significant figures of a plain decimal string (``"0.00120"`` -> 2, ``"60000"`` -> 1)."""
    digits = text.replace(".", "").lstrip("0").rstrip("0")
    return len(digits)


def is_integer_text(text: str) -> bool:
    return not text.partition(".")[2].strip("0")


def parse_px(spec: MarketSpec, text: object) -> int:
    """A Hyperliquid price string -> engine price units, under every rule (module docstring)."""
    try:
        plain = _plain_decimal(text)
        if not is_integer_text(plain) and significant_figures(plain) > MAX_SIGNIFICANT_FIGURES:
            raise OrderRuleError(TICK_SIZE)
        price = parse_scaled(plain, spec.price_decimals)
    except DecimalFormatError:
        raise OrderRuleError(TICK_SIZE) from None
    if price <= 0:
        raise OrderRuleError(INVALID_PRICE)
    if price % spec.tick:
        raise OrderRuleError(TICK_SIZE)
    return price


def parse_sz(spec: MarketSpec, text: object) -> int:
    """A Hyperliquid size string -> engine size units (at most szDecimals, on the lot)."""
    try:
        size = parse_scaled(_plain_decimal(text), spec.sz_decimals)
    except DecimalFormatError:
        raise OrderRuleError(INVALID_SIZE) from None
    if size <= 0 or size % spec.lot:
        raise OrderRuleError(INVALID_SIZE)
    return size


def parse_fee_rate(text: object) -> int:
    """``approveBuilderFee``'s ``maxFeeRate``, a percent string (``"0.01%"``), -> tenths of a
    basis point (10), exactly; raises ``DecimalFormatError`` (no ``%``, more than 3 decimals).
    """
    if not isinstance(text, str) or not text.endswith("%"):
        raise DecimalFormatError(f"not a percent string: {text!r}")
    # 1% is 100 basis points, 1,000 tenths: a percent with 3 decimals is a whole number of them
    return parse_scaled(_plain_decimal(text[:-1]), 3)


def parse_usd(text: object) -> int:
    """A USD amount string (``"12.5"``) -> micro-USDC, exactly; raises ``DecimalFormatError``."""
    return parse_scaled(_plain_decimal(text), USDC_DECIMALS)


# ---------------------------------------------------------------------------------------------
# Client order ids and addresses


def parse_cloid(text: object) -> int:
    """``"0x"`` + 32 hex digits -> the 128-bit client id (never 0); raises ``ValueError``."""
    if not isinstance(text, str) or not _CLOID.fullmatch(text):
        raise ValueError("a cloid is 0x and 32 hex digits")
    value = int(text, 16)
    if value == 0:
        raise ValueError("the all-zero cloid means no cloid")
    return value


def format_cloid(client_id: int) -> str | None:
    """The cloid string of an engine client id; None for 0 (no cloid)."""
    return None if client_id == 0 else "0x" + client_id.to_bytes(16, "big").hex()


def parse_user(text: object) -> bytes:
    """A ``0x`` 20-byte address in any letter case -> 20 bytes; raises ``ValueError``."""
    if not isinstance(text, str) or not _ADDRESS.fullmatch(text):
        raise ValueError("an address is 0x and 40 hex digits")
    return bytes.fromhex(text[2:])


def format_address(address: bytes) -> str:
    return "0x" + address.hex()


# ---------------------------------------------------------------------------------------------
# Error texts

TICK_SIZE: Final = "Price must be divisible by tick size."
INVALID_PRICE: Final = "Order has invalid price."
INVALID_SIZE: Final = "Order has invalid size."
INSUFFICIENT_MARGIN: Final = "Insufficient margin to place order."
REDUCE_ONLY: Final = "Reduce only order would increase position."
IOC_CANCEL: Final = "Order could not immediately match against any resting orders."
MISSING_ORDER: Final = "Order was never placed, already canceled, or filled."
BAD_TRIGGER_PX: Final = "Invalid TP/SL price."
DUPLICATE_NONCE: Final = "Invalid nonce: duplicate nonce"
NONCE_TOO_LOW: Final = "Invalid nonce: nonce too low, below the 100 kept for this signer"
NONCE_OUT_OF_WINDOW: Final = (
    "Invalid nonce: nonce must be within (now - 2 days, now + 1 day) in milliseconds"
)
ACTION_EXPIRED: Final = "Action expired: expiresAfter has passed"
AGENT_NOT_ALLOWED: Final = (
    "API Wallets may not withdraw, approve agents or approve builder fees: sign with the "
    "account's own key"
)
BUILDER_NOT_APPROVED: Final = "Builder fee has not been approved."
BUILDER_BALANCE_TOO_LOW: Final = "Builder has insufficient balance to be approved."


def min_value_text(spec: MarketSpec) -> str:
    return f"Order must have minimum value of ${format_usd(spec.min_order_value)}."


def post_only_text(state: StateReader, market: int) -> str:
    """Hyperliquid's post-only refusal, with the book's best bid and ask now."""
    spec = state.markets[market].spec
    book = state.markets[market].book
    bid, ask = book.best_bid(), book.best_ask()
    bid_text = "" if bid is None else format_px(spec, bid)
    ask_text = "" if ask is None else format_px(spec, ask)
    return f"Post only order would have immediately matched, bbo was {bid_text}@{ask_text}."


def unknown_user_text(address: bytes) -> str:
    return f"User or API Wallet {format_address(address)} does not exist."


def order_error(text: str, asset: int) -> str:
    """A per-order error text as Hyperliquid words it: ``<text> asset=<id>``."""
    return f"{text} asset={asset}"


_REASON_TEXTS: Mapping[Reject, str] = {
    Reject.UNKNOWN_MARKET: "Invalid asset.",
    Reject.INVALID_SIZE: INVALID_SIZE,
    Reject.SIZE_OFF_LOT: INVALID_SIZE,
    Reject.SIZE_TOO_LARGE: INVALID_SIZE,
    Reject.INVALID_PRICE: INVALID_PRICE,
    Reject.PRICE_TOO_LARGE: INVALID_PRICE,
    Reject.PRICE_OFF_TICK: TICK_SIZE,
    Reject.INVALID_ORDER_TYPE: "Invalid order type.",
    Reject.INVALID_TRIGGER: BAD_TRIGGER_PX,
    Reject.INVALID_LEVERAGE: "Invalid leverage value.",
    Reject.INVALID_AMOUNT: "Invalid amount.",
    Reject.ALREADY_EXPIRED: "Order expired before it was placed.",
    Reject.INVALID_TIME: "Invalid scheduled cancel time: it must be in the future.",
    Reject.UNKNOWN_ORDER: MISSING_ORDER,
    Reject.NOT_ORDER_OWNER: MISSING_ORDER,
    Reject.UNKNOWN_CLIENT_ID: MISSING_ORDER,
    Reject.DUPLICATE_CLIENT_ID: "Order has a cloid already used by an open order.",
    Reject.UNKNOWN_ACCOUNT: INSUFFICIENT_MARGIN,
    Reject.TOO_MANY_ORDERS: "Too many open orders.",
    Reject.NO_MARK_PRICE: "No oracle price for this asset yet.",
    Reject.MODE_CHANGE_WITH_POSITION: "Cannot switch leverage type with open position.",
    Reject.NOT_ISOLATED: "Cannot update margin of a position that is not isolated.",
    Reject.INSUFFICIENT_MARGIN: INSUFFICIENT_MARGIN,
    Reject.REDUCE_ONLY_WOULD_INCREASE: REDUCE_ONLY,
    Reject.INSUFFICIENT_COLLATERAL: "Insufficient balance for withdrawal.",
    Reject.WITHDRAWALS_PAUSED: "Withdrawals are paused while settlement catches up.",
    Reject.FOK_NOT_FILLED: IOC_CANCEL,
    Reject.UNKNOWN_AGENT: "User or API Wallet does not exist.",
    Reject.AGENT_EXPIRED: "API Wallet has expired.",
    Reject.AGENT_NOT_ALLOWED: AGENT_NOT_ALLOWED,
    Reject.AGENT_TAKEN: "Agent address is already an API Wallet of another user.",
    Reject.NONCE_ALREADY_USED: DUPLICATE_NONCE,
    Reject.NONCE_TOO_LOW: NONCE_TOO_LOW,
    Reject.NONCE_OUT_OF_WINDOW: NONCE_OUT_OF_WINDOW,
    Reject.INTENT_EXPIRED: ACTION_EXPIRED,
    Reject.INVALID_BUILDER_FEE: (
        "Invalid builder fee: an order pays at most 0.1% (f at most 100 tenths of a basis "
        "point) and an approval allows at most 1%."
    ),
    Reject.BUILDER_NOT_APPROVED: BUILDER_NOT_APPROVED,
    Reject.BUILDER_FEE_ABOVE_APPROVED: (
        "Builder fee is above the maximum the user approved for this builder."
    ),
    Reject.BUILDER_BALANCE_TOO_LOW: BUILDER_BALANCE_TOO_LOW,
}


def reject_text(reason: int) -> str:
    """Hyperliquid's text for an engine rejection reason (post-only needs the book: see
    :func:`post_only_text`)."""
    try:
        known = Reject(reason)
    except ValueError:
        return f"Rejected (reason {reason})."
    text = _REASON_TEXTS.get(known)
    if text is None:
        return f"Rejected: {known.name.lower().replace('_', ' ')}."
    return text
