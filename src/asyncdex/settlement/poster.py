"""The poster: commits cut batches to the settlement contract, in order, exactly once each.

Invariants:
- Batch numbers reach the chain consecutively and once: before sending anything, on start and
  after every error, the poster reads the contract's last committed batch number and never
  sends a batch at or below it; it sends batch n+1 only after batch n was sent (on the same
  nonce sequence) or seen committed. The contract itself refuses a repeat or a gap
  (``UnexpectedBatchNumber``), so even a second poster on the same key cannot break this.
- The poster's batches and the chain agree: when it learns the chain's last batch, it compares
  that batch's committed state root with its own, and halts (``PosterHalted``) on a difference
  rather than building on a history the chain does not have.
- Each batch is signed with the sequencer key (the EIP-712 digest the contract checks); the
  transaction may come from another funded key (``sender_key``).
- Transport failures (refused connections, timeouts, a restarting node, a transaction the
  node forgot) are retried with exponential backoff capped at ``backoff_max_s``, after which
  the poster re-reads the chain (last batch, pending nonce, the fate of in-flight transactions)
  before sending again. A revert the chain will repeat (frozen contract, overdue forced
  request, root mismatch) halts the poster with the contract's error name: retrying would only
  burn gas, the node must react.
- Gas: the first transaction in flight gets ``eth_estimateGas`` plus ``gas_margin_percent``.
  A transaction sent behind others in flight cannot be estimated against a state the node
  has not reached, so it gets a model fitted to the contract (measured execution base, linear
  and quadratic memory cost of hashing the batch data, calldata cost under EIP-7623's floor),
  plus the margin; if the model ever falls short, the transaction reverts out of gas and the
  retry after the re-read is estimated for real.
- Per batch it records the transaction hash, the block that committed it and whether the
  contract calls it final. Finality is a prefix of the batch chain (``lastFinalBatch``).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Literal, NamedTuple, Protocol, TypeVar

from web3.contract.contract import ContractFunction

from asyncdex.settlement.batch import CutBatch
from asyncdex.settlement.chain import (
    ContractReverted,
    PrivateKey,
    SettlementClient,
    sign_digest,
)

T = TypeVar("T")

TX_BASE_GAS = 21_000
# commitBatch's execution gas besides hashing its data, measured on the compiled contract
# (about 73,600 warm, 90,700 on the very first batch); the model's default until an estimate
# has been seen.
DEFAULT_EXECUTION_GAS = 95_000

SeqStatus = Literal["sequenced", "committed", "finalized"]


class Offload(Protocol):
    """Runs a blocking chain call: inline for the in-process EVM, on a thread for JSON-RPC."""

    def __call__(self, call: Callable[[], T]) -> Awaitable[T]: ...


async def run_inline(call: Callable[[], T]) -> T:
    return call()


def thread_offload(executor: Executor) -> Offload:
    """Run chain calls on ``executor``; one worker serialises them for a shared connection."""

    def offload(call: Callable[[], T]) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(executor, call)

    return offload


class PosterHalted(RuntimeError):
    """The chain refuses a batch for a reason retrying cannot change."""

    def __init__(self, batch_number: int, reason: str) -> None:
        super().__init__(f"batch {batch_number}: {reason}")
        self.batch_number = batch_number
        self.reason = reason


class ReceiptTimeout(TimeoutError):
    """A sent transaction stayed unmined past ``receipt_timeout_s``."""


class SettlementLag(NamedTuple):
    """How far the chain trails the sequencer, in records and sequenced milliseconds."""

    committed_records: int
    committed_ms: int | None  # None until a batch is committed
    finalized_records: int
    finalized_ms: int | None


@dataclass
class BatchPosting:
    """What the poster knows of one batch."""

    number: int
    first_seq: int
    last_seq: int
    last_timestamp: int
    state_root: bytes
    batch: CutBatch | None  # dropped once final: the data lives on chain from then on
    tx_hash: bytes | None = None
    nonce: int | None = None
    sent_at: float = 0.0
    committed: bool = False
    committed_block: int | None = None
    finalized: bool = False


def data_hashing_gas(length: int) -> int:
    """Copying ``length`` calldata bytes to memory and hashing them: 12 gas a word (copy 3,
    keccak 6, memory 3) plus memory expansion's quadratic words^2 / 512."""
    words = (length + 31) // 32
    return 12 * words + words * words // 512


