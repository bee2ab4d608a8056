"""``CommitteeMember(item_ready=...)`` reaches the replica: an item not ready for the block
time stays pending while others commit, and commits once the member's clock makes it ready."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from asyncdex.committee import CommitteeMember
from asyncdex.consensus import Block, Committee, Secp256k1Signer

SIGNER = Secp256k1Signer.from_seed(b"item-ready-member")
COMMITTEE = Committee((SIGNER.address,))
START_MS = 1_000_000
READY_MS = START_MS + 500


def test_an_item_waits_in_the_pool_until_the_block_time_makes_it_ready(tmp_path: Path) -> None:
    now = [START_MS]
    committed: list[Block] = []

    def ready(item: bytes, timestamp_ms: int) -> bool:
        return item != b"later" or timestamp_ms >= READY_MS

    async def until(condition: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not condition():
            assert loop.time() < deadline, "not committed"
            await asyncio.sleep(0.01)

    def items() -> list[bytes]:
        return [item for block in committed for item in block.payload]

    async def scenario() -> int:
        member = CommitteeMember(
            COMMITTEE,
            0,
            SIGNER,
            [("127.0.0.1", 0)],
            tmp_path,
            clock=lambda: now[0],
            on_commit=lambda blocks, qc: committed.extend(blocks),
            item_ready=ready,
        )
        await member.start()
        await member.submit([b"later", b"now"])
        await until(lambda: b"now" in items())
        assert b"later" not in items()
        pending = member.replica.pending_items
        now[0] = READY_MS
        await until(lambda: b"later" in items())
        await member.stop()
        return pending

    assert asyncio.run(scenario()) == 1  # held back, not dropped
    [carrier] = [block for block in committed if b"later" in block.payload]
    assert carrier.timestamp >= READY_MS
    assert all(block.timestamp < READY_MS for block in committed[: committed.index(carrier)])
