"""Snapshots, replay and recovery against real files: snapshot + tail == full replay."""

from __future__ import annotations

import hashlib
import random
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.engine.native import native_available
from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.codec import CodecError, command_items
from asyncdex.messages.commands import (
    AdvanceTime,
    Batch,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    Signed,
    TimeInForce,
    Withdraw,
)
from asyncdex.messages.events import Event
from asyncdex.sequencer.journal import FileJournal, JournalCorruption
from asyncdex.sequencer.records import (
    Record,
    decode_record,
    decode_trusted_record,
    encode_record,
)
from asyncdex.sequencer.recovery import (
    EngineExecutor,
    JournalLoss,
    RecoveryMismatch,
    ReplayGap,
    SnapshotStore,
    recover,
    replay,
    snapshot_file_name,
)
from asyncdex.sequencer.sequencer import Sequenced
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.packing import pack

PUBLISHER = b"\x0f" * 20
TRADERS = tuple(bytes([0xA0 + i]) * 20 for i in range(6))
START_MS = 1_767_225_600_000
HEADER = struct.Struct("<8sIQ32sQ32s")  # the documented snapshot header, before its CRC
HEADER_BYTES = HEADER.size + 4


def make_config(publisher: bytes = PUBLISHER) -> EngineConfig:
    return EngineConfig(
        (
            MarketSpec(0, "BTC", sz_decimals=5, tick=1, lot=1, min_order_value=1_000_000),
            MarketSpec(1, "ETH", sz_decimals=4, tick=1, lot=1, min_order_value=1_000_000),
        ),
        oracle_publishers=(publisher,),
    )


CONFIG = make_config()
MIDS = (600_000, 300_000)


def command_stream(seed: int, count: int) -> list[tuple[int, Command]]:
    """(timestamp, command) pairs: deposits, oracle prices, then a random trading mix.

    A shadow engine tracks live order ids so cancels and modifies mostly hit real orders;
    some commands are rejected on purpose (unknown ids, reused nonces), as in real traffic.
    """
    rng = random.Random(seed)
    shadow = Engine(CONFIG)
    now = START_MS
    stream: list[tuple[int, Command]] = []
    nonces = dict.fromkeys(TRADERS, START_MS)
    client_ids = 0
    published = now

    def emit(command: Command) -> None:
        stream.append((now, command))
        shadow.apply(command, now)

    def live_order() -> tuple[bytes, int, int]:
        orders = shadow.state.orders
        if not orders or rng.random() < 0.1:
            return (rng.choice(TRADERS), 0, rng.randint(1, 10**6))  # unknown: rejected
        order = orders[rng.choice(list(orders))]
        return order.account, order.market, order.order_id

    for index, trader in enumerate(TRADERS):
        emit(Deposit(trader, 10**12, index))
    for market, mid in enumerate(MIDS):
        emit(PublishOraclePrice(PUBLISHER, market, mid))
    while len(stream) < count:
        now += rng.choice((0, 0, 1, 5, 300, 1_500))
        trader = rng.choice(TRADERS)
        market = rng.randrange(2)
        mid = MIDS[market]
        roll = rng.random()
        command: Command
        if now - published > 6_000 or roll < 0.08:
            # publishers keep the index fresh (it goes stale after 10 s without a price)
            command = PublishOraclePrice(PUBLISHER, market, mid + rng.randint(-300, 300))
            published = now
        elif roll < 0.45:
            is_buy = rng.random() < 0.5
            offset = rng.randint(-20, 200)
            tif = rng.choice((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.ALO))
            client_id = 0
            if rng.random() < 0.3:
                client_ids += 1
                client_id = client_ids
            command = PlaceOrder(trader, market, is_buy, mid - offset if is_buy else mid + offset,
                                 rng.randint(10, 500), tif, client_id=client_id)  # fmt: skip
        elif roll < 0.58:
            command = CancelOrder(*live_order())
        elif roll < 0.70:
            account, live_market, order_id = live_order()
            price = MIDS[live_market] + rng.choice((-1, 1)) * rng.randint(1, 150)
            command = ModifyOrder(account, live_market, order_id, price, rng.randint(10, 300))
        elif roll < 0.73:
            command = AdvanceTime()
        elif roll < 0.75:
            command = CancelByClientId(trader, market, rng.randint(1, client_ids + 1))
        elif roll < 0.76:
            command = CancelAll(trader)
        elif roll < 0.78:
            command = SetLeverage(trader, market, rng.randint(1, 20))
        elif roll < 0.79:
            command = Withdraw(trader, rng.randint(1, 10**9))
        elif roll < 0.80:
            command = ScheduleCancel(trader, now + rng.randint(1, 20_000))
        else:
            # a trader's signed intent; now and then a reused nonce, which the engine refuses
            nonces[trader] += rng.choice((1, 1, 1, 1, 1, 0))
            inner = PlaceOrder(trader, market, rng.random() < 0.5, mid + rng.randint(-100, 100),
                               rng.randint(10, 200))  # fmt: skip
            command = Signed(trader, nonces[trader], 0, inner)
        emit(command)
    return stream[:count]


