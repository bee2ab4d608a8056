"""Durable intent journal: append-only, checksummed, group-committed segment files.

Invariants:

- Records carry a seq that increases by exactly one from record to record, across segments.
  ``append`` refuses anything else, so the journal never holds a gap or a duplicate.
- A record counts as durable (``durable_seq``, ``wait_durable``, durability listeners) only
  once its bytes have been fsync'd and, when it opened a new segment file, once the directory
  entry of that file has been fsync'd too. Nothing at or below ``durable_seq`` is lost by a
  crash at any moment, SIGKILL and power loss included.
- Recovery only ever cuts a torn tail: the invalid end of the last segment, with no valid
  record anywhere after it. Such bytes can only be the unfinished write of a batch that was
  never reported durable. Every other kind of damage (a bad record followed by a valid one,
  any fault in an earlier segment, a seq out of order under a good checksum) raises
  :class:`JournalCorruption` naming the segment file and the byte offset. Nothing is skipped
  silently. (After a power loss a file system may persist a batch's pages out of order and
  leave a hole before valid but unacknowledged records; that raises too, because it cannot
  be told apart from damage to acknowledged records without a guess.)
- Readers see only durable, complete, checksum-verified records, in seq order, also while
  the writer is appending.
- An error from write or fsync stops the journal for good (fail-stop): after a failed fsync
  the kernel may have dropped the dirty pages, so retrying could report durable bytes that
  are not on disk. Appends and waits then raise :class:`JournalFailed`; the process must
  reopen the journal, which re-reads what actually reached the disk.
- A failed batch is undone when it can be: the segment files it created are removed and the
  segment it appended to is cut back to its size before the batch, both fsync'd. Only then
  are its records certainly absent; when the undo fails too, ``JournalFailed.unknown`` names
  the seqs whose outcome is unknown (they may be in the journal at the next open). Records
  appended but not yet handed to the writer are never written after a failure.
- ``open(required_seq=S)`` refuses (:class:`JournalBehind`), before cutting or changing
  anything, a journal whose recovered end would be below ``S``: records known durable by
  other means (a snapshot) are missing, and cutting would make the loss final.

On-disk format (all integers little-endian):

- Directory: segment files named ``<first seq, 20 digits>.seg`` plus a ``LOCK`` file that
  keeps a second writer process out.
- Segment header, 16 bytes: magic ``b"ADXJRNL1"`` and the first seq (u64), which must match
  the file name.
- Record: ``crc32 (u32) | payload length (u32) | seq (u64) | payload``. The checksum is
  CRC-32 over everything after itself (length, seq, payload) so one corrupted field of any
  kind is caught. ``zlib.crc32`` is used because it is in the standard library, runs at C
  speed (more than a GB/s) and detects every burst error up to 32 bits plus torn writes with
  probability 1 - 2**-32; CRC-32C would be equally good but is not available here, and a
  cryptographic hash buys nothing, since nobody who could forge records can write the file.

Group commit: :class:`GroupCommitter` runs one writer thread that takes everything appended
since its last write (up to ``max_batch_bytes``), frames it, writes it with one ``write``
call and fsyncs it once. While that fsync runs, new appends collect into the next batch, so
the batch size follows the load by itself. ``max_delay`` optionally lets the writer wait a
little for a batch to fill before writing it. Waiting for durability costs no allocation per
record: the synchronous ``wait_durable`` is a compare of two integers in the common case,
and :class:`AsyncDurabilityWaiter` shares one future among all records of a batch.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import os
import re
import struct
import sys
import threading
import time
import zlib
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from asyncdex.engine.native import scan_journal_records

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, the single-writer rule is then on the caller
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_SEGMENT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "AsyncDurabilityWaiter",
    "DurabilityListener",
    "FileJournal",
    "GroupCommitStats",
    "GroupCommitter",
    "JournalBehind",
    "JournalClosed",
    "JournalCorruption",
    "JournalError",
    "JournalFailed",
    "JournalSequenceError",
    "JournalStats",
    "RecoveryReport",
    "segment_file_name",
]

_log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"ADXJRNL1"
SEGMENT_SUFFIX = ".seg"
LOCK_FILE_NAME = "LOCK"
DEFAULT_SEGMENT_BYTES = 64 << 20
# One write + fsync of a megabyte takes a few milliseconds on common SSDs; bigger batches
# would only add latency for the records at their front.
DEFAULT_MAX_BATCH_BYTES = 1 << 20
# No lingering by default: the fsync in progress already gathers the next batch. Measured on
# a 2-core VM at 20k records/s, a 200 us linger raised p50 from 0.40 to 0.55 ms and p99 from
# 0.61 to 0.78 ms, for 11 instead of 4 records per fsync. Linger only where fsyncs are
# rationed (IOPS-capped disks) or cost more than the added wait.
DEFAULT_MAX_DELAY = 0.0
# A bound on the length field lets recovery tell a corrupt length from a long record.
MAX_PAYLOAD_BYTES = 16 << 20

_SEGMENT_HEADER = struct.Struct("<8sQ")
_RECORD_HEADER = struct.Struct("<IIQ")
_CHECKED_FIELDS = struct.Struct("<IQ")
SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size
RECORD_HEADER_BYTES = _RECORD_HEADER.size
_READ_CHUNK_BYTES = 1 << 20
_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")


class JournalError(Exception):
    """Base of every error the journal raises."""


class JournalCorruption(JournalError):
    """Damaged bytes that cannot be a torn tail; the journal refuses to guess."""

    def __init__(self, segment: Path, offset: int, reason: str) -> None:
        super().__init__(f"corrupt journal segment {segment} at byte {offset}: {reason}")
        self.segment = segment
        self.offset = offset
        self.reason = reason


class JournalSequenceError(JournalError, ValueError):
    """An append or a wait named a seq that does not follow the journal's sequence."""


