"""Batch data: the strict versioned format, the builder's diffs and roots, and the rebuild of
every exit leaf from batch data alone over a realistic engine session."""

from __future__ import annotations

import copy
import itertools
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from asyncdex.cli.demo import PUBLISHERS, DemoSession, demo_config
from asyncdex.commitment.leaves import exit_leaf, withdrawal_leaf
from asyncdex.commitment.merkle import ZERO_HASH, verify_proof
from asyncdex.engine.state_root import exit_value, preimage_hash, state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    ApproveBuilderFee,
    Command,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    Withdraw,
)
from asyncdex.messages.events import Event, Withdrawn
from asyncdex.settlement import batch as batch_module
from asyncdex.settlement.batch import (
    BatchBuilder,
    BatchData,
    BatchDataError,
    CutBatch,
    LeafSet,
    RootMismatch,
    decode_batch_data,
    encode_batch_data,
    withdrawal_proof,
    withdrawals_root,
)
from asyncdex.settlement.batcher import Batcher

ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
CAROL = b"\xc4" * 20

PREIMAGE_FLAT = [1_000_000, 0, [], []]
PREIMAGE_LONG = [
    -5,
    1_767_225_600_000,
    [
        [0, 30, 18_000_000, 0, 10, 0, 20, False, -3, [4, 9]],
        [1, -7, 2_100_000, 5, 0, 2, 5, True, 0, []],
    ],
    [[b"\xee" * 20, 0]],
]


def sample_batch() -> BatchData:
    return BatchData(
        batch_number=3,
        first_seq=101,
        last_seq=250,
        l1_consumed=4,
        marks=(600_000, 300_000),
        global_leaf=b"\x42" * 32,
        accounts=((ALICE, PREIMAGE_LONG), (BOB, PREIMAGE_FLAT)),
        withdrawals=((7, ALICE, 250_000), (8, BOB, 1)),
    )


def raw_encoding(fields: list[Any]) -> bytes:
    """Batch data with arbitrary (possibly invalid) fields, in the version-1 framing."""
    return b"\x01" + zlib.compress(msgpack.packb(fields))


def fields_of(batch: BatchData) -> list[Any]:
    return [
        batch.batch_number,
        batch.first_seq,
        batch.last_seq,
        batch.l1_consumed,
        list(batch.marks),
        batch.global_leaf,
        [[a, p] for a, p in batch.accounts],
        [list(w) for w in batch.withdrawals],
    ]


# ---------------------------------------------------------------- format


def test_round_trip_gives_the_same_batch_and_bytes() -> None:
    batch = sample_batch()
    data = encode_batch_data(batch)
    assert data[0] == 1
    decoded = decode_batch_data(data)
    assert decoded == batch
    assert encode_batch_data(decoded) == data


def test_integers_beyond_64_bits_round_trip_and_hash_as_the_engine_does() -> None:
    huge = [2**70, 0, [[0, -(2**65), 2**80, 0, 0, 0, 20, False, 0, []]], []]
    batch = BatchData(1, 1, 1, 0, (600_000,), b"\x00" * 32, ((ALICE, huge),), ())
    decoded = decode_batch_data(encode_batch_data(batch))
    assert decoded == batch
    assert preimage_hash(decoded.accounts[0][1]) == preimage_hash(huge)


def test_a_preimage_with_approved_builders_round_trips() -> None:
    approved = [*PREIMAGE_FLAT, [[b"\xbd" * 20, 10], [b"\xbe" * 20, 0]]]
    batch = BatchData(1, 1, 1, 0, (600_000,), b"\x00" * 32, ((ALICE, approved),), ())
    data = encode_batch_data(batch)
    assert decode_batch_data(data) == batch
    assert encode_batch_data(decode_batch_data(data)) == data


def test_empty_diff_and_no_withdrawals_round_trip() -> None:
    batch = BatchData(1, 1, 1, 0, (), b"\x00" * 32, (), ())
    assert decode_batch_data(encode_batch_data(batch)) == batch
    assert batch.withdrawals_root() == ZERO_HASH


def test_withdrawals_root_and_proofs_use_the_contract_leaf() -> None:
    batch = sample_batch()
    root = batch.withdrawals_root()
    for withdrawal_id, account, amount in batch.withdrawals:
        index, proof = withdrawal_proof(batch.withdrawals, withdrawal_id)
        leaf = withdrawal_leaf(withdrawal_id, account, amount)
        assert verify_proof(root, leaf, index, proof)
    with pytest.raises(KeyError):
        withdrawal_proof(batch.withdrawals, 99)


def mutate(change: Callable[[list[Any]], None]) -> bytes:
    fields = copy.deepcopy(fields_of(sample_batch()))  # the preimages are shared constants
    change(fields)
    return raw_encoding(fields)


