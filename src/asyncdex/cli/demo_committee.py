"""``asyncdex demo --committee N``: the venue on a committee of N member processes, settling on
a development chain, traded by the demo's bots while the leader is killed and restarted.

Invariants:
- Real components only: N ``asyncdex node`` processes with a ``[committee]`` table
  (``asyncdex committee --settle``), talking over loopback; the embedded chain with a
  ``CommitteeSettlement`` contract deployed for them and every member bonded; deposits made
  on the chain and seen by every member's watcher; the demo's bots trading through the SDK,
  spread over the members; the oracle publisher signing prices to one member, which relays
  them into the committee's blocks.
- A third into trading the member leading the current view is SIGKILLed; two thirds in it is
  restarted from its data directory and catches up. The summary says how long the committee
  went without a commit after the kill, and how long the restarted member took to rejoin.
- The exit code is 0 only if trades happened, at least one batch was committed on chain with
  a quorum's certificate, no bot failed, every member stopped cleanly, and their journals
  (the restarted member's included) hold the same records through everything traded, hence
  the same state root at every seq; 1 otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import aiohttp

import asyncdex
from asyncdex.cli.committee_cmd import (
    CommitteeProcesses,
    DivergedHistory,
    common_history,
    free_port_range,
)
from asyncdex.cli.demo import (
    PUBLISHER_KEYS,
    START_PRICES,
    USDC,
    BotFactory,
    Venue,
    default_bots,
    run_bot,
)
from asyncdex.cli.node_cmd import load_config
from asyncdex.cli.venue_view import ClientMetrics
from asyncdex.client import AsyncClient, Wallet
from asyncdex.oracle.publisher import OraclePublisher
from asyncdex.settlement.chain import CommitteeSettlementClient, RpcChain
from asyncdex.settlement.devchain import DEV_KEYS
from asyncdex.signing.eip712 import address_of_private_key, parse_address
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.market import EngineConfig

BASE_CONFIG = Path(asyncdex.__file__).resolve().parents[2] / "examples" / "committee.toml"
FUNDER_KEY = DEV_KEYS[0]  # mints and deposits the bots' test USDC on the development chain
SETTLE_WAIT_S = 60.0
POLL_S = 0.02


@dataclasses.dataclass
class CommitteeDemoSummary:
    members: int = 0
    intents: int = 0
    refused: dict[str, int] = dataclasses.field(default_factory=dict)
    receipt_p50_ms: float | None = None
    receipt_p99_ms: float | None = None
    trades: int = 0
    killed_member: int | None = None
    killed_in_view: int | None = None
    no_commit_after_kill_ms: float | None = None  # until the survivors committed again
    rejoin_ms: float | None = None  # restart until the member reached the others' height
    batches_committed: int = 0
    trading_seq: int = 0  # the highest seq any member had executed when trading stopped
    member_exit_codes: list[int | None] = dataclasses.field(default_factory=list)
    common_seq: int = 0  # the members' journals hold the same records up to here
    one_history: bool = False
    failed_bots: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.trades > 0
            and self.batches_committed >= 1
            and not self.failed_bots
            and self.one_history
            and self.common_seq >= self.trading_seq > 0
            and all(code == 0 for code in self.member_exit_codes)
        )


class CommitteeVenue(Venue):
    """The venue as bots see it, on a committee: each new client goes to the next member, and
    deposits go through the settlement contract on the development chain."""

    def __init__(self, urls: Sequence[str], settlement: CommitteeSettlementClient, **venue: Any):
        super().__init__(urls[0], **venue)
        self.urls = list(urls)
        self.settlement = settlement
        self._clients = 0

    def client(self, wallet: Wallet) -> AsyncClient:
        url = self.urls[self._clients % len(self.urls)]
        self._clients += 1
        return AsyncClient(
            url, wallet, self.chain_id, self.contract, self.markets, session=self.http
        )

    async def deposit(self, account: bytes, usdc: int) -> None:
        amount = usdc * USDC
        await asyncio.to_thread(self._deposit, "0x" + account.hex(), amount)
        self.deposited += amount

    def _deposit(self, account: str, amount: int) -> None:
        funder = address_of_private_key(FUNDER_KEY)
        self.settlement.mint(FUNDER_KEY, "0x" + funder.hex(), amount)
        self.settlement.approve(FUNDER_KEY, amount)
        self.settlement.deposit(FUNDER_KEY, amount, account)


def demo_base_config(directory: Path) -> Path:
    """examples/committee.toml with the demo publisher's keys as the oracle publishers."""
    if not BASE_CONFIG.exists():
        raise FileNotFoundError(f"{BASE_CONFIG} not found: run the demo from a source checkout")
    publishers = ", ".join(f'"0x{address_of_private_key(key).hex()}"' for key in PUBLISHER_KEYS)
    text = re.sub(
        r"^oracle_publishers = \[.*?\]",
        f"oracle_publishers = [{publishers}]",
        BASE_CONFIG.read_text(),
        count=1,
        flags=re.S | re.M,
    )
    path = directory / "base.toml"
    path.write_text(text)
    return path


