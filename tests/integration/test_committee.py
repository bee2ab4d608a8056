"""A venue on a committee of 4 member processes on loopback, the leader killed mid-load.

Traders send signed intents through the SDK, and Hyperliquid actions through the
Hyperliquid-compatible API, to different members while the leader of the moment is
SIGKILLed. Checked: a new leader commits within the timeout; every acknowledged
intent executes (none is lost, none twice); every member, the killed one restarted, holds the
same journal records (so the same state root at every seq); each intent's status shows
``ordered`` with the certificate that committed it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import committee_support
import pytest
from committee_support import (
    PUBLISHER,
    get,
    has_account,
    local_committee,
    stopped_with_one_history,
    wait_for,
)
from eth_account import Account
from hyperliquid.exchange import Exchange

from asyncdex.cli.committee_cmd import CommitteeProcesses
from asyncdex.client import Client, Wallet
from asyncdex.client.status import Receipt

# committees are several processes each: one at a time, on one test worker (--dist loadgroup)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("committee")]

TOKEN = "committee-test-token"
BUDGETS = ("--ip-weight-per-minute", "1000000000", "--address-initial-requests", "1000000000")


def operator(url: str, commands: list[dict[str, Any]]) -> Any:
    return committee_support.operator(url, TOKEN, commands)


def status(url: str) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = get(url + "/v1/status")
        return document
    except (OSError, ValueError):
        return None


@pytest.fixture
def committee(tmp_path: Path, free_port_base: int) -> Iterator[CommitteeProcesses]:
    with local_committee(tmp_path, free_port_base, TOKEN, node_args=BUDGETS) as processes:
        yield processes


def test_the_committee_trades_through_a_leader_crash(committee: CommitteeProcesses) -> None:
    urls = [committee.url(index) for index in range(4)]
    wallets = [Wallet(secrets.token_bytes(32)) for _ in range(3)]
    hl_wallet = Account.from_key(secrets.token_bytes(32))
    accounts = ["0x" + w.address.hex() for w in wallets] + [hl_wallet.address.lower()]
    operator(
        urls[0],
        [
            {"type": "deposit", "account": account, "amount": 10**11, "l1Index": i}
            for i, account in enumerate(accounts)
        ],
    )
    stop_prices = threading.Event()

    def keep_prices_fresh() -> None:
        turn = 0
        while not stop_prices.is_set():
            for url in urls[turn % 4 :] + urls[: turn % 4]:  # any live member relays them
                try:
                    operator(url, [{"type": "oraclePrice", "publisher": PUBLISHER, "market": 0,
                                    "price": 600_000}])  # fmt: skip
                    break
                except OSError:
                    continue
            turn += 1
            stop_prices.wait(1.0)

    prices = threading.Thread(target=keep_prices_fresh, daemon=True)
    prices.start()
    for account in accounts:
        wait_for(
            lambda account=account: all(has_account(url, account) for url in urls),
            30,
            "the deposits on every member",
        )

    receipts: list[tuple[int, Receipt]] = []
    failures: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def trade(trader: int) -> None:
        # each trader on its own member (never member 0's neighbour of the kill: see below)
        member = [1, 2, 3][trader]
        with Client.connect(urls[member], wallets[trader]) as client:
            for step in range(40):
                side = "buy" if (step + trader) % 2 else "sell"
                price = "59900" if side == "buy" else "60100"
                if step % 5 == 4:
                    price = "60100" if side == "buy" else "59900"  # crosses: trades
                try:
                    receipt = client.place_order("BTC", side, "0.001", price)
                except Exception as exc:  # a member that is down refuses: not acknowledged
                    with lock:
                        failures.append(f"trader {trader}: {exc}")
                    continue
                with lock:
                    receipts.append((member, receipt))
                time.sleep(0.02)

    hl_answers: list[Any] = []

    def trade_hyperliquid() -> None:
        # a Hyperliquid client on member 0, moving on to the next member if its member dies
        member = 0
        exchange = Exchange(hl_wallet, base_url=urls[member])
        for step in range(20):
            is_buy = step % 2 == 0
            try:
                answer = exchange.order(
                    "BTC",
                    is_buy,
                    0.001,
                    59_800.0 if is_buy else 60_200.0,
                    {"limit": {"tif": "Gtc"}},
                )
            except Exception as exc:
                with lock:
                    failures.append(f"hyperliquid: {exc}")
                member = (member + 1) % 4
                exchange = Exchange(hl_wallet, base_url=urls[member])
                continue
            with lock:
                hl_answers.append(answer)
            time.sleep(0.02)

    traders = [threading.Thread(target=trade, args=(t,)) for t in range(3)]
    traders.append(threading.Thread(target=trade_hyperliquid))
    for thread in traders:
        thread.start()
    # kill the leader of the moment while the traders trade
    time.sleep(1.0)
    leader_status = status(urls[0])
    assert leader_status is not None
    leader = leader_status["committee"]["leader"]
    before = max(s["committee"]["committedHeight"] for s in map(status, urls) if s)
    committee.kill(leader)
    killed.set()
    alive = [url for index, url in enumerate(urls) if index != leader]
    wait_for(
        lambda: any(
            (s := status(url)) is not None and s["committee"]["committedHeight"] > before + 2
            for url in alive
        ),
        10,
        "blocks committed under a new leader",
    )
    for thread in traders:
        thread.join(120)
    # A Hyperliquid answer comes once its order executed on the member that answered, which
    # may be past every receipt's seq: the members must all get at least this far.
    traded_seq = max(s["appliedSeq"] for url in urls if (s := status(url)) is not None)
    committee.restart(leader)
    stop_prices.set()
    prices.join(10)

    # no acknowledged intent is lost, none executed twice
    assert len(receipts) >= 60, failures
    seqs = set()
    for member, receipt in receipts:
        url = urls[member]
        document = _intent_status(urls, receipt.intent_id, prefer=url)
        assert document["status"] == "executed", document
        assert document["ordered"] is not None and document["ordered"]["certificate"] is not None
        assert len(document["ordered"]["certificate"]["signers"]) >= 3
        seqs.add(document["seq"])
    assert len(seqs) == len(receipts)
    # the Hyperliquid actions were ordered by the committee too: each answer is the engine's
    resting = [
        answer["response"]["data"]["statuses"][0]["resting"]["oid"]
        for answer in hl_answers
        if answer.get("status") == "ok"
    ]
    assert len(resting) >= 10, (hl_answers, failures)
    # every member, the restarted one too, executed all of it ...
    traded_seq = max(traded_seq, *seqs)
    for url in urls:
        wait_for(
            lambda url=url: (s := status(url)) is not None and s["appliedSeq"] >= traded_seq,
            60,
            f"{url} to execute every intent",
        )
        orders = get(f"{url}/v1/accounts/{hl_wallet.address.lower()}/orders")["orders"]
        assert {order["orderId"] for order in orders} >= set(resting)
    # ... in one history: the same journal records, so the same state root at every seq
    assert stopped_with_one_history(committee) >= traded_seq


def _intent_status(urls: list[str], intent_id: str, prefer: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        for url in [prefer, *urls]:
            try:
                document: dict[str, Any] = get(f"{url}/v1/intents/{intent_id}")
            except (OSError, ValueError):
                continue
            if document["status"] == "executed" or time.monotonic() > deadline:
                return document
        time.sleep(0.1)
