"""``on_committing`` hears of each commit as the replica makes it: every block, once, in
height order, and before ``on_commit`` (which waits for the committed log's fsync)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncdex.committee import CommitteeMember
from asyncdex.consensus import Committee, Secp256k1Signer

SIGNER = Secp256k1Signer.from_seed(b"committing-member")
COMMITTEE = Committee((SIGNER.address,))


def test_on_committing_reports_each_block_once_in_order_before_on_commit(tmp_path: Path) -> None:
    events: list[tuple[str, int]] = []

    async def scenario() -> None:
        member = CommitteeMember(
            COMMITTEE,
            0,
            SIGNER,
            [("127.0.0.1", 0)],
            tmp_path,
            on_commit=lambda blocks, qc: events.extend(("commit", b.height) for b in blocks),
            on_committing=lambda blocks: events.extend(("committing", b.height) for b in blocks),
        )
        await member.start()
        for k in range(3):
            await member.submit([f"item {k}".encode()])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while sum(kind == "commit" for kind, _ in events) < 3:
            assert loop.time() < deadline, "nothing committed"
            await asyncio.sleep(0.01)
        await member.stop()

    asyncio.run(scenario())
    committing = [height for kind, height in events if kind == "committing"]
    committed = [height for kind, height in events if kind == "commit"]
    assert committing == list(range(1, len(committing) + 1))  # each once, in height order
    assert committed == committing[: len(committed)]
    for height in committed:
        assert events.index(("committing", height)) < events.index(("commit", height))
