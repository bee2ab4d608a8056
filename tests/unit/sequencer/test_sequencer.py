"""The sequencer over a real fsync'd journal: durability before receipts, order, time."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from asyncdex.messages.commands import (
    AdvanceTime,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    Signed,
    TimeInForce,
)
from asyncdex.sequencer import journal as journal_module
from asyncdex.sequencer.journal import FileJournal, GroupCommitter
from asyncdex.sequencer.ordering import CancelFirstBatches, FirstComeFirstServed, priority_class
from asyncdex.sequencer.records import decode_record
from asyncdex.sequencer.sequencer import (
    Receipt,
    Sequenced,
    Sequencer,
    SequencerClosed,
    Submission,
)

ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
START_MS = 1_767_225_600_000


def order(index: int, tif: int = TimeInForce.GTC) -> PlaceOrder:
    return PlaceOrder(ALICE, 0, index % 2 == 0, 600_000 + index, 10 + index, tif)


def submission(index: int, command: Command | None = None) -> Submission:
    command = order(index) if command is None else command
    return Submission(command, bytes([index % 256]) * 65, index.to_bytes(32, "big"))


class SteppingClock:
    """A millisecond clock that moves by the given steps, backwards included, then stays."""

    def __init__(self, start: int, steps: Sequence[int] = ()) -> None:
        self.now = start
        self.steps = list(steps)
        self.readings: list[int] = []

    def __call__(self) -> int:
        if self.steps:
            self.now += self.steps.pop(0)
        self.readings.append(self.now)
        return self.now


def wall_clock() -> int:
    return time.time_ns() // 1_000_000


def read_records(directory: Path) -> list[tuple[int, int, Command, bytes]]:
    journal, _ = FileJournal.open(directory)
    try:
        return [(seq, *decode_record(payload)) for seq, payload in journal.read()]
    finally:
        journal.close()


async def run_sequencer(
    directory: Path,
    body: Callable[[Sequencer, FileJournal], object],
    clock: Callable[[], int] = wall_clock,
    policy: object = None,
) -> None:
    """Open journal + committer + sequencer, run ``body``, close all of it in order."""
    journal, _ = FileJournal.open(directory)
    committer = GroupCommitter(journal)
    sequencer = Sequencer(committer, clock, policy)  # type: ignore[arg-type]
    try:
        await body(sequencer, journal)  # type: ignore[misc]
    finally:
        await sequencer.close()
        committer.close()
        journal.close()


@pytest.fixture
def slow_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fsync takes 2 ms more: a receipt sent before durability would be caught."""
    real = journal_module._sync_file

    def slow(fd: int) -> None:
        time.sleep(0.002)
        real(fd)

    monkeypatch.setattr(journal_module, "_sync_file", slow)


def test_receipts_and_consumers_only_see_durable_seqs(tmp_path: Path, slow_fsync: None) -> None:
    consumed: list[int] = []
    violations: list[str] = []

    async def body(sequencer: Sequencer, journal: FileJournal) -> None:
        def consumer(records: Sequence[Sequenced]) -> None:
            durable = journal.durable_seq
            for record in records:
                if record.seq > durable:
                    violations.append(f"consumer saw {record.seq} with durable {durable}")
                consumed.append(record.seq)

        sequencer.add_consumer(consumer)
        rng = random.Random(1)

        async def trader(first: int) -> None:
            for call in range(15):
                size = rng.randint(1, 20)
                batch = [submission(first + call * 20 + i) for i in range(size)]
                receipts = await sequencer.submit(batch)
                durable = journal.durable_seq
                if max(receipt.seq for receipt in receipts) > durable:
                    violations.append(f"receipts up to {receipts[-1].seq}, durable {durable}")
                assert [r.intent_id for r in receipts] == [s.intent_id for s in batch]

        await asyncio.gather(*(trader(t * 1000) for t in range(12)))

    asyncio.run(run_sequencer(tmp_path, body))
    assert violations == []
    assert consumed == list(range(1, len(consumed) + 1))
    assert len(consumed) == len(read_records(tmp_path))


