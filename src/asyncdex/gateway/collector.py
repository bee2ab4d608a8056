"""When the cycle collector's full collections run: in a quiet moment, off the receipts' path.

Invariants:

- Young collections (generations 0 and 1) run as CPython schedules them; they are short.
- While installed, a full collection never starts by itself in the middle of a request: the
  node's timer makes one when nothing was sequenced for ``quiet_s`` (and the last one is at
  least ``min_interval_s`` old), and at the latest every ``max_interval_s`` whatever the
  load, so cyclic garbage is bounded in time. A full collection scans every tracked object;
  under load CPython would run one every few seconds, each a pause of tens of milliseconds
  that every request then in flight waits out.
- ``uninstall`` restores the thresholds it found.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

NEVER = 1 << 30  # gen-1 collections before a full one: never reached


class FullCollections:
    """Full collections scheduled by the node; ``progress()`` is its last sequenced seq."""

    def __init__(
        self,
        progress: Callable[[], int],
        quiet_s: float = 1.0,
        min_interval_s: float = 5.0,
        max_interval_s: float = 60.0,
    ) -> None:
        self.progress = progress
        self.quiet_s = quiet_s
        self.min_interval_s = min_interval_s
        self.max_interval_s = max_interval_s
        self.collections = 0
        self._saved: tuple[int, int, int] | None = None

    def install(self) -> None:
        self._saved = gc.get_threshold()
        young, middle, _ = self._saved
        gc.set_threshold(young, middle, NEVER)

    def uninstall(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None

    def due(self, idle: bool, since_last_s: float) -> bool:
        return since_last_s >= self.max_interval_s or (idle and since_last_s >= self.min_interval_s)

    async def run(self) -> None:
        last = time.monotonic()
        seen = self.progress()
        while True:
            await asyncio.sleep(self.quiet_s)
            now = time.monotonic()
            current = self.progress()
            if self.due(current == seen, now - last):
                gc.collect()
                self.collections += 1
                last = time.monotonic()
            seen = current