class JournalClosed(JournalError):
    """The journal was closed."""


class JournalFailed(JournalError):
    """A write or fsync failed; the journal accepts nothing more (see module docstring).

    ``unknown`` is the range of seqs whose outcome is unknown: the batch whose write failed
    when undoing it failed too (empty when it was undone). Every seq above ``durable_seq`` and
    outside ``unknown`` is certainly not in the journal.
    """

    def __init__(self, message: str, unknown: range = range(0)) -> None:
        super().__init__(message)
        self.unknown = unknown


class JournalBehind(JournalError):
    """The journal ends (after recovery) below a seq known to have been durable."""

    def __init__(self, segment: Path | None, offset: int, last_seq: int, required_seq: int) -> None:
        where = "no segment" if segment is None else f"{segment} at byte {offset}"
        super().__init__(
            f"journal ends at seq {last_seq} ({where}), but seq {required_seq} was durable"
        )
        self.segment = segment
        self.offset = offset
        self.last_seq = last_seq
        self.required_seq = required_seq


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`FileJournal.open` found and repaired."""

    directory: Path
    segments: int
    first_seq: int
    """First seq held, or the seq the first append must carry when the journal is empty."""
    last_seq: int
    """Last durable seq after recovery (``first_seq - 1`` when empty)."""
    truncated_segment: Path | None = None
    truncated_at: int | None = None
    """Byte offset where the torn tail began; the file now ends there."""
    truncated_bytes: int = 0
    reason: str | None = None
    """Why the tail was cut (incomplete header, incomplete payload, checksum mismatch)."""

    @property
    def truncated(self) -> bool:
        return self.truncated_bytes > 0


@dataclass(slots=True)
class JournalStats:
    """Counters kept by the writer, for metrics and to tell disk stalls from our own delays.

    ``fsync_histogram[i]`` counts fsyncs that took less than ``2**i`` microseconds (the
    last bucket takes everything longer).
    """

    batches: int = 0
    records: int = 0
    bytes_written: int = 0
    fsync_seconds_max: float = 0.0
    fsync_histogram: list[int] = field(default_factory=lambda: [0] * 25)

    def record_fsync(self, seconds: float) -> None:
        bucket = min(int(seconds * 1e6).bit_length(), len(self.fsync_histogram) - 1)
        self.fsync_histogram[bucket] += 1
        if seconds > self.fsync_seconds_max:
            self.fsync_seconds_max = seconds

    def fsync_percentile(self, fraction: float) -> float:
        """Upper bound, in seconds, of the fsync time below which ``fraction`` of them fell."""
        total = sum(self.fsync_histogram)
        if total == 0:
            return 0.0
        rank = fraction * total
        seen = 0
        for bucket, count in enumerate(self.fsync_histogram):
            seen += count
            if seen >= rank:
                return min((1 << bucket) / 1e6, self.fsync_seconds_max)
        return self.fsync_seconds_max


class DurabilityListener(Protocol):
    """Told about durability by the thread that completed the fsync.

    Called with the journal's write lock held: return quickly and never call ``flush``.
    """

    def on_durable(self, durable_seq: int) -> None: ...

    def on_failure(self, error: JournalFailed) -> None: ...


def segment_file_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def _list_segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in os.scandir(directory):
        match = _SEGMENT_NAME.match(entry.name)
        if match is not None:
            found.append((int(match.group(1)), Path(entry.path)))
    found.sort()
    return found


if sys.platform == "darwin":

    def _sync_file(fd: int) -> None:
        # fsync on macOS stops at the drive's volatile cache; F_FULLFSYNC goes to the media.
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

elif hasattr(os, "fdatasync"):

    def _sync_file(fd: int) -> None:
        # fdatasync also persists the file size, which is all an append changes besides data.
        os.fdatasync(fd)

else:  # pragma: no cover - platforms without fdatasync

    def _sync_file(fd: int) -> None:
        os.fsync(fd)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a crash."""
    if os.name == "nt":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)
    while written < len(data):
        written += os.write(fd, view[written:])


@dataclass(slots=True)
class _SegmentScan:
    end: int
    """Offset just past the last valid record (0 when even the header is bad)."""
    last_seq: int
    fault: str | None
    fault_is_torn: bool
    """A fault that a crash during a write can produce (as opposed to a wrong seq)."""


