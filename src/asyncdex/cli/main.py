"""The ``asyncdex`` command line: demo, benchmarks, node, journal tools, the exit tool and
simulations.

Invariants: every subcommand returns a process exit code (0 on success); ``bench NAME
--json`` prints one JSON object of figures as its last line, so scripts can parse it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

BENCHMARKS = {
    "engine": "engine_bench",
    "recovery": "recovery_bench",
    "journal": "journal_bench",
    "sequencer": "sequencer_bench",
    "signing": "signing_bench",
    "settlement": "settlement_bench",
    "contract-gas": "settlement_gas",
    "certificate-gas": "certificate_gas",
    "committee": "committee_bench",
    "committee-runtime": "committee_runtime_bench",
    "e2e": "e2e_bench",
    "fanout": "fanout_bench",
    "web": "web_bench",
    "fairness": "fairness_bench",
}


def _benchmark_module(name: str) -> object:
    """Benchmarks live in the repository's ``benchmarks/`` folder, beside ``src/``."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "benchmarks").is_dir():
        raise SystemExit("benchmarks/ not found: run benchmarks from a source checkout")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{BENCHMARKS[name]}")


def cmd_demo(args: argparse.Namespace) -> int:
    if args.fair:
        from asyncdex.cli.demo_fair import cmd_demo_fair

        return cmd_demo_fair(args)
    if args.committee is not None:
        from asyncdex.cli.demo_committee import cmd_demo_committee

        return cmd_demo_committee(args)
    from asyncdex.cli.demo import cmd_demo as run

    return run(args)


def cmd_bench(args: argparse.Namespace) -> int:
    module = _benchmark_module(args.name)
    options = {}
    if args.rate:
        if args.name != "e2e":
            print("asyncdex bench: --rate is for e2e", file=sys.stderr)
            return 2
        options["rates"] = args.rate
    figures = module.run(quick=args.quick, **options)  # type: ignore[attr-defined]
    if args.json:
        print(json.dumps({"benchmark": args.name, "quick": args.quick, **figures}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncdex", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="run the whole venue embedded, traded by simulated bots, with a live view"
    )
    demo.add_argument(
        "--duration", type=float, default=20.0, help="seconds of trading (default 20)"
    )
    demo.add_argument("--seed", type=int, default=1, help="seeds prices and the bots' choices")
    demo.add_argument("--json", action="store_true", help="last line: the summary as JSON")
    demo.add_argument(
        "--keep-open",
        action="store_true",
        help="after trading, keep the venue (node, page, APIs) up until Ctrl-C or SIGTERM",
    )
    demo.add_argument(
        "--engine",
        choices=("reference", "native"),
        default=None,
        help="the node's engine: native (the default when it is built) or reference",
    )
    demo.add_argument(
        "--engine-only",
        action="store_true",
        help="instead: a deterministic simulated session straight through the engine",
    )
    demo.add_argument(
        "--hours", type=float, default=3.0, help="with --engine-only: simulated hours (default 3)"
    )
    demo.add_argument(
        "--fair",
        action="store_true",
        help="instead: a scripted front-running leader on a continuous market, a batch "
        "auction and a batch auction with sealed intents, and what it gained on each",
    )
    demo.add_argument(
        "--committee",
        type=int,
        default=None,
        metavar="N",
        help="instead: the venue on a committee of N member processes settling on the "
        "embedded chain; the leader is killed and restarted during trading",
    )
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("name", choices=sorted(BENCHMARKS))
    bench.add_argument("--json", action="store_true", help="last line: one JSON object")
    bench.add_argument("--quick", action="store_true", help="a smaller, faster run")
    bench.add_argument(
        "--rate",
        type=int,
        action="append",
        default=None,
        help="e2e only: open loop at this many intents/s instead of the usual phases",
    )
    bench.set_defaults(func=cmd_bench)

    # each tool's options live beside its code
    from asyncdex.cli import (
        committee_cmd,
        exit_cmd,
        journal_cmd,
        node_cmd,
        oracle_cmd,
        simulate_cmd,
    )

    node_cmd.add_parser(sub)
    committee_cmd.add_parser(sub)
    oracle_cmd.add_parser(sub)
    journal_cmd.add_parser(sub)
    exit_cmd.add_parser(sub)
    simulate_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