def write_journal(
    directory: Path, stream: list[tuple[int, Command]], segment_bytes: int = 4096
) -> None:
    journal, _ = FileJournal.open(directory, segment_bytes=segment_bytes)
    for seq, (timestamp, command) in enumerate(stream, start=1):
        journal.append(seq, encode_record(timestamp, command, b"\x01" * 65))
    journal.flush()
    journal.close()


def engine_after(stream: list[tuple[int, Command]], count: int) -> Engine:
    engine = Engine(CONFIG)
    for timestamp, command in stream[:count]:
        engine.apply(command, timestamp)
    return engine


def rewrite_snapshot(path: Path, payload: bytes, root: bytes | None = None) -> None:
    """Replace a snapshot's payload with a valid header for it (root kept unless given)."""
    data = path.read_bytes()
    magic, version, seq, old_root, _length, _digest = HEADER.unpack_from(data, 0)
    fields = HEADER.pack(magic, version, seq, old_root if root is None else root, len(payload),
                         hashlib.sha256(payload).digest())  # fmt: skip
    path.write_bytes(fields + struct.pack("<I", zlib.crc32(fields)) + payload)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------- records


# client ids are 128-bit on the wire: beyond msgpack's native integers
BIG_CLIENT_IDS: list[tuple[int, Command]] = [
    (START_MS, PlaceOrder(TRADERS[0], 0, True, 600_000, 10, client_id=(1 << 128) - 1)),
    (START_MS, Signed(TRADERS[1], START_MS + 1, 0, CancelByClientId(TRADERS[1], 1, 1 << 100))),
]

# several commands under one signature (a Hyperliquid action), signed or bare
_BATCH = Batch(
    TRADERS[0],
    (
        PlaceOrder(TRADERS[0], 0, True, 600_000, 10, client_id=1 << 100),
        CancelOrder(TRADERS[0], 0, 3),
        SetLeverage(TRADERS[0], 1, 5),
    ),
)
BATCHES: list[tuple[int, Command]] = [
    (START_MS, Signed(TRADERS[0], START_MS + 2, 0, _BATCH)),
    (START_MS, _BATCH),
    (START_MS, Signed(TRADERS[1], START_MS + 3, 0, Batch(TRADERS[1], ()))),
]


def test_encode_record_is_the_canonical_packing_of_the_record() -> None:
    for _timestamp, command in command_stream(seed=3, count=400) + BIG_CLIENT_IDS + BATCHES:
        expected = pack([START_MS, command_items(command), b"\x07" * 65])
        assert encode_record(START_MS, command, b"\x07" * 65) == expected


