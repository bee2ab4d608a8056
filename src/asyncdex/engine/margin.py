"""Margin math: small pure functions over integers. No state, no I/O.

Invariants:
- Notionals are ``price * size`` in micro-USDC, exact (see ``asyncdex.types.numeric``).
- Requirements round up, what an account may take out rounds down.
- ``worst_exposure`` is the largest absolute position the account could reach in a market
  if every one of its resting (non reduce-only) orders on one side filled: resting orders
  are margined as if filled, so an account can never rest more than it could carry.
"""

from __future__ import annotations

from asyncdex.types.numeric import PPB, PPM

# Builder fees (Hyperliquid's builder codes) are in tenths of a basis point of notional.
BUILDER_FEE_UNIT = 100_000  # tenths of a basis point in one whole (10 = 0.01%)
MAX_BUILDER_FEE = 100  # on a perp order: 0.1%, Hyperliquid's cap for perps
MAX_BUILDER_APPROVAL = 1_000  # an approval may name up to 1%, Hyperliquid's spot cap
MIN_BUILDER_ACCOUNT_VALUE = 100_000_000  # micro-USDC a builder must hold to be approved


def initial_fraction_ppm(market_initial_ppm: int, leverage: int) -> int:
    """The initial margin fraction an account uses: the market's floor, or 1/leverage (up)."""
    by_leverage = -(-PPM // leverage)
    return by_leverage if by_leverage > market_initial_ppm else market_initial_ppm


def worst_exposure(size: int, open_buy: int, open_sell: int) -> int:
    long_case = size + open_buy
    short_case = open_sell - size
    long_abs = long_case if long_case >= 0 else -long_case
    short_abs = short_case if short_case >= 0 else -short_case
    return long_abs if long_abs > short_abs else short_abs


def adverse_cost(is_buy: bool, price: int, size: int, mark: int) -> int:
    """What filling at ``price`` loses at once against the mark (0 when it fills better)."""
    diff = (price - mark) if is_buy else (mark - price)
    return diff * size if diff > 0 else 0


def fee_charged(notional: int, fee_ppm: int) -> int:
    """A fee for ``notional``: charges round up, rebates (negative rates) round toward zero."""
    if fee_ppm >= 0:
        return -(-(notional * fee_ppm) // PPM)
    return -((notional * -fee_ppm) // PPM)


def builder_fee_charged(notional: int, fee_tenths_bp: int) -> int:
    """A builder fee for ``notional``: rounded up, as every charge (never negative)."""
    return -(-(notional * fee_tenths_bp) // BUILDER_FEE_UNIT)


def bankruptcy_price(size: int, mark: int, equity: int) -> int:
    """The price at which closing ``size`` leaves ``equity`` at zero, rounded towards solvency.

    For a long, selling at ``p`` changes equity by ``size * (p - mark)``; the bankruptcy price
    is rounded up so the close never costs more than the equity. For a short, rounded down.
    """
    if size > 0:
        return mark - equity // size
    quantity = -size
    return mark + equity // quantity


def funding_payment(size: int, rate_ppb: int, index_price: int) -> int:
    """Funding an account pays (positive) or receives (negative) for one interval.

    Longs pay when the rate is positive. A payment rounds up, a receipt rounds down; the
    difference (dust) goes to the insurance fund so the books balance exactly.
    """
    owed = size * rate_ppb * index_price
    return -(-owed // PPB)
