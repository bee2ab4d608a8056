"""``asyncdex journal``: inspect, verify and replay a journal directory.

Invariants:
- Read-only: these tools never take the journal's writer lock, never cut a torn tail and
  never write to the journal or snapshot directories, so they are safe on a live node's
  directory and on a copy taken for forensics. (``FileJournal.open`` repairs as it opens,
  which is right for a node and wrong for a tool.)
- They check what recovery checks: segment headers, every record's CRC-32, seqs that go up
  by one across segments, and (``verify``) that every record decodes with the strict
  decoder. Damage is reported with its segment file and byte offset and exit status 1; a
  torn tail at the end of the last segment, which the next open cuts, is reported but is
  not damage (or, on a live journal, it is a write in progress).
- ``verify --snapshots`` also reports, as damage and with the node's own message, a journal
  that ends below the newest valid snapshot's seq: acknowledged records are missing and the
  node refuses to start on it (``asyncdex.sequencer.recovery.open_journal``).
- Exit status: 0 success, 1 damage found, 2 bad usage or an unloadable config.

The record format read here is the one documented in ``asyncdex.sequencer.journal``.
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import os
import re
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from asyncdex.engine.build import ENGINE_KINDS, EngineUnavailable, choose_engine
from asyncdex.engine.native import (
    NativeEngine,
    NativeUnsupported,
    native_available,
    native_unavailable_reason,
)
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.codec import CodecError
from asyncdex.messages.commands import Command, Signed
from asyncdex.sequencer.journal import (
    MAX_PAYLOAD_BYTES,
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    SEGMENT_MAGIC,
    JournalBehind,
    JournalCorruption,
)
from asyncdex.sequencer.records import decode_record
from asyncdex.sequencer.recovery import (
    JournalLoss,
    ReplayGap,
    SnapshotInvalid,
    SnapshotStore,
    proven_seq,
    read_snapshot_header,
    replay,
    replay_segments_natively,
)
from asyncdex.types.config_file import ConfigFileError, load_engine_config
from asyncdex.types.market import EngineConfig

__all__ = [
    "JournalReader",
    "ScannedRecord",
    "SegmentSummary",
    "add_parser",
    "inspect_journal",
    "replay_journal",
    "verify_journal",
]

EXIT_OK = 0
EXIT_DAMAGED = 1
EXIT_USAGE = 2

_SEGMENT_HEADER = struct.Struct("<8sQ")
_RECORD_HEADER = struct.Struct("<IIQ")
_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")


class ScannedRecord(NamedTuple):
    segment: Path
    offset: int
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class TornTail:
    segment: Path
    offset: int
    bytes: int
    reason: str


@dataclass(slots=True)
class SegmentSummary:
    path: Path
    first_seq: int
    records: int = 0
    bytes: int = 0

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.records - 1


class JournalReader:
    """A read-only view of a journal directory (see the module docstring).

    ``scan`` yields every record with its place on disk and raises ``JournalCorruption``
    on damage; it stops at a torn tail and records it in ``torn_tail``. ``read`` is the
    ``(seq, payload)`` form that ``asyncdex.sequencer.recovery.replay`` takes.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"no journal directory {self.directory}")
        self.segments: list[tuple[int, Path]] = sorted(
            (int(match.group(1)), Path(entry.path))
            for entry in os.scandir(self.directory)
            if (match := _SEGMENT_NAME.match(entry.name)) is not None
        )
        self.torn_tail: TornTail | None = None
        self.summaries: list[SegmentSummary] = []

    @property
    def first_seq(self) -> int | None:
        return self.segments[0][0] if self.segments else None

    def last_seq(self) -> int:
        """The last complete record's seq, from a scan of the last segment only (0: none)."""
        if not self.segments:
            return 0
        last = 0
        for index in range(len(self.segments) - 1, -1, -1):
            first, _ = self.segments[index]
            for record in self.scan(first, start_segment=index):
                last = record.seq
            if last:
                return last
        return last

    def read(self, from_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        for record in self.scan(from_seq):
            yield record.seq, record.payload

    def scan(
        self, from_seq: int | None = None, start_segment: int | None = None
    ) -> Iterator[ScannedRecord]:
        """Records with seq >= ``from_seq``, in order, each checked as recovery checks it.

        Starts at the segment holding ``from_seq`` (all earlier ones are taken on trust:
        ``verify`` scans from the start).
        """
        self.torn_tail = None
        self.summaries = []
        segments = self.segments
        if not segments:
            return
        if start_segment is None:
            start_segment = 0
            if from_seq is not None:
                firsts = [first for first, _ in segments]
                start_segment = max(0, bisect.bisect_right(firsts, from_seq) - 1)
        expected = segments[start_segment][0]
        for index in range(start_segment, len(segments)):
            first, path = segments[index]
            is_last = index == len(segments) - 1
            if first != expected:
                raise JournalCorruption(
                    path, 0, f"segment starts at seq {first}, previous ended at {expected - 1}"
                )
            summary = SegmentSummary(path, first)
            self.summaries.append(summary)
            data = path.read_bytes()
            summary.bytes = len(data)
            for record in self._scan_segment(path, data, first, is_last):
                summary.records += 1
                if from_seq is None or record.seq >= from_seq:
                    yield record
            expected = summary.last_seq + 1
            if self.torn_tail is not None:
                return

    def _scan_segment(
        self, path: Path, data: bytes, first_seq: int, is_last: bool
    ) -> Iterator[ScannedRecord]:
        size = len(data)
        if size < SEGMENT_HEADER_BYTES:
            if size == 0 and is_last:
                return  # created, header not written yet: nothing was ever durable here
            self._fault(path, data, 0, first_seq - 1, "incomplete segment header", is_last)
            return
        magic, header_seq = _SEGMENT_HEADER.unpack_from(data, 0)
        if magic != SEGMENT_MAGIC or header_seq != first_seq:
            self._fault(path, data, 0, first_seq - 1, "bad segment header", is_last)
            return
        view = memoryview(data)
        unpack = _RECORD_HEADER.unpack_from
        crc32 = zlib.crc32
        pos = SEGMENT_HEADER_BYTES
        expected = first_seq
        while pos < size:
            fault = None
            if pos + RECORD_HEADER_BYTES > size:
                fault = "incomplete record header"
            else:
                crc, length, seq = unpack(data, pos)
                end = pos + RECORD_HEADER_BYTES + length
                if length > MAX_PAYLOAD_BYTES:
                    fault = f"record length {length} out of range"
                elif end > size:
                    fault = "incomplete payload"
                elif crc32(view[pos + 4 : end]) != crc:
                    fault = "checksum mismatch"
                elif seq != expected:
                    # A good checksum with a wrong seq is no torn write: always damage.
                    raise JournalCorruption(path, pos, f"seq {seq} where {expected} expected")
            if fault is not None:
                self._fault(path, data, pos, expected - 1, fault, is_last)
                return
            yield ScannedRecord(path, pos, seq, data[pos + RECORD_HEADER_BYTES : end])
            expected += 1
            pos = end

    def _fault(
        self, path: Path, data: bytes, offset: int, last_good: int, reason: str, is_last: bool
    ) -> None:
        """A torn tail if it ends the journal with nothing valid after it; else damage."""
        if not is_last:
            raise JournalCorruption(path, offset, reason)
        follower = _find_valid_record(data, offset + 1, last_good)
        if follower is not None:
            raise JournalCorruption(
                path, offset, f"{reason}, but a valid record follows at byte {follower}"
            )
        self.torn_tail = TornTail(path, offset, len(data) - offset, reason)


def _find_valid_record(data: bytes, start: int, after_seq: int) -> int | None:
    """Offset of a checksum-valid record with seq > ``after_seq`` at or after ``start``.

    Every offset is tried because a corrupt length hides where the next record begins.
    """
    size = len(data)
    view = memoryview(data)
    max_seq = after_seq + 1 + max(0, size - start) // RECORD_HEADER_BYTES
    for pos in range(start, size - RECORD_HEADER_BYTES + 1):
        crc, length, seq = _RECORD_HEADER.unpack_from(data, pos)
        if seq <= after_seq or seq > max_seq:
            continue
        end = pos + RECORD_HEADER_BYTES + length
        if end <= size and zlib.crc32(view[pos + 4 : end]) == crc:
            return pos
    return None


# ---------------------------------------------------------------------------------- output


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def format_command(command: Command) -> str:
    if type(command) is Signed:
        inner = format_command(command.command)
        return (
            f"Signed(signer={_hex(command.signer)}, nonce={command.nonce}, "
            f"expires_after={command.expires_after}, {inner})"
        )
    fields = ", ".join(
        f"{name}={_hex(value) if isinstance(value, bytes) else repr(value)}"
        for name, value in zip(command._fields, command, strict=True)
    )
    return f"{type(command).__name__}({fields})"


def format_time(timestamp_ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _describe_torn(torn: TornTail) -> str:
    return (
        f"torn tail in {torn.segment.name} at byte {torn.offset} ({torn.reason}, "
        f"{torn.bytes} bytes): the next open cuts it, or a write is in progress"
    )


# ---------------------------------------------------------------------------------- inspect


def inspect_journal(
    directory: Path, show: int = 0, from_seq: int | None = None, out: TextIO | None = None
) -> int:
    """Print segments, seq range, record count and size, and ``show`` decoded records."""
    out = sys.stdout if out is None else out  # resolved late: callers may swap stdout
    reader = JournalReader(directory)
    shown: list[ScannedRecord] = []
    count = 0
    first = last = None
    try:
        for record in reader.scan():
            count += 1
            if first is None:
                first = record.seq
            last = record.seq
            if len(shown) < show and (from_seq is None or record.seq >= from_seq):
                shown.append(record)
    except JournalCorruption as exc:
        _print_extent(reader, count, first, last, out)
        print(f"DAMAGED: {exc.segment.name} at byte {exc.offset}: {exc.reason}", file=out)
        return EXIT_DAMAGED
    _print_extent(reader, count, first, last, out)
    if shown:
        print(f"records from seq {shown[0].seq}:", file=out)
        for record in shown:
            print(f"  {_describe_record(record)}", file=out)
    return EXIT_OK


def _print_extent(
    reader: JournalReader, count: int, first: int | None, last: int | None, out: TextIO
) -> None:
    total_bytes = sum(summary.bytes for summary in reader.summaries)
    print(f"journal {reader.directory}", file=out)
    print(f"  segments: {len(reader.segments)}", file=out)
    for summary in reader.summaries:
        seqs = f"seqs {summary.first_seq}..{summary.last_seq}" if summary.records else "empty"
        print(
            f"    {summary.path.name}  {seqs}  {summary.records:,} records  "
            f"{summary.bytes:,} bytes",
            file=out,
        )
    extent = f"{first}..{last}" if first is not None else "none"
    print(f"  records: {count:,} (seqs {extent}), {total_bytes:,} bytes", file=out)
    if reader.torn_tail is not None:
        print(f"  {_describe_torn(reader.torn_tail)}", file=out)


def _describe_record(record: ScannedRecord) -> str:
    try:
        decoded = decode_record(record.payload)
    except CodecError as exc:
        return f"seq {record.seq}: does not decode ({exc})"
    signature = f"  sig {_hex(decoded.signature)}" if decoded.signature else ""
    return (
        f"seq {record.seq}  {format_time(decoded.timestamp)}  "
        f"{format_command(decoded.command)}{signature}"
    )


# ----------------------------------------------------------------------------------- verify


def verify_journal(
    directory: Path,
    snapshot_dir: Path | None = None,
    config: EngineConfig | None = None,
    out: TextIO | None = None,
) -> int:
    """Check every record (checksum, seq, strict decode) and optionally every snapshot.

    Snapshots: header and payload checksums always; with a config, also that each restores
    under it to the state root it was saved with.
    """
    out = sys.stdout if out is None else out  # resolved late: callers may swap stdout
    reader = JournalReader(directory)
    count = 0
    last = 0
    try:
        for record in reader.scan():
            try:
                decode_record(record.payload)
            except CodecError as exc:
                print(
                    f"DAMAGED: {record.segment.name} at byte {record.offset}: record seq "
                    f"{record.seq} does not decode: {exc}",
                    file=out,
                )
                return EXIT_DAMAGED
            count += 1
            last = record.seq
    except JournalCorruption as exc:
        print(f"DAMAGED: {exc.segment.name} at byte {exc.offset}: {exc.reason}", file=out)
        return EXIT_DAMAGED
    segments = len(reader.segments)
    print(f"journal ok: {count:,} records, last seq {last}, {segments} segment(s)", file=out)
    if reader.torn_tail is not None:
        print(f"  {_describe_torn(reader.torn_tail)}", file=out)
    status = EXIT_OK
    if snapshot_dir is not None:
        loss = _journal_loss(reader, last, snapshot_dir)
        if loss is not None:
            # The message the node gives when it refuses to start on this journal.
            print(
                f"DAMAGED: {loss} (restore them, or start the node with --accept-journal-loss)",
                file=out,
            )
            status = EXIT_DAMAGED
        status = max(status, _verify_snapshots(snapshot_dir, config, last, out))
    return status


def _journal_loss(reader: JournalReader, last: int, snapshot_dir: Path) -> JournalLoss | None:
    """What recovery would refuse (:func:`~asyncdex.sequencer.recovery.open_journal`): the
    journal ends below the newest valid snapshot's seq. None when it does not."""
    required, snapshot = proven_seq(snapshot_dir)
    if snapshot is None or last >= required:
        return None
    if not reader.segments:
        return JournalLoss(JournalBehind(None, 0, last, required), snapshot)
    segment = reader.segments[-1][1]
    torn = reader.torn_tail
    end = torn.offset if torn is not None and torn.segment == segment else segment.stat().st_size
    return JournalLoss(JournalBehind(segment, end, last, required), snapshot)


def _verify_snapshots(
    snapshot_dir: Path, config: EngineConfig | None, journal_last: int, out: TextIO
) -> int:
    store = SnapshotStore(snapshot_dir)
    found = store.paths()
    if not found:
        print(f"snapshots: none in {snapshot_dir}", file=out)
        return EXIT_OK
    status = EXIT_OK
    for seq, path in found:
        try:
            if config is None:
                read_snapshot_header(path.read_bytes(), path)
                checked = "checksums ok (no --config: not restored)"
            else:
                store.load(path, config)
                checked = "restores to its saved root"
        except SnapshotInvalid as exc:
            print(f"snapshot {path.name}: INVALID: {exc.reason}", file=out)
            status = EXIT_DAMAGED
            continue
        if seq > journal_last:
            print(
                f"snapshot {path.name}: INVALID: seq {seq} is beyond the journal's last "
                f"seq {journal_last}",
                file=out,
            )
            status = EXIT_DAMAGED
            continue
        print(f"snapshot {path.name}: seq {seq}, {checked}", file=out)
    return status


# ----------------------------------------------------------------------------------- replay


@dataclass(frozen=True, slots=True)
class ReplayResult:
    snapshot_seq: int
    replayed: int
    last_seq: int
    seconds: float
    state_root: bytes

    @property
    def records_per_s(self) -> float:
        return self.replayed / self.seconds if self.seconds > 0 else 0.0


def replay_journal(
    directory: Path,
    config: EngineConfig,
    snapshot_dir: Path | None = None,
    to_seq: int | None = None,
    out: TextIO | None = None,
    engine_kind: str = "reference",
) -> ReplayResult:
    """Replay the journal (from the newest usable snapshot when given) and report the root.

    ``engine_kind``: ``"reference"`` (the interpreted engine) or ``"native"`` (the C++ core,
    ``asyncdex.engine.native``; the reference's snapshot is loaded into it). Both give the
    same root; asking for the native core where it is not built is an error, never a silent
    fallback."""
    out = sys.stdout if out is None else out  # resolved late: callers may swap stdout
    if engine_kind not in ENGINE_KINDS:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_KINDS)}")
    if engine_kind == "native" and not native_available():
        raise NativeUnsupported(native_unavailable_reason())
    print(f"engine: {engine_kind}", file=out)
    reader = JournalReader(directory)
    snapshot_seq = 0
    engine = Engine(config)
    if snapshot_dir is not None:
        store = SnapshotStore(snapshot_dir)
        limit = reader.last_seq() if to_seq is None else min(to_seq, reader.last_seq())
        found = store.latest(config, max_seq=limit)
        for skipped in store.skipped:
            print(f"snapshot {skipped.path.name} skipped: {skipped.reason}", file=out)
        if found is not None:
            snapshot_seq, state = found
            engine = Engine(state=state)
            print(f"starting from snapshot at seq {snapshot_seq}", file=out)
    native = None
    started = time.perf_counter()
    if engine_kind == "native":

        def start() -> NativeEngine:
            if snapshot_seq:
                return NativeEngine.from_reference_state(config, engine.state)
            return NativeEngine(config)

        native = start()
        fast = replay_segments_natively(reader.segments, native, snapshot_seq + 1, to_seq)
        if fast is None:
            # something torn or damaged on the way: the exact reader replays from the start
            # and reports what it finds
            native = start()
            replayed = replay(reader, native, snapshot_seq + 1, to_seq)
        else:
            replayed = fast
    else:
        replayed = replay(reader, engine, snapshot_seq + 1, to_seq)
    seconds = time.perf_counter() - started
    if reader.torn_tail is not None:
        print(_describe_torn(reader.torn_tail), file=out)
    return ReplayResult(
        snapshot_seq,
        replayed,
        snapshot_seq + replayed,
        seconds,
        state_root(engine.state) if native is None else native.state_root(),
    )


