"""Snapshots and recovery: the newest valid snapshot plus the journal's tail is the state.

Invariants:
- Replay determinism: for a journal and any valid snapshot at seq ``S`` taken from it,
  restoring the snapshot and replaying records ``S + 1 ..`` gives the state root of a clean
  replay of every record from seq 1 (``recover(..., verify=True)`` checks exactly this).
- The journal is the truth; snapshots are only a shortcut. A snapshot that is damaged, was
  taken under another config, restores to a root other than the one it was saved with, or
  lies beyond the journal's end is skipped and reported, never trusted and never fatal.
  Recovery then falls back to an older snapshot, or to a replay from seq 1.
- A snapshot file is complete or absent: it is written to a temporary name, fsync'd, renamed
  into place, and the directory fsync'd. A crash leaves at worst a temporary file, which the
  next ``save`` removes.
- Replay applies records in seq order with no gap: ``replay`` raises :class:`ReplayGap`
  rather than apply a record whose predecessor it has not applied.
- Either engine (``engine_kind``): the native core and the reference reach the same root
  from the same snapshot and journal. The native path loads the snapshot into the core and
  checks every journal record (framing, CRC-32, seq) in C++ as the journal's open would;
  whatever it finds not clean is recovered again the exact way, so damage is reported as
  the reference's recovery reports it, and a journal the core cannot run recovers on the
  reference.
- Snapshots are taken at seqs that are multiples of ``EngineExecutor.every``: replicas that
  apply the same journal write the same snapshot files.
- A valid snapshot at seq ``S`` proves records ``1 .. S`` were durable (it is written only
  after they were applied, and only durable records are applied). A journal that ends below
  ``S`` (a damaged last record, a lost last segment) has lost acknowledged records:
  ``recover`` refuses it with :class:`JournalLoss` before cutting anything, unless the
  caller accepts the loss (``accept_loss=True``); then the snapshots beyond the journal's end
  are set aside (renamed ``lost-snapshot-*.bin``), since the journal will grow again past
  their seqs with other records.

Snapshot file ``snapshot-<seq, 20 digits>.bin`` (integers little-endian):

- Header, 96 bytes: magic ``b"ADXSNAP1"`` | format version (u32) | seq (u64) | state root
  (32 bytes) | payload length (u64) | SHA-256 of the payload (32 bytes) | CRC-32 of the
  preceding 88 header bytes (u32).
- Payload: ``asyncdex.engine.snapshot.snapshot(state)``, which names the config it was
  taken under. SHA-256 rather than the journal's CRC-32: a snapshot is read rarely and in
  one piece, so a digest that also identifies the file across machines costs nothing; the
  header has its own CRC so a damaged header is told apart from a damaged payload.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from asyncdex.engine.build import build_engine
from asyncdex.engine.native import NativeEngine, NativeUnsupported
from asyncdex.engine.reader import EngineLike
from asyncdex.engine.snapshot import SnapshotError, restore, snapshot
from asyncdex.engine.state import State
from asyncdex.engine.state_root import state_root
from asyncdex.messages.events import Event
from asyncdex.sequencer.journal import (
    DEFAULT_SEGMENT_BYTES,
    SEGMENT_HEADER_BYTES,
    SEGMENT_MAGIC,
    FileJournal,
    JournalBehind,
    JournalSequenceError,
    RecoveryReport,
    segment_file_name,
    sync_directory,
)
from asyncdex.sequencer.records import Record, decode_trusted_record
from asyncdex.sequencer.sequencer import Sequenced
from asyncdex.types.market import EngineConfig

__all__ = [
    "DEFAULT_KEEP",
    "EngineExecutor",
    "JournalLoss",
    "RecordSource",
    "Recovered",
    "RecoveryError",
    "RecoveryMismatch",
    "ReplayGap",
    "SkippedSnapshot",
    "SnapshotHeader",
    "SnapshotInvalid",
    "SnapshotStore",
    "open_journal",
    "proven_seq",
    "read_snapshot_header",
    "recover",
    "replay",
    "snapshot_file_name",
]

_log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"ADXSNAP1"
SNAPSHOT_FORMAT_VERSION = 1
_HEADER_FIELDS = struct.Struct("<8sIQ32sQ32s")
_HEADER_CRC = struct.Struct("<I")
HEADER_BYTES = _HEADER_FIELDS.size + _HEADER_CRC.size
_SNAPSHOT_NAME = re.compile(r"^snapshot-(\d{20})\.bin$")
_TEMP_SUFFIX = ".tmp"
DEFAULT_KEEP = 3


class RecoveryError(Exception):
    """Base of the errors recovery and replay raise."""


class ReplayGap(RecoveryError):
    """The records to replay do not continue the state's seq."""

    def __init__(self, expected: int, found: int | None) -> None:
        where = "the end of the journal" if found is None else f"seq {found}"
        super().__init__(f"replay expected seq {expected}, found {where}")
        self.expected = expected
        self.found = found


