"""Which engine runs: native whenever it is built, else the reference with a warning; an
explicit choice is honoured or refused, never silently replaced."""

from __future__ import annotations

import pytest

import asyncdex.engine.build as build
from asyncdex.engine.build import EngineUnavailable, build_engine, choose_engine
from asyncdex.engine.native import native_available
from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import Deposit, PlaceOrder, PublishOraclePrice
from asyncdex.types.market import EngineConfig, MarketSpec

PUBLISHER = b"\x0f" * 20
TRADER = b"\x0a" * 20
CONFIG = EngineConfig(
    (MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1, min_order_value=1_000_000),),
    oracle_publishers=(PUBLISHER,),
)


def test_without_the_extension_the_reference_runs_with_a_warning_naming_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(build, "native_available", lambda: False)
    monkeypatch.setattr(build, "native_unavailable_reason", lambda: "no compiler at install")
    kind, warning = choose_engine(None)
    assert kind == "reference"
    assert warning is not None and "no compiler at install" in warning
    assert choose_engine("reference") == ("reference", None)
    with pytest.raises(EngineUnavailable, match="no compiler at install"):
        choose_engine("native")
    with pytest.raises(EngineUnavailable):
        build_engine("native", CONFIG)


def test_invalid_engine_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reference, native"):
        choose_engine("fast")
    with pytest.raises(ValueError, match="reference, native"):
        build_engine("fast", CONFIG)


@pytest.mark.skipif(not native_available(), reason="the native engine core is not built")
def test_the_default_is_native_and_both_kinds_build_from_genesis_or_a_state() -> None:
    assert choose_engine(None) == ("native", None)
    reference = Engine(CONFIG)
    for command in (
        Deposit(TRADER, 10**12, 0),
        PublishOraclePrice(PUBLISHER, 0, 600_000),
        PlaceOrder(TRADER, 0, True, 599_000, 10),
    ):
        reference.apply(command, 1_000)
    state = restore(CONFIG, snapshot(reference.state))
    for kind in ("reference", "native"):
        assert build_engine(kind, CONFIG).kind == kind
        loaded = build_engine(kind, CONFIG, state)
        assert loaded.kind == kind
        assert loaded.state_root() == state_root(reference.state)
        assert loaded.state.orders.get(1) is not None
