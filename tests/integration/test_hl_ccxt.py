"""ccxt 4.5.90's ``hyperliquid`` class, unchanged, trading on a real node process.

ccxt is used as its users use it: credentials (``walletAddress``, ``privateKey``) and the
API URLs pointed at the node, nothing else. With its defaults ccxt signs for Hyperliquid's
mainnet, so the node runs with ``--hyperliquid-network mainnet``; before its
first order it approves its builder (``0x6530…27a6``) for ``0.01%`` and then attaches
``builder: {b, f: 10}`` to every order, so every fill pays that builder one basis point of
its notional. The builder is a participant like any other: funded with Hyperliquid's
100 USDC minimum through the operator door, it is approved and paid to the micro-USDC; an
unfunded one cannot be approved, and ccxt then trades without a builder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ccxt
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
MARKETS = (("BTC", 5, 10, 1), ("ETH", 4, 1, 10))  # symbol, sz_decimals, tick, lot
OPERATOR_TOKEN = "hl-ccxt-test operator"
PUBLISHER = bytes.fromhex("c377c94d857b217ac94de730b94d5ce0a302f765")
BTC_PRICE = 600_000  # $60,000 in $0.1
ETH_PRICE = 300_000  # $3,000 in $0.01
DEPOSIT = 100_000 * 10**6  # micro-USDC
CCXT_BUILDER = "0x6530512A6c89C7cfCEbC3BA7fcD9aDa5f30827a6"  # ccxt's default builder
BUILDER_MINIMUM = 100 * 10**6  # the account value a builder needs to be approved
SYMBOL = "BTC/USDC:USDC"


def key(name: str) -> LocalAccount:
    return Account.from_key(keccak256(f"hl-ccxt-test {name}".encode()))


ALICE = key("alice")
BOB = key("bob")


@dataclass
class Venue:
    node: RunningNode
    l1_index: Iterator[int]

    def deposit(self, address: str, amount: int = DEPOSIT) -> None:
        command = {"type": "deposit", "account": address, "amount": amount}
        self.node.system(OPERATOR_TOKEN, {**command, "l1Index": next(self.l1_index)})

    def info(self, request: dict[str, Any]) -> Any:
        result = self.node.post_json("/info", request)
        assert result.status == 200, result.body
        return result.json()

    def collateral(self, address: str) -> Decimal:
        result = self.node.get(f"/v1/accounts/{address.lower()}")
        if result.status == 404:
            return Decimal(0)
        assert result.status == 200, result.body
        return Decimal(result.json()["collateral"])

    def client(self, wallet: LocalAccount) -> Any:
        """ccxt's hyperliquid class with its defaults; only credentials and URLs are set."""
        return ccxt.hyperliquid(
            {
                "walletAddress": wallet.address,
                "privateKey": "0x" + wallet.key.hex(),
                "urls": {"api": {"public": self.node.url, "private": self.node.url}},
            }
        )