async def _status(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with http.get(url + "/v1/status") as response:
            document: dict[str, Any] = await response.json()
            return document
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def run_committee_demo(
    nodes: int, duration: float, seed: int, out: TextIO, bots_of: BotFactory = default_bots
) -> CommitteeDemoSummary:
    summary = CommitteeDemoSummary(members=nodes)
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="asyncdex-committee-demo-") as temporary:
        data = Path(temporary)
        base = demo_base_config(data)
        config, _ = load_config(base)
        print(f"asyncdex demo: starting a committee of {nodes} members on loopback, settling "
              "on the embedded chain…", file=out, flush=True)  # fmt: skip
        log = (data / "members.log").open("w")
        port = free_port_range(2 * nodes)
        committee = await asyncio.to_thread(
            CommitteeProcesses, data / "committee", base, nodes,
            port=port, consensus_port=port + nodes, node_args=("--operator-token", token),
            log=log, settle=True,
        )  # fmt: skip
        try:
            await asyncio.to_thread(committee.start_all)
            await _run(committee, config, duration, seed, out, bots_of, summary)
        finally:
            summary.member_exit_codes = await asyncio.to_thread(committee.stop_all)
            log.close()
        try:  # every member, the restarted one too, in one history
            summary.common_seq = common_history(committee.data, nodes)
            summary.one_history = True
        except DivergedHistory as diverged:
            print(f"members diverged: {diverged}", file=out, flush=True)
    return summary


async def _run(
    committee: CommitteeProcesses,
    config: EngineConfig,
    duration: float,
    seed: int,
    out: TextIO,
    bots_of: BotFactory,
    summary: CommitteeDemoSummary,
) -> None:
    assert committee.chain is not None and committee.deployment is not None
    urls = [committee.url(index) for index in range(committee.nodes)]
    deployment = committee.deployment
    domain = asyncdex_domain(deployment["chainId"], parse_address(deployment["settlement"]))
    chain = RpcChain(committee.chain.url, DEV_KEYS)
    settlement = CommitteeSettlementClient.at(chain, deployment["settlement"])
    print(f"members: {', '.join(urls)}; contract {deployment['settlement']}", file=out, flush=True)
    metrics = ClientMetrics()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        venue = CommitteeVenue(
            urls, settlement, operator_token="", config=config, chain_id=domain.chain_id,
            contract=domain.verifying_contract, http=http, metrics=metrics, seed=seed,
        )  # fmt: skip
        publisher = OraclePublisher(
            urls[-1], PUBLISHER_KEYS, domain,
            {spec.market_id: (START_PRICES[spec.market_id], spec.tick) for spec in venue.specs},
            seed=seed, session=http,
        )  # fmt: skip
        stop_trading, stop_all = asyncio.Event(), asyncio.Event()
        background = [
            asyncio.create_task(publisher.run(stop_all)),
            asyncio.create_task(venue.watch_prices(stop_all)),
        ]
        bots = bots_of(venue)
        try:
            funding = [entry for bot in bots for entry in bot.funding()]
            print(f"depositing for {len(funding)} accounts on chain…", file=out, flush=True)
            for account, usdc in funding:
                await venue.deposit(account, usdc)
            await _wait_all(http, urls, lambda s: s["settlement"]["l1Consumed"] >= len(funding))
            while not all(venue.index(spec.market_id) for spec in venue.specs):
                await asyncio.sleep(0.1)
            metrics.started = time.perf_counter()
            tasks = [asyncio.create_task(run_bot(bot, venue, stop_trading)) for bot in bots]
            print(f"trading for {duration:.0f} s…", file=out, flush=True)
            await asyncio.sleep(duration / 3)
            await _kill_leader(committee, http, urls, summary, out)
            await asyncio.sleep(duration / 3)
            await _restart(committee, http, urls, summary, out)
            await asyncio.sleep(duration / 3)
            stop_trading.set()
            await asyncio.gather(*tasks)
            metrics.stopped = time.perf_counter()
            await _settle(http, urls, summary)
        finally:
            stop_trading.set()
            stop_all.set()
            await asyncio.gather(*background, return_exceptions=True)
            for bot in bots:
                await bot.close()
        for symbol in (spec.symbol for spec in venue.specs):
            async with http.get(f"{urls[0]}/v1/markets/{symbol}/trades?limit=1000") as answer:
                summary.trades += len((await answer.json()).get("trades", []))
    summary.intents = metrics.intents
    summary.refused = dict(metrics.refusals)
    summary.receipt_p50_ms = metrics.percentile_ms(0.5)
    summary.receipt_p99_ms = metrics.percentile_ms(0.99)
    summary.failed_bots = list(venue.failed_bots)