def _scan_segment(data: bytes, first_seq: int) -> _SegmentScan:
    """Validate a whole segment image, stopping at the first fault."""
    size = len(data)
    if size < SEGMENT_HEADER_BYTES:
        fault = "incomplete segment header" if size else None
        return _SegmentScan(0, first_seq - 1, fault, True)
    magic, header_seq = _SEGMENT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC or header_seq != first_seq:
        return _SegmentScan(0, first_seq - 1, "bad segment header", True)
    view = memoryview(data)
    unpack = _RECORD_HEADER.unpack_from
    crc32 = zlib.crc32
    pos = SEGMENT_HEADER_BYTES
    expected = first_seq
    # The clean records checked in C++ when the native core is built (the same checks, ten
    # times faster: a node's start checks every record); the first one that is not clean,
    # if any, is then described below, exactly as without it.
    scanned = scan_journal_records(data, pos, expected)
    if scanned is not None:
        pos, expected = scanned
    while pos < size:
        if pos + RECORD_HEADER_BYTES > size:
            return _SegmentScan(pos, expected - 1, "incomplete record header", True)
        crc, length, seq = unpack(data, pos)
        if length > MAX_PAYLOAD_BYTES:
            return _SegmentScan(pos, expected - 1, f"record length {length} out of range", True)
        end = pos + RECORD_HEADER_BYTES + length
        if end > size:
            return _SegmentScan(pos, expected - 1, "incomplete payload", True)
        if crc32(view[pos + 4 : end]) != crc:
            return _SegmentScan(pos, expected - 1, "checksum mismatch", True)
        if seq != expected:
            return _SegmentScan(pos, expected - 1, f"seq {seq} where {expected} expected", False)
        expected += 1
        pos = end
    return _SegmentScan(pos, expected - 1, None, True)


def _find_valid_record(data: bytes, start: int, after_seq: int) -> int | None:
    """Offset of any checksum-valid record at or after ``start`` with seq > ``after_seq``.

    Used to tell a torn tail (nothing valid follows the fault) from damage in the middle.
    Every byte offset is tried because a corrupt length field hides where the next record
    begins; the cheap range filters keep this fast over garbage and zero-filled tails.
    """
    size = len(data)
    view = memoryview(data)
    unpack = _RECORD_HEADER.unpack_from
    crc32 = zlib.crc32
    # Every record takes at least a header, which bounds the seq a valid record could carry.
    max_seq = after_seq + 1 + (size - start) // RECORD_HEADER_BYTES
    for pos in range(start, size - RECORD_HEADER_BYTES + 1):
        crc, length, seq = unpack(data, pos)
        if seq <= after_seq or seq > max_seq:
            continue
        end = pos + RECORD_HEADER_BYTES + length
        if end <= size and crc32(view[pos + 4 : end]) == crc:
            return pos
    return None