@pytest.fixture
def venue(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> Venue:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    launcher = node_launcher(
        tmp_path / "data",
        config,
        extra_args=["--hyperliquid-network", "mainnet"],  # what ccxt signs for
        operator_token=OPERATOR_TOKEN,
    )
    result = Venue(launcher.start(), itertools.count())
    publisher = "0x" + PUBLISHER.hex()
    result.node.system(
        OPERATOR_TOKEN,
        {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": BTC_PRICE},
        {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": ETH_PRICE},
    )
    result.deposit(ALICE.address)
    result.deposit(BOB.address)
    return result


def builder_fee(price: str, amount: str) -> Decimal:
    """ccxt's default fee, 10 tenths of a basis point of the notional, rounded up to the
    micro-USDC (the engine's rule for every charge)."""
    notional = Decimal(price) * Decimal(amount)
    return (notional * 10 / 100_000).quantize(Decimal("0.000001"), rounding="ROUND_CEILING")


def test_ccxt_places_edits_cancels_and_trades_paying_its_builder(venue: Venue) -> None:
    venue.deposit(CCXT_BUILDER, BUILDER_MINIMUM)
    alice, bob = venue.client(ALICE), venue.client(BOB)
    markets = alice.load_markets()
    assert SYMBOL in markets and markets[SYMBOL]["id"] == "0"

    # a limit order: ccxt approves its builder first, then attaches it
    placed = alice.create_order(SYMBOL, "limit", "buy", 0.01, 59000)
    assert alice.options["approvedBuilderFee"] is True
    assert (
        venue.info({"type": "maxBuilderFee", "user": ALICE.address, "builder": CCXT_BUILDER}) == 10
    )
    open_orders = alice.fetch_open_orders(SYMBOL)
    assert [(o["id"], o["price"]) for o in open_orders] == [(placed["id"], 59000)]

    edited = alice.edit_order(placed["id"], SYMBOL, "limit", "buy", 0.01, 59500)
    assert edited["id"] == placed["id"]  # a modify keeps the order id
    assert [o["price"] for o in alice.fetch_open_orders(SYMBOL)] == [59500]
    alice.cancel_order(placed["id"], SYMBOL)
    assert alice.fetch_open_orders(SYMBOL) == []
    assert venue.collateral(CCXT_BUILDER) == Decimal(100)  # nothing filled: nothing paid

    # bob rests 0.02 at 60,000; alice takes 0.01 with an edit into a cross, 0.01 at market
    bob.create_order(SYMBOL, "limit", "sell", 0.02, 60000)
    resting = alice.create_order(SYMBOL, "limit", "buy", 0.01, 59000)
    alice.edit_order(resting["id"], SYMBOL, "limit", "buy", 0.01, 60000)
    alice.create_order(SYMBOL, "market", "buy", 0.01, 60000)
    assert alice.fetch_open_orders(SYMBOL) == [] and bob.fetch_open_orders(SYMBOL) == []

    # four sides of two fills, each paying 10 tenths of a basis point of $600: $0.06
    per_side = builder_fee("60000", "0.01")
    assert per_side == Decimal("0.06")
    assert venue.collateral(CCXT_BUILDER) == Decimal(100) + 4 * per_side

    trades = alice.fetch_my_trades(SYMBOL)
    assert len(trades) == 2
    for trade in trades:
        assert Decimal(trade["info"]["builderFee"]) == per_side
        # ccxt adds the builder fee to the trading fee (450 ppm of $600 = $0.27)
        assert Decimal(str(trade["fee"]["cost"])) == Decimal("0.27") + per_side
    spent = Decimal(DEPOSIT) / 10**6 - venue.collateral(ALICE.address)
    assert spent == 2 * (Decimal(600) + Decimal("0.27") + per_side)

    balance = alice.fetch_balance()
    state = venue.info({"type": "clearinghouseState", "user": ALICE.address})
    assert Decimal(str(balance["USDC"]["total"])) == Decimal(state["marginSummary"]["accountValue"])


def test_ccxt_trades_without_a_builder_when_its_builder_cannot_be_approved(venue: Venue) -> None:
    """ccxt's builder holds nothing here: the approval is refused with Hyperliquid's text,
    ccxt drops the builder, and its orders go through paying none."""
    alice, bob = venue.client(ALICE), venue.client(BOB)
    alice.load_markets()
    bob.create_order(SYMBOL, "limit", "sell", 0.01, 60000)
    alice.create_order(SYMBOL, "market", "buy", 0.01, 60000)
    assert alice.options.get("approvedBuilderFee") is not True
    assert alice.options["builderFee"] is False  # what ccxt does when the approval fails
    assert (
        venue.info({"type": "maxBuilderFee", "user": ALICE.address, "builder": CCXT_BUILDER}) == 0
    )
    (trade,) = alice.fetch_my_trades(SYMBOL)
    assert "builderFee" not in trade["info"]
    assert venue.collateral(CCXT_BUILDER) == 0
