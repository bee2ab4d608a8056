"""A member whose disk fails stops by itself (fail-stop) and says why; nothing hangs."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from asyncdex.committee import CommitteeMember, MemberStopped
from asyncdex.committee import store as store_module
from asyncdex.consensus import Committee, Secp256k1Signer

SIGNER = Secp256k1Signer.from_seed(b"failing-member")
COMMITTEE = Committee((SIGNER.address,))


def test_a_failing_fsync_stops_the_member_and_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dying_disk(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    async def scenario() -> None:
        commits: list[int] = []
        member = CommitteeMember(
            COMMITTEE,
            0,
            SIGNER,
            [("127.0.0.1", 0)],
            tmp_path,
            on_commit=lambda blocks, qc: commits.extend(b.height for b in blocks),
        )
        await member.start()
        await member.submit([b"before the fault"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not commits:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        # the safety state's in-place writes now fail, as on a dying disk
        monkeypatch.setattr(store_module, "_datasync", dying_disk)
        with pytest.raises(MemberStopped):
            while True:  # items keep the member voting until the fault stops it
                await member.submit([b"item %f" % loop.time()])
                assert loop.time() < deadline + 20
                await asyncio.sleep(0.01)
        assert isinstance(member.failure, OSError)
        assert "Input/output error" in member.status_json()["failure"]
        await member.stop()

    asyncio.run(scenario())