INVALID_ENCODINGS: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "unknown_version": lambda: b"\x02" + encode_batch_data(sample_batch())[1:],
    "not_zlib": lambda: b"\x01not zlib at all",
    "truncated_stream": lambda: encode_batch_data(sample_batch())[:-5],
    "bytes_after_stream": lambda: encode_batch_data(sample_batch()) + b"\x00",
    "not_msgpack": lambda: b"\x01" + zlib.compress(b"\xc1"),
    "not_a_list": lambda: b"\x01" + zlib.compress(msgpack.packb({"batch": 1})),
    "missing_field": lambda: mutate(lambda f: f.pop()),
    "extra_field": lambda: mutate(lambda f: f.append(0)),
    "batch_zero": lambda: mutate(lambda f: f.__setitem__(0, 0)),
    "small_integer_as_big_integer_ext": lambda: mutate(
        lambda f: f.__setitem__(0, msgpack.ExtType(1, b"\x03"))
    ),
    "bool_as_number": lambda: mutate(lambda f: f.__setitem__(0, True)),
    "empty_seq_range": lambda: mutate(lambda f: f.__setitem__(2, 100)),
    "negative_mark": lambda: mutate(lambda f: f[4].__setitem__(0, -1)),
    "short_global_leaf": lambda: mutate(lambda f: f.__setitem__(5, b"\x42" * 31)),
    "short_address": lambda: mutate(lambda f: f[6][0].__setitem__(0, b"\xa1" * 19)),
    "unsorted_accounts": lambda: mutate(lambda f: f[6].reverse()),
    "repeated_account": lambda: mutate(lambda f: f[6].__setitem__(1, f[6][0])),
    "preimage_too_short": lambda: mutate(lambda f: f[6][0][1].pop()),
    "market_beyond_marks": lambda: mutate(lambda f: f[4].pop()),
    "isolated_not_bool": lambda: mutate(lambda f: f[6][0][1][2][0].__setitem__(7, 0)),
    "unsorted_order_ids": lambda: mutate(lambda f: f[6][0][1][2][0][9].reverse()),
    "string_collateral": lambda: mutate(lambda f: f[6][1][1].__setitem__(0, "1000000")),
    "unsorted_withdrawals": lambda: mutate(lambda f: f[7].reverse()),
    "empty_builders": lambda: mutate(lambda f: f[6][1][1].append([])),
    "unsorted_builders": lambda: mutate(
        lambda f: f[6][1][1].append([[b"\xbe" * 20, 1], [b"\xbd" * 20, 1]])
    ),
    "short_builder": lambda: mutate(lambda f: f[6][1][1].append([[b"\xbd" * 19, 1]])),
    "negative_builder_fee": lambda: mutate(lambda f: f[6][1][1].append([[b"\xbd" * 20, -1]])),
    "preimage_too_long": lambda: mutate(lambda f: f[6][1][1].extend([[[b"\xbd" * 20, 1]], []])),
    "zero_withdrawal": lambda: mutate(lambda f: f[7][0].__setitem__(2, 0)),
}


@pytest.mark.parametrize("name", sorted(INVALID_ENCODINGS))
def test_invalid_batch_data_is_refused(name: str) -> None:
    with pytest.raises(BatchDataError):
        decode_batch_data(INVALID_ENCODINGS[name]())


def test_invalid_non_canonical_msgpack_is_refused() -> None:
    payload = msgpack.packb(fields_of(sample_batch()))
    # batch number 3 as a uint32 (0xce) instead of a positive fixint: same value, other bytes
    assert payload[1] == 3
    longer = payload[:1] + b"\xce\x00\x00\x00\x03" + payload[2:]
    assert msgpack.unpackb(longer) == msgpack.unpackb(payload)
    with pytest.raises(BatchDataError, match="canonical"):
        decode_batch_data(b"\x01" + zlib.compress(longer))


def test_invalid_decompression_beyond_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode_batch_data(sample_batch())
    monkeypatch.setattr(batch_module, "MAX_DECOMPRESSED_BYTES", 64)
    with pytest.raises(BatchDataError, match="exceeds"):
        decode_batch_data(data)


# ---------------------------------------------------------------- builder and leaf set


def small_engine() -> Engine:
    engine = Engine(demo_config())
    for index, account in enumerate((ALICE, BOB, CAROL)):
        engine.apply(Deposit(account, 1_000_000_000, index), 0)
    for publisher in PUBLISHERS:
        engine.apply(PublishOraclePrice(publisher, 0, 600_000), 0)
    return engine


