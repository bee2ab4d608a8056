"""Integer fixed-point units of asyncdex, and the conversions at the edges.

Invariants:
- Inside the engine every quantity is a Python ``int``; there is no float anywhere.
- Collateral (USDC) is counted in micro-USDC (10^-6 USDC): ``Usdc``.
- A market with ``sz_decimals = d`` counts sizes in 10^-d of the base asset (``Size``) and
  prices in 10^-(6-d) USDC per unit of base (``Price``). So ``price * size`` is a notional
  in micro-USDC *exactly*, with no rounding: the same rule as Hyperliquid's "at most
  6 - szDecimals decimals" for perpetual prices.
- Fractions (fees, margin fractions) are parts per million (``PPM``); funding rates and
  premiums are parts per billion (``PPB``).
- Every division says which way it rounds; rounding favours the protocol's solvency
  (what a trader pays rounds up, what a trader receives rounds down).

The unit names are ``NewType`` aliases: the type checker keeps them apart, and at run time
they cost nothing, which matters on the matching path.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final, NewType

Price = NewType("Price", int)
Size = NewType("Size", int)
Usdc = NewType("Usdc", int)

USDC_DECIMALS: Final = 6
PPM: Final = 1_000_000
PPB: Final = 1_000_000_000

# The engine's number bounds (the reasoning is in ``asyncdex.engine.transition``'s docstring
# and docs/engine.md). Collateral held by the venue (deposited - withdrawn) never exceeds
# MAX_COLLATERAL micro-USDC: $10^12, over ten times all the USDC in existence, below 2^60.
MAX_COLLATERAL: Final = 10**18
# A market's max_price and max_order_size are at most this, so one fill's notional
# (price * size) is at most 10^30 micro-USDC, below 2^100.
MAX_MARKET_BOUND: Final = 10**15


def ceil_div(numerator: int, denominator: int) -> int:
    """Division rounded towards +infinity (``denominator`` > 0)."""
    return -(-numerator // denominator)


def floor_div(numerator: int, denominator: int) -> int:
    """Division rounded towards -infinity (``denominator`` > 0)."""
    return numerator // denominator


def mul_ppm_up(amount: int, ppm: int) -> int:
    """``amount * ppm / 10^6`` rounded up: for what an account owes (fees, margin)."""
    return -(-(amount * ppm) // PPM)


def mul_ppm_down(amount: int, ppm: int) -> int:
    """``amount * ppm / 10^6`` rounded down: for what an account is owed."""
    return (amount * ppm) // PPM


def median_low(values: list[int]) -> int:
    """The lower median: deterministic for even counts without averaging."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


class DecimalFormatError(ValueError):
    """A decimal string at the edge could not be represented exactly in integer units."""


def parse_scaled(text: str, decimals: int) -> int:
    """Parse a decimal string into integer units of 10^-decimals, refusing any rounding."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError) as exc:
        raise DecimalFormatError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise DecimalFormatError(f"not a finite number: {text!r}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    # exact integer arithmetic on the digits: Decimal's context precision would round
    # long inputs silently before any check could see it
    shift = exponent + decimals
    magnitude = int("".join(map(str, digits)) or "0")
    if shift >= 0:
        scaled = magnitude * 10**shift
    else:
        scaled, remainder = divmod(magnitude, 10**-shift)
        if remainder:
            raise DecimalFormatError(f"{text!r} has more than {decimals} decimals")
    return -scaled if sign else scaled


def format_scaled(value: int, decimals: int) -> str:
    """Format integer units of 10^-decimals as a plain decimal string without trailing zeros."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


def format_usdc(amount: int) -> str:
    """Micro-USDC as a decimal string."""
    return format_scaled(amount, USDC_DECIMALS)