class RecoveryMismatch(RecoveryError):
    """Snapshot + tail and a clean replay from seq 1 reached different state roots."""

    def __init__(self, snapshot_seq: int, recovered_root: bytes, replayed_root: bytes) -> None:
        super().__init__(
            f"state root after snapshot {snapshot_seq} + tail is 0x{recovered_root.hex()}, "
            f"a full replay gives 0x{replayed_root.hex()}"
        )
        self.snapshot_seq = snapshot_seq
        self.recovered_root = recovered_root
        self.replayed_root = replayed_root


class JournalLoss(RecoveryError):
    """The journal ends below a valid snapshot's seq: acknowledged records are missing."""

    def __init__(self, behind: JournalBehind, snapshot: Path) -> None:
        where = (
            "the journal has no segment"
            if behind.segment is None
            else f"segment {behind.segment} ends at byte {behind.offset}"
        )
        super().__init__(
            f"journal ends at seq {behind.last_seq} ({where}) but snapshot {snapshot} is at "
            f"seq {behind.required_seq}: acknowledged records {behind.last_seq + 1}.."
            f"{behind.required_seq} are missing"
        )
        self.segment = behind.segment
        self.offset = behind.offset
        self.last_seq = behind.last_seq
        self.snapshot = snapshot
        self.snapshot_seq = behind.required_seq


class SnapshotInvalid(RecoveryError):
    """A snapshot file that cannot be used; ``reason`` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"snapshot {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SkippedSnapshot:
    path: Path
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    seq: int
    state_root: bytes
    payload_length: int
    payload_sha256: bytes


T = TypeVar("T")
Loader = Callable[[EngineConfig, bytes], tuple[T, bytes]]
"""A snapshot payload -> (what it loads into, the root of that state)."""


def _restore_reference(config: EngineConfig, payload: bytes) -> tuple[State, bytes]:
    state = restore(config, payload)
    return state, state_root(state)


def snapshot_file_name(seq: int) -> str:
    return f"snapshot-{seq:020d}.bin"


def _encode_header(seq: int, root: bytes, payload: bytes) -> bytes:
    fields = _HEADER_FIELDS.pack(
        SNAPSHOT_MAGIC,
        SNAPSHOT_FORMAT_VERSION,
        seq,
        root,
        len(payload),
        hashlib.sha256(payload).digest(),
    )
    return fields + _HEADER_CRC.pack(zlib.crc32(fields))


def read_snapshot_header(data: bytes, path: Path) -> SnapshotHeader:
    """Check the header and the payload's length and digest; the payload is not decoded."""
    if len(data) < HEADER_BYTES:
        raise SnapshotInvalid(path, f"{len(data)} bytes, shorter than the header")
    fields = data[: _HEADER_FIELDS.size]
    (crc,) = _HEADER_CRC.unpack_from(data, _HEADER_FIELDS.size)
    if zlib.crc32(fields) != crc:
        raise SnapshotInvalid(path, "header checksum mismatch")
    magic, version, seq, root, length, digest = _HEADER_FIELDS.unpack(fields)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotInvalid(path, "not a snapshot file (bad magic)")
    if version != SNAPSHOT_FORMAT_VERSION:
        raise SnapshotInvalid(
            path, f"snapshot format {version}, expected {SNAPSHOT_FORMAT_VERSION}"
        )
    if len(data) - HEADER_BYTES != length:
        raise SnapshotInvalid(
            path, f"payload is {len(data) - HEADER_BYTES} bytes, header says {length}"
        )
    if hashlib.sha256(memoryview(data)[HEADER_BYTES:]).digest() != digest:
        raise SnapshotInvalid(path, "payload checksum mismatch")
    return SnapshotHeader(seq, root, length, digest)


