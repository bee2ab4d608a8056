"""The batcher: applies sequenced records to the engine and cuts them into batches.

Invariants:
- A batch is a run of consecutive records, at least one: batch n+1 starts at the seq after
  batch n's last. Each batch's state root is the engine's root after its last record.
- Cut points are a pure function of the record stream (seqs and sequenced timestamps), never
  of a wall clock: a batch closes after ``max_records`` records, or before the first record
  whose timestamp reaches the end of the batch's time window (windows are ``max_interval_ms``
  long, aligned to multiples of it). A node that replays its journal from genesis therefore
  re-cuts exactly the batches it posted before, so restarting never changes a committed batch.
  An idle venue's open batch is closed by the next sequenced record; the node sequences a time
  tick (``AdvanceTime``) at least every window so that one always comes.
- Every cut batch goes to ``sink`` once, in batch-number order; ``batches`` keeps each one's
  (number, first seq, last seq, timestamps, roots), without its data, so any seq can be mapped
  to the batch that holds it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from asyncdex.engine.reader import EngineLike
from asyncdex.messages.commands import Command
from asyncdex.messages.events import Event, Withdrawn
from asyncdex.sequencer.sequencer import Sequenced
from asyncdex.settlement.batch import BatchBuilder, CutBatch


@dataclass(frozen=True, slots=True)
class BatchSpan:
    """Where a cut batch sits in the record stream (a ``CutBatch`` without its data)."""

    number: int
    first_seq: int
    last_seq: int
    first_timestamp: int
    last_timestamp: int
    state_root: bytes
    withdrawals_root: bytes


class Batcher:
    """A sequencer consumer (``__call__``) that applies records and cuts batches.

    When another component applies records (an engine executor), it calls ``before_record``
    before applying each record and ``after_record`` after, instead of passing records here.
    """

    def __init__(
        self,
        engine: EngineLike,
        sink: Callable[[CutBatch], None],
        *,
        max_records: int = 10_000,
        max_interval_ms: int = 1_000,
        genesis_root: bytes | None = None,
    ) -> None:
        if max_records < 1 or max_interval_ms < 1:
            raise ValueError("max_records and max_interval_ms must be positive")
        self.engine = engine
        self.sink = sink
        self.max_records = max_records
        self.max_interval_ms = max_interval_ms
        # Batch 0 is the contract's genesis root: the root of the state the batcher starts from.
        self.genesis_root = engine.state_root() if genesis_root is None else genesis_root
        self.builder = BatchBuilder(self.genesis_root)
        self.batches: list[BatchSpan] = []
        self._last_seqs: list[int] = []
        self._first_seq = 0  # 0: no batch open
        self._first_timestamp = 0
        self._window_end = 0
        self._last_seq = 0
        self._last_timestamp = 0
        self._count = 0
        self._withdrawals: list[Withdrawn] = []

    # -- consumer

    def __call__(self, records: Sequence[Sequenced]) -> None:
        for record in records:
            self.process_record(record.seq, record.timestamp, record.command)

    def process_record(self, seq: int, timestamp: int, command: Command) -> list[Event]:
        self.before_record(timestamp)
        events = self.engine.apply(command, timestamp)
        self.after_record(seq, timestamp, events)
        return events

    # -- hooks for an external executor

    def before_record(self, timestamp: int) -> None:
        """Close the open batch if a record at ``timestamp`` falls past its time window."""
        if self._count and timestamp >= self._window_end:
            self._cut()

    def after_record(self, seq: int, timestamp: int, events: Sequence[Event]) -> None:
        if self._count == 0:
            self._first_seq = seq
            self._first_timestamp = timestamp
            self._window_end = timestamp - timestamp % self.max_interval_ms + self.max_interval_ms
        elif seq != self._last_seq + 1:
            raise ValueError(f"record {seq} after record {self._last_seq}: seqs must be gapless")
        self._last_seq = seq
        self._last_timestamp = timestamp
        self._count += 1
        for event in events:
            if type(event) is Withdrawn:
                self._withdrawals.append(event)
        if self._count >= self.max_records:
            self._cut()

    # -- queries

    @property
    def open_records(self) -> int:
        """Records applied but not yet in a batch."""
        return self._count

    def batch_of_seq(self, seq: int) -> BatchSpan | None:
        """The batch holding record ``seq``, or None while it is in no batch yet."""
        index = bisect_left(self._last_seqs, seq)
        if index == len(self.batches) or self.batches[index].first_seq > seq:
            return None
        return self.batches[index]

    # -- internals

    def _cut(self) -> None:
        batch = self.builder.cut(
            self.engine.commitment(),
            self._withdrawals,
            self._first_seq,
            self._last_seq,
            self._first_timestamp,
            self._last_timestamp,
        )
        self.batches.append(
            BatchSpan(
                batch.number,
                batch.first_seq,
                batch.last_seq,
                batch.first_timestamp,
                batch.last_timestamp,
                batch.state_root,
                batch.withdrawals_root,
            )
        )
        self._last_seqs.append(batch.last_seq)
        self._count = 0
        self._withdrawals = []
        self.sink(batch)