async def _wait_all(
    http: aiohttp.ClientSession, urls: Sequence[str], ready: Any, timeout: float = SETTLE_WAIT_S
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = [await _status(http, url) for url in urls]
        if all(s is not None and ready(s) for s in statuses):
            return [s for s in statuses if s is not None]
        if time.monotonic() > deadline:
            raise TimeoutError("the members did not get there in time")
        await asyncio.sleep(0.2)


async def _kill_leader(
    committee: CommitteeProcesses,
    http: aiohttp.ClientSession,
    urls: Sequence[str],
    summary: CommitteeDemoSummary,
    out: TextIO,
) -> None:
    status = await _status(http, urls[0]) or await _status(http, urls[1])
    assert status is not None
    leader, view = status["committee"]["leader"], status["committee"]["view"]
    heights = [s["committee"]["committedHeight"] for u in urls if (s := await _status(http, u))]
    killed_at = time.monotonic()
    await asyncio.to_thread(committee.kill, leader)
    summary.killed_member, summary.killed_in_view = leader, view
    print(f"killed member {leader}, the leader of view {view} (SIGKILL)", file=out, flush=True)
    survivors = [url for index, url in enumerate(urls) if index != leader]
    target = max(heights) + 1
    while time.monotonic() - killed_at < SETTLE_WAIT_S:
        for url in survivors:
            if (s := await _status(http, url)) and s["committee"]["committedHeight"] > target:
                summary.no_commit_after_kill_ms = (time.monotonic() - killed_at) * 1000
                print(f"the survivors committed again {summary.no_commit_after_kill_ms:.0f} ms "
                      "after the kill", file=out, flush=True)  # fmt: skip
                return
        await asyncio.sleep(POLL_S)


async def _restart(
    committee: CommitteeProcesses,
    http: aiohttp.ClientSession,
    urls: Sequence[str],
    summary: CommitteeDemoSummary,
    out: TextIO,
) -> None:
    member = summary.killed_member
    if member is None:
        return
    started = time.monotonic()
    await asyncio.to_thread(committee.restart, member)
    others = [url for index, url in enumerate(urls) if index != member]
    while time.monotonic() - started < SETTLE_WAIT_S:
        mine = await _status(http, urls[member])
        theirs = [s["committee"]["executedHeight"] for u in others if (s := await _status(http, u))]
        if mine and theirs and mine["committee"]["executedHeight"] >= min(theirs):
            summary.rejoin_ms = (time.monotonic() - started) * 1000
            print(f"member {member} restarted and caught up in {summary.rejoin_ms:.0f} ms",
                  file=out, flush=True)  # fmt: skip
            return
        await asyncio.sleep(0.05)


async def _settle(
    http: aiohttp.ClientSession, urls: Sequence[str], summary: CommitteeDemoSummary
) -> None:
    """Wait until every member executed all that was traded and a batch is on chain (the
    members' histories are compared once they stopped)."""
    statuses = [s for url in urls if (s := await _status(http, url))]
    summary.trading_seq = max((s["appliedSeq"] for s in statuses), default=0)
    deadline = time.monotonic() + SETTLE_WAIT_S
    while time.monotonic() < deadline:
        polled = [await _status(http, url) for url in urls]
        live = [s for s in polled if s is not None]
        summary.batches_committed = min(
            (s["settlement"]["lastCommittedBatch"] for s in live), default=0
        )
        caught_up = len(live) == len(urls) and all(
            s["appliedSeq"] >= summary.trading_seq for s in live
        )
        if caught_up and summary.batches_committed >= 1:
            return
        await asyncio.sleep(0.05)


def print_committee_summary(summary: CommitteeDemoSummary, out: TextIO) -> None:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} ms"

    print("\n--- committee demo summary ---", file=out)
    print(f"members: {summary.members}; intents acknowledged: {summary.intents}; "
          f"refused: {summary.refused or 'none'}", file=out)  # fmt: skip
    print(f"receipt latency p50 {ms(summary.receipt_p50_ms)}, p99 {ms(summary.receipt_p99_ms)}; "
          f"trades: {summary.trades}", file=out)  # fmt: skip
    print(f"leader killed: member {summary.killed_member} in view {summary.killed_in_view}; "
          f"committing again after {ms(summary.no_commit_after_kill_ms)}; restarted member "
          f"caught up in {ms(summary.rejoin_ms)}", file=out)  # fmt: skip
    print(f"batches committed on chain with a quorum certificate: {summary.batches_committed}",
          file=out)  # fmt: skip
    agreed = summary.one_history and summary.common_seq >= summary.trading_seq
    print(f"every member stopped cleanly with the same journal records through seq "
          f"{summary.common_seq} (trading reached {summary.trading_seq}), so one state root at "
          f"every seq: {'yes' if agreed else 'NO'}", file=out)  # fmt: skip
    print(f"result: {'ok' if summary.ok else 'FAILED'}", file=out, flush=True)


def cmd_demo_committee(args: Any) -> int:
    if args.committee < 1:
        print("asyncdex demo: --committee needs at least 1 member", file=sys.stderr)
        return 2
    summary = asyncio.run(run_committee_demo(args.committee, args.duration, args.seed, sys.stdout))
    print_committee_summary(summary, sys.stdout)
    if args.json:
        document = dataclasses.asdict(summary) | {"ok": summary.ok}
        print(json.dumps(document), flush=True)
    return 0 if summary.ok else 1