def test_trusted_and_strict_decoders_agree() -> None:
    for timestamp, command in command_stream(seed=4, count=400) + BIG_CLIENT_IDS + BATCHES:
        payload = encode_record(timestamp, command, b"\x02" * 65)
        strict = decode_record(payload)
        trusted = decode_trusted_record(payload)
        assert trusted == strict == Record(timestamp, command, b"\x02" * 65)
        assert type(trusted.command) is type(command)
        if isinstance(command, Signed):
            assert type(trusted.command.command) is type(command.command)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", msgpack.packb([1, [99, 1], b""]), b"\x93\x01", b"\x93\x01\xd4\x07\x00\xc4\x00"],
)
def test_trusted_decoder_refuses_what_it_cannot_read(payload: bytes) -> None:
    with pytest.raises(CodecError):
        decode_trusted_record(payload)


# ------------------------------------------------------------------------------ snapshots


def test_snapshot_round_trip(tmp_path: Path) -> None:
    stream = command_stream(seed=1, count=300)
    engine = engine_after(stream, 300)
    store = SnapshotStore(tmp_path)
    path = store.save(300, engine.state)
    assert path.name == snapshot_file_name(300) == "snapshot-00000000000000000300.bin"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    loaded = store.latest(CONFIG)
    assert loaded is not None
    seq, state = loaded
    assert seq == 300
    assert state_root(state) == state_root(engine.state)
    assert snapshot(state) == snapshot(engine.state)
    assert store.skipped == []
    # the restored state behaves identically from here on
    restored = Engine(state=state)
    for timestamp, command in command_stream(seed=2, count=400)[300:]:
        assert restored.apply(command, timestamp) == engine.apply(command, timestamp)
    assert state_root(restored.state) == state_root(engine.state)


def test_store_keeps_the_newest_snapshots_only(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path, keep=3)
    state = engine_after(command_stream(seed=1, count=50), 50).state
    for seq in (10, 20, 30, 40, 50):
        store.save(seq, state)
    assert [seq for seq, _ in store.paths()] == [30, 40, 50]
    (tmp_path / ".snapshot-00000000000000000060.bin.abc.tmp").write_bytes(b"half written")
    store.save(60, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        snapshot_file_name(40), snapshot_file_name(50), snapshot_file_name(60)
    ]  # fmt: skip


def test_empty_or_missing_directory_has_no_snapshot(tmp_path: Path) -> None:
    assert SnapshotStore(tmp_path / "absent").latest(CONFIG) is None
    assert SnapshotStore(tmp_path).latest(CONFIG) is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("payload", "payload checksum mismatch"),
        ("header", "header checksum mismatch"),
        ("truncate", "payload is"),
        ("tiny", "shorter than the header"),
    ],
)
def test_corrupt_snapshot_is_skipped_and_reported(tmp_path: Path, damage: str, reason: str) -> None:
    stream = command_stream(seed=5, count=200)
    store = SnapshotStore(tmp_path)
    store.save(100, engine_after(stream, 100).state)
    newest = store.save(200, engine_after(stream, 200).state)
    data = newest.read_bytes()
    if damage == "payload":
        flip_byte(newest, len(data) - 10)
    elif damage == "header":
        flip_byte(newest, 20)
    elif damage == "truncate":
        newest.write_bytes(data[:-7])
    else:
        newest.write_bytes(data[:40])
    loaded = store.latest(CONFIG)
    assert loaded is not None and loaded[0] == 100
    assert state_root(loaded[1]) == state_root(engine_after(stream, 100).state)
    assert [(s.seq, s.path) for s in store.skipped] == [(200, newest)]
    assert reason in store.skipped[0].reason


