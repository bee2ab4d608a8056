"""FileJournal, GroupCommitter and AsyncDurabilityWaiter against real files."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncdex.sequencer import journal as journal_module
from asyncdex.sequencer.journal import (
    SEGMENT_HEADER_BYTES,
    AsyncDurabilityWaiter,
    FileJournal,
    GroupCommitter,
    JournalCorruption,
    JournalError,
    JournalFailed,
    JournalSequenceError,
    segment_file_name,
)

RECORD_HEADER = struct.Struct("<IIQ")


def payload_for(seq: int) -> bytes:
    """Deterministic payloads of varied length (8 to 308 bytes), so offsets differ."""
    length = (seq * 37) % 301
    return seq.to_bytes(8, "little") + bytes((seq + i) % 251 for i in range(length))


def write_journal(
    directory: Path, count: int, segment_bytes: int = journal_module.DEFAULT_SEGMENT_BYTES
) -> None:
    journal, _ = FileJournal.open(directory, segment_bytes=segment_bytes)
    for seq in range(1, count + 1):
        journal.append(seq, payload_for(seq))
    journal.flush()
    journal.close()


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def record_offsets(segment: Path) -> list[tuple[int, int, int]]:
    """(offset, seq, total length) of each record, parsed independently of the journal."""
    data = segment.read_bytes()
    found = []
    pos = SEGMENT_HEADER_BYTES
    while pos + RECORD_HEADER.size <= len(data):
        crc, length, seq = RECORD_HEADER.unpack_from(data, pos)
        end = pos + RECORD_HEADER.size + length
        if end > len(data) or zlib.crc32(data[pos + 4 : end]) != crc:
            break
        found.append((pos, seq, end - pos))
        pos = end
    return found


def read_all(directory: Path) -> list[tuple[int, bytes]]:
    journal, _ = FileJournal.open(directory)
    try:
        return list(journal.read())
    finally:
        journal.close()


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------- basics


def test_round_trip_before_and_after_reopen(tmp_path: Path) -> None:
    journal, report = FileJournal.open(tmp_path)
    assert (report.segments, report.first_seq, report.last_seq) == (0, 1, 0)
    for seq in range(1, 201):
        assert journal.append(seq, payload_for(seq)) == seq
    assert journal.last_seq == 200
    assert journal.durable_seq == 0
    assert list(journal.read()) == []  # nothing durable yet
    assert journal.flush() == 200
    assert journal.durable_seq == 200
    expected = [(seq, payload_for(seq)) for seq in range(1, 201)]
    assert list(journal.read()) == expected
    journal.close()

    journal, report = FileJournal.open(tmp_path)
    assert (report.last_seq, report.truncated) == (200, False)
    assert journal.durable_seq == journal.last_seq == 200
    assert list(journal.read()) == expected
    journal.close()


def test_empty_payload_and_start_seq(tmp_path: Path) -> None:
    journal, report = FileJournal.open(tmp_path, start_seq=1000)
    assert report.first_seq == 1000
    with pytest.raises(JournalSequenceError):
        journal.append(1, b"x")
    journal.append(1000, b"")
    journal.append(1001, b"y")
    journal.close()
    journal, report = FileJournal.open(tmp_path)
    assert (report.first_seq, report.last_seq) == (1000, 1001)
    assert list(journal.read()) == [(1000, b""), (1001, b"y")]
    with pytest.raises(JournalSequenceError):
        list(journal.read(999))
    journal.close()


def test_append_refuses_gaps_repeats_and_oversized_payloads(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path)
    journal.append(1, b"a")
    with pytest.raises(JournalSequenceError):
        journal.append(3, b"gap")
    with pytest.raises(JournalSequenceError):
        journal.append(1, b"repeat")
    with pytest.raises(ValueError):
        journal.append(2, bytes(journal_module.MAX_PAYLOAD_BYTES + 1))
    journal.append(2, b"b")
    journal.close()
    assert read_all(tmp_path) == [(1, b"a"), (2, b"b")]


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path)
    with pytest.raises(JournalError, match="another writer"):
        FileJournal.open(tmp_path)
    journal.close()
    FileJournal.open(tmp_path)[0].close()


def test_segments_roll_and_are_named_by_first_seq(tmp_path: Path) -> None:
    write_journal(tmp_path, 300, segment_bytes=2048)
    files = segments(tmp_path)
    assert len(files) > 10
    next_seq = 1
    for path in files:
        records = record_offsets(path)
        assert path.name == segment_file_name(records[0][1])
        assert records[0][1] == next_seq
        assert os.path.getsize(path) < 2048 + 16 + 400  # rolled once past the bound
        next_seq = records[-1][1] + 1
    assert next_seq == 301
    assert read_all(tmp_path) == [(seq, payload_for(seq)) for seq in range(1, 301)]


def test_read_from_the_middle_across_segments(tmp_path: Path) -> None:
    write_journal(tmp_path, 300, segment_bytes=2048)
    journal, _ = FileJournal.open(tmp_path)
    boundaries = [record_offsets(path)[0][1] for path in segments(tmp_path)]
    starts = {1, 2, 150, 299, 300, *boundaries, *(b - 1 for b in boundaries[1:])}
    for start in sorted(starts):
        got = list(journal.read(start))
        assert got == [(seq, payload_for(seq)) for seq in range(start, 301)], start
    assert list(journal.read(301)) == []
    journal.close()


def test_read_while_the_writer_appends(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path, segment_bytes=8192)
    committer = GroupCommitter(journal)
    stop = threading.Event()
    problems: list[str] = []
    longest = 0

    def follow() -> None:
        nonlocal longest
        while not stop.is_set():
            floor = journal.durable_seq
            records = list(journal.read(1))
            seqs = [seq for seq, _ in records]
            if seqs != list(range(1, len(seqs) + 1)) or len(seqs) < floor:
                problems.append(f"not a durable prefix: {len(seqs)} records, floor {floor}")
            if any(payload != payload_for(seq) for seq, payload in records):
                problems.append("payload mismatch")
            longest = max(longest, len(seqs))

    reader = threading.Thread(target=follow)
    reader.start()
    for seq in range(1, 3001):
        committer.append(seq, payload_for(seq))
        if seq % 100 == 0:
            committer.wait_durable(seq)
    committer.wait_durable(3000)
    stop.set()
    reader.join()
    assert problems == []
    assert list(journal.read(2990)) == [(s, payload_for(s)) for s in range(2990, 3001)]
    journal.close()


# ------------------------------------------------------------------------ torn tails


def test_torn_tail_at_every_offset_of_the_last_record(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_journal(source, 5)
    [segment] = segments(source)
    last_offset, last_seq, _ = record_offsets(segment)[-1]
    assert last_seq == 5
    full = segment.read_bytes()
    for cut in range(last_offset, len(full)):
        work = tmp_path / f"cut-{cut}"
        work.mkdir()
        (work / segment.name).write_bytes(full[:cut])
        journal, report = FileJournal.open(work)
        assert report.last_seq == 4
        assert report.truncated_bytes == cut - last_offset
        if cut > last_offset:
            assert report.truncated_segment == work / segment.name
            assert report.truncated_at == last_offset
            assert report.reason in ("incomplete record header", "incomplete payload")
        assert os.path.getsize(work / segment.name) == last_offset
        assert [seq for seq, _ in journal.read()] == [1, 2, 3, 4]
        journal.close()


def test_torn_segment_header_leaves_an_empty_segment_to_continue(tmp_path: Path) -> None:
    write_journal(tmp_path, 40, segment_bytes=1024)
    last = segments(tmp_path)[-1]
    first_in_last = record_offsets(last)[0][1]
    last.write_bytes(last.read_bytes()[:7])
    journal, report = FileJournal.open(tmp_path)
    assert report.last_seq == first_in_last - 1
    assert (report.truncated_at, report.truncated_bytes) == (0, 7)
    journal.append(first_in_last, payload_for(first_in_last))
    journal.close()
    assert read_all(tmp_path)[-1] == (first_in_last, payload_for(first_in_last))


def test_corrupt_checksum_of_the_last_record_is_cut(tmp_path: Path) -> None:
    write_journal(tmp_path, 10)
    [segment] = segments(tmp_path)
    last_offset, _, total = record_offsets(segment)[-1]
    flip_byte(segment, last_offset + total - 1)
    journal, report = FileJournal.open(tmp_path)
    assert report.reason == "checksum mismatch"
    assert (report.truncated_at, report.truncated_bytes) == (last_offset, total)
    assert report.last_seq == 9
    journal.close()


def test_appending_after_recovery_continues_the_seq(tmp_path: Path) -> None:
    write_journal(tmp_path, 10)
    [segment] = segments(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-3])
    journal, _ = FileJournal.open(tmp_path)
    assert journal.last_seq == 9
    with pytest.raises(JournalSequenceError):
        journal.append(11, b"skips 10")
    for seq in range(10, 16):
        journal.append(seq, payload_for(seq))
    journal.close()
    assert read_all(tmp_path) == [(seq, payload_for(seq)) for seq in range(1, 16)]


# ------------------------------------------------------------------ corruption raises


def test_corrupt_middle_record_raises_with_segment_and_offset(tmp_path: Path) -> None:
    write_journal(tmp_path, 10)
    [segment] = segments(tmp_path)
    offset, seq, _ = record_offsets(segment)[4]
    assert seq == 5
    flip_byte(segment, offset + RECORD_HEADER.size + 3)  # payload byte
    with pytest.raises(JournalCorruption) as caught:
        FileJournal.open(tmp_path)
    assert caught.value.segment == segment
    assert caught.value.offset == offset
    assert str(segment) in str(caught.value)
    assert str(offset) in str(caught.value)


def test_corrupt_length_field_in_the_middle_raises(tmp_path: Path) -> None:
    write_journal(tmp_path, 10)
    [segment] = segments(tmp_path)
    offset, _, _ = record_offsets(segment)[2]
    flip_byte(segment, offset + 6)  # high byte of the length: looks like a torn payload
    with pytest.raises(JournalCorruption) as caught:
        FileJournal.open(tmp_path)
    assert (caught.value.segment, caught.value.offset) == (segment, offset)
    assert "valid record follows" in caught.value.reason


def test_corrupt_record_in_an_earlier_segment_raises(tmp_path: Path) -> None:
    write_journal(tmp_path, 100, segment_bytes=1024)
    earlier = segments(tmp_path)[1]
    offset, _, total = record_offsets(earlier)[-1]  # even its last record
    flip_byte(earlier, offset + total - 1)
    with pytest.raises(JournalCorruption) as caught:
        FileJournal.open(tmp_path)
    assert (caught.value.segment, caught.value.offset) == (earlier, offset)

    # Opened without the full check, the damage is still caught when read.
    journal, _ = FileJournal.open(tmp_path, verify_all_segments=False)
    with pytest.raises(JournalCorruption) as caught:
        list(journal.read())
    assert (caught.value.segment, caught.value.offset) == (earlier, offset)
    journal.close()


def test_truncated_earlier_segment_raises(tmp_path: Path) -> None:
    write_journal(tmp_path, 100, segment_bytes=1024)
    earlier = segments(tmp_path)[0]
    offset, _, _ = record_offsets(earlier)[-1]
    earlier.write_bytes(earlier.read_bytes()[: offset + 5])
    with pytest.raises(JournalCorruption) as caught:
        FileJournal.open(tmp_path)
    assert (caught.value.segment, caught.value.offset) == (earlier, offset)


def test_missing_segment_raises(tmp_path: Path) -> None:
    write_journal(tmp_path, 100, segment_bytes=1024)
    segments(tmp_path)[2].unlink()
    with pytest.raises(JournalCorruption, match="next segment starts"):
        FileJournal.open(tmp_path)


# ------------------------------------------------------------------------ group commit


def test_group_commit_from_asyncio_every_awaited_record_survives(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path, segment_bytes=64 * 1024, max_batch_bytes=4096)
    acknowledged: list[int] = []

    async def main() -> None:
        committer = GroupCommitter(journal)
        waiter = committer.async_waiter()
        next_seq = journal.last_seq + 1

        async def trader(count: int) -> None:
            nonlocal next_seq
            for _ in range(count):
                seq = next_seq  # the sequencer assigns seqs on the loop: no await in between
                next_seq += 1
                committer.append(seq, payload_for(seq))
                await waiter.wait_durable(seq)
                assert journal.durable_seq >= seq
                acknowledged.append(seq)
                if seq % 7 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(trader(250) for _ in range(20)))
        waiter.close()
        committer.close()

    asyncio.run(main())
    journal.close()
    assert sorted(acknowledged) == list(range(1, 5001))
    assert read_all(tmp_path) == [(seq, payload_for(seq)) for seq in range(1, 5001)]


def test_group_commit_batches_many_records_per_fsync(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path)
    published: list[int] = []

    class Recorder:
        def on_durable(self, durable_seq: int) -> None:
            published.append(durable_seq)

        def on_failure(self, error: JournalFailed) -> None:
            raise AssertionError(error)

    journal.add_durability_listener(Recorder())
    with GroupCommitter(journal) as committer:
        for seq in range(1, 20_001):
            committer.append(seq, payload_for(seq))
        assert committer.wait_durable(20_000)
    assert published == sorted(published)
    assert published[-1] == 20_000
    assert len(published) < 20_000
    stats = journal.stats
    assert (stats.batches, stats.records) == (len(published), 20_000)
    assert stats.bytes_written == sum(os.path.getsize(path) for path in segments(tmp_path))
    assert sum(stats.fsync_histogram) == stats.batches
    assert (
        0 < stats.fsync_percentile(0.5) <= stats.fsync_percentile(0.99) <= stats.fsync_seconds_max
    )
    journal.close()


def test_group_commit_sync_interface_from_threads(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path, max_batch_bytes=2048)
    committer = GroupCommitter(journal, max_delay=0.0005)
    assign = threading.Lock()  # the single sequencer: seq assignment and append are one step
    next_seq = 1
    acknowledged: list[int] = []

    def client() -> None:
        nonlocal next_seq
        for _ in range(300):
            with assign:
                seq = next_seq
                next_seq += 1
                committer.append(seq, payload_for(seq))
            assert committer.wait_durable(seq, timeout=30)
            acknowledged.append(seq)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()  # also stops the committer
    assert sorted(acknowledged) == list(range(1, 1201))
    assert read_all(tmp_path) == [(seq, payload_for(seq)) for seq in range(1, 1201)]


def test_wait_durable_times_out_without_a_writer(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path)
    journal.append(1, b"a")
    assert journal.wait_durable(1, timeout=0.01) is False
    with pytest.raises(JournalSequenceError):
        journal.wait_durable(2, timeout=0.01)
    journal.flush()
    assert journal.wait_durable(1, timeout=0) is True
    journal.close()


def test_cancelling_one_waiter_does_not_cancel_its_batch(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path)

    async def main() -> None:
        waiter = AsyncDurabilityWaiter(journal)  # no committer: durable only on flush()
        first = waiter.append(1, b"a")
        shared = waiter.append(2, b"b")
        assert shared is first  # one future for the whole batch
        impatient = asyncio.create_task(_await(shared))
        await asyncio.sleep(0)
        impatient.cancel()
        await asyncio.sleep(0)
        assert not first.done()
        journal.flush()
        await first
        with pytest.raises(asyncio.CancelledError):
            await impatient
        assert waiter.wait_durable(2).done()
        waiter.close()

    asyncio.run(main())
    journal.close()


async def _await(future: asyncio.Future[None]) -> None:
    await future


def test_write_failure_stops_the_journal_and_fails_waiters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, _ = FileJournal.open(tmp_path)
    journal.append(1, b"durable")
    journal.flush()

    def broken_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_module, "_sync_file", broken_sync)

    async def main() -> None:
        committer = GroupCommitter(journal)
        waiter = committer.async_waiter()
        committer.append(2, b"lost")
        with pytest.raises(JournalFailed):
            await waiter.wait_durable(2)
        with pytest.raises(JournalFailed):
            committer.wait_durable(2)
        with pytest.raises(JournalFailed):
            committer.append(3, b"refused")
        waiter.close()

    asyncio.run(main())
    assert journal.durable_seq == 1
    failure = journal.failure
    assert failure is not None and not failure.unknown  # undone: certainly absent
    journal.close()
    monkeypatch.undo()
    journal, _ = FileJournal.open(tmp_path)
    # Record 2 reached the page cache before the fsync failed; the undo cut it off durably.
    assert list(journal.read()) == [(1, b"durable")]
    journal.close()


def full_disk(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """Writes of the journal fail as on a full disk once ``budget`` more bytes were written:
    the write that crosses it writes what fits, the next one raises ENOSPC."""
    left = [budget]
    real_write = os.write

    def write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if left[0] == 0:
                raise OSError(28, "No space left on device")
            written = real_write(fd, view[: left[0]])
            left[0] -= written
            view = view[written:]

    monkeypatch.setattr(journal_module, "_write_all", write_all)


@pytest.mark.parametrize("segment_bytes", [1 << 20, 200])
def test_full_disk_undoes_the_partly_written_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segment_bytes: int
) -> None:
    # 200-byte segments: the failing batch also rolls into segment files of its own.
    journal, _ = FileJournal.open(tmp_path, segment_bytes=segment_bytes)
    for seq in range(1, 4):
        journal.append(seq, payload_for(seq))
    journal.flush()
    before = {path.name: path.read_bytes() for path in segments(tmp_path)}
    full_disk(monkeypatch, 150)  # some whole records of the next batch fit, not all
    for seq in range(4, 14):
        journal.append(seq, payload_for(seq))
    with pytest.raises(JournalFailed) as caught:
        journal.flush()
    assert not caught.value.unknown
    assert "nothing after the last durable record" in str(caught.value)
    journal.close()
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in segments(tmp_path)} == before
    journal, _ = FileJournal.open(tmp_path, segment_bytes=segment_bytes)
    assert journal.last_seq == 3
    journal.close()


def test_a_failed_batch_that_cannot_be_undone_is_reported_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, _ = FileJournal.open(tmp_path)
    journal.append(1, payload_for(1))
    journal.flush()

    def broken(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_module, "_sync_file", broken)
    monkeypatch.setattr(journal_module.os, "ftruncate", broken)
    for seq in (2, 3):
        journal.append(seq, payload_for(seq))
    with pytest.raises(JournalFailed) as caught:
        journal.flush()
    assert caught.value.unknown == range(2, 4)
    with pytest.raises(JournalFailed):
        journal.append(4, payload_for(4))
    assert journal.failure is caught.value
    journal.close()
    monkeypatch.undo()
    # written but not known durable: at the next open they are there or not, never half
    journal, _ = FileJournal.open(tmp_path)
    assert journal.last_seq in (1, 2, 3)
    journal.close()


CRASH_WRITER = """
import sys
from asyncdex.sequencer.journal import FileJournal, GroupCommitter

