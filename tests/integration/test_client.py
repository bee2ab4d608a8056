"""The SDK against a real node process on loopback.

Collateral and oracle prices enter through the node's operator endpoint (``/v1/system``);
everything else goes through :class:`asyncdex.client.Client` and
:class:`asyncdex.client.AsyncClient`: limit, market, modify, cancel (by id, by client id,
all), one-request batches, leverage and isolated margin, withdrawals, an agent wallet
trading for its master and refused when it withdraws. Each outcome is read back with
``wait_for(..., "executed")``: the fill, the resting order or the numbered rejection.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from asyncdex.client import (
    AgentNotAllowed,
    AgentWallet,
    AsyncClient,
    Client,
    IntakeRefused,
    IntentStatus,
    NodeError,
    Wallet,
)
from asyncdex.client.nonces import wall_clock_ms
from asyncdex.messages.reasons import CancelReason, Reject
from asyncdex.signing.eip712 import SECP256K1_N, LocalSigner
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(CHAIN_ID, CONTRACT)
MARKETS = (("BTC", 5, 10, 10), ("ETH", 4, 1, 10))  # symbol, sz_decimals, tick, lot
OPERATOR_TOKEN = "client-test operator"
PUBLISHER = LocalSigner(keccak256(b"client-test publisher")).address
BTC_PRICE = 600_000  # $60,000.0 in $0.1
ETH_PRICE = 300_000  # $3,000.00 in $0.01
DEPOSIT = 10_000 * 10**6  # micro-USDC
HIGH_S = (SECP256K1_N - 1).to_bytes(32, "big")  # upper half of the order: malleable


def wallet(name: str) -> Wallet:
    return Wallet(keccak256(f"client-test {name}".encode()))


ALICE = wallet("alice")
BOB = wallet("bob")


@dataclass
class Venue:
    node: RunningNode
    config: Path
    l1_index: Iterator[int]

    def system(self, *commands: dict[str, Any]) -> None:
        self.node.system(OPERATOR_TOKEN, *commands)

    def deposit(self, account: bytes, amount: int = DEPOSIT) -> None:
        self.system(
            {
                "type": "deposit",
                "account": "0x" + account.hex(),
                "amount": amount,
                "l1Index": next(self.l1_index),
            }
        )

    def publish_prices(self) -> None:
        publisher = "0x" + PUBLISHER.hex()
        self.system(
            {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": BTC_PRICE},
            {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": ETH_PRICE},
        )

    def client(self, who: Wallet | AgentWallet, **options: Any) -> Client:
        return Client.from_venue_file(self.node.url, who, self.config, **options)

    def async_client(self, who: Wallet | AgentWallet, **options: Any) -> AsyncClient:
        return AsyncClient.from_venue_file(self.node.url, who, self.config, **options)


@pytest.fixture
def venue(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> Venue:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    result = Venue(launcher.start(), config, itertools.count())
    result.publish_prices()
    result.deposit(ALICE.account)
    result.deposit(BOB.account)
    return result


def executed(client: Client, receipt: Any) -> IntentStatus:
    status = client.wait_for(receipt, "executed")
    assert status.seq == receipt.seq and status.events_known
    return status


def accepted(status: IntentStatus) -> int:
    assert status.rejection is None, status.events
    order_id = status.order_id
    assert order_id is not None, status.events
    return order_id


# ---------------------------------------------------------------------------------------------


def test_sync_client_place_modify_cancel_batch_cancel_all(venue: Venue) -> None:
    with venue.client(ALICE) as alice:
        placed = executed(alice, alice.place_order("BTC", "buy", "0.001", "59000"))
        order_id = accepted(placed)
        assert placed.events_of("OrderRested") and not placed.fills

        modified = executed(alice, alice.modify("BTC", order_id, "59500", "0.002"))
        (event,) = modified.events_of("OrderModified")
        assert (event["orderId"], event["price"], event["size"]) == (order_id, 595_000, 200)

        cancelled = executed(alice, alice.cancel("BTC", order_id))
        assert cancelled.cancelled == [(order_id, CancelReason.USER)]
        again = executed(alice, alice.cancel("BTC", order_id))
        assert again.rejection is not None and again.rejection.reject is Reject.UNKNOWN_ORDER

        # One request, three intents, sequenced together in order.
        receipts = alice.batch(
            [
                alice.build.place_order("BTC", "buy", "0.001", "58000", client_id=11),
                alice.build.place_order("ETH", "sell", "0.01", "3100", tif="ALO", client_id=12),
                alice.build.cancel_by_client_id("BTC", 11),
            ]
        )
        assert [r.seq for r in receipts] == list(range(receipts[0].seq, receipts[0].seq + 3))
        first, second, by_client_id = (executed(alice, r) for r in receipts)
        btc_order, eth_order = accepted(first), accepted(second)
        assert by_client_id.cancelled == [(btc_order, CancelReason.USER)]

        everything = executed(alice, alice.cancel_all())
        assert everything.cancelled == [(eth_order, CancelReason.USER)]


def test_async_client_fill_rejection_leverage_isolated_margin(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.async_client(ALICE) as alice, venue.async_client(BOB) as bob:
            # Bob rests a post-only ask; Alice takes it with a market order.
            ask = await bob.wait_for(
                await bob.place_order("ETH", "sell", "0.01", "3000", tif="ALO")
            )
            ask_id = accepted(ask)
            lever = await alice.wait_for(await alice.set_leverage("ETH", 5, isolated=True))
            (leverage,) = lever.events_of("LeverageSet")
            assert (leverage["leverage"], leverage["isolated"]) == (5, True)

            taken = await alice.wait_for(await alice.market_order("ETH", "buy", "0.01"))
            (fill,) = taken.fills
            assert (fill.price, fill.size, fill.maker_order) == (ETH_PRICE, 100, ask_id)
            assert fill.taker == "0x" + ALICE.account.hex() and fill.taker_is_buy

            moved = await alice.wait_for(await alice.update_isolated_margin("ETH", "5"))
            (event,) = moved.events_of("IsolatedMarginMoved")
            assert event["delta"] == 5_000_000

            # A rejection is an outcome with its reason, not an exception.
            too_big = await alice.wait_for(await alice.place_order("BTC", "buy", "10", "59000"))
            assert too_big.rejection is not None
            assert too_big.rejection.reject is Reject.INSUFFICIENT_MARGIN
            assert too_big.order_id is None

            dead_man = wall_clock_ms() + 3_600_000
            scheduled = await alice.wait_for(await alice.schedule_cancel(dead_man))
            assert scheduled.events_of("ScheduledCancelSet")[0]["atTime"] == dead_man

    asyncio.run(scenario())


def test_agent_trades_for_its_master_and_may_not_withdraw(venue: Venue) -> None:
    agent_wallet = AgentWallet.generate(ALICE.account)
    with venue.client(ALICE) as alice, venue.client(agent_wallet) as agent:
        # not yet approved: refused before sequencing, with the engine's reason
        with pytest.raises(IntakeRefused) as unknown:
            agent.place_order("BTC", "buy", "0.001", "59000")
        assert unknown.value.code == "unknown_agent"

        valid_until = wall_clock_ms() + 3_600_000
        approval = executed(alice, alice.approve_agent(agent_wallet, valid_until, name="bot"))
        (approved,) = approval.events_of("AgentApproved")
        assert approved["agent"] == "0x" + agent_wallet.address.hex()

        placed = executed(agent, agent.place_order("BTC", "buy", "0.001", "59000"))
        order_id = accepted(placed)
        assert placed.events_of("OrderAccepted")[0]["account"] == "0x" + ALICE.account.hex()
        assert executed(alice, alice.cancel("BTC", order_id)).cancelled  # the master's order

        with pytest.raises(IntakeRefused) as not_allowed:
            agent.withdraw("10")
        assert not_allowed.value.code == "agent_not_allowed"
        with pytest.raises(AgentNotAllowed):
            agent.approve_agent(Wallet.generate().account)

        withdrawn = executed(alice, alice.withdraw("10"))
        (event,) = withdrawn.events_of("Withdrawn")
        assert event["amount"] == 10_000_000


def test_refusals_domain_mismatch_and_resubmission(venue: Venue) -> None:
    with venue.client(ALICE) as alice:
        # Refused at intake: nothing is sequenced, the error names the field.
        last_seq = alice.node_status()["lastSeq"]
        good = alice.sign(alice.build.place_order("BTC", "buy", "0.001", "59000"))
        malleable = good._replace(signature=good.signature[:32] + HIGH_S + good.signature[64:])
        with pytest.raises(IntakeRefused) as caught:
            alice.submit([good, malleable])
        refused = caught.value
        assert (refused.code, refused.field, refused.index) == (
            "malleable_signature",
            "signature",
            1,
        )
        assert alice.node_status()["lastSeq"] == last_seq  # not even the good one

        # Resubmitting one signed intent (what a retry does) has one effect: the node
        # answers with the first receipt and sequences nothing.
        signed = alice.sign(alice.build.place_order("BTC", "buy", "0.001", "59000"))
        (first,) = alice.submit([signed])
        last_seq = alice.node_status()["lastSeq"]
        (copy,) = alice.submit([signed])
        assert copy == first
        assert alice.node_status()["lastSeq"] == last_seq
        assert accepted(executed(alice, first))
        # a different intent reusing a spent nonce is refused before sequencing
        reused = alice.sign(
            alice.build.place_order("BTC", "buy", "0.001", "58000")._replace(
                nonce=signed.intent.nonce
            )
        )
        with pytest.raises(IntakeRefused) as spent:
            alice.submit([reused])
        assert spent.value.code == "nonce_already_used"
        assert alice.node_status()["lastSeq"] == last_seq

    # signed for another chain: it recovers to a stranger, refused before sequencing
    wrong_chain = Client(venue.node.url, ALICE, CHAIN_ID + 1, CONTRACT, None)
    with wrong_chain, pytest.raises(IntakeRefused) as mismatch:
        wrong_chain.cancel_all()
    assert mismatch.value.code == "unknown_agent"


def test_connect_takes_domain_and_markets_from_the_node(venue: Venue) -> None:
    # no config file on the client's side: GET /v1/venue says what to sign for
    with Client.connect(venue.node.url, ALICE) as alice:
        assert alice.domain == DOMAIN
        assert [(m.symbol, m.market_id, m.sz_decimals) for m in alice.markets.values()] == [
            ("BTC", 0, 5),
            ("ETH", 1, 4),
        ]
        facts = alice.venue()
        assert facts.settlement_contract is None  # this node does not settle
        assert facts.settlement_chain is None
        assert facts.hyperliquid_network == "testnet"
        order_id = accepted(executed(alice, alice.place_order("BTC", "buy", "0.001", "59000")))
        assert not executed(alice, alice.cancel("BTC", order_id)).rejection

    async def trade() -> None:
        async with AsyncClient.connect(venue.node.url, BOB) as bob:
            assert bob.domain == DOMAIN
            receipt = await bob.place_order("ETH", "sell", "0.5", "3100", tif="ALO")
            assert (await bob.wait_for(receipt)).rejection is None
        assert bob._session is None  # closed with the block
        connected = await AsyncClient.connect(venue.node.url, BOB)
        try:
            assert connected.markets["ETH"].sz_decimals == 4
        finally:
            await connected.close()

    asyncio.run(trade())


def test_connect_to_a_server_without_the_venue_endpoint_says_so(venue: Venue) -> None:
    # an older node, or another server: here a prefix under which the node serves nothing
    with pytest.raises(NodeError, match="no GET /v1/venue"):
        Client.connect(venue.node.url + "/nothing", ALICE)
