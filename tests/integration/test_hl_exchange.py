"""The published hyperliquid-python-sdk (0.24.0) trading on a real node process.

Collateral and oracle prices enter through the node's operator endpoint (``/v1/system``);
every trading action goes through ``hyperliquid.exchange.Exchange`` pointed at the node's
URL, which signs for Hyperliquid's testnet flag, the venue's default. Outcomes are read back
from the node's native read API (``/v1/accounts/...``), so what the SDK is told is checked
against what the engine did. Refusals are checked to change nothing: the node's last seq
and the accounts stay as they were.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import (
    get_timestamp_ms,
    sign_l1_action,
    sign_withdraw_from_bridge_action,
)
from hyperliquid.utils.types import Cloid

from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
MARKETS = (("BTC", 5, 10, 1), ("ETH", 4, 1, 10))  # symbol, sz_decimals, tick, lot
OPERATOR_TOKEN = "hl-exchange-test operator"
PUBLISHER = bytes.fromhex("c377c94d857b217ac94de730b94d5ce0a302f765")
BTC_PRICE = 600_000  # $60,000 in $0.1
ETH_PRICE = 300_000  # $3,000 in $0.01
DEPOSIT = 100_000 * 10**6  # micro-USDC
GTC: Any = {"limit": {"tif": "Gtc"}}
IOC: Any = {"limit": {"tif": "Ioc"}}
ALO: Any = {"limit": {"tif": "Alo"}}
MISSING = "Order was never placed, already canceled, or filled."
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hyperliquid_bots.py"


def key(name: str) -> LocalAccount:
    return Account.from_key(keccak256(f"hl-exchange-test {name}".encode()))


ALICE = key("alice")
BOB = key("bob")
CAROL = key("carol")  # never funded


@dataclass
class Venue:
    node: RunningNode
    l1_index: Iterator[int]

    def system(self, *commands: dict[str, Any]) -> None:
        self.node.system(OPERATOR_TOKEN, *commands)

    def deposit(self, who: LocalAccount, amount: int = DEPOSIT) -> None:
        command = {"type": "deposit", "account": who.address, "amount": amount}
        self.system({**command, "l1Index": next(self.l1_index)})

    def publish(self, btc: int = BTC_PRICE, eth: int = ETH_PRICE) -> None:
        publisher = "0x" + PUBLISHER.hex()
        self.system(
            {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": btc},
            {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": eth},
        )

    def exchange(self, wallet: LocalAccount, **options: Any) -> Exchange:
        return Exchange(wallet, base_url=self.node.url, **options)

    def get(self, path: str) -> Any:
        result = self.node.get(path)
        assert result.status == 200, (path, result.body)
        return result.json()

    def orders(self, who: LocalAccount) -> dict[int, dict[str, Any]]:
        orders = self.get(f"/v1/accounts/{who.address.lower()}/orders")["orders"]
        return {order["orderId"]: order for order in orders}

    def account(self, who: LocalAccount) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/v1/accounts/{who.address.lower()}")
        return result

    def position(self, who: LocalAccount, symbol: str) -> dict[str, Any] | None:
        for position in self.account(who)["positions"]:
            if position["symbol"] == symbol:
                return dict(position)
        return None

    def last_seq(self) -> int:
        return int(self.node.status()["lastSeq"])


@pytest.fixture
def venue(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> Venue:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    result = Venue(launcher.start(), itertools.count())
    result.publish()
    result.deposit(ALICE)
    result.deposit(BOB)
    return result


def statuses(answer: Any) -> list[Any]:
    assert answer["status"] == "ok", answer
    return list(answer["response"]["data"]["statuses"])


def one(answer: Any) -> Any:
    (status,) = statuses(answer)
    return status


def resting(answer: Any) -> int:
    status = one(answer)
    assert set(status) == {"resting"}, answer
    return int(status["resting"]["oid"])


def refused(answer: Any) -> str:
    assert answer["status"] == "err", answer
    assert isinstance(answer["response"], str)
    return answer["response"]


# ---------------------------------------------------------------------------------------------


def test_orders_each_time_in_force_reduce_only_cloid_bulk_and_cancels(venue: Venue) -> None:
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)

    bid = resting(alice.order("BTC", True, 0.01, 59000, GTC))
    order = venue.orders(ALICE)[bid]
    assert (order["side"], order["price"], order["size"], order["tif"]) == (
        "buy",
        "59000",
        "0.01",
        0,
    )

    ask = resting(bob.order("BTC", False, 0.02, 60100, GTC))
    crossing = one(alice.order("BTC", True, 0.01, 60100, ALO))
    assert crossing == {
        "error": "Post only order would have immediately matched, bbo was 59000@60100. asset=0"
    }
    post_only = resting(alice.order("BTC", True, 0.01, 59500, ALO))
    assert venue.orders(ALICE)[post_only]["tif"] == 3

    no_match = one(alice.order("BTC", True, 0.01, 60000, IOC))
    assert no_match == {
        "error": "Order could not immediately match against any resting orders. asset=0"
    }
    filled = one(alice.order("BTC", True, 0.01, 60500, IOC))
    assert filled["filled"]["totalSz"] == "0.01" and filled["filled"]["avgPx"] == "60100"
    assert filled["filled"]["oid"] not in venue.orders(ALICE)
    assert venue.position(ALICE, "BTC")["size"] == "0.01"  # type: ignore[index]
    assert venue.orders(BOB)[ask]["size"] == "0.01"  # the maker's rest

    increase = one(alice.order("BTC", True, 0.01, 59000, GTC, reduce_only=True))
    assert increase == {"error": "Reduce only order would increase position. asset=0"}
    close = resting(alice.order("BTC", False, 0.05, 61000, GTC, reduce_only=True))
    closing = venue.orders(ALICE)[close]
    assert closing["reduceOnly"] and closing["size"] == "0.01"  # capped at the position

    cloid = Cloid.from_int(2**127 + 7)  # all 128 bits reach the engine
    placed = one(alice.order("BTC", True, 0.01, 58000, GTC, cloid=cloid))
    by_cloid = placed["resting"]["oid"]
    assert placed == {"resting": {"oid": by_cloid, "cloid": cloid.to_raw()}}
    assert venue.orders(ALICE)[by_cloid]["clientId"] == cloid.to_raw()
    duplicate = one(alice.order("BTC", True, 0.01, 57000, GTC, cloid=cloid))
    assert "cloid" in duplicate["error"]
    assert one(alice.cancel_by_cloid("BTC", cloid)) == "success"
    assert by_cloid not in venue.orders(ALICE)
    assert one(alice.cancel_by_cloid("BTC", cloid)) == {"error": MISSING + " asset=0"}

    bulk = alice.bulk_orders(
        [
            {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": 58500, "order_type": GTC,
             "reduce_only": False},
            {"coin": "ETH", "is_buy": False, "sz": 0.5, "limit_px": 3100.5, "order_type": ALO,
             "reduce_only": False},
            {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": 58500.5, "order_type": GTC,
             "reduce_only": False},
            {"coin": "ETH", "is_buy": True, "sz": 0.001, "limit_px": 3000, "order_type": GTC,
             "reduce_only": False},
        ]
    )  # fmt: skip
    first, second, off_tick, too_small = statuses(bulk)
    eth_order = venue.orders(ALICE)[second["resting"]["oid"]]
    assert (eth_order["symbol"], eth_order["price"], eth_order["size"]) == ("ETH", "3100.5", "0.5")
    assert first["resting"]["oid"] in venue.orders(ALICE)
    assert off_tick == {"error": "Price must be divisible by tick size. asset=0"}
    assert too_small == {"error": "Order must have minimum value of $10. asset=1"}

    open_before = set(venue.orders(ALICE))
    assert one(alice.cancel("BTC", bid)) == "success"
    assert set(venue.orders(ALICE)) == open_before - {bid}
    assert one(alice.cancel("BTC", bid)) == {"error": MISSING + " asset=0"}
    cancels = alice.bulk_cancel([{"coin": "BTC", "oid": post_only}, {"coin": "ETH", "oid": bid}])
    assert statuses(cancels) == ["success", {"error": MISSING + " asset=1"}]


def test_triggers_take_profit_and_stop_loss(venue: Venue) -> None:
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)
    resting(bob.order("BTC", False, 0.01, 60000, GTC))
    entry = {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": 60000, "order_type": GTC,
             "reduce_only": False}  # fmt: skip
    take_profit = {"coin": "BTC", "is_buy": False, "sz": 0.01, "limit_px": 66000,
                   "order_type": {"trigger": {"triggerPx": 66000, "isMarket": False, "tpsl": "tp"}},
                   "reduce_only": True}  # fmt: skip
    stop_loss = {"coin": "BTC", "is_buy": False, "sz": 0.01, "limit_px": 54000,
                 "order_type": {"trigger": {"triggerPx": 55000, "isMarket": True, "tpsl": "sl"}},
                 "reduce_only": True}  # fmt: skip
    filled, tp, sl = statuses(
        alice.bulk_orders([entry, take_profit, stop_loss], grouping="normalTpsl")
    )
    assert filled["filled"]["totalSz"] == "0.01"
    assert tp == sl == "waitingForTrigger"
    triggers = [o for o in venue.orders(ALICE).values() if o["triggerKind"]]
    assert sorted((o["triggerKind"], o["triggerPrice"]) for o in triggers) == [
        (1, "55000"),
        (2, "66000"),
    ]

    # the mark falls through the stop: the stop-loss closes the position at the bid
    resting(bob.order("BTC", True, 0.01, 54500, GTC))
    venue.publish(btc=549_000)
    flat = venue.position(ALICE, "BTC")  # kept while the take-profit still waits
    assert flat is not None and flat["size"] == "0"
    last_fill = venue.get(f"/v1/accounts/{ALICE.address.lower()}/fills?limit=1")["fills"][0]
    assert (last_fill["side"], last_fill["price"], last_fill["size"]) == ("sell", "54500", "0.01")
    assert not [o for o in venue.orders(ALICE).values() if o["triggerKind"] == 1]

    standalone = alice.order(
        "BTC", True, 0.01, 70000, {"trigger": {"triggerPx": 70000, "isMarket": False, "tpsl": "sl"}}
    )
    assert resting(standalone) in venue.orders(ALICE)
    bad_trigger = alice.order(
        "BTC",
        True,
        0.01,
        70000,
        {"trigger": {"triggerPx": 70000.5, "isMarket": False, "tpsl": "sl"}},
    )
    assert one(bad_trigger) == {"error": "Invalid TP/SL price. asset=0"}


def test_modify_market_orders_leverage_isolated_margin_scheduled_cancel(venue: Venue) -> None:
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)

    oid = resting(alice.order("BTC", True, 0.01, 59000, GTC))
    modified = alice.modify_order(oid, "BTC", True, 0.02, 59100, GTC)
    assert one(modified) == {"resting": {"oid": oid}}  # the order keeps its id
    order = venue.orders(ALICE)[oid]
    assert (order["price"], order["size"]) == ("59100", "0.02")

    cloid = Cloid.from_int(42)
    by_cloid = resting(alice.order("ETH", False, 0.1, 3100, GTC, cloid=cloid))
    assert one(alice.modify_order(cloid, "ETH", False, 0.2, 3105, GTC)) == {
        "resting": {"oid": by_cloid, "cloid": cloid.to_raw()}  # the cloid echoed
    }
    assert venue.orders(ALICE)[by_cloid]["price"] == "3105"

    both = alice.bulk_modify_orders_new(
        [
            {"oid": oid, "order": {"coin": "BTC", "is_buy": True, "sz": 0.01, "limit_px": 59200,
                                   "order_type": GTC, "reduce_only": False}},
            {"oid": by_cloid, "order": {"coin": "ETH", "is_buy": True, "sz": 0.2, "limit_px": 3105,
                                        "order_type": GTC, "reduce_only": False}},
            {"oid": 999_999, "order": {"coin": "BTC", "is_buy": True, "sz": 0.01,
                                       "limit_px": 59200, "order_type": GTC, "reduce_only": False}},
        ]
    )  # fmt: skip
    assert both["response"]["type"] == "order"  # as Hyperliquid answers a batchModify
    kept, side_change, unknown = statuses(both)
    assert kept == {"resting": {"oid": oid}}
    assert "side" in side_change["error"] and venue.orders(ALICE)[by_cloid]["side"] == "sell"
    assert unknown == {"error": MISSING + " asset=0"}
    assert venue.orders(ALICE)[oid]["price"] == "59200"

    # a modify that crosses trades at once
    resting(bob.order("BTC", False, 0.01, 59300, GTC))
    crossed = one(alice.modify_order(oid, "BTC", True, 0.01, 59300, GTC))
    assert crossed["filled"] == {"totalSz": "0.01", "avgPx": "59300", "oid": oid}

    # market orders: Ioc limits at the mid +- 5% slippage
    resting(bob.order("BTC", False, 0.03, 60100, GTC))
    resting(bob.order("BTC", True, 0.01, 59900, GTC))
    bought = one(alice.market_open("BTC", True, 0.02))
    assert bought["filled"]["totalSz"] == "0.02" and bought["filled"]["avgPx"] == "60100"
    assert venue.position(ALICE, "BTC")["size"] == "0.03"  # type: ignore[index]
    resting(bob.order("BTC", True, 0.02, 59800, GTC))
    closed = one(alice.market_close("BTC"))
    assert closed["filled"]["totalSz"] == "0.03"
    assert closed["filled"]["avgPx"] == "59833.33333"  # 0.01 at 59900 and 0.02 at 59800
    flat = venue.position(ALICE, "BTC")
    assert flat is None or flat["size"] == "0"

    # leverage and isolated margin
    alice.cancel("ETH", by_cloid)
    assert alice.update_leverage(5, "ETH", is_cross=False) == {
        "status": "ok",
        "response": {"type": "default"},
    }
    eth = venue.position(ALICE, "ETH")
    assert eth is not None and (eth["leverage"], eth["isolated"]) == (5, True)
    assert refused(alice.update_leverage(50, "ETH")) == "Invalid leverage value."
    assert refused(alice.update_isolated_margin(100, "ETH")).startswith("Cannot update margin")
    # beyond what the venue can hold (MAX_COLLATERAL, $10^12): refused before sequencing
    assert refused(alice.update_isolated_margin(2 * 10**12, "ETH")).startswith(
        "updateIsolatedMargin: ntli must be within"
    )
    resting(bob.order("ETH", False, 1, 3000, GTC))
    assert one(alice.order("ETH", True, 1, 3000, IOC))["filled"]["totalSz"] == "1"
    margin_before = venue.position(ALICE, "ETH")["isolatedMargin"]  # type: ignore[index]
    assert alice.update_isolated_margin(100.5, "ETH")["status"] == "ok"
    margin_after = venue.position(ALICE, "ETH")["isolatedMargin"]  # type: ignore[index]
    assert float(margin_after) - float(margin_before) == pytest.approx(100.5)

    # dead-man switch: all of alice's orders go once its time has come
    waiting = resting(alice.order("BTC", True, 0.01, 55000, GTC))
    too_soon = refused(alice.schedule_cancel(get_timestamp_ms() + 1_000))
    assert too_soon.startswith("Scheduled cancel time too early")
    assert alice.schedule_cancel(None)["status"] == "ok"  # unsets (nothing set yet)
    deadline_ms = get_timestamp_ms() + 5_500
    assert alice.schedule_cancel(deadline_ms)["status"] == "ok"
    assert waiting in venue.orders(ALICE)
    give_up = time.monotonic() + 30
    while waiting in venue.orders(ALICE):
        assert time.monotonic() < give_up, "the scheduled cancel never ran"
        venue.system({"type": "advanceTime"})  # the engine's clock moves with records only
        time.sleep(0.25)
    assert get_timestamp_ms() >= deadline_ms
    assert not [o for o in venue.orders(ALICE).values() if o["symbol"] == "BTC"]


def test_agent_trades_for_its_master_and_may_not_withdraw(venue: Venue) -> None:
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)
    approved, agent_key = alice.approve_agent()
    assert approved == {"status": "ok", "response": {"type": "default"}}
    agent_wallet = Account.from_key(agent_key)
    agent = venue.exchange(agent_wallet, account_address=ALICE.address)

    oid = resting(agent.order("BTC", True, 0.01, 59000, GTC))
    assert venue.orders(ALICE)[oid]["price"] == "59000"  # alice's order, signed by the agent
    assert one(agent.cancel("BTC", oid)) == "success"
    assert oid not in venue.orders(ALICE)

    collateral = venue.account(ALICE)["collateral"]
    seq = venue.last_seq()
    refusal = refused(agent.withdraw_from_bridge(10, ALICE.address))
    assert refusal.startswith("API Wallets may not withdraw")
    assert refused(agent.approve_agent()[0]).startswith("API Wallets may not withdraw")
    # an agent of alice acting for bob
    as_bob = venue.exchange(agent_wallet, vault_address=BOB.address)
    stranger = f"User or API Wallet {agent_wallet.address.lower()} does not exist."
    assert refused(as_bob.order("BTC", True, 0.01, 59000, GTC)) == stranger
    # a key nobody funded, not an agent
    assert refused(venue.exchange(CAROL).order("BTC", True, 0.01, 59000, GTC)) == (
        f"User or API Wallet {CAROL.address.lower()} does not exist."
    )
    assert venue.last_seq() == seq and venue.account(ALICE)["collateral"] == collateral

    # another account's order cannot be cancelled, by id or through a modify
    bobs = resting(bob.order("BTC", False, 0.01, 61000, GTC))
    assert one(alice.cancel("BTC", bobs)) == {"error": MISSING + " asset=0"}
    modify = alice.modify_order(bobs, "BTC", False, 0.01, 62000, GTC)
    assert one(modify) == {"error": MISSING + " asset=0"}
    assert venue.orders(BOB)[bobs]["price"] == "61000"


def test_withdraw_from_bridge(venue: Venue) -> None:
    alice = venue.exchange(ALICE)
    assert alice.withdraw_from_bridge(100.5, ALICE.address) == {
        "status": "ok",
        "response": {"type": "default"},
    }
    assert venue.account(ALICE)["collateral"] == "99899.5"
    assert refused(alice.withdraw_from_bridge(10, BOB.address)).endswith(
        "paid to the account's own address on this venue"
    )
    assert refused(alice.withdraw_from_bridge(1_000_000, ALICE.address)) == (
        "Insufficient balance for withdrawal."
    )
    assert refused(alice.withdraw_from_bridge(0.0000001, ALICE.address)).startswith("withdraw3:")
    assert refused(alice.withdraw_from_bridge(10**13, ALICE.address)) == (
        "withdraw3: amount must be positive and at most 1000000000000"
    )
    assert venue.account(ALICE)["collateral"] == "99899.5"


def post_signed(
    exchange: Exchange,
    action: dict[str, Any],
    nonce: int,
    *,
    mainnet: bool = False,
    expires_after: int | None = None,
) -> Any:
    """An L1 action signed by the SDK's own signing function, posted as the SDK posts it."""
    signature = sign_l1_action(exchange.wallet, action, None, nonce, expires_after, mainnet)
    payload = {
        "action": action,
        "nonce": nonce,
        "signature": signature,
        "vaultAddress": None,
        "expiresAfter": expires_after,
    }
    return exchange.post("/exchange", payload)


