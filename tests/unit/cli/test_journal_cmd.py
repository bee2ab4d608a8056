"""``asyncdex journal inspect|verify|replay`` on real journal and snapshot directories."""

from __future__ import annotations

import argparse
import random
import re
import struct
from pathlib import Path

import pytest

from asyncdex.cli.committee_config import COMMITTEE_TABLE
from asyncdex.cli.demo import PUBLISHERS, demo_config
from asyncdex.cli.journal_cmd import JournalReader, add_parser
from asyncdex.cli.node_cmd import NODE_TABLE, SETTLEMENT_TABLE, VENUE_TABLE, load_node_file
from asyncdex.engine.native import native_available
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    PublishOraclePrice,
    Signed,
    TimeInForce,
)
from asyncdex.sequencer.journal import SEGMENT_HEADER_BYTES, FileJournal
from asyncdex.sequencer.records import encode_record
from asyncdex.sequencer.recovery import JournalLoss, SnapshotStore, open_journal
from asyncdex.types.config_file import NODE_TABLES, load_engine_config
from asyncdex.types.market import EngineConfig

VENUE_TOML = Path(__file__).resolve().parents[3] / "examples" / "venue.toml"
NODE_TOML = Path(__file__).resolve().parents[3] / "examples" / "node.toml"
CONFIG = demo_config()
TRADERS = tuple(bytes([0x10 + i]) * 20 for i in range(4))
START_MS = 1_767_225_600_000
RECORD_HEADER = struct.Struct("<IIQ")
MIDS = (600_000, 300_000)  # BTC $60,000 (tick 10), ETH $3,000


def stream(count: int, seed: int = 1) -> list[tuple[int, Command]]:
    rng = random.Random(seed)
    now = START_MS
    out: list[tuple[int, Command]] = [(now, Deposit(t, 10**12, i)) for i, t in enumerate(TRADERS)]
    out += [(now, PublishOraclePrice(PUBLISHERS[0], m, mid)) for m, mid in enumerate(MIDS)]
    nonce = START_MS
    while len(out) < count:
        now += rng.choice((0, 1, 20))
        market = rng.randrange(2)
        is_buy = rng.random() < 0.5
        step = CONFIG.markets[market].tick
        price = MIDS[market] + rng.randint(-5, 5) * step
        size = rng.randint(1, 20) * CONFIG.markets[market].lot
        trader = rng.choice(TRADERS)
        place = PlaceOrder(trader, market, is_buy, price, size)
        command: Command = place
        if rng.random() < 0.3:
            nonce += 1
            command = Signed(trader, nonce, 0, place._replace(tif=TimeInForce.IOC))
        elif rng.random() < 0.1:
            command = CancelOrder(trader, market, rng.randint(1, len(out)))
        out.append((now, command))
    return out


def write_journal(directory: Path, commands: list[tuple[int, Command]]) -> None:
    journal, _ = FileJournal.open(directory, segment_bytes=8192)
    for seq, (timestamp, command) in enumerate(commands, start=1):
        journal.append(seq, encode_record(timestamp, command, b"\x05" * 65))
    journal.flush()
    journal.close()


def root_after(commands: list[tuple[int, Command]], config: EngineConfig = CONFIG) -> bytes:
    engine = Engine(config)
    for timestamp, command in commands:
        engine.apply(command, timestamp)
    return state_root(engine.state)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="asyncdex")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    status: int = args.func(args)
    return status


def record_offsets(segment: Path) -> list[tuple[int, int]]:
    """(offset, seq) of each record, parsed independently of the code under test."""
    data = segment.read_bytes()
    found = []
    pos = SEGMENT_HEADER_BYTES
    while pos + RECORD_HEADER.size <= len(data):
        _crc, length, seq = RECORD_HEADER.unpack_from(data, pos)
        found.append((pos, seq))
        pos += RECORD_HEADER.size + length
    return found


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "journal"
    write_journal(directory, stream(400))
    assert len(list(directory.glob("*.seg"))) >= 3
    return directory


