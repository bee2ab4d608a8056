"""The L1 watcher: turns the settlement contract's L1 messages into sequenced engine commands.

Invariants:
- One mapping from contract message kinds to engine commands, ``l1_command``: a deposit
  becomes ``Deposit``, a forced withdrawal ``ForceWithdraw``, a forced cancel-all
  ``ForceCancelAll``, each carrying the message's queue index as ``l1_index``.
- A message is handed over only once its block has ``confirmations`` blocks on top of it
  (counting its own: with 1, a message is taken as soon as it is mined), so a reorg shallower
  than that never shows the engine a message that then disappears.
- Messages go out in index order, each once: ``next_index`` moves past a message only when
  the submit callback returned (the sequencer made it durable), and never moves back. The
  watcher stops at a gap rather than skip an index. If a submit fails, the same messages are
  offered again on the next poll; the engine's own ``l1_index`` check refuses anything already
  applied, so that retry cannot double-credit.
- Restartable: started with ``start_index`` = the engine's ``l1_consumed`` after replaying
  the journal (every message below it is applied) and ``start_block`` at or below the block
  of that message (the contract's deployment block always is).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from asyncdex.messages.commands import Command, Deposit, ForceCancelAll, ForceWithdraw
from asyncdex.settlement.chain import L1MessageRecord, MessageKind, SettlementClient
from asyncdex.settlement.poster import Offload, run_inline

Submit = Callable[[Sequence[Command]], Awaitable[object]]


def l1_command(message: L1MessageRecord) -> Command:
    """The engine command for one L1 message: the only place kinds map to commands."""
    account = bytes.fromhex(message.account.removeprefix("0x"))
    if message.kind is MessageKind.DEPOSIT:
        return Deposit(account, message.amount, message.index)
    if message.kind is MessageKind.FORCED_WITHDRAWAL:
        return ForceWithdraw(account, message.amount, message.index)
    if message.kind is MessageKind.FORCED_CANCEL_ALL:
        return ForceCancelAll(account, message.index)
    raise ValueError(f"unknown L1 message kind {message.kind!r}")


class L1Watcher:
    def __init__(
        self,
        client: SettlementClient,
        submit: Submit,
        *,
        start_index: int,
        confirmations: int,
        start_block: int = 0,
        max_block_range: int = 2_000,
        offload: Offload = run_inline,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations counts the message's own block: at least 1")
        self.client = client
        self.submit = submit
        self.next_index = start_index
        self.confirmations = confirmations
        self.max_block_range = max_block_range
        self._scan_from = start_block
        self._offload = offload
        self.submitted = 0
        self.gaps = 0  # polls that found a later message but not the next one
        self.failures = 0
        self.last_error = ""

    def safe_block(self, head: int) -> int:
        """The newest block with ``confirmations`` blocks counting itself."""
        return head - self.confirmations + 1

    async def poll_once(self) -> int:
        """Submit every newly confirmed message in index order; returns how many."""
        head = await self._offload(lambda: self.client.chain.block_number)
        safe = self.safe_block(head)
        if safe < self._scan_from:
            return 0
        found: dict[int, L1MessageRecord] = {}
        block = self._scan_from
        while block <= safe:
            last = min(safe, block + self.max_block_range - 1)
            for message in await self._offload(partial(self.client.l1_messages, block, last)):
                if message.index >= self.next_index:
                    found[message.index] = message
            block = last + 1
        ready: list[L1MessageRecord] = []
        while self.next_index + len(ready) in found:
            ready.append(found[self.next_index + len(ready)])
        if len(ready) < len(found):
            self.gaps += 1
        if ready:
            await self.submit([l1_command(message) for message in ready])
            self.next_index += len(ready)
            self.submitted += len(ready)
        if len(ready) == len(found):
            # Everything confirmed up to ``safe`` is handed over: later messages sit in later
            # blocks (the queue only grows), so the next scan starts after it.
            self._scan_from = safe + 1
        elif ready:
            self._scan_from = ready[-1].block_number
        return len(ready)

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Poll until ``stop`` is set; a failed poll is retried at the next interval."""
        while not stop.is_set():
            try:
                await self.poll_once()
            except Exception as exc:
                # The next poll re-reads from the same block and index; nothing is lost or
                # doubled. The node watches ``failures`` and ``next_index`` for a stall.
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