def order_action(price: str) -> dict[str, Any]:
    wire = {"a": 0, "b": True, "p": price, "s": "0.01", "r": False, "t": GTC}
    return {"type": "order", "orders": [wire], "grouping": "na"}


def test_misuse_is_refused_and_changes_nothing(venue: Venue) -> None:
    alice = venue.exchange(ALICE)
    seq = venue.last_seq()

    # the wrong network flag recovers a stranger
    mainnet = post_signed(alice, order_action("59000"), get_timestamp_ms(), mainnet=True)
    assert refused(mainnet).startswith("User or API Wallet 0x")
    assert ALICE.address.lower() not in refused(mainnet)
    withdraw = {"destination": ALICE.address, "amount": "10", "time": get_timestamp_ms(),
                "type": "withdraw3"}  # fmt: skip
    signature = sign_withdraw_from_bridge_action(ALICE, withdraw, True)  # "Mainnet"
    payload = {"action": withdraw, "nonce": withdraw["time"], "signature": signature}
    assert "hyperliquidChain must be 'Testnet'" in refused(alice.post("/exchange", payload))
    # a tampered action recovers a stranger too
    nonce = get_timestamp_ms()
    signature = sign_l1_action(ALICE, order_action("59000"), None, nonce, None, False)
    tampered = {"action": order_action("1000"), "nonce": nonce, "signature": signature}
    assert refused(alice.post("/exchange", tampered)).startswith("User or API Wallet 0x")
    # nonces outside the window: more than 2 days old, more than 1 day ahead
    day = 86_400_000
    for nonce in (get_timestamp_ms() - 2 * day - 60_000, get_timestamp_ms() + day + 60_000):
        assert refused(post_signed(alice, order_action("59000"), nonce)).startswith(
            "Invalid nonce: nonce must be within"
        )
    expired = post_signed(
        alice, order_action("59000"), get_timestamp_ms(), expires_after=get_timestamp_ms() - 1000
    )
    assert refused(expired) == "Action expired: expiresAfter has passed"
    assert venue.last_seq() == seq  # none of it reached the journal
    assert venue.orders(ALICE) == {}

    # a replayed request, and another action under a spent nonce
    nonce = get_timestamp_ms()
    first = post_signed(alice, order_action("59000"), nonce)
    oid = resting(first)
    assert refused(post_signed(alice, order_action("59000"), nonce)) == (
        "Invalid nonce: duplicate nonce"
    )
    assert refused(post_signed(alice, order_action("58000"), nonce)) == (
        "Invalid nonce: duplicate nonce"
    )
    assert list(venue.orders(ALICE)) == [oid]
    seq = venue.last_seq()

    # malformed and unsupported requests
    bad_json = venue.node.request(
        "POST", "/exchange", b"{not json", {"Content-Type": "application/json"}
    )
    assert bad_json.status == 422 and bad_json.body.startswith(b"Failed to deserialize")
    not_an_object = venue.node.post_json("/exchange", [1, 2])
    assert not_an_object.status == 200
    assert refused(not_an_object.json()).startswith("the request must be an object")
    assert refused(alice.post("/exchange", {"action": {"type": "order"}, "nonce": -1})) == (
        "nonce must be an unsigned 64-bit integer (ms timestamp)"
    )
    unknown_asset = order_action("59000")
    unknown_asset["orders"][0]["a"] = 7
    assert refused(post_signed(alice, unknown_asset, get_timestamp_ms())) == "Invalid asset: 7"
    spot = order_action("59000")
    spot["orders"][0]["a"] = 10_000
    assert refused(post_signed(alice, spot, get_timestamp_ms())) == "Invalid asset: 10000"
    sub_account = post_signed(alice, {"type": "createSubAccount", "name": "x"}, get_timestamp_ms())
    assert refused(sub_account) == "Unsupported action: createSubAccount"
    assert refused(alice.usd_class_transfer(10, True)).startswith("usdClassTransfer:")
    assert refused(alice.usd_transfer(10, BOB.address)).startswith("Unsupported action: usdSend")
    for builder, text in (
        ({"b": "0x12", "f": 10}, "order: builder.b must be 0x and 40 hex digits"),
        ({"b": BOB.address, "f": -1}, "order: builder.f must be a fee in tenths of a basis point"),
        ({"b": BOB.address}, "order: builder is {b, f}"),
    ):
        action = {**order_action("59000"), "builder": builder}
        assert refused(post_signed(alice, action, get_timestamp_ms())) == text
    assert refused(alice.approve_builder_fee(BOB.address, "0.0001%")).startswith(
        "approveBuilderFee: maxFeeRate must be a percent with at most 3 decimals"
    )
    assert venue.last_seq() == seq and list(venue.orders(ALICE)) == [oid]


