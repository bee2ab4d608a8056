"""Committee incentives on a real committee: 4 member processes on loopback, a fee share.

The venue of examples/committee.toml with ``committee_fee_share_ppm`` set; every member's
engine takes the members from its ``[committee]`` table. Two traders trade through the SDK on
different members; the committee's share of their fees lands in the members' collateral at
the next block markers, the same on every member, and every member ends at the same root.
"""

from __future__ import annotations

import secrets
import urllib.error
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import committee_support
import pytest
from committee_support import (
    COMMITTEE_CONFIG,
    PUBLISHER,
    get,
    local_committee,
    stopped_with_one_history,
    wait_for,
)

from asyncdex.cli.committee_cmd import CommitteeProcesses
from asyncdex.cli.committee_config import load_committee
from asyncdex.client import Client, Wallet

# committees are several processes each: one at a time, on one test worker (--dist loadgroup)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("committee")]

TOKEN = "committee-incentives-token"
SHARE_PPM = 500_000
# 0.01 BTC at $60,000: $600 of notional; maker 1.5 bps + taker 4.5 bps = $0.36 of fees
FEES = Decimal("0.36")


def operator(url: str, commands: list[dict[str, Any]]) -> None:
    committee_support.operator(url, TOKEN, commands)


def collateral(url: str, address: str) -> Decimal:
    try:
        return Decimal(get(f"{url}/v1/accounts/{address}")["collateral"])
    except urllib.error.HTTPError as error:
        if error.code == 404:  # no account yet: nothing earned
            return Decimal(0)
        raise


@pytest.fixture
def committee(tmp_path: Path, free_port_base: int) -> Iterator[CommitteeProcesses]:
    config = tmp_path / "venue.toml"
    config.write_text(f"committee_fee_share_ppm = {SHARE_PPM}\n" + COMMITTEE_CONFIG.read_text())
    with local_committee(tmp_path, free_port_base, TOKEN, config=config) as processes:
        yield processes


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

    # one history on every member: the same records, so the same root at every seq
    stopped_with_one_history(committee)