class SnapshotStore:
    """Snapshot files of one venue in one directory; one writer, any number of readers.

    ``skipped`` lists the snapshots the last :meth:`latest` call passed over, and why.
    """

    def __init__(self, directory: str | os.PathLike[str], keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self.directory = Path(directory)
        self.keep = keep
        self.skipped: list[SkippedSnapshot] = []

    def paths(self) -> list[tuple[int, Path]]:
        """(seq, path) of every snapshot file, oldest first (validity not checked)."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in os.scandir(self.directory):
            match = _SNAPSHOT_NAME.match(entry.name)
            if match is not None:
                found.append((int(match.group(1)), Path(entry.path)))
        found.sort()
        return found

    def save(self, seq: int, state: State) -> Path:
        """Write the snapshot of ``state`` as it is after record ``seq``; prune old ones."""
        return self.save_payload(seq, snapshot(state), state_root(state))

    def save_engine(self, seq: int, engine: EngineLike) -> Path:
        """``save`` of an engine's state (``EngineLike.snapshot``: the native core writes it
        from its export, with no reference ``State`` built)."""
        payload, root = engine.snapshot()
        return self.save_payload(seq, payload, root)

    def save_payload(self, seq: int, payload: bytes, root: bytes) -> Path:
        """Write a snapshot payload (``asyncdex.engine.snapshot``) whose state has ``root``."""
        if seq < 0:
            raise ValueError("a snapshot's seq is not negative")
        header = _encode_header(seq, root, payload)
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / snapshot_file_name(seq)
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{final.name}.", suffix=_TEMP_SUFFIX, dir=self.directory
        )
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(header)
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        # The rename is durable only once the directory entry is.
        sync_directory(self.directory)
        self._prune()
        return final

    def _prune(self) -> None:
        for _seq, path in self.paths()[: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        # Leftovers of a save that crashed between creating and renaming its file.
        for entry in os.scandir(self.directory):
            if entry.name.startswith(".snapshot-") and entry.name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def load(self, path: Path, config: EngineConfig) -> tuple[int, State]:
        """The (seq, state) a snapshot file holds, or :class:`SnapshotInvalid` saying why."""
        return self.load_with(path, config, _restore_reference)

    def load_with(self, path: Path, config: EngineConfig, loader: Loader[T]) -> tuple[int, T]:
        """``load``, the payload turned into what ``loader`` makes of it (with its root)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SnapshotInvalid(path, f"unreadable: {exc}") from exc
        header = read_snapshot_header(data, path)
        match = _SNAPSHOT_NAME.match(path.name)
        if match is not None and int(match.group(1)) != header.seq:
            raise SnapshotInvalid(path, f"file name says seq {match.group(1)}, header {header.seq}")
        try:
            loaded, root = loader(config, data[HEADER_BYTES:])
        except SnapshotError as exc:
            raise SnapshotInvalid(path, str(exc)) from exc
        except NativeUnsupported:
            raise  # the snapshot is fine; the native core cannot hold it (recover says so)
        except Exception as exc:
            # A payload with a good digest that still fails to restore was written by a
            # different engine build; report it like any other unusable snapshot.
            raise SnapshotInvalid(path, f"does not restore: {exc!r}") from exc
        if root != header.state_root:
            raise SnapshotInvalid(
                path,
                f"restored state root 0x{root.hex()} differs from the saved "
                f"0x{header.state_root.hex()}",
            )
        return header.seq, loaded

    def latest(self, config: EngineConfig, max_seq: int | None = None) -> tuple[int, State] | None:
        """The newest valid snapshot at or below ``max_seq``; None when there is none.

        Invalid snapshots and snapshots beyond ``max_seq`` are recorded in ``skipped``.
        """
        return self.latest_with(config, _restore_reference, max_seq)

    def latest_with(
        self, config: EngineConfig, loader: Loader[T], max_seq: int | None = None
    ) -> tuple[int, T] | None:
        """``latest``, each payload turned into what ``loader`` makes of it."""
        self.skipped = []
        for seq, path in reversed(self.paths()):
            if max_seq is not None and seq > max_seq:
                self.skipped.append(SkippedSnapshot(path, seq, f"beyond seq {max_seq}"))
                continue
            try:
                return self.load_with(path, config, loader)
            except SnapshotInvalid as exc:
                _log.warning("skipping snapshot: %s", exc)
                self.skipped.append(SkippedSnapshot(path, seq, exc.reason))
        return None


