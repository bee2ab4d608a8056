"""Settlement on a real EVM: a node process settling on anvil, driven with signed intents.

- The whole path: deposits on chain reach the engine through the node's watcher, trades and a
  withdrawal go in as signed intents over HTTP, the batch holding them is committed and final
  (the intent's status says so, with the transaction hash), the withdrawal is claimed on chain
  with the node's proof, once only; a restarted node resumes without committing any batch
  twice and still answers for the intents.
- The escape hatch: a node that censors forced requests (test mode) runs into the deadline,
  its poster halts, anyone freezes the contract, and two accounts leave with the real
  ``asyncdex exit`` command, paid exactly what the engine state at the exit batch (rebuilt
  from the node's journal) says, never more than the contract holds, once each.
- A chain outage (slow): anvil goes away for 30 s under a steady load; intake and execution
  go on, the lag grows and protective mode comes on; once anvil is back (same chain, from its
  dumped state) settlement catches up: every batch committed once, no gap, and the last
  committed root is the root of the engine state replayed from the journal to that batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from asyncdex.cli.node_cmd import load_config
from asyncdex.commitment.leaves import withdrawal_leaf
from asyncdex.commitment.merkle import verify_proof
from asyncdex.engine.state import State
from asyncdex.engine.state_root import exit_value, state_root
from asyncdex.engine.transition import Engine
from asyncdex.gateway.node import JOURNAL_SUBDIR
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.records import decode_record
from asyncdex.settlement.batch import decode_batch_data
from asyncdex.settlement.chain import ContractReverted, MessageKind, RpcChain, SettlementClient
from asyncdex.settlement.exit_tool import plan_exit
from asyncdex.signing.eip712 import Domain, LocalSigner
from asyncdex.signing.intents import (
    ALL_MARKETS,
    NO_CLIENT_ID,
    Cancel,
    CancelAll,
    CancelByClientId,
    Intent,
    Modify,
    OrderType,
    PlaceOrder,
    ScheduleCancel,
    SetLeverage,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig

if TYPE_CHECKING:
    from conftest import Anvil, NodeLauncher, RunningNode

T = TypeVar("T")

pytestmark = pytest.mark.integration

USDC = 1_000_000
DEPOSIT = 10_000 * USDC
BTC = 0
PRICE = 600_000  # $60,000 in BTC's $0.1 units
SIZE = 1_000  # 0.01 BTC in 10^-5 BTC
MARKETS = (("BTC", 5, 10, 10),)  # symbol, sz_decimals, tick, lot
PUBLISHER = keccak256(b"anvil-test publisher")[-20:]
OPERATOR_TOKEN = "anvil-test operator"
FINALITY_BLOCKS = 3
FORCED_DEADLINE_BLOCKS = 40  # blocks of 1 s: room for confirmations and a batch or two
WAIT = 60.0  # seconds any one condition may take before the test fails


# ---------------------------------------------------------------------------------------------
# The venue: a contract on anvil, two funded traders, a node settling on it


@dataclass
class Venue:
    anvil: Anvil
    client: SettlementClient
    domain: Domain
    config: EngineConfig
    config_path: Path
    data_dir: Path
    key_file: Path
    sequencer: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    outsider: LocalAccount

    def node_args(self, *extra: str) -> list[str]:
        return [
            "--chain-rpc", self.anvil.url,
            "--sequencer-key-file", str(self.key_file),
            "--confirmations", "2",
            "--batch-interval-ms", "1000",
            *extra,
        ]  # fmt: skip


def make_venue(
    tmp_path: Path,
    anvil_launcher: Callable[..., Anvil],
    venue_config: Callable[..., Path],
    state: Path | None = None,
) -> Venue:
    """Deploy on a fresh anvil (automine, so the setup is quick), fund and deposit for Alice
    and Bob, then switch anvil to one block a second."""
    anvil = anvil_launcher(tmp_path / "anvil", state=state)
    deployer, sequencer, alice, bob, outsider = (Account.from_key(k) for k in anvil.keys[:5])
    config_path = tmp_path / "venue.toml"
    # The engine config does not depend on the domain: read it once to get the genesis root.
    placeholder = asyncdex_domain(31337, bytes(20))
    config, _ = load_config(venue_config(config_path, placeholder, MARKETS, [PUBLISHER]))
    chain = RpcChain(anvil.url, anvil.keys)
    client = SettlementClient.deploy(
        chain, deployer.key, sequencer.address, FINALITY_BLOCKS, FORCED_DEADLINE_BLOCKS,
        state_root(Engine(config).state),
    )  # fmt: skip
    domain = asyncdex_domain(chain.chain_id, bytes.fromhex(client.address[2:]))
    venue_config(config_path, domain, MARKETS, [PUBLISHER])
    for trader in (alice, bob):
        client.mint(trader.key, trader.address, DEPOSIT)
        client.approve(trader.key, DEPOSIT)
        client.deposit(trader.key, DEPOSIT)
    anvil.set_block_time(1)
    key_file = tmp_path / "sequencer.key"
    key_file.write_text(sequencer.key.hex())
    return Venue(
        anvil, client, domain, config, config_path, tmp_path / "data", key_file, sequencer,
        alice, bob, outsider,
    )  # fmt: skip


def wait_until(check: Callable[[], T | None], what: str, diagnose: Callable[[], str]) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after WAIT."""
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{diagnose()}")
        time.sleep(0.2)