def check_leaf_set(leaf_set: LeafSet, engine: Engine) -> None:
    """Every account's rebuilt leaf proves its engine exit value against the engine's root."""
    root = state_root(engine.state)
    assert leaf_set.root() == root
    for address, account in engine.state.accounts.items():
        value, account_hash, index, proof = leaf_set.proof_for(address)
        assert value == exit_value(engine.state, account)
        assert verify_proof(root, exit_leaf(address, value, account_hash), index, proof)


def test_builder_root_is_the_engine_root_and_diffs_hold_only_changed_accounts() -> None:
    engine = small_engine()
    builder = BatchBuilder(state_root(Engine(demo_config()).state))
    leaf_set = LeafSet()
    first = builder.cut(engine.state, [], 1, 6)
    assert first.state_root == state_root(engine.state)
    assert {a for a, _ in decode_batch_data(first.data).accounts} == {ALICE, BOB, CAROL}
    leaf_set.apply(decode_batch_data(first.data), first.state_root)

    engine.apply(PlaceOrder(BOB, 0, False, 600_000, 1_000), 1)
    engine.apply(PlaceOrder(ALICE, 0, True, 600_000, 1_000), 1)  # fills: both change
    second = builder.cut(engine.state, [], 7, 8)
    decoded = decode_batch_data(second.data)
    assert [a for a, _ in decoded.accounts] == sorted([ALICE, BOB])
    assert second.prev_state_root == first.state_root
    leaf_set.apply(decoded, second.state_root)
    check_leaf_set(leaf_set, engine)

    # An approved builder is account state: in the diff, and the rebuilt root still matches.
    engine.apply(ApproveBuilderFee(ALICE, CAROL, 10), 1)
    assert engine.state.accounts[ALICE].builders == {CAROL: 10}
    with_builder = builder.cut(engine.state, [], 9, 9)
    decoded = decode_batch_data(with_builder.data)
    assert decoded.accounts == ((ALICE, [*decoded.accounts[0][1][:4], [[CAROL, 10]]]),)
    leaf_set.apply(decoded, with_builder.state_root)
    check_leaf_set(leaf_set, engine)

    # A mark move changes exit values, not account hashes: no diff, yet the root still matches.
    for publisher in PUBLISHERS:
        engine.apply(PublishOraclePrice(publisher, 0, 630_000), 2)
    third = builder.cut(engine.state, [], 10, 11)
    decoded = decode_batch_data(third.data)
    assert decoded.accounts == ()
    assert third.state_root != second.state_root
    leaf_set.apply(decoded, third.state_root)
    check_leaf_set(leaf_set, engine)


def test_withdrawals_of_the_batch_make_its_withdrawals_root() -> None:
    engine = small_engine()
    builder = BatchBuilder(ZERO_HASH)
    events: list[Event] = []
    events += engine.apply(Withdraw(CAROL, 5_000_000), 1)
    events += engine.apply(Withdraw(ALICE, 7_000_000), 1)
    withdrawn = [e for e in events if isinstance(e, Withdrawn)]
    assert len(withdrawn) == 2
    cut = builder.cut(engine.state, reversed(withdrawn), 1, 2)
    expected = tuple((e.withdrawal_id, e.account, e.amount) for e in withdrawn)
    assert cut.withdrawals == expected
    assert decode_batch_data(cut.data).withdrawals == expected
    assert cut.withdrawals_root == withdrawals_root(expected) != ZERO_HASH


def test_leaf_set_refuses_a_root_mismatch_and_changes_nothing() -> None:
    engine = small_engine()
    builder = BatchBuilder(ZERO_HASH)
    first = builder.cut(engine.state, [], 1, 6)
    leaf_set = LeafSet()
    leaf_set.apply(decode_batch_data(first.data), first.state_root)
    engine.apply(Withdraw(ALICE, 1_000_000), 1)
    second = builder.cut(engine.state, [], 7, 7)
    with pytest.raises(RootMismatch):
        leaf_set.apply(decode_batch_data(second.data), b"\x99" * 32)
    assert leaf_set.batch_number == 1 and leaf_set.root() == first.state_root
    with pytest.raises(ValueError, match="expected"):
        leaf_set.apply(decode_batch_data(first.data), first.state_root)  # batch 1 again
    leaf_set.apply(decode_batch_data(second.data), second.state_root)
    check_leaf_set(leaf_set, engine)


def test_leaf_set_refuses_proofs_for_unknown_accounts() -> None:
    engine = small_engine()
    cut = BatchBuilder(ZERO_HASH).cut(engine.state, [], 1, 6)
    leaf_set = LeafSet()
    leaf_set.apply(decode_batch_data(cut.data), cut.state_root)
    with pytest.raises(KeyError):
        leaf_set.proof_for(b"\x01" * 20)


