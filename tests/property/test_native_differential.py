"""Differential fuzzing: the native core against the reference engine on random streams.

Long random streams over four markets, one of them clearing in batch auctions (orders of
every type and time in force, reduce-only, client ids, expiries, triggers, modifies, cancels
of every kind, deposits, withdrawals, leverage and isolated margin, oracle moves, time jumps
across funding hours, dead-man switches, signed envelopes, batches, builder fees, malformed
values) go through both engines; stressed streams liquidate and deleverage. Events are
compared after every command, state roots regularly and at the end. The first divergence
stops the run, and the stream is shrunk (delta debugging) to a minimal reproduction printed
as Python, ready to paste into a test.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine_properties import engine_settings, run_scenario, scenarios

from asyncdex.cli.simulate import run_demo
from asyncdex.engine.native import NativeEngine, export_reference_state, native_available
from asyncdex.engine.snapshot import restore, restore_export, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    AdvanceTime,
    ApproveAgent,
    ApproveBuilderFee,
    Batch,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    CommitteeBlock,
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    ModifyOrder,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    Signed,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.sequencer.records import encode_record
from asyncdex.types.market import EngineConfig, MarketSpec

pytestmark = pytest.mark.skipif(
    not native_available(), reason="the native engine core is not built (no C++ compiler)"
)

PUBLISHERS = (b"\x0a" * 20, b"\x0b" * 20, b"\x0c" * 20)
MIDS = (600_000, 30_000, 1_500, 80_000)  # markets of different scales; the last one clears
TICKS = (1, 5, 1, 2)  # in batch auctions
LOTS = (1, 10, 1, 1)
ACCOUNTS = [bytes([0x10 + i]) * 20 for i in range(6)]

Stream = list[tuple[Command, int]]


def fuzz_config() -> EngineConfig:
    specs = (
        MarketSpec(0, "BTC", 5, 1, 1, min_order_value=1_000_000, oracle_staleness_ms=60_000),
        MarketSpec(1, "ETH", 4, 5, 10, min_order_value=1_000_000, oracle_staleness_ms=60_000),
        MarketSpec(
            2,
            "SOL",
            2,
            1,
            1,
            min_order_value=1_000_000,
            initial_margin_ppm=100_000,
            max_leverage=10,
        ),
        MarketSpec(
            3,
            "AUC",
            5,
            2,
            1,
            min_order_value=1_000_000,
            oracle_staleness_ms=60_000,
            ordering="batch_auction",
            auction_interval_ms=200,
        ),
    )
    return EngineConfig(specs, oracle_publishers=PUBLISHERS, max_open_orders_per_account=40)


def genesis(stressed: bool = False) -> Stream:
    """Deposits and first prices. ``stressed``: half the accounts hold little collateral, so
    leverage, price moves and funding liquidate them (through the book, the insurance fund
    and auto-deleveraging)."""
    stream: Stream = []
    for i, account in enumerate(ACCOUNTS):
        amount = 3 * 10**8 if stressed and i % 2 else 5 * 10**12
        stream.append((Deposit(account, amount, i), 0))
    for market, mid in enumerate(MIDS):
        for publisher in PUBLISHERS[:2]:
            stream.append((PublishOraclePrice(publisher, market, mid), 0))
    return stream


def random_stream(seed: int, length: int, stressed: bool = False) -> Stream:
    """A seeded random stream: genesis, then ``length`` commands of every kind the native core
    runs (and some it refuses as the reference does: malformed numbers, unknown ids)."""
    rng = random.Random(seed)
    stream = genesis(stressed)
    move = 12 if stressed else 100  # the largest index step: 1/12 or 1/100 of the price
    # a shadow reference engine tells which orders are live, so modifies and cancels mostly
    # name real orders (of the right account and market, or not: both are tested)
    shadow = Engine(fuzz_config())
    for command, timestamp in stream:
        shadow.apply(command, timestamp)
    now = 0
    l1 = len(ACCOUNTS)
    mids = list(MIDS)

    def live_order() -> tuple[bytes, int, int]:
        orders = shadow.state.orders
        if orders and rng.random() < 0.9:
            order = orders[rng.choice(list(orders))]
            return order.account, order.market, order.order_id
        return account, market, rng.randint(1, shadow.state.next_order_id)

    for _ in range(length):
        now += rng.choice((0, 1, 7, 50, 400, 3_000)) if rng.random() < 0.99 else 3_600_000
        account = rng.choice(ACCOUNTS)
        market = rng.randrange(len(MIDS))
        mid = mids[market]
        tick = TICKS[market]
        lot = LOTS[market]
        roll = rng.random()
        command: Command
        if stressed and rng.random() < 0.04:
            # a thin account takes a position near its maximum leverage from a rich one
            poor, rich = rng.choice(ACCOUNTS[1::2]), rng.choice(ACCOUNTS[0::2])
            is_buy = rng.random() < 0.5
            size = max(lot, 3 * 10**8 * rng.randint(5, 18) // mid // lot * lot)
            maker = PlaceOrder(rich, market, not is_buy, mid, size)
            stream.append((maker, now))
            shadow.apply(maker, now)
            command = PlaceOrder(poor, market, is_buy, mid, size, 1)
        elif roll < 0.40:
            is_buy = rng.random() < 0.5
            offset = rng.randint(-30, 60) * tick
            price = mid - offset if is_buy else mid + offset
            size = rng.randint(1, 40) * lot * (10 if market == 2 else 1) * 20
            tif = rng.choice((0, 0, 0, 1, 1, 2, 3))
            order_type = 1 if rng.random() < 0.08 else 0
            trigger_kind, trigger_price = 0, 0
            if rng.random() < 0.08:
                trigger_kind = rng.choice((1, 2))
                trigger_price = mid + rng.randint(-20, 20) * tick
            command = PlaceOrder(
                account,
                market,
                is_buy,
                0 if order_type and rng.random() < 0.5 else price,
                size,
                tif if not order_type else rng.choice((1, 2)),
                order_type,
                rng.random() < 0.1,
                rng.choice((0, 0, 0, rng.randint(1, 5))),
                now + rng.randint(1, 5_000) if rng.random() < 0.1 else 0,
                trigger_price,
                trigger_kind,
            )
        elif roll < 0.62:
            owner, order_market, order_id = live_order()
            order_mid, order_tick = mids[order_market], TICKS[order_market]
            step = rng.randint(-40, 40) * order_tick
            size = rng.randint(1, 40) * LOTS[order_market] * 20
            command = ModifyOrder(owner, order_market, order_id, order_mid + step, size)
        elif roll < 0.72:
            command = CancelOrder(*live_order())
        elif roll < 0.75:
            command = CancelByClientId(account, market, rng.randint(1, 5))
        elif roll < 0.77:
            command = CancelAll(account, rng.choice((-1, market)))
        elif roll < 0.85:
            # at most 1% a step keeps liquidations rare; a stressed stream jumps up to 8%
            mids[market] = max(
                tick * 100, mid + rng.randint(-mid // move, mid // move) // tick * tick
            )
            command = PublishOraclePrice(rng.choice(PUBLISHERS), market, mids[market])
        elif roll < 0.865:
            command = AdvanceTime()
        elif roll < 0.88:
            command = Withdraw(account, rng.choice((10**6, 10**9, 10**13)))
        elif roll < 0.895:
            command = Deposit(account, rng.randint(1, 10**9), l1 + rng.choice((0, 0, 0, 1)))
            l1 += 1 if command.l1_index == l1 else 0
        elif roll < 0.91:
            leverage = rng.choice((1, 2, 5, 10, 20, 50))
            command = SetLeverage(account, market, leverage, rng.random() < 0.4)
        elif roll < 0.92:
            command = ScheduleCancel(account, rng.choice((0, now + rng.randint(1, 10_000), 1)))
        elif roll < 0.925:
            command = ForceCancelAll(account, l1)
            l1 += 1
        elif roll < 0.93:
            command = ForceWithdraw(account, 10**8, l1)
            l1 += 1
        elif roll < 0.935:
            delta = rng.choice((0, 5, -5, 10**8, -(10**8), 10**12, -(10**12)))
            command = UpdateIsolatedMargin(account, market, delta)
        elif roll < 0.99:
            command = permissioned(rng, account, market, now, live_order)
        else:
            # malformed: refused by both with the same reason
            command = rng.choice(
                (
                    PlaceOrder(account, 7, True, mid, 100),
                    PlaceOrder(account, market, True, -5, 100),
                    PlaceOrder(account, market, False, mid, 0),
                    PlaceOrder(account, market, True, mid + 1, 1_000),
                    PlaceOrder(account, market, True, mid, 10**16),
                    PlaceOrder(account, market, True, mid, 100, 9),
                    PlaceOrder(account, market, True, mid, 100, 0, 0, False, 0, 0, 5),
                    PlaceOrder(b"\x99" * 20, market, True, mid, 100),
                    ModifyOrder(account, 9, 1, mid, 100),
                    CancelOrder(account, market, 10**6),
                    Withdraw(account, -1),
                    Deposit(account, 0, l1),
                )
            )
            if isinstance(command, Deposit):
                l1 += 1
        stream.append((command, now))
        shadow.apply(command, now)
    return stream


AGENTS = [bytes([0x50 + i]) * 20 for i in range(3)]


def permissioned(
    rng: random.Random,
    account: bytes,
    market: int,
    now: int,
    live_order: Callable[[], tuple[bytes, int, int]],
) -> Command:
    """Signed envelopes (by the account or an agent, fresh, reused or stale nonces), agent
    approvals, batches, builder approvals and builder orders, committee block markers."""
    mid = MIDS[market]
    size = LOTS[market] * 200
    builder = ACCOUNTS[0]  # one builder, so approvals and builder orders meet

    def trading() -> Command:
        roll = rng.random()
        if roll < 0.4:
            return PlaceOrder(account, market, rng.random() < 0.5, mid, size)
        if roll < 0.6:
            return CancelOrder(*live_order())
        if roll < 0.7:
            return PlaceBuilderOrder(
                account, market, rng.random() < 0.5, mid, size, builder, rng.choice((0, 10, 100))
            )
        if roll < 0.8:
            return Withdraw(account, 10**6)
        if roll < 0.9:
            return ApproveAgent(account, rng.choice(AGENTS), now + 60_000)
        return Deposit(account, 1, 10**6)  # a system command: never signable

    roll = rng.random()
    if roll < 0.45:
        signer = account if rng.random() < 0.5 else rng.choice(AGENTS)
        nonce = now + rng.choice((0, 1, 2, -5, 10**9))
        return Signed(signer, nonce, rng.choice((0, 0, now - 1, now + 10)), trading())
    if roll < 0.6:
        valid_until = rng.choice((0, now + 10_000, now, 1))
        return ApproveAgent(account, rng.choice((*AGENTS, account, b"\x01")), valid_until)
    if roll < 0.75:
        return Batch(account, tuple(trading() for _ in range(rng.randint(1, 4))))
    if roll < 0.8:
        return ApproveBuilderFee(account, builder, rng.choice((0, 50, 100, 1_000, 2_000)))
    if roll < 0.95:
        is_buy = rng.random() < 0.5
        crossing = 40 if rng.random() < 0.5 else rng.randint(-20, 20)
        return PlaceBuilderOrder(
            account,
            market,
            is_buy,
            mid + (crossing if is_buy else -crossing) * TICKS[market],
            size,
            builder if rng.random() < 0.9 else b"\x02" * 19,
            rng.choice((0, 10, 50, 100, 100, 101)),
        )
    return CommitteeBlock(rng.randint(1, 100), rng.randrange(4), rng.randrange(16))


def first_divergence(stream: Stream, root_every: int = 1) -> str | None:
    """Run both engines; describe the first command where they differ, else None."""
    config = fuzz_config()
    reference = Engine(config)
    native = NativeEngine(config)
    for index, (command, timestamp) in enumerate(stream):
        expected = reference.apply(command, timestamp)
        actual = native.apply(command, timestamp)
        if [type(e) for e in actual] != [type(e) for e in expected] or actual != expected:
            return f"command {index} {command!r}: events {actual!r} != {expected!r}"
        last = index == len(stream) - 1
        if (index % root_every == 0 or last) and native.state_root() != state_root(reference.state):
            return f"command {index} {command!r}: state roots differ"
    return None


def shrink(stream: Stream, diverges: Callable[[Stream], bool]) -> Stream:
    """Delta debugging: drop chunks of the stream, halving their size, while it diverges."""
    chunk = max(1, len(stream) // 2)
    while chunk >= 1:
        start = 0
        while start < len(stream):
            candidate = stream[:start] + stream[start + chunk :]
            if candidate and diverges(candidate):
                stream = candidate
            else:
                start += chunk
        chunk //= 2
    return stream


def reproduction(stream: Stream) -> str:
    lines = ["stream = ["] + [f"    ({command!r}, {ts})," for command, ts in stream] + ["]"]
    return "\n".join(lines)


def check_stream(stream: Stream, root_every: int) -> None:
    problem = first_divergence(stream, root_every)
    if problem is None:
        return
    # cut after the divergence, then shrink what is left (roots after every command)
    minimal = shrink(stream, lambda s: first_divergence(s) is not None)
    pytest.fail(
        f"native core diverged: {problem}\n"
        f"minimal reproduction ({len(minimal)} commands): {first_divergence(minimal)}\n"
        f"{reproduction(minimal)}"
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_random_streams_agree(seed: int) -> None:
    stream = random_stream(seed, 4_000)
    kinds = {type(command) for command, _ in stream}
    assert len(kinds) >= 18  # the stream really mixes (nearly) every kind of command
    check_stream(stream, root_every=97)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_stressed_streams_with_liquidations_agree(seed: int) -> None:
    stream = random_stream(seed, 3_000, stressed=True)
    reference = Engine(fuzz_config())
    kinds = set()
    for command, timestamp in stream:
        kinds.update(type(e).__name__ for e in reference.apply(command, timestamp))
    assert "LiquidationSettled" in kinds  # the stream does liquidate someone
    check_stream(stream, root_every=53)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 300), stressed=st.booleans())
def test_short_random_streams_agree_root_by_root(seed: int, length: int, stressed: bool) -> None:
    check_stream(random_stream(seed, length, stressed), root_every=1)


def test_the_shrinker_finds_a_minimal_reproduction() -> None:
    """The shrinker keeps only what the failure needs (here: a planted 'divergence')."""
    stream = random_stream(5, 300)
    planted = stream[150]

    def diverges(candidate: Stream) -> bool:
        return planted in candidate and any(isinstance(c, Deposit) for c, _ in candidate)

    minimal = shrink(stream, diverges)
    assert planted in minimal and len(minimal) == 2
    assert "stream = [" in reproduction(minimal)


@pytest.mark.parametrize(("seed", "stressed"), [(21, False), (22, True), (23, False)])
def test_snapshots_are_interchangeable_both_ways(seed: int, stressed: bool) -> None:
    """Halfway through a stream, the reference's snapshot is loaded into a native engine and
    the native state is snapshotted and restored into a reference engine: all three then
    continue event for event to the same root."""
    config = fuzz_config()
    stream = random_stream(seed, 2_000, stressed)
    half = len(stream) // 2
    reference = Engine(config)
    native = NativeEngine(config)
    for command, timestamp in stream[:half]:
        assert native.apply(command, timestamp) == reference.apply(command, timestamp)
    loaded = NativeEngine.from_reference_state(config, restore(config, snapshot(reference.state)))
    assert loaded.state_root() == state_root(reference.state)
    restored = Engine(state=restore(config, snapshot(native.to_reference_state())))
    for index, (command, timestamp) in enumerate(stream[half:], start=half):
        expected = reference.apply(command, timestamp)
        assert loaded.apply(command, timestamp) == expected, f"command {index} {command!r}"
        assert restored.apply(command, timestamp) == expected, f"command {index} {command!r}"
    assert loaded.state_root() == state_root(reference.state) == state_root(restored.state)


@pytest.mark.parametrize(("seed", "stressed"), [(25, False), (26, True)])
def test_a_snapshot_loads_into_the_native_core_without_a_reference_state(
    seed: int, stressed: bool
) -> None:
    """``restore_export`` reads a snapshot into the form the native core imports, exactly
    what exporting ``restore``'s state gives; ``NativeEngine.from_snapshot`` loads it, with
    the snapshot's root, and continues event for event like the reference."""
    config = fuzz_config()
    stream = random_stream(seed, 1_200, stressed)
    reference = Engine(config)
    for index, (command, timestamp) in enumerate(stream):
        reference.apply(command, timestamp)
        if index % 300 != 299:
            continue
        data = snapshot(reference.state)
        exported = restore_export(config, data)
        assert exported == export_reference_state(restore(config, data)), f"at {index}"
        loaded, root = NativeEngine.from_snapshot(config, data)
        assert root == state_root(reference.state) == loaded.state_root()
        assert loaded._core.export_state() == (
            NativeEngine.from_reference_state(config, reference.state)._core.export_state()
        )
        # and writes it back as the State it exports would be written, with the same root
        assert loaded.snapshot() == (snapshot(loaded.to_reference_state()), root)
        follower = Engine(state=restore(config, data))
        for command, timestamp in stream[index + 1 : index + 200]:
            assert loaded.apply(command, timestamp) == follower.apply(command, timestamp)
        assert loaded.state_root() == state_root(follower.state)


