"""End to end: a real node process that settles on a chain, traded through the SDK.

Mostly the demo shape (``[settlement] deploy = true``): the node deploys the token and the
settlement contract on its embedded chain, takes deposits from the chain through its
watcher, cuts a batch every half second of sequenced time and finalizes it two blocks later.
Collateral enters with ``POST /v1/dev/deposit`` (minted and deposited on chain, sequenced by
the watcher) and oracle prices with ``POST /v1/system``; every trader action goes through
:class:`asyncdex.client.Client` or :class:`asyncdex.client.AsyncClient`.

- A trading session: a resting bid is modified and cancelled, a crossing order fills against
  a resting ask, a withdrawal leaves. Balances are checked to the micro-USDC against sums
  written out here (notional, fees rounded up, the withdrawn amount), positions against the
  fills, and every intent reaches ``finalized`` with its batch and commit transaction; the
  withdrawal's proof from the node verifies against its batch's withdrawals root.
- A liquidation: a 20x long is pushed under maintenance margin by an oracle move; the
  oracle record's own events show the liquidation, the protocol's sale into a resting bid
  at the bid's price, the fee to the insurance fund and no bad debt; the account ends flat
  with nothing left, and the record is finalized like any other.
- A withdrawal claimed on chain: the embedded chain lives inside the node process, so this
  one runs on anvil (the local-node shape, ``--chain-rpc``): a deposit made on chain, the
  withdrawal through the SDK, ``finalized``, then ``claimWithdrawal`` with the node's proof
  pays the account's token balance exactly the amount, once; the contract keeps the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account

from asyncdex.cli.node_cmd import load_config
from asyncdex.client import AsyncClient, Client, IntentStatus, Receipt, Wallet
from asyncdex.client.markets import Markets
from asyncdex.commitment.leaves import withdrawal_leaf
from asyncdex.commitment.merkle import verify_proof
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.reasons import CancelReason
from asyncdex.settlement.chain import ContractReverted, RpcChain, SettlementClient
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import Anvil, NodeLauncher, RunningNode

pytestmark = pytest.mark.integration

OPERATOR_TOKEN = "e2e-test operator"
PUBLISHER = LocalSigner(keccak256(b"e2e-test publisher")).address
USDC = 1_000_000  # micro-USDC per USDC
BTC = 0
BTC_SZ_DECIMALS = 5  # sizes in 10^-5 BTC, prices in $0.1
MAKER_FEE_PPM = 150
TAKER_FEE_PPM = 450
LIQUIDATION_FEE_PPM = 10_000
WAIT = 60.0  # seconds one condition may take before the test fails
BATCH_INTERVAL_MS = 500
TICK_MS = 100


def trader(name: str) -> Wallet:
    return Wallet(keccak256(f"e2e-test {name}".encode()))


def write_config(path: Path) -> Path:
    # An oracle price stays fresh for an hour: time ticks advance the engine's clock every
    # 100 ms, and a test must not depend on republishing prices in time. Funding is paid at
    # interval boundaries of the clock: one every ~31 years keeps balances exact whenever
    # the test runs.
    path.write_text(
        f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n'
        "[settlement]\ndeploy = true\nfinality_blocks = 2\nblock_time_ms = 200\n\n"
        '[[markets]]\nsymbol = "BTC"\n'
        f"sz_decimals = {BTC_SZ_DECIMALS}\ntick = 10\nlot = 10\n"
        f"maker_fee_ppm = {MAKER_FEE_PPM}\ntaker_fee_ppm = {TAKER_FEE_PPM}\n"
        f"liquidation_fee_ppm = {LIQUIDATION_FEE_PPM}\noracle_staleness_ms = 3600000\n"
        "funding_interval_ms = 1000000000000\n"
    )
    return path


def fee(notional: int, ppm: int) -> int:
    """A charged fee: rounded up, in the protocol's favour."""
    return -(-notional * ppm // 1_000_000)


def micro_usdc(text: str) -> int:
    value = Decimal(text) * USDC
    assert value == value.to_integral_value(), text
    return int(value)


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Venue:
    node: RunningNode
    launcher: NodeLauncher
    chain_id: int
    contract: str
    markets: Markets

    def client(self, wallet: Wallet) -> Client:
        return Client(self.node.url, wallet, self.chain_id, self.contract, self.markets)

    def async_client(self, wallet: Wallet) -> AsyncClient:
        return AsyncClient(self.node.url, wallet, self.chain_id, self.contract, self.markets)

    def settlement(self) -> dict[str, Any]:
        status: dict[str, Any] = self.node.status()["settlement"]
        return status

    def deposit(self, wallet: Wallet, amount: int) -> None:
        """Mint and deposit on the chain; returns once the engine has credited it."""
        before = self.settlement()["l1Consumed"]
        document = {"account": "0x" + wallet.account.hex(), "amount": amount}
        result = self.node.post_json("/v1/dev/deposit", document, OPERATOR_TOKEN)
        assert result.status == 200, result.body
        answer = result.json()
        assert answer["l1Index"] == before and answer["txHash"].startswith("0x")
        assert len(answer["txHash"]) == 66
        wait_until(lambda: self.settlement()["l1Consumed"] > before, "the deposit")

    def oracle_price(self, price: int) -> int:
        """Publish a BTC price; returns the record's seq."""
        command = {
            "type": "oraclePrice",
            "publisher": "0x" + PUBLISHER.hex(),
            "market": BTC,
            "price": price,
        }
        (receipt,) = self.node.system(OPERATOR_TOKEN, command)
        assert receipt["intentId"] is None
        seq: int = receipt["seq"]
        return seq

    def account(self, wallet: Wallet) -> dict[str, Any]:
        result = self.node.get(f"/v1/accounts/0x{wallet.account.hex()}")
        assert result.status == 200, result.body
        document: dict[str, Any] = result.json()
        return document

    def collateral(self, wallet: Wallet) -> int:
        return micro_usdc(self.account(wallet)["collateral"])

    def position(self, wallet: Wallet) -> tuple[str, str] | None:
        """(size, entry price) of the BTC position, as decimal strings; None when flat."""
        positions = self.account(wallet)["positions"]
        if not positions:
            return None
        (position,) = positions
        assert position["market"] == BTC
        return position["size"], position["entryPrice"]


@pytest.fixture
def venue(tmp_path: Path, node_launcher: Callable[..., NodeLauncher]) -> Venue:
    config = write_config(tmp_path / "venue.toml")
    launcher = node_launcher(
        tmp_path / "data",
        config,
        operator_token=OPERATOR_TOKEN,
        extra_args=["--batch-interval-ms", str(BATCH_INTERVAL_MS), "--tick-ms", str(TICK_MS)],
    )
    node = launcher.start()
    assert node.ready["settlement"] is True
    markets = Markets.from_config(load_config(config)[0])
    return Venue(node, launcher, node.ready["chainId"], node.ready["contract"], markets)


def assert_finalized(status: IntentStatus, receipt: Receipt) -> None:
    assert (status.seq, status.status) == (receipt.seq, "finalized"), status
    assert status.intent_id == receipt.intent_id
    assert isinstance(status.batch, int) and status.batch >= 1
    assert status.tx_hash is not None and len(status.tx_hash) == 66
    int(status.tx_hash, 16)


def wait_seq_finalized(client: Client, seq: int) -> IntentStatus:
    """A system command has no intent id: follow its record by seq."""
    return wait_until(
        lambda: (s := client.status_of_seq(seq)).reached("finalized") and s,
        f"seq {seq} to be finalized",
    )


# ---------------------------------------------------------------------------------------------


def test_place_fill_modify_cancel_withdraw_reach_finality(venue: Venue) -> None:
    alice, bob = trader("alice"), trader("bob")
    deposit = 10_000 * USDC
    venue.deposit(alice, deposit)
    venue.deposit(bob, deposit)
    assert venue.collateral(alice) == venue.collateral(bob) == deposit
    price_seq = venue.oracle_price(600_000)  # $60,000.0

    with venue.client(alice) as a, venue.client(bob) as b:
        receipts: list[tuple[Client, Receipt]] = []

        def executed(client: Client, receipt: Receipt) -> IntentStatus:
            receipts.append((client, receipt))
            status = client.wait_for(receipt, "executed", timeout=WAIT)
            assert status.events_known and status.rejection is None, status.events
            return status

        assert wait_seq_finalized(a, price_seq).events_of("MarkPriceUpdated")

        # Bob rests an ask; Alice rests a bid below it, moves it up and doubles it, then
        # cancels it.
        ask = executed(b, b.place_order("BTC", "sell", "0.01", "60000"))
        ask_id = ask.order_id
        assert ask_id is not None and ask.events_of("OrderRested") and not ask.fills
        bid = executed(a, a.place_order("BTC", "buy", "0.01", "59000", client_id=41))
        bid_id = bid.order_id
        assert bid_id is not None and bid.events_of("OrderRested")
        modified = executed(a, a.modify("BTC", bid_id, "59500", "0.02"))
        (event,) = modified.events_of("OrderModified")
        assert (event["orderId"], event["price"], event["size"]) == (bid_id, 595_000, 2_000)
        cancelled = executed(a, a.cancel("BTC", bid_id))
        assert cancelled.cancelled == [(bid_id, CancelReason.USER)]
        assert venue.node.get(f"/v1/accounts/0x{alice.account.hex()}/orders").json()["orders"] == []

        # A crossing limit fills at the resting ask's price, not its own.
        taken = executed(a, a.place_order("BTC", "buy", "0.01", "60500", tif="IOC"))
        (fill,) = taken.fills
        notional = 600_000 * 1_000  # price in $0.1 times size in 10^-5 BTC: micro-USDC
        assert notional == 600 * USDC
        taker_fee, maker_fee = fee(notional, TAKER_FEE_PPM), fee(notional, MAKER_FEE_PPM)
        assert (taker_fee, maker_fee) == (270_000, 90_000)
        assert (fill.price, fill.size, fill.maker_order, fill.taker_is_buy) == (
            600_000,
            1_000,
            ask_id,
            True,
        )
        assert (fill.maker, fill.taker) == ("0x" + bob.account.hex(), "0x" + alice.account.hex())
        assert (fill.maker_fee, fill.taker_fee) == (maker_fee, taker_fee)
        assert venue.position(alice) == ("0.01", "60000")
        assert venue.position(bob) == ("-0.01", "60000")
        assert venue.collateral(alice) == deposit - notional - taker_fee
        assert venue.collateral(bob) == deposit + notional - maker_fee

        withdrawn_status = executed(a, a.withdraw("100"))
        (withdrawn,) = withdrawn_status.events_of("Withdrawn")
        assert withdrawn["amount"] == 100 * USDC
        assert withdrawn["account"] == "0x" + alice.account.hex()
        assert venue.collateral(alice) == deposit - notional - taker_fee - 100 * USDC

        # Every intent of the session reaches finality, with its batch and transaction.
        final: dict[int, IntentStatus] = {}
        for client, receipt in receipts:
            status = client.wait_for(receipt, "finalized", timeout=WAIT)
            assert_finalized(status, receipt)
            final[receipt.seq] = status
        batches = [final[seq].batch or 0 for seq in sorted(final)]
        assert batches == sorted(batches)  # batches cover seqs in order
        settlement = venue.settlement()
        assert settlement["lastFinalizedBatch"] >= batches[-1]
        assert settlement["posterHalted"] is None and settlement["protectiveMode"] is False

    # The withdrawal is claimable from its final batch with the node's proof.
    withdrawal_final = final[receipts[-1][1].seq]
    result = venue.node.get(f"/v1/withdrawals/{withdrawn['withdrawalId']}/proof")
    assert result.status == 200, result.body
    proof = result.json()
    assert (proof["batch"], proof["txHash"]) == (withdrawal_final.batch, withdrawal_final.tx_hash)
    assert (proof["status"], proof["claimable"]) == ("finalized", True)
    assert (proof["account"], proof["amount"]) == ("0x" + alice.account.hex(), 100 * USDC)
    leaf = withdrawal_leaf(withdrawn["withdrawalId"], alice.account, 100 * USDC)
    siblings = [bytes.fromhex(node[2:]) for node in proof["proof"]]
    root = bytes.fromhex(proof["withdrawalsRoot"][2:])
    assert verify_proof(root, leaf, proof["index"], siblings)
    assert not verify_proof(root, withdrawal_leaf(withdrawn["withdrawalId"], alice.account, 1),
                            proof["index"], siblings)  # fmt: skip
    assert venue.launcher.terminate() == 0, venue.launcher.stderr_tail()


def test_oracle_move_liquidates_a_leveraged_long(venue: Venue) -> None:
    carol, dave, erin = trader("carol"), trader("dave"), trader("erin")
    margin = 1_000 * USDC
    venue.deposit(carol, margin)
    venue.deposit(dave, 100_000 * USDC)
    venue.deposit(erin, 100_000 * USDC)
    venue.oracle_price(600_000)

    async def scenario() -> tuple[list[tuple[AsyncClient, Receipt]], int]:
        async with (
            venue.async_client(carol) as c,
            venue.async_client(dave) as d,
            venue.async_client(erin) as e,
        ):
            placed = [
                (d, await d.place_order("BTC", "sell", "0.3", "60000")),
                (e, await e.place_order("BTC", "buy", "0.3", "57000")),
            ]
            for client, receipt in placed:
                rested = await client.wait_for(receipt, timeout=WAIT)
                assert rested.events_of("OrderRested"), rested.events
            # 0.3 BTC at $60,000 on $1,000: $900 initial margin at 20x, $450 maintenance.
            bought = await c.place_order("BTC", "buy", "0.3", "60000", tif="IOC")
            (fill,) = (await c.wait_for(bought, timeout=WAIT)).fills
            assert (fill.price, fill.size, fill.maker) == (
                600_000,
                30_000,
                "0x" + dave.account.hex(),
            )
            return [*placed, (c, bought)], fill.taker_fee

    receipts, buy_fee = asyncio.run(scenario())
    notional = 600_000 * 30_000
    assert buy_fee == fee(notional, TAKER_FEE_PPM) == 8_100_000
    assert venue.collateral(carol) == margin - notional - buy_fee
    assert venue.position(carol) == ("0.3", "60000")

    # $57,500: equity 1,000 - 8.1 - 0.3 x 2,500 = $241.9 < maintenance 0.3 x 57,500 x 2.5%.
    move_seq = venue.oracle_price(575_000)
    with venue.client(carol) as c:
        moved = wait_until(
            lambda: (s := c.status_of_seq(move_seq)).reached("executed") and s, "the oracle move"
        )
        (started,) = moved.events_of("LiquidationStarted")
        assert started["account"] == "0x" + carol.account.hex()
        assert started["market"] == -1  # the cross account as a whole
        assert started["equity"] == margin - buy_fee - 30_000 * (600_000 - 575_000)
        assert started["maintenance"] == fee(575_000 * 30_000, 25_000)
        (sale,) = moved.fills
        sold = 570_000 * 30_000  # into Erin's bid, at her price
        assert (sale.price, sale.size, sale.taker_is_buy) == (570_000, 30_000, False)
        assert (sale.maker, sale.taker) == ("0x" + erin.account.hex(), "0x" + carol.account.hex())
        assert (sale.taker_fee, sale.maker_fee) == (0, fee(sold, MAKER_FEE_PPM))
        (settled,) = moved.events_of("LiquidationSettled")
        left = margin - notional - buy_fee + sold  # $91.9, less than the 1% fee ($171)
        assert left == 91_900_000 < fee(sold, LIQUIDATION_FEE_PPM)
        assert (settled["feeToInsurance"], settled["insurancePaid"], settled["badDebt"]) == (
            left,
            0,
            0,
        )
        assert venue.position(carol) is None and venue.collateral(carol) == 0
        assert venue.position(erin) == ("0.3", "57000")
        assert venue.collateral(erin) == 100_000 * USDC - sold - fee(sold, MAKER_FEE_PPM)
        assert venue.position(dave) == ("-0.3", "60000")
        assert venue.collateral(dave) == 100_000 * USDC + notional - fee(notional, MAKER_FEE_PPM)

        move_final = wait_seq_finalized(c, move_seq)
        assert move_final.events == moved.events
        assert move_final.batch is not None and move_final.tx_hash is not None
        for _client, receipt in receipts:
            assert_finalized(c.wait_for(receipt, "finalized", timeout=WAIT), receipt)
    assert venue.launcher.terminate() == 0, venue.launcher.stderr_tail()


def test_sdk_withdrawal_is_claimed_on_chain(
    tmp_path: Path,
    anvil_launcher: Callable[..., Anvil],
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    anvil = anvil_launcher(tmp_path / "anvil")
    deployer, sequencer, frank, outsider = (Account.from_key(k) for k in anvil.keys[:4])
    wallet = Wallet(bytes(frank.key))
    markets = (("BTC", BTC_SZ_DECIMALS, 10, 10),)
    config_path = venue_config(tmp_path / "venue.toml", asyncdex_domain(1, bytes(20)), markets, [])
    engine_config = load_config(config_path)[0]
    chain = RpcChain(anvil.url, anvil.keys)
    contract = SettlementClient.deploy(
        chain, deployer.key, sequencer.address, 2, 100, state_root(Engine(engine_config).state)
    )
    domain = asyncdex_domain(chain.chain_id, bytes.fromhex(contract.address[2:]))
    venue_config(config_path, domain, markets, [])
    deposit, amount = 500 * USDC, 123_456_789  # $123.456789: every micro-USDC counts
    contract.mint(frank.key, frank.address, deposit)
    contract.approve(frank.key, deposit)
    contract.deposit(frank.key, deposit)
    anvil.set_block_time(1)
    key_file = tmp_path / "sequencer.key"
    key_file.write_text(bytes(sequencer.key).hex())
    launcher = node_launcher(
        tmp_path / "data",
        config_path,
        extra_args=["--chain-rpc", anvil.url, "--sequencer-key-file", str(key_file),
                    "--batch-interval-ms", str(BATCH_INTERVAL_MS), "--tick-ms", str(TICK_MS)],
    )  # fmt: skip
    node = launcher.start()
    wait_until(lambda: node.status()["settlement"]["l1Consumed"] == 1, "the deposit")

    with Client.from_venue_file(node.url, wallet, config_path) as client:
        receipt = client.withdraw("123.456789")
        final = client.wait_for(receipt, "finalized", timeout=WAIT)
    assert_finalized(final, receipt)
    (withdrawn,) = final.events_of("Withdrawn")
    assert (withdrawn["account"], withdrawn["amount"]) == ("0x" + wallet.account.hex(), amount)
    commits = {commit.batch_number: commit for commit in contract.batch_commits()}
    assert final.batch is not None and contract.is_final(final.batch)
    assert final.tx_hash == "0x" + commits[final.batch].tx_hash.hex()

    proof = node.get(f"/v1/withdrawals/{withdrawn['withdrawalId']}/proof").json()
    assert (proof["batch"], proof["claimable"], proof["amount"]) == (final.batch, True, amount)
    claim = (
        final.batch, withdrawn["withdrawalId"], frank.address, amount,
        [bytes.fromhex(node[2:]) for node in proof["proof"]], proof["index"],
    )  # fmt: skip
    before = contract.token_balance(frank.address)
    contract.claim_withdrawal(outsider.key, *claim)  # anyone may pay the gas
    assert contract.token_balance(frank.address) == before + amount
    with pytest.raises(ContractReverted, match=r"^WithdrawalAlreadyClaimed"):
        contract.claim_withdrawal(outsider.key, *claim)
    assert contract.available_funds() == deposit - amount
    assert contract.token_balance(contract.address) == deposit - amount
    assert venue_collateral(node, wallet) == deposit - amount
    assert launcher.terminate() == 0, launcher.stderr_tail()


def venue_collateral(node: RunningNode, wallet: Wallet) -> int:
    result = node.get(f"/v1/accounts/0x{wallet.account.hex()}")
    assert result.status == 200, result.body
    return micro_usdc(result.json()["collateral"])