def test_snapshot_under_another_config_is_skipped(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(50, engine_after(command_stream(seed=6, count=50), 50).state)
    other = make_config(publisher=b"\x0e" * 20)
    assert store.latest(other) is None
    assert len(store.skipped) == 1
    assert "different config" in store.skipped[0].reason
    assert store.latest(CONFIG) is not None and store.skipped == []


def test_snapshot_whose_root_does_not_match_its_state_is_skipped(tmp_path: Path) -> None:
    stream = command_stream(seed=7, count=120)
    store = SnapshotStore(tmp_path)
    path = store.save(120, engine_after(stream, 120).state)
    state = restore(CONFIG, path.read_bytes()[HEADER_BYTES:])
    next(iter(state.accounts.values())).collateral += 1
    rewrite_snapshot(path, snapshot(state))  # checksum fixed, saved root left as it was
    assert store.latest(CONFIG) is None
    assert "state root" in store.skipped[0].reason


def test_snapshot_beyond_max_seq_is_skipped(tmp_path: Path) -> None:
    stream = command_stream(seed=8, count=80)
    store = SnapshotStore(tmp_path)
    store.save(40, engine_after(stream, 40).state)
    store.save(80, engine_after(stream, 80).state)
    loaded = store.latest(CONFIG, max_seq=79)
    assert loaded is not None and loaded[0] == 40
    assert [s.seq for s in store.skipped] == [80]


# -------------------------------------------------------------------------------- replay


class ListSource:
    """A record source with chosen seqs, to feed replay what a journal never would."""

    def __init__(self, records: list[tuple[int, bytes]]) -> None:
        self.records = records

    def read(self, from_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        return iter([r for r in self.records if from_seq is None or r[0] >= from_seq])


def test_replay_refuses_a_gap() -> None:
    stream = command_stream(seed=9, count=20)
    records = [(seq, encode_record(t, c)) for seq, (t, c) in enumerate(stream, start=1)]
    del records[11]  # seq 12 missing
    engine = Engine(CONFIG)
    with pytest.raises(ReplayGap) as caught:
        replay(ListSource(records), engine, 1)
    assert (caught.value.expected, caught.value.found) == (12, 13)
    assert state_root(engine.state) == state_root(engine_after(stream, 11).state)
    with pytest.raises(ReplayGap):
        replay(ListSource(records), Engine(CONFIG), 1, to_seq=25)  # ends before to_seq


def test_replay_range_and_callback(tmp_path: Path) -> None:
    stream = command_stream(seed=10, count=150)
    write_journal(tmp_path, stream)
    journal, _ = FileJournal.open(tmp_path)
    engine = engine_after(stream, 40)
    seen: list[int] = []
    count = replay(journal, engine, 41, to_seq=90, on_record=lambda seq, rec, ev: seen.append(seq))
    journal.close()
    assert count == 50 and seen == list(range(41, 91))
    assert state_root(engine.state) == state_root(engine_after(stream, 90).state)


def test_replay_from_before_the_journal_start_is_a_gap(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path, start_seq=5)
    journal.append(5, encode_record(START_MS, AdvanceTime()))
    journal.flush()
    with pytest.raises(ReplayGap):
        replay(journal, Engine(CONFIG), 1)
    journal.close()


# ------------------------------------------------------------------------------ recovery


def check_recovery(
    base: Path, seed: int, count: int, snapshot_at: int, engine_kind: str = "reference"
) -> None:
    stream = command_stream(seed, count)
    write_journal(base / "journal", stream, segment_bytes=2048 + seed % 7 * 512)
    expected = state_root(engine_after(stream, count).state)
    if snapshot_at:
        SnapshotStore(base / "snapshots").save(snapshot_at, engine_after(stream, snapshot_at).state)
    recovered = recover(
        base / "journal", base / "snapshots", CONFIG, verify=True, engine_kind=engine_kind
    )
    try:
        assert recovered.engine.kind == engine_kind
        assert recovered.snapshot_seq == snapshot_at
        assert recovered.last_seq == count
        assert recovered.replayed == count - snapshot_at
        assert recovered.state_root == expected == recovered.engine.state_root()
        assert not recovered.report.truncated
    finally:
        recovered.journal.close()


ENGINES = ["reference", *(["native"] if native_available() else [])]


@pytest.mark.parametrize("engine_kind", ENGINES)
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_recover_from_snapshot_and_tail_matches_full_replay(
    tmp_path: Path, seed: int, engine_kind: str
) -> None:
    snapshot_at = random.Random(seed).randint(1, 599)
    check_recovery(tmp_path, seed, count=600, snapshot_at=snapshot_at, engine_kind=engine_kind)


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_recover_without_a_snapshot_and_at_the_snapshot(tmp_path: Path, engine_kind: str) -> None:
    check_recovery(tmp_path / "a", 21, count=300, snapshot_at=0, engine_kind=engine_kind)
    check_recovery(tmp_path / "b", 22, count=300, snapshot_at=300, engine_kind=engine_kind)


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_invalid_damaged_middle_segment_is_refused_by_either_engine(
    tmp_path: Path, engine_kind: str
) -> None:
    """Native recovery checks the segments the journal's open left to it (every one but the
    last): a flipped byte in an early segment, before the snapshot, is refused as the
    reference's recovery refuses it (the journal's own error, naming the segment)."""
    stream = command_stream(seed=23, count=400)
    write_journal(tmp_path / "journal", stream)
    SnapshotStore(tmp_path / "snapshots").save(300, engine_after(stream, 300).state)
    segments = sorted((tmp_path / "journal").glob("*.seg"))
    assert len(segments) > 3
    flip_byte(segments[1], 200)
    with pytest.raises(JournalCorruption) as caught:
        recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG, engine_kind=engine_kind)
    assert caught.value.segment == segments[1]
    FileJournal.open(tmp_path / "journal", verify_all_segments=False)[0].close()  # released


@pytest.mark.parametrize("engine_kind", ENGINES)
def test_a_snapshot_off_its_root_is_skipped_by_either_engine(
    tmp_path: Path, engine_kind: str
) -> None:
    """The native core loads snapshots without a reference State, and checks their roots as
    the reference's load does: a snapshot whose state is not the one its root was saved with
    is skipped, named, and recovery starts from the one before."""
    stream = command_stream(seed=27, count=300)
    write_journal(tmp_path / "journal", stream)
    store = SnapshotStore(tmp_path / "snapshots")
    store.save(100, engine_after(stream, 100).state)
    path = store.save(200, engine_after(stream, 200).state)
    state = restore(CONFIG, path.read_bytes()[HEADER_BYTES:])
    state.accounts[next(iter(state.accounts))].collateral += 1
    rewrite_snapshot(path, snapshot(state))  # digest fixed, the saved root kept
    recovered = recover(
        tmp_path / "journal", tmp_path / "snapshots", CONFIG, engine_kind=engine_kind
    )
    recovered.journal.close()
    assert recovered.engine.kind == engine_kind and recovered.snapshot_seq == 100
    (skipped,) = recovered.skipped_snapshots
    assert skipped.path == path and "differs from the saved" in skipped.reason
    assert recovered.state_root == state_root(engine_after(stream, 300).state)


@pytest.mark.skipif(not native_available(), reason="the native engine core is not built")
def test_a_journal_the_native_core_cannot_run_recovers_on_the_reference(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record holding a value beyond the native core's widths (a client id past 2^128,
    which the reference keeps) never stops a restart: recovery runs the reference, says so,
    and reaches the reference's root."""
    stream = command_stream(seed=24, count=200)
    stream.insert(150, (START_MS, PlaceOrder(TRADERS[2], 0, True, 590_000, 10, client_id=1 << 130)))
    write_journal(tmp_path / "journal", stream)
    SnapshotStore(tmp_path / "snapshots").save(100, engine_after(stream, 100).state)
    recovered = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG, engine_kind="native")
    recovered.journal.close()
    assert recovered.engine.kind == "reference"
    assert recovered.state_root == state_root(engine_after(stream, len(stream)).state)
    assert "cannot run this journal" in caplog.text


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), count=st.integers(8, 250), cut=st.floats(0, 1))
def test_recover_matches_full_replay_for_random_streams(seed: int, count: int, cut: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_recovery(Path(tmp), seed, count, snapshot_at=int(cut * count))


def test_recover_at_the_snapshot_itself_replays_nothing(tmp_path: Path) -> None:
    check_recovery(tmp_path, seed=14, count=100, snapshot_at=100)


def test_recover_an_empty_venue(tmp_path: Path) -> None:
    recovered = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG, verify=True)
    try:
        assert (recovered.snapshot_seq, recovered.last_seq, recovered.replayed) == (0, 0, 0)
        assert recovered.state_root == state_root(Engine(CONFIG).state)
    finally:
        recovered.journal.close()


