"""Hyperliquid's price and size rules, exact decimals, cloids and error texts."""

from __future__ import annotations

import pytest
from hyperliquid.utils.signing import float_to_wire
from hyperliquid.utils.types import Cloid

from asyncdex.engine.state import State
from asyncdex.gateway.hyperliquid.common import (
    INSUFFICIENT_MARGIN,
    INVALID_PRICE,
    INVALID_SIZE,
    MISSING_ORDER,
    TICK_SIZE,
    OrderRuleError,
    format_cloid,
    format_px,
    format_sz,
    format_usd,
    market_of_asset,
    market_of_coin,
    min_value_text,
    order_error,
    parse_cloid,
    parse_px,
    parse_sz,
    parse_usd,
    parse_user,
    reject_text,
    significant_figures,
)
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import DecimalFormatError

BTC = MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=1)  # prices in $0.1, tick $1
ETH = MarketSpec(1, "ETH", sz_decimals=4, tick=1, lot=10)  # prices in $0.01, lot 0.001
DOGE = MarketSpec(2, "DOGE", sz_decimals=0, tick=1, lot=1)  # prices in $0.000001


@pytest.mark.parametrize(
    ("spec", "text", "units"),
    [
        (BTC, "60000", 600_000),
        (BTC, "123456", 1_234_560),  # an integer price may have more than 5 figures
        (BTC, "60001", 600_010),
        (ETH, "3000.5", 300_050),
        (ETH, "3000.50", 300_050),  # trailing zeros are not figures
        (ETH, "0.01", 1),
        (DOGE, "0.12345", 123_450),
        (DOGE, "0.000001", 1),
    ],
)
def test_prices_that_follow_every_rule_parse_exactly(
    spec: MarketSpec, text: str, units: int
) -> None:
    assert parse_px(spec, text) == units
    assert parse_px(spec, float_to_wire(float(text))) == units  # what the SDK sends


@pytest.mark.parametrize(
    ("spec", "text", "error"),
    [
        (BTC, "60000.5", TICK_SIZE),  # on the unit grid, off the $1 tick
        (BTC, "60000.05", TICK_SIZE),  # more than 6 - 5 decimals
        (ETH, "3000.55", TICK_SIZE),  # 6 significant figures
        (DOGE, "0.123456", TICK_SIZE),  # 6 significant figures
        (DOGE, "1.0000001", TICK_SIZE),  # more than 6 decimals
        (BTC, "0", INVALID_PRICE),
        (BTC, "-60000", TICK_SIZE),
        (BTC, "6e4", TICK_SIZE),
        (BTC, " 60000", TICK_SIZE),
        (BTC, "60000.", TICK_SIZE),
        (BTC, "\uff10", TICK_SIZE),  # a fullwidth digit zero
        (BTC, 60000, TICK_SIZE),  # a number, not a string
    ],
)
def test_prices_that_break_a_rule_are_refused_with_hyperliquids_text(
    spec: MarketSpec, text: object, error: str
) -> None:
    with pytest.raises(OrderRuleError) as refused:
        parse_px(spec, text)
    assert str(refused.value) == error


def test_sizes_follow_sz_decimals_and_the_lot() -> None:
    assert parse_sz(BTC, "0.00123") == 123
    assert parse_sz(ETH, "1.5") == 15_000
    assert parse_sz(DOGE, "42") == 42
    for spec, text in [(BTC, "0.000001"), (ETH, "0.0001"), (DOGE, "0.5"), (BTC, "0"), (BTC, "-1")]:
        with pytest.raises(OrderRuleError) as refused:
            parse_sz(spec, text)
        assert str(refused.value) == INVALID_SIZE, text


def test_significant_figures_ignore_leading_and_trailing_zeros() -> None:
    assert significant_figures("0.00120") == 2
    assert significant_figures("60000") == 1
    assert significant_figures("60000.5") == 6
    assert significant_figures("1.2345") == 5


def test_formatting_round_trips_without_trailing_zeros() -> None:
    assert format_px(BTC, 600_000) == "60000"
    assert format_px(BTC, 600_005) == "60000.5"
    assert format_sz(BTC, 100) == "0.001"
    assert format_sz(ETH, 0) == "0"
    assert format_usd(12_500_000) == "12.5"
    assert parse_usd("12.5") == 12_500_000
    for text in ["12.0000001", "-1", "1e3"]:
        with pytest.raises(DecimalFormatError):
            parse_usd(text)


def test_cloids_are_the_sdks_128_bit_ids() -> None:
    cloid = Cloid.from_int(2**127 + 5)
    assert parse_cloid(cloid.to_raw()) == 2**127 + 5
    assert format_cloid(2**127 + 5) == cloid.to_raw()
    assert format_cloid(0) is None
    for bad in ["0x" + "00" * 16, "0x123", 5, "0x" + "g" * 32]:
        with pytest.raises(ValueError):
            parse_cloid(bad)


def test_assets_are_market_positions_and_coins_are_symbols() -> None:
    state = State(EngineConfig((BTC, ETH, DOGE)))
    assert market_of_asset(state, 1) is state.markets[1]
    assert market_of_asset(state, 3) is None
    assert market_of_asset(state, True) is None  # a bool is not an asset id
    assert market_of_asset(state, 10_000) is None  # spot: none here
    market = market_of_coin(state, "DOGE")
    assert market is not None and market.spec.market_id == 2
    assert market_of_coin(state, "XRP") is None
    assert parse_user("0x" + "Ab" * 20) == bytes([0xAB] * 20)
    with pytest.raises(ValueError):
        parse_user("0x1234")


def test_error_texts_are_hyperliquids() -> None:
    assert reject_text(Reject.INSUFFICIENT_MARGIN) == INSUFFICIENT_MARGIN
    assert reject_text(Reject.NOT_ORDER_OWNER) == MISSING_ORDER  # another's order reads as none
    assert reject_text(Reject.NONCE_ALREADY_USED) == "Invalid nonce: duplicate nonce"
    assert order_error(MISSING_ORDER, 3).endswith(" asset=3")
    assert min_value_text(BTC) == "Order must have minimum value of $10."
    assert reject_text(9999).startswith("Rejected")
