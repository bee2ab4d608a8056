"""The Hyperliquid answer of an IOC on a batch-auction market, from the real engine's events:
which orders wait for the auction, and the final status built from the auction's events."""

from __future__ import annotations

from asyncdex.engine.transition import Engine
from asyncdex.gateway.hyperliquid.exchange import Slot, auction_status, waits_for_auction
from asyncdex.messages.commands import (
    AdvanceTime,
    Deposit,
    OrderType,
    PlaceOrder,
    PublishOraclePrice,
    TimeInForce,
)
from asyncdex.messages.events import Event, OrderAccepted, TradeExecuted
from asyncdex.types.market import EngineConfig, MarketSpec

ORACLE = b"\x0f" * 20
ALICE = b"\x0a" * 20
BOB = b"\x0b" * 20
INTERVAL = 200
NO_MATCH = "Order could not immediately match against any resting orders. asset=0"


def engine_with(ordering: str = "batch_auction") -> Engine:
    spec = MarketSpec(
        0,
        "ETH",
        sz_decimals=4,
        tick=1,
        lot=10,
        ordering=ordering,
        auction_interval_ms=INTERVAL if ordering == "batch_auction" else 0,
    )
    engine = Engine(EngineConfig((spec,), oracle_publishers=(ORACLE,)))
    engine.apply(Deposit(ALICE, 10**12, 0), 1)
    engine.apply(Deposit(BOB, 10**12, 1), 1)
    engine.apply(PublishOraclePrice(ORACLE, 0, 300_000), 1)
    return engine


def placed(events: list[Event]) -> int:
    (accepted,) = [e for e in events if type(e) is OrderAccepted]
    return accepted.order_id


def resting(order_id: int) -> dict[str, dict[str, int]]:
    return {"resting": {"oid": order_id}}


def test_an_ioc_that_waits_is_answered_filled_even_when_the_auction_names_it_maker() -> None:
    engine = engine_with()
    # the IOC arrives first, so of the pair the auction trades it is the older: the maker
    ioc = PlaceOrder(ALICE, 0, True, 301_000, 500, TimeInForce.IOC)
    order_id = placed(engine.apply(ioc, 10))
    assert waits_for_auction(engine.state, ioc, resting(order_id)) == order_id
    engine.apply(PlaceOrder(BOB, 0, False, 300_000, 300), 20)
    auction = engine.apply(AdvanceTime(), INTERVAL)
    assert order_id not in engine.state.orders  # filled 0.03 ETH, the rest cancelled
    assert [e.maker_order for e in auction if type(e) is TradeExecuted] == [order_id]
    status = auction_status(engine.state, Slot("order", 0, 0, client_id=7), order_id, auction)
    assert status == {
        "filled": {
            "totalSz": "0.03",
            "avgPx": "3000",
            "oid": order_id,
            "cloid": "0x" + (7).to_bytes(16, "big").hex(),
        }
    }


def test_an_ioc_the_auction_leaves_unfilled_gets_the_could_not_match_error() -> None:
    engine = engine_with()
    ioc = PlaceOrder(ALICE, 0, True, 299_000, 500, TimeInForce.IOC)
    order_id = placed(engine.apply(ioc, 10))
    engine.apply(PlaceOrder(BOB, 0, False, 300_000, 300), 20)
    auction = engine.apply(AdvanceTime(), INTERVAL)
    assert order_id not in engine.state.orders
    status = auction_status(engine.state, Slot("order", 0, 0), order_id, auction)
    assert status == {"error": NO_MATCH}


def test_only_an_ioc_or_market_order_on_a_batch_auction_market_waits() -> None:
    batch = engine_with()
    gtc = PlaceOrder(ALICE, 0, True, 299_000, 500)
    assert waits_for_auction(batch.state, gtc, resting(placed(batch.apply(gtc, 10)))) == 0
    market = PlaceOrder(ALICE, 0, True, 0, 500, TimeInForce.IOC, OrderType.MARKET)
    market_id = placed(batch.apply(market, 11))
    assert waits_for_auction(batch.state, market, resting(market_id)) == market_id
    assert waits_for_auction(batch.state, market, {"filled": {"oid": market_id}}) == 0
    continuous = engine_with("continuous")
    ioc = PlaceOrder(ALICE, 0, True, 299_000, 500, TimeInForce.IOC)
    assert waits_for_auction(continuous.state, ioc, resting(1)) == 0