@engine_settings(examples=100)
@given(scenarios)
def test_the_engine_property_streams_agree_step_by_step(scenario: Any) -> None:
    """The engine property tests' own generator (every command kind, hostile values,
    liquidations, batch auctions, committee markers) through the native core: the events
    and the root after every step must be the reference's."""
    run = run_scenario(scenario)
    native = NativeEngine(scenario.config)
    for index, step in enumerate(run.steps):
        events = native.apply(step.command, step.timestamp)
        assert events == run.events[index], f"step {index} {step.command!r}"
        assert [type(e) for e in events] == [type(e) for e in run.events[index]]
        assert native.state_root() == run.roots[index], f"root after step {index}"


@pytest.mark.parametrize(("seed", "stressed"), [(31, False), (32, True)])
def test_journal_records_decoded_natively_reach_the_same_roots(seed: int, stressed: bool) -> None:
    """Replay's path: the records' bytes (``encode_record``) decoded and applied in C++ give
    the reference's root after every chunk, liquidations, auctions and cloids included."""
    config = fuzz_config()
    stream = random_stream(seed, 2_000, stressed)
    stream += [
        (PlaceOrder(ACCOUNTS[0], 0, True, MIDS[0] - 100, 100, client_id=2**128 - 1), 10**9),
        (PlaceOrder(ACCOUNTS[0], 0, True, MIDS[0] - 101, 100, client_id=2**127), 10**9),
        (CancelByClientId(ACCOUNTS[0], 0, 2**128 - 1), 10**9),
    ]
    records = [encode_record(timestamp, command, b"") for command, timestamp in stream]
    reference = Engine(config)
    native = NativeEngine(config)
    for start in range(0, len(records), 250):
        for command, timestamp in stream[start : start + 250]:
            reference.apply(command, timestamp)
        assert native.apply_records(records[start : start + 250]) == len(
            records[start : start + 250]
        )
        assert native.state_root() == state_root(reference.state), f"after record {start + 250}"