LOST_SNAPSHOT_PREFIX = "lost-"


def proven_seq(snapshot_dir: str | os.PathLike[str] | None) -> tuple[int, Path | None]:
    """The highest seq a valid snapshot file proves durable, and that file ((0, None): none).

    Only the header and the payload's digest are checked (no restore): a snapshot written by
    this node is proof enough that its records were durable, whatever config it was under.
    """
    if snapshot_dir is None:
        return 0, None
    for seq, path in reversed(SnapshotStore(snapshot_dir).paths()):
        try:
            read_snapshot_header(path.read_bytes(), path)
        except (OSError, SnapshotInvalid):
            continue
        return seq, path
    return 0, None


def open_journal(
    journal_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None,
    *,
    accept_loss: bool = False,
    segment_bytes: int | None = None,
    verify_all_segments: bool = True,
) -> tuple[FileJournal, RecoveryReport]:
    """``FileJournal.open``, refusing (:class:`JournalLoss`) a journal that ends below the
    newest valid snapshot, unless ``accept_loss``: then the journal is opened as it is and
    the snapshots beyond its end are renamed out of the way. ``verify_all_segments=False``:
    the caller checks the segments before the last one itself (native recovery does, in
    C++, as it replays)."""
    required, snapshot = proven_seq(snapshot_dir)
    try:
        journal, report = FileJournal.open(
            journal_dir,
            segment_bytes=DEFAULT_SEGMENT_BYTES if segment_bytes is None else segment_bytes,
            required_seq=0 if accept_loss else required,
            verify_all_segments=verify_all_segments,
        )
    except JournalBehind as behind:
        assert snapshot is not None
        raise JournalLoss(behind, snapshot) from None
    if accept_loss and snapshot_dir is not None and journal.last_seq < required:
        _log.warning(
            "journal ends at seq %d below snapshot seq %d: records %d..%d lost (accepted)",
            journal.last_seq,
            required,
            journal.last_seq + 1,
            required,
        )
        _set_aside_snapshots(Path(snapshot_dir), journal.last_seq)
    return journal, report


def _set_aside_snapshots(directory: Path, last_seq: int) -> None:
    for seq, path in SnapshotStore(directory).paths():
        if seq > last_seq:
            path.rename(path.with_name(LOST_SNAPSHOT_PREFIX + path.name))
    sync_directory(directory)


class RecordSource(Protocol):
    """Where replay reads ``(seq, payload)`` records: a :class:`FileJournal`, or a reader."""

    def read(self, from_seq: int | None = None) -> Iterator[tuple[int, bytes]]: ...


OnRecord = Callable[[int, Record, list[Event]], None]
_NO_LIMIT = 1 << 63


