"""Full collections run when the node is quiet, or at the latest every ``max_interval_s``,
never by CPython's own schedule while installed; the thresholds come back at uninstall."""

from __future__ import annotations

import asyncio
import gc
import itertools

from asyncdex.gateway.collector import NEVER, FullCollections


def test_due_when_quiet_or_when_too_long_ago() -> None:
    policy = FullCollections(lambda: 0, quiet_s=1, min_interval_s=5, max_interval_s=60)
    assert not policy.due(idle=True, since_last_s=4.9)  # quiet, but one ran moments ago
    assert policy.due(idle=True, since_last_s=5)
    assert not policy.due(idle=False, since_last_s=59.9)  # busy: waits
    assert policy.due(idle=False, since_last_s=60)  # busy for a minute: runs anyway


def test_install_defers_full_collections_and_uninstall_restores() -> None:
    before = gc.get_threshold()
    policy = FullCollections(lambda: 0)
    policy.install()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
    finally:
        policy.uninstall()
    assert gc.get_threshold() == before


def test_collects_when_progress_stops_not_while_it_moves() -> None:
    counter = itertools.count()
    busy = True

    def progress() -> int:
        return next(counter) if busy else -1

    policy = FullCollections(progress, quiet_s=0.01, min_interval_s=0, max_interval_s=3600)

    async def run() -> tuple[int, int]:
        nonlocal busy
        task = asyncio.get_running_loop().create_task(policy.run())
        await asyncio.sleep(0.2)
        while_busy = policy.collections
        busy = False
        await asyncio.sleep(0.2)
        task.cancel()
        return while_busy, policy.collections

    while_busy, after = asyncio.run(run())
    assert while_busy == 0
    assert after >= 1