# ------------------------------------------------------------------------------ the parser


def _load_config(path: str | None) -> EngineConfig | None:
    return None if path is None else load_engine_config(path)


def cmd_inspect(args: argparse.Namespace) -> int:
    return inspect_journal(Path(args.directory), args.show, args.from_seq)


def cmd_verify(args: argparse.Namespace) -> int:
    snapshots = None if args.snapshots is None else Path(args.snapshots)
    return verify_journal(Path(args.directory), snapshots, _load_config(args.config))


def cmd_replay(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    assert config is not None  # argparse requires --config
    snapshots = None if args.snapshots is None else Path(args.snapshots)
    try:
        engine_kind, warning = choose_engine(args.engine)
    except EngineUnavailable as exc:
        print(f"cannot replay with the native core: {exc}")
        return EXIT_USAGE
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        result = replay_journal(
            Path(args.directory), config, snapshots, args.to, engine_kind=engine_kind
        )
    except JournalCorruption as exc:
        print(f"DAMAGED: {exc.segment.name} at byte {exc.offset}: {exc.reason}")
        return EXIT_DAMAGED
    except ReplayGap as exc:
        print(f"cannot replay: {exc}")
        return EXIT_DAMAGED
    except NativeUnsupported as exc:
        print(f"cannot replay with the native core: {exc}")
        return EXIT_USAGE
    print(
        f"replayed {result.replayed:,} records (seqs {result.snapshot_seq + 1}.."
        f"{result.last_seq}) in {result.seconds:.3f} s: {result.records_per_s:,.0f} records/s"
    )
    print(f"state root after seq {result.last_seq}: 0x{result.state_root.hex()}")
    return EXIT_OK


def _guarded(handler: Any) -> Any:
    """Turn the errors a user can cause (missing directory, bad config) into exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            status: int = handler(args)
        except (ConfigFileError, FileNotFoundError) as exc:
            print(f"asyncdex journal: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return status

    return run


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``journal inspect|verify|replay`` to a ``parser.add_subparsers()`` object."""
    journal = subparsers.add_parser("journal", help="inspect, verify or replay a journal")
    tools = journal.add_subparsers(dest="journal_command", required=True)

    inspect = tools.add_parser("inspect", help="segments, seq range, sizes, decoded records")
    inspect.add_argument("directory", help="the journal directory")
    inspect.add_argument(
        "--show", type=_non_negative, default=0, metavar="N", help="print N decoded records"
    )
    inspect.add_argument(
        "--from",
        dest="from_seq",
        type=_non_negative,
        default=None,
        metavar="SEQ",
        help="show records from this seq on",
    )
    inspect.set_defaults(func=_guarded(cmd_inspect))

    verify = tools.add_parser("verify", help="check every record (and snapshot); exit 1 if damaged")
    verify.add_argument("directory", help="the journal directory")
    verify.add_argument("--snapshots", metavar="DIR", help="also check the snapshots in DIR")
    verify.add_argument(
        "--config",
        metavar="FILE",
        help="venue TOML or the node's config file: also restore each snapshot, check its root",
    )
    verify.set_defaults(func=_guarded(cmd_verify))

    replay_parser = tools.add_parser("replay", help="replay through the engine; print the root")
    replay_parser.add_argument("directory", help="the journal directory")
    replay_parser.add_argument(
        "--config",
        metavar="FILE",
        required=True,
        help="the venue TOML or the node's config file (examples/venue.toml, examples/node.toml)",
    )
    replay_parser.add_argument(
        "--snapshots", metavar="DIR", help="start from the newest usable snapshot in DIR"
    )
    replay_parser.add_argument(
        "--to", type=_non_negative, default=None, metavar="SEQ", help="stop after this seq"
    )
    replay_parser.add_argument(
        "--engine",
        choices=ENGINE_KINDS,
        default=None,
        help="the native core (the default when it is built) or the interpreted reference; "
        "both give the same root",
    )
    replay_parser.set_defaults(func=_guarded(cmd_replay))
    parser: argparse.ArgumentParser = journal
    return parser
