"""The native core's own contract: loud refusals, the batch entry point, the exported state.

Behaviour against the reference is compared elsewhere (tests/scenarios/test_native_scenarios.py,
tests/property/test_native_differential.py); these tests pin what is specific to the native
core: what it does not implement is refused with ``NativeUnsupported`` and never half-done,
``run_stream`` applies exactly what ``apply`` applies, and its exported state is a reference
``State`` that snapshots, restores and continues to the same root.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from asyncdex.engine.native import (
    NATIVE_COMMANDS,
    NativeEngine,
    NativeUnsupported,
    native_available,
)
from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    COMMAND_TYPES,
    Batch,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    CommitteeBlock,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    PublishOraclePrice,
    SetLeverage,
    Signed,
    TimeInForce,
)
from asyncdex.messages.events import Rejected
from asyncdex.types.market import EngineConfig, MarketSpec

pytestmark = pytest.mark.skipif(
    not native_available(), reason="the native engine core is not built (no C++ compiler)"
)

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
MID = 600_000


def config(**market: object) -> EngineConfig:
    spec = MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1, min_order_value=1_000_000, **market)  # type: ignore[arg-type]
    return EngineConfig((spec,), oracle_publishers=(PUBLISHER,))


def genesis(collateral: int = 10**12) -> list[Command]:
    return [
        Deposit(ALICE, collateral, 0),
        Deposit(BOB, collateral, 1),
        PublishOraclePrice(PUBLISHER, 0, MID),
    ]


def both(commands: list[Command]) -> tuple[Engine, NativeEngine]:
    reference, native = Engine(config()), NativeEngine(config())
    for t, command in enumerate(commands):
        assert native.apply(command, t) == reference.apply(command, t)
    return reference, native


class NotACommand(NamedTuple):
    account: bytes
    market: int


def test_what_the_core_does_not_run_is_refused_before_anything_changes() -> None:
    reference, native = both(genesis())
    before = native.state_root()
    assert before == state_root(reference.state)
    refused = [
        NotACommand(ALICE, 0),
        Signed(ALICE, 1_000, 0, NotACommand(ALICE, 0)),  # type: ignore[arg-type]
        Batch(ALICE, (PlaceOrder(ALICE, 0, True, MID - 10, 100), NotACommand(ALICE, 0))),  # type: ignore[arg-type]
    ]
    for command in refused:
        with pytest.raises(NativeUnsupported):
            native.apply(command, 10**6)  # type: ignore[arg-type]  # a later time: the clock stays
        assert native.state_root() == before
    # and the engine goes on as if nothing had been asked
    command = PlaceOrder(ALICE, 0, True, MID - 10, 100)
    assert native.apply(command, 5) == reference.apply(command, 5)
    assert native.state_root() == state_root(reference.state)


def test_every_command_type_is_run() -> None:
    """What the core lacks is a part of some commands (NATIVE_LIMITS), no command type."""
    assert set(COMMAND_TYPES) == NATIVE_COMMANDS
    assert {Signed, Batch, CommitteeBlock, PlaceOrder} <= NATIVE_COMMANDS


def test_committee_incentives_are_paid_as_the_reference_pays_them() -> None:
    members = (b"\x71" * 20, b"\x72" * 20, b"\x73" * 20, b"\x74" * 20)
    paying = EngineConfig(
        config().markets,
        oracle_publishers=(PUBLISHER,),
        committee_fee_share_ppm=100_000,
        committee_members=members,
    )
    reference, native = Engine(paying), NativeEngine(paying)
    commands: list[Command] = [
        *genesis(),
        CommitteeBlock(1, 0, 0b1011),
        PlaceOrder(BOB, 0, False, MID, 30_000),
        PlaceOrder(ALICE, 0, True, MID, 30_000, TimeInForce.IOC),
        CommitteeBlock(2, 1, 0b0111),
        CommitteeBlock(3, 2, 2**300),  # more bits than members: only the members' count
    ]
    paid = 0
    for t, command in enumerate(commands):
        events = reference.apply(command, t)
        paid += sum(1 for e in events if type(e).__name__ == "CommitteeRewardPaid")
        assert native.apply(command, t) == events
        assert native.state_root() == state_root(reference.state)
    assert paid >= 3


def test_values_beyond_int64_that_the_reference_keeps_are_refused_before_any_change() -> None:
    reference, native = both(genesis())
    before = native.state_root()
    for command in (
        PlaceOrder(ALICE, 0, True, MID - 10, 100, client_id=2**128),
        PlaceOrder(ALICE, 0, True, MID - 10, 100, client_id=-7),
        PlaceOrder(ALICE, 0, True, MID - 10, 100, expiry=2**70),
        SetLeverage(ALICE, 0, 5, 1),  # type: ignore[arg-type]  # not a bool
    ):
        with pytest.raises(NativeUnsupported):
            native.apply(command, 10**6)
        assert native.state_root() == before
    command = SetLeverage(ALICE, 0, 5, True)
    assert native.apply(command, 20) == reference.apply(command, 20)
    assert native.state_root() == state_root(reference.state)


def test_a_liquidation_runs_as_the_reference_runs_it() -> None:
    """Alice goes long at 20x; a 4% drop puts her below maintenance: both engines liquidate
    her through the book, event for event, to the same root."""
    commands = [
        *genesis(collateral=1_000_000_000),
        PlaceOrder(BOB, 0, False, MID, 30_000),
        PlaceOrder(ALICE, 0, True, MID, 30_000, TimeInForce.IOC),
        PlaceOrder(BOB, 0, True, MID * 95 // 100, 10_000),
    ]
    reference, native = both(commands)
    crash = PublishOraclePrice(PUBLISHER, 0, MID * 96 // 100)
    events = reference.apply(crash, 100)
    assert any(type(e).__name__ == "LiquidationSettled" for e in events)
    assert native.apply(crash, 100) == events
    assert native.state_root() == state_root(reference.state)


def test_run_stream_applies_what_apply_applies() -> None:
    commands = [*genesis()]
    for i in range(200):
        side = i % 2 == 0
        commands.append(PlaceOrder(ALICE if side else BOB, 0, side, MID + (-5 if side else 5), 50))
        if i % 5 == 4:
            commands.append(ModifyOrder(ALICE, 0, i, MID - 3, 40))
        if i % 7 == 6:
            commands.append(CancelOrder(BOB, 0, i))
        if i % 11 == 10:
            commands.append(PlaceOrder(BOB, 0, False, MID - 20, 500, TimeInForce.IOC))
    per_call = NativeEngine(config())
    expected_events = 0
    for clock, command in enumerate(commands, start=1):
        expected_events += len(per_call.apply(command, clock >> 6))
    batch = NativeEngine(config())
    emitted, elapsed_ns, samples, cpu_ns = batch.run_stream(commands, 0)
    assert emitted == expected_events and elapsed_ns > 0 and cpu_ns > 0 and samples == []
    assert batch.state_root() == per_call.state_root()
    timed = NativeEngine(config())
    _, _, samples, _ = timed.run_stream(commands, 0, latency=True)
    assert len(samples) == len(commands) and samples == sorted(samples)


def test_exported_state_snapshots_restores_and_continues_in_the_reference() -> None:
    """Interchange native -> reference: a snapshot of the native state restores in the
    reference, which then continues to the root the native core reaches."""
    commands = [
        *genesis(),
        PlaceOrder(ALICE, 0, True, MID - 10, 100, client_id=7, expiry=50_000),
        PlaceOrder(BOB, 0, False, MID + 10, 100),
        PlaceOrder(BOB, 0, False, MID - 10, 40, TimeInForce.IOC),
        PlaceOrder(ALICE, 0, False, MID + 100, 30, trigger_price=MID + 50, trigger_kind=2),
    ]
    reference, native = both(commands)
    state = native.to_reference_state()
    assert state_root(state) == state_root(reference.state)
    restored = Engine(state=restore(config(), snapshot(state)))
    rest = [
        PlaceOrder(BOB, 0, False, MID - 10, 60),
        PublishOraclePrice(PUBLISHER, 0, MID + 60),
        ModifyOrder(BOB, 0, 2, MID + 12, 80),
    ]
    for t, command in enumerate(rest, start=len(commands)):
        assert restored.apply(command, t) == native.apply(command, t)
    assert state_root(restored.state) == native.state_root()
    # the expiry still fires in both (the heap travelled with the snapshot)
    later = PublishOraclePrice(PUBLISHER, 0, MID + 60)
    assert restored.apply(later, 60_000) == native.apply(later, 60_000)
    assert state_root(restored.state) == native.state_root()


def test_client_ids_are_128_bits_as_hyperliquid_cloids_are() -> None:
    reference, native = both(genesis())
    cloids = (2**128 - 1, 2**127, 2**127 + 5, 2**64 + 1, 7)
    commands: list[Command] = []
    for i, cloid in enumerate(cloids):
        commands.append(PlaceOrder(ALICE, 0, True, MID - 10 - i, 100, client_id=cloid))
    commands += [
        PlaceOrder(ALICE, 0, True, MID - 50, 100, client_id=2**127),  # a duplicate
        CancelByClientId(ALICE, 0, 2**128 - 1),
        CancelByClientId(ALICE, 0, 2**127 + 6),  # unknown
        CancelAll(ALICE),
    ]
    for t, command in enumerate(commands, start=10):
        assert native.apply(command, t) == reference.apply(command, t), command
        assert native.state_root() == state_root(reference.state)


def test_malformed_values_are_refused_as_the_reference_refuses_them() -> None:
    _, native = both(genesis())
    reference = Engine(config())
    for t, command in enumerate(genesis()):
        reference.apply(command, t)
    malformed: list[Command] = [
        PlaceOrder(ALICE, 0, True, MID, True),  # a bool is not a size
        PlaceOrder(ALICE, 0, True, MID, 10**40),  # beyond any integer the core holds
        PlaceOrder(ALICE, 0, True, -(10**40), 100),
        PlaceOrder(ALICE, 10**30, True, MID, 100),
        PlaceOrder(ALICE, 0, True, MID, 100, tif=7),
        Deposit(ALICE, 10**40, 2),
        Deposit(ALICE, -1, 3),
    ]
    for t, command in enumerate(malformed, start=10):
        expected = reference.apply(command, t)
        assert any(type(e) is Rejected for e in expected)
        assert native.apply(command, t) == expected
    assert native.state_root() == state_root(reference.state)