def replay(
    journal: RecordSource,
    engine: EngineLike,
    from_seq: int,
    to_seq: int | None = None,
    on_record: OnRecord | None = None,
) -> int:
    """Apply records ``from_seq ..`` (up to ``to_seq`` inclusive) in order; return the count.

    The first record read must be ``from_seq`` and each next one the seq after: otherwise
    :class:`ReplayGap`, also when ``to_seq`` is given and the journal ends before it.
    """
    if from_seq < 1:
        raise ValueError("seqs start at 1")
    if to_seq is not None and to_seq < from_seq:
        return 0
    if on_record is None and isinstance(engine, NativeEngine):
        return _replay_native(journal, engine, from_seq, to_seq)
    apply = engine.apply
    decode = decode_trusted_record
    last = _NO_LIMIT if to_seq is None else to_seq
    expected = from_seq
    with _records_from(journal, from_seq) as records:
        # Recovery's hot loop (a node replays millions of records before it serves):
        # tuple unpacking rather than named fields, and no callback test when there is none.
        if on_record is None:
            for seq, payload in records:
                if seq != expected:
                    raise ReplayGap(expected, seq)
                if seq > last:
                    break
                timestamp, command, _signature = decode(payload)
                apply(command, timestamp)
                expected = seq + 1
        else:
            for seq, payload in records:
                if seq != expected:
                    raise ReplayGap(expected, seq)
                if seq > last:
                    break
                record = decode(payload)
                on_record(seq, record, apply(record.command, record.timestamp))
                expected = seq + 1
    return _replayed(from_seq, expected, to_seq)


@contextlib.contextmanager
def _records_from(journal: RecordSource, from_seq: int) -> Iterator[Iterator[tuple[int, bytes]]]:
    """The journal's records from ``from_seq``, closed on the way out (a reader holds a segment
    file open until it is closed or exhausted); a journal that starts later is a gap."""
    try:
        records = journal.read(from_seq)
    except JournalSequenceError as exc:
        # The journal starts after from_seq: the records in between are gone.
        raise ReplayGap(from_seq, None) from exc
    try:
        yield records
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()


def _replayed(from_seq: int, expected: int, to_seq: int | None) -> int:
    """How many records a replay applied, once it checked that none short of ``to_seq``
    is missing."""
    if to_seq is not None and expected <= to_seq:
        raise ReplayGap(expected, None)
    return expected - from_seq


_NATIVE_CHUNK = 8192  # journal payloads handed to the native core per call


def _replay_native(
    journal: RecordSource, engine: NativeEngine, from_seq: int, to_seq: int | None
) -> int:
    """``replay`` on the native core: the trusted payloads are decoded and applied in C++
    (``NativeEngine.apply_records``), a chunk at a time, with no command or event objects;
    the seqs are checked here exactly as ``replay`` checks them."""
    last = _NO_LIMIT if to_seq is None else to_seq
    expected = from_seq
    chunk: list[bytes] = []
    append = chunk.append
    with _records_from(journal, from_seq) as records:
        for seq, payload in records:
            if seq != expected:
                engine.apply_records(chunk)  # everything before the gap is applied
                raise ReplayGap(expected, seq)
            if seq > last:
                break
            append(payload)
            expected = seq + 1
            if len(chunk) == _NATIVE_CHUNK:
                engine.apply_records(chunk)
                chunk.clear()
        engine.apply_records(chunk)
    return _replayed(from_seq, expected, to_seq)


_SEGMENT_HEADER = struct.Struct("<8sQ")  # asyncdex.sequencer.journal's segment header


