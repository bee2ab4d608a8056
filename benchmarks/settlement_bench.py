"""Settlement benchmark: gas per intent of real state-diff batches, and settlement lag.

1. Gas. A venue of ``accounts`` traders (1,000 by default) on three perpetual markets trades
   through the real engine: limit orders resting and crossing, modifies, cancels, IOC and
   market orders, and oracle updates (about 1 record in 100). Each account deposits on chain
   first (the contract refuses a batch that consumes more L1 messages than it holds). After a
   set-up batch (deposits and opening quotes, not reported), batches of 100, 1,000 and 10,000
   records are cut from the running session and committed by the poster on the real contract
   in py-evm under Prague rules (EIP-7623: a data-heavy transaction pays at least 40 gas per
   non-zero calldata byte). Reported per batch: records, accounts in the diff, batch data bytes,
   gas, gas and bytes per intent, and whether the floor set the price.
2. Lag. The same venue is driven at a steady 5,000 intents per second of sequenced time with
   one block per second: the batcher cuts every second of sequenced time, the poster sends each
   batch when it is cut, and a block is mined every second (half a second out of phase with the
   cuts). Time is simulated in 100 ms ticks; after each tick the lag of the newest committed
   (and finalized) record behind the newest sequenced one is sampled, in records and ms. The
   wall time of each cut and each post is measured too: both must fit well inside a second for
   the simulated schedule to be achievable. py-evm refuses a second pool transaction from one
   sender before the first is mined, so the poster runs with one transaction in flight here.

It prints a table and returns the figures; it never asserts.
"""

from __future__ import annotations

import asyncio
import random
import time
from statistics import mean
from typing import Any

from eth_account import Account
from web3 import Web3

from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    OrderType,
    PlaceOrder,
    PublishOraclePrice,
    TimeInForce,
)
from asyncdex.settlement.batch import CutBatch, decode_batch_data
from asyncdex.settlement.batcher import Batcher
from asyncdex.settlement.chain import EthTesterChain, SettlementClient
from asyncdex.settlement.poster import Poster
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec

TARGET_GAS_PER_INTENT = 300
TARGET_LAG_MS = 3_000
TX_BASE_GAS = 21_000
PUBLISHER = keccak256(b"bench-publisher")[-20:]
MIDS = (600_000, 300_000, 15_000)  # $60,000 / $3,000 / $150 in 0.1-dollar price units
DEPOSIT = 1_000_000 * 1_000_000  # $1M each: margin never binds, so intents are not rejected
FINALITY_BLOCKS = 3
START_MS = 1_767_225_600_000


def bench_config() -> EngineConfig:
    specs = tuple(MarketSpec(m, f"M{m}", sz_decimals=5, tick=1, lot=1) for m in range(len(MIDS)))
    return EngineConfig(specs, oracle_publishers=(PUBLISHER,))


