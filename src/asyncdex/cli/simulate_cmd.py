"""``asyncdex simulate consensus``: run seeded committee simulations and summarize them;
``asyncdex simulate fairness``: the front-running leader's profit on three venues.

Invariants: a seed fully determines its run (see ``asyncdex.consensus.simulator``), so a
failing seed printed here reproduces with ``--start SEED --seeds 1``; the exit code is 0
only if every seed kept every invariant; with ``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace

from asyncdex.consensus.simulator import SimulationConfig, SimulationFailure, run_seed

MAX_REPORTS = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="run seeded simulations (consensus: a committee with faults; fairness: a "
        "front-running leader on continuous, batch-auction and sealed-intent venues)",
    )
    simulate.add_argument("target", choices=["consensus", "fairness"])
    simulate.add_argument(
        "--seeds", type=int, default=None, help="how many seeds (default 100; fairness: 20)"
    )
    simulate.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    simulate.add_argument("--nodes", type=int, default=4, help="committee size (default 4)")
    simulate.add_argument(
        "--progress", type=int, default=0, help="print a progress line every N seeds"
    )
    simulate.add_argument(
        "--hold-items-ms",
        type=int,
        default=0,
        help="consensus: each item is ready (item_ready) only from a block time up to this "
        "many ms after its submission, as a sealed intent for the next epoch (default 0: "
        "every item at once)",
    )
    simulate.add_argument(
        "--deadline-items-ms",
        type=int,
        default=0,
        help="consensus: each item counts only in a block stamped by a deadline (item_deadline) "
        "up to this many ms after its submission (or ready time), as a sealed intent in its "
        "epoch; checks that honest leaders stamp their blocks by it when the parent allows, "
        "and counts the items committed past it (default 0: no deadlines)",
    )
    simulate.add_argument("--json", action="store_true", help="last line: the summary as JSON")
    simulate.add_argument(
        "--headers-only",
        action="store_true",
        help="fairness: show the leader the sealed intents' headers without sealing them "
        "(the same view, without the cryptography's cost)",
    )
    simulate.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.target == "fairness":
        return cmd_simulate_fairness(args)
    if args.seeds is None:
        args.seeds = 100
    if (
        args.seeds < 1
        or args.nodes < 1
        or args.start < 0
        or args.hold_items_ms < 0
        or args.deadline_items_ms < 0
    ):
        print(
            "asyncdex simulate: --seeds and --nodes are at least 1, --start, "
            "--hold-items-ms and --deadline-items-ms at least 0",
            file=sys.stderr,
        )
        return 2
    config = replace(
        SimulationConfig(),
        nodes=args.nodes,
        hold_items_ms=args.hold_items_ms,
        deadline_items_ms=args.deadline_items_ms,
    )
    started = time.perf_counter()
    failures: list[int] = []
    behaviours: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for seed in range(args.start, args.start + args.seeds):
        try:
            result = run_seed(seed, config)
        except SimulationFailure as failure:
            failures.append(seed)
            if len(failures) <= MAX_REPORTS:
                print(failure.report(), flush=True)
            continue
        totals["committed blocks"] += result.committed_height
        totals["messages"] += result.messages
        totals["crashes"] += result.crashes
        totals["seeds with Byzantine members"] += bool(result.byzantine)
        totals["refused messages"] += sum(result.rejected.values())
        if config.deadline_items_ms > 0:
            totals["items"] += result.items
            totals["items committed past their deadline"] += result.late_items
        for kinds in result.byzantine.values():
            behaviours.update(kinds)
        done = seed - args.start + 1
        if args.progress and done % args.progress == 0:
            print(
                f"{done} seeds, {len(failures)} failed, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    summary = {
        "target": "consensus",
        "nodes": args.nodes,
        "first_seed": args.start,
        "seeds": args.seeds,
        "failed": len(failures),
        "failed_seeds": failures[:100],
        "seconds": round(elapsed, 1),
        **{key.replace(" ", "_").lower(): value for key, value in totals.items()},
        "byzantine_behaviours": dict(sorted(behaviours.items())),
    }
    print(
        f"consensus simulation: {args.seeds} seeds from {args.start}, n={args.nodes}: "
        f"{args.seeds - len(failures)} passed, {len(failures)} failed in {elapsed:.1f} s"
    )
    for key, value in totals.items():
        print(f"  {key}: {value}")
    if behaviours:
        print(
            "  Byzantine behaviours (members): "
            + ", ".join(f"{kind} {count}" for kind, count in sorted(behaviours.items()))
        )
    if failures:
        print(
            "  failing seeds: "
            + " ".join(map(str, failures[:20]))
            + (" ..." if len(failures) > 20 else "")
        )
        print(
            f"  reproduce: asyncdex simulate consensus --nodes {args.nodes} "
            f"--start {failures[0]} --seeds 1"
        )
    if args.json:
        print(json.dumps(summary))
    return 1 if failures else 0


def cmd_simulate_fairness(args: argparse.Namespace) -> int:
    from asyncdex.cli.simulate_fairness import BLOCKS, format_table, summarize_venues

    if args.seeds is None:
        args.seeds = 20
    if args.seeds < 1 or args.start < 0:
        print("asyncdex simulate: --seeds is at least 1, --start at least 0", file=sys.stderr)
        return 2
    started = time.perf_counter()
    seeds = range(args.start, args.start + args.seeds)
    summaries = summarize_venues(seeds, real_sealing=not args.headers_only)
    elapsed = time.perf_counter() - started
    print(
        f"fairness simulation: {args.seeds} seeds from {args.start}, {BLOCKS} blocks each, "
        f"a leader that reorders and inserts; "
        f"{'headers only' if args.headers_only else 'real sealed intents'} ({elapsed:.1f} s)"
    )
    for line in format_table(summaries):
        print("  " + line)
    sealed = next(s for s in summaries if s.venue == "sealed")
    if args.json:
        print(
            json.dumps(
                {
                    "target": "fairness",
                    "first_seed": args.start,
                    "seeds": args.seeds,
                    "blocks": BLOCKS,
                    "real_sealing": not args.headers_only,
                    "seconds": round(elapsed, 1),
                    "venues": [s.as_json() for s in summaries],
                }
            )
        )
    # the claim the simulation checks: sealed intents in a batch auction leave nothing to take
    return 1 if sealed.profit_max != 0 or sealed.profit_min != 0 else 0
