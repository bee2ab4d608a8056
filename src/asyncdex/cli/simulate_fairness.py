"""``asyncdex simulate fairness``: a seeded sandwich simulation of a front-running leader on
the real engine, on three venues.

Invariants:
- A seed fully determines a run: the scenario (oracle price, the makers' ladders, the
  victims' and the noise traders' orders, their arrival order) comes from
  ``random.Random(seed)`` alone and is the same on every venue and with or without the
  attacker. Everything reaches the engine as sequenced commands with timestamps; the engine
  reads no clock or randomness, so a run is replayable.
- The leader orders each block: it may reorder the block's intents and insert its own orders
  anywhere in it, and it chooses by simulating each candidate on a copy of the engine,
  keeping the most profitable one (or none, if none gains). It sees, and can simulate, only
  what is readable: on the plaintext venues every intent in full; on the sealed venue the
  headers it decodes from the envelopes' bytes (account, nonce, market), so its choice
  cannot depend on a side, price or size it never saw.
- Profit is in micro-USDC, marked to the oracle price (constant within a seed), fees
  included: ``collateral + size * oracle`` at the end minus what was deposited.

The venues:
- ``continuous``: FCFS continuous matching; the leader reads every intent and reorders.
- ``batch``: one batch auction per block (``ordering="batch_auction"``); the leader reads
  every intent and may add orders to the batch, but the batch clears at one price.
- ``sealed``: the same batch auction with sealed intents: every trader's intent is signed
  and sealed with ``asyncdex.fairness`` (:class:`Sealer`); the leader orders envelopes whose
  contents open only after the block's order is fixed, when nothing can be inserted any
  more. ``real_sealing=False`` hands it the same headers without the cryptography
  (``leader_view``), which a test shows gives the same outcome, seed by seed.

Randomness is ``random.Random`` seeded per run, here in the command line's simulation, never
in the engine.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from asyncdex.engine.transition import Engine
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.sealing import (
    Opened,
    SealingKey,
    Sessions,
    decode_sealed_intent,
    open_sealed_intent,
    seal_intent,
    venue_id,
)
from asyncdex.fairness.threshold import (
    CommitteeKey,
    KeyShare,
    combine_decryption_shares,
    create_decryption_share,
    epoch_of,
)
from asyncdex.messages.commands import (
    AdvanceTime,
    CancelAll,
    Command,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    TimeInForce,
)
from asyncdex.messages.events import Event, TradeExecuted
from asyncdex.signing import intents as wire
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import asyncdex_domain, sign_intent
from asyncdex.signing.mapping import command_from_intent
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec

_T = TypeVar("_T")

VENUES = ("continuous", "batch", "sealed")
BLOCK_MS = 200  # one block per auction interval on the batch venues
BLOCKS = 20
MARKET = 0
TICK = 1  # $0.01: prices in cents
LOT = 10  # 0.001 ETH: sizes in 10^-4 ETH, so price * size is micro-USDC
PPM = 1_000_000
DEPOSIT = 10**13  # $10M each: nobody here is ever near a margin limit
MAKER_LEVELS = 6
MAX_TAKE_LEVELS = 8  # how deep the leader looks when it buys ahead of a victim


SIGNERS: dict[bytes, LocalSigner] = {}  # every trader's key: sealed intents are signed


def _address(name: str) -> bytes:
    signer = LocalSigner(keccak256(f"fairness-sim/{name}".encode()))
    SIGNERS[signer.address] = signer
    return signer.address


ORACLE = _address("oracle")  # a publisher: its prices are sequenced in plaintext on every venue
ATTACKER = _address("leader")
MAKERS = tuple(_address(f"maker-{i}") for i in range(2))
VICTIMS = tuple(_address(f"victim-{i}") for i in range(4))
NOISE = tuple(_address(f"noise-{i}") for i in range(4))
ACCOUNTS = (ATTACKER, *MAKERS, *VICTIMS, *NOISE)


def market_spec(venue: str) -> MarketSpec:
    """ETH as in the demo (tick $0.01, lot 0.001 ETH, the default fees), continuous or
    cleared in one batch auction per block."""
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r}: one of {', '.join(VENUES)}")
    if venue == "continuous":
        return MarketSpec(MARKET, "ETH", sz_decimals=4, tick=TICK, lot=LOT)
    return MarketSpec(
        MARKET,
        "ETH",
        sz_decimals=4,
        tick=TICK,
        lot=LOT,
        ordering="batch_auction",
        auction_interval_ms=BLOCK_MS,
    )


# ---------------------------------------------------------------------------------------------
# The scenario: the same for every venue


class Intent(NamedTuple):
    """One intent of a block as its sender signed it: the public header (signer, nonce) and
    the body (the command, with side, price and size)."""

    account: bytes
    nonce: int
    command: Command


@dataclass(frozen=True)
class Scenario:
    seed: int
    oracle_price: int  # cents, constant for the seed
    blocks: tuple[tuple[Intent, ...], ...]  # each block's intents in arrival order


def _round_to_lot(size: int) -> int:
    return max(LOT, size // LOT * LOT)


def build_scenario(seed: int, blocks: int = BLOCKS) -> Scenario:
    """Each block: the oracle price, both makers re-posting their ladders, then (shuffled)
    sometimes one victim (a large IOC with a generous slippage bound, as a market order is
    on Hyperliquid) and up to two small noise orders."""
    rng = random.Random(seed)
    oracle = rng.randrange(290_000, 310_001)
    ladders = []
    for _ in MAKERS:
        half_spread = oracle * rng.randrange(100, 500) // PPM  # 1 to 5 bps
        step = max(TICK, oracle * rng.randrange(100, 600) // PPM)
        sizes = [rng.randrange(200, 1_000) * LOT for _ in range(MAKER_LEVELS)]
        ladders.append((half_spread, step, sizes))
    nonces = dict.fromkeys((ORACLE, *ACCOUNTS), 0)

    def intent(account: bytes, command: Command) -> Intent:
        nonces[account] += 1
        return Intent(account, nonces[account], command)

    out = []
    for _ in range(blocks):
        block = [intent(ORACLE, PublishOraclePrice(ORACLE, MARKET, oracle))]
        for maker, (half_spread, step, sizes) in zip(MAKERS, ladders, strict=True):
            block.append(intent(maker, CancelAll(maker, MARKET)))
            for level, size in enumerate(sizes):
                offset = half_spread + level * step
                block.append(intent(maker, PlaceOrder(maker, MARKET, True, oracle - offset, size)))
                block.append(intent(maker, PlaceOrder(maker, MARKET, False, oracle + offset, size)))
        takers = []
        if rng.random() < 0.6:
            victim = VICTIMS[rng.randrange(len(VICTIMS))]
            is_buy = rng.random() < 0.5
            size = rng.randrange(1_000, 6_000) * LOT  # 1 to 6 ETH
            slippage = oracle * rng.randrange(5_000, 30_000) // PPM  # 0.5% to 3%
            price = oracle + slippage if is_buy else oracle - slippage
            takers.append(
                intent(victim, PlaceOrder(victim, MARKET, is_buy, price, size, TimeInForce.IOC))
            )
        for _ in range(rng.randrange(3)):
            trader = NOISE[rng.randrange(len(NOISE))]
            is_buy = rng.random() < 0.5
            size = rng.randrange(10, 300) * LOT
            slippage = oracle * 2_000 // PPM
            price = oracle + slippage if is_buy else oracle - slippage
            takers.append(
                intent(trader, PlaceOrder(trader, MARKET, is_buy, price, size, TimeInForce.IOC))
            )
        rng.shuffle(takers)
        out.append(tuple(block + takers))
    return Scenario(seed, oracle, tuple(out))


# ---------------------------------------------------------------------------------------------
# What the leader sees


class Visible(NamedTuple):
    """An intent as the leader sees it when it orders the block: the header always, the body
    (``command``) only where it is in plaintext."""

    account: bytes
    nonce: int
    market: int
    command: Command | None


def leader_view(venue: str, block: Sequence[Intent]) -> list[Visible]:
    """What the leader can read of a block it orders, without the cryptography. On the
    sealed venue the body is a ciphertext for the block's epoch, opened only once the block's
    order is certified (after the leader's last chance to insert), so the leader sees the
    public header alone (:meth:`Sealer.header_of` reads it from real envelopes)."""
    sealed = venue == "sealed"
    return [Visible(i.account, i.nonce, MARKET, None if sealed else i.command) for i in block]


# ---------------------------------------------------------------------------------------------
# Running blocks


def new_engine(venue: str, oracle_price: int) -> Engine:
    engine = Engine(EngineConfig((market_spec(venue),), oracle_publishers=(ORACLE,)))
    for index, account in enumerate(ACCOUNTS):
        engine.apply(Deposit(account, DEPOSIT, index), 1)
    engine.apply(PublishOraclePrice(ORACLE, MARKET, oracle_price), 1)
    return engine


def block_start(number: int) -> int:
    """Block ``number`` (from 0) is the interval ``[start, start + BLOCK_MS)``; block 0 starts
    one interval after genesis so genesis is never in an auction."""
    return (number + 1) * BLOCK_MS


def run_block(engine: Engine, number: int, commands: Sequence[Command]) -> list[Event]:
    """Apply a block's commands in the leader's order, then close it: time moves to the next
    interval (a batch venue runs its auction) and the leader's leftover orders are cancelled,
    so a block's outcome is complete when it closes."""
    start = block_start(number)
    if len(commands) >= BLOCK_MS:
        raise ValueError(f"a block holds at most {BLOCK_MS - 1} commands, not {len(commands)}")
    events: list[Event] = []
    for offset, command in enumerate(commands):
        events += engine.apply(command, start + 1 + offset)
    events += engine.apply(AdvanceTime(), start + BLOCK_MS)
    events += engine.apply(CancelAll(ATTACKER, MARKET), start + BLOCK_MS)
    return events


def value_of(engine: Engine, account: bytes, oracle_price: int) -> int:
    """The account's worth in micro-USDC with its position marked to the oracle."""
    held = engine.state.accounts[account]
    worth = held.collateral
    for position in held.positions.values():
        worth += position.iso_margin + position.size * oracle_price
    return worth


# ---------------------------------------------------------------------------------------------
# The leader's strategy


class Plan(NamedTuple):
    kind: str  # "sandwich", "front-run" or "liquidity"
    before: tuple[Command, ...]  # right before the target intent
    after: tuple[Command, ...]  # right after it


def candidate_plans(view: Sequence[Visible], target: PlaceOrder) -> list[Plan]:
    """The insertions the leader tries around ``target``, built from the visible block only.

    - sandwich: buy (for a buy victim; mirrored for a sell) the cheapest resting levels ahead
      of the victim, offer that size at the victim's limit, and after it sell what is left
      back into the book;
    - front-run: the same, keeping what is left (it is marked to the oracle);
    - liquidity: offer to the victim at a price it accepts, without buying first (on a batch
      venue the only insertion that can gain: everything in the batch clears at one price).
    """
    side = target.is_buy
    limit = target.price
    opposite: dict[int, int] = {}
    for item in view:
        command = item.command
        if (
            type(command) is PlaceOrder
            and command.is_buy != side
            and command.tif == TimeInForce.GTC
            and (command.price <= limit if side else command.price >= limit)
        ):
            opposite[command.price] = opposite.get(command.price, 0) + command.size
    levels = sorted(opposite, reverse=not side)[:MAX_TAKE_LEVELS]
    # the simplest plans first: of two that gain the same, the leader keeps the first
    plans = []
    for price in [*levels, limit]:
        for size in sorted({_round_to_lot(target.size // 2), target.size}):
            offer = PlaceOrder(ATTACKER, MARKET, not side, price, size, TimeInForce.IOC)
            plans.append(Plan("liquidity", (offer,), ()))
    taken = 0
    for price in levels:
        taken += opposite[price]
        take = PlaceOrder(ATTACKER, MARKET, side, price, taken, TimeInForce.IOC)
        offer = PlaceOrder(ATTACKER, MARKET, not side, limit, taken)
        cancel = CancelAll(ATTACKER, MARKET)
        unwind = PlaceOrder(
            ATTACKER,
            MARKET,
            not side,
            # as far past the best level as the victim's limit, on the other side
            max(TICK, 2 * levels[0] - limit),
            taken,
            TimeInForce.IOC,
            reduce_only=True,
        )
        plans.append(Plan("sandwich", (take, offer), (cancel, unwind)))
        plans.append(Plan("front-run", (take, offer), (cancel,)))
    return plans


def choose_plan(
    engine: Engine, number: int, view: Sequence[Visible], oracle: int
) -> tuple[Plan, int, int] | None:
    """The most profitable plan on the visible block, as (plan, target index, profit), or
    None when no plan gains. Each plan is tried on a copy of the engine: the block as the
    leader sees it, in the order it would give it, closed as ``run_block`` closes it, the
    leader marked to the oracle. A sealed intent can be neither targeted nor simulated: the
    leader does not know what it would do."""
    targets = [
        (item.command.size, index)
        for index, item in enumerate(view)
        if type(item.command) is PlaceOrder
        and item.account != ATTACKER
        and item.command.tif == TimeInForce.IOC
    ]
    if not targets:
        return None
    _, target_index = max(targets)
    target = view[target_index].command
    assert type(target) is PlaceOrder
    before = value_of(engine, ATTACKER, oracle)
    best: tuple[Plan, int, int] | None = None
    for plan in candidate_plans(view, target):
        trial = Engine(state=copy.deepcopy(engine.state))
        ordered = [
            command
            for command in insert_plan([item.command for item in view], target_index, plan)
            if command is not None
        ]
        run_block(trial, number, ordered)
        gain = value_of(trial, ATTACKER, oracle) - before
        if gain > 0 and (best is None or gain > best[2]):
            best = (plan, target_index, gain)
    return best


def insert_plan(items: list[_T], index: int, plan: Plan) -> list[_T | Command]:
    """``items`` with the plan's orders right before and right after item ``index``."""
    return [*items[:index], *plan.before, items[index], *plan.after, *items[index + 1 :]]


# ---------------------------------------------------------------------------------------------
# Sealing: the real envelopes of asyncdex.fairness


class Sealer:
    """The sealed venue's cryptography, end to end: a committee of ``MEMBERS`` whose key
    comes from the distributed key generation (run in-process, seeded), every trader's intent
    signed and sealed for the epoch of its block, the leader handed the envelopes' wire bytes,
    and, once the block's order is fixed, ``THRESHOLD`` members' decryption shares combined
    into the epoch key that opens every envelope of the block."""

    MEMBERS = 4
    THRESHOLD = 2
    DOMAIN = asyncdex_domain(31337, keccak256(b"fairness-sim/venue")[-20:])

    def __init__(self, seed: int) -> None:
        self.random = random.Random(f"sealing-{seed}")  # the clients' draws, reproducible
        self.committee, self.shares = _committee()
        self.venue = venue_id(self.DOMAIN)
        self.key = SealingKey(self.DOMAIN, self.committee.public_key)

    def seal(self, number: int, intent: Intent) -> bytes:
        """What the trader sends: its intent signed, sealed for the block's epoch, encoded."""
        signer = SIGNERS[intent.account]
        signed = sign_intent(signer, self.DOMAIN, wire_intent(intent))
        epoch = epoch_of(block_start(number), BLOCK_MS)
        envelope = seal_intent(self.key, signer, signed, epoch, rng=self.random.getrandbits)
        return envelope.encode()

    @staticmethod
    def header_of(data: bytes) -> Visible:
        """What the leader can read of an envelope: its public header."""
        header = decode_sealed_intent(data).header
        return Visible(header.account, header.nonce, header.market, None)

    def reveal(self, number: int, ordered: Sequence[bytes | Command]) -> list[Command]:
        """The block's commands once its order is fixed: the epoch key from ``THRESHOLD``
        members' shares, then every envelope opened in the fixed order. An envelope that
        does not open is a bug here (every trader is honest), so it raises."""
        epoch = epoch_of(block_start(number), BLOCK_MS)
        shares = [
            create_decryption_share(share, self.venue, epoch)
            for share in self.shares[: self.THRESHOLD]
        ]
        combined = combine_decryption_shares(self.committee, self.venue, epoch, shares)
        if combined.key is None:
            raise RuntimeError(f"epoch {epoch}: the key did not combine")
        sessions: Sessions = {}
        commands: list[Command] = []
        for item in ordered:
            if not isinstance(item, bytes):
                commands.append(item)
                continue
            opened = open_sealed_intent(
                self.DOMAIN, combined.key, decode_sealed_intent(item), sessions
            )
            if not isinstance(opened, Opened):
                raise RuntimeError(f"an envelope did not open: {opened.reason.value}")
            commands.append(command_from_intent(opened.signed.intent))
        return commands


@functools.cache
def _committee() -> tuple[CommitteeKey, tuple[KeyShare, ...]]:
    draws = random.Random("fairness-sim/committee")
    return run_local_dkg(
        Sealer.MEMBERS, Sealer.THRESHOLD, keccak256(b"fairness-sim/dkg"), draws.getrandbits
    )


def wire_intent(intent: Intent) -> wire.Intent:
    """The signed form of a scenario's command (the simulation's traders send only these)."""
    command = intent.command
    if type(command) is PlaceOrder:
        return wire.PlaceOrder(
            intent.account, intent.nonce, 0, command.market, command.is_buy, command.price,
            command.size, command.order_type, command.tif, command.reduce_only,
            wire.NO_CLIENT_ID, command.expiry, command.trigger_price, command.trigger_kind,
        )  # fmt: skip
    if type(command) is CancelAll:
        return wire.CancelAll(intent.account, intent.nonce, 0, command.market)
    raise ValueError(f"no signed form for {type(command).__name__} here")


# ---------------------------------------------------------------------------------------------
# One seed


@dataclass
class SeedResult:
    seed: int
    venue: str
    attacker: bool
    profit: int = 0  # the leader's, micro-USDC marked to the oracle, fees included
    attacks: dict[str, int] = field(default_factory=dict)  # plan kind -> blocks
    attacker_orders: int = 0
    victim_cost: int = 0  # victims' slippage vs. the oracle plus their fees, micro-USDC
    victim_filled: int = 0  # victims' filled size, in size units
    blocks: list[BlockOutcome] = field(default_factory=list)  # the blocks with a victim


class BlockOutcome(NamedTuple):
    """What happened around one victim: its order, what the leader saw of it and did, and
    the block's change in the leader's worth (marked to the oracle, fees included)."""

    number: int
    victim: Intent
    seen: Visible
    plan: Plan | None
    gain: int


def run_seed(
    seed: int,
    venue: str,
    attacker: bool = True,
    blocks: int = BLOCKS,
    *,
    real_sealing: bool = True,
) -> SeedResult:
    """One seed on one venue, with or without the front-running leader.

    On the sealed venue every trader's intent travels as a real envelope
    (``real_sealing``, see :class:`Sealer`); ``real_sealing=False`` hands the leader the
    same headers without the cryptography (``leader_view``), for many seeds quickly.
    """
    scenario = build_scenario(seed, blocks)
    oracle = scenario.oracle_price
    engine = new_engine(venue, oracle)
    start_value = value_of(engine, ATTACKER, oracle)
    result = SeedResult(seed, venue, attacker)
    victims = set(VICTIMS)
    sealer = Sealer(seed) if venue == "sealed" and real_sealing else None
    for number, block in enumerate(scenario.blocks):
        # what reaches the leader: plaintext commands, or envelopes on the sealed venue
        sent: list[bytes | Command] = [
            sealer.seal(number, intent) if sealer is not None and intent.account != ORACLE
            else intent.command
            for intent in block
        ]  # fmt: skip
        if sealer is not None:
            view = [
                sealer.header_of(item) if isinstance(item, bytes) else Visible(
                    intent.account, intent.nonce, MARKET, item
                )
                for item, intent in zip(sent, block, strict=True)
            ]  # fmt: skip
        else:
            view = leader_view(venue, block)
        worth_before = value_of(engine, ATTACKER, oracle)
        chosen = None
        if attacker:
            chosen = choose_plan(engine, number, view, oracle)
            if chosen is not None:
                plan, index, _ = chosen
                sent = insert_plan(sent, index, plan)
                result.attacks[plan.kind] = result.attacks.get(plan.kind, 0) + 1
                result.attacker_orders += sum(
                    type(c) is PlaceOrder for c in (*plan.before, *plan.after)
                )
        if sealer is not None:
            commands = sealer.reveal(number, sent)  # the order is fixed: now it opens
        else:
            commands = [item for item in sent if not isinstance(item, bytes)]
        for event in run_block(engine, number, commands):
            if type(event) is TradeExecuted:
                assert isinstance(event, TradeExecuted)
                for account, fee, is_buy in (
                    (event.taker, event.taker_fee, event.taker_is_buy),
                    (event.maker, event.maker_fee, not event.taker_is_buy),
                ):
                    if account in victims:
                        slippage = (event.price - oracle) * event.size
                        result.victim_cost += (slippage if is_buy else -slippage) + fee
                        result.victim_filled += event.size
        for index, intent in enumerate(block):
            if intent.account in victims:
                result.blocks.append(
                    BlockOutcome(
                        number,
                        intent,
                        view[index],
                        None if chosen is None else chosen[0],
                        value_of(engine, ATTACKER, oracle) - worth_before,
                    )
                )
    result.profit = value_of(engine, ATTACKER, oracle) - start_value
    return result


# ---------------------------------------------------------------------------------------------
# Many seeds


@dataclass(frozen=True)
class VenueSummary:
    venue: str
    seeds: int
    profit_mean: int
    profit_max: int
    profit_min: int
    seeds_profited: int
    attacks: dict[str, int]
    victim_cost: int  # summed over the seeds, with the attacker
    victim_cost_baseline: int  # the same seeds without it
    victim_filled: int
    victim_filled_baseline: int

    def as_json(self) -> dict[str, object]:
        return {
            "venue": self.venue,
            "seeds": self.seeds,
            "attacker_profit_mean_micro_usdc": self.profit_mean,
            "attacker_profit_max_micro_usdc": self.profit_max,
            "attacker_profit_min_micro_usdc": self.profit_min,
            "seeds_profited": self.seeds_profited,
            "attacks": self.attacks,
            "victim_cost_micro_usdc": self.victim_cost,
            "victim_cost_without_attacker_micro_usdc": self.victim_cost_baseline,
            "victim_filled": self.victim_filled,
            "victim_filled_without_attacker": self.victim_filled_baseline,
        }


def _mean(values: Sequence[int]) -> int:
    """The integer mean, rounded toward zero (0 for no values)."""
    if not values:
        return 0
    total = sum(values)
    whole = abs(total) // len(values)
    return whole if total >= 0 else -whole


def summarize(
    venue: str, seeds: Sequence[int], blocks: int = BLOCKS, *, real_sealing: bool = True
) -> VenueSummary:
    attacked = [run_seed(seed, venue, True, blocks, real_sealing=real_sealing) for seed in seeds]
    # without a leader nobody reads the envelopes: the outcome is the same without them
    baseline = [run_seed(seed, venue, False, blocks, real_sealing=False) for seed in seeds]
    return summarize_results(venue, attacked, baseline)


def summarize_results(
    venue: str, attacked: Sequence[SeedResult], baseline: Sequence[SeedResult]
) -> VenueSummary:
    """One venue's figures from its seeds' runs with and without the leader."""
    profits = [r.profit for r in attacked]
    attacks: dict[str, int] = {}
    for r in attacked:
        for kind, count in r.attacks.items():
            attacks[kind] = attacks.get(kind, 0) + count
    return VenueSummary(
        venue,
        len(attacked),
        _mean(profits),
        max(profits, default=0),
        min(profits, default=0),
        sum(p > 0 for p in profits),
        dict(sorted(attacks.items())),
        sum(r.victim_cost for r in attacked),
        sum(r.victim_cost for r in baseline),
        sum(r.victim_filled for r in attacked),
        sum(r.victim_filled for r in baseline),
    )


def summarize_venues(
    seeds: Sequence[int],
    venues: Sequence[str] = VENUES,
    blocks: int = BLOCKS,
    *,
    real_sealing: bool = True,
) -> list[VenueSummary]:
    return [summarize(venue, seeds, blocks, real_sealing=real_sealing) for venue in venues]


def format_usd(micro: int) -> str:
    sign = "-" if micro < 0 else ""
    cents = (abs(micro) + 5_000) // 10_000  # to the nearest cent, for display only
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def format_table(summaries: Sequence[VenueSummary]) -> list[str]:
    """The profit table, one line per venue."""
    lines = [
        f"{'venue':<11} {'profit mean':>13} {'profit max':>13} {'seeds won':>10}"
        f" {'victim cost':>14} {'without leader':>15}"
    ]
    for s in summaries:
        lines.append(
            f"{s.venue:<11} {format_usd(s.profit_mean):>13} {format_usd(s.profit_max):>13}"
            f" {f'{s.seeds_profited}/{s.seeds}':>10} {format_usd(s.victim_cost):>14}"
            f" {format_usd(s.victim_cost_baseline):>15}"
        )
    return lines