def test_recover_cuts_a_torn_tail_after_the_snapshot(tmp_path: Path) -> None:
    stream = command_stream(seed=15, count=300)
    write_journal(tmp_path / "journal", stream)
    SnapshotStore(tmp_path / "snapshots").save(200, engine_after(stream, 200).state)
    last_segment = sorted((tmp_path / "journal").glob("*.seg"))[-1]
    data = last_segment.read_bytes()
    last_segment.write_bytes(data[:-5])  # the last record's write was cut short
    recovered = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG, verify=True)
    try:
        assert recovered.report.truncated
        assert recovered.report.truncated_segment == last_segment
        assert (recovered.snapshot_seq, recovered.last_seq) == (200, 299)
        assert recovered.replayed == 99
        assert recovered.state_root == state_root(engine_after(stream, 299).state)
        # the recovered journal takes the next record where the torn one was
        recovered.journal.append(300, encode_record(*stream[299]))
        recovered.journal.flush()
    finally:
        recovered.journal.close()
    again = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG)
    again.journal.close()
    assert again.state_root == state_root(engine_after(stream, 300).state)


def test_invalid_journal_behind_a_snapshot_is_refused_unless_the_loss_is_accepted(
    tmp_path: Path,
) -> None:
    # A snapshot at 120 proves records up to 120 were durable: a journal ending at 100 lost
    # acknowledged records, and recovery must not quietly start from 100.
    stream = command_stream(seed=16, count=120)
    write_journal(tmp_path / "journal", stream[:100])
    store = SnapshotStore(tmp_path / "snapshots")
    store.save(50, engine_after(stream, 50).state)
    store.save(120, engine_after(stream, 120).state)
    with pytest.raises(JournalLoss) as caught:
        recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG)
    assert caught.value.last_seq == 100 and caught.value.snapshot_seq == 120
    assert caught.value.snapshot.name == snapshot_file_name(120)
    assert "101..120" in str(caught.value) and "\n" not in str(caught.value)

    recovered = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG, accept_loss=True)
    recovered.journal.close()
    assert recovered.snapshot_seq == 50
    assert recovered.state_root == state_root(engine_after(stream, 100).state)
    # the snapshot of the lost timeline is set aside: the journal grows past 120 again
    assert [seq for seq, _ in store.paths()] == [50]
    assert (tmp_path / "snapshots" / ("lost-" + snapshot_file_name(120))).exists()