def replay_segments_natively(
    segments: Sequence[tuple[int, Path]],
    engine: NativeEngine,
    from_seq: int,
    to_seq: int | None,
    check_all: bool = False,
) -> int | None:
    """Replay's fast path on the native core: whole segment files handed to the core, which
    checks each record's framing, CRC-32 and seq as the journal's reader does, decodes the
    trusted record and applies it from ``from_seq`` (to ``to_seq``). ``check_all``: every
    segment is checked, also those wholly before ``from_seq`` (recovery, whose journal was
    opened without checking them). Returns the count applied, or None when anything is not
    clean (a torn or damaged record, a gap, a journal ending before ``to_seq``): the caller
    then replays through the exact reader, which says what it is, on a fresh engine (some
    records may have been applied)."""
    if to_seq is not None and to_seq < from_seq and not check_all:
        return 0
    last = to_seq if to_seq is not None else 1 << 62
    if not segments or from_seq < segments[0][0]:
        return None
    firsts = [first for first, _ in segments]
    index = 0 if check_all else max(0, bisect.bisect_right(firsts, from_seq) - 1)
    expected = segments[index][0]
    applied = 0
    for first, path in segments[index:]:
        if first != expected:
            return None
        data = path.read_bytes()
        if len(data) < SEGMENT_HEADER_BYTES:
            return None
        magic, header_seq = _SEGMENT_HEADER.unpack_from(data, 0)
        if magic != SEGMENT_MAGIC or header_seq != first:
            return None
        _, expected, count, status = engine.replay_segment(
            data, SEGMENT_HEADER_BYTES, expected, from_seq, last
        )
        applied += count
        if status == 1:
            break
        if status == 2:
            return None
    if to_seq is not None and expected <= to_seq:
        return None  # the journal ends before to_seq
    if not check_all and expected <= from_seq:
        return None  # nothing at from_seq
    return applied


@dataclass
class Recovered:
    engine: EngineLike
    journal: FileJournal
    """Open, with the lock held: append to it (through a committer) or close it."""
    report: RecoveryReport
    snapshot_seq: int
    """Seq of the snapshot recovery started from, 0 when it replayed from the start."""
    last_seq: int
    state_root: bytes
    replayed: int
    skipped_snapshots: list[SkippedSnapshot] = field(default_factory=list)


def recover(
    journal_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None,
    config: EngineConfig,
    *,
    verify: bool = False,
    segment_bytes: int | None = None,
    accept_loss: bool = False,
    engine_kind: str = "reference",
) -> Recovered:
    """Open the journal, load the newest usable snapshot, replay the tail.

    The journal's open cuts a torn tail (reported in ``Recovered.report``). A journal that
    ends below a valid snapshot raises :class:`JournalLoss` (see :func:`open_journal`;
    ``accept_loss=True`` starts from what the journal holds).
    ``verify=True`` also replays every record from seq 1 on a fresh engine and raises
    :class:`RecoveryMismatch` if the roots differ (costs a full replay).
    ``engine_kind`` (``asyncdex.engine.build.ENGINE_KINDS``) is the engine built and
    returned; the snapshot, one format for both, is loaded into it. The native core replays
    whole segments itself, checking every segment as the journal's open would
    (``replay_segments_natively``); anything not clean is then recovered again the exact way,
    and a journal the native core cannot run (``NativeUnsupported``) recovers on the
    reference engine, with a warning: a record can never stop a restart.
    """
    if engine_kind == "native":
        try:
            return _recover(
                journal_dir, snapshot_dir, config, verify, segment_bytes, accept_loss, "native"
            )
        except NativeUnsupported as error:
            _log.warning("the native core cannot run this journal (%s): the reference runs", error)
            engine_kind = "reference"
    return _recover(
        journal_dir, snapshot_dir, config, verify, segment_bytes, accept_loss, engine_kind, False
    )