def test_builder_codes_approved_charged_and_shown(venue: Venue) -> None:
    """approveBuilderFee records a maximum per (user, builder); each fill of an order naming
    the builder pays it from the user's balance; maxBuilderFee and the fills show it."""
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)
    builder = key("builder")

    def max_builder_fee(user: LocalAccount, who: LocalAccount) -> Any:
        request = {"type": "maxBuilderFee", "user": user.address, "builder": who.address}
        return venue.node.post_json("/info", request).json()

    # a builder needs 100 USDC of account value to be approved, as on Hyperliquid
    assert refused(alice.approve_builder_fee(builder.address, "0.05%")) == (
        "Builder has insufficient balance to be approved."
    )
    venue.deposit(builder, 100 * 10**6)
    assert max_builder_fee(ALICE, builder) == 0
    assert alice.approve_builder_fee(builder.address, "0.05%") == {
        "status": "ok",
        "response": {"type": "default"},
    }
    assert max_builder_fee(ALICE, builder) == 50  # tenths of a basis point
    assert max_builder_fee(BOB, builder) == 0

    code = {"b": builder.address.lower(), "f": 50}
    unapproved = bob.order("BTC", False, 0.01, 60000, GTC, builder=code)
    assert one(unapproved) == {"error": "Builder fee has not been approved. asset=0"}
    above = alice.order("BTC", True, 0.01, 60000, IOC, builder={**code, "f": 51})
    assert one(above) == {
        "error": "Builder fee is above the maximum the user approved for this builder. asset=0"
    }

    resting(bob.order("BTC", False, 0.02, 60000, GTC))
    before = venue.account(ALICE)["collateral"]
    streamed: queue.Queue[Any] = queue.Queue()
    info = Info(venue.node.url, skip_ws=False)
    try:
        info.subscribe({"type": "userFills", "user": ALICE.address.lower()}, streamed.put)
        assert streamed.get(timeout=30)["data"]["isSnapshot"]
        filled = one(alice.order("BTC", True, 0.01, 60000, IOC, builder=code))
        live = streamed.get(timeout=30)["data"]["fills"]
    finally:
        info.disconnect_websocket()
    assert filled["filled"]["totalSz"] == "0.01"
    assert [(fill["fee"], fill["builderFee"]) for fill in live] == [("0.27", "0.3")]
    # notional $600: taker fee 450 ppm = $0.27; builder fee 50 tenths of a bp = $0.30
    assert venue.account(builder)["collateral"] == "100.3"
    assert Decimal(before) - Decimal(venue.account(ALICE)["collateral"]) == Decimal("600.57")
    (fill,) = venue.node.post_json("/info", {"type": "userFills", "user": ALICE.address}).json()
    assert (fill["fee"], fill["builderFee"]) == ("0.27", "0.3")
    (native,) = venue.get(f"/v1/accounts/{ALICE.address.lower()}/fills")["fills"]
    assert (native["fee"], native["builderFee"]) == ("0.27", "0.3")
    bobs_fills = venue.node.post_json("/info", {"type": "userFills", "user": BOB.address}).json()
    assert "builderFee" not in bobs_fills[0]  # bob's order named no builder

    # a resting builder order modified into a cross keeps its builder and pays on its fill
    oid = resting(alice.order("BTC", True, 0.01, 59000, GTC, builder=code))
    assert one(alice.modify_order(oid, "BTC", True, 0.01, 60000, GTC))["filled"]["oid"] == oid
    assert venue.account(builder)["collateral"] == "100.6"