class Workload:
    """Seeded traders acting on the live engine state (orders they name are their own)."""

    def __init__(self, engine: Engine, accounts: int, seed: int = 11) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.addresses = [keccak256(f"trader-{i}".encode())[-20:] for i in range(accounts)]
        self.mids = list(MIDS)

    def setup(self) -> list[Command]:
        commands: list[Command] = [
            Deposit(address, DEPOSIT, index) for index, address in enumerate(self.addresses)
        ]
        commands += [PublishOraclePrice(PUBLISHER, m, mid) for m, mid in enumerate(self.mids)]
        return commands

    def opening_quotes(self) -> list[Command]:
        """Three resting orders per account, away from the mid."""
        rng = self.rng
        commands: list[Command] = []
        for address in self.addresses:
            for _ in range(3):
                market = rng.randrange(len(self.mids))
                commands.append(self._rest(address, market, rng.random() < 0.5))
        return commands

    def _rest(self, address: bytes, market: int, is_buy: bool) -> PlaceOrder:
        mid = self.mids[market]
        offset = mid * self.rng.randint(1, 60) // 10_000 + 1
        price = mid - offset if is_buy else mid + offset
        return PlaceOrder(address, market, is_buy, price, self._size(market))

    def _size(self, market: int) -> int:
        # at least the $10 minimum order value, up to about $1,200
        unit = -(-10_000_000 // self.mids[market])
        return unit * self.rng.randint(1, 120)

    def next_command(self) -> Command:
        rng = self.rng
        roll = rng.random()
        if roll < 0.01:
            market = rng.randrange(len(self.mids))
            self.mids[market] += self.mids[market] * rng.randint(-5, 5) // 10_000
            return PublishOraclePrice(PUBLISHER, market, self.mids[market])
        address = rng.choice(self.addresses)
        market = rng.randrange(len(self.mids))
        account = self.engine.state.accounts[address]
        position = account.positions.get(market)
        live = list(position.orders.values()) if position is not None else []
        is_buy = rng.random() < 0.5
        mid = self.mids[market]
        if live and (roll < 0.40 or len(live) >= 6):
            order = rng.choice(live)
            if roll < 0.25 or (len(live) >= 6 and roll < 0.5):
                step = mid * rng.randint(-10, 10) // 100_000 or 1
                price = max(1, order.price + step)
                price = min(price, mid - 1) if order.is_buy else max(price, mid + 1)
                return ModifyOrder(address, market, order.order_id, price, order.size)
            return CancelOrder(address, market, order.order_id)
        if roll < 0.75:
            if rng.random() < 0.15:  # a limit order through the mid: fills, then may rest
                edge = mid * rng.randint(1, 20) // 10_000 + 1
                price = mid + edge if is_buy else mid - edge
                return PlaceOrder(address, market, is_buy, price, self._size(market))
            return self._rest(address, market, is_buy)
        if roll < 0.93:
            edge = mid * rng.randint(1, 30) // 10_000 + 1
            price = mid + edge if is_buy else mid - edge
            return PlaceOrder(address, market, is_buy, price, self._size(market), TimeInForce.IOC)
        return PlaceOrder(
            address, market, is_buy, 0, self._size(market), order_type=OrderType.MARKET
        )


class BenchVenue:
    """The contract on py-evm, the engine, the batcher and the poster, wired as in a node."""

    def __init__(self, accounts: int) -> None:
        self.chain = EthTesterChain("prague")
        deployer, sequencer = (Account.from_key(key) for key in self.chain.funded_keys[:2])
        self.engine = Engine(bench_config())
        self.batches: list[CutBatch] = []
        self.batcher = Batcher(self.engine, self._on_cut, max_records=1, max_interval_ms=1 << 40)
        self.client = SettlementClient.deploy(
            self.chain, deployer.key, sequencer.address, FINALITY_BLOCKS, 7_200,
            self.batcher.genesis_root,
        )  # fmt: skip
        self.poster = Poster(
            self.client, sequencer.key, deployer.key, genesis_root=self.batcher.genesis_root
        )
        self.workload = Workload(self.engine, accounts)
        self.seq = 0
        self.now = START_MS
        self._deposit_on_chain(deployer.key, self.workload.addresses)

    def _deposit_on_chain(self, key: bytes, addresses: list[bytes]) -> None:
        client, chain = self.client, self.chain
        sender = Account.from_key(key).address
        client.mint(key, sender, DEPOSIT * len(addresses))
        client.approve(key, DEPOSIT * len(addresses))
        nonce = chain.pending_nonce(sender)
        for address in addresses:
            function = client.contract.functions.depositFor(
                Web3.to_checksum_address(address), DEPOSIT
            )
            # a fixed gas limit and a local nonce: no estimate per deposit (set-up speed only)
            chain.send_function(key, function, nonce=nonce, gas=150_000)
            nonce += 1

    def _on_cut(self, batch: CutBatch) -> None:
        self.batches.append(batch)
        self.poster.enqueue(batch)

    def feed(self, command: Command, timestamp: int) -> None:
        self.seq += 1
        self.batcher.process_record(self.seq, timestamp, command)

    def tick(self) -> None:
        """5,000 records per second of sequenced time."""
        if self.seq % 5 == 0:
            self.now += 1

    def cut_after(self, count: int, commands: list[Command] | None = None) -> CutBatch:
        """Feed records until the count rule cuts a batch of ``count``; each generated command
        is drawn from the state its predecessors left (so it names live orders)."""
        self.batcher.max_records = count
        cut = len(self.batches)
        pending = iter(commands) if commands is not None else None
        while len(self.batches) == cut:
            command = next(pending) if pending is not None else self.workload.next_command()
            self.feed(command, self.now)
            self.tick()
        return self.batches[-1]

    def post(self) -> None:
        asyncio.run(self.poster.run_once())


def calldata_costs(data: bytes) -> tuple[int, int]:
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    return 16 * nonzeros + 4 * zeros, 10 * (zeros + 4 * nonzeros)


def measure_gas(venue: BenchVenue, sizes: tuple[int, ...]) -> dict[str, Any]:
    workload = venue.workload
    opening = workload.setup()
    opening += workload.opening_quotes()
    venue.cut_after(len(opening), opening)
    venue.post()
    results: dict[str, Any] = {}
    for size in sizes:
        batch = venue.cut_after(size)
        venue.post()
        posting = venue.poster.posting(batch.number)
        assert posting.tx_hash is not None
        receipt = venue.chain.receipt(posting.tx_hash)
        assert receipt is not None
        transaction = venue.chain.w3.eth.get_transaction(receipt["transactionHash"])
        standard, floor = calldata_costs(bytes(transaction["input"]))
        gas = int(receipt["gasUsed"])
        decoded = decode_batch_data(batch.data)
        results[str(size)] = {
            "records": batch.records,
            "accounts_in_diff": len(decoded.accounts),
            "withdrawals": len(decoded.withdrawals),
            "batch_bytes": len(batch.data),
            "bytes_per_intent": round(len(batch.data) / batch.records, 2),
            "gas": gas,
            "gas_per_intent": round(gas / batch.records, 1),
            "calldata_gas_standard": standard,
            "calldata_gas_floor": floor,
            "floor_applied": gas == TX_BASE_GAS + floor,
        }
    return results


def _summary(values: list[int]) -> dict[str, int]:
    ordered = sorted(values)
    return {
        "mean": round(mean(ordered)),
        "p50": ordered[len(ordered) // 2],
        "max": ordered[-1],
    }


def measure_lag(
    venue: BenchVenue,
    seconds: int,
    rate: int = 5_000,
    block_ms: int = 1_000,
    block_phase_ms: int = 500,
    tick_ms: int = 100,
) -> dict[str, Any]:
    batcher, poster, chain = venue.batcher, venue.poster, venue.chain
    batcher.max_records = 1 << 40
    batcher.max_interval_ms = 1_000
    poster.max_in_flight = 1
    chain.tester.disable_auto_mine_transactions()
    per_tick = rate * tick_ms // 1_000
    start = venue.now - venue.now % 1_000 + 1_000
    end = start + seconds * 1_000
    first_batch = len(venue.batches) + 1
    next_block = start + block_phase_ms
    cut_wall: list[float] = []
    post_wall: list[float] = []
    committed_samples: list[tuple[int, int]] = []  # (records, ms)
    finalized_samples: list[tuple[int, int]] = []

    def sample(now: int) -> None:
        # Only once a batch of this run is committed (finalized): before that, the lag is
        # measured from the batches cut before the run and says nothing about a steady state.
        lag = poster.lag(venue.seq, now)
        if poster.committed_number >= first_batch and lag.committed_ms is not None:
            committed_samples.append((lag.committed_records, lag.committed_ms))
        if poster.finalized_number >= first_batch and lag.finalized_ms is not None:
            finalized_samples.append((lag.finalized_records, lag.finalized_ms))

    def post() -> None:
        began = time.perf_counter()
        asyncio.run(poster.run_once())
        post_wall.append(time.perf_counter() - began)

    try:
        now = start
        while now < end:
            for i in range(per_tick):
                command = venue.workload.next_command()
                cuts = len(venue.batches)
                began = time.perf_counter()
                venue.feed(command, now + i * tick_ms // per_tick)
                if len(venue.batches) > cuts:
                    cut_wall.append(time.perf_counter() - began)
            now += tick_ms
            if poster.pending_batches and not poster.halted:
                post()  # send what was just cut (mined with the next block)
            if now >= next_block:
                sample(now)  # just before the block: the highest lag of the cycle
                chain.mine(1)
                next_block += block_ms
                post()  # the receipt, and the next batch if one waits
            sample(now)
    finally:
        chain.tester.enable_auto_mine_transactions()
    sim_batches = [
        b for b in venue.batches[first_batch - 1 :] if poster.posting(b.number).committed
    ]
    gas = []
    for batch in sim_batches:
        tx_hash = poster.posting(batch.number).tx_hash
        receipt = chain.receipt(tx_hash) if tx_hash is not None else None
        if receipt is not None:
            gas.append(int(receipt["gasUsed"]) / batch.records)
    return {
        "intents_per_s": rate,
        "block_ms": block_ms,
        "simulated_s": seconds,
        "batches": len(sim_batches),
        "records_per_batch": round(mean(b.records for b in sim_batches)) if sim_batches else 0,
        "gas_per_intent": round(mean(gas), 1) if gas else None,
        "committed_lag_ms": _summary([ms for _, ms in committed_samples]),
        "committed_lag_records": _summary([records for records, _ in committed_samples]),
        "finalized_lag_ms": _summary([ms for _, ms in finalized_samples])
        if finalized_samples
        else None,
        "finality_blocks": FINALITY_BLOCKS,
        "cut_wall_ms": _summary([round(w * 1000) for w in cut_wall]) if cut_wall else None,
        "post_wall_ms": _summary([round(w * 1000) for w in post_wall]) if post_wall else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    accounts = 250 if quick else 1_000
    sizes = (100, 1_000, 10_000)
    seconds = 6 if quick else 20
    began = time.perf_counter()
    venue = BenchVenue(accounts)
    gas = measure_gas(venue, sizes)
    lag = measure_lag(venue, seconds)
    report: dict[str, Any] = {
        "rules": "prague (EIP-7623 calldata floor)",
        "accounts": accounts,
        "batches": gas,
        "lag": lag,
        "targets": {"gas_per_intent_at_10000": TARGET_GAS_PER_INTENT, "lag_ms": TARGET_LAG_MS},
        "wall_s": round(time.perf_counter() - began, 1),
    }
    print(f"commitBatch of real state-diff batches, {accounts:,} accounts, Prague rules")
    print(
        f"  {'intents':>8} {'accounts':>9} {'bytes':>8} {'B/intent':>9} {'gas':>11} "
        f"{'gas/intent':>11}"
    )
    for size, row in gas.items():
        floor = "  (calldata floor)" if row["floor_applied"] else ""
        print(
            f"  {int(size):>8,} {row['accounts_in_diff']:>9,} {row['batch_bytes']:>8,} "
            f"{row['bytes_per_intent']:>9} {row['gas']:>11,} {row['gas_per_intent']:>11}{floor}"
        )
    big = gas[str(sizes[-1])]["gas_per_intent"]
    print(f"  target: <= {TARGET_GAS_PER_INTENT} gas/intent at 10,000 intents: {big}")
    committed = lag["committed_lag_ms"]
    print(
        f"settlement lag at {lag['intents_per_s']:,} intents/s, {lag['block_ms']} ms blocks, "
        f"{lag['simulated_s']} s simulated, {lag['batches']} batches of "
        f"~{lag['records_per_batch']:,} ({lag['gas_per_intent']} gas/intent)"
    )
    print(
        f"  committed: {committed['mean']:,} ms mean, {committed['max']:,} ms max; "
        f"{lag['committed_lag_records']['mean']:,} records mean, "
        f"{lag['committed_lag_records']['max']:,} max (target < {TARGET_LAG_MS:,} ms)"
    )
    if lag["finalized_lag_ms"] is not None:
        print(
            f"  finalized ({FINALITY_BLOCKS} blocks): {lag['finalized_lag_ms']['mean']:,} ms "
            f"mean, {lag['finalized_lag_ms']['max']:,} ms max"
        )
    if lag["cut_wall_ms"] is not None and lag["post_wall_ms"] is not None:
        print(
            f"  wall time per cut {lag['cut_wall_ms']['mean']} ms (max "
            f"{lag['cut_wall_ms']['max']}), per poster pass {lag['post_wall_ms']['mean']} ms "
            f"(max {lag['post_wall_ms']['max']})"
        )
    return report


if __name__ == "__main__":
    run()
