"""Margin math: table-driven cases with hand-computed answers, then the rounding rules as
properties (what an account owes rounds up, what it receives rounds down).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncdex.engine.margin import (
    adverse_cost,
    bankruptcy_price,
    fee_charged,
    funding_payment,
    initial_fraction_ppm,
    worst_exposure,
)
from asyncdex.types.numeric import PPB, PPM

# ------------------------------------------------------------------ initial margin fraction


@pytest.mark.parametrize(
    ("market_initial_ppm", "leverage", "expected"),
    [
        pytest.param(50_000, 20, 50_000, id="max_leverage_uses_the_market_floor"),
        pytest.param(50_000, 10, 100_000, id="10x_is_10_percent"),
        pytest.param(50_000, 3, 333_334, id="3x_rounds_the_fraction_up"),
        pytest.param(50_000, 7, 142_858, id="7x_rounds_the_fraction_up"),
        pytest.param(50_000, 1, 1_000_000, id="1x_is_fully_collateralised"),
        pytest.param(100_000, 20, 100_000, id="leverage_above_the_market_max_is_floored"),
        pytest.param(333_334, 3, 333_334, id="equal_values"),
    ],
)
def test_initial_fraction(market_initial_ppm: int, leverage: int, expected: int) -> None:
    assert initial_fraction_ppm(market_initial_ppm, leverage) == expected


@given(st.integers(1, PPM), st.integers(1, 200))
def test_initial_fraction_never_below_the_floor_or_1_over_leverage(floor: int, lev: int) -> None:
    fraction = initial_fraction_ppm(floor, lev)
    assert fraction >= floor
    assert fraction * lev >= PPM  # rounded up: never more leverage than asked for
    assert fraction == floor or (fraction - 1) * lev < PPM


# ------------------------------------------------------------------ worst exposure


@pytest.mark.parametrize(
    ("size", "open_buy", "open_sell", "expected"),
    [
        pytest.param(0, 0, 0, 0, id="flat_no_orders"),
        pytest.param(5, 0, 0, 5, id="long_only"),
        pytest.param(-5, 0, 0, 5, id="short_only"),
        pytest.param(5, 3, 0, 8, id="long_plus_bids"),
        pytest.param(5, 0, 3, 5, id="long_with_smaller_closing_asks"),
        pytest.param(5, 0, 20, 15, id="asks_flip_a_long_into_a_bigger_short"),
        pytest.param(-5, 0, 4, 9, id="short_plus_asks"),
        pytest.param(-5, 12, 0, 7, id="bids_flip_a_short_into_a_long"),
        pytest.param(0, 7, 9, 9, id="flat_larger_side_counts"),
        pytest.param(2, 10, 10, 12, id="both_sides_resting"),
    ],
)
def test_worst_exposure(size: int, open_buy: int, open_sell: int, expected: int) -> None:
    assert worst_exposure(size, open_buy, open_sell) == expected


@given(st.integers(-(10**12), 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_worst_exposure_is_the_largest_reachable_position(
    size: int, open_buy: int, open_sell: int
) -> None:
    assert worst_exposure(size, open_buy, open_sell) == max(
        abs(size + open_buy), abs(size - open_sell)
    )


# ------------------------------------------------------------------ adverse cost


@pytest.mark.parametrize(
    ("is_buy", "price", "size", "mark", "expected"),
    [
        pytest.param(True, 105, 10, 100, 50, id="buy_above_mark_loses"),
        pytest.param(True, 95, 10, 100, 0, id="buy_below_mark_costs_nothing"),
        pytest.param(False, 95, 10, 100, 50, id="sell_below_mark_loses"),
        pytest.param(False, 105, 10, 100, 0, id="sell_above_mark_costs_nothing"),
        pytest.param(True, 100, 10, 100, 0, id="at_mark"),
    ],
)
def test_adverse_cost(is_buy: bool, price: int, size: int, mark: int, expected: int) -> None:
    assert adverse_cost(is_buy, price, size, mark) == expected


# ------------------------------------------------------------------ fees


@pytest.mark.parametrize(
    ("notional", "fee_ppm", "expected"),
    [
        pytest.param(1_000_000, 450, 450, id="exact_charge"),
        pytest.param(1_000_001, 450, 451, id="charge_rounds_up"),
        pytest.param(1, 450, 1, id="a_tiny_charge_is_still_one_unit"),
        pytest.param(0, 450, 0, id="nothing_traded_nothing_charged"),
        pytest.param(1_000_000, 0, 0, id="zero_rate"),
        pytest.param(1_000_000, -20, -20, id="exact_rebate"),
        pytest.param(1_000_001, -20, -20, id="rebate_rounds_toward_zero"),
        pytest.param(49_999, -20, 0, id="a_tiny_rebate_is_nothing"),
        pytest.param(50_000, -20, -1, id="one_unit_rebate"),
    ],
)
def test_fee_charged(notional: int, fee_ppm: int, expected: int) -> None:
    assert fee_charged(notional, fee_ppm) == expected


@given(st.integers(0, 10**18), st.integers(-PPM, PPM))
def test_fees_round_in_the_protocols_favour(notional: int, fee_ppm: int) -> None:
    fee = fee_charged(notional, fee_ppm)
    exact = notional * fee_ppm  # the fee times 10^6, exactly
    assert fee * PPM >= exact  # a charge never rounds down, a rebate never rounds up
    assert fee * PPM - exact < PPM  # by less than one unit
    assert (fee >= 0) == (fee_ppm >= 0 or fee == 0)


@given(st.integers(0, 10**18), st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_taker_fee_covering_the_rebate_never_loses_the_protocol_money(
    notional: int, taker_ppm: int, rebate_ppm: int
) -> None:
    if taker_ppm >= rebate_ppm:  # the rule MarketSpec.validate enforces
        assert fee_charged(notional, taker_ppm) + fee_charged(notional, -rebate_ppm) >= 0


# ------------------------------------------------------------------ bankruptcy price


@pytest.mark.parametrize(
    ("size", "mark", "equity", "expected"),
    [
        pytest.param(10, 1_000, 500, 950, id="long_exact"),
        pytest.param(10, 1_000, 505, 950, id="long_rounds_up"),
        pytest.param(10, 1_000, -505, 1_051, id="underwater_long_rounds_up"),
        pytest.param(-10, 1_000, 500, 1_050, id="short_exact"),
        pytest.param(-10, 1_000, 505, 1_050, id="short_rounds_down"),
        pytest.param(-10, 1_000, -505, 949, id="underwater_short_rounds_down"),
        pytest.param(3, 100, 0, 100, id="no_equity_is_the_mark"),
    ],
)
def test_bankruptcy_price(size: int, mark: int, equity: int, expected: int) -> None:
    assert bankruptcy_price(size, mark, equity) == expected


@given(
    st.integers(-(10**9), 10**9).filter(bool),
    st.integers(1, 10**12),
    st.integers(-(10**15), 10**15),
)
def test_closing_at_the_bankruptcy_price_leaves_between_zero_and_one_tick_of_equity(
    size: int, mark: int, equity: int
) -> None:
    price = bankruptcy_price(size, mark, equity)
    left = equity + size * (price - mark)  # closing ``size`` at ``price`` instead of the mark
    assert 0 <= left < abs(size)


# ------------------------------------------------------------------ funding


@pytest.mark.parametrize(
    ("size", "rate_ppb", "index", "expected"),
    [
        pytest.param(100, 10_000_000, 1_000, 1_000, id="long_pays_a_positive_rate"),
        pytest.param(-100, 10_000_000, 1_000, -1_000, id="short_receives_a_positive_rate"),
        pytest.param(100, -10_000_000, 1_000, -1_000, id="long_receives_a_negative_rate"),
        pytest.param(3, 12_500, 600_000, 23, id="payer_rounds_up"),
        pytest.param(-3, 12_500, 600_000, -22, id="receiver_rounds_toward_zero"),
        pytest.param(0, 4_000_000, 600_000, 0, id="flat_pays_nothing"),
        pytest.param(5, 0, 600_000, 0, id="zero_rate"),
    ],
)
def test_funding_payment(size: int, rate_ppb: int, index: int, expected: int) -> None:
    assert funding_payment(size, rate_ppb, index) == expected


@given(
    st.lists(st.integers(1, 10**9), min_size=1, max_size=6),
    st.lists(st.integers(1, 10**9), min_size=1, max_size=6),
    st.integers(-4_000_000, 4_000_000),
    st.integers(1, 10**12),
)
def test_funding_never_pays_out_more_than_it_collects(
    longs: list[int], shorts: list[int], rate_ppb: int, index: int
) -> None:
    # make the sides balance, as positions in one market always do
    difference = sum(longs) - sum(shorts)
    if difference > 0:
        shorts.append(difference)
    elif difference < 0:
        longs.append(-difference)
    sizes = longs + [-s for s in shorts]
    payments = [funding_payment(size, rate_ppb, index) for size in sizes]
    dust = sum(payments)
    assert 0 <= dust < len(sizes)  # the dust goes to the insurance fund
    for size, payment in zip(sizes, payments, strict=True):
        exact = size * rate_ppb * index  # the payment times 10^9, exactly
        assert payment * PPB >= exact and payment * PPB - exact < PPB