def _recover(
    journal_dir: str | os.PathLike[str],
    snapshot_dir: str | os.PathLike[str] | None,
    config: EngineConfig,
    verify: bool,
    segment_bytes: int | None,
    accept_loss: bool,
    engine_kind: str,
    native_segments: bool = True,
) -> Recovered:
    native_segments = native_segments and engine_kind == "native"
    journal, report = open_journal(
        journal_dir,
        snapshot_dir,
        accept_loss=accept_loss,
        segment_bytes=segment_bytes,
        verify_all_segments=not native_segments,
    )
    try:
        last_seq = journal.last_seq
        skipped: list[SkippedSnapshot] = []
        snapshot_seq = 0
        engine: EngineLike | None = None
        if snapshot_dir is not None:
            store = SnapshotStore(snapshot_dir)
            if engine_kind == "native":
                # loaded straight into the core: no reference State built on the way
                native = store.latest_with(config, NativeEngine.from_snapshot, max_seq=last_seq)
                if native is not None:
                    snapshot_seq, engine = native
            else:
                found = store.latest(config, max_seq=last_seq)
                if found is not None:
                    snapshot_seq, state = found
                    engine = build_engine(engine_kind, config, state)
            skipped = store.skipped
        if engine is None:
            engine = build_engine(engine_kind, config)
        if snapshot_seq < journal.first_seq - 1:
            raise ReplayGap(snapshot_seq + 1, journal.first_seq)
        if native_segments:
            assert isinstance(engine, NativeEngine)
            directory = Path(journal_dir)
            segments = [
                (first, directory / segment_file_name(first))
                for first in journal.segment_first_seqs
            ]
            fast = replay_segments_natively(
                segments, engine, snapshot_seq + 1, last_seq, check_all=True
            )
            if fast is None:
                # something not clean: the exact way (every segment checked at open, records
                # read by the journal's reader) says what, from a fresh start
                journal.close()
                return _recover(
                    journal_dir,
                    snapshot_dir,
                    config,
                    verify,
                    segment_bytes,
                    accept_loss,
                    engine_kind,
                    False,
                )
            replayed = fast
        else:
            replayed = replay(journal, engine, snapshot_seq + 1, to_seq=last_seq)
        root = engine.state_root()
        if verify:
            if journal.first_seq != 1:
                raise ReplayGap(1, journal.first_seq)
            clean = build_engine(engine_kind, config)
            replay(journal, clean, 1, to_seq=last_seq)
            clean_root = clean.state_root()
            if clean_root != root:
                raise RecoveryMismatch(snapshot_seq, root, clean_root)
    except BaseException:
        journal.close()
        raise
    return Recovered(
        engine=engine,
        journal=journal,
        report=report,
        snapshot_seq=snapshot_seq,
        last_seq=last_seq,
        state_root=root,
        replayed=replayed,
        skipped_snapshots=skipped,
    )


OnEvents = Callable[[Sequenced, list[Event]], None]


class EngineExecutor:
    """A sequencer consumer: applies durable records to the engine, snapshots every N.

    ``last_seq`` is the seq of the last record applied (the engine's state is "after
    ``last_seq``"); construct it with the seq recovery ended at. A snapshot is saved after
    each record whose seq is a multiple of ``every``. Saving runs on the caller's thread
    (the event loop): the engine state is mutable and single-threaded, so it cannot be
    serialised while the next record executes. A failed save is logged and counted, not
    raised: the journal still holds every record, so only the shortcut is lost.
    """

    def __init__(
        self,
        engine: EngineLike,
        snapshots: SnapshotStore | None,
        every: int,
        *,
        last_seq: int = 0,
        on_events: OnEvents | None = None,
    ) -> None:
        if every < 1:
            raise ValueError("snapshot interval must be at least one record")
        self.engine = engine
        self.snapshots = snapshots
        self.every = every
        self.last_seq = last_seq
        self.on_events = on_events
        self.last_snapshot: Path | None = None
        self.snapshot_failures = 0

    def __call__(self, records: Sequence[Sequenced]) -> None:
        apply = self.engine.apply
        on_events = self.on_events
        snapshots = self.snapshots
        every = self.every
        expected = self.last_seq + 1
        for record in records:
            seq = record.seq
            if seq != expected:
                raise ReplayGap(expected, seq)
            events = apply(record.command, record.timestamp)
            self.last_seq = seq
            expected = seq + 1
            if on_events is not None:
                on_events(record, events)
            if snapshots is not None and seq % every == 0:
                self._save(snapshots, seq)

    def _save(self, snapshots: SnapshotStore, seq: int) -> None:
        try:
            self.last_snapshot = snapshots.save_engine(seq, self.engine)
        except OSError:
            self.snapshot_failures += 1
            _log.exception("snapshot at seq %d failed; the journal still has every record", seq)
