"""Integer fixed-point units: exact decimal strings at the edges, rounding directions inside."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncdex.types.numeric import (
    PPM,
    DecimalFormatError,
    ceil_div,
    floor_div,
    format_scaled,
    format_usdc,
    median_low,
    mul_ppm_down,
    mul_ppm_up,
    parse_scaled,
)

# ------------------------------------------------------------------ parse_scaled


@pytest.mark.parametrize(
    ("text", "decimals", "expected"),
    [
        pytest.param("1.5", 6, 1_500_000, id="fraction"),
        pytest.param("0.000001", 6, 1, id="smallest_unit"),
        pytest.param("60000", 1, 600_000, id="integer_with_price_decimals"),
        pytest.param("-2.25", 2, -225, id="negative"),
        pytest.param("1.000000", 6, 1_000_000, id="trailing_zeros_within_the_limit"),
        pytest.param("1.50000000", 2, 150, id="trailing_zeros_beyond_the_limit_are_exact"),
        pytest.param("1e3", 0, 1_000, id="exponent"),
        pytest.param("1E-6", 6, 1, id="negative_exponent_within_the_limit"),
        pytest.param("-0", 3, 0, id="negative_zero"),
        pytest.param("0", 0, 0, id="zero"),
        pytest.param("12345678901234567890", 0, 12345678901234567890, id="beyond_64_bits"),
        pytest.param(
            "123456789012345678901234567890.123456",
            6,
            123456789012345678901234567890123456,
            id="more_digits_than_the_default_decimal_precision",
        ),
    ],
)
def test_parse_scaled_is_exact(text: str, decimals: int, expected: int) -> None:
    assert parse_scaled(text, decimals) == expected


@pytest.mark.parametrize(
    ("text", "decimals"),
    [
        pytest.param("1.0000001", 6, id="one_decimal_too_many"),
        pytest.param("0.5", 0, id="fraction_of_a_whole_unit"),
        pytest.param("1E-7", 6, id="exponent_below_the_limit"),
        pytest.param("60000.05", 1, id="price_off_its_decimals"),
        pytest.param("12345678901234567890123.4567891", 6, id="long_number_one_decimal_too_many"),
    ],
)
def test_parse_scaled_refuses_excess_decimals(text: str, decimals: int) -> None:
    with pytest.raises(DecimalFormatError, match="decimals"):
        parse_scaled(text, decimals)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1,5", "0x10", "--1", "1e", "NaN", "sNaN"])
def test_parse_scaled_refuses_what_is_not_a_decimal_number(text: str) -> None:
    with pytest.raises(DecimalFormatError):
        parse_scaled(text, 6)


@pytest.mark.parametrize("text", ["Infinity", "-inf", "inf"])
def test_parse_scaled_refuses_infinities(text: str) -> None:
    with pytest.raises(DecimalFormatError, match="finite"):
        parse_scaled(text, 6)


def test_decimal_format_error_is_a_value_error() -> None:
    # callers at the edge catch ValueError to answer with a typed refusal
    assert issubclass(DecimalFormatError, ValueError)


# ------------------------------------------------------------------ format_scaled


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        pytest.param(1_500_000, 6, "1.5", id="trailing_zeros_dropped"),
        pytest.param(1, 6, "0.000001", id="leading_zeros_kept"),
        pytest.param(-225, 2, "-2.25", id="negative"),
        pytest.param(-5, 2, "-0.05", id="negative_below_one"),
        pytest.param(600_000, 1, "60000", id="whole_number_has_no_point"),
        pytest.param(0, 6, "0", id="zero"),
        pytest.param(42, 0, "42", id="no_decimals"),
        pytest.param(10**30 + 1, 6, "1000000000000000000000000.000001", id="large"),
    ],
)
def test_format_scaled(value: int, decimals: int, expected: str) -> None:
    assert format_scaled(value, decimals) == expected


def test_format_usdc_uses_six_decimals() -> None:
    assert format_usdc(12_345_678) == "12.345678"
    assert format_usdc(-1_000_000) == "-1"


@given(st.integers(-(10**40), 10**40), st.integers(0, 18))
def test_format_then_parse_round_trips(value: int, decimals: int) -> None:
    assert parse_scaled(format_scaled(value, decimals), decimals) == value


@given(st.integers(-(10**20), 10**20), st.integers(0, 12))
def test_format_is_canonical(value: int, decimals: int) -> None:
    text = format_scaled(value, decimals)
    assert not text.startswith("+") and "e" not in text.lower()
    if "." in text:
        whole, fraction = text.split(".")
        assert fraction and not fraction.endswith("0") and len(fraction) <= decimals
    else:
        whole = text
    assert whole.lstrip("-") == str(abs(value) // 10**decimals)


# ------------------------------------------------------------------ rounding helpers


@pytest.mark.parametrize(
    ("numerator", "denominator", "ceil", "floor"),
    [
        (7, 2, 4, 3),
        (-7, 2, -3, -4),
        (6, 3, 2, 2),
        (-6, 3, -2, -2),
        (0, 5, 0, 0),
        (1, 10**18, 1, 0),
    ],
)
def test_ceil_and_floor_division(numerator: int, denominator: int, ceil: int, floor: int) -> None:
    assert ceil_div(numerator, denominator) == ceil
    assert floor_div(numerator, denominator) == floor


@given(st.integers(-(10**30), 10**30), st.integers(1, 10**12))
def test_ceil_and_floor_bracket_the_exact_quotient(numerator: int, denominator: int) -> None:
    up, down = ceil_div(numerator, denominator), floor_div(numerator, denominator)
    assert down * denominator <= numerator <= up * denominator
    assert up - down == (0 if numerator % denominator == 0 else 1)


@pytest.mark.parametrize(
    ("amount", "ppm", "up", "down"),
    [
        (1_000_000, 450, 450, 450),
        (1_000_001, 450, 451, 450),
        (1, 1, 1, 0),
        (0, 999_999, 0, 0),
        (-1_000_001, 450, -450, -451),  # signs keep the directions: up is towards +infinity
    ],
)
def test_ppm_multiplication_rounding(amount: int, ppm: int, up: int, down: int) -> None:
    assert mul_ppm_up(amount, ppm) == up
    assert mul_ppm_down(amount, ppm) == down


@given(st.integers(-(10**24), 10**24), st.integers(0, 2 * PPM))
def test_ppm_up_and_down_bracket_the_exact_product(amount: int, ppm: int) -> None:
    up, down = mul_ppm_up(amount, ppm), mul_ppm_down(amount, ppm)
    assert down * PPM <= amount * ppm <= up * PPM
    assert up - down in (0, 1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5], 5),
        ([3, 1, 2], 2),
        ([4, 1, 3, 2], 2),  # even count: the lower of the two middle values, no averaging
        ([7, 7, 1, 9], 7),
    ],
)
def test_median_low(values: list[int], expected: int) -> None:
    assert median_low(values) == expected


@given(st.lists(st.integers(), min_size=1, max_size=20))
def test_median_low_is_an_element_with_at_least_half_above_it(values: list[int]) -> None:
    median = median_low(values)
    assert median in values
    assert sum(v <= median for v in values) >= (len(values) + 1) // 2
    assert sum(v >= median for v in values) >= len(values) // 2 + 1
