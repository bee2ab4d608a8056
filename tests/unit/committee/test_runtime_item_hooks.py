"""``CommitteeMember``'s item hooks reach the replica: with ``item_ready`` an item not ready
for the block time stays pending while others commit, and commits once the member's clock
makes it ready; with ``item_deadline`` a leader whose clock has passed a pending item's
deadline, with its parent older, stamps its block at that deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from asyncdex.committee import CommitteeMember
from asyncdex.consensus import Block, Committee, ItemDeadline, ItemReady, Secp256k1Signer

SIGNER = Secp256k1Signer.from_seed(b"item-hooks-member")
COMMITTEE = Committee((SIGNER.address,))
START_MS = 1_000_000


async def _until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    limit = loop.time() + 20
    while not condition():
        assert loop.time() < limit, "not committed"
        await asyncio.sleep(0.01)


def _member(
    directory: Path,
    now: list[int],
    committed: list[Block],
    ready: ItemReady,
    deadline: ItemDeadline | None = None,
) -> CommitteeMember:
    """A committee of one on a clock the test moves (``now[0]``)."""
    return CommitteeMember(
        COMMITTEE,
        0,
        SIGNER,
        [("127.0.0.1", 0)],
        directory,
        clock=lambda: now[0],
        on_commit=lambda blocks, qc: committed.extend(blocks),
        item_ready=ready,
        item_deadline=deadline,
    )


def test_an_item_waits_in_the_pool_until_the_block_time_makes_it_ready(tmp_path: Path) -> None:
    ready_ms = START_MS + 500
    now = [START_MS]
    committed: list[Block] = []

    def items() -> list[bytes]:
        return [item for block in committed for item in block.payload]

    async def scenario() -> int:
        member = _member(
            tmp_path, now, committed, lambda item, ts: item != b"later" or ts >= ready_ms
        )
        await member.start()
        await member.submit([b"later", b"now"])
        await _until(lambda: b"now" in items())
        assert b"later" not in items()
        pending = member.replica.pending_items
        now[0] = ready_ms
        await _until(lambda: b"later" in items())
        await member.stop()
        return pending

    assert asyncio.run(scenario()) == 1  # held back, not dropped
    [carrier] = [block for block in committed if b"later" in block.payload]
    assert carrier.timestamp >= ready_ms
    assert all(block.timestamp < ready_ms for block in committed[: committed.index(carrier)])


def test_a_block_is_stamped_at_a_pending_items_deadline_when_the_clock_is_past_it(
    tmp_path: Path,
) -> None:
    ready_ms, deadline_ms = START_MS + 100, START_MS + 150
    now = [START_MS]
    committed: list[Block] = []

    async def scenario() -> None:
        member = _member(
            tmp_path,
            now,
            committed,
            lambda item, ts: item != b"timed" or ts >= ready_ms,
            lambda item: deadline_ms if item == b"timed" else None,
        )
        await member.start()
        await member.submit([b"timed"])  # not ready yet: no block (the clock stands still)
        now[0] = START_MS + 300  # past the item's deadline; the last block is the genesis
        await _until(lambda: any(b"timed" in block.payload for block in committed))
        await member.stop()

    asyncio.run(scenario())
    [carrier] = [block for block in committed if b"timed" in block.payload]
    assert carrier.timestamp == deadline_ms