def test_example_market_maker_and_taker_trade_with_each_other(venue: Venue) -> None:
    maker, taker = key("maker"), key("taker")
    venue.deposit(maker)
    venue.deposit(taker)
    rounds = 4
    command = [
        sys.executable, str(EXAMPLE), "--url", venue.node.url, "--maker-key", maker.key.hex(),
        "--taker-key", taker.key.hex(), "--rounds", str(rounds), "--size", "0.001",
    ]  # fmt: skip
    ran = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert [taken["totalSz"] for taken in summary["taken"]] == ["0.001"] * rounds

    # the node's own record of the same trades: every fill pairs the two bots
    maker_fills = venue.get(f"/v1/accounts/{maker.address.lower()}/fills")["fills"]
    taker_fills = venue.get(f"/v1/accounts/{taker.address.lower()}/fills")["fills"]
    assert len(maker_fills) == len(taker_fills) == rounds
    assert {fill["liquidity"] for fill in maker_fills} == {"maker"}
    assert {fill["liquidity"] for fill in taker_fills} == {"taker"}
    assert [(f["price"], f["size"]) for f in maker_fills] == [
        (f["price"], f["size"]) for f in taker_fills
    ]
    assert sorted(f["side"] for f in taker_fills) == ["buy", "buy", "sell", "sell"]
    assert len(summary["maker"]["fills"]) == len(summary["taker"]["fills"]) == rounds
    position = venue.position(taker, "BTC")  # bought twice, sold twice
    assert position is None or position["size"] == "0"


