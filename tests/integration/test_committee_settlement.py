"""A committee of 4 member processes settling on the embedded chain: every batch reaches the
CommitteeSettlement contract only with a quorum's certificate, and a trader's withdrawal is
claimed on chain with a proof from any member.

The members deposit, trade and withdraw through the committee (the L1 deposit is seen by every
member's watcher and ordered once), cut the same batches, sign them with their member keys,
exchange the signatures over the committee's links and post the certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from committee_support import PUBLISHER, get, local_committee, operator, wait_for
from eth_account import Account

from asyncdex.cli.committee_cmd import CommitteeProcesses
from asyncdex.client import Client, Wallet
from asyncdex.settlement.chain import CommitteeSettlementClient, RpcChain
from asyncdex.settlement.devchain import DEV_KEYS

# committees are several processes each: one at a time, on one test worker (--dist loadgroup)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("committee")]

TOKEN = "committee-settlement-token"
DEPOSIT = 50_000 * 10**6
WITHDRAWAL = 1_234 * 10**6
PRICE = {"type": "oraclePrice", "publisher": PUBLISHER, "market": 0, "price": 600_000}


@pytest.fixture
def committee(tmp_path: Path, free_port_base: int) -> Iterator[CommitteeProcesses]:
    with local_committee(
        tmp_path, free_port_base, TOKEN, node_args=("--confirmations", "1"), settle=True
    ) as processes:
        yield processes


def test_quorum_certified_batches_and_a_claimed_withdrawal(committee: CommitteeProcesses) -> None:
    assert committee.chain is not None and committee.deployment is not None
    urls = [committee.url(index) for index in range(4)]
    chain = RpcChain(committee.chain.url, DEV_KEYS)
    client = CommitteeSettlementClient.at(chain, committee.deployment["settlement"])
    assert client.quorum() == 3
    trader_key = DEV_KEYS[9]
    trader = Account.from_key(trader_key).address
    client.mint(trader_key, trader, DEPOSIT)
    client.approve(trader_key, DEPOSIT)
    client.deposit(trader_key, DEPOSIT)
    for url in urls:  # every member's watcher saw it; the committee ordered it once
        wait_for(
            lambda url=url: (
                get(f"{url}/v1/accounts/{trader.lower()}")["collateral"] == str(DEPOSIT // 10**6)
            ),
            120,  # generous: a loaded machine; the test never asserts a duration
            f"the deposit on {url}",
        )
    operator(urls[0], TOKEN, [PRICE])

    with Client.connect(urls[1], Wallet(trader_key)) as trading:
        receipt = trading.withdraw(WITHDRAWAL)
        executed = trading.wait_for(receipt, "executed", timeout=60)
        assert executed.rejection is None, executed.events
        (withdrawn,) = executed.events_of("Withdrawn")
        final = trading.wait_for(receipt, "finalized", timeout=90)
    batch = final.batch
    assert batch is not None and client.is_final(batch)
    # the batch went through the contract's certificate check: only a quorum's passes it
    commits = {commit.batch_number: commit for commit in client.batch_commits()}
    assert batch in commits

    proof = wait_for(  # member 3 sees the batch final on its own watch of the chain
        lambda: (
            (p := get(f"{urls[3]}/v1/withdrawals/{withdrawn['withdrawalId']}/proof"))["claimable"]
            and p
        ),
        60,
        "the proof on another member",
    )
    assert (proof["batch"], proof["claimable"], proof["amount"]) == (batch, True, WITHDRAWAL)
    before = client.token_balance(trader)
    client.claim_withdrawal(
        DEV_KEYS[0], batch, withdrawn["withdrawalId"], trader, WITHDRAWAL,
        [bytes.fromhex(node[2:]) for node in proof["proof"]], proof["index"],
    )  # fmt: skip
    assert client.token_balance(trader) == before + WITHDRAWAL
    # every member settled the same batches and holds the same state
    statuses = [get(f"{url}/v1/status") for url in urls]
    assert all(s["settlement"]["fatalError"] is None for s in statuses)
    assert min(s["settlement"]["lastCommittedBatch"] for s in statuses) >= batch