def test_seqs_are_consecutive_across_calls_and_restarts(tmp_path: Path) -> None:
    receipts: list[Receipt] = []

    async def body(sequencer: Sequencer, journal: FileJournal) -> None:
        for size in (1, 3, 1, 7):
            receipts.extend(await sequencer.submit([submission(i) for i in range(size)]))
        batches = [[submission(i) for i in range(n)] for n in (2, 5, 1, 4)]
        for result in await asyncio.gather(*(sequencer.submit(b) for b in batches)):
            receipts.extend(result)

    asyncio.run(run_sequencer(tmp_path, body))
    assert sorted(r.seq for r in receipts) == list(range(1, 25))
    asyncio.run(run_sequencer(tmp_path, body))  # reopened: continues at 25
    assert sorted(r.seq for r in receipts) == list(range(1, 49))
    assert [seq for seq, *_ in read_records(tmp_path)] == list(range(1, 49))


def test_timestamps_never_go_backwards(tmp_path: Path) -> None:
    clock = SteppingClock(START_MS, steps=[0, 5, -3, -100, 2, 200, -50, 1, 0, -1, 60])
    stamps: list[int] = []

    async def body(sequencer: Sequencer, journal: FileJournal) -> None:
        for index in range(12):
            stamps.extend(r.timestamp for r in await sequencer.submit([submission(index)]))

    asyncio.run(run_sequencer(tmp_path, body, clock=clock))
    assert min(clock.readings) < START_MS  # the clock did go back
    assert stamps == sorted(stamps)
    # each stamp is the latest time seen so far: the clock held, never invented
    assert set(stamps) <= set(itertools.accumulate(clock.readings, max))
    assert stamps[-1] == max(clock.readings) == START_MS + 114
    assert [timestamp for _, timestamp, *_ in read_records(tmp_path)] == stamps


CANCEL_FIRST_MIX: list[Command] = [
    order(0),  # rest
    CancelOrder(ALICE, 0, 7),  # cancel
    order(1, TimeInForce.ALO),  # post-only
    Signed(BOB, 1, 0, order(2, TimeInForce.IOC)),  # rest
    Signed(BOB, 2, 0, CancelByClientId(BOB, 0, 3)),  # cancel
    ModifyOrder(ALICE, 0, 9, 600_100, 5),  # rest: a modify is not a cancel
    Signed(ALICE, 3, 0, order(3, TimeInForce.ALO)),  # post-only
    CancelAll(BOB),  # cancel
    Deposit(BOB, 5, 0),  # rest
    AdvanceTime(),  # rest
]


WINDOW_MS = 5


def arrive_in_one_window(policy: object, tmp_path: Path) -> list[Command]:
    """Submit the mix as separate concurrent calls in one window; return the journal's order.

    The clock stands still while the calls arrive and moves past the window afterwards, so
    however slowly the machine runs, every call lands in the same window.
    """
    clock = SteppingClock(START_MS)

    async def body(sequencer: Sequencer, journal: FileJournal) -> None:
        calls = [
            asyncio.create_task(sequencer.submit([submission(i, command)]))
            for i, command in enumerate(CANCEL_FIRST_MIX)
        ]
        await asyncio.sleep(0)  # every call has run up to its first wait
        clock.now += WINDOW_MS
        results = await asyncio.gather(*calls)
        assert sorted(r[0].seq for r in results) == list(range(1, len(CANCEL_FIRST_MIX) + 1))
        assert {r[0].timestamp for r in results} <= {START_MS, START_MS + WINDOW_MS}

    asyncio.run(run_sequencer(tmp_path, body, clock=clock, policy=policy))
    return [command for _seq, _ts, command, _sig in read_records(tmp_path)]


def test_cancel_first_batches_sequence_cancels_then_post_only_then_the_rest(
    tmp_path: Path,
) -> None:
    sequenced = arrive_in_one_window(CancelFirstBatches(window_ms=WINDOW_MS), tmp_path)
    by_class = [[c for c in CANCEL_FIRST_MIX if priority_class(c) == k] for k in (0, 1, 2)]
    assert [len(group) for group in by_class] == [3, 2, 5]
    assert sequenced == by_class[0] + by_class[1] + by_class[2]


def test_first_come_first_served_keeps_arrival_order(tmp_path: Path) -> None:
    assert arrive_in_one_window(FirstComeFirstServed(), tmp_path) == CANCEL_FIRST_MIX


