"""Fairness benchmark: the figures of front-running protection, one section each.

Sections (each a function ``(quick) -> dict`` in ``SECTIONS``; a new figure is one more
function there, and its figures land under its name in the JSON object):

- ``auction_clearing``: one batch auction over 10,000 waiting orders (the engine's
  ``AdvanceTime`` that clears it), on the native core and the interpreted reference
  (``benchmarks.auction_bench``); target on the 2-core machine: <= 50 ms.
- ``front_running``: the sandwich simulation (``asyncdex simulate fairness``): a leader that
  reorders and inserts, on a continuous market, a batch-auction market, and a batch auction
  with real sealed intents; its profit in micro-USDC marked to the oracle, and the victims'
  cost with and without it, over 20 seeds (3 with --quick). Not a timing: a table of
  outcomes, deterministic for its seeds.
- ``sealing_crypto``: what sealed intents cost in cryptography (``benchmarks.
  fairness_crypto_bench``): sealing per intent on the client, a member's decryption share,
  combining the epoch key and opening a block of 1,000 sealed intents (200 with --quick).
- ``sealing_latency``: the latency sealing adds on 4 member processes
  (``benchmarks.sealed_latency_bench``): submission to executed and commit to revealed,
  sealed against plain, quiet with 15 ms epochs, then under 1,000 plain intents/s with 20 ms
  epochs (quiet only with --quick); issue 12's targets: commit -> revealed added p50 <= 30
  ms, p99 <= 100 ms (a refused probe fails the target too).

Prints figures and never asserts a duration. Run: ``asyncdex bench fairness [--quick]
[--json]`` or ``python -m benchmarks.fairness_bench``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from asyncdex.cli.simulate_fairness import BLOCKS, format_table, summarize_venues
from benchmarks import fairness_crypto_bench, sealed_latency_bench
from benchmarks.auction_bench import run_both

CLEARING_TARGET_MS = 50
AUCTION_ORDERS = 10_000


def auction_clearing(quick: bool) -> dict[str, Any]:
    results = run_both(AUCTION_ORDERS, 1 if quick else 5)
    by_name = {item["implementation"]: item for item in results}
    for item in results:
        print(
            f"auction clearing, {item['implementation']:>9}: {item['orders']:,} orders "
            f"({item['trades']:,} trades) median {item['median_ms']} ms, max {item['max_ms']} ms"
        )
    best = min(item["median_ms"] for item in results)
    return {
        "orders": AUCTION_ORDERS,
        "native_median_ms": by_name.get("native", {}).get("median_ms"),
        "reference_median_ms": by_name.get("reference", {}).get("median_ms"),
        "target_ms": CLEARING_TARGET_MS,
        "meets_target": best <= CLEARING_TARGET_MS,
        "runs": results,
    }


def front_running(quick: bool) -> dict[str, Any]:
    seeds = range(3 if quick else 20)
    started = time.perf_counter()
    summaries = summarize_venues(seeds)  # the sealed venue with real envelopes
    print(f"front-running simulation: {len(seeds)} seeds x {BLOCKS} blocks")
    for line in format_table(summaries):
        print("  " + line)
    return {
        "seeds": len(seeds),
        "blocks": BLOCKS,
        "seconds": round(time.perf_counter() - started, 1),
        "venues": [summary.as_json() for summary in summaries],
    }


def sealing_crypto(quick: bool) -> dict[str, Any]:
    figures = fairness_crypto_bench.measure(
        members=4, intents=200 if quick else 1000, traders_n=16, threads=1
    )
    fairness_crypto_bench.report(figures)
    return figures


def sealing_latency(quick: bool) -> dict[str, Any]:
    """Quiet with 15 ms epochs, then (unless quick) under the target's 1,000 plain intents/s
    with 20 ms epochs; sealed probes target the next epoch when less than the lead is left of
    the current one, as the SDK does (``seal_lead_ms``)."""
    runs = {
        "quiet": sealed_latency_bench.measure(5 if quick else 15, 15, 0, 0, lead_ms=15, traders=2)
    }
    if not quick:
        runs["loaded"] = sealed_latency_bench.measure(0, 20, 1000, 30, lead_ms=40, traders=2)
    figures: dict[str, Any] = {"target_added_p50_ms": 30, "target_added_p99_ms": 100}
    for name, run in runs.items():
        sealed_latency_bench.report(run)
        # the measure: commit -> revealed, sealed minus plain (commit -> executed)
        added = run["added_commit_to_executed_p50_ms"], run["added_commit_to_executed_p99_ms"]
        refused = {k: v for k, v in run["refused"].items() if "no ordered step" not in k}
        run["meets_target"] = (
            None not in added and added[0] <= 30 and added[1] <= 100 and not refused
        )
        figures[name] = run
    return figures


SECTIONS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "auction_clearing": auction_clearing,
    "front_running": front_running,
    "sealing_crypto": sealing_crypto,
    "sealing_latency": sealing_latency,
}


def run(quick: bool = False) -> dict[str, Any]:
    """Every section's figures under its name."""
    return {name: section(quick) for name, section in SECTIONS.items()}


if __name__ == "__main__":
    figures = run(quick="--quick" in sys.argv)
    if "--json" in sys.argv:
        print(json.dumps({"benchmark": "fairness", **figures}))
