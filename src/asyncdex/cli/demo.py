"""``asyncdex demo``: the whole venue on one machine, traded by simulated bots.

Invariants:

- Real components only, each in the process it has in a real deployment: the node (a
  :class:`~asyncdex.gateway.node.Node` with its journal in a temporary directory and the
  venue's extensions) runs in a process of its own, and settles on the embedded chain
  (:mod:`asyncdex.settlement.devchain`: py-evm in the node's child process, the settlement
  contract deployed at start, as ``[settlement] deploy = true`` does). This process is the
  outside world: an oracle publisher signing prices as three publishers and posting them to
  ``POST /v1/oracle``; deposits made on the chain (``POST /v1/dev/deposit``) and sequenced
  by the L1 watcher; bots trading through the SDK (:class:`~asyncdex.client.AsyncClient`)
  over loopback HTTP. So neither the chain nor the bots nor the publisher ever hold the
  node's interpreter lock or run on its event loop: the receipt latency the bots measure is
  the venue's.
- The view reads the public API (liquidations from the leveraged traders' account streams);
  the summary's event counts and the conservation check come from replaying the node's
  journal through a fresh engine once the node stopped (replay gives the node's events and
  state exactly), the contract's balance and final batch from the chain itself.
- The summary is of the trading window: the chain is read, and the journal replayed up to
  the last durable record, when trading has stopped and settled. With ``--keep-open`` the
  venue then stays up (the bots stopped, the oracle still publishing, the node serving the
  page and the APIs) until SIGINT or SIGTERM, which end it normally (exit code as without
  it); what anyone does meanwhile (faucet deposits, trades, claims from the page) is no part
  of the summary, so it cannot make the demo report money not conserved.
- The exit code is 0 only if trades happened, at least one batch was finalized on the chain,
  every record sequenced during trading ended in a finalized batch, money is conserved (the
  engine holds exactly what was deposited, less what was withdrawn; the deposits it saw are
  the ones made on chain; the contract holds exactly those), no bot failed and the node
  stopped cleanly; 130 after SIGINT or SIGTERM during trading (the summary is still
  printed); 1 otherwise.
- Prices and bot choices are seeded (``--seed``), but bots race each other on the wall clock,
  so two runs give different seqs and state roots; ``--engine-only`` runs the deterministic
  engine-only session of :mod:`asyncdex.cli.simulate` instead.
- Bots are pluggable: anything implementing :class:`Bot` (funding it needs, ``start``, one
  ``step`` at a time) can trade; ``run_venue_demo`` takes the bot factory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import aiohttp

from asyncdex.cli.node_cmd import TOKEN_ENV, default_extensions
from asyncdex.cli.simulate import (
    PUBLISHERS,
    DemoSession,
    DemoSummary,
    demo_config,
    print_summary,
    run_demo,
)
from asyncdex.cli.venue_view import ClientMetrics, VenueView, read_snapshot
from asyncdex.client import AsyncClient, IntakeRefused, NodeUnavailable, Receipt, Wallet
from asyncdex.client.markets import Markets
from asyncdex.engine.build import ENGINE_KINDS, build_engine, choose_engine
from asyncdex.engine.reader import EngineLike
from asyncdex.engine.state_root import state_root
from asyncdex.gateway.node import JOURNAL_SUBDIR, Node, NodeSettings, serve
from asyncdex.messages.commands import Signed
from asyncdex.messages.events import (
    Event,
    LiquidationStarted,
    OraclePriceAccepted,
    PositionDeleveraged,
    Rejected,
    TradeExecuted,
)
from asyncdex.messages.reasons import Reject
from asyncdex.oracle.publisher import OraclePublisher
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.records import Record
from asyncdex.sequencer.recovery import replay
from asyncdex.settlement.chain import RpcChain, SettlementClient
from asyncdex.settlement.service import SettlementSettings, deploy_embedded
from asyncdex.signing.eip712 import address_of_private_key
from asyncdex.signing.intents import Intent, asyncdex_domain
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import USDC_DECIMALS, format_scaled, format_usdc, parse_scaled

# The engine-only session's names stay importable from here.
__all__ = [
    "PUBLISHERS",
    "Bot",
    "DemoSession",
    "DemoSummary",
    "Venue",
    "demo_config",
    "print_summary",
    "run_demo",
    "run_venue_demo",
]

_log = logging.getLogger(__name__)

USDC = 1_000_000
BTC, ETH = 0, 1
BUY: Literal["buy"] = "buy"
SELL: Literal["sell"] = "sell"
START_PRICES = {BTC: 600_000, ETH: 300_000}  # $60,000 and $3,000 in each market's units
SETUP_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0  # the node drains, snapshots and stops its chain
EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT


@dataclasses.dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float = 20.0  # seconds of trading
    seed: int = 1
    oracle_interval_ms: int = 250
    block_time_ms: int = 250  # the embedded chain's
    finality_blocks: int = 2
    batch_interval_ms: int = 1_000
    shock_ppm: int = -45_000  # the scripted oracle jump that liquidates the leveraged traders
    keep_open: bool = False  # after trading, serve until SIGINT / SIGTERM
    engine: str | None = None  # the node's and the summary replay's (None: native if built)


def _demo_key(label: str) -> bytes:
    """Fixed demo keys: every run starts a fresh chain and venue, so none is a secret."""
    return keccak256(f"asyncdex demo {label}".encode())


PUBLISHER_KEYS = tuple(_demo_key(f"oracle publisher {i}") for i in range(3))


def venue_config() -> EngineConfig:
    """The engine-only demo's markets, with publishers that hold keys and sign."""
    publishers = tuple(address_of_private_key(key) for key in PUBLISHER_KEYS)
    return dataclasses.replace(demo_config(), oracle_publishers=publishers)


