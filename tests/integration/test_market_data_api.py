"""The read-only market data API against a real node process.

Two traders are funded and priced through ``/v1/system``, trade once with signed intents, and
every read endpoint is checked for its exact content; then bad parameters (400 with a
specific code), unknown markets and accounts (404), and the served OpenAPI document's
coverage of the node's routes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from asyncdex.cli.node_cmd import default_extensions, load_config
from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.gateway.openapi import openapi_document
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    Intent,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.types.hashing import keccak256
from asyncdex.types.numeric import format_scaled, format_usdc

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"market data publisher")[-20:]
MARKETS = (("BTC", 5, 10, 10), ("ETH", 4, 1, 10))  # symbol, sz_decimals, tick, lot
OPERATOR_TOKEN = "market data operator"
MAKER = LocalSigner(keccak256(b"market data maker"))
TAKER = LocalSigner(keccak256(b"market data taker"))
STRANGER = keccak256(b"market data stranger")[-20:]
DEPOSIT = 100_000 * 10**6
INDEX = 600_000  # BTC $60,000 in $0.1 units
PPM = 10**6
MINUTE_MS = 60_000


def place(trader: LocalSigner, nonce: int, is_buy: bool, price: int, size: int,
          tif: TimeInForce) -> dict[str, Any]:  # fmt: skip
    intent: Intent = PlaceOrder(
        trader.address, nonce, 0, 0, is_buy, price, size, OrderType.LIMIT, tif, False,
        NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
    )  # fmt: skip
    return signed_intent_to_json(sign_intent(trader, DOMAIN, intent))


def wait_applied(node: RunningNode) -> dict[str, Any]:
    for _ in range(400):
        status = node.status()
        if status["appliedSeq"] == status["lastSeq"]:
            return status
        time.sleep(0.025)
    raise AssertionError(f"the engine did not catch up: {status}")


def get_json(node: RunningNode, path: str, status: int = 200) -> Any:
    result = node.get(path)
    assert result.status == status, (path, result.status, result.body)
    return result.json()


@pytest.fixture
def traded_node(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> RunningNode:
    """A node where MAKER rests two BTC bids and TAKER sells into the better one."""
    config_path = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    node = node_launcher(tmp_path / "data", config_path, operator_token=OPERATOR_TOKEN).start()
    setup = node.post_json(
        "/v1/system",
        {
            "commands": [
                {"type": "deposit", "account": "0x" + MAKER.address.hex(), "amount": DEPOSIT,
                 "l1Index": 0},
                {"type": "deposit", "account": "0x" + TAKER.address.hex(), "amount": DEPOSIT,
                 "l1Index": 1},
                {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0,
                 "price": INDEX},
            ]
        },
        OPERATOR_TOKEN,
    )  # fmt: skip
    assert setup.status == 200, setup.body
    nonce = time.time_ns() // 1_000_000
    for document in (
        place(MAKER, nonce, True, 599_990, 20, TimeInForce.GTC),
        place(MAKER, nonce + 1, True, 599_900, 30, TimeInForce.GTC),
        place(TAKER, nonce + 2, False, 599_990, 20, TimeInForce.IOC),
    ):
        result = node.post_json("/v1/intents", document)
        assert result.status == 200, result.body
    wait_applied(node)
    return node


def test_every_read_endpoint_shows_the_trade(traded_node: RunningNode) -> None:
    node = traded_node
    status = wait_applied(node)
    notional = 599_990 * 20  # micro-USDC
    maker_fee = -(-notional * 150 // PPM)
    taker_fee = -(-notional * 450 // PPM)

    markets = get_json(node, "/v1/markets")
    assert markets["seq"] == status["appliedSeq"]
    btc, eth = markets["markets"]
    assert (btc["symbol"], btc["marketId"], btc["szDecimals"]) == ("BTC", 0, 5)
    assert (btc["tick"], btc["lot"], btc["minOrderValue"]) == ("1", "0.0001", "10")
    assert (btc["markPrice"], btc["indexPrice"]) == ("60000", "60000")
    assert (btc["bestBid"], btc["bestAsk"]) == ("59990", None)
    assert btc["fundingRatePpb"] == 0
    assert (eth["symbol"], eth["markPrice"], eth["tick"]) == ("ETH", None, "0.01")

    book = get_json(node, "/v1/markets/BTC/book?depth=5")
    assert book["seq"] == status["appliedSeq"]
    assert book["bids"] == [{"price": "59990", "size": "0.0003", "orders": 1}]
    assert book["asks"] == []
    assert get_json(node, "/v1/markets/ETH/book")["bids"] == []

    trades = get_json(node, "/v1/markets/BTC/trades?limit=10")["trades"]
    assert len(trades) == 1
    trade = trades[0]
    assert (trade["price"], trade["size"], trade["side"]) == ("59999", "0.0002", "sell")
    assert trade["seq"] == status["appliedSeq"]
    assert trade["makerOrder"] == 1 and trade["takerOrder"] == 3

    candles = get_json(node, "/v1/markets/BTC/candles?interval=1m")["candles"]
    assert candles == [
        {"start": trade["time"] - trade["time"] % MINUTE_MS, "open": "59999", "high": "59999",
         "low": "59999", "close": "59999", "volume": "0.0002", "trades": 1}
    ]  # fmt: skip
    hourly = get_json(node, "/v1/markets/BTC/candles?interval=1h")["candles"]
    assert [c["start"] for c in hourly] == [trade["time"] - trade["time"] % (60 * MINUTE_MS)]
    later = trade["time"] + 60 * MINUTE_MS
    assert get_json(node, f"/v1/markets/BTC/candles?start={later}")["candles"] == []
    assert get_json(node, "/v1/markets/BTC/funding")["funding"] == []

    maker = get_json(node, "/v1/accounts/0x" + MAKER.address.hex())
    maker_collateral = DEPOSIT - notional - maker_fee
    assert maker["collateral"] == format_micro(maker_collateral)
    assert maker["equity"] == format_micro(maker_collateral + 20 * INDEX)
    [position] = maker["positions"]
    assert (position["symbol"], position["size"], position["entryPrice"]) == (
        "BTC", "0.0002", "59999",
    )  # fmt: skip
    assert position["unrealizedPnl"] == format_micro(20 * INDEX - notional)
    assert position["marginUsed"] == format_micro(-(-20 * INDEX * 50_000 // PPM))
    assert position["liquidationPrice"] is None  # far more collateral than the position
    assert maker["crossMaintenanceMargin"] == format_micro(-(-20 * INDEX * 25_000 // PPM))

    taker = get_json(node, "/v1/accounts/0x" + TAKER.address.hex())
    taker_collateral = DEPOSIT + notional - taker_fee
    assert taker["collateral"] == format_micro(taker_collateral)
    [short] = taker["positions"]
    assert short["size"] == "-0.0002"
    # the documented cross formula, with nothing else held: a short is rounded down
    liquidation = (taker_collateral * PPM) // (20 * 25_000 + 20 * PPM)
    assert short["liquidationPrice"] == format_scaled_price(liquidation)

    orders = get_json(node, "/v1/accounts/0x" + MAKER.address.hex() + "/orders")["orders"]
    assert [(o["orderId"], o["side"], o["price"], o["size"], o["origSize"]) for o in orders] == [
        (2, "buy", "59990", "0.0003", "0.0003")
    ]
    assert get_json(node, "/v1/accounts/0x" + TAKER.address.hex() + "/orders")["orders"] == []

    [maker_fill] = get_json(node, "/v1/accounts/0x" + MAKER.address.hex() + "/fills")["fills"]
    assert (maker_fill["side"], maker_fill["liquidity"], maker_fill["orderId"]) == (
        "buy", "maker", 1,
    )  # fmt: skip
    assert (maker_fill["price"], maker_fill["size"]) == ("59999", "0.0002")
    assert maker_fill["fee"] == format_micro(maker_fee)
    [taker_fill] = get_json(node, "/v1/accounts/0x" + TAKER.address.hex() + "/fills?limit=1")[
        "fills"
    ]
    assert (taker_fill["side"], taker_fill["liquidity"], taker_fill["orderId"]) == (
        "sell", "taker", 3,
    )  # fmt: skip
    assert taker_fill["fee"] == format_micro(taker_fee)


def format_micro(value: int) -> str:
    return format_usdc(value)


def format_scaled_price(value: int) -> str:
    return format_scaled(value, 1)  # BTC prices have 6 - 5 decimals


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/markets/BTC/book?depth=0", 400, "invalid_depth"),
        ("/v1/markets/BTC/book?depth=101", 400, "invalid_depth"),
        ("/v1/markets/BTC/book?depth=-1", 400, "invalid_depth"),
        ("/v1/markets/BTC/book?depth=%EF%BC%91", 400, "invalid_depth"),  # fullwidth digit 1
        ("/v1/markets/BTC/book?depth=1&depth=2", 400, "duplicate_parameter"),
        ("/v1/markets/BTC/book?deep=1", 400, "unknown_parameter"),
        ("/v1/markets/BTC/trades?limit=1001", 400, "invalid_limit"),
        ("/v1/markets/BTC/trades?limit=ten", 400, "invalid_limit"),
        ("/v1/markets/BTC/candles?interval=2m", 400, "invalid_interval"),
        ("/v1/markets/BTC/candles?start=10&end=9", 400, "invalid_time_range"),
        ("/v1/markets/BTC/candles?start=99999999999999999999", 400, "invalid_start"),
        ("/v1/markets/BTC/funding?end=x", 400, "invalid_end"),
        ("/v1/markets?x=1", 400, "unknown_parameter"),
        ("/v1/accounts/0x1234", 400, "invalid_address"),
        ("/v1/accounts/0x" + "g" * 40 + "/orders", 400, "invalid_address"),
        ("/v1/accounts/0x" + MAKER.address.hex() + "/fills?limit=0", 400, "invalid_limit"),
        ("/v1/markets/DOGE/book", 404, "unknown_market"),
        ("/v1/markets/btc/trades", 404, "unknown_market"),
        ("/v1/markets/DOGE/candles", 404, "unknown_market"),
        ("/v1/markets/DOGE/funding", 404, "unknown_market"),
        ("/v1/accounts/0x" + STRANGER.hex(), 404, "unknown_account"),
        ("/v1/accounts/0x" + STRANGER.hex() + "/orders", 404, "unknown_account"),
        ("/v1/accounts/0x" + STRANGER.hex() + "/fills", 404, "unknown_account"),
    ],
)
def test_invalid_parameters_get_a_specific_error(
    traded_node: RunningNode, path: str, status: int, code: str
) -> None:
    body = get_json(traded_node, path, status)
    assert body["code"] == code
    assert isinstance(body["error"], str) and body["error"]


def test_openapi_document_describes_every_route(traded_node: RunningNode) -> None:
    document = get_json(traded_node, "/v1/openapi.json")
    assert document["openapi"].startswith("3.0")
    described = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert described == {
        ("POST", "/v1/intents"),
        ("POST", "/v1/sealed"),
        ("GET", "/v1/intents/{intentId}"),
        ("GET", "/v1/seq/{seq}"),
        ("GET", "/v1/withdrawals/{withdrawalId}/proof"),
        ("POST", "/v1/system"),
        ("POST", "/v1/dev/deposit"),
        ("POST", "/v1/dev/faucet"),
        ("POST", "/v1/dev/claim/{withdrawalId}"),
        ("GET", "/v1/status"),
        ("GET", "/v1/health"),
        ("GET", "/v1/ready"),
        ("GET", "/metrics"),
        ("GET", "/v1/oracle"),
        ("POST", "/v1/oracle"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/venue"),
        ("GET", "/v1/markets"),
        ("GET", "/v1/markets/{symbol}/book"),
        ("GET", "/v1/markets/{symbol}/trades"),
        ("GET", "/v1/markets/{symbol}/candles"),
        ("GET", "/v1/markets/{symbol}/funding"),
        ("GET", "/v1/accounts/{address}"),
        ("GET", "/v1/accounts/{address}/orders"),
        ("GET", "/v1/accounts/{address}/fills"),
    }
    schemas = document["components"]["schemas"]
    place_order = schemas["SignedPlaceOrder"]
    assert place_order["additionalProperties"] is False
    assert set(place_order["required"]) == set(place_order["properties"])
    assert {"kind", "account", "nonce", "clientId", "signature"} <= set(place_order["required"])


def test_openapi_document_lists_exactly_the_routes_the_node_serves(
    tmp_path: Path, venue_config: Callable[..., Path]
) -> None:
    config, _ = load_config(venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER]))

    async def served_routes() -> set[tuple[str, str]]:
        node = Node(
            NodeSettings(tmp_path / "data", config, DOMAIN, extensions=default_extensions())
        )
        await node.start()
        try:
            runner = node._runner  # the node exposes no app; its router is what is served
            assert runner is not None
            return {
                (route.method, route.resource.canonical)
                for route in runner.app.router.routes()
                if route.method != "HEAD" and route.resource is not None
            }
        finally:
            await node.stop()

    def normalized(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)  # path parameter names are free to differ

    # WebSockets and the Hyperliquid API have their own documents (docs/streams.md,
    # docs/hyperliquid.md): no OpenAPI operation describes a socket or Hyperliquid's shapes;
    # the trading page and its assets are no API (docs/web.md)
    elsewhere = {("GET", "/v1/ws"), ("GET", "/ws"), ("POST", "/info"), ("POST", "/exchange")}
    elsewhere |= {("GET", "/"), ("GET", "/assets/{}")}
    served = {(method, normalized(path)) for method, path in asyncio.run(served_routes())}
    assert elsewhere <= served
    served -= elsewhere
    described = {
        (method.upper(), normalized(path))
        for path, item in openapi_document()["paths"].items()
        for method in item
    }
    assert described == served
