"""The settlement pipeline on the in-process EVM with the real contract: L1 watcher, batcher,
poster (restarts, retries, pipelining), withdrawals, and the escape hatch from chain data."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3

from asyncdex.cli import exit_cmd
from asyncdex.cli.demo import PUBLISHERS, demo_config
from asyncdex.commitment.merkle import ZERO_HASH
from asyncdex.engine.state_root import exit_value, state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    AdvanceTime,
    Command,
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    OrderType,
    PlaceOrder,
    PublishOraclePrice,
    Withdraw,
)
from asyncdex.sequencer.journal import FileJournal, GroupCommitter
from asyncdex.sequencer.sequencer import Sequencer, Submission
from asyncdex.settlement.batch import CutBatch, withdrawal_proof
from asyncdex.settlement.batcher import Batcher
from asyncdex.settlement.chain import Chain, EthTesterChain, MessageKind, SettlementClient
from asyncdex.settlement.exit_tool import ExitError, plan_exit, rebuild_leaf_set, submit_exit
from asyncdex.settlement.poster import Poster, PosterHalted
from asyncdex.settlement.watcher import L1Watcher, l1_command
from asyncdex.types.hashing import keccak256

from .conftest import FINALITY_BLOCKS, FORCED_DEADLINE_BLOCKS, reverts

USDC = 1_000_000
BTC = 0
MARK = 600_000  # $60,000 in BTC's $0.1 price units


@dataclass
class Node:
    """One venue: the chain, the engine, the batcher, and a poster on the sequencer key."""

    chain: EthTesterChain
    client: SettlementClient
    engine: Engine
    poster: Poster
    sequencer: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    outsider: LocalAccount
    batcher: Batcher = field(init=False)
    cut: list[CutBatch] = field(default_factory=list)
    values_at_cut: dict[int, dict[bytes, int]] = field(default_factory=dict)
    seq: int = 0
    now: int = 1_000

    def record(self, command: Command, advance_ms: int = 0) -> list[Any]:
        """Sequence one record locally (seq and time) and apply it through the batcher."""
        self.seq += 1
        self.now += advance_ms
        return self.batcher.process_record(self.seq, self.now, command)

    def on_cut(self, batch: CutBatch) -> None:
        self.cut.append(batch)
        state = self.engine.state
        self.values_at_cut[batch.number] = {
            address: exit_value(state, account) for address, account in state.accounts.items()
        }
        self.poster.enqueue(batch)

    def close_batch(self) -> None:
        """A time tick one window later: the open batch is cut before it (the node's ticks)."""
        self.record(AdvanceTime(), advance_ms=self.batcher.max_interval_ms)

    def fund_and_deposit(self, account: LocalAccount, amount: int) -> None:
        self.client.mint(account.key, account.address, amount)
        self.client.approve(account.key, amount)
        self.client.deposit(account.key, amount)

    async def watch(self, confirmations: int = 1) -> int:
        async def submit(commands: Sequence[Command]) -> None:
            for command in commands:
                self.record(command)

        watcher = L1Watcher(
            self.client,
            submit,
            start_index=self.engine.state.l1_consumed,
            confirmations=confirmations,
        )
        return await watcher.poll_once()

    def publish(self, price: int) -> None:
        for publisher in PUBLISHERS:
            self.record(PublishOraclePrice(publisher, BTC, price))

    def trade(self, size: int = 1_000) -> None:
        """Bob rests a sell at the mark, Alice buys it at market."""
        bob, alice = raw(self.bob), raw(self.alice)
        self.record(PlaceOrder(bob, BTC, False, MARK, size))
        self.record(PlaceOrder(alice, BTC, True, 0, size, order_type=OrderType.MARKET))


def raw(account: LocalAccount) -> bytes:
    return bytes.fromhex(account.address[2:])


def genesis_root() -> bytes:
    return state_root(Engine(demo_config()).state)


def deploy(chain: EthTesterChain) -> tuple[SettlementClient, list[LocalAccount]]:
    accounts = [Account.from_key(key) for key in chain.funded_keys[:6]]
    deployer, sequencer = accounts[0], accounts[1]
    client = SettlementClient.deploy(
        chain, deployer.key, sequencer.address, FINALITY_BLOCKS, FORCED_DEADLINE_BLOCKS,
        genesis_root(),
    )  # fmt: skip
    return client, accounts


def make_node(
    chain: EthTesterChain | None = None, max_records: int = 10_000, **poster_options: Any
) -> Node:
    chain = EthTesterChain() if chain is None else chain
    client, (_, sequencer, operator, alice, bob, outsider) = deploy(chain)
    engine = Engine(demo_config())
    poster = Poster(
        client, sequencer.key, operator.key, genesis_root=genesis_root(), **poster_options
    )
    node = Node(chain, client, engine, poster, sequencer, alice, bob, outsider)
    node.batcher = Batcher(engine, node.on_cut, max_records=max_records, max_interval_ms=1_000)
    return node


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def committed_numbers(client: SettlementClient) -> list[int]:
    return [commit.batch_number for commit in client.batch_commits()]


def trading_node(batches: int, **options: Any) -> Node:
    """A node with deposits on chain and ``batches`` batches of trades cut (none posted)."""
    node = make_node(**options)
    node.fund_and_deposit(node.alice, 10_000 * USDC)
    node.fund_and_deposit(node.bob, 10_000 * USDC)
    run(node.watch())
    node.publish(MARK)
    while len(node.cut) < batches:
        node.trade()
        node.close_batch()
    return node


# ---------------------------------------------------------------- the whole path


def test_deposit_trade_commit_finalize_claim_through_the_real_sequencer(tmp_path: Path) -> None:
    node = make_node()
    client, alice, bob = node.client, node.alice, node.bob
    node.fund_and_deposit(alice, 10_000 * USDC)
    node.fund_and_deposit(bob, 10_000 * USDC)
    before_claim = client.token_balance(alice.address)

    async def scenario() -> None:
        journal, _ = FileJournal.open(tmp_path / "journal")
        committer = GroupCommitter(journal, max_delay=0)
        clock = {"now": 5_000}
        sequencer = Sequencer(committer, lambda: clock["now"])

        def consume(records: Sequence[Any]) -> None:
            for record in records:
                node.seq, node.now = record.seq, record.timestamp
            node.batcher(records)

        sequencer.add_consumer(consume)

        async def submit(commands: Sequence[Command]) -> None:
            await sequencer.submit([Submission(command) for command in commands])

        async def send(*commands: Command) -> None:
            await submit(commands)

        try:
            watcher = L1Watcher(client, submit, start_index=0, confirmations=3)
            # Alice's deposit has 4 confirmations (Bob's mint and approve came after it), Bob's
            # deposit is the head block: 1 confirmation, then 2, then 3.
            assert await watcher.poll_once() == 1
            assert await watcher.poll_once() == 0
            node.chain.mine(1)
            assert await watcher.poll_once() == 0
            node.chain.mine(1)
            assert await watcher.poll_once() == 1
            state = node.engine.state
            assert state.l1_consumed == 2
            assert state.accounts[raw(alice)].collateral == 10_000 * USDC

            await send(*(PublishOraclePrice(p, BTC, MARK) for p in PUBLISHERS))
            await send(PlaceOrder(raw(bob), BTC, False, MARK, 1_000))
            receipts = await sequencer.submit(
                [
                    Submission(
                        PlaceOrder(raw(alice), BTC, True, 0, 1_000, order_type=OrderType.MARKET)
                    )
                ]
            )
            trade_seq = receipts[0].seq
            await send(Withdraw(raw(alice), 1_000 * USDC))
            assert node.poster.status_of_seq(trade_seq) == ("sequenced", None, None)
            clock["now"] += 1_000
            await send(AdvanceTime())  # the next window's first record closes the batch
            assert [batch.number for batch in node.cut] == [1]
            batch = node.cut[0]
            assert batch.first_seq <= trade_seq <= batch.last_seq
            assert node.poster.status_of_seq(trade_seq) == ("sequenced", None, 1)

            await node.poster.run_once()
            status, tx_hash, number = node.poster.status_of_seq(trade_seq)
            assert (status, number) == ("committed", 1) and tx_hash is not None
            assert client.last_batch_number() == 1
            lag = node.poster.lag(sequencer.next_seq - 1, clock["now"])
            assert lag.committed_records == sequencer.next_seq - 1 - batch.last_seq
            assert lag.finalized_ms is None

            node.chain.mine(FINALITY_BLOCKS)
            await node.poster.run_once()
            assert node.poster.status_of_seq(trade_seq) == ("finalized", tx_hash, 1)
        finally:
            await sequencer.close()
            committer.close()
            journal.close()

    run(scenario())
    batch = node.cut[0]
    ((withdrawal_id, account, amount),) = batch.withdrawals
    assert (account, amount) == (raw(alice), 1_000 * USDC)
    index, proof = withdrawal_proof(batch.withdrawals, withdrawal_id)
    client.claim_withdrawal(
        node.outsider.key, 1, withdrawal_id, alice.address, amount, proof, index
    )
    assert client.token_balance(alice.address) == before_claim + amount
    with reverts("WithdrawalAlreadyClaimed"):
        client.claim_withdrawal(
            node.outsider.key, 1, withdrawal_id, alice.address, amount, proof, index
        )
    assert client.available_funds() == 19_000 * USDC
    assert client.token_balance(client.address) == client.available_funds()
    # anyone can rebuild the committed state from the chain alone
    assert rebuild_leaf_set(client, 1).root() == batch.state_root == client.batch_state_root(1)


# ---------------------------------------------------------------- the watcher


def test_watcher_submits_each_message_once_in_order_after_confirmations() -> None:
    node = make_node()
    client = node.client
    submitted: list[tuple[int, int]] = []  # (l1 index, head block at submission)

    async def submit(commands: Sequence[Command]) -> None:
        for command in commands:
            assert isinstance(command, Deposit)
            submitted.append((command.l1_index, node.chain.block_number))
            node.record(command)

    for account in (node.alice, node.bob, node.outsider):
        node.fund_and_deposit(account, 100 * USDC)
    blocks = {m.index: m.block_number for m in client.l1_messages()}

    async def poll_while_mining(watcher: L1Watcher, polls: int) -> None:
        for _ in range(polls):
            await watcher.poll_once()
            await watcher.poll_once()  # a second poll of the same head submits nothing new
            node.chain.mine(1)

    run(poll_while_mining(L1Watcher(client, submit, start_index=0, confirmations=4), 6))
    assert [index for index, _ in submitted] == [0, 1, 2]
    for index, head in submitted:
        assert head - blocks[index] + 1 >= 4
    assert node.engine.state.l1_consumed == 3

    # a restarted watcher resumes from the engine's count: nothing is submitted twice
    node.fund_and_deposit(node.alice, 5 * USDC)
    restarted = L1Watcher(
        client, submit, start_index=node.engine.state.l1_consumed, confirmations=1
    )
    run(poll_while_mining(restarted, 3))
    assert [index for index, _ in submitted] == [0, 1, 2, 3]
    assert node.engine.state.accounts[raw(node.alice)].collateral == 105 * USDC


def test_watcher_offers_messages_again_after_a_failed_submit() -> None:
    node = make_node()
    node.fund_and_deposit(node.alice, 100 * USDC)
    attempts: list[list[int]] = []

    async def flaky_submit(commands: Sequence[Command]) -> None:
        attempts.append([command.l1_index for command in commands])  # type: ignore[union-attr]
        if len(attempts) == 1:
            raise ConnectionError("sequencer unavailable")

    watcher = L1Watcher(node.client, flaky_submit, start_index=0, confirmations=1)
    with pytest.raises(ConnectionError):
        run(watcher.poll_once())
    assert watcher.next_index == 0
    assert run(watcher.poll_once()) == 1
    assert run(watcher.poll_once()) == 0
    assert attempts == [[0], [0]]


def test_l1_command_maps_every_message_kind() -> None:
    node = make_node()
    client, alice = node.client, node.alice
    node.fund_and_deposit(alice, 7 * USDC)
    client.force_request(alice.key, MessageKind.FORCED_WITHDRAWAL, 3 * USDC)
    client.force_request(alice.key, MessageKind.FORCED_CANCEL_ALL)
    commands = [l1_command(message) for message in client.l1_messages()]
    assert commands == [
        Deposit(raw(alice), 7 * USDC, 0),
        ForceWithdraw(raw(alice), 3 * USDC, 1),
        ForceCancelAll(raw(alice), 2),
    ]


# ---------------------------------------------------------------- the poster


def test_poster_restart_commits_every_batch_once_and_in_order() -> None:
    node = trading_node(6)
    batches = list(node.cut)
    first = Poster(node.client, node.sequencer.key, genesis_root=genesis_root())
    for batch in batches[:4]:  # the first poster had seen four batches when the node stopped
        first.enqueue(batch)
    run(first.run_once())
    assert node.client.last_batch_number() == 4

    restarted = Poster(node.client, node.sequencer.key, genesis_root=genesis_root())
    for batch in batches:  # a replaying node hands every batch again, from 1
        restarted.enqueue(batch)
    run(restarted.run_once())
    run(restarted.run_once())
    assert committed_numbers(node.client) == list(range(7))
    assert restarted.committed_number == 6
    commits = {c.batch_number: c for c in node.client.batch_commits()}
    for number in range(1, 7):
        assert restarted.posting(number).tx_hash == commits[number].tx_hash
        assert restarted.posting(number).committed_block == commits[number].block_number


def test_poster_restart_while_the_chain_is_ahead_of_the_replay() -> None:
    node = trading_node(3)  # its poster was handed each batch as it was cut
    run(node.poster.run_once())
    assert node.client.last_batch_number() == 3

    restarted = Poster(node.client, node.sequencer.key, genesis_root=genesis_root())
    run(restarted.run_once())  # nothing replayed yet: it only learns the chain's position
    for batch in node.cut:
        restarted.enqueue(batch)
    run(restarted.run_once())
    assert restarted.committed_number == 3
    assert committed_numbers(node.client) == [0, 1, 2, 3]


def flaky_client(
    chain: EthTesterChain, address: str, fail: Callable[[str], bool]
) -> tuple[SettlementClient, list[str]]:
    """The same chain behind a provider that raises ConnectionError when ``fail(method)``."""
    provider = EthereumTesterProvider(chain.tester)
    forward = provider.make_request
    methods: list[str] = []

    def make_request(method: Any, params: Any) -> Any:
        methods.append(str(method))
        if fail(str(method)):
            raise ConnectionError(f"{method}: connection refused")
        return forward(method, params)

    provider.make_request = make_request  # type: ignore[method-assign]
    client = SettlementClient.at(Chain(Web3(provider), chain.funded_keys), address)
    methods.clear()
    return client, methods


def test_poster_retries_with_capped_exponential_backoff() -> None:
    node = trading_node(3)
    failures = {"left": 0}

    def fail(method: str) -> bool:
        if failures["left"] > 0:
            failures["left"] -= 1
            return True
        return False

    client, methods = flaky_client(node.chain, node.client.address, fail)
    failures["left"] = 6  # the node is down for the first six calls
    stop = asyncio.Event()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if poster.committed_number == 3 or len(slept) > 50:
            stop.set()

    poster = Poster(
        client, node.sequencer.key, backoff_base_s=0.5, backoff_max_s=2.0, poll_interval_s=9.0,
        sleep=sleep,
    )  # fmt: skip
    for batch in node.cut:
        poster.enqueue(batch)
    run(poster.run(stop))
    assert poster.committed_number == 3
    assert committed_numbers(node.client) == [0, 1, 2, 3]
    assert slept[:6] == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert methods.count("eth_sendRawTransaction") == 3


def test_poster_never_commits_twice_when_receipts_are_lost() -> None:
    """The node takes the transaction, then the connection drops before the receipt: the
    re-read sees the batch committed and does not send it again."""
    node = trading_node(2)
    lost = {"receipts": 3}

    def fail(method: str) -> bool:
        if method == "eth_getTransactionReceipt" and lost["receipts"] > 0:
            lost["receipts"] -= 1
            return True
        return False

    client, methods = flaky_client(node.chain, node.client.address, fail)
    poster = Poster(client, node.sequencer.key, max_in_flight=1)
    for batch in node.cut:
        poster.enqueue(batch)
    for _ in range(8):
        with contextlib.suppress(ConnectionError):
            run(poster.run_once())
        if poster.committed_number == 2:
            break
    assert poster.committed_number == 2
    assert methods.count("eth_sendRawTransaction") == 2
    assert committed_numbers(node.client) == [0, 1, 2]
    assert poster.posting(1).tx_hash == node.client.batch_commits()[1].tx_hash


def test_poster_pipelines_with_modelled_gas_that_covers_the_real_cost() -> None:
    """Batches sent behind one in flight cannot be estimated (the node has not reached their
    state), so their gas comes from the model: it must cover the real cost, quadratic memory
    included, without reserving far more. The contract does not read batch data, so random
    bytes of chosen sizes stand in for it."""
    chain = EthTesterChain()
    roots = [keccak256(bytes([n])) for n in range(5)]
    deployer, sequencer = (Account.from_key(key) for key in chain.funded_keys[:2])
    settlement = SettlementClient.deploy(
        chain, deployer.key, sequencer.address, FINALITY_BLOCKS, FORCED_DEADLINE_BLOCKS, roots[0]
    )
    client, methods = flaky_client(chain, settlement.address, lambda method: False)
    poster = Poster(client, sequencer.key, genesis_root=roots[0], max_in_flight=4)
    rng = random.Random(5)
    for number, size in enumerate((100, 30_000, 120_000, 250_000), start=1):
        poster.enqueue(
            CutBatch(number, number, number, 0, 0, roots[number - 1], roots[number], ZERO_HASH,
                     0, rng.randbytes(size), ())
        )  # fmt: skip
    run(poster.run_once())
    assert poster.committed_number == 4
    assert methods.count("eth_estimateGas") == 1  # the rest were sent behind batch 1
    for number in range(2, 5):
        tx_hash = poster.posting(number).tx_hash
        assert tx_hash is not None
        limit = chain.w3.eth.get_transaction(HexBytes(tx_hash))["gas"]
        used = chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["gasUsed"]
        assert used <= limit <= used * 3 // 2


def test_poster_halts_when_its_history_differs_from_the_chain() -> None:
    node = trading_node(2)
    run(node.poster.run_once())
    # another engine history (say, a journal lost its tail) behind the same key and contract
    other = Poster(node.client, node.sequencer.key, genesis_root=genesis_root())
    batcher = Batcher(Engine(demo_config()), other.enqueue, max_records=1)
    batcher.process_record(1, 0, Deposit(raw(node.bob), 1 * USDC, 0))
    batcher.process_record(2, 0, Deposit(raw(node.bob), 1 * USDC, 1))
    with pytest.raises(PosterHalted, match="diverged"):
        run(other.run_once())
    with pytest.raises(PosterHalted):
        run(other.run_once())  # halted stays halted
    assert committed_numbers(node.client) == [0, 1, 2]


# ---------------------------------------------------------------- censorship and the exit


def test_censored_forced_withdrawal_freezes_and_accounts_exit_from_chain_data() -> None:
    node = trading_node(1)
    client, alice, bob = node.client, node.alice, node.bob
    run(node.poster.run_once())
    node.publish(MARK + 6_000)  # BTC +1%: batch 2's marks differ from batch 1's
    node.trade(2_000)
    node.close_batch()
    run(node.poster.run_once())
    node.chain.mine(FINALITY_BLOCKS)
    run(node.poster.run_once())
    assert node.poster.finalized_number == 2

    # Alice forces a withdrawal; the operator's watcher drops it (censorship).
    forced = client.force_request(alice.key, MessageKind.FORCED_WITHDRAWAL, 500 * USDC)
    censored: list[Command] = []

    async def censoring_submit(commands: Sequence[Command]) -> None:
        censored.extend(commands)

    run(L1Watcher(client, censoring_submit, start_index=2, confirmations=1).poll_once())
    assert censored == [ForceWithdraw(raw(alice), 500 * USDC, forced)]
    assert node.engine.state.l1_consumed == 2

    # trading goes on; once the deadline has passed the chain refuses the next batch
    node.publish(MARK - 30_000)  # a later move that must not reach the exits
    node.trade(500)
    node.close_batch()
    node.chain.mine(FORCED_DEADLINE_BLOCKS + 1)
    with pytest.raises(PosterHalted, match="ForcedRequestOverdue"):
        run(node.poster.run_once())
    assert client.last_batch_number() == 2
    client.freeze(node.outsider.key, forced)
    assert client.exit_batch_number() == 2

    # exits from chain data only: a fresh client knowing nothing but the contract address
    fresh = SettlementClient.at(node.chain, client.address)
    expected = node.values_at_cut[2]
    assert expected[raw(alice)] != node.values_at_cut[1][raw(alice)]
    out = io.StringIO()
    args = argparse.Namespace(
        account=alice.address.lower(), dry_run=True, from_block=0, max_block_range=3, json=True
    )
    assert exit_cmd.run_exit(fresh, args, None, out) == 0
    assert f"({expected[raw(alice)]} base units)" in out.getvalue()

    deposited = client.available_funds()
    alice_before = client.token_balance(alice.address)
    args.dry_run = False
    assert exit_cmd.run_exit(fresh, args, node.outsider.key, io.StringIO()) == 0
    assert client.token_balance(alice.address) == alice_before + expected[raw(alice)]

    bob_plan = plan_exit(fresh, raw(bob))
    assert (bob_plan.batch_number, bob_plan.exit_value) == (2, expected[raw(bob)])
    bob_before = client.token_balance(bob.address)
    submit_exit(fresh, node.outsider.key, bob_plan)
    assert client.token_balance(bob.address) == bob_before + expected[raw(bob)]
    with pytest.raises(ExitError, match="already exited"):
        submit_exit(fresh, node.outsider.key, bob_plan)

    paid = expected[raw(alice)] + expected[raw(bob)]
    assert paid <= deposited
    assert client.available_funds() == deposited - paid >= 0
    assert client.token_balance(client.address) == client.available_funds()


def test_exit_tool_refuses_before_anything_is_final() -> None:
    node = trading_node(1)
    run(node.poster.run_once())
    with pytest.raises(ExitError, match="genesis"):
        plan_exit(node.client, raw(node.alice))
    node.chain.mine(FINALITY_BLOCKS)
    plan = plan_exit(node.client, raw(node.alice))
    assert not plan.frozen and plan.exit_value == node.values_at_cut[1][raw(node.alice)]
    with pytest.raises(ExitError, match="not frozen"):
        submit_exit(node.client, node.outsider.key, plan)


def test_exit_tool_refuses_batch_data_that_does_not_rebuild_the_root() -> None:
    """An operator committing a root its data does not support: no proof is built."""
    node = trading_node(1)
    batch = node.cut[0]
    client = node.client
    client.commit_batch(
        node.outsider.key, node.sequencer.key, 1, batch.prev_state_root, b"\x77" * 32,
        batch.withdrawals_root, batch.l1_consumed, batch.data,
    )  # fmt: skip
    node.chain.mine(FINALITY_BLOCKS)
    with pytest.raises(ExitError, match="rebuilt root"):
        plan_exit(client, raw(node.alice))


def test_status_counts_all_batches_once() -> None:
    node = trading_node(3)
    run(node.poster.run_once())
    statuses = Counter(
        node.poster.status_of_seq(seq)[0] for seq in range(1, node.cut[-1].last_seq + 1)
    )
    assert statuses == {"committed": node.cut[-1].last_seq}
    assert node.poster.status_of_seq(node.cut[-1].last_seq + 1) == ("sequenced", None, None)