def test_cancel_first_batches_hold_until_the_window_closes() -> None:
    policy: CancelFirstBatches[str] = CancelFirstBatches(window_ms=10)
    policy.add("order", order(0), 100)
    policy.add("cancel", CancelOrder(ALICE, 0, 1), 105)
    assert policy.take_ready(109) == []
    assert policy.next_deadline() == 110
    assert policy.take_ready(110) == ["cancel", "order"]
    assert policy.next_deadline() is None
    policy.add("late", order(1), 200)  # a new window opens with the next arrival
    assert policy.take_ready(205) == [] and policy.take_ready(210) == ["late"]


def test_close_sequences_what_the_policy_still_holds(tmp_path: Path) -> None:
    receipts: list[Receipt] = []
    consumed: list[int] = []

    async def body(sequencer: Sequencer, journal: FileJournal) -> None:
        sequencer.add_consumer(lambda records: consumed.extend(r.seq for r in records))

        async def submit(index: int) -> None:
            receipts.extend(await sequencer.submit([submission(index), submission(index + 50)]))

        # a window far longer than the test: only close() can release these
        tasks = [asyncio.create_task(submit(i)) for i in range(4)]
        await asyncio.sleep(0.01)
        assert receipts == [] and journal.last_seq == 0
        await sequencer.close()
        await asyncio.gather(*tasks)
        with pytest.raises(SequencerClosed):
            await sequencer.submit([submission(99)])

    asyncio.run(run_sequencer(tmp_path, body, policy=CancelFirstBatches(window_ms=600_000)))
    assert sorted(r.seq for r in receipts) == list(range(1, 9))
    assert consumed == list(range(1, 9))


def test_reopened_journal_holds_every_receipted_record(tmp_path: Path) -> None:
    sent: dict[bytes, Submission] = {}
    receipts: list[Receipt] = []

    async def body(sequencer: Sequencer, journal: FileJournal) -> None:
        rng = random.Random(5)

        async def client(base: int) -> None:
            for call in range(10):
                batch = [submission(base + call * 50 + i) for i in range(rng.randint(1, 50))]
                sent.update((s.intent_id, s) for s in batch)
                receipts.extend(await sequencer.submit(batch))

        await asyncio.gather(*(client(c * 10_000) for c in range(8)))

    asyncio.run(run_sequencer(tmp_path, body, policy=CancelFirstBatches(window_ms=1)))
    records = {
        seq: (timestamp, command, sig) for seq, timestamp, command, sig in read_records(tmp_path)
    }
    assert len(receipts) == len(sent) == len(records)
    for receipt in receipts:
        timestamp, command, signature = records[receipt.seq]
        submitted = sent[receipt.intent_id]
        assert (command, signature, timestamp) == (
            submitted.command, submitted.signature, receipt.timestamp
        )  # fmt: skip


CRASHING_SEQUENCER = textwrap.dedent(
    """
    import asyncio, sys, time
    from asyncdex.messages.commands import PlaceOrder
    from asyncdex.sequencer.journal import FileJournal, GroupCommitter
    from asyncdex.sequencer.sequencer import Sequencer, Submission

    def command(i):
        return PlaceOrder(b"\\xa1" * 20, 0, i % 2 == 0, 600_000 + i % 500, 1 + i)

    async def main():
        journal, _ = FileJournal.open(sys.argv[1])
        sequencer = Sequencer(GroupCommitter(journal), lambda: time.time_ns() // 1_000_000)

        async def client(first):
            i = first
            while True:
                batch = [Submission(command(i + k), b"", (i + k).to_bytes(8, "big"))
                         for k in range(1 + i % 7)]
                i += len(batch) * 16
                for receipt in await sequencer.submit(batch):
                    index = int.from_bytes(receipt.intent_id, "big")
                    sys.stdout.write(f"{index} {receipt.seq}\\n")
                sys.stdout.flush()

        await asyncio.gather(*(client(c) for c in range(16)))

    asyncio.run(main())
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_receipted_records_survive_sigkill(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SEQUENCER, str(tmp_path)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    receipted: list[tuple[int, int]] = []
    try:
        for line in proc.stdout:
            index, seq = map(int, line.split())
            receipted.append((index, seq))
            if len(receipted) >= 3_000:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(receipted) >= 3_000, "the sequencer process stopped early"
    records = {seq: command for seq, _ts, command, _sig in read_records(tmp_path)}
    for index, seq in receipted:
        assert records[seq] == PlaceOrder(
            ALICE, 0, index % 2 == 0, 600_000 + index % 500, 1 + index
        )
