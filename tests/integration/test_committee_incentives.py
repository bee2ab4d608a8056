"""Committee incentives on a real committee: 4 member processes on loopback, a fee share.

The venue of examples/committee.toml with ``committee_fee_share_ppm`` set; every member's
engine takes the members from its ``[committee]`` table. Two traders trade through the SDK on
different members; the committee's share of their fees lands in the members' collateral at
the next block markers, the same on every member, and every member ends at the same root.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from asyncdex.cli.committee_cmd import CommitteeProcesses
from asyncdex.cli.committee_config import load_committee
from asyncdex.client import Client, Wallet

# committees are several processes each: one at a time, on one test worker (--dist loadgroup)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("committee")]

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "committee.toml"
TOKEN = "committee-incentives-token"
PUBLISHER = "0xc377c94d857b217ac94de730b94d5ce0a302f765"  # the config's first publisher
SHARE_PPM = 500_000
# 0.01 BTC at $60,000: $600 of notional; maker 1.5 bps + taker 4.5 bps = $0.36 of fees
FEES = Decimal("0.36")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def operator(url: str, commands: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        url + "/v1/system",
        json.dumps({"commands": commands}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def collateral(url: str, address: str) -> Decimal:
    try:
        return Decimal(get(f"{url}/v1/accounts/{address}")["collateral"])
    except urllib.error.HTTPError as error:
        if error.code == 404:  # no account yet: nothing earned
            return Decimal(0)
        raise


@pytest.fixture
def committee(tmp_path: Path, free_port_base: int) -> Any:
    config = tmp_path / "venue.toml"
    config.write_text(f"committee_fee_share_ppm = {SHARE_PPM}\n" + CONFIG.read_text())
    log = (tmp_path / "members.log").open("w")
    processes = CommitteeProcesses(
        tmp_path / "committee",
        config,
        4,
        port=free_port_base,
        consensus_port=free_port_base + 4,
        node_args=("--operator-token", TOKEN),
        log=log,
    )
    try:
        processes.start_all()
        yield processes
    finally:
        processes.stop_all()
        log.close()


def test_members_earn_the_share_of_fees_on_every_member(committee: CommitteeProcesses) -> None:
    urls = [committee.url(index) for index in range(4)]
    seat = load_committee(committee.configs[0])
    assert seat is not None
    members = ["0x" + member.hex() for member in seat.members]
    seller, buyer = Wallet(secrets.token_bytes(32)), Wallet(secrets.token_bytes(32))
    operator(
        urls[0],
        [
            {"type": "deposit", "account": "0x" + seller.address.hex(), "amount": 10**10,
             "l1Index": 0},
            {"type": "deposit", "account": "0x" + buyer.address.hex(), "amount": 10**10,
             "l1Index": 1},
            {"type": "oraclePrice", "publisher": PUBLISHER, "market": 0, "price": 600_000},
        ],
    )  # fmt: skip
    for url in urls:
        wait_for(partial(collateral, url, "0x" + buyer.address.hex()), 30, "deposits")
    assert all(collateral(url, member) == 0 for url in urls for member in members)

    with Client.connect(urls[1], seller) as client:
        rested = client.place_order("BTC", "sell", "0.01", "60000")
        assert client.wait_for(rested, "executed", timeout=30).rejection is None
    with Client.connect(urls[2], buyer) as client:
        filled = client.wait_for(
            client.place_order("BTC", "buy", "0.01", "60000", tif="IOC"), "executed", timeout=30
        )
        assert filled.rejection is None and filled.events_of("TradeExecuted")
    # a later block's marker pays for the block that held the trade
    operator(urls[3], [{"type": "oraclePrice", "publisher": PUBLISHER, "market": 0,
                        "price": 600_010}])  # fmt: skip

    share = FEES * SHARE_PPM / 1_000_000

    def earned(url: str) -> Decimal | None:
        total = sum((collateral(url, member) for member in members), Decimal(0))
        # what is not paid yet is under one micro-USDC per recipient (at most 4 of them)
        return total if share - Decimal("0.000004") < total <= share else None

    totals = [wait_for(partial(earned, url), 30, f"rewards on {url}") for url in urls]
    assert len(set(totals)) == 1
    balances = [[collateral(url, member) for member in members] for url in urls]
    assert all(row == balances[0] for row in balances)
    assert sum(1 for amount in balances[0] if amount > 0) >= 3  # a quorum signed, a leader led

    def same_root() -> bool:
        statuses = [get(f"{url}/v1/status") for url in urls]
        return len({s["appliedSeq"] for s in statuses}) == 1 and (
            len({s["stateRoot"] for s in statuses}) == 1
        )

    wait_for(same_root, 30, "the same root on every member")
