"""The page's book logic (``src/asyncdex/web/src/feed.js``, run in node): a crossed book is
out of sync only for a continuous market, and a batch-auction book's indicative clearing is
the engine's clearing price.

- A continuous market's crossed snapshot or a delta that crosses its book asks for a fresh
  snapshot and shows no levels, as before batch auctions.
- A batch-auction market's book (known from ``GET /v1/venue`` or from the snapshot's
  ``"auction": true``) is shown crossed, as the node sends it.
- ``indicativeClearing`` gives the price and size :func:`asyncdex.engine.auction.
  calculate_clearing` computes, on random books with and without a mark.
Needs node and the page's npm packages, as ``test_build.py``.
"""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

from asyncdex.engine.auction import calculate_clearing
from asyncdex.types.numeric import format_scaled

from .test_build import WEB, web_toolchain

SCRIPT = """
import { BookMirror } from "./src/feed.js";
const cases = JSON.parse(process.argv[1]);
const out = cases.map((c) => {
  const book = new BookMirror("X", c.auction);
  const resync = c.messages.map((m) => book.apply(m));
  const clearing = c.tick ? book.indicativeClearing(c.tick, c.mark) : null;
  return { resync, synced: book.synced, reason: book.reason, clearing };
});
process.stdout.write(JSON.stringify(out));
"""

CROSSED = {"type": "snapshot", "seq": 1, "bids": [["101", "2"]], "asks": [["100", "1"]]}
QUIET = {"type": "snapshot", "seq": 1, "bids": [["99", "2"]], "asks": [["100", "1"]]}
CROSSING_DELTA = {"type": "delta", "seq": 2, "prevSeq": 1, "changes": [["bid", "100.5", "3"]]}


def run_page(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [web_toolchain(), "--input-type=module", "-e", SCRIPT, json.dumps(cases)],
        cwd=WEB,
        check=True,
        capture_output=True,
        timeout=120,
    )
    answer: list[dict[str, Any]] = json.loads(result.stdout)
    return answer


def test_a_crossed_book_is_out_of_sync_only_for_a_continuous_market() -> None:
    continuous_snapshot, continuous_delta, by_venue, by_flag, by_flag_delta = run_page(
        [
            {"auction": False, "messages": [CROSSED]},
            {"auction": False, "messages": [QUIET, CROSSING_DELTA]},
            {"auction": True, "messages": [CROSSED]},
            {"auction": False, "messages": [{**CROSSED, "auction": True}]},
            {"auction": False, "messages": [{**QUIET, "auction": True}, CROSSING_DELTA]},
        ]
    )
    assert continuous_snapshot == {
        "resync": [True],
        "synced": False,
        "reason": "crossed snapshot",
        "clearing": None,
    }
    assert continuous_delta["resync"] == [False, True]
    assert continuous_delta["reason"] == "crossed after a delta"
    for shown in (by_venue, by_flag, by_flag_delta):
        assert shown["synced"] is True
        assert True not in shown["resync"]


def random_side(rng: random.Random, centre: int, tick: int) -> list[tuple[int, int]]:
    """Up to five orders (price, size) within eight ticks of ``centre``."""
    return [
        (centre + rng.randrange(-8, 9) * tick, rng.randrange(1, 50) * 10)
        for _ in range(rng.randrange(1, 6))
    ]


def wire_levels(orders: list[tuple[int, int]], price_decimals: int, sz_decimals: int) -> Any:
    """The orders as a snapshot lists them: one [price, size] per level, decimal strings."""
    levels: dict[int, int] = {}
    for price, size in orders:
        levels[price] = levels.get(price, 0) + size
    return [
        [format_scaled(price, price_decimals), format_scaled(size, sz_decimals)]
        for price, size in levels.items()
    ]


def test_indicative_clearing_is_the_engines_clearing_price() -> None:
    rng = random.Random(10)
    cases = []
    expected = []
    for _ in range(300):
        sz_decimals = rng.choice([0, 2, 4])
        price_decimals = 6 - sz_decimals
        tick = rng.choice([1, 5, 10, 100])
        centre = rng.randrange(200, 400) * tick
        bids, asks = random_side(rng, centre, tick), random_side(rng, centre, tick)
        mark = rng.choice([0, centre + rng.randrange(-20 * tick, 20 * tick)])
        snapshot = {
            "type": "snapshot",
            "seq": 1,
            "bids": wire_levels(bids, price_decimals, sz_decimals),
            "asks": wire_levels(asks, price_decimals, sz_decimals),
        }
        cases.append(
            {
                "auction": True,
                "messages": [snapshot],
                "tick": format_scaled(tick, price_decimals),
                "mark": format_scaled(mark, price_decimals) if mark else None,
            }
        )
        expected.append((calculate_clearing(bids, asks, tick, mark), price_decimals, sz_decimals))
    crossing = 0
    for page, (clearing, price_decimals, sz_decimals) in zip(
        run_page(cases), expected, strict=True
    ):
        if clearing is None:
            assert page["clearing"] is None
            continue
        crossing += 1
        assert page["clearing"] is not None, clearing
        assert round(page["clearing"]["price"] * 10**price_decimals) == clearing.price
        assert round(page["clearing"]["size"] * 10**sz_decimals) == clearing.volume
    assert crossing > 100  # most random books cross: the comparison is not vacuous