# ---------------------------------------------------------------------------------------------
# What bots see


class Venue:
    """The running venue as bots see it: the node's URL, the SDK, deposits, prices."""

    def __init__(
        self,
        url: str,
        operator_token: str,
        config: EngineConfig,
        chain_id: int,
        contract: bytes,
        http: aiohttp.ClientSession,
        metrics: ClientMetrics,
        seed: int,
    ) -> None:
        self.url = url
        self.operator_token = operator_token
        self.specs: tuple[MarketSpec, ...] = config.markets
        self.markets = Markets.from_config(config)
        self.chain_id = chain_id
        self.contract = contract
        self.http = http
        self.metrics = metrics
        self.seed = seed
        self.deposited = 0  # micro-USDC deposited on chain
        self.failed_bots: list[str] = []  # bots stopped by an error (a failed demo)
        # market id -> {"index", "bid", "ask"} in engine units, refreshed by ``watch_prices``
        self.prices: dict[int, dict[str, int]] = {}

    def client(self, wallet: Wallet) -> AsyncClient:
        return AsyncClient(
            self.url, wallet, self.chain_id, self.contract, self.markets, session=self.http
        )

    async def deposit(self, account: bytes, usdc: int) -> None:
        """Mint test USDC and deposit it on the embedded chain; the watcher sequences it."""
        body = {"account": "0x" + account.hex(), "amount": usdc * USDC}
        headers = {"Authorization": f"Bearer {self.operator_token}"}
        async with self.http.post(
            self.url + "/v1/dev/deposit", json=body, headers=headers
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"dev deposit refused: {await response.text()}")
        self.deposited += usdc * USDC

    async def submit(self, client: AsyncClient, intents: Sequence[Intent]) -> list[Receipt]:
        """Sign intents and send them in one request, timing from send to receipt; a refusal
        is counted, not raised (no receipts then)."""
        signed = [client.sign(intent) for intent in intents]
        started = time.perf_counter()
        try:
            receipts = await client.submit(signed)
        except IntakeRefused as refusal:
            self.metrics.refused(refusal.code)
            return []
        except NodeUnavailable:
            self.metrics.refused("unavailable")
            return []
        self.metrics.receipt(time.perf_counter() - started, len(intents))
        return receipts

    async def watch_prices(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self.http.get(self.url + "/v1/markets") as response:
                    document = await response.json()
                for market, spec in zip(document["markets"], self.specs, strict=True):
                    self.prices[spec.market_id] = {
                        key: _units(market[name], spec)
                        for key, name in (("index", "indexPrice"), ("bid", "bestBid"),
                                          ("ask", "bestAsk"))
                    }  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    def index(self, market: int) -> int:
        return self.prices.get(market, {}).get("index", 0)


def _units(text: str | None, spec: MarketSpec) -> int:
    """A decimal price string of the API in engine units (0 for none)."""
    return 0 if text is None else parse_scaled(text, spec.price_decimals)


def _price(value: int, spec: MarketSpec) -> int:
    """Down to a tick, at least one tick."""
    return max(spec.tick, value // spec.tick * spec.tick)


def _size(notional: int, price: int, spec: MarketSpec) -> int:
    """The size worth about ``notional`` micro-USDC at ``price``, down to a lot, at least one
    lot (a size times a price in engine units is micro-USDC)."""
    return max(spec.lot, notional // price // spec.lot * spec.lot)


# ---------------------------------------------------------------------------------------------
# Bots


class Bot(ABC):
    """One simulated trader. ``funding`` is deposited before ``start``; then ``step`` runs
    until the demo ends, each call returning the seconds to wait before the next."""

    name: str

    @abstractmethod
    def funding(self) -> list[tuple[bytes, int]]:
        """(account, USDC) to deposit on chain before trading."""

    async def start(self, venue: Venue) -> None:
        return None

    @abstractmethod
    async def step(self, venue: Venue) -> float: ...

    async def close(self) -> None:
        return None


class SdkBot(Bot):
    """A bot trading one account through the SDK."""

    def __init__(self, name: str, venue: Venue, deposit_usdc: int) -> None:
        self.name = name
        self.wallet = Wallet(_demo_key(name))
        self.client = venue.client(self.wallet)
        self.deposit_usdc = deposit_usdc
        self.rng = random.Random(f"{venue.seed} {name}")

    def funding(self) -> list[tuple[bytes, int]]:
        return [(self.wallet.account, self.deposit_usdc)]

    async def close(self) -> None:
        await self.client.close()


class MarketMaker(SdkBot):
    """Re-quotes a ladder around the oracle index in every market: cancel all, then
    ``levels`` bids and asks, level n at ``offset_bps`` + 4n basis points from the index, in
    one request."""

    def __init__(self, name: str, venue: Venue, offset_bps: int, levels: int = 4) -> None:
        super().__init__(name, venue, deposit_usdc=5_000_000)
        self.offset_bps = offset_bps
        self.levels = levels

    async def step(self, venue: Venue) -> float:
        for spec in venue.specs:
            index = venue.index(spec.market_id)
            if not index:
                continue
            build = self.client.build
            intents: list[Intent] = [build.cancel_all(spec.market_id)]
            for level in range(1, self.levels + 1):
                offset = index * (self.offset_bps + 4 * level) // 10_000
                # about $5,000 to $20,000 a level
                size = _size(5_000 * USDC * self.rng.randint(1, 4), index, spec)
                for side, price in ((BUY, index - offset), (SELL, index + offset)):
                    intents.append(
                        build.place_order(spec.market_id, side, size, _price(price, spec))
                    )
            await venue.submit(self.client, intents)
        return self.rng.uniform(0.3, 0.6)


class Taker(SdkBot):
    """Crosses the spread with small market orders, either side, in a random market."""

    def __init__(self, name: str, venue: Venue) -> None:
        super().__init__(name, venue, deposit_usdc=100_000)

    async def step(self, venue: Venue) -> float:
        spec = self.rng.choice(venue.specs)
        index = venue.index(spec.market_id)
        prices = venue.prices.get(spec.market_id, {})
        if index and prices.get("bid") and prices.get("ask"):
            size = _size(USDC * self.rng.randint(200, 3_000), index, spec)
            side = self.rng.choice((BUY, SELL))
            await venue.submit(
                self.client, [self.client.build.market_order(spec.market_id, side, size)]
            )
        return self.rng.uniform(0.02, 0.08)


class LeveragedTrader(SdkBot):
    """Opens one long at ``leverage`` times its deposit as soon as the book has asks, then
    holds it: an oracle jump against it gets it liquidated."""

    def __init__(self, name: str, venue: Venue, market: int, leverage: int = 18) -> None:
        super().__init__(name, venue, deposit_usdc=1_000)
        self.market = market
        self.leverage = leverage
        self.opened = False

    async def start(self, venue: Venue) -> None:
        spec = venue.specs[self.market]
        await venue.submit(self.client, [self.client.build.set_leverage(spec.market_id, 20)])

    async def step(self, venue: Venue) -> float:
        if self.opened:
            return 1.0
        spec = venue.specs[self.market]
        prices = venue.prices.get(self.market, {})
        ask = prices.get("ask", 0)
        if not ask:
            return 0.1
        size = _size(self.leverage * self.deposit_usdc * USDC, ask, spec)
        order = self.client.build.market_order(spec.market_id, BUY, size)
        receipts = await venue.submit(self.client, [order])
        if receipts:
            # filled, or try again (an order the book could not fill is rejected, not kept)
            outcome = await self.client.wait_for(receipts[0], timeout=30)
            self.opened = bool(outcome.fills)
        return 1.0 if self.opened else 0.2


BotFactory = Callable[[Venue], list[Bot]]


def default_bots(venue: Venue) -> list[Bot]:
    """Three market makers, four takers, and one over-leveraged long in each market."""
    bots: list[Bot] = [MarketMaker(f"maker {i}", venue, offset_bps=3 + 2 * i) for i in range(3)]
    bots += [Taker(f"taker {i}", venue) for i in range(4)]
    bots += [LeveragedTrader(f"leveraged {spec.symbol}", venue, spec.market_id)
             for spec in venue.specs]  # fmt: skip
    return bots


async def run_bot(bot: Bot, venue: Venue, stop: asyncio.Event) -> None:
    try:
        await bot.start(venue)
        while not stop.is_set():
            delay = await bot.step(venue)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    except Exception:
        _log.exception("bot %s failed", bot.name)
        venue.failed_bots.append(bot.name)


# ---------------------------------------------------------------------------------------------
# Counting, from the journal


@dataclasses.dataclass
class EventCounts:
    """What the engine applied, counted from the journal once the node stopped: each record
    replayed through a fresh engine gives the events the node's engine gave (replay is
    deterministic), so the summary needs no hook inside the node."""

    intents: int = 0  # trader intents applied
    fills: int = 0
    volume: int = 0  # micro-USDC notional
    liquidations: int = 0
    deleveraged: int = 0
    oracle_prices: int = 0
    rejections: Counter[str] = dataclasses.field(default_factory=Counter)

    def __call__(self, seq: int, record: Record, events: list[Event]) -> None:
        if type(record.command) is Signed:
            self.intents += 1
        for event in events:
            kind = type(event)
            if kind is TradeExecuted:
                self.fills += 1
                self.volume += event.price * event.size  # type: ignore[union-attr]
            elif kind is LiquidationStarted:
                self.liquidations += 1
            elif kind is PositionDeleveraged:
                self.deleveraged += 1
            elif kind is OraclePriceAccepted:
                self.oracle_prices += 1
            elif kind is Rejected:
                reason = event.reason  # type: ignore[union-attr]
                try:
                    self.rejections[Reject(reason).name] += 1
                except ValueError:
                    self.rejections[str(reason)] += 1


def replay_journal(
    journal_dir: Path,
    config: EngineConfig,
    counts: EventCounts,
    to_seq: int | None = None,
    engine_kind: str | None = None,
) -> EngineLike:
    """Replay the node's journal from seq 1 (to ``to_seq``, or its end) through a fresh
    engine (``engine_kind``; None: the default), counting its events."""
    journal, _ = FileJournal.open(journal_dir)
    try:
        engine = build_engine(choose_engine(engine_kind)[0], config)
        replay(journal, engine, 1, to_seq or None, on_record=counts)
    finally:
        journal.close()
    return engine


# ---------------------------------------------------------------------------------------------
# The venue process: the node, its own interpreter


def _node_settings(data_dir: Path, options: DemoOptions, token: str) -> NodeSettings:
    """What ``asyncdex node`` builds for a config with ``[settlement] deploy = true``."""
    config = venue_config()
    embedded, sequencer_key = deploy_embedded(
        config,
        None,
        data_dir=data_dir,
        finality_blocks=options.finality_blocks,
        forced_deadline_blocks=100,
        block_time_ms=options.block_time_ms,
    )
    chain_id = embedded.client.chain.chain_id
    contract = bytes.fromhex(embedded.client.address[2:])
    settlement = SettlementSettings(
        sequencer_key=sequencer_key,
        embedded=embedded,
        expected_chain_id=chain_id,
        confirmations=1,
        batch_interval_ms=options.batch_interval_ms,
        poll_interval_s=0.25,
        from_block=embedded.deploy_block,
    )
    # No request budgets (``rate_limits`` stays None): every bot, the publisher and the view
    # come from one loopback address, which a venue's per-IP budget is not meant for.
    return NodeSettings(
        data_dir=data_dir,
        engine_config=config,
        domain=asyncdex_domain(chain_id, contract),
        operator_token=token,
        settlement=settlement,
        extensions=default_extensions(),
        # as ``asyncdex node`` defaults: every core but the event loop's
        verify_workers=max(1, (os.cpu_count() or 1) - 1),
        engine=options.engine,
    )


def venue_process_main(argv: Sequence[str] | None = None) -> int:
    """``python -m asyncdex.cli.demo --data DIR ...``: the demo's node, as its own process.

    It serves until SIGTERM or until its stdin closes (the demo that started it is gone),
    then stops cleanly; the first stdout line is the node's address and signing domain.
    """
    parser = argparse.ArgumentParser(prog="python -m asyncdex.cli.demo")
    parser.add_argument("--data", required=True)
    defaults = DemoOptions()
    parser.add_argument("--block-time-ms", type=int, default=defaults.block_time_ms)
    parser.add_argument("--finality-blocks", type=int, default=defaults.finality_blocks)
    parser.add_argument("--batch-interval-ms", type=int, default=defaults.batch_interval_ms)
    parser.add_argument("--engine", choices=ENGINE_KINDS, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")  # fmt: skip
    options = DemoOptions(
        block_time_ms=args.block_time_ms,
        finality_blocks=args.finality_blocks,
        batch_interval_ms=args.batch_interval_ms,
        engine=args.engine,
    )
    token = os.environ[TOKEN_ENV]
    settings = _node_settings(Path(args.data), options, token)

    def ready(node: Node) -> None:
        line = {
            "url": node.url,
            "chainId": node.settings.domain.chain_id,
            "contract": "0x" + node.settings.domain.verifying_contract.hex(),
            "engine": node.engine_name,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        stdin = sys.stdin.fileno()

        def on_stdin() -> None:
            with contextlib.suppress(OSError):
                if os.read(stdin, 4096):
                    return
            loop.remove_reader(stdin)
            node.request_stop()

        loop.add_reader(stdin, on_stdin)

    return asyncio.run(serve(settings, on_ready=ready))


class VenueProcess:
    """The demo's node in a child process (its own session: a ^C at the terminal reaches the
    demo, which stops the node itself with SIGTERM)."""

    def __init__(self, process: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.process = process
        self.url: str = ready["url"]
        self.chain_id: int = ready["chainId"]
        self.contract = bytes.fromhex(ready["contract"][2:])
        self.engine: str = ready["engine"]

    @classmethod
    async def start(cls, data_dir: Path, options: DemoOptions, token: str) -> VenueProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "asyncdex.cli.demo", "--data", str(data_dir),
            "--block-time-ms", str(options.block_time_ms),
            "--finality-blocks", str(options.finality_blocks),
            "--batch-interval-ms", str(options.batch_interval_ms),
            *(("--engine", options.engine) if options.engine else ()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, TOKEN_ENV: token}, start_new_session=True,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), SETUP_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            code = await process.wait()
            raise RuntimeError(f"the venue's node did not start (exit {code})")
        return cls(process, json.loads(line))

    async def stop(self) -> int:
        """SIGTERM (the node drains and exits 0 when all is durable); its exit code."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        returncode = self.process.returncode
        assert returncode is not None
        return returncode


# ---------------------------------------------------------------------------------------------
# The run


async def _wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    """Poll ``check`` until it is true; ``TimeoutError`` after ``timeout`` seconds. A read
    that fails (the node busy or restarting) counts as not yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            if await check():
                return
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.json()


@dataclasses.dataclass
class VenueSummary:
    duration: float = 0.0
    intents: int = 0
    intents_per_second: float = 0.0
    fills: int = 0
    volume: str = "0"
    liquidations: int = 0
    deleveraged: int = 0
    oracle_prices: int = 0
    rejections: dict[str, int] = dataclasses.field(default_factory=dict)
    refusals: dict[str, int] = dataclasses.field(default_factory=dict)
    # what the bots measured: intents acknowledged (durable receipts) per second of trading,
    # and each request's time from send to receipts
    acknowledged_per_second: float = 0.0
    receipt_p50_ms: float | None = None
    receipt_p99_ms: float | None = None
    batches_committed: int = 0
    batches_finalized: int = 0
    all_final: bool = False
    last_trading_seq: int = 0
    summary_seq: int = 0  # the journal is replayed to here: the end of the trading window
    state_root: str = ""
    deposited: str = "0"
    conserved: bool = False
    node_exit_code: int = -1
    interrupted: bool = False  # SIGINT or SIGTERM cut the trading short
    failed_bots: list[str] = dataclasses.field(default_factory=list)
    contract_balance: str = "0"  # USDC the settlement contract holds
    chain_final_batch: int = 0  # the last batch the contract calls final

    @property
    def ok(self) -> bool:
        return (
            self.fills > 0
            and self.batches_finalized > 0
            and self.chain_final_batch > 0
            and self.all_final
            and self.conserved
            and self.node_exit_code == 0
            and not self.failed_bots
        )


async def run_venue_demo(
    options: DemoOptions, out: TextIO, bots: BotFactory = default_bots, tty: bool | None = None
) -> VenueSummary:
    summary = VenueSummary()
    token = secrets.token_hex(16)
    config = venue_config()
    with tempfile.TemporaryDirectory(prefix="asyncdex-demo-") as data:
        print("asyncdex demo: deploying the settlement contract on the embedded chain…",
              file=out, flush=True)  # fmt: skip
        venue_process = await VenueProcess.start(Path(data), options, token)
        print(f"node listening on {venue_process.url}; chain id {venue_process.chain_id}, "
              f"contract 0x{venue_process.contract.hex()}", file=out, flush=True)  # fmt: skip
        print(f"trading page: {venue_process.url}/", file=out, flush=True)
        print(f"engine: {venue_process.engine}", file=out, flush=True)
        metrics = ClientMetrics()
        try:
            await _run(venue_process, config, options, out, bots, tty, summary, metrics, token)
        finally:
            summary.node_exit_code = await venue_process.stop()
        # The engine's side, from the durable journal the node left: what it applied, and
        # whether money was conserved.
        counts = EventCounts()
        engine = await asyncio.to_thread(
            replay_journal,
            Path(data) / JOURNAL_SUBDIR,
            config,
            counts,
            summary.summary_seq,
            options.engine,
        )
    _fill_summary(summary, engine, counts)
    return summary


async def _run(
    venue_process: VenueProcess,
    config: EngineConfig,
    options: DemoOptions,
    out: TextIO,
    bots_of: BotFactory,
    tty: bool | None,
    summary: VenueSummary,
    metrics: ClientMetrics,
    token: str,
) -> None:
    url = venue_process.url
    domain = asyncdex_domain(venue_process.chain_id, venue_process.contract)
    # the oracle has its own stop: it keeps publishing while the venue is kept open
    stop_trading, stop_all, stop_oracle = asyncio.Event(), asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        venue = Venue(
            url, token, config, domain.chain_id, domain.verifying_contract, http, metrics,
            options.seed,
        )  # fmt: skip
        publisher = OraclePublisher(
            url,
            PUBLISHER_KEYS,
            domain,
            {spec.market_id: (START_PRICES[spec.market_id], spec.tick) for spec in venue.specs},
            interval_ms=options.oracle_interval_ms,
            seed=options.seed,
            session=http,
        )
        bots = bots_of(venue)
        names = {account: bot.name for bot in bots for account, _ in bot.funding()}
        background = [
            asyncio.create_task(publisher.run(stop_oracle), name="oracle"),
            asyncio.create_task(venue.watch_prices(stop_all), name="prices"),
            asyncio.create_task(
                _watch_liquidations(http, url, config, names, metrics, stop_all),
                name="liquidations",
            ),
        ]
        try:
            funding = [entry for bot in bots for entry in bot.funding()]
            print(f"depositing for {len(funding)} accounts on chain…", file=out, flush=True)
            for account, usdc in funding:
                await venue.deposit(account, usdc)

            async def deposits_in() -> bool:
                status = await _get_json(http, url + "/v1/status")
                return bool(status["settlement"]["l1Consumed"] >= len(funding))

            async def prices_in() -> bool:
                return all(venue.index(spec.market_id) for spec in venue.specs)

            await _wait_until(deposits_in, "the deposits", SETUP_TIMEOUT_S)
            await _wait_until(prices_in, "the first oracle prices", SETUP_TIMEOUT_S)
            metrics.started = time.perf_counter()
            view = VenueView(url, metrics, options.duration, out, tty=tty)
            view_task = asyncio.create_task(view.run(http, stop_all), name="view")
            bot_tasks = [asyncio.create_task(run_bot(bot, venue, stop_trading)) for bot in bots]
            await _trade(options, publisher, venue, interrupted, metrics)
            stop_trading.set()
            await asyncio.gather(*bot_tasks)
            metrics.stopped = time.perf_counter()
            summary.interrupted = interrupted.is_set()
            summary.duration = metrics.elapsed()
            summary.last_trading_seq = (await _get_json(http, url + "/v1/status"))["lastSeq"]

            async def last_final() -> bool:
                if interrupted.is_set():
                    return True
                seq = summary.last_trading_seq
                return bool((await _get_json(http, f"{url}/v1/seq/{seq}"))["status"] == "finalized")

            # everything traded is settled before the summary: wait for its batch to be final
            # (not after an interrupt: whoever pressed ^C wants the summary now)
            with contextlib.suppress(TimeoutError):
                await _wait_until(last_final, "the last batch to be final", SETTLE_TIMEOUT_S)
            stop_all.set()
            await view_task
            snapshot = await read_snapshot(http, url)
            record = await _get_json(http, f"{url}/v1/seq/{summary.last_trading_seq}")
            summary.all_final = record["status"] == "finalized"
            # The chain's side, read from the chain itself: what the contract holds and which
            # batch it calls final (nothing moves money once trading stopped).
            settlement = snapshot.status["settlement"]
            balance, final_batch = await asyncio.to_thread(
                _read_contract, settlement["embeddedRpc"], settlement["contract"]
            )
            summary.contract_balance = format_usdc(balance)
            summary.chain_final_batch = final_batch
            summary.batches_committed = settlement["lastCommittedBatch"]
            summary.batches_finalized = settlement["lastFinalizedBatch"]
            # the engine's side is replayed to here: every record durable by now, and no
            # later one (nothing has moved money since the contract was read)
            summary.summary_seq = (await _get_json(http, url + "/v1/status"))["durableSeq"]
            if options.keep_open and not interrupted.is_set():
                await _keep_open(venue_process, interrupted, out)
        finally:
            stop_trading.set()
            stop_all.set()
            stop_oracle.set()
            await asyncio.gather(*background, return_exceptions=True)
            for bot in bots:
                await bot.close()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
    summary.refusals = dict(metrics.refusals)
    summary.failed_bots = list(venue.failed_bots)
    if summary.duration:
        summary.acknowledged_per_second = metrics.intents / summary.duration
    summary.receipt_p50_ms = metrics.percentile_ms(0.5)
    summary.receipt_p99_ms = metrics.percentile_ms(0.99)
    summary.deposited = format_usdc(venue.deposited)


async def _keep_open(venue_process: VenueProcess, interrupted: asyncio.Event, out: TextIO) -> None:
    """Serve until SIGINT / SIGTERM (or until the node exits by itself)."""
    print(
        f"\ntrading stopped; the venue stays open at {venue_process.url}/ (bots stopped, "
        "oracle prices continue). Ctrl-C or SIGTERM ends it and prints the summary of the "
        "trading window.",
        file=out,
        flush=True,
    )
    signalled = asyncio.create_task(interrupted.wait())
    exited = asyncio.create_task(venue_process.process.wait())
    try:
        await asyncio.wait({signalled, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
        if not exited.done():
            exited.cancel()


def _read_contract(rpc_url: str, contract: str) -> tuple[int, int]:
    """(USDC the settlement contract holds, the last batch it calls final)."""
    client = SettlementClient.at(RpcChain(rpc_url), contract)
    return client.token_balance(client.address), client.last_final_batch()


async def _watch_liquidations(
    http: aiohttp.ClientSession,
    url: str,
    config: EngineConfig,
    names: dict[bytes, str],
    metrics: ClientMetrics,
    stop: asyncio.Event,
) -> None:
    """A line in the view when a leveraged trader is liquidated, from its account stream
    (``/v1/ws``, as any client would follow an account)."""
    watched = [account for account, name in names.items() if name.startswith("leveraged")]
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.ws_connect(url + "/v1/ws", heartbeat=None) as ws:
            for index, account in enumerate(watched):
                await ws.send_json(
                    {"op": "subscribe", "id": index, "channel": "account",
                     "address": "0x" + account.hex()}
                )  # fmt: skip
            closing = asyncio.create_task(stop.wait())
            try:
                while not stop.is_set():
                    receiving = asyncio.create_task(ws.receive())
                    await asyncio.wait({receiving, closing}, return_when=asyncio.FIRST_COMPLETED)
                    if not receiving.done():
                        receiving.cancel()
                        break
                    message = receiving.result()
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    _note_liquidations(json.loads(message.data), config, names, metrics)
            finally:
                closing.cancel()


def _note_liquidations(
    message: dict[str, Any], config: EngineConfig, names: dict[bytes, str], metrics: ClientMetrics
) -> None:
    if message.get("channel") != "account":
        return
    for event in message.get("events", ()):
        if event.get("type") != "LiquidationStarted":
            continue
        account = bytes.fromhex(event["account"][2:])
        market = event["market"]
        where = "cross margin" if market < 0 else config.markets[market].symbol
        metrics.note(f"{names.get(account, event['account'])} liquidated ({where})")


async def _trade(
    options: DemoOptions,
    publisher: OraclePublisher,
    venue: Venue,
    interrupted: asyncio.Event,
    metrics: ClientMetrics,
) -> None:
    """Let the bots trade for the duration; scripted oracle jumps at 40% and 60% of it."""
    shocks = [(options.duration * (0.4 + 0.2 * i), spec) for i, spec in enumerate(venue.specs)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for at, spec in shocks:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), max(0.0, started + at - loop.time()))
        if interrupted.is_set():
            return
        price = publisher.jump(spec.market_id, options.shock_ppm)
        metrics.note(
            f"oracle jump, {spec.symbol} {options.shock_ppm / 10_000:+g}% to "
            f"{format_scaled(price, spec.price_decimals)}"
        )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            interrupted.wait(), max(0.0, started + options.duration - loop.time())
        )


def _fill_summary(summary: VenueSummary, engine: EngineLike, counts: EventCounts) -> None:
    """The engine's side of the summary, from the journal's replay."""
    state = engine.full_state()
    summary.intents = counts.intents
    summary.intents_per_second = counts.intents / summary.duration if summary.duration else 0.0
    summary.fills = counts.fills
    summary.volume = format_usdc(counts.volume)
    summary.liquidations = counts.liquidations
    summary.deleveraged = counts.deleveraged
    summary.oracle_prices = counts.oracle_prices
    summary.rejections = dict(counts.rejections)
    summary.state_root = "0x" + state_root(state).hex()
    deposited = parse_scaled(summary.deposited, USDC_DECIMALS)
    summary.conserved = (
        state.total_money() == state.total_deposited - state.total_withdrawn
        and state.total_deposited == deposited
        and summary.contract_balance == summary.deposited
    )


def print_venue_summary(summary: VenueSummary, out: TextIO) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f} ms"

    cut_short = " (interrupted)" if summary.interrupted else ""
    rows = [
        ("trading time", f"{summary.duration:.1f} s{cut_short}"),
        ("intents applied", f"{summary.intents:,} ({summary.intents_per_second:,.0f}/s)"),
        ("fills", f"{summary.fills:,}"),
        ("volume", f"${float(summary.volume):,.2f}"),
        ("liquidations", f"{summary.liquidations}"),
        ("auto-deleveraged fills", f"{summary.deleveraged}"),
        ("oracle prices accepted", f"{summary.oracle_prices:,}"),
        ("engine rejections", f"{summary.rejections or 'none'}"),
        ("refused at intake", f"{summary.refusals or 'none'}"),
        ("bots failed", ", ".join(summary.failed_bots) or "none"),
        ("intents acknowledged", f"{summary.acknowledged_per_second:,.0f}/s"),
        ("receipt latency", f"p50 {ms(summary.receipt_p50_ms)}, p99 {ms(summary.receipt_p99_ms)}"),
        ("batches committed", f"{summary.batches_committed}"),
        ("batches finalized", f"{summary.batches_finalized}"),
        ("all trading final", "yes" if summary.all_final else "NO"),
        ("deposited on chain", f"${float(summary.deposited):,.2f}"),
        ("held by the contract", f"${float(summary.contract_balance):,.2f}"),
        ("final on chain", f"batch {summary.chain_final_batch}"),
        ("money conserved", "yes" if summary.conserved else "NO"),
        ("final state root", summary.state_root),
        ("node stopped cleanly", "yes" if summary.node_exit_code == 0 else "NO"),
    ]
    print("\nasyncdex demo summary", file=out)
    for name, value in rows:
        print(f"  {name:<24} {value}", file=out)
    out.flush()


def cmd_demo(args: Any, bots: BotFactory = default_bots) -> int:
    """``asyncdex demo``: the venue demo traded by ``bots``, or with ``--engine-only`` the
    engine simulation."""
    if args.engine_only:
        kind, warning = choose_engine(args.engine)
        if warning is not None:
            print(f"warning: {warning}", file=sys.stderr)
        return 0 if run_demo(hours=args.hours, seed=args.seed, engine_kind=kind).conserved else 1
    if args.duration <= 0:
        print("asyncdex demo: --duration must be positive", file=sys.stderr)
        return 2
    # the view owns the terminal; the node's own logs only when something is wrong
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")  # fmt: skip
    options = DemoOptions(
        duration=args.duration, seed=args.seed, keep_open=args.keep_open, engine=args.engine
    )
    out = sys.stdout
    summary = asyncio.run(run_venue_demo(options, out, bots))
    print_venue_summary(summary, out)
    if args.json:
        print(json.dumps(dataclasses.asdict(summary) | {"ok": summary.ok}), file=out, flush=True)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(venue_process_main())