directory, segment_bytes = sys.argv[1], int(sys.argv[2])
journal, report = FileJournal.open(directory, segment_bytes=segment_bytes)
committer = GroupCommitter(journal)
seq = journal.last_seq
while True:
    seq += 1
    committer.append(seq, seq.to_bytes(8, "little") * (1 + seq % 20))
    if seq % 50 == 0:
        committer.wait_durable(seq)
        sys.stdout.write(f"{seq}\\n")
        sys.stdout.flush()
"""


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rounds = random.Random(7)
    for _round in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, str(tmp_path), "65536"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        acknowledged = 0
        for _ in range(rounds.randint(20, 60)):
            acknowledged = int(writer.stdout.readline())
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        journal, _ = FileJournal.open(tmp_path)
        records = list(journal.read())
        journal.close()
        assert len(records) >= acknowledged
        assert [seq for seq, _ in records] == list(range(1, len(records) + 1))
        for seq, payload in records:
            assert payload == seq.to_bytes(8, "little") * (1 + seq % 20)


# ---------------------------------------------------------------------- crash property


def stream_cut(directory: Path, cut: int) -> None:
    """Leave on disk only the first ``cut`` bytes of the segment stream, as a crash can.

    Segments are written in order and each is fsync'd before the next one exists, so any
    crash leaves complete segments followed by a prefix of one segment.
    """
    for path in segments(directory):
        size = os.path.getsize(path)
        if cut >= size:
            cut -= size
        elif cut > 0:
            path.write_bytes(path.read_bytes()[:cut])
            cut = 0
        else:
            path.unlink()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=60),
    flush_points=st.sets(st.integers(min_value=1, max_value=60)),
    segment_bytes=st.sampled_from([512, 1500, 1 << 20]),
    data=st.data(),
)
def test_any_crash_cut_recovers_a_prefix_holding_every_flushed_record(
    payloads: list[bytes],
    flush_points: set[int],
    segment_bytes: int,
    data: st.DataObject,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "journal"
        journal, _ = FileJournal.open(directory, segment_bytes=segment_bytes)
        stream_size_at_flush: list[tuple[int, int]] = [(0, 0)]
        for seq, payload in enumerate(payloads, start=1):
            journal.append(seq, payload)
            if seq in flush_points or seq == len(payloads):
                journal.flush()
                stream = sum(os.path.getsize(path) for path in segments(directory))
                stream_size_at_flush.append((stream, seq))
        journal.close()
        total = stream_size_at_flush[-1][0]
        ends = []  # stream offset where each record ends
        base = 0
        for path in segments(directory):
            ends += [base + offset + length for offset, _, length in record_offsets(path)]
            base += os.path.getsize(path)

        cut = data.draw(st.integers(min_value=0, max_value=total), label="cut")
        stream_cut(directory, cut)
        flushed_before_cut = max(seq for size, seq in stream_size_at_flush if size <= cut)
        complete_before_cut = sum(1 for end in ends if end <= cut)

        recovered = read_all(directory)
        assert recovered == list(enumerate(payloads, start=1))[: len(recovered)]
        assert len(recovered) >= flushed_before_cut
        assert len(recovered) == complete_before_cut


def test_recovery_cut_is_idempotent(tmp_path: Path) -> None:
    write_journal(tmp_path, 20)
    [segment] = segments(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-10])
    first = FileJournal.open(tmp_path)
    first[0].close()
    second = FileJournal.open(tmp_path)
    second[0].close()
    assert first[1].truncated and not second[1].truncated
    assert first[1].last_seq == second[1].last_seq == 19
