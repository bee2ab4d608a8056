"""Committee incentives over random fees and blocks (hypothesis).

A venue with a random fee share and 1-7 members; a random stream of trades (random sizes and
prices around the mark, so random fees with random rounding) interleaved with block markers
of random proposers and signer bitmaps (bits past the committee, negative bitmaps and
proposers outside it included). Checked after every command:

- conservation: ``total_money() == deposited - withdrawn`` (the committee pool is one of the
  places money lives);
- follower: fee pool, committee pool and every member's collateral rebuilt from the events
  alone (``TradeExecuted`` fees in, ``CommitteeFeesAccrued`` across, ``CommitteeRewardPaid``
  out) equal the state;
- each marker accrues exactly ``floor(collected * share / 10^6)`` of the fees collected since
  the previous one, pays only members of the block before it (its proposer, the signers of
  its certificate) and pays out all but less than one micro-USDC per recipient;
and over the stream: a snapshot restored mid-way and fed the tail gives the same root.

``ASYNCDEX_PROPERTY_SCALE=10`` runs ten times as many examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncdex.engine.incentives import calculate_block_weights, calculate_rewards
from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    Command,
    CommitteeBlock,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    TimeInForce,
)
from asyncdex.messages.events import (
    CommitteeFeesAccrued,
    CommitteeRewardPaid,
    Deposited,
    Event,
    TradeExecuted,
    Withdrawn,
)
from asyncdex.types.market import EngineConfig, MarketSpec

SCALE = int(os.environ.get("ASYNCDEX_PROPERTY_SCALE", "1"))
ORACLE = b"\x0f" * 20
TRADERS = (b"\xa1" * 20, b"\xb0" * 20)
START = 1_767_225_600_000


def _member(index: int) -> bytes:
    return bytes([0xC0 + index]) * 20


trade = st.tuples(
    st.just("trade"),
    st.booleans(),  # who takes
    st.integers(9_900, 10_100),  # price
    st.integers(1_100, 50_000),  # size: above the minimum order value at any price here
)
block = st.tuples(
    st.just("block"),
    st.integers(-1, 8),  # proposer, possibly outside the committee
    st.one_of(st.integers(0, 2**9 - 1), st.just(-1), st.just(2**255)),  # signer bitmap
    st.just(0),
)


@settings(
    max_examples=150 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    share_ppm=st.integers(1, 1_000_000),
    members=st.integers(1, 7),
    operations=st.lists(st.one_of(trade, block), min_size=1, max_size=40),
    cut=st.integers(0, 40),
)
def test_fees_and_blocks_conserve_money_and_pay_only_the_block_makers(
    share_ppm: int, members: int, operations: list[tuple[str, object, int, int]], cut: int
) -> None:
    committee = tuple(_member(i) for i in range(members))
    config = EngineConfig(
        (MarketSpec(0, "TST", sz_decimals=4, tick=1, lot=1),),
        oracle_publishers=(ORACLE,),
        committee_fee_share_ppm=share_ppm,
        committee_members=committee,
    )
    engine = Engine(config)
    deposited = withdrawn = 0
    fee_pool = committee_pool = 0
    credited = dict.fromkeys(committee, 0)
    collected_since_marker = 0
    previous_proposer = -1
    stream: list[tuple[Command, int]] = []

    def apply(command: Command, now: int) -> list[Event]:
        nonlocal deposited, withdrawn, fee_pool, committee_pool, collected_since_marker
        stream.append((command, now))
        events = engine.apply(command, now)
        for event in events:
            if isinstance(event, Deposited):
                deposited += event.amount
            elif isinstance(event, Withdrawn):
                withdrawn += event.amount
            elif isinstance(event, TradeExecuted):
                fee_pool += event.maker_fee + event.taker_fee
                collected_since_marker += event.maker_fee + event.taker_fee
            elif isinstance(event, CommitteeFeesAccrued):
                fee_pool -= event.amount
                committee_pool += event.amount
            elif isinstance(event, CommitteeRewardPaid):
                committee_pool -= event.amount
                credited[event.member] += event.amount
        state = engine.state
        assert state.total_money() == deposited - withdrawn
        assert (state.fee_pool, state.committee_pool) == (fee_pool, committee_pool)
        assert state.committee_pool >= 0 and state.fee_pool >= 0
        for address, amount in credited.items():
            account = state.accounts.get(address)
            assert (account.collateral if account else 0) == amount
        return events

    for index, trader in enumerate(TRADERS):
        apply(Deposit(trader, 10**12, index), START)
    apply(PublishOraclePrice(ORACLE, 0, 10_000), START)
    now = START
    for kind, first, second, third in operations:
        now += 100
        if kind == "trade":
            maker, taker = TRADERS if first else TRADERS[::-1]
            apply(PlaceOrder(maker, 0, False, second, third), now)
            fills = apply(PlaceOrder(taker, 0, True, second, third, TimeInForce.IOC), now)
            assert any(isinstance(e, TradeExecuted) for e in fills)  # the stream makes fees
            continue
        proposer, signers = int(first), second  # type: ignore[call-overload]
        collected, pool_before = collected_since_marker, committee_pool
        events = apply(CommitteeBlock(len(stream), proposer, signers), now)
        accrued = sum(e.amount for e in events if isinstance(e, CommitteeFeesAccrued))
        assert accrued == collected * share_ppm // 1_000_000
        paid = {e.member: e.amount for e in events if isinstance(e, CommitteeRewardPaid)}
        weights = calculate_block_weights(previous_proposer, signers, members)
        assert set(paid) <= {committee[i] for i in weights}
        pool = pool_before + accrued
        if weights:
            assert 0 <= pool - sum(paid.values()) < len(weights)
        else:
            assert not paid
        collected_since_marker = 0
        previous_proposer = proposer if 0 <= proposer < members else -1

    # a snapshot taken mid-stream, restored and fed the tail, ends in the same root
    split = min(cut, len(stream))
    head = Engine(config)
    for command, at in stream[:split]:
        head.apply(command, at)
    resumed = Engine(config, restore(config, snapshot(head.state)))
    for command, at in stream[split:]:
        resumed.apply(command, at)
    assert state_root(resumed.state) == state_root(engine.state)


@given(
    pool=st.integers(0, 10**30),
    weights=st.dictionaries(st.integers(0, 255), st.integers(1, 3), max_size=20),
)
def test_a_payout_never_exceeds_the_pool_and_leaves_less_than_a_unit_per_recipient(
    pool: int, weights: dict[int, int]
) -> None:
    rewards = calculate_rewards(pool, dict(sorted(weights.items())))
    paid = sum(amount for _, amount in rewards)
    assert paid <= pool
    if weights:
        assert pool - paid < len(weights)
        total = sum(weights.values())
        assert all(amount == pool * weights[i] // total for i, amount in rewards)
    else:
        assert rewards == []