def test_inspect_shows_extent_and_decoded_records(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("journal", "inspect", str(journal_dir), "--show", "3", "--from", "5") == 0
    out = capsys.readouterr().out
    for segment in sorted(journal_dir.glob("*.seg")):
        assert segment.name in out
    assert "records: 400 (seqs 1..400)" in out
    shown = re.findall(r"^  seq (\d+)  2026-01-01T", out, flags=re.MULTILINE)
    assert shown == ["5", "6", "7"]
    assert "PlaceOrder(account=0x" in out or "Signed(signer=0x" in out
    assert "sig 0x0505" in out


def test_inspect_of_the_first_records(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("journal", "inspect", str(journal_dir), "--show", "2") == 0
    out = capsys.readouterr().out
    assert "seq 1  2026-01-01T00:00:00.000Z  Deposit(account=0x1010" in out
    assert "amount=1000000000000, l1_index=0)" in out


def test_verify_passes_a_sound_journal(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("journal", "verify", str(journal_dir)) == 0
    assert "journal ok: 400 records, last seq 400" in capsys.readouterr().out


@pytest.mark.parametrize("which", ["first", "last"])
def test_verify_names_segment_and_offset_of_a_corrupt_middle_record(
    journal_dir: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    segments = sorted(journal_dir.glob("*.seg"))
    segment = segments[0] if which == "first" else segments[-1]
    offsets = record_offsets(segment)
    offset, _seq = offsets[len(offsets) // 2]
    flip_byte(segment, offset + RECORD_HEADER.size + 3)  # inside the payload
    before = segment.read_bytes()
    assert run("journal", "verify", str(journal_dir)) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED: {segment.name} at byte {offset}: checksum mismatch" in out
    assert segment.read_bytes() == before  # read-only


def test_verify_reports_a_record_that_does_not_decode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, _ = FileJournal.open(tmp_path)
    journal.append(1, encode_record(START_MS, Deposit(TRADERS[0], 5, 0)))
    journal.append(2, b"\x93\x01\x92\x63\x01\xc4\x00")  # [1, [99, 1], b""]: unknown tag
    journal.append(3, encode_record(START_MS, Deposit(TRADERS[0], 5, 1)))
    journal.flush()
    journal.close()
    offset = record_offsets(next(tmp_path.glob("*.seg")))[1][0]
    assert run("journal", "verify", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert f"at byte {offset}: record seq 2 does not decode" in out


def test_verify_accepts_a_torn_tail_and_leaves_it(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = sorted(journal_dir.glob("*.seg"))[-1]
    offset, seq = record_offsets(last)[-1]
    last.write_bytes(last.read_bytes()[:-4])
    size = last.stat().st_size
    assert run("journal", "verify", str(journal_dir)) == 0
    out = capsys.readouterr().out
    assert f"last seq {seq - 1}" in out
    assert f"torn tail in {last.name} at byte {offset} (incomplete payload" in out
    assert last.stat().st_size == size


def test_tools_work_beside_a_live_writer(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, _ = FileJournal.open(journal_dir)  # holds the directory's writer lock
    try:
        assert run("journal", "verify", str(journal_dir)) == 0
        assert run("journal", "replay", str(journal_dir), "--config", str(VENUE_TOML)) == 0
    finally:
        journal.close()


def test_replay_prints_rate_and_the_root_of_a_full_replay(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("journal", "replay", str(journal_dir), "--config", str(VENUE_TOML)) == 0
    out = capsys.readouterr().out
    assert re.search(r"replayed 400 records \(seqs 1\.\.400\) in [\d.]+ s: [\d,]+ records/s", out)
    assert f"state root after seq 400: 0x{root_after(stream(400)).hex()}" in out


@pytest.mark.skipif(not native_available(), reason="the native engine core is not built")
def test_replay_with_the_native_core_gives_the_same_root(
    journal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = stream(400)
    argv = ["journal", "replay", str(journal_dir), "--config", str(VENUE_TOML)]
    assert run(*argv, "--engine", "native") == 0
    out = capsys.readouterr().out
    assert "engine: native" in out
    assert "replayed 400 records (seqs 1..400)" in out
    assert f"state root after seq 400: 0x{root_after(commands).hex()}" in out
    # from a reference snapshot, loaded into the native core
    store = SnapshotStore(tmp_path / "snapshots")
    engine = Engine(CONFIG)
    for timestamp, command in commands[:150]:
        engine.apply(command, timestamp)
    store.save(150, engine.state)
    assert run(*argv, "--engine", "native", "--snapshots", str(tmp_path / "snapshots")) == 0
    out = capsys.readouterr().out
    assert "starting from snapshot at seq 150" in out and "engine: native" in out
    assert f"state root after seq 400: 0x{root_after(commands).hex()}" in out


@pytest.mark.skipif(not native_available(), reason="the native engine core is not built")
def test_native_replay_meets_torn_tails_and_damage_as_the_reference_does(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The native fast path checks framing, checksums and seqs; on anything unclean the exact
    reader takes over, so both engines report the same outcome."""
    argv = ["journal", "replay", str(journal_dir), "--config", str(VENUE_TOML)]
    segments = sorted(journal_dir.glob("*.seg"))
    last = segments[-1]
    _, seq = record_offsets(last)[-1]
    last.write_bytes(last.read_bytes()[:-4])  # a torn tail: the last record is cut
    outputs = []
    for engine in ("reference", "native"):
        assert run(*argv, "--engine", engine) == 0
        outputs.append(capsys.readouterr().out.replace(f"engine: {engine}", ""))
    root = root_after(stream(400)[: seq - 1])
    assert f"state root after seq {seq - 1}: 0x{root.hex()}" in outputs[1]
    reference_out, native_out = (re.sub(r"in [\d.]+ s: [\d,]+", "", out) for out in outputs)
    assert native_out == reference_out  # the same torn tail reported, the same root
    offset, _ = record_offsets(segments[0])[3]
    flip_byte(segments[0], offset + 20)  # damage before the end: refused by both
    assert run(*argv) == run(*argv, "--engine", "native") != 0
    out = capsys.readouterr().out
    assert out.count("DAMAGED") == 2


def test_replay_to_a_seq(journal_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run("journal", "replay", str(journal_dir), "--config", str(VENUE_TOML), "--to", "123") == 0
    )
    out = capsys.readouterr().out
    assert f"state root after seq 123: 0x{root_after(stream(400)[:123]).hex()}" in out


def test_replay_from_the_newest_snapshot(
    journal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = stream(400)
    store = SnapshotStore(tmp_path / "snapshots")
    for seq in (100, 250):
        engine = Engine(CONFIG)
        for timestamp, command in commands[:seq]:
            engine.apply(command, timestamp)
        store.save(seq, engine.state)
    newest = tmp_path / "snapshots" / "snapshot-00000000000000000250.bin"
    flip_byte(newest, newest.stat().st_size - 1)  # damaged: replay falls back to 100
    argv = ["journal", "replay", str(journal_dir), "--config", str(VENUE_TOML)]
    assert run(*argv, "--snapshots", str(tmp_path / "snapshots")) == 0
    out = capsys.readouterr().out
    assert "snapshot-00000000000000000250.bin skipped: payload checksum mismatch" in out
    assert "starting from snapshot at seq 100" in out
    assert "replayed 300 records (seqs 101..400)" in out
    assert f"state root after seq 400: 0x{root_after(commands).hex()}" in out


def test_verify_checks_snapshots(
    journal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshots = tmp_path / "snapshots"
    engine = Engine(CONFIG)
    for timestamp, command in stream(400)[:200]:
        engine.apply(command, timestamp)
    store = SnapshotStore(snapshots)
    store.save(200, engine.state)
    argv = ["journal", "verify", str(journal_dir), "--snapshots", str(snapshots)]
    assert run(*argv) == 0
    assert "snapshot-00000000000000000200.bin: seq 200, checksums ok" in capsys.readouterr().out
    assert run(*argv, "--config", str(VENUE_TOML)) == 0
    assert "restores to its saved root" in capsys.readouterr().out

    store.save(500, engine.state)  # claims a seq the journal does not have
    assert run(*argv) == 1
    assert (
        "snapshot-00000000000000000500.bin: INVALID: seq 500 is beyond" in capsys.readouterr().out
    )
    (snapshots / "snapshot-00000000000000000500.bin").unlink()

    path = snapshots / "snapshot-00000000000000000200.bin"
    flip_byte(path, 30)
    assert run(*argv) == 1
    assert "snapshot-00000000000000000200.bin: INVALID: header checksum mismatch" in (
        capsys.readouterr().out
    )


def test_replay_and_verify_take_the_node_config_file(
    journal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the file `asyncdex node --config` runs with, [node], [settlement] and all
    config = load_node_file(NODE_TOML)[0]
    commands = stream(400)
    argv = ["journal", "replay", str(journal_dir), "--config", str(NODE_TOML)]
    assert run(*argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"state root after seq 400: 0x{root_after(commands, config).hex()}" in out

    engine = Engine(config)
    for timestamp, command in commands[:200]:
        engine.apply(command, timestamp)
    SnapshotStore(tmp_path / "snapshots").save(200, engine.state)
    assert run(*argv, "--snapshots", str(tmp_path / "snapshots"), "--to", "300") == 0
    out = capsys.readouterr().out
    assert "starting from snapshot at seq 200" in out
    assert f"state root after seq 300: 0x{root_after(commands[:300], config).hex()}" in out
    verify = ["journal", "verify", str(journal_dir), "--snapshots", str(tmp_path / "snapshots")]
    assert run(*verify, "--config", str(NODE_TOML)) == 0, capsys.readouterr().err
    assert "restores to its saved root" in capsys.readouterr().out


def test_the_tables_the_journal_tools_skip_are_the_nodes() -> None:
    assert set(NODE_TABLES) == {NODE_TABLE, SETTLEMENT_TABLE, VENUE_TABLE, COMMITTEE_TABLE}


def test_a_node_config_file_is_still_read_strictly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_journal(tmp_path / "journal", stream(10))
    typo = tmp_path / "node.toml"
    text = NODE_TOML.read_text()
    assert "\nmax_open_orders_per_account =" in text  # a top-level key, before any table
    typo.write_text(text.replace("\nmax_open_orders_per_account =", "\nmax_open_orders =", 1))
    assert run("journal", "replay", str(tmp_path / "journal"), "--config", str(typo)) == 2
    assert "unknown key max_open_orders " in capsys.readouterr().err


def test_bad_usage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('oracle_publishers = []\n[[markets]]\nsymbol = "X"\nticks = 1\n')
    write_journal(tmp_path / "journal", stream(10))
    assert run("journal", "replay", str(tmp_path / "journal"), "--config", str(bad)) == 2
    assert "unknown key ticks" in capsys.readouterr().err
    assert run("journal", "verify", str(tmp_path / "absent")) == 2
    with pytest.raises(SystemExit):
        run("journal", "replay", str(tmp_path / "journal"))  # --config is required


def test_reader_reads_what_the_journal_wrote(journal_dir: Path) -> None:
    journal, _ = FileJournal.open(journal_dir)
    try:
        expected = list(journal.read())
    finally:
        journal.close()
    reader = JournalReader(journal_dir)
    assert list(reader.read()) == expected
    assert list(reader.read(377)) == expected[376:]
    assert reader.last_seq() == 400


def test_reader_refuses_a_gap_between_segments(journal_dir: Path) -> None:
    middle = sorted(journal_dir.glob("*.seg"))[1]
    middle.unlink()
    with pytest.raises(Exception, match="segment starts at seq"):
        list(JournalReader(journal_dir).read())


def test_verify_reports_a_journal_below_a_snapshot_as_the_node_does(
    journal_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A damaged last record is a torn tail the node would cut, but a snapshot at the last
    # seq proves it was durable: the node refuses to start, and verify must say so too.
    last_seq = JournalReader(journal_dir).last_seq()
    engine = Engine(CONFIG)
    for timestamp, command in stream(last_seq):
        engine.apply(command, timestamp)
    snapshots = tmp_path / "snapshots"
    SnapshotStore(snapshots).save(last_seq, engine.state)
    segment = sorted(journal_dir.glob("*.seg"))[-1]
    flip_byte(segment, segment.stat().st_size - 1)
    with pytest.raises(JournalLoss) as refused:
        open_journal(journal_dir, snapshots)
    argv = ["journal", "verify", str(journal_dir), "--snapshots", str(snapshots)]
    assert run(*argv) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED: {refused.value} (restore them" in out
    assert f"records {last_seq}..{last_seq} are missing" in out
    assert run("journal", "verify", str(journal_dir)) == 0  # no snapshots: only a torn tail


def test_a_committee_share_is_paid_to_the_committee_tables_members(tmp_path: Path) -> None:
    """The journal tools and the node read one engine config from a member's file: the
    members of a committee share are those of its [committee] table, in index order."""
    members = [f"0x{index + 1:040x}" for index in range(4)]
    seats = ", ".join(
        f'{{ address = "{address}", consensus = "127.0.0.1:{9100 + i}" }}'
        for i, address in enumerate(members)
    )
    text = NODE_TOML.read_text()
    member_file = tmp_path / "member.toml"
    member_file.write_text(
        "committee_fee_share_ppm = 200_000\n"
        + text
        + f'\n[committee]\nindex = 0\nkey_file = "member.key"\nmembers = [{seats}]\n'
    )
    expected = tuple(bytes.fromhex(address[2:]) for address in members)
    config = load_engine_config(member_file)
    assert config.committee_fee_share_ppm == 200_000 and config.committee_members == expected
    assert load_node_file(member_file)[0] == config
    # named at the top level as well, they must be the same list
    member_file.write_text(
        f'committee_fee_share_ppm = 200_000\ncommittee_members = ["{members[1]}"]\n'
        + text
        + f'\n[committee]\nindex = 0\nkey_file = "member.key"\nmembers = [{seats}]\n'
    )
    with pytest.raises(ValueError, match="differs from the \\[committee\\] table"):
        load_engine_config(member_file)