class Poster:
    def __init__(
        self,
        client: SettlementClient,
        sequencer_key: PrivateKey,
        sender_key: PrivateKey | None = None,
        *,
        genesis_root: bytes | None = None,
        max_in_flight: int = 4,
        gas_margin_percent: int = 25,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 30.0,
        receipt_timeout_s: float = 120.0,
        poll_interval_s: float = 1.0,
        from_block: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        offload: Offload = run_inline,
    ) -> None:
        from eth_account import Account

        self.client = client
        self.sequencer_key = sequencer_key
        self.sender_key = sequencer_key if sender_key is None else sender_key
        self.sender = Account.from_key(self.sender_key).address
        self.genesis_root = genesis_root
        self.max_in_flight = max_in_flight
        self.gas_margin_percent = gas_margin_percent
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._sleep = sleep
        self._offload = offload

        self._postings: list[BatchPosting] = []  # by batch number - 1
        self._last_seqs: list[int] = []
        self._in_flight: deque[BatchPosting] = deque()  # sent, unmined, in nonce order
        self._next_nonce = 0
        self._needs_sync = True
        self._chain_last = 0  # the contract's last batch number when last read
        self._root_checked = -1  # the batch number whose root was compared with the chain
        self._scan_from = from_block  # BatchCommitted events before this block are known
        self.committed_number = 0  # every batch up to this one is committed
        self.finalized_number = 0
        self.halted: PosterHalted | None = None
        self.failures = 0  # consecutive failed passes
        self.retry_delays: deque[float] = deque(maxlen=64)
        self.last_error: str = ""

    # ------------------------------------------------------------------ intake

    def enqueue(self, batch: CutBatch) -> None:
        """Take the next cut batch (the batcher's sink)."""
        expected = len(self._postings) + 1
        if batch.number != expected:
            raise ValueError(f"batch {batch.number} enqueued, batch {expected} expected")
        self._postings.append(
            BatchPosting(
                batch.number,
                batch.first_seq,
                batch.last_seq,
                batch.last_timestamp,
                batch.state_root,
                batch,
            )
        )
        self._last_seqs.append(batch.last_seq)
        if batch.number <= self._chain_last:  # committed before a restart; replay caught up
            self._mark_committed(self._postings[-1], None)

    # ------------------------------------------------------------------ queries

    def posting(self, batch_number: int) -> BatchPosting:
        return self._postings[batch_number - 1]

    def status_of_seq(self, seq: int) -> tuple[SeqStatus, bytes | None, int | None]:
        """Where record ``seq`` stands: (status, commit tx hash, batch number)."""
        index = bisect_left(self._last_seqs, seq)
        if index == len(self._postings) or self._postings[index].first_seq > seq:
            return "sequenced", None, None
        posting = self._postings[index]
        if posting.finalized:
            return "finalized", posting.tx_hash, posting.number
        if posting.committed:
            return "committed", posting.tx_hash, posting.number
        return "sequenced", None, posting.number

    def lag(self, head_seq: int, head_timestamp: int) -> SettlementLag:
        """Lag of the newest committed and finalized records behind the newest sequenced one."""

        def behind(number: int) -> tuple[int, int | None]:
            if number == 0:
                return head_seq, None
            posting = self._postings[number - 1]
            return head_seq - posting.last_seq, head_timestamp - posting.last_timestamp

        committed = behind(min(self.committed_number, len(self._postings)))
        finalized = behind(min(self.finalized_number, len(self._postings)))
        return SettlementLag(*committed, *finalized)

    @property
    def pending_batches(self) -> int:
        """Batches cut but not yet committed."""
        return len(self._postings) - self.committed_number

    # ------------------------------------------------------------------ driving

    async def run(self, stop: asyncio.Event) -> None:
        """Post until ``stop`` is set; raises ``PosterHalted`` when the chain refuses for good."""
        while not stop.is_set():
            delay = self.poll_interval_s
            try:
                await self.run_once()
            except PosterHalted:
                raise
            except Exception:
                delay = self.retry_delays[-1]
            await self._sleep(delay)

    async def run_once(self) -> None:
        """One pass: re-read the chain if needed, collect receipts, send what is ready, track
        finality. A failure is recorded (backoff delay in ``retry_delays``) and re-raised."""
        if self.halted is not None:
            raise self.halted
        try:
            if self._needs_sync:
                await self._sync()
            await self._check_root()
            await self._collect_receipts()
            await self._send_ready()
            await self._collect_receipts()
            await self._fill_from_events()
            await self._update_finality()
        except PosterHalted as halted:
            self.halted = halted
            raise
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.retry_delays.append(
                min(self.backoff_max_s, self.backoff_base_s * 2 ** (self.failures - 1))
            )
            self._needs_sync = True
            raise
        self.failures = 0

    # ------------------------------------------------------------------ steps

    async def _call(self, call: Callable[[], T]) -> T:
        return await self._offload(call)

    async def _sync(self) -> None:
        """Re-read the contract's last batch, the fate of in-flight transactions, the nonce."""
        client, chain = self.client, self.client.chain
        last = await self._call(client.last_batch_number)
        self._chain_last = last
        if last < self.committed_number:
            self._roll_back_to(last)
        for posting in self._postings[: min(last, len(self._postings))]:
            if not posting.committed:
                self._mark_committed(posting, None)
        kept: deque[BatchPosting] = deque()
        highest_kept_nonce = -1
        for posting in self._in_flight:
            if posting.committed or posting.tx_hash is None or posting.nonce is None:
                continue
            if await self._call(partial(chain.is_pending, posting.tx_hash)):
                kept.append(posting)
                highest_kept_nonce = max(highest_kept_nonce, posting.nonce)
            else:  # mined and reverted, or dropped by the node: send it again
                posting.tx_hash = posting.nonce = None
        self._in_flight = kept
        nonce = await self._call(partial(chain.pending_nonce, self.sender))
        # Some nodes (eth-tester) leave pool transactions out of the "pending" count.
        self._next_nonce = max(nonce, highest_kept_nonce + 1)
        self._needs_sync = False

    async def _check_root(self) -> None:
        """Compare our root of the chain's last batch with the committed one, once."""
        number = self._chain_last
        if number == self._root_checked:
            return
        if number == 0:
            expected = self.genesis_root
        elif number <= len(self._postings):
            expected = self._postings[number - 1].state_root
        else:
            return  # the node is still replaying up to it; checked once it is enqueued
        if expected is not None:
            committed = await self._call(partial(self.client.batch_state_root, number))
            if committed != expected:
                raise PosterHalted(
                    number,
                    f"diverged: chain root 0x{committed.hex()}, ours 0x{expected.hex()}",
                )
        self._root_checked = number

    async def _collect_receipts(self) -> None:
        chain = self.client.chain
        while self._in_flight:
            posting = self._in_flight[0]
            assert posting.tx_hash is not None
            receipt = await self._call(partial(chain.receipt, posting.tx_hash))
            if receipt is None:
                if self._clock() - posting.sent_at > self.receipt_timeout_s:
                    raise ReceiptTimeout(f"batch {posting.number}: no receipt")
                return
            self._in_flight.popleft()
            if receipt["status"] != 1:
                # Reverted on chain (out of gas, or a state the estimate did not see): the
                # re-read decides what is committed, and the resend is estimated afresh once
                # the transactions sent behind it (which revert too) have left the pool.
                posting.tx_hash = posting.nonce = None
                self._needs_sync = True
                return
            self._mark_committed(posting, int(receipt["blockNumber"]))

    async def _send_ready(self) -> None:
        if self._needs_sync:
            return
        chain = self.client.chain
        while len(self._in_flight) < self.max_in_flight:
            posting = self._next_to_send()
            if posting is None or posting.batch is None:
                return
            batch = posting.batch
            function = self._commit_function(batch)
            if self._in_flight:
                gas = self._modelled_gas(batch)
            else:
                try:
                    gas = await self._call(partial(chain.estimate_gas, function, self.sender))
                except ContractReverted as reverted:
                    self._on_revert(batch.number, reverted)
                    return
            gas = gas * (100 + self.gas_margin_percent) // 100
            nonce = self._next_nonce
            tx_hash = await self._call(
                partial(chain.send_function, self.sender_key, function, nonce=nonce, gas=gas)
            )
            self._next_nonce = nonce + 1
            posting.tx_hash, posting.nonce, posting.sent_at = tx_hash, nonce, self._clock()
            self._in_flight.append(posting)

    async def _fill_from_events(self) -> None:
        """Find the commit transaction of batches seen committed without one (a restart, or a
        receipt that was lost with the connection)."""
        start = self.committed_number
        missing = [p for p in self._postings[:start] if p.committed_block is None]
        if not missing:
            return
        commits = await self._call(partial(self.client.batch_commits, self._scan_from))
        for commit in commits:
            if 1 <= commit.batch_number <= len(self._postings):
                posting = self._postings[commit.batch_number - 1]
                posting.tx_hash = commit.tx_hash
                posting.committed_block = commit.block_number
            self._scan_from = max(self._scan_from, commit.block_number)

    async def _update_finality(self) -> None:
        if self.finalized_number >= self.committed_number:
            return
        final = await self._call(self.client.last_final_batch)
        for posting in self._postings[self.finalized_number : min(final, self.committed_number)]:
            posting.finalized = True
            posting.batch = None
        self.finalized_number = max(self.finalized_number, min(final, self.committed_number))

    # ------------------------------------------------------------------ helpers

    def _next_to_send(self) -> BatchPosting | None:
        """The batch after the committed ones and the contiguous run in flight behind them;
        None while stale transactions (sent behind one that reverted) are still in the pool."""
        number = self.committed_number  # also the index of the first uncommitted batch
        if self._in_flight:
            if self._in_flight[0].number != number + 1:
                return None
            number = self._in_flight[-1].number
        if number >= len(self._postings):
            return None
        return self._postings[number]

    def _roll_back_to(self, last: int) -> None:
        """A reorg took commits back: what the chain no longer has is to be sent again."""
        for posting in self._postings[last : self.committed_number]:
            if posting.batch is None:
                raise PosterHalted(posting.number, "a final batch left the chain")
            posting.committed = False
            posting.committed_block = None
            posting.tx_hash = posting.nonce = None
        self.committed_number = last
        self._root_checked = -1

    def _mark_committed(self, posting: BatchPosting, block: int | None) -> None:
        posting.committed = True
        posting.committed_block = block
        while (
            self.committed_number < len(self._postings)
            and self._postings[self.committed_number].committed
        ):
            self.committed_number += 1

    def _commit_function(self, batch: CutBatch) -> ContractFunction:
        client = self.client
        data_hash = batch.data_hash
        digest = client.batch_digest(
            batch.number,
            batch.prev_state_root,
            batch.state_root,
            batch.withdrawals_root,
            batch.l1_consumed,
            data_hash,
        )
        return client.contract.functions.commitBatch(
            batch.number,
            batch.prev_state_root,
            batch.state_root,
            batch.withdrawals_root,
            batch.l1_consumed,
            batch.data,
            data_hash,
            self._authorization(batch.number, digest),
        )

    def _authorization(self, batch_number: int, digest: bytes) -> bytes:
        """What ``commitBatch`` takes as proof the batch is the venue's: here the sequencer's
        signature over the header digest (a committee poster gives a quorum certificate)."""
        return sign_digest(self.sequencer_key, digest)

    def _modelled_gas(self, batch: CutBatch) -> int:
        # The calldata is the ABI encoding: the data plus ~11 words of fixed arguments and
        # offsets; counting it all as non-zero keeps the model above the real cost.
        calldata = 40 * (len(batch.data) + 11 * 32 + 65)
        execution = DEFAULT_EXECUTION_GAS + data_hashing_gas(len(batch.data))
        standard_calldata = 16 * (len(batch.data) + 11 * 32 + 65)
        return TX_BASE_GAS + max(standard_calldata + execution, calldata)

    def _on_revert(self, batch_number: int, reverted: ContractReverted) -> None:
        if reverted.error == "UnexpectedBatchNumber":
            self._needs_sync = True  # another sender (or a lost receipt) moved the chain
            return
        if reverted.error in ("Reverted", "UnknownError"):
            # No decodable reason: a node that hides revert data, or a transient failure
            # reported as one; not enough to stop settlement for good.
            raise reverted
        raise PosterHalted(batch_number, f"{reverted.error}{reverted.arguments!r}")