def test_noop_spends_a_nonce(venue: Venue) -> None:
    alice = venue.exchange(ALICE)
    nonce = get_timestamp_ms()
    assert alice.noop(nonce) == {"status": "ok", "response": {"type": "default"}}
    # an order signed earlier under that nonce (in flight, say) can no longer land
    assert refused(post_signed(alice, order_action("59000"), nonce)) == (
        "Invalid nonce: duplicate nonce"
    )
    assert venue.orders(ALICE) == {}


def test_the_network_flag_is_the_venues_configuration(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    with config.open("a") as file:
        file.write('\n[node]\nhyperliquid_network = "mainnet"\n')
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    venue = Venue(launcher.start(), itertools.count())
    venue.publish()
    venue.deposit(ALICE)
    alice = venue.exchange(ALICE)  # signs for testnet: any URL but Hyperliquid's own

    testnet = alice.order("BTC", True, 0.01, 59000, GTC)
    assert refused(testnet).startswith("User or API Wallet 0x")
    assert ALICE.address.lower() not in refused(testnet)
    mainnet = post_signed(alice, order_action("59000"), get_timestamp_ms(), mainnet=True)
    assert resting(mainnet) in venue.orders(ALICE)

    assert "hyperliquidChain must be 'Mainnet'" in refused(
        alice.withdraw_from_bridge(1, ALICE.address)
    )
    withdraw = {"destination": ALICE.address, "amount": "1", "time": get_timestamp_ms(),
                "type": "withdraw3"}  # fmt: skip
    signature = sign_withdraw_from_bridge_action(ALICE, withdraw, True)
    payload = {"action": withdraw, "nonce": withdraw["time"], "signature": signature}
    assert alice.post("/exchange", payload) == {"status": "ok", "response": {"type": "default"}}
    assert venue.account(ALICE)["collateral"] == "99999"


def test_withdraw_from_bridge_becomes_claimable_on_a_settling_node(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    config = tmp_path / "venue.toml"
    config.write_text(
        f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n'
        "[settlement]\ndeploy = true\nfinality_blocks = 2\nblock_time_ms = 200\n\n"
        '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 1\n'
    )
    launcher = node_launcher(
        tmp_path / "data",
        config,
        operator_token=OPERATOR_TOKEN,
        extra_args=["--batch-interval-ms", "500", "--tick-ms", "100"],
    )
    node = launcher.start()
    assert node.ready["settlement"] is True
    deposit = {"account": ALICE.address, "amount": 1_000 * 10**6}
    assert node.post_json("/v1/dev/deposit", deposit, OPERATOR_TOKEN).status == 200
    venue = Venue(node, itertools.count())
    give_up = time.monotonic() + 60
    while node.get(f"/v1/accounts/{ALICE.address.lower()}").status != 200:
        assert time.monotonic() < give_up, "the deposit never reached the engine"
        time.sleep(0.05)

    first_seq = venue.last_seq() + 1
    answer = venue.exchange(ALICE).withdraw_from_bridge(250, ALICE.address)
    assert answer == {"status": "ok", "response": {"type": "default"}}
    assert venue.account(ALICE)["collateral"] == "750"
    withdrawn = [
        event
        for seq in range(first_seq, venue.last_seq() + 1)
        for event in venue.get(f"/v1/seq/{seq}")["events"] or ()
        if event["type"] == "Withdrawn"
    ]
    (event,) = withdrawn
    assert (event["account"], event["amount"]) == (ALICE.address.lower(), 250 * 10**6)
    # the native settlement flow from here: a batch, its finality, a proof to claim with
    while True:
        result = node.get(f"/v1/withdrawals/{event['withdrawalId']}/proof")
        if result.status == 200 and result.json()["claimable"]:
            break
        assert time.monotonic() < give_up + 60, "the withdrawal never became claimable"
        time.sleep(0.1)
    proof = result.json()
    assert (proof["account"], proof["amount"]) == (ALICE.address.lower(), 250 * 10**6)


def test_partial_fills(venue: Venue) -> None:
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)
    resting(bob.order("BTC", False, 0.01, 60000, GTC))
    resting(bob.order("BTC", False, 0.01, 60010, GTC))
    # Ioc: what matched is filled, the rest cancelled
    partly = one(alice.order("BTC", True, 0.05, 60010, IOC))
    assert partly["filled"]["totalSz"] == "0.02" and partly["filled"]["avgPx"] == "60005"
    assert partly["filled"]["oid"] not in venue.orders(ALICE)
    # Gtc: what did not match rests, and the answer says it rests
    resting(bob.order("BTC", False, 0.01, 60020, GTC))
    rest = resting(alice.order("BTC", True, 0.03, 60020, GTC))
    assert venue.orders(ALICE)[rest]["size"] == "0.02"
    assert venue.position(ALICE, "BTC")["size"] == "0.03"  # type: ignore[index]


def order_with(**changes: Any) -> dict[str, Any]:
    action = order_action("59000")
    action["orders"][0].update(changes)
    return action


MALFORMED: list[tuple[dict[str, Any], str]] = [
    (order_with(a=True), "Invalid asset: True"),
    (order_with(b="yes"), "order: b must be bool"),
    (order_with(t={"limit": {"tif": "Fok"}}), "order: t.limit.tif must be Gtc, Ioc or Alo"),
    (order_with(t={"limit": {"tif": ["Gtc"]}}), "order: t.limit.tif must be Gtc, Ioc or Alo"),
    (order_with(t={"trigger": {"isMarket": True, "triggerPx": "1", "tpsl": "x"}}),
     'order: t.trigger.tpsl must be "tp" or "sl"'),
    (order_with(t={}), "order: t must be {limit: {tif}} or {trigger: {...}}"),
    (order_with(c="0x1234"), "order: c: a cloid is 0x and 32 hex digits"),
    (order_with(x=1), "order: each order is {a, b, p, s, r, t, c?}"),
    ({"type": "order", "orders": [], "grouping": {"p": 1}}, "order: unsupported grouping {'p': 1}"),
    ({"type": "order", "orders": "all"}, "order: orders must be a list"),
    ({"type": "cancel", "cancels": [{"a": 0, "o": -1}]}, "cancel: o must be an order id"),
    ({"type": "cancel", "cancels": [{"a": 0}]}, "cancel: each cancel is {a, o}"),
    ({"type": "cancelByCloid", "cancels": [{"asset": 0, "cloid": "0x" + "00" * 16}]},
     "cancelByCloid: cloid: the all-zero cloid means no cloid"),
    ({"type": "batchModify", "modifies": [{"oid": 1.5, "order": order_action("1")["orders"][0]}]},
     "batchModify: oid must be an order id or a cloid"),
    ({"type": "updateLeverage", "asset": 0, "isCross": 1, "leverage": 5},
     "updateLeverage: isCross must be bool"),
    ({"type": "updateIsolatedMargin", "asset": 0, "isBuy": True, "ntli": "5"},
     "updateIsolatedMargin: ntli must be int"),
    ({"type": "scheduleCancel", "time": -5},
     "scheduleCancel: time must be a ms timestamp or absent"),
]  # fmt: skip


def test_malformed_actions_are_refused_whole(venue: Venue) -> None:
    alice = venue.exchange(ALICE)
    resting(alice.order("BTC", True, 0.01, 59000, GTC))
    seq, orders = venue.last_seq(), venue.orders(ALICE)
    for action, text in MALFORMED:
        assert refused(post_signed(alice, action, get_timestamp_ms())) == text, action
    assert venue.last_seq() == seq and venue.orders(ALICE) == orders
