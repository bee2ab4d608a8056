"""Committee incentives: config checks, what a venue without a share keeps unchanged, snapshots.

The arithmetic of payouts is in the golden scenario
``committee_fee_share_paid_to_leaders_and_signers`` and the property test
``tests/property/test_committee_incentive_properties.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from asyncdex.engine.snapshot import SnapshotError, restore, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.codec import decode_event, encode_event
from asyncdex.messages.commands import (
    CommitteeBlock,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    TimeInForce,
    Withdraw,
)
from asyncdex.messages.events import (
    CommitteeFeesAccrued,
    CommitteeRewardPaid,
    Rejected,
    Withdrawn,
)
from asyncdex.messages.reasons import Reject
from asyncdex.types.config_file import ConfigFileError, parse_engine_config
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.packing import pack, unpack

PUBLISHER = b"\x0f" * 20
ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
MEMBERS = tuple(bytes([0xC0 + i]) * 20 for i in range(4))
T0 = 1_767_225_600_000
PLAIN = EngineConfig((MarketSpec(0, "TST", sz_decimals=4, tick=1, lot=1),), (PUBLISHER,))
PAYING = dataclasses.replace(PLAIN, committee_fee_share_ppm=500_000, committee_members=MEMBERS)


def trading(config: EngineConfig) -> Engine:
    """Two funded traders, a price, one block marker and a trade worth 60,000 of fees."""
    engine = Engine(config)
    engine.apply(Deposit(ALICE, 10**12, 0), T0)
    engine.apply(Deposit(BOB, 10**12, 1), T0)
    engine.apply(PublishOraclePrice(PUBLISHER, 0, 10_000), T0)
    engine.apply(CommitteeBlock(1, 2, 0b0111), T0)
    engine.apply(PlaceOrder(BOB, 0, False, 10_000, 10_000), T0 + 100)
    engine.apply(PlaceOrder(ALICE, 0, True, 10_000, 10_000, TimeInForce.IOC), T0 + 100)
    return engine


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"committee_fee_share_ppm": -1}, "0..1000000"),
        ({"committee_fee_share_ppm": 1_000_001, "committee_members": MEMBERS}, "0..1000000"),
        ({"committee_fee_share_ppm": 1}, "needs committee_members"),
        ({"committee_members": (MEMBERS[0], MEMBERS[0])}, "distinct"),
        ({"committee_members": (b"\x01" * 19,)}, "20-byte"),
        ({"committee_members": tuple(i.to_bytes(20, "big") for i in range(257))}, "at most 256"),
    ],
)
def test_invalid_committee_configs_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(PLAIN, **changes).validate()


def test_without_a_share_a_committee_venue_commits_exactly_what_a_single_node_does() -> None:
    members_only = dataclasses.replace(PLAIN, committee_members=MEMBERS)
    plain, committee = trading(PLAIN), trading(members_only)
    events = committee.apply(CommitteeBlock(2, 1, 0b1011), T0 + 200)
    plain.apply(CommitteeBlock(2, 1, 0b1011), T0 + 200)
    assert not any(isinstance(e, CommitteeFeesAccrued | CommitteeRewardPaid) for e in events)
    assert committee.state.fee_pool == 60_000 and committee.state.committee_pool == 0
    assert state_root(committee.state) == state_root(plain.state)
    # nor is the snapshot's config fingerprint any different
    assert restore(PLAIN, snapshot(committee.state)) is not None


def test_a_paying_venue_credits_members_who_can_withdraw_by_signature() -> None:
    engine = trading(PAYING)
    events = engine.apply(CommitteeBlock(2, 0, 0b0011), T0 + 200)
    # half of 60,000 to the block's leader m2 (1) and signers m0, m1 (1 each): 10,000 each
    assert events[0] == CommitteeFeesAccrued(2, 30_000)
    assert events[1:4] == [
        CommitteeRewardPaid(2, MEMBERS[0], 10_000),
        CommitteeRewardPaid(2, MEMBERS[1], 10_000),
        CommitteeRewardPaid(2, MEMBERS[2], 10_000),
    ]
    assert engine.state.fee_pool == 30_000 and engine.state.committee_pool == 0
    for event in events[:4]:
        assert decode_event(encode_event(event)) == event
    member = MEMBERS[2]
    withdrawal = Signed(member, T0 + 300, 0, Withdraw(member, 10_000))
    assert engine.apply(withdrawal, T0 + 300) == [Withdrawn(member, 10_000, 1)]
    assert engine.state.accounts[member].collateral == 0


def test_a_trader_cannot_sign_a_block_marker_to_pay_itself() -> None:
    engine = trading(PAYING)
    before = state_root(engine.state)
    events = engine.apply(Signed(ALICE, T0 + 100, 0, CommitteeBlock(2, 0, 1)), T0 + 100)
    assert [type(e) for e in events] == [Rejected]
    assert events[0].reason == Reject.NOT_SIGNABLE  # type: ignore[union-attr]
    assert state_root(engine.state) == before


def test_the_committee_counters_are_in_the_root_and_the_snapshot() -> None:
    engine = trading(PAYING)
    engine.apply(CommitteeBlock(2, 3, 0b0001), T0 + 200)
    # 30,000 over m2 (led block 1) and m0 (signed it): 15,000 each, nothing left
    assert [engine.state.accounts[MEMBERS[i]].collateral for i in (0, 2)] == [15_000, 15_000]
    assert engine.state.committee_proposer == 3 and engine.state.committee_fee_mark == 30_000
    root = state_root(engine.state)
    restored = restore(PAYING, snapshot(engine.state))
    assert state_root(restored) == root
    assert (restored.committee_pool, restored.committee_fee_mark, restored.committee_proposer) == (
        0,
        30_000,
        3,
    )
    # the last proposer is committed: a different one gives a different root
    restored.committee_proposer = 1
    assert state_root(restored) != root
    # the share and the members are part of the config a snapshot names
    other = dataclasses.replace(PAYING, committee_fee_share_ppm=400_000)
    with pytest.raises(SnapshotError, match="different config"):
        restore(other, snapshot(engine.state))


def test_a_version_3_snapshot_restores_with_nothing_accrued() -> None:
    engine = trading(PLAIN)
    body: list[Any] = unpack(snapshot(engine.state))
    assert body[0] == 4
    assert body[2][-3:] == [0, 0, -1]
    body[0] = 3
    body[2] = body[2][:-3]
    restored = restore(PLAIN, pack(body))
    assert state_root(restored) == state_root(engine.state)
    assert snapshot(restored) == snapshot(engine.state)
    # a version 4 body without the committee counters is refused, not guessed
    body[0] = 4
    with pytest.raises(SnapshotError, match="counters"):
        restore(PLAIN, pack(body))


def test_the_config_file_takes_the_share_and_the_members() -> None:
    document: dict[str, Any] = {
        "markets": [{"symbol": "TST", "sz_decimals": 4, "tick": 1, "lot": 1}],
        "committee_fee_share_ppm": 200_000,
        "committee_members": ["0x" + member.hex() for member in MEMBERS],
    }
    config = parse_engine_config(document)
    assert config.committee_fee_share_ppm == 200_000 and config.committee_members == MEMBERS
    with pytest.raises(ConfigFileError, match="committee_fee_share_ppm"):
        parse_engine_config({**document, "committee_fee_share_ppm": 0.2})
    with pytest.raises(ConfigFileError, match=r"committee_members\[0\]"):
        parse_engine_config({**document, "committee_members": ["m0"]})
    with pytest.raises(ConfigFileError, match="needs committee_members"):
        parse_engine_config({**document, "committee_members": []})