def test_invalid_damaged_last_record_below_a_snapshot_is_refused_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    stream = command_stream(seed=18, count=60)
    write_journal(tmp_path / "journal", stream)
    SnapshotStore(tmp_path / "snapshots").save(60, engine_after(stream, 60).state)
    segment = sorted((tmp_path / "journal").glob("*.seg"))[-1]
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF  # the last record's payload: a checksum mismatch at the tail
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalLoss) as caught:
        recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG)
    assert caught.value.segment == segment and caught.value.last_seq == 59
    assert segment.read_bytes() == bytes(data)  # nothing cut: the evidence stays
    assert f"ends at byte {caught.value.offset}" in str(caught.value)


def test_verify_detects_a_snapshot_that_disagrees_with_the_journal(tmp_path: Path) -> None:
    stream = command_stream(seed=17, count=250)
    write_journal(tmp_path / "journal", stream)
    path = SnapshotStore(tmp_path / "snapshots").save(150, engine_after(stream, 150).state)
    # A self-consistent snapshot of a diverged state: payload, digest and root all agree.
    state = restore(CONFIG, path.read_bytes()[HEADER_BYTES:])
    state.accounts[TRADERS[0]].collateral += 1_000_000
    rewrite_snapshot(path, snapshot(state), root=state_root(state))

    trusting = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG)
    trusting.journal.close()
    expected = state_root(engine_after(stream, 250).state)
    assert trusting.snapshot_seq == 150 and trusting.state_root != expected

    with pytest.raises(RecoveryMismatch) as caught:
        recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG, verify=True)
    assert caught.value.snapshot_seq == 150
    assert caught.value.replayed_root == expected
    assert caught.value.recovered_root == trusting.state_root
    # the journal was released: it opens again
    FileJournal.open(tmp_path / "journal")[0].close()


