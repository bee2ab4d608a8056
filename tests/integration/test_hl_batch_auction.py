"""The Hyperliquid door on a batch-auction market, with the published hyperliquid-python-sdk
on a real node process.

Nothing fills on arrival there. A GTC order waiting for the auction is ``resting`` (it rests
after it); an IOC's answer waits for its auction and is final, as Hyperliquid's IOC answers
are: ``filled`` at the auction's one price, or the could-not-match error. If no auction runs
(this node has no time ticks: only commands move its time), the answer is
``"waitingForFill"``, never ``resting``, and the order stays live for the next auction;
the native API's open orders mark it ``waitingForAuction``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
OPERATOR_TOKEN = "hl-batch-auction-test operator"
PUBLISHER = bytes.fromhex("c377c94d857b217ac94de730b94d5ce0a302f765")
ETH_PRICE = 300_000  # $3,000 in $0.01
INTERVAL_MS = 200
GTC: Any = {"limit": {"tif": "Gtc"}}
IOC: Any = {"limit": {"tif": "Ioc"}}
NO_MATCH = "Order could not immediately match against any resting orders. asset=0"


def key(name: str) -> LocalAccount:
    return Account.from_key(keccak256(f"hl-batch-auction-test {name}".encode()))


ALICE = key("alice")
BOB = key("bob")


class Venue:
    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.l1_index = itertools.count()

    def system(self, *commands: dict[str, Any]) -> None:
        self.node.system(OPERATOR_TOKEN, *commands)

    def advance_time(self) -> None:
        self.system({"type": "advanceTime"})

    def exchange(self, wallet: LocalAccount) -> Exchange:
        return Exchange(wallet, base_url=self.node.url)

    def position_size(self, who: LocalAccount) -> str | None:
        result = self.node.get(f"/v1/accounts/{who.address.lower()}")
        for position in result.json()["positions"]:
            if position["symbol"] == "ETH":
                return str(position["size"])
        return None

    def open_orders(self, who: LocalAccount) -> dict[int, dict[str, Any]]:
        orders = self.node.get(f"/v1/accounts/{who.address.lower()}/orders").json()["orders"]
        return {order["orderId"]: order for order in orders}

    def open_order_ids(self, who: LocalAccount) -> set[int]:
        return set(self.open_orders(who))


@pytest.fixture
def venue(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> Venue:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, [("ETH", 4, 1, 10)], [PUBLISHER])
    with config.open("a") as file:  # the last [[markets]] table: ETH
        file.write(f'ordering = "batch_auction"\nauction_interval_ms = {INTERVAL_MS}\n')
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    result = Venue(launcher.start())
    publisher = "0x" + PUBLISHER.hex()
    result.system({"type": "oraclePrice", "publisher": publisher, "market": 0, "price": ETH_PRICE})
    for who in (ALICE, BOB):
        amount = 100_000 * 10**6
        deposit = {"type": "deposit", "account": who.address, "amount": amount}
        result.system({**deposit, "l1Index": next(result.l1_index)})
    return result


def one(answer: Any) -> Any:
    assert answer["status"] == "ok", answer
    (status,) = answer["response"]["data"]["statuses"]
    return status


def answer_after_an_auction(venue: Venue, send: Callable[[], Any]) -> Any:
    """Send an order from a thread; once its answer is pending, move the venue's time past the
    auction (what a time tick or any later command does) and return the answer."""
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(send()))
    thread.start()
    time.sleep(3 * INTERVAL_MS / 1000)
    assert thread.is_alive(), "the IOC was answered before its auction ran"
    venue.advance_time()
    thread.join(timeout=30)
    assert answers, "no answer after the auction"
    return answers[0]


def test_ioc_answers_come_after_the_auction_never_as_resting(venue: Venue) -> None:
    alice, bob = venue.exchange(ALICE), venue.exchange(BOB)

    ask = one(bob.order("ETH", False, 0.1, 3000, GTC))
    assert set(ask) == {"resting"}  # waits for the auction, then rests: resting is right

    filled = one(answer_after_an_auction(venue, lambda: alice.order("ETH", True, 0.05, 3010, IOC)))
    assert set(filled) == {"filled"}, filled
    # one price for the whole batch: the ask's, closest to the mark of the crossed book
    assert filled["filled"]["totalSz"] == "0.05" and filled["filled"]["avgPx"] == "3000"
    assert filled["filled"]["oid"] not in venue.open_order_ids(ALICE)
    assert venue.position_size(ALICE) == "0.05"

    missed = answer_after_an_auction(venue, lambda: alice.order("ETH", True, 0.05, 2990, IOC))
    assert one(missed) == {"error": NO_MATCH}
    assert venue.position_size(ALICE) == "0.05"

    # no auction runs (nothing moves this node's time): the answer says the order waits
    waiting = one(alice.order("ETH", True, 0.02, 3010, IOC))
    assert waiting == "waitingForFill"
    (live,) = venue.open_order_ids(ALICE)
    # the native API says the same: the IOC waits for the auction; the GTC ask rests
    assert venue.open_orders(ALICE)[live]["waitingForAuction"] is True
    (rest,) = venue.open_orders(BOB).values()
    assert rest["waitingForAuction"] is False and rest["size"] == "0.05"
    info = Info(venue.node.url, skip_ws=True)
    status = info.query_order_by_oid(ALICE.address, live)
    assert status["status"] == "order" and status["order"]["status"] == "open"
    # the next command runs the auction: the waiting IOC fills there, at the batch's price
    venue.advance_time()
    assert venue.open_order_ids(ALICE) == set()
    assert venue.position_size(ALICE) == "0.07"
