"""The sequencer: the single writer that orders intents, makes them durable and acknowledges.

Invariants:
- One writer. Seqs are consecutive from the journal's last seq + 1; timestamps never go
  backwards (``max(clock, last)``), so the engine sees one time line.
- A receipt (intent id, seq, timestamp) is returned only after the journal record holding
  that seq is durable (fsync'd). Nothing acknowledged is lost by a crash at any moment.
- When the journal fails, ``submit`` raises :class:`NotDurable` naming which of the call's
  submissions may be in the journal (durable before the failure, or in a batch whose write
  could not be undone); every other one is certainly not in it. A failure before anything
  was appended raises the journal's own :class:`JournalFailed`: nothing of the call is in it.
- Consumers (the engine executor, followers) see every durable record exactly once, in seq
  order, never a record that is not durable yet: results are never shown for something a
  crash could still take back.
- The sequencer never reads or changes engine state; it checks nothing but that it is open.
  Signature checks happen before ``submit``; nonce, margin and every other rule are the
  engine's, applied when the record executes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from asyncdex.messages.commands import Command
from asyncdex.sequencer.journal import AsyncDurabilityWaiter, GroupCommitter, JournalFailed
from asyncdex.sequencer.ordering import FirstComeFirstServed, OrderingPolicy
from asyncdex.sequencer.records import encode_record


class Submission(NamedTuple):
    command: Command
    signature: bytes = b""
    intent_id: bytes = b""  # the EIP-712 digest of a trader's intent; empty for system commands


class Receipt(NamedTuple):
    intent_id: bytes
    seq: int
    timestamp: int


class Sequenced(NamedTuple):
    seq: int
    timestamp: int
    command: Command
    signature: bytes
    intent_id: bytes


Consumer = Callable[[Sequence[Sequenced]], None]


class SequencerClosed(RuntimeError):
    """The sequencer is shutting down and takes no more submissions."""


class NotDurable(JournalFailed):
    """The journal failed after some of a call's submissions were appended.

    ``unknown`` lists ``(index in the call, receipt it would have had)`` for each submission
    that may be in the journal; the others certainly are not.
    """

    def __init__(self, failure: JournalFailed, unknown: list[tuple[int, Receipt]]) -> None:
        super().__init__(str(failure), failure.unknown)
        self.unknown_receipts = unknown


class _Call:
    """One ``submit`` call: its items, and a future set once all of them have seqs."""

    __slots__ = ("items", "receipts", "released", "remaining")

    def __init__(self, count: int) -> None:
        self.receipts: list[Receipt | None] = [None] * count
        self.remaining = count
        # created only when a policy holds some of the call's items back
        self.released: asyncio.Future[None] | None = None


class Sequencer:
    def __init__(
        self,
        committer: GroupCommitter,
        clock: Callable[[], int],
        policy: OrderingPolicy[tuple[_Call, int, Submission]] | None = None,
        start_time: int = 0,
    ) -> None:
        self._committer = committer
        self._clock = clock
        self._policy: OrderingPolicy[tuple[_Call, int, Submission]] = (
            policy if policy is not None else FirstComeFirstServed()
        )
        self._fcfs = type(self._policy) is FirstComeFirstServed
        self.next_seq = committer.journal.last_seq + 1
        self.last_timestamp = start_time
        self._unconsumed: deque[Sequenced] = deque()
        self._consumers: list[Consumer] = []
        self._waiter: AsyncDurabilityWaiter | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def add_consumer(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def _now(self) -> int:
        now = self._clock()
        if now > self.last_timestamp:
            self.last_timestamp = now
        return self.last_timestamp

    async def submit(
        self, submissions: Sequence[Submission], timestamp: int | None = None
    ) -> list[Receipt]:
        """Sequence ``submissions`` and return their receipts once they are all durable.

        ``timestamp`` stamps them with a time decided elsewhere (a committee's block time)
        instead of the clock's; time still never goes backwards."""
        if self._closed:
            raise SequencerClosed("sequencer is closed")
        loop = asyncio.get_running_loop()
        if self._waiter is None:
            self._waiter = self._committer.async_waiter(loop)
        call = _Call(len(submissions))
        if timestamp is None:
            now = self._now()
        else:
            now = self.last_timestamp = max(self.last_timestamp, timestamp)
        if self._fcfs:
            # first come, first served holds nothing: sequence the call as it stands
            self._sequence([(call, i, s) for i, s in enumerate(submissions)], now)
        else:
            for index, submission in enumerate(submissions):
                self._policy.add((call, index, submission), submission.command, now)
            self._release(now)
        if call.remaining:
            call.released = loop.create_future()
            self._arm_timer(loop)
            await call.released
        last_seq = max(receipt.seq for receipt in call.receipts if receipt is not None)
        try:
            await self._waiter.wait_durable(last_seq)
        except JournalFailed as failure:
            raise self._not_durable(failure, call) from failure
        self._deliver(self._committer.journal.durable_seq)
        return [receipt for receipt in call.receipts if receipt is not None]

    def _not_durable(self, failure: JournalFailed, call: _Call) -> NotDurable:
        durable = self._committer.journal.durable_seq
        unknown = [
            (index, receipt)
            for index, receipt in enumerate(call.receipts)
            if receipt is not None and (receipt.seq <= durable or receipt.seq in failure.unknown)
        ]
        return NotDurable(failure, unknown)

    def _release(self, now: int) -> None:
        self._sequence(self._policy.take_ready(now), now)

    def _sequence(self, ready: list[tuple[_Call, int, Submission]], now: int) -> None:
        if not ready:
            return
        first_seq = self.next_seq
        # encode everything, then append in one go, then advance: if encoding or appending
        # raises, the sequencer and the journal still agree on the next seq
        payloads = [encode_record(now, s.command, s.signature) for _, _, s in ready]
        self._committer.append_many(first_seq, payloads)
        self.next_seq = first_seq + len(ready)
        unconsumed = self._unconsumed
        new = tuple.__new__  # NamedTuple's own __new__ is Python code, this is C
        seq = first_seq
        for call, index, submission in ready:
            command, signature, intent_id = submission
            unconsumed.append(new(Sequenced, (seq, now, command, signature, intent_id)))
            call.receipts[index] = new(Receipt, (intent_id, seq, now))
            call.remaining -= 1
            if call.remaining == 0 and call.released is not None:
                call.released.set_result(None)
            seq += 1

    def _arm_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self._policy.next_deadline()
        if deadline is None or self._timer is not None:
            return
        delay = max(0.0, (deadline - self._clock()) / 1000)
        self._timer = loop.call_later(delay, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._release(self._now())
        self._arm_timer(loop)

    def _deliver(self, durable_seq: int) -> None:
        """Hand every durable, not yet consumed record to the consumers, in seq order."""
        pending = self._unconsumed
        if not pending or pending[0].seq > durable_seq:
            return
        batch = []
        while pending and pending[0].seq <= durable_seq:
            batch.append(pending.popleft())
        for consumer in self._consumers:
            consumer(batch)

    async def close(self) -> None:
        """Stop taking submissions; sequence what is held; make everything durable."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release(1 << 62)  # release whatever a batching policy still holds
        if self.next_seq > 1 and self._waiter is not None:
            await self._waiter.wait_durable(self.next_seq - 1)
        self._deliver(self._committer.journal.durable_seq)
