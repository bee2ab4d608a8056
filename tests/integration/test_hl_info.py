"""Hyperliquid's published ``hyperliquid-python-sdk`` (``Info``) against a real node process.

Collateral and oracle prices enter through the operator endpoint (``/v1/system``); orders
through the native client (:class:`asyncdex.client.Client`); everything is read back
through ``hyperliquid.info.Info`` over HTTP ``POST /info`` and compared with values worked
out here from the trades: prices, sizes, fees, PnL, statuses, candles, funding.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError
from hyperliquid.utils.types import Cloid

from asyncdex.client import AgentWallet, Client, Trigger, Wallet
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intake import DEFAULT_MAX_BODY_BYTES
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(CHAIN_ID, CONTRACT)
OPERATOR_TOKEN = "hl-info-test operator"
PUBLISHER = LocalSigner(keccak256(b"hl-info-test publisher")).address
BTC_PRICE = 600_000  # $60,000.0 in $0.1
ETH_PRICE = 300_000  # $3,000.00 in $0.01
DEPOSIT = 10_000 * 10**6
TAKER_FEE = Decimal("0.00045")
MAKER_FEE = Decimal("0.00015")
DEADLINE = 30.0  # seconds to wait for an outcome the node reports asynchronously


def wallet(name: str) -> Wallet:
    return Wallet(keccak256(f"hl-info-test {name}".encode()))


ALICE = wallet("alice")
BOB = wallet("bob")


def hex_of(account: bytes) -> str:
    return "0x" + account.hex()


def write_config(path: Path, **market_fields: int) -> Path:
    """BTC (szDecimals 5, tick $0.1) and ETH (szDecimals 4, tick $0.01); a long oracle
    staleness so a slow machine never loses its mark price mid-test."""
    extra = "".join(f"{name} = {value}\n" for name, value in market_fields.items())
    markets = ""
    for symbol, sz_decimals, tick in (("BTC", 5, 1), ("ETH", 4, 1)):
        markets += (
            f'\n[[markets]]\nsymbol = "{symbol}"\nsz_decimals = {sz_decimals}\n'
            f"tick = {tick}\nlot = 1\noracle_staleness_ms = 3600000\n{extra}"
        )
    path.write_text(
        f'oracle_publishers = ["{hex_of(PUBLISHER)}"]\n\n[venue]\nchain_id = {CHAIN_ID}\n'
        f'settlement_contract = "{hex_of(CONTRACT)}"\n{markets}'
    )
    return path


@dataclass
class Venue:
    node: RunningNode
    config: Path
    l1_index: Iterator[int]

    def system(self, *commands: dict[str, Any]) -> None:
        self.node.system(OPERATOR_TOKEN, *commands)

    def deposit(self, account: bytes, amount: int = DEPOSIT) -> None:
        self.system(
            {"type": "deposit", "account": hex_of(account), "amount": amount,
             "l1Index": next(self.l1_index)}
        )  # fmt: skip

    def publish_prices(self) -> None:
        publisher = hex_of(PUBLISHER)
        self.system(
            {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": BTC_PRICE},
            {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": ETH_PRICE},
        )

    def client(self, who: Wallet) -> Client:
        return Client.from_venue_file(self.node.url, who, self.config)


def start_venue(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher], **market_fields: int
) -> Venue:
    config = write_config(tmp_path / "venue.toml", **market_fields)
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    venue = Venue(launcher.start(), config, itertools.count())
    venue.publish_prices()
    venue.deposit(ALICE.account)
    venue.deposit(BOB.account)
    return venue


@pytest.fixture
def venue(tmp_path: Path, node_launcher: Callable[..., NodeLauncher]) -> Venue:
    return start_venue(tmp_path, node_launcher)


def order_id(client: Client, receipt: Any) -> int:
    status = client.wait_for(receipt, "executed")
    assert status.rejection is None, status.events
    assert status.order_id is not None, status.events
    return status.order_id


def executed(client: Client, receipt: Any) -> Any:
    status = client.wait_for(receipt, "executed")
    assert status.rejection is None, status.events
    return status


def fee(notional: Decimal, rate: Decimal) -> Decimal:
    """A fee in USDC, rounded up to the micro-USDC as the engine charges it."""
    return (notional * rate).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)


# ---------------------------------------------------------------------------------------------


def test_meta_and_errors(venue: Venue) -> None:
    info = Info(venue.node.url, skip_ws=True)
    meta = info.meta()
    assert [(a["name"], a["szDecimals"], a["maxLeverage"]) for a in meta["universe"]] == [
        ("BTC", 5, 20),
        ("ETH", 4, 20),
    ]
    table_ids = {table_id for table_id, _ in meta["marginTables"]}
    assert all(asset["marginTableId"] in table_ids for asset in meta["universe"])
    # asset ids are positions in the universe; no spot
    assert info.coin_to_asset == {"BTC": 0, "ETH": 1}
    assert info.spot_meta() == {"universe": [], "tokens": []}
    assert info.perp_dexs() == [None]
    status = info.post("/info", {"type": "exchangeStatus"})
    assert status["specialStatuses"] is None and status["time"] > 0

    meta_ctxs, ctxs = info.meta_and_asset_ctxs()
    assert meta_ctxs == meta
    assert [ctx["oraclePx"] for ctx in ctxs] == ["60000", "3000"]
    assert [ctx["markPx"] for ctx in ctxs] == ["60000", "3000"]
    assert all(ctx["midPx"] is None and ctx["openInterest"] == "0" for ctx in ctxs)
    # with an empty book the mid falls back to the mark
    assert info.all_mids() == {"BTC": "60000", "ETH": "3000"}

    # what it cannot read: 422 with a text reason, as Hyperliquid; the SDK raises ClientError
    for bad in (
        {"type": "noSuchThing"},
        {"type": "l2Book", "coin": "DOGE"},
        {"type": "clearinghouseState", "user": "0x1234"},
        {"type": "l2Book", "coin": "BTC", "nSigFigs": 7},
        {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "7m", "startTime": 0}},
        {"type": "orderStatus", "user": hex_of(ALICE.account), "oid": "0xnothex"},
    ):
        with pytest.raises(ClientError) as refused:
            info.post("/info", bad)
        assert refused.value.status_code == 422
        assert "Failed to deserialize" in refused.value.error_message
    headers = {"Content-Type": "application/json"}
    assert venue.node.request("POST", "/info", b"{", headers).status == 422
    oversized = b'{"type": "meta", "pad": "' + b"x" * DEFAULT_MAX_BODY_BYTES + b'"}'
    assert venue.node.request("POST", "/info", oversized, headers).status == 413

    # an unknown user is an empty account, not an error
    nobody = hex_of(wallet("nobody").account)
    empty = info.user_state(nobody)
    assert empty["assetPositions"] == [] and empty["marginSummary"]["accountValue"] == "0"
    assert info.open_orders(nobody) == [] and info.user_fills(nobody) == []
    assert info.query_order_by_oid(nobody, 1) == {"status": "unknownOid"}
    assert info.user_role(nobody) == {"role": "missing"}
    alice_hex = hex_of(ALICE.account)
    assert info.user_role(alice_hex) == {"role": "user"}
    agent = AgentWallet.generate(ALICE.account)
    with venue.client(ALICE) as alice:
        executed(alice, alice.approve_agent(agent, int(time.time() * 1000) + 3_600_000))
    assert info.user_role(hex_of(agent.address)) == {"role": "agent", "data": {"user": alice_hex}}

    # the rest of what the SDK asks: no spot, no builder fees, no referrals
    assert info.spot_user_state(alice_hex) == {"balances": []}
    assert info.query_user_abstraction_state(alice_hex) == "disabled"
    assert info.post("/info", {"type": "maxBuilderFee", "user": alice_hex, "builder": nobody}) == 0
    assert info.query_referral_state(alice_hex)["referredBy"] is None
    # one request counted (the agent's approval); the cap is the tests' loopback budget
    limits = info.user_rate_limit(alice_hex)
    assert (limits["cumVlm"], limits["nRequestsUsed"]) == ("0", 1)
    assert limits["nRequestsCap"] >= 10_000
    fees = info.user_fees(alice_hex)
    assert (fees["userCrossRate"], fees["userAddRate"]) == ("0.00045", "0.00015")


def test_trading_read_back(venue: Venue) -> None:
    info = Info(venue.node.url, skip_ws=True)
    alice_hex, bob_hex = hex_of(ALICE.account), hex_of(BOB.account)
    cloid = Cloid.from_int(7)
    with venue.client(ALICE) as alice, venue.client(BOB) as bob:
        ask = order_id(bob, bob.place_order("BTC", "sell", "0.01", "60010", tif="ALO", client_id=7))
        bid = order_id(bob, bob.place_order("BTC", "buy", "0.02", "59990"))
        executed(alice, alice.place_order("BTC", "buy", "0.004", "60010", tif="IOC"))
        executed(alice, alice.place_order("BTC", "sell", "0.001", "59990", tif="IOC"))
        stop = order_id(
            alice,
            alice.place_order(
                "BTC", "sell", "0.003", None, trigger=Trigger("stop", "55000"), reduce_only=True
            ),
        )

        # the book: bob's ask partly taken, his bid partly hit
        book = info.l2_snapshot("BTC")
        assert book["coin"] == "BTC" and book["time"] > 0
        assert book["levels"] == [
            [{"px": "59990", "sz": "0.019", "n": 1}],
            [{"px": "60010", "sz": "0.006", "n": 1}],
        ]
        coarse = info.post("/info", {"type": "l2Book", "coin": "BTC", "nSigFigs": 2})
        assert [[level["px"] for level in side] for side in coarse["levels"]] == [
            ["59000"],
            ["61000"],
        ]
        assert info.all_mids() == {"BTC": "60000", "ETH": "3000"}

        # alice: long 0.003 BTC from 60010; one close at 59990
        state = info.user_state(alice_hex)
        (held,) = state["assetPositions"]
        position = held["position"]
        mark = Decimal(info.meta_and_asset_ctxs()[1][0]["markPx"])
        assert mark == Decimal("60000")
        assert held["type"] == "oneWay"
        assert (position["coin"], position["szi"], position["entryPx"]) == ("BTC", "0.003", "60010")
        assert Decimal(position["positionValue"]) == Decimal("0.003") * mark
        upnl = Decimal("0.003") * (mark - Decimal("60010"))
        assert Decimal(position["unrealizedPnl"]) == upnl
        assert position["leverage"] == {"type": "cross", "value": 20}
        assert Decimal(position["marginUsed"]) == Decimal("0.003") * mark / 20
        # $10,000 behind a $180 long: no positive price liquidates it
        assert position["liquidationPx"] is None
        buy_fee = fee(Decimal("0.004") * Decimal("60010"), TAKER_FEE)
        sell_fee = fee(Decimal("0.001") * Decimal("59990"), TAKER_FEE)
        closed = Decimal("0.001") * (Decimal("59990") - Decimal("60010"))
        funding = sum(
            (Decimal(entry["delta"]["usdc"]) for entry in info.user_funding_history(alice_hex, 0)),
            Decimal(0),
        )
        raw = Decimal(10_000) - Decimal("0.004") * Decimal("60010") + Decimal("0.001") * Decimal(
            "59990"
        ) - buy_fee - sell_fee + funding  # fmt: skip
        summary = state["crossMarginSummary"]
        assert Decimal(summary["totalRawUsd"]) == raw
        assert Decimal(summary["accountValue"]) == raw + Decimal("0.003") * mark
        assert Decimal(summary["accountValue"]) == Decimal(10_000) + upnl + closed - buy_fee - (
            sell_fee
        ) + funding  # fmt: skip
        assert state["marginSummary"] == summary  # no isolated positions
        assert Decimal(state["withdrawable"]) < Decimal(summary["accountValue"])

        # fills, newest first, with Hyperliquid's derived fields
        fills = info.user_fills(alice_hex)
        assert [(f["side"], f["px"], f["sz"], f["dir"], f["startPosition"]) for f in fills] == [
            ("A", "59990", "0.001", "Close Long", "0.004"),
            ("B", "60010", "0.004", "Open Long", "0"),
        ]
        assert [Decimal(f["closedPnl"]) for f in fills] == [closed, 0]
        assert [Decimal(f["fee"]) for f in fills] == [sell_fee, buy_fee]
        assert all(f["crossed"] and f["feeToken"] == "USDC" and f["coin"] == "BTC" for f in fills)
        assert fills[0]["time"] >= fills[1]["time"] and fills[0]["tid"] != fills[1]["tid"]
        assert all(f["hash"].startswith("0x") and len(f["hash"]) == 66 for f in fills)
        bob_fills = info.user_fills(bob_hex)
        assert [(f["side"], f["oid"], f["crossed"], f["dir"]) for f in bob_fills] == [
            ("B", bid, False, "Close Short"),
            ("A", ask, False, "Open Short"),
        ]
        assert bob_fills[1]["cloid"] == cloid.to_raw() and "cloid" not in bob_fills[0]
        assert Decimal(bob_fills[1]["fee"]) == fee(Decimal("0.004") * Decimal("60010"), MAKER_FEE)
        assert bob_fills[1]["hash"] == fills[1]["hash"]  # one trade, one record
        by_time = info.user_fills_by_time(alice_hex, fills[0]["time"])
        assert [f["tid"] for f in by_time] == [fills[0]["tid"]]
        assert [f["tid"] for f in info.user_fills_by_time(alice_hex, 0)] == [
            fills[1]["tid"],
            fills[0]["tid"],
        ]

        # open orders, newest first; the trigger shows as one in the frontend view
        assert info.open_orders(bob_hex) == [
            {"coin": "BTC", "side": "B", "limitPx": "59990", "sz": "0.019", "oid": bid,
             "timestamp": info.open_orders(bob_hex)[0]["timestamp"], "origSz": "0.02"},
            {"coin": "BTC", "side": "A", "limitPx": "60010", "sz": "0.006", "oid": ask,
             "timestamp": info.open_orders(bob_hex)[1]["timestamp"], "origSz": "0.01",
             "cloid": cloid.to_raw()},
        ]  # fmt: skip
        (trigger,) = info.frontend_open_orders(alice_hex)
        assert trigger["oid"] == stop and trigger["isTrigger"] and trigger["reduceOnly"]
        assert (trigger["triggerPx"], trigger["triggerCondition"], trigger["orderType"]) == (
            "55000",
            "Price below 55000",
            "Stop Market",
        )
        assert (trigger["side"], trigger["sz"], trigger["children"]) == ("A", "0.003", [])
        (resting_bid, resting_ask) = info.frontend_open_orders(bob_hex)
        assert (resting_bid["isTrigger"], resting_bid["tif"]) == (False, "Gtc")
        assert (resting_ask["tif"], resting_ask["triggerCondition"]) == ("Alo", "N/A")

        # order status: open, then canceled; by oid and by cloid; another user's is unknown
        status = info.query_order_by_oid(bob_hex, ask)
        assert status["status"] == "order" and status["order"]["status"] == "open"
        assert status["order"]["order"]["sz"] == "0.006"
        assert info.query_order_by_cloid(bob_hex, cloid)["order"]["order"]["oid"] == ask
        assert info.query_order_by_oid(alice_hex, ask) == {"status": "unknownOid"}
        executed(bob, bob.cancel("BTC", ask))
        cancelled = info.query_order_by_cloid(bob_hex, cloid)["order"]
        assert cancelled["status"] == "canceled" and cancelled["order"]["sz"] == "0.006"
        assert cancelled["statusTimestamp"] >= cancelled["order"]["timestamp"]
        history = info.historical_orders(bob_hex)
        assert [(h["order"]["oid"], h["status"]) for h in history] == [
            (ask, "canceled"),
            (bid, "open"),
        ]
        # alice's IOC buy filled entirely
        alice_first = fills[1]["oid"]
        first = info.query_order_by_oid(alice_hex, alice_first)["order"]
        assert (first["status"], first["order"]["tif"], first["order"]["sz"]) == (
            "filled",
            "Ioc",
            "0",
        )

    # candles: the two trades in one minute (or two, if a minute boundary fell between)
    now = info.post("/info", {"type": "exchangeStatus"})["time"]
    candles = info.candles_snapshot("BTC", "1h", 0, now)
    (candle,) = candles
    assert (candle["s"], candle["i"], candle["n"]) == ("BTC", "1h", 2)
    assert (candle["o"], candle["c"], candle["h"], candle["l"], candle["v"]) == (
        "60010",
        "59990",
        "60010",
        "59990",
        "0.005",
    )
    assert candle["T"] == candle["t"] + 3_600_000 - 1 and candle["t"] % 3_600_000 == 0
    minutes = info.candles_snapshot("BTC", "1m", 0, now)
    assert sum(c["n"] for c in minutes) == 2 and all(c["i"] == "1m" for c in minutes)
    assert info.candles_snapshot("ETH", "1m", 0, now) == []

    # one more request allowed per whole USDC traded than an address that never traded
    limits = info.user_rate_limit(alice_hex)
    idle = info.user_rate_limit("0x" + "00" * 19 + "01")
    assert limits["cumVlm"] == "300.03"
    assert limits["nRequestsCap"] - idle["nRequestsCap"] == 300

    ctx = info.meta_and_asset_ctxs()[1][0]
    assert ctx["openInterest"] == "0.003"  # alice long 0.003, bob short 0.003
    assert Decimal(ctx["dayNtlVlm"]) == Decimal("0.004") * 60010 + Decimal("0.001") * 59990
    assert ctx["dayBaseVlm"] == "0.005"
    assert ctx["midPx"] is None  # bob's ask is gone: no mid, only a bid

    # an isolated position: its own balance (rawUsd) and margin, outside the cross summary
    with venue.client(ALICE) as alice, venue.client(BOB) as bob:
        executed(bob, bob.set_leverage("ETH", 5, isolated=True))
        executed(alice, alice.place_order("ETH", "sell", "0.01", "3000", tif="ALO"))
        executed(bob, bob.place_order("ETH", "buy", "0.01", "3000", tif="IOC"))
    state = info.user_state(bob_hex)
    (eth,) = [p["position"] for p in state["assetPositions"] if p["position"]["coin"] == "ETH"]
    moved = Decimal(30) / 5  # the initial margin at 5x, from the cross balance
    raw_usd = -Decimal(30) - fee(Decimal(30), TAKER_FEE) + moved
    assert (eth["leverage"]["type"], eth["leverage"]["value"]) == ("isolated", 5)
    assert Decimal(eth["leverage"]["rawUsd"]) == raw_usd
    assert Decimal(eth["marginUsed"]) == raw_usd + Decimal(30)  # mark 3000
    assert (eth["szi"], eth["positionValue"]) == ("0.01", "30")
    assert (
        Decimal(state["marginSummary"]["totalNtlPos"])
        == Decimal(state["crossMarginSummary"]["totalNtlPos"]) + 30
    )


def wait_until(predicate: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_funding_history_and_user_funding(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    venue = start_venue(tmp_path, node_launcher, funding_interval_ms=1_000, premium_sample_ms=200)
    info = Info(venue.node.url, skip_ws=True)
    with venue.client(ALICE) as alice, venue.client(BOB) as bob:
        executed(bob, bob.place_order("BTC", "sell", "0.002", "60000"))
        executed(alice, alice.place_order("BTC", "buy", "0.002", "60000", tif="IOC"))

    def paid() -> list[dict[str, Any]]:
        venue.system({"type": "advanceTime"})  # a record: time-driven funding falls due
        return [e for e in info.user_funding_history(hex_of(ALICE.account), 0)]

    payments = wait_until(paid, "a funding payment")
    history = info.funding_history("BTC", 0)
    assert history and all(entry["coin"] == "BTC" for entry in history)
    rates = {entry["time"]: Decimal(entry["fundingRate"]) for entry in history}
    for payment in payments:
        delta = payment["delta"]
        assert (delta["type"], delta["coin"], delta["szi"]) == ("funding", "BTC", "0.002")
        rate = Decimal(delta["fundingRate"])
        assert rates[payment["time"]] == rate
        # longs pay: the payment rounds up, against the payer
        owed = (Decimal("0.002") * rate * 60000).quantize(
            Decimal("0.000001"), rounding=ROUND_CEILING
        )
        assert Decimal(delta["usdc"]) == -owed
    bob_payments = info.user_funding_history(hex_of(BOB.account), 0)
    assert {p["time"] for p in bob_payments} >= {p["time"] for p in payments}
    assert all(Decimal(p["delta"]["szi"]) == Decimal("-0.002") for p in bob_payments)
    # with no premium the rate is the interest rate: 0.00125% per interval
    assert all(rate == Decimal("0.0000125") for rate in rates.values()) or any(
        Decimal(entry["premium"]) != 0 for entry in history
    )
    state = info.user_state(hex_of(ALICE.account))
    (held,) = state["assetPositions"]
    total = sum((Decimal(p["delta"]["usdc"]) for p in payments), Decimal(0))
    assert Decimal(held["position"]["cumFunding"]["sinceOpen"]) == -total