def _order_fields(order: Any) -> list[Any]:
    return list(order.to_list())


def _account_fields(account: Any) -> tuple[Any, ...]:
    positions = {
        market_id: (
            position.scalars(),
            position.imf,
            [_order_fields(order) for order in position.orders.values()],
        )
        for market_id, position in account.positions.items()
    }
    return (
        account.address,
        account.collateral,
        account.scheduled_cancel,
        positions,
        account.client_ids,
        account.agents,
        account.builders,
    )


def _market_fields(market: Any) -> tuple[Any, ...]:
    return (
        market.scalars(),
        market.oracle,
        [_order_fields(order) for order in market.book.orders_in_priority()],
        [_order_fields(order) for order in market.triggers.values()],
        sorted(market.holders),  # the order of holders is not committed
    )


@pytest.mark.parametrize(("seed", "stressed"), [(41, False), (42, True)])
def test_the_native_state_view_reads_what_the_reference_state_holds(
    seed: int, stressed: bool
) -> None:
    """The read side's view of the native core (``NativeEngine.state``) presents, after
    every command, what the reference's ``State`` holds: each account, order, market, nonce
    list and agent, and the scalars; absent keys are absent in both. The commitment batches
    carry is the reference's too."""
    config = fuzz_config()
    stream = random_stream(seed, 600, stressed)
    reference = Engine(config)
    native = NativeEngine(config)
    strangers = [b"\x77" * 20, b"\x10" * 19]
    for index, (command, timestamp) in enumerate(stream):
        reference.apply(command, timestamp)
        native.apply(command, timestamp)
        if index % 7 and index != len(stream) - 1:
            continue
        view, state = native.state, reference.state
        where = f"after command {index} {command!r}"
        assert (view.time, view.protective, view.l1_consumed) == (
            state.time,
            state.protective,
            state.l1_consumed,
        ), where
        assert list(view.accounts) == list(state.accounts), where
        assert len(view.accounts) == len(state.accounts), where
        for address, account in state.accounts.items():
            assert _account_fields(view.accounts[address]) == _account_fields(account), where
            for market_id in range(len(state.markets)):
                expected = state.position_values(address, market_id)
                assert view.position_values(address, market_id) == expected, where
        assert sorted(view.orders) == sorted(state.orders), where
        assert len(view.orders) == len(state.orders), where
        for order_id, order in state.orders.items():
            assert _order_fields(view.orders[order_id]) == _order_fields(order), where
        for market_id in range(len(state.markets)):
            actual = _market_fields(view.markets[market_id])
            assert actual == _market_fields(state.markets[market_id]), where
        assert dict(view.nonces) == state.nonces, where
        assert dict(view.agent_master) == state.agent_master, where
        for stranger in strangers:
            assert stranger not in view.accounts and view.accounts.get(stranger) is None
            assert view.nonces.get(stranger) is None and stranger not in view.agent_master
            assert view.position_values(stranger, 0) is None
        assert state.next_order_id not in view.orders and view.orders.get(0) is None
        # what settlement batches carry, taken from the export without a State
        assert native.commitment() == reference.commitment(), where
        # a snapshot written from the export is the one the exported State gives
        assert native.snapshot() == (
            snapshot(native.to_reference_state()),
            state_root(reference.state),
        ), where


def test_the_engine_only_demo_runs_the_same_on_both_engines() -> None:
    """The simulated session reads the engine's state to decide its next commands (quotes
    around the book, traders' positions), so the native state view steers it too: the same
    commands, the same event counts and the same final root on both engines."""
    reference = run_demo(hours=1.5, seed=5, quiet=True, engine_kind="reference")
    assert reference.liquidations >= 1 and reference.events["TradeExecuted"] > 100
    native = run_demo(hours=1.5, seed=5, quiet=True, engine_kind="native")
    assert native.commands == reference.commands
    assert dict(native.events) == dict(reference.events)
    assert native.state_root == reference.state_root