# ------------------------------------------------------------------------------ executor


def sequenced(stream: list[tuple[int, Command]], first_seq: int = 1) -> list[Sequenced]:
    return [
        Sequenced(seq, timestamp, command, b"", b"")
        for seq, (timestamp, command) in enumerate(stream, start=first_seq)
    ]


def test_executor_applies_in_order_and_snapshots_every_n(tmp_path: Path) -> None:
    stream = command_stream(seed=18, count=230)
    engine = Engine(CONFIG)
    store = SnapshotStore(tmp_path, keep=10)
    seen: list[tuple[int, list[Event]]] = []

    def on_events(record: Sequenced, events: list[Event]) -> None:
        seen.append((record.seq, events))

    executor = EngineExecutor(engine, store, every=50, on_events=on_events)
    records = sequenced(stream)
    for start in range(0, 230, 37):
        executor(records[start : start + 37])
    assert executor.last_seq == 230
    assert [seq for seq, _ in seen] == list(range(1, 231))
    assert [seq for seq, _ in store.paths()] == [50, 100, 150, 200]
    reference = Engine(CONFIG)
    for seq, (timestamp, command) in enumerate(stream, start=1):
        assert seen[seq - 1][1] == reference.apply(command, timestamp)
        if seq % 50 == 0:
            loaded = store.load(store.directory / snapshot_file_name(seq), CONFIG)
            assert state_root(loaded[1]) == state_root(reference.state)
    assert state_root(engine.state) == state_root(reference.state)


def test_executor_refuses_a_gap() -> None:
    records = sequenced(command_stream(seed=19, count=10))
    executor = EngineExecutor(Engine(CONFIG), None, every=5)
    executor(records[:4])
    with pytest.raises(ReplayGap):
        executor(records[5:])
    assert executor.last_seq == 4


def test_executor_resumes_after_recovery(tmp_path: Path) -> None:
    stream = command_stream(seed=20, count=180)
    write_journal(tmp_path / "journal", stream[:100])
    store = SnapshotStore(tmp_path / "snapshots")
    EngineExecutor(Engine(CONFIG), store, every=40)(sequenced(stream[:100]))
    recovered = recover(tmp_path / "journal", tmp_path / "snapshots", CONFIG)
    recovered.journal.close()
    assert recovered.snapshot_seq == 80
    executor = EngineExecutor(recovered.engine, store, every=40, last_seq=recovered.last_seq)
    executor(sequenced(stream[100:], first_seq=101))
    assert [seq for seq, _ in store.paths()] == [80, 120, 160]
    assert state_root(recovered.engine.state) == state_root(engine_after(stream, 180).state)


def test_executor_survives_a_failed_snapshot(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    executor = EngineExecutor(Engine(CONFIG), SnapshotStore(blocker), every=3)
    executor(sequenced(command_stream(seed=21, count=7)))
    assert executor.last_seq == 7
    assert executor.snapshot_failures == 2