class FileJournal:
    """Append-only journal of ``(seq, payload)`` records in segment files of one directory.

    Single writer: one thread (or one event loop) appends; any thread may read. Use
    :meth:`open` to create one. Without a :class:`GroupCommitter`, records become durable
    only when :meth:`flush` is called.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segments: list[tuple[int, Path]],
        last_seq: int,
        segment_bytes: int,
        max_batch_bytes: int,
        lock_fd: int | None,
    ) -> None:
        """Internal: use :meth:`open`, which recovers the directory first."""
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._max_batch_bytes = max_batch_bytes
        self._lock_fd = lock_fd
        self._first_seq = segments[0][0] if segments else last_seq + 1

        # _lock guards the hand-off between the appending thread and the writer: the
        # pending lists, the seq counters, durability, and the conditions below.
        self._lock = threading.Lock()
        self._durable_changed = threading.Condition(self._lock)
        self._writer_wake = threading.Condition(self._lock)
        # _io_lock serialises writes and fsyncs; it is never taken while holding _lock.
        self._io_lock = threading.Lock()

        self._last_seq = last_seq
        self._taken_seq = last_seq
        self._durable_seq = last_seq
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        # Batches that reached max_batch_bytes and wait, in order, for the writer.
        self._sealed: collections.deque[list[bytes]] = collections.deque()
        # Bumped whenever the open pending list is closed (taken or sealed): two appends
        # seen under the same generation will be written by the same fsync.
        self._generation = 0
        self._writer_idle = False
        self._writer_lingering = False
        self._sync_waiters = 0
        self._listeners: tuple[DurabilityListener, ...] = ()
        self._failure: JournalFailed | None = None
        self._closed = False
        self._committer: GroupCommitter | None = None

        # Written under _io_lock; read without a lock (metrics tolerate a torn snapshot).
        self.stats = JournalStats()
        self._segment_firsts = [first for first, _ in segments]
        self._active_fd: int | None = None
        self._active_size = 0
        if segments:
            active_path = segments[-1][1]
            self._active_fd = os.open(active_path, os.O_WRONLY | os.O_APPEND | _O_CLOEXEC)
            self._active_size = os.fstat(self._active_fd).st_size

    # ----------------------------------------------------------------- opening / recovery

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        start_seq: int = 1,
        verify_all_segments: bool = True,
        required_seq: int = 0,
    ) -> tuple[FileJournal, RecoveryReport]:
        """Open (creating if needed) the journal in ``directory`` and recover it.

        ``start_seq`` is the seq of the first record of a journal that holds none yet.
        ``verify_all_segments=False`` checks only the last segment at open (fast start on a
        long journal); earlier segments are then still checked record by record when read.
        ``required_seq``: raise :class:`JournalBehind`, with nothing changed on disk, if the
        journal would end below it.
        """
        if segment_bytes <= SEGMENT_HEADER_BYTES:
            raise ValueError("segment_bytes must exceed the segment header")
        if max_batch_bytes <= 0:
            raise ValueError("max_batch_bytes must be positive")
        if start_seq < 1:
            raise ValueError("seqs start at 1")
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock_directory(path)
        try:
            segments, report = _recover(path, start_seq, verify_all_segments, required_seq)
            journal = cls(
                path,
                segments=segments,
                last_seq=report.last_seq,
                segment_bytes=segment_bytes,
                max_batch_bytes=max_batch_bytes,
                lock_fd=lock_fd,
            )
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return journal, report

    # ------------------------------------------------------------------------- properties

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def first_seq(self) -> int:
        return self._first_seq

    @property
    def segment_first_seqs(self) -> list[int]:
        """The first seq of each segment file holding durable records, ascending."""
        with self._lock:
            return list(self._segment_firsts)

    @property
    def last_seq(self) -> int:
        """Last seq appended (durable or not)."""
        return self._last_seq

    @property
    def durable_seq(self) -> int:
        """Last seq known to be on stable storage."""
        return self._durable_seq

    @property
    def pending_bytes(self) -> int:
        """Framed bytes appended but not yet handed to the writer (for back-pressure)."""
        with self._lock:
            return self._pending_bytes + sum(
                len(payload) + RECORD_HEADER_BYTES for batch in self._sealed for payload in batch
            )

    @property
    def failure(self) -> JournalFailed | None:
        return self._failure

    # -------------------------------------------------------------------------- appending

    def append(self, seq: int, payload: bytes) -> int:
        """Buffer one record; returns ``seq``. Durable after :meth:`flush` or group commit.

        ``payload`` must be immutable ``bytes``: it is kept, not copied, until written.
        """
        return self.append_many(seq, (payload,))

    def append_many(self, first_seq: int, payloads: Sequence[bytes]) -> int:
        """Buffer consecutive records from ``first_seq`` under one lock; returns the last seq.

        All or nothing: sizes and the seq are checked before any record is buffered.
        """
        for payload in payloads:
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        with self._lock:
            if first_seq != self._last_seq + 1:
                raise JournalSequenceError(
                    f"append of seq {first_seq}, expected {self._last_seq + 1}"
                )
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise JournalClosed("journal is closed")
            for payload in payloads:
                self._append_locked(payload)
        return self._last_seq

    def _append_locked(self, payload: bytes) -> None:
        pending = self._pending
        pending.append(payload)
        self._last_seq += 1
        self._pending_bytes += len(payload) + RECORD_HEADER_BYTES
        if self._pending_bytes >= self._max_batch_bytes:
            self._sealed.append(pending)
            self._pending = []
            self._pending_bytes = 0
            self._generation += 1
            if self._writer_idle or self._writer_lingering:
                self._writer_idle = self._writer_lingering = False
                self._writer_wake.notify()
        elif len(pending) == 1:
            self._pending_since = time.monotonic()
            if self._writer_idle:
                # One wake-up per batch, not per record: the writer takes all there is.
                self._writer_idle = False
                self._writer_wake.notify()

    def flush(self) -> int:
        """Write and fsync everything appended so far; returns the durable seq."""
        with self._io_lock:
            with self._lock:
                if self._failure is not None:
                    raise self._failure
                taken = self._take_locked(take_all=True)
            if taken is not None:
                self._commit(*taken)
        return self._durable_seq

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        """Block until ``seq`` is durable; False on timeout. Needs a committer or a flush."""
        if seq <= self._durable_seq:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if seq > self._last_seq:
                raise JournalSequenceError(f"seq {seq} was not appended (last {self._last_seq})")
            self._sync_waiters += 1
            try:
                while self._durable_seq < seq:
                    if self._failure is not None:
                        raise self._failure
                    if deadline is None:
                        self._durable_changed.wait()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or not self._durable_changed.wait(remaining):
                            return self._durable_seq >= seq
            finally:
                self._sync_waiters -= 1
        return True

    def add_durability_listener(self, listener: DurabilityListener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_durability_listener(self, listener: DurabilityListener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item is not listener)

    # ---------------------------------------------------------------------------- writing

    def _take_locked(self, *, take_all: bool) -> tuple[int, list[bytes]] | None:
        """Hand the next batch to the writer; caller holds _lock (and _io_lock, for order)."""
        if self._sealed:
            batch = self._sealed.popleft()
            if take_all:
                while self._sealed:
                    batch += self._sealed.popleft()
                batch += self._pending
                self._pending = []
                self._pending_bytes = 0
                self._generation += 1
        elif self._pending:
            batch = self._pending
            self._pending = []
            self._pending_bytes = 0
            self._generation += 1
        else:
            return None
        first_seq = self._taken_seq + 1
        self._taken_seq += len(batch)
        return first_seq, batch

    def _commit(self, first_seq: int, batch: list[bytes]) -> None:
        """Write, fsync and publish one batch; caller holds _io_lock."""
        anchor = self._segment_firsts[-1] if self._active_fd is not None else None
        anchor_size = self._active_size
        created: list[int] = []
        try:
            new_segments = self._write_batch(first_seq, batch, created)
        except OSError as exc:
            undone = self._undo_batch(anchor, anchor_size, created)
            unknown = range(0) if undone else range(first_seq, first_seq + len(batch))
            raise self._fail(exc, unknown) from exc
        last = first_seq + len(batch) - 1
        with self._lock:
            if new_segments:
                self._segment_firsts.extend(new_segments)
            self._durable_seq = last
            if self._sync_waiters:
                self._durable_changed.notify_all()
            listeners = self._listeners
        for listener in listeners:
            try:
                listener.on_durable(last)
            except Exception:
                _log.exception("journal durability listener %r failed", listener)

    def _write_batch(
        self, first_seq: int, batch: list[bytes], new_segments: list[int]
    ) -> list[int]:
        """Frame and write ``batch`` (rolling segments as needed), then fsync it.

        The first seq of each segment file it creates is added to ``new_segments`` as soon as
        the file exists, so a failed batch can be undone.
        """
        crc32 = zlib.crc32
        pack_fields = _CHECKED_FIELDS.pack
        pack_header = _RECORD_HEADER.pack
        segment_bytes = self._segment_bytes
        parts: list[bytes] = []
        add = parts.append
        written = 0
        fd = self._active_fd
        size = self._active_size
        if fd is None:
            fd = self._create_segment(first_seq)
            new_segments.append(first_seq)
            size = 0
        if size == 0:
            add(_SEGMENT_HEADER.pack(SEGMENT_MAGIC, first_seq))
            size = SEGMENT_HEADER_BYTES
        seq = first_seq
        for payload in batch:
            if size >= segment_bytes:
                if parts:
                    chunk = b"".join(parts)
                    _write_all(fd, chunk)
                    written += len(chunk)
                    parts.clear()
                    # The finished segment goes to disk before its successor exists, so
                    # after any crash only the last segment can have a torn tail.
                    self._timed_sync(fd)
                os.close(fd)
                self._active_fd = None
                fd = self._create_segment(seq)
                # Published with durability so that readers never look for a file early.
                new_segments.append(seq)
                add(_SEGMENT_HEADER.pack(SEGMENT_MAGIC, seq))
                size = SEGMENT_HEADER_BYTES
            length = len(payload)
            add(pack_header(crc32(payload, crc32(pack_fields(length, seq))), length, seq))
            add(payload)
            seq += 1
            size += RECORD_HEADER_BYTES + length
        chunk = b"".join(parts)
        _write_all(fd, chunk)
        self._active_fd = fd
        self._active_size = size
        self._timed_sync(fd)
        stats = self.stats
        stats.batches += 1
        stats.records += len(batch)
        stats.bytes_written += written + len(chunk)
        if new_segments:
            sync_directory(self._directory)
        return new_segments

    def _timed_sync(self, fd: int) -> None:
        started = time.perf_counter()
        _sync_file(fd)
        self.stats.record_fsync(time.perf_counter() - started)

    def _create_segment(self, first_seq: int) -> int:
        path = self._directory / segment_file_name(first_seq)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _O_CLOEXEC
        return os.open(path, flags, 0o644)

    def _undo_batch(self, anchor: int | None, anchor_size: int, created: list[int]) -> bool:
        """Take a failed batch off the disk: remove the segment files it created and cut the
        one it appended to (first seq ``anchor``) back to ``anchor_size`` bytes, durably.

        True only once that is done, fsyncs included: its records are then certainly not in
        the journal. On a full disk this works (nothing here allocates space); on a failing
        disk it usually fails too, and the batch's outcome stays unknown.
        """
        try:
            for first in reversed(created):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._directory / segment_file_name(first))
            if created:
                sync_directory(self._directory)
            if anchor is not None:
                fd = os.open(self._directory / segment_file_name(anchor), os.O_WRONLY | _O_CLOEXEC)
                try:
                    os.ftruncate(fd, anchor_size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError:
            _log.exception("could not undo the failed journal batch: its outcome is unknown")
            return False
        return True

    def _fail(self, exc: OSError, unknown: range = range(0)) -> JournalFailed:
        if unknown:
            outcome = f"records {unknown.start}..{unknown.stop - 1} may or may not be in it"
        else:
            outcome = "nothing after the last durable record reached it"
        failure = JournalFailed(
            f"journal write failed, no further appends accepted ({outcome}): {exc}", unknown
        )
        failure.__cause__ = exc
        with self._lock:
            if self._failure is None:
                self._failure = failure
            failure = self._failure
            self._durable_changed.notify_all()
            self._writer_wake.notify_all()
            listeners = self._listeners
        for listener in listeners:
            try:
                listener.on_failure(failure)
            except Exception:
                _log.exception("journal durability listener %r failed", listener)
        return failure

    # ---------------------------------------------------------------------------- reading

    def read(self, from_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield durable ``(seq, payload)`` records from ``from_seq`` (default: the first).

        Ends once it has caught up with the durable seq; records that become durable while
        the iteration runs are included. Safe to run while the writer appends.
        """
        start = self._first_seq if from_seq is None else from_seq
        if start < self._first_seq:
            raise JournalSequenceError(
                f"seq {start} precedes the journal's first seq {self._first_seq}"
            )
        return self._read_records(start)

    def _read_records(self, from_seq: int) -> Iterator[tuple[int, bytes]]:
        limit = self._durable_seq
        if from_seq > limit:
            return
        with self._lock:
            firsts = list(self._segment_firsts)
        index = bisect.bisect_right(firsts, from_seq) - 1
        segment_first = firsts[index]
        while True:
            path = self._directory / segment_file_name(segment_first)
            next_seq = yield from self._read_segment(path, segment_first, from_seq, limit)
            if next_seq is None:
                return
            limit = self._durable_seq
            segment_first = next_seq

    def _read_segment(
        self, path: Path, first_seq: int, from_seq: int, limit: int
    ) -> Generator[tuple[int, bytes], None, int | None]:
        """Yield the records of one segment; returns the seq that follows them.

        Returns None instead when it caught up with the durable seq inside this segment.

        Bytes are only trusted for records at or below a durable seq read *before* the bytes
        were: later bytes may belong to a write still in progress.
        """
        unpack = _RECORD_HEADER.unpack_from
        crc32 = zlib.crc32
        try:
            fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
        except FileNotFoundError:
            raise JournalCorruption(path, 0, "segment file missing") from None
        try:
            buf = os.pread(fd, _READ_CHUNK_BYTES, 0)
            if len(buf) < SEGMENT_HEADER_BYTES:
                raise JournalCorruption(path, 0, "incomplete segment header")
            magic, header_seq = _SEGMENT_HEADER.unpack_from(buf, 0)
            if magic != SEGMENT_MAGIC or header_seq != first_seq:
                raise JournalCorruption(path, 0, "bad segment header")
            base = 0  # file offset of buf[0]
            pos = SEGMENT_HEADER_BYTES
            expected = first_seq
            while True:
                view = memoryview(buf)
                size = len(buf)
                while expected <= limit and pos + RECORD_HEADER_BYTES <= size:
                    crc, length, seq = unpack(buf, pos)
                    end = pos + RECORD_HEADER_BYTES + length
                    if end > size:
                        if length > MAX_PAYLOAD_BYTES:
                            raise JournalCorruption(path, base + pos, "record length out of range")
                        break
                    if crc32(view[pos + 4 : end]) != crc:
                        raise JournalCorruption(path, base + pos, "checksum mismatch")
                    if seq != expected:
                        raise JournalCorruption(
                            path, base + pos, f"seq {seq} where {expected} expected"
                        )
                    if seq >= from_seq:
                        yield seq, buf[pos + RECORD_HEADER_BYTES : end]
                    expected = seq + 1
                    pos = end
                view.release()
                if expected > limit:
                    newer = self._durable_seq
                    if newer <= limit:
                        return None
                    limit = newer
                    # Bytes past pos were read before they were known durable: read again.
                    base += pos
                    buf = b""
                    pos = 0
                data = os.pread(fd, _READ_CHUNK_BYTES, base + len(buf))
                if not data:
                    if pos == len(buf):
                        return expected  # the next records are in the next segment
                    raise JournalCorruption(path, base + pos, "durable record cut short")
                buf = buf[pos:] + data
                base += pos
                pos = 0
        finally:
            os.close(fd)

    # ---------------------------------------------------------------------------- closing

    def close(self) -> None:
        """Stop the committer if any, flush what is buffered and release the directory."""
        if self._closed:
            return
        committer = self._committer
        if committer is not None:
            committer.close()
        try:
            if self._failure is None:
                self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._durable_changed.notify_all()
            with self._io_lock:
                if self._active_fd is not None:
                    os.close(self._active_fd)
                    self._active_fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> FileJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _lock_directory(directory: Path) -> int | None:
    if fcntl is None:  # pragma: no cover
        return None
    fd = os.open(directory / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalError(f"journal {directory} is open in another writer") from None
    return fd


def _recover(
    directory: Path, start_seq: int, verify_all: bool, required_seq: int = 0
) -> tuple[list[tuple[int, Path]], RecoveryReport]:
    """Check the segments, cut a torn tail, fsync what a killed writer left unsynced."""
    segments = _list_segments(directory)
    if not segments:
        if start_seq - 1 < required_seq:
            raise JournalBehind(None, 0, start_seq - 1, required_seq)
        report = RecoveryReport(directory, 0, start_seq, start_seq - 1)
        return segments, report
    for index, (first, path) in enumerate(segments[:-1]):
        next_first = segments[index + 1][0]
        if verify_all:
            data = path.read_bytes()
            scan = _scan_segment(data, first)
            if scan.fault is not None:
                raise JournalCorruption(path, scan.end, scan.fault)
            if scan.last_seq != next_first - 1:
                raise JournalCorruption(
                    path, scan.end, f"ends at seq {scan.last_seq}, next segment starts {next_first}"
                )
        elif next_first <= first:  # pragma: no cover - names are unique and sorted
            raise JournalCorruption(path, 0, "segment order")
        # No fsync needed here: the writer fsyncs a segment before creating its successor.

    last_first, last_path = segments[-1]
    data = last_path.read_bytes()
    scan = _scan_segment(data, last_first)
    truncated_at: int | None = None
    if scan.fault is not None and not scan.fault_is_torn:
        raise JournalCorruption(last_path, scan.end, scan.fault)
    if scan.fault is not None:
        follower = _find_valid_record(data, scan.end + 1, scan.last_seq)
        if follower is not None:
            raise JournalCorruption(
                last_path,
                scan.end,
                f"{scan.fault}, but a valid record follows at byte {follower}",
            )
    if scan.last_seq < required_seq:
        # Checked before anything is cut: the damaged bytes stay for whoever investigates.
        raise JournalBehind(last_path, scan.end, scan.last_seq, required_seq)
    if scan.fault is not None:
        truncated_at = scan.end
        fd = os.open(last_path, os.O_WRONLY | _O_CLOEXEC)
        try:
            os.ftruncate(fd, truncated_at)
            os.fsync(fd)
        finally:
            os.close(fd)
    else:
        # A killed writer's last bytes may sit only in the page cache: make them durable
        # before anyone is told they are.
        _fsync_path(last_path)
    sync_directory(directory)
    report = RecoveryReport(
        directory,
        len(segments),
        segments[0][0],
        scan.last_seq,
        truncated_segment=last_path if truncated_at is not None else None,
        truncated_at=truncated_at,
        truncated_bytes=len(data) - truncated_at if truncated_at is not None else 0,
        reason=scan.fault if truncated_at is not None else None,
    )
    return segments, report


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GroupCommitStats:
    """What each group commit cost: seconds to write and fsync it, and records in it.

    Histograms with fixed upper bounds (``*_BOUNDS``, inclusive); ``*_counts[i]`` counts the
    commits in bucket ``i`` alone (not cumulative), and the last slot takes everything past
    the last bound. Only the writer thread changes them, with plain increments and no lock.
    Another thread may read them at any time: each value it reads is one the writer wrote,
    but a commit being recorded may show in one field and not yet in another, so a reader
    derives the count from ``*_counts`` rather than pairing fields.
    """

    SECONDS_BOUNDS: tuple[float, ...] = (
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0, 2.5, 5.0, 10.0,
    )  # fmt: skip
    RECORDS_BOUNDS: tuple[int, ...] = tuple(1 << bit for bit in range(17))  # 1 .. 65536

    __slots__ = ("records_counts", "records_sum", "seconds_counts", "seconds_sum")

    def __init__(self) -> None:
        self.seconds_counts = [0] * (len(self.SECONDS_BOUNDS) + 1)
        self.seconds_sum = 0.0
        self.records_counts = [0] * (len(self.RECORDS_BOUNDS) + 1)
        self.records_sum = 0

    def record(self, records: int, seconds: float) -> None:
        """One group commit of ``records`` records (at least one) that took ``seconds``."""
        self.seconds_counts[bisect.bisect_left(self.SECONDS_BOUNDS, seconds)] += 1
        self.seconds_sum += seconds
        # records <= 2**b exactly when (records - 1) has at most b bits
        bucket = min((records - 1).bit_length(), len(self.RECORDS_BOUNDS))
        self.records_counts[bucket] += 1
        self.records_sum += records


class GroupCommitter:
    """Background writer thread: many records per write and fsync.

    The thread sleeps until the first append of a batch wakes it, then (after lingering up
    to ``max_delay`` seconds for more, unless the batch is already ``max_batch_bytes``) takes
    all pending records, writes them with one ``write`` and one fsync, publishes the new
    durable seq and loops. Appends made during the fsync form the next batch. ``stats``
    (:class:`GroupCommitStats`) records each batch's write-and-fsync time and size; the
    append path does not touch it.
    """

    def __init__(
        self,
        journal: FileJournal,
        *,
        max_delay: float = DEFAULT_MAX_DELAY,
        thread_name: str = "journal-writer",
    ) -> None:
        if max_delay < 0:
            raise ValueError("max_delay must not be negative")
        with journal._lock:
            if journal._committer is not None:
                raise JournalError("journal already has a group committer")
            if journal._closed:
                raise JournalClosed("journal is closed")
            journal._committer = self
        self._journal = journal
        self._max_delay = max_delay
        self._stopping = False
        self.stats = GroupCommitStats()  # written by the writer thread only
        # Daemon: an interpreter exiting without close() must not hang; whatever was not
        # yet durable was not acknowledged either.
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()

    @property
    def journal(self) -> FileJournal:
        return self._journal

    def append(self, seq: int, payload: bytes) -> int:
        return self._journal.append(seq, payload)

    def append_many(self, first_seq: int, payloads: Sequence[bytes]) -> int:
        return self._journal.append_many(first_seq, payloads)

    def wait_durable(self, seq: int, timeout: float | None = None) -> bool:
        return self._journal.wait_durable(seq, timeout)

    def async_waiter(self, loop: asyncio.AbstractEventLoop | None = None) -> AsyncDurabilityWaiter:
        return AsyncDurabilityWaiter(self._journal, loop)

    def close(self) -> None:
        """Write everything appended so far, then stop the thread."""
        journal = self._journal
        with journal._lock:
            self._stopping = True
            journal._writer_wake.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with journal._lock:
            if journal._committer is self:
                journal._committer = None

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        journal = self._journal
        lock = journal._lock
        wake = journal._writer_wake
        max_delay = self._max_delay
        while True:
            with lock:
                while (
                    not journal._pending
                    and not journal._sealed
                    and not self._stopping
                    and journal._failure is None
                ):
                    journal._writer_idle = True
                    wake.wait()
                journal._writer_idle = False
                if journal._failure is not None:
                    return
                if not journal._pending and not journal._sealed:
                    return  # stopping, and everything is written
                if max_delay > 0 and not self._stopping:
                    deadline = journal._pending_since + max_delay
                    while not journal._sealed and not self._stopping:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        journal._writer_lingering = True
                        wake.wait(remaining)
                    journal._writer_lingering = False
            with journal._io_lock:
                with lock:
                    taken = journal._take_locked(take_all=False)
                if taken is not None:
                    started = time.perf_counter()
                    try:
                        journal._commit(*taken)
                    except JournalFailed:
                        return  # waiters and listeners have been told
                    self.stats.record(len(taken[1]), time.perf_counter() - started)


class _GroupFuture(asyncio.Future[None]):
    """A future shared by every record of a batch; cancelling one waiter must not cancel it.

    A task cancelled while awaiting it receives CancelledError once the batch is durable,
    because refusing ``cancel`` here makes asyncio deliver the cancellation on wake-up.
    """

    def cancel(self, msg: Any | None = None) -> bool:
        return False


class _Group:
    """Records up to ``seq`` that wait on one shared future."""

    __slots__ = ("future", "seq")

    def __init__(self, seq: int, future: asyncio.Future[None]) -> None:
        self.seq = seq
        self.future = future


class AsyncDurabilityWaiter:
    """Durability futures for an asyncio loop, one per batch rather than one per record.

    ``wait_durable(seq)`` returns a future that every record appended in the same batch
    shares; the writer thread resolves it with one ``call_soon_threadsafe`` per fsync.
    """

    def __init__(self, journal: FileJournal, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._journal = journal
        self._loop = asyncio.get_running_loop() if loop is None else loop
        # Increasing seqs; only the newest group may still grow.
        self._groups: collections.deque[_Group] = collections.deque()
        self._open_generation = -1
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._done.set_result(None)
        journal.add_durability_listener(self)

    def append(self, seq: int, payload: bytes) -> asyncio.Future[None]:
        """Append one record; the returned future completes once it is durable."""
        self._journal.append(seq, payload)
        return self.wait_durable(seq)

    def wait_durable(self, seq: int) -> asyncio.Future[None]:
        """A future that completes once ``seq`` is durable (raises JournalFailed on failure).

        Call it on the loop's thread. The future is shared with other records of the same
        batch, so it does not obey ``cancel()``; a task cancelled while awaiting it gets
        its CancelledError when the batch is durable. For a timeout, wait on
        ``asyncio.shield(future)``.
        """
        journal = self._journal
        if seq <= journal._durable_seq:
            return self._done
        if seq > journal._last_seq:
            raise JournalSequenceError(f"seq {seq} was not appended (last {journal._last_seq})")
        groups = self._groups
        if groups:
            newest = groups[-1]
            if seq <= newest.seq:
                for group in groups:
                    if group.seq >= seq:
                        return group.future
            if journal._generation == self._open_generation:
                # Appended to the same still-open batch: same fsync, same future.
                newest.seq = seq
                return newest.future
        future = _GroupFuture(loop=self._loop)
        failure = journal._failure
        if failure is not None:
            future.set_exception(failure)
            return future
        self._open_generation = journal._generation
        groups.append(_Group(seq, future))
        # The writer may have published between the first check and the append above
        # and found no group to resolve.
        if journal._durable_seq >= seq:
            self._resolve(journal._durable_seq)
        return future

    def close(self) -> None:
        self._journal.remove_durability_listener(self)

    # DurabilityListener, called on the writer thread
    def on_durable(self, durable_seq: int) -> None:
        if self._groups:
            self._call_on_loop(self._resolve, durable_seq)

    def on_failure(self, error: JournalFailed) -> None:
        self._call_on_loop(self._fail, error)

    def _call_on_loop(self, callback: Any, argument: Any) -> None:
        # A closed loop raises RuntimeError: nobody is left waiting there.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, argument)

    def _resolve(self, durable_seq: int) -> None:
        groups = self._groups
        while groups and groups[0].seq <= durable_seq:
            future = groups.popleft().future
            if not future.done():
                future.set_result(None)

    def _fail(self, error: JournalFailed) -> None:
        self._resolve(self._journal._durable_seq)
        while self._groups:
            future = self._groups.popleft().future
            if not future.done():
                future.set_exception(error)