def diagnose(launcher: NodeLauncher) -> Callable[[], str]:
    def text() -> str:
        status = "(node down)"
        node = launcher.node
        if node is not None and node.process.poll() is None:
            status = json.dumps(node.status(), indent=1)
        return f"status: {status}\nnode stderr:\n{launcher.stderr_tail()}"

    return text


def settlement(node: RunningNode) -> dict[str, Any]:
    status: dict[str, Any] = node.status()["settlement"]
    return status


def raw(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


# ---------------------------------------------------------------------------------------------
# Traders and the oracle over HTTP


class Trader:
    """Signs intents for one account with fresh nonces (milliseconds, as wallets do)."""

    def __init__(self, account: LocalAccount, domain: Domain) -> None:
        self.account = account
        self.address = raw(account)
        self.signer = LocalSigner(bytes(account.key))
        self.domain = domain
        self.nonce = time.time_ns() // 1_000_000
        self.lock = threading.Lock()

    def next_nonce(self) -> int:
        with self.lock:
            self.nonce += 1
            return self.nonce

    def order(self, is_buy: bool, size: int, tif: TimeInForce, price: int = PRICE) -> Intent:
        return PlaceOrder(
            self.address, self.next_nonce(), 0, BTC, is_buy, price, size, OrderType.LIMIT, tif,
            False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
        )  # fmt: skip

    def withdraw(self, amount: int) -> Intent:
        return Withdraw(self.address, self.next_nonce(), 0, amount, self.address)

    def signed_json(self, intent: Intent) -> dict[str, Any]:
        return signed_intent_to_json(sign_intent(self.signer, self.domain, intent))


def submit(node: RunningNode, *signed: dict[str, Any]) -> list[dict[str, Any]]:
    document: Any = signed[0] if len(signed) == 1 else {"intents": list(signed)}
    result = node.post_json("/v1/intents", document)
    assert result.status == 200, result.body
    receipts: list[dict[str, Any]] = result.json()["receipts"]
    return receipts


def intent_status(node: RunningNode, intent_id: str) -> dict[str, Any]:
    result = node.get(f"/v1/intents/{intent_id}")
    assert result.status == 200, result.body
    status: dict[str, Any] = result.json()
    return status


def event_types(status: dict[str, Any]) -> list[str]:
    return [event["type"] for event in status["events"] or []]


@dataclass
class OracleFeeder:
    """Publishes ``price`` every second: marks stay fresh (prices go stale after 10 s)."""

    node: RunningNode
    price: int = PRICE
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def publish(self) -> None:
        document = {"commands": [{"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(),
                                  "market": BTC, "price": self.price}]}  # fmt: skip
        result = self.node.post_json("/v1/system", document, OPERATOR_TOKEN)
        if result.status != 200:
            self.failures.append(f"{result.status}: {result.body!r}")

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.publish()


@contextmanager
def oracle(node: RunningNode) -> Iterator[OracleFeeder]:
    feeder = OracleFeeder(node)
    feeder.publish()
    thread = threading.Thread(target=feeder.run, daemon=True)
    thread.start()
    try:
        yield feeder
    finally:
        feeder.stop.set()
        thread.join()
    assert feeder.failures == [], feeder.failures[:3]


# ---------------------------------------------------------------------------------------------
# Chain and journal checks


def committed_batches(client: SettlementClient) -> list[int]:
    return [commit.batch_number for commit in client.batch_commits()]


def batch_last_seq(client: SettlementClient, number: int) -> int:
    """The last record of batch ``number``, from its data on chain."""
    (commit,) = [c for c in client.batch_commits() if c.batch_number == number]
    return decode_batch_data(client.commit_batch_call(commit.tx_hash).batch_data).last_seq


def replay_to(data_dir: Path, config: EngineConfig, last_seq: int) -> State:
    """The engine state after record ``last_seq`` of the (stopped) node's journal."""
    engine = Engine(config)
    journal, _ = FileJournal.open(data_dir / JOURNAL_SUBDIR)
    try:
        for seq, payload in journal.read():
            if seq > last_seq:
                break
            record = decode_record(payload)
            engine.apply(record.command, record.timestamp)
    finally:
        journal.close()
    return engine.state


def start_node(
    venue: Venue, node_launcher: Callable[..., NodeLauncher], *extra: str, **kwargs: Any
) -> tuple[NodeLauncher, RunningNode]:
    launcher = node_launcher(
        venue.data_dir, venue.config_path, extra_args=venue.node_args(*extra),
        operator_token=OPERATOR_TOKEN, **kwargs,
    )  # fmt: skip
    node = launcher.start()
    assert node.ready["settlement"] is True
    wait_until(lambda: settlement(node)["l1Consumed"] == 2, "both deposits in", diagnose(launcher))
    return launcher, node


# ---------------------------------------------------------------------------------------------
# The whole path


def test_deposit_trade_batch_withdraw_claim(
    tmp_path: Path,
    anvil_launcher: Callable[..., Anvil],
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    venue = make_venue(tmp_path, anvil_launcher, venue_config)
    client = venue.client
    launcher, node = start_node(venue, node_launcher)
    alice, bob = Trader(venue.alice, venue.domain), Trader(venue.bob, venue.domain)
    amount = 1_000 * USDC
    # what clients connect with: the contract the node posts to is the one signed for
    described = node.get("/v1/venue").json()
    contract = "0x" + venue.domain.verifying_contract.hex()
    assert (described["settlementChain"], described["settlementContract"]) == ("rpc", contract)
    assert described["domain"]["verifyingContract"] == contract
    assert described["chainId"] == venue.domain.chain_id

    with oracle(node):
        (rest,) = submit(node, bob.signed_json(bob.order(False, SIZE, TimeInForce.GTC)))
        (take,) = submit(node, alice.signed_json(alice.order(True, SIZE, TimeInForce.IOC)))
        (withdraw,) = submit(node, alice.signed_json(alice.withdraw(amount)))
        assert rest["seq"] < take["seq"] < withdraw["seq"]

        traded = intent_status(node, take["intentId"])
        assert traded["seq"] == take["seq"] and traded["status"] != "sequenced"
        (fill,) = [e for e in traded["events"] if e["type"] == "TradeExecuted"]
        assert (fill["size"], fill["price"]) == (SIZE, PRICE)
        assert (fill["taker"], fill["maker"]) == ("0x" + alice.address.hex(),
                                                  "0x" + bob.address.hex())  # fmt: skip
        (withdrawn,) = [
            e for e in intent_status(node, withdraw["intentId"])["events"]
            if e["type"] == "Withdrawn"
        ]  # fmt: skip
        assert withdrawn["amount"] == amount
        assert node.get(f"/v1/seq/{withdraw['seq']}").json()["intentId"] == withdraw["intentId"]

        final = wait_until(
            lambda: (s := intent_status(node, withdraw["intentId"]))["status"] == "finalized" and s,
            "the withdrawal's batch to be final",
            diagnose(launcher),
        )
    batch, tx_hash = final["batch"], final["txHash"]
    commits = {c.batch_number: c for c in client.batch_commits()}
    assert tx_hash == "0x" + commits[batch].tx_hash.hex()
    assert client.is_final(batch)
    assert intent_status(node, take["intentId"])["status"] == "finalized"

    proof = node.get(f"/v1/withdrawals/{withdrawn['withdrawalId']}/proof").json()
    assert (proof["batch"], proof["claimable"], proof["amount"]) == (batch, True, amount)
    before = client.token_balance(venue.alice.address)
    arguments = (
        batch, withdrawn["withdrawalId"], venue.alice.address, amount,
        [bytes.fromhex(node[2:]) for node in proof["proof"]], proof["index"],
    )  # fmt: skip
    client.claim_withdrawal(venue.outsider.key, *arguments)  # anyone may pay the gas
    assert client.token_balance(venue.alice.address) == before + amount
    with pytest.raises(ContractReverted, match=r"^WithdrawalAlreadyClaimed"):
        client.claim_withdrawal(venue.outsider.key, *arguments)
    assert client.available_funds() == 2 * DEPOSIT - amount
    assert client.token_balance(client.address) == client.available_funds()

    # Killed mid-flight (a commit may be in the pool), the node replays its journal on the
    # way back, re-cuts the same batches and commits none of them a second time.
    committed = settlement(node)["lastCommittedBatch"]
    launcher.kill()
    node = launcher.start()
    wait_until(
        lambda: settlement(node)["lastCommittedBatch"] > committed + 2,
        "new batches after the restart",
        diagnose(launcher),
    )
    again = intent_status(node, withdraw["intentId"])
    assert (again["seq"], again["status"], again["txHash"]) == (withdraw["seq"], "finalized",
                                                                tx_hash)  # fmt: skip
    assert "Withdrawn" in event_types(again)
    numbers = committed_batches(client)
    assert numbers == list(range(len(numbers))), "a batch committed twice or skipped"
    assert launcher.terminate() == 0, launcher.stderr_tail()


# ---------------------------------------------------------------------------------------------
# Censorship and the escape hatch


def asyncdex_command() -> list[str]:
    """The installed ``asyncdex`` script beside this interpreter, else the same entry point."""
    script = Path(sys.executable).with_name("asyncdex")
    return [str(script)] if script.exists() else [sys.executable, "-m", "asyncdex.cli.main"]


def run_exit(
    venue: Venue, account: LocalAccount, payer_key: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*asyncdex_command(), "exit", "--rpc", venue.anvil.url, "--contract",
         venue.client.address, "--account", account.address, "--key-file", str(payer_key),
         "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_forced_withdrawal_escape_hatch(
    tmp_path: Path,
    anvil_launcher: Callable[..., Anvil],
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    venue = make_venue(tmp_path, anvil_launcher, venue_config)
    client, anvil = venue.client, venue.anvil
    launcher, node = start_node(
        venue, node_launcher, "--censor-forced-requests", extra_env={"ASYNCDEX_TEST_MODE": "1"}
    )
    alice, bob = Trader(venue.alice, venue.domain), Trader(venue.bob, venue.domain)
    check = diagnose(launcher)

    with oracle(node) as feeder:
        submit(node, bob.signed_json(bob.order(False, 2 * SIZE, TimeInForce.GTC)))
        (take,) = submit(node, alice.signed_json(alice.order(True, 2 * SIZE, TimeInForce.IOC)))
        assert "TradeExecuted" in event_types(intent_status(node, take["intentId"]))
        feeder.price = PRICE + 6_000  # BTC +1%: the exit values carry the move
        feeder.publish()

        forced = client.force_request(venue.alice.key, MessageKind.FORCED_WITHDRAWAL, 500 * USDC)
        wait_until(lambda: settlement(node)["censoredForcedRequests"] == 1, "censorship", check)
        wait_until(
            lambda: intent_status(node, take["intentId"])["status"] == "finalized",
            "the trade's batch to be final",
            check,
        )
        # Past the deadline, the chain refuses any batch that leaves the request behind.
        anvil.mine(FORCED_DEADLINE_BLOCKS + 1)
        halted = wait_until(lambda: settlement(node)["posterHalted"], "the poster to halt", check)
        assert "ForcedRequestOverdue" in halted
        wait_until(lambda: node.status()["protectiveMode"], "protective mode", check)
        assert node.status()["settlement"]["l1Consumed"] == 2

        client.freeze(venue.outsider.key, forced)
    exit_batch = client.exit_batch_number()
    assert exit_batch >= intent_status(node, take["intentId"])["batch"]
    assert launcher.terminate() == 0, launcher.stderr_tail()

    # What each account must get: its exit value in the engine state at the exit batch,
    # rebuilt from the node's journal (and the same state the chain committed to).
    state = replay_to(venue.data_dir, venue.config, batch_last_seq(client, exit_batch))
    assert state_root(state) == client.batch_state_root(exit_batch)
    expected = {
        account.address: exit_value(state, state.accounts[raw(account)])
        for account in (venue.alice, venue.bob)
    }
    assert expected[venue.alice.address] != DEPOSIT  # fees and the price move are in it

    payer = tmp_path / "payer.key"
    payer.write_text(venue.outsider.key.hex())
    deposited = client.available_funds()
    available = deposited
    for account in (venue.alice, venue.bob):
        before = client.token_balance(account.address)
        result = run_exit(venue, account, payer)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.splitlines()[-1])
        assert (report["batch"], report["exit_value"]) == (exit_batch, expected[account.address])
        paid = client.token_balance(account.address) - before
        assert paid == expected[account.address]
        available -= paid
        assert client.available_funds() == available >= 0
        assert client.token_balance(client.address) == available
    assert deposited - available <= deposited

    again = run_exit(venue, venue.alice, payer)
    assert again.returncode == 1 and "already exited" in again.stderr, again.stderr
    # The tool checks first; the contract refuses anyway.
    plan = plan_exit(client, raw(venue.alice))
    with pytest.raises(ContractReverted, match=r"^AlreadyExited"):
        client.exit(venue.outsider.key, venue.alice.address, plan.exit_value,
                    plan.account_hash, plan.proof, plan.index)  # fmt: skip
    assert client.available_funds() == available


# ---------------------------------------------------------------------------------------------
# A chain outage under load


@dataclass
class Acked:
    at: float  # time.monotonic() when the receipt came back
    maker: str  # intent ids
    taker: str


class SteadyLoad(threading.Thread):
    """Pairs of signed intents, ten a second: a resting sell and an IOC buy crossing it, the
    traders swapping roles each time so their positions stay small."""

    def __init__(self, node: RunningNode, alice: Trader, bob: Trader) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.alice, self.bob = alice, bob
        self.acked: list[Acked] = []
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self.halt.wait(0.1):
            alice, bob = self.alice, self.bob
            maker, taker = (bob, alice) if turn % 2 == 0 else (alice, bob)
            turn += 1
            try:
                receipts = submit(
                    self.node,
                    maker.signed_json(maker.order(False, SIZE, TimeInForce.GTC)),
                    taker.signed_json(taker.order(True, SIZE, TimeInForce.IOC)),
                )
            except (AssertionError, OSError) as exc:
                self.failures.append(repr(exc))
                continue
            self.acked.append(Acked(time.monotonic(), *(r["intentId"] for r in receipts)))


@pytest.mark.slow
def test_chain_outage(
    tmp_path: Path,
    anvil_launcher: Callable[..., Anvil],
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    venue = make_venue(tmp_path, anvil_launcher, venue_config, state=tmp_path / "chain.json")
    client, anvil = venue.client, venue.anvil
    bound_ms = 5_000
    launcher, node = start_node(venue, node_launcher, "--max-settlement-lag-ms", str(bound_ms))
    check = diagnose(launcher)
    load = SteadyLoad(node, Trader(venue.alice, venue.domain), Trader(venue.bob, venue.domain))
    samples: list[dict[str, Any]] = []

    with oracle(node):
        load.start()
        try:
            wait_until(lambda: settlement(node)["lastCommittedBatch"] >= 3, "commits", check)
            anvil.stop()  # SIGTERM: anvil dumps the chain to its state file
            down = time.monotonic()
            while time.monotonic() - down < 30:
                samples.append(settlement(node))
                time.sleep(1.0)
            up = time.monotonic()
            anvil.block_time = 1
            anvil.start()  # the same chain, on the same port
            wait_until(
                lambda: (
                    (s := settlement(node))["pendingBatches"] <= 1
                    and not s["protectiveMode"]
                    and s["posterHalted"] is None
                ),
                "settlement to catch up and protective mode to end",
                check,
            )
        finally:
            load.halt.set()
            load.join()
    assert load.failures == [], load.failures[:3]

    # Intake and execution went on while the chain was down.
    during = [acked for acked in load.acked if down < acked.at < up]
    assert len(during) >= 10, f"only {len(during)} requests acknowledged during the outage"
    for acked in during:
        status = intent_status(node, acked.taker)
        assert "TradeExecuted" in event_types(status), status
    # The lag grew, and crossed the bound: protective mode came on.
    lags = [sample["lag"]["protectiveLagMs"] for sample in samples]
    assert lags[-1] > lags[0] and lags[-1] > bound_ms, lags
    assert any(sample["protectiveMode"] for sample in samples)
    assert all(sample["lastCommittedBatch"] == samples[0]["lastCommittedBatch"]
               for sample in samples)  # fmt: skip

    assert launcher.terminate() == 0, launcher.stderr_tail()
    numbers = committed_batches(client)
    assert numbers == list(range(len(numbers))), "a batch committed twice or skipped"
    last = numbers[-1]
    assert last > samples[0]["lastCommittedBatch"] + 10  # the backlog went out
    state = replay_to(venue.data_dir, venue.config, batch_last_seq(client, last))
    assert state_root(state) == client.batch_state_root(last)


# ---------------------------------------------------------------------------------------------
# The embedded chain (the demo shape) and status without settlement


def test_embedded_chain_settles_in_process(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    """``[settlement] deploy = true``: the node deploys on its embedded chain, takes dev
    deposits through the watcher, and commits and finalizes batches with nothing installed."""
    config_path = tmp_path / "venue.toml"
    publisher = "0x" + PUBLISHER.hex()
    config_path.write_text(
        f'oracle_publishers = ["{publisher}"]\n\n[settlement]\ndeploy = true\n'
        "finality_blocks = 2\nblock_time_ms = 500\n\n"
        '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "ASYNCDEX_TEST_MODE"}
    refused_start = subprocess.run(
        [sys.executable, "-m", "asyncdex.cli.node_cmd", "--data", str(tmp_path / "refused"),
         "--config", str(config_path), "--port", "0", "--censor-forced-requests"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert refused_start.returncode == 2 and "tests only" in refused_start.stderr

    launcher = node_launcher(tmp_path / "data", config_path, operator_token=OPERATOR_TOKEN)
    node = launcher.start()
    check = diagnose(launcher)
    domain = asyncdex_domain(node.ready["chainId"], bytes.fromhex(node.ready["contract"][2:]))
    alice, bob = (Trader(Account.from_key(keccak256(name)), domain) for name in (b"a", b"b"))
    for trader in (alice, bob):
        document = {"account": "0x" + trader.address.hex(), "amount": DEPOSIT}
        result = node.post_json("/v1/dev/deposit", document, OPERATOR_TOKEN)
        assert result.status == 200, result.body
    wait_until(lambda: settlement(node)["l1Consumed"] == 2, "the deposits", check)
    side_door = {"type": "deposit", "account": "0x" + alice.address.hex(), "amount": 1,
                 "l1Index": 2}  # fmt: skip
    refused = node.post_json("/v1/system", {"commands": [side_door]}, OPERATOR_TOKEN)
    assert (refused.status, refused.json()["code"]) == (400, "invalid_system_command")

    with oracle(node):
        submit(node, bob.signed_json(bob.order(False, SIZE, TimeInForce.GTC)))
        (take,) = submit(node, alice.signed_json(alice.order(True, SIZE, TimeInForce.IOC)))
        (withdraw,) = submit(node, alice.signed_json(alice.withdraw(100 * USDC)))
        final = wait_until(
            lambda: (s := intent_status(node, withdraw["intentId"]))["status"] == "finalized" and s,
            "the withdrawal's batch to be final",
            check,
        )
    assert "TradeExecuted" in event_types(intent_status(node, take["intentId"]))
    (withdrawn,) = [e for e in final["events"] if e["type"] == "Withdrawn"]
    proof = node.get(f"/v1/withdrawals/{withdrawn['withdrawalId']}/proof").json()
    assert (proof["batch"], proof["status"], proof["txHash"]) == (
        final["batch"], "finalized", final["txHash"])  # fmt: skip
    leaf = withdrawal_leaf(withdrawn["withdrawalId"], alice.address, 100 * USDC)
    root = bytes.fromhex(proof["withdrawalsRoot"][2:])
    siblings = [bytes.fromhex(node[2:]) for node in proof["proof"]]
    assert verify_proof(root, leaf, proof["index"], siblings)
    assert launcher.terminate() == 0, launcher.stderr_tail()


def test_intent_status_without_settlement_survives_a_restart(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    """Every native intent kind is found again by its id after a restart: the node rebuilds
    its index from the journal (the ids are recomputed from the journaled commands)."""
    domain = asyncdex_domain(31337, keccak256(b"no settlement")[-20:])
    config_path = venue_config(tmp_path / "venue.toml", domain, MARKETS, [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config_path, operator_token=OPERATOR_TOKEN)
    node = launcher.start()
    assert node.status()["settlement"] is None
    alice = Trader(Account.from_key(keccak256(b"alice")), domain)
    deposit = {"type": "deposit", "account": "0x" + alice.address.hex(), "amount": DEPOSIT,
               "l1Index": 0}  # fmt: skip
    assert node.post_json("/v1/system", {"commands": [deposit]}, OPERATOR_TOKEN).status == 200
    client_id = (7).to_bytes(16, "big")
    account, market = alice.address, BTC
    with oracle(node):
        order = alice.order(True, SIZE, TimeInForce.GTC, PRICE - 1_000)
        intents: list[Intent] = [
            order._replace(client_id=client_id),
            alice.order(True, SIZE, TimeInForce.GTC, PRICE - 2_000),
            Modify(account, alice.next_nonce(), 0, market, 2, PRICE - 3_000, SIZE),
            Cancel(account, alice.next_nonce(), 0, market, 2),
            CancelByClientId(account, alice.next_nonce(), 0, market, client_id),
            CancelAll(account, alice.next_nonce(), 0, ALL_MARKETS),
            ScheduleCancel(account, alice.next_nonce(), 0, 0),
            SetLeverage(account, alice.next_nonce(), 0, market, 5, False),
            UpdateIsolatedMargin(account, alice.next_nonce(), 0, market, USDC),
            alice.withdraw(10 * USDC),
        ]
        receipts = submit(node, *(alice.signed_json(intent) for intent in intents))
    before = {r["intentId"]: intent_status(node, r["intentId"]) for r in receipts}
    for receipt, status in zip(receipts, before.values(), strict=True):
        assert (status["seq"], status["status"]) == (receipt["seq"], "executed")
        assert isinstance(status["events"], list), status  # a cancel-all of nothing: []
    assert "Withdrawn" in event_types(before[receipts[-1]["intentId"]])
    missing = node.get("/v1/intents/0x" + "00" * 32)
    assert (missing.status, missing.json()["code"]) == (404, "unknown_intent")
    assert node.get("/v1/intents/0x1234").status == 400
    assert node.get(f"/v1/seq/{node.status()['lastSeq'] + 1}").status == 404

    assert launcher.terminate() == 0, launcher.stderr_tail()
    node = launcher.start()
    for receipt in receipts:
        status = intent_status(node, receipt["intentId"])
        assert (status["seq"], status["status"]) == (receipt["seq"], "executed")
        by_seq = node.get(f"/v1/seq/{receipt['seq']}").json()
        assert by_seq["intentId"] == receipt["intentId"]
    assert launcher.terminate() == 0, launcher.stderr_tail()
