"""Committed blocks into the member's journal and engine, in height order, exactly once.

Invariants:
- The member's journal is a pure function of the committed log: for each block, in height
  order, a ``CommitteeBlock(height, proposer, signers)`` marker and then the submissions of its
  items (``ItemDecoder.submissions_of``), all stamped with the block's timestamp. Every honest
  member therefore journals the same records at the same seqs and computes the same state
  roots; replay of the journal is replay of the committed log.
- Blocks are journaled one after another, each only after the previous one is durable, so
  the journal always ends inside the last block it holds. At start, the last marker in the
  journal says which block that is and how many of its records are there; the rest of that
  block and every later committed block are journaled again from the member's committed log.
  Nothing certified is skipped and nothing is journaled twice, whatever the moment of a crash.
- Time is the block's: the engine never sees a member's own clock in committee mode.
- With sealed intents (``sealed``, a :class:`~asyncdex.committee.sealed.SealedReveal`), a
  block's submissions are its marker, then the intents of the epochs the block closes (in
  their certified order), then its own items: a pure function of the committed log and the
  epochs' keys, which are unique. Such a block is journaled only once this member holds those
  keys (``SealedReveal.keys_for`` waits for them); later blocks wait behind it. The sealed log
  is rebuilt from the committed blocks below the first one journaled at start; the member's
  shares for the epochs a block closes go out at its commit (``SealedReveal.on_committed``)
  and, should that not have happened (a restart), when the executor waits for their key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from asyncdex.committee.items import ItemDecoder
from asyncdex.committee.sealed import KIND_SEALED, SealedReveal
from asyncdex.consensus.messages import Block, QuorumCertificate
from asyncdex.fairness.sealing import sealed_intent_id
from asyncdex.messages.commands import CommitteeBlock
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.records import decode_trusted_record
from asyncdex.sequencer.sequencer import Sequencer, Submission

_log = logging.getLogger(__name__)

# A block holds at most this many items (``ReplicaConfig.max_block_items``'s ceiling): the
# last marker is always within this many records of the journal's end.
MAX_BLOCK_RECORDS = 100_000
_SEALED_KIND = bytes((KIND_SEALED,))


class Ordered(NamedTuple):
    """Where a committed intent was ordered: its block, and the certificate that committed it."""

    height: int
    view: int
    block_hash: bytes
    certificate: QuorumCertificate | None
    at_ms: int | None  # this member's clock when it saw the commit (None: before a restart)


def signer_bitmap(qc: QuorumCertificate) -> int:
    bitmap = 0
    for index in qc.signers:
        bitmap |= 1 << index
    return bitmap


def block_marker(block: Block) -> CommitteeBlock:
    return CommitteeBlock(block.height, block.proposer, signer_bitmap(block.justify))


def resume_point(journal: FileJournal, window: int = MAX_BLOCK_RECORDS) -> tuple[int, int]:
    """(height of the last block the journal holds, how many of its items it holds); (0, 0)
    for a journal with no block yet."""
    last = journal.last_seq
    if last < journal.first_seq:
        return 0, 0
    start = max(journal.first_seq, last - window)
    height, items = 0, 0
    for _, payload in journal.read(start):
        command = decode_trusted_record(payload).command
        if type(command) is CommitteeBlock:
            height, items = command.height, 0
        else:
            items += 1
    return height, items


class BlockExecutor:
    """Feeds committed blocks to the sequencer; knows which intents are ordered where."""

    def __init__(
        self,
        sequencer: Sequencer,
        decoder: ItemDecoder,
        journal: FileJournal,
        committed: Callable[[int], Iterable[tuple[Block, QuorumCertificate | None]]],
        *,
        clock: Callable[[], int] | None = None,
        remember: int = 100_000,
        sealed: SealedReveal | None = None,
    ) -> None:
        self._clock = clock
        self._sealed = sealed
        self._sequencer = sequencer
        self._decoder = decoder
        self._committed = committed
        self._resume_height, self._resume_items = resume_point(journal)
        # the next height to journal (blocks below it are in the journal): the block the
        # journal ends in, to finish it, or the first block of an empty journal
        self.next_height = self._resume_height or 1
        self._queue: asyncio.Queue[tuple[Block, QuorumCertificate | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ordered: OrderedDict[bytes, Ordered] = OrderedDict()
        self._remember = remember
        self.failed: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None

    # ----------------------------------------------------------------- intake of commits

    def on_commit(self, blocks: Sequence[Block], certificate: QuorumCertificate) -> None:
        """The member's commit callback: blocks in height order, each exactly once."""
        now = None if self._clock is None else self._clock()
        for block in blocks:
            self._note_ordered(block, certificate, now)
            self._queue.put_nowait((block, certificate))

    def ordered(self, intent_id: bytes) -> Ordered | None:
        return self._ordered.get(intent_id)

    def _note_ordered(
        self, block: Block, certificate: QuorumCertificate | None, at_ms: int | None = None
    ) -> None:
        where = Ordered(block.height, block.view, block.hash, certificate, at_ms)
        ordered = self._ordered
        intent_id_of = self._decoder.intent_id_of
        for item in block.payload:
            intent_id = intent_id_of(item)
            if intent_id is not None:
                ordered[intent_id] = where
            elif item[:1] == _SEALED_KIND:
                ordered[sealed_intent_id(item[1:])] = where  # ordered while still sealed
        while len(ordered) > self._remember:
            ordered.popitem(last=False)

    def note_history(self, blocks: int, committed_height: int) -> None:
        """Where the intents of the last ``blocks`` committed blocks were ordered (a restarted
        member answers for intents it executed before it stopped)."""
        for block, certificate in self._committed(max(1, committed_height - blocks + 1)):
            if block.height >= self.next_height:
                break  # journaled below, noted there
            self._note_ordered(block, certificate)

    # ----------------------------------------------------------------- journaling

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        try:
            if self._sealed is not None and self.next_height > 1:
                # the sealed log of the blocks journaled before this start (pure, no I/O)
                self._sealed.rebuild(
                    (block.height, block.timestamp, block.payload)
                    for block, _ in self._committed(1)
                    if block.height < self.next_height
                )
            # what was committed before this process started (or while it was down)
            for block, certificate in self._committed(self.next_height):
                self._note_ordered(block, certificate)
                await self._journal_block(block)
            while True:
                block, _ = await self._queue.get()
                if block.height < self.next_height:
                    continue  # journaled during the catch-up above
                await self._journal_block(block)
        except asyncio.CancelledError:
            raise
        except BaseException as failure:
            self.failed = failure
            _log.exception("committed block could not be journaled; stopping")
            if self.on_failure is not None:
                self.on_failure(failure)

    async def _journal_block(self, block: Block) -> None:
        if block.height != self.next_height:
            raise RuntimeError(
                f"committed block {block.height} arrived while block {self.next_height} is next"
            )
        submissions = [Submission(block_marker(block))]
        if self._sealed is None:
            submissions += self._decoder.submissions_of(block.payload)
        else:
            # a block that closes epochs holding sealed intents opens them first: it waits
            # for their keys (every member journals the same records, only later)
            closing = self._sealed.log.closes(block.timestamp)
            keys = await self._sealed.keys_for(closing) if closing else None
            revealed, others, _ = self._sealed.execute_block(
                block.height, block.timestamp, block.payload, keys
            )
            submissions += self._decoder.submissions_of([*revealed, *others])
        if block.height == self._resume_height:
            # the journal ends inside this block: its marker and first items are there already
            submissions = submissions[1 + self._resume_items :]
            self._resume_height = 0
        if submissions:
            submitted = self._sequencer.submit(submissions, timestamp=block.timestamp)
            if self._sealed is not None:
                await asyncio.gather(submitted, self._sealed.save_keys())
            else:
                await submitted
        elif self._sealed is not None:
            await self._sealed.save_keys()
        self.next_height = block.height + 1