@pytest.mark.parametrize("seed", [1, 2])
def test_leaf_set_rebuilds_the_engine_root_over_a_demo_session(seed: int) -> None:
    """A half-hour demo session cut at irregular points: after every batch the leaf set,
    fed only the decoded batch data, has the engine's root and proves every exit value."""
    session = DemoSession(seed, None)
    builder = BatchBuilder(state_root(session.engine.state))
    leaf_set = LeafSet()
    cut_points = iter([1, 40, 41, 500, 2_000, 2_001, 7_777, 15_000, 1 << 60])
    next_cut = next(cut_points)
    state: dict[str, Any] = {"count": 0, "first": 1, "withdrawals": [], "cuts": 0}
    send = session.send
    diff_sizes: list[int] = []

    def cut() -> None:
        batch = builder.cut(
            session.engine.state, state["withdrawals"], state["first"], state["count"]
        )
        assert batch.state_root == state_root(session.engine.state)
        decoded = decode_batch_data(batch.data)
        assert (decoded.first_seq, decoded.last_seq) == (state["first"], state["count"])
        diff_sizes.append(len(decoded.accounts))
        leaf_set.apply(decoded, batch.state_root)
        check_leaf_set(leaf_set, session.engine)
        state.update(first=state["count"] + 1, withdrawals=[], cuts=state["cuts"] + 1)

    def counting_send(command: Command) -> list[Event]:
        nonlocal next_cut
        events = send(command)
        state["count"] += 1
        state["withdrawals"] += [e for e in events if isinstance(e, Withdrawn)]
        if state["count"] == next_cut:
            cut()
            next_cut = next(cut_points)
        return events

    session.send = counting_send  # type: ignore[method-assign]
    session.run(0.5)
    cut()
    assert state["cuts"] >= 8
    # one-command batches carry only the account the command touched: the first deposit,
    # then (command 41) one market maker's resting quote
    assert diff_sizes[0] == 1 and diff_sizes[2] == 1
    assert len(session.engine.state.accounts) == len(leaf_set.addresses())


# ---------------------------------------------------------------- batcher cut rules


def collect() -> tuple[list[CutBatch], Callable[[CutBatch], None]]:
    batches: list[CutBatch] = []
    return batches, batches.append


def test_batcher_cuts_by_record_count_and_by_sequenced_time() -> None:
    engine = small_engine()
    batches, sink = collect()
    batcher = Batcher(engine, sink, max_records=3, max_interval_ms=1_000)
    orders = [PlaceOrder(ALICE, 0, True, 590_000 + i * 10, 100) for i in range(10)]
    timestamps = [1_000, 1_100, 1_200, 1_300, 1_999, 2_000, 2_500, 5_000, 5_001, 5_002]
    for seq, (command, timestamp) in enumerate(zip(orders, timestamps, strict=True), start=1):
        batcher.process_record(seq, timestamp, command)
    spans = [(b.first_seq, b.last_seq) for b in batches]
    # 3 records; then 4-5 closed by the window ending at 2,000; then 6-7 by the one ending at
    # 3,000 (seen at 5,000); then 8-10 by count
    assert spans == [(1, 3), (4, 5), (6, 7), (8, 10)]
    assert [b.number for b in batches] == [1, 2, 3, 4]
    assert batcher.open_records == 0
    assert batcher.batch_of_seq(5) is not None and batcher.batch_of_seq(5).number == 2  # type: ignore[union-attr]
    assert batcher.batch_of_seq(11) is None
    assert batches[-1].state_root == state_root(engine.state)
    assert all(b.prev_state_root == a.state_root for a, b in itertools.pairwise(batches))


def test_batcher_refuses_a_gap_in_seqs() -> None:
    batcher = Batcher(small_engine(), lambda batch: None, max_records=10)
    batcher.process_record(1, 0, PlaceOrder(ALICE, 0, True, 590_000, 100))
    with pytest.raises(ValueError, match="gapless"):
        batcher.process_record(3, 0, PlaceOrder(ALICE, 0, True, 590_000, 100))


def test_batcher_cut_points_replay_identically() -> None:
    """Replaying the same records re-cuts byte-identical batches (restart safety)."""
    commands = [PlaceOrder(ALICE, 0, i % 2 == 0, 600_000, 100) for i in range(25)]
    runs = []
    for _ in range(2):
        batches, sink = collect()
        batcher = Batcher(small_engine(), sink, max_records=7, max_interval_ms=50)
        for seq, command in enumerate(commands, start=1):
            batcher.process_record(seq, seq * 13, command)
        runs.append([(b.first_seq, b.last_seq, b.data, b.state_root) for b in batches])
    assert runs[0] == runs[1] and len(runs[0]) >= 4
