"""No command stream, however extreme its numbers, can stop status, snapshots, settlement or a
restart (hypothesis).

Two operator deposits of 2^255 once made an account's exit value overflow the exit leaf's
uint256: the state root, and with it ``/v1/status``, shutdown and every restart, failed. The
engine now bounds what it keeps (``asyncdex.engine.transition``'s number bounds); this test
drives it with streams whose numbers sit at and beyond every bound — deposits and
withdrawals up to 2^256, prices and sizes around the markets' 10^15 bounds, oracle crashes
from the top price to one tick and back, leverage and isolated margin at their limits, times
and nonces far in the future — mixed with ordinary trading so balances, positions, funding
and liquidations really grow. After every command:

- status: the state root builds (every exit leaf fits uint256);
- settlement: at random cuts ``BatchBuilder`` builds the batch (the state diff of the touched
  accounts, their exit leaves, the withdrawals tree), and its data decodes and rebuilds the
  same root from chain data alone (``LeafSet``);
- the journal: every command round-trips the codec, as a record does on restart;
and over the whole stream:
- snapshot: written at a random step, restored, fed the tail: the same root as the stream;
- restart: snapshot + replay of the decoded tail == full replay of the decoded stream.

``ASYNCDEX_PROPERTY_SCALE=10`` runs ten times as many examples.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.codec import decode_command, encode_command
from asyncdex.messages.commands import (
    AdvanceTime,
    ApproveAgent,
    CancelAll,
    Command,
    Deposit,
    ForceWithdraw,
    ModifyOrder,
    OrderType,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    Signed,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.messages.events import Withdrawn
from asyncdex.settlement.batch import BatchBuilder, LeafSet, decode_batch_data
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import MAX_COLLATERAL, MAX_MARKET_BOUND

SCALE = float(os.environ.get("ASYNCDEX_PROPERTY_SCALE", "1"))
PUBLISHER = b"\xa0" * 20
ACCOUNTS = tuple(bytes([0x11 * (i + 1)]) * 20 for i in range(4))
AGENT = b"\xc0" * 20
START = 1_700_000_000_000
GENESIS = bytes(32)

# two markets at the engine's bounds: tick and lot 1 (so every extreme price and size is on
# the grid) and high leverage (so little collateral carries a large position)
CONFIG = EngineConfig(
    (
        MarketSpec(
            0,
            "BIG",
            0,
            tick=1,
            lot=1,
            min_order_value=0,
            initial_margin_ppm=20_000,
            maintenance_margin_ppm=10_000,
            max_leverage=50,
            funding_interval_ms=60_000,
            premium_sample_ms=1_000,
        ),
        MarketSpec(
            1,
            "SMALL",
            6,
            tick=1,
            lot=1,
            min_order_value=0,
            maker_fee_ppm=-20,
            taker_fee_ppm=20,
            funding_interval_ms=60_000,
            premium_sample_ms=1_000,
        ),
    ),
    oracle_publishers=(PUBLISHER,),
)

# numbers at, just inside and just beyond every bound and every integer width
EDGES = (
    1, 2, MAX_MARKET_BOUND - 1, MAX_MARKET_BOUND, MAX_MARKET_BOUND + 1,
    MAX_COLLATERAL // 3, MAX_COLLATERAL // 2, MAX_COLLATERAL - 1, MAX_COLLATERAL,
    MAX_COLLATERAL + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**127, 2**255, 2**256 - 1, 2**256,
    2**300,
)  # fmt: skip
extreme = st.one_of(st.sampled_from(EDGES), st.integers(1, 10**6), st.integers(1, 2**260))
signed_extreme = st.one_of(extreme, extreme.map(lambda n: -n), st.just(0))
prices = st.one_of(
    st.sampled_from((1, 2, 10, MAX_MARKET_BOUND // 2, MAX_MARKET_BOUND, MAX_MARKET_BOUND + 1)),
    st.integers(1, MAX_MARKET_BOUND),
    extreme,
)
sizes = prices
times = st.one_of(st.just(0), st.integers(START, START + 10**9), extreme)
accounts = st.sampled_from(ACCOUNTS)
markets = st.sampled_from((0, 1, 0, 1, 2))
# how far each command's timestamp is from the last one: mostly none, sometimes over
# premium samples and funding intervals, rarely a year
steps = st.integers(0, 99).flatmap(
    lambda roll: (
        st.just(0)
        if roll < 50
        else st.integers(1, 5_000)
        if roll < 94
        else st.integers(60_000, 600_000)
        if roll < 99
        else st.just(365 * 86_400_000)
    )
)


@st.composite
def commands(draw: st.DrawFn, engine: Engine) -> Command:
    state = engine.state
    kind = draw(st.integers(0, 17))
    account = draw(accounts)
    market = draw(markets)
    if kind <= 1:  # most streams must fund accounts, near or past the cap
        amount = draw(st.one_of(extreme, st.integers(10**9, MAX_COLLATERAL)))
        l1_index = draw(extreme) if draw(st.integers(0, 9)) == 9 else state.l1_consumed
        return Deposit(account, amount, l1_index)
    if kind == 2:
        return PublishOraclePrice(PUBLISHER, market, draw(prices))
    if kind == 17:  # the oracle moves the mark within the band, or crashes it
        mark = state.markets[market % 2].mark_price or 10**6
        moved = mark + mark * draw(st.integers(-60, 60)) // 1_000
        return PublishOraclePrice(PUBLISHER, market % 2, min(max(moved, 1), MAX_MARKET_BOUND))
    if kind in (3, 4, 14, 15, 16) and (kind > 13 or draw(st.booleans())):
        # a plausible order, so positions, balances and funding really grow: resting near
        # the mark or taking up to 4% through it, sized to a multiple of the account's
        # balance up to the market's leverage
        mark = state.markets[market % 2].mark_price or 10**6
        is_buy = draw(st.booleans())
        taking = draw(st.booleans())
        offset = draw(st.integers(0, 40) if taking else st.integers(-10, 10))
        price = max(1, mark + (offset if is_buy else -offset) * mark // 1_000)
        holder = state.accounts.get(account)
        balance = holder.collateral if holder is not None else 10**6
        size = min(max(1, balance * draw(st.integers(1, 45)) // price), MAX_MARKET_BOUND)
        tif = TimeInForce.IOC if taking else TimeInForce.GTC
        return PlaceOrder(account, market % 2, is_buy, min(price, MAX_MARKET_BOUND), size, tif)
    if kind in (3, 4, 5):
        trigger = draw(st.sampled_from((0, 0, 0, int(TriggerKind.STOP), 7)))
        return PlaceOrder(
            account,
            market,
            draw(st.booleans()),
            draw(prices),
            draw(sizes),
            draw(st.sampled_from(list(TimeInForce))),
            draw(st.sampled_from(list(OrderType))),
            draw(st.booleans()),
            draw(st.one_of(st.just(0), extreme)),
            draw(times),
            draw(prices) if trigger else 0,
            trigger,
        )
    if kind == 6:
        live = sorted(state.orders)
        order_id = draw(st.sampled_from(live)) if live else draw(extreme)
        order = state.orders.get(order_id)
        owner = order.account if order is not None else account
        return ModifyOrder(owner, order.market if order else market, order_id, draw(prices),
                           draw(sizes))  # fmt: skip
    if kind == 7:
        return Withdraw(account, draw(extreme))
    if kind == 8:
        return ForceWithdraw(account, draw(extreme), state.l1_consumed)
    if kind == 9:
        return UpdateIsolatedMargin(account, market, draw(signed_extreme))
    if kind == 10:
        leverage = draw(st.one_of(st.integers(1, 50), extreme))
        return SetLeverage(account, market, leverage, draw(st.booleans()))
    if kind == 11:
        return ScheduleCancel(account, draw(times))
    if kind == 12:
        inner = draw(
            st.one_of(
                st.builds(CancelAll, st.just(account), st.just(-1)),
                st.builds(ApproveAgent, st.just(account), st.just(AGENT), times),
            )
        )
        return Signed(account, draw(st.one_of(times, extreme)), draw(times), inner)
    return AdvanceTime()


def check_settles(builder: BatchBuilder, leaves: LeafSet, engine: Engine, paid: list[Withdrawn],
                  seq: int) -> None:  # fmt: skip
    batch = builder.cut(engine.state, paid, seq, seq)
    assert batch.state_root == state_root(engine.state)
    assert leaves.apply(decode_batch_data(batch.data), batch.state_root) == batch.state_root


@settings(
    max_examples=max(1, int(60 * SCALE)),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), length=st.integers(5, 45))
def test_no_command_stream_breaks_status_snapshot_settlement_or_restart(
    data: st.DataObject, length: int
) -> None:
    engine = Engine(CONFIG)
    builder, leaves = BatchBuilder(GENESIS), LeafSet()
    stream: list[tuple[Command, int]] = []
    paid: list[Withdrawn] = []
    snap = snapshot(engine.state)
    now = START
    # every account funded and both markets priced first, so the rest of the stream trades
    prelude: list[Command] = [
        Deposit(account, data.draw(st.integers(10**9, MAX_COLLATERAL // 4)), index)
        for index, account in enumerate(ACCOUNTS)
    ]
    prelude += [
        PublishOraclePrice(PUBLISHER, market, data.draw(st.integers(1, MAX_MARKET_BOUND)))
        for market in (0, 1)
    ]
    length += len(prelude)
    cut_at = data.draw(st.integers(0, length), label="snapshot after")
    for seq in range(1, length + 1):
        command = prelude[seq - 1] if seq <= len(prelude) else data.draw(commands(engine))
        now += data.draw(steps)
        note(f"engine.apply({command!r}, {now})")
        events = engine.apply(command, now)
        stream.append((command, now))
        paid.extend(e for e in events if isinstance(e, Withdrawn))
        state_root(engine.state)  # status
        assert decode_command(encode_command(command)) == command  # the journal record
        if seq == cut_at:
            snap = snapshot(engine.state)
        if data.draw(st.integers(0, 4), label="cut a batch") == 0 or seq == length:
            check_settles(builder, leaves, engine, paid, seq)
            paid = []
    root = state_root(engine.state)

    # restart: the snapshot restored and fed the journal tail, decoded as on disk
    restarted = Engine(state=restore(CONFIG, snap))
    for command, timestamp in stream[cut_at:]:
        restarted.apply(decode_command(encode_command(command)), timestamp)
    assert state_root(restarted.state) == root
    assert snapshot(restarted.state) == snapshot(engine.state)
    # full replay from genesis gives the same root
    replayed = Engine(CONFIG)
    for command, timestamp in stream:
        replayed.apply(command, timestamp)
    assert state_root(replayed.state) == root


def test_two_deposits_of_2_pow_255_leave_every_path_working() -> None:
    """The reported case, as a fixed example of the property above."""
    engine = Engine(CONFIG)
    stream: list[tuple[Any, int]] = [
        (Deposit(ACCOUNTS[0], 2**255, 0), START),
        (Deposit(ACCOUNTS[0], 2**255, 1), START + 1),
    ]
    for command, timestamp in stream:
        engine.apply(command, timestamp)
    assert engine.state.l1_consumed == 2 and not engine.state.accounts
    check_settles(BatchBuilder(GENESIS), LeafSet(), engine, [], 2)
    restored = Engine(state=restore(CONFIG, snapshot(engine.state)))
    assert state_root(restored.state) == state_root(engine.state)
