"""``CommitteeMember(item_deadline=...)`` reaches the replica: a leader whose clock has passed
a pending item's deadline, with its parent older, stamps its block at that deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from asyncdex.committee import CommitteeMember
from asyncdex.consensus import Block, Committee, Secp256k1Signer

SIGNER = Secp256k1Signer.from_seed(b"item-deadline-member")
COMMITTEE = Committee((SIGNER.address,))
START_MS = 1_000_000
READY_MS = START_MS + 100
DEADLINE_MS = START_MS + 150


def test_a_block_is_stamped_at_a_pending_items_deadline_when_the_clock_is_past_it(
    tmp_path: Path,
) -> None:
    now = [START_MS]
    committed: list[Block] = []

    def ready(item: bytes, timestamp_ms: int) -> bool:
        return item != b"timed" or timestamp_ms >= READY_MS

    def deadline(item: bytes) -> int | None:
        return DEADLINE_MS if item == b"timed" else None

    async def until(condition: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        limit = loop.time() + 20
        while not condition():
            assert loop.time() < limit, "not committed"
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        member = CommitteeMember(
            COMMITTEE,
            0,
            SIGNER,
            [("127.0.0.1", 0)],
            tmp_path,
            clock=lambda: now[0],
            on_commit=lambda blocks, qc: committed.extend(blocks),
            item_ready=ready,
            item_deadline=deadline,
        )
        await member.start()
        await member.submit([b"timed"])  # not ready yet: no block (the clock stands still)
        now[0] = START_MS + 300  # past the item's deadline; the last block is the genesis
        await until(lambda: any(b"timed" in block.payload for block in committed))
        await member.stop()

    asyncio.run(scenario())
    [carrier] = [block for block in committed if b"timed" in block.payload]
    assert carrier.timestamp == DEADLINE_MS
