"""``asyncdex oracle``: run a simulated oracle publisher process against a node.

Invariants:

- It signs with the keys in ``--key-file`` (one publisher each; the node accepts only keys
  its config lists in ``oracle_publishers``) in the signing domain the node announces at
  ``GET /v1/oracle``, so it cannot sign for another venue by mistake.
- Each market's walk starts from ``--start SYMBOL=PRICE`` (a decimal in USDC) or else from
  the node's current index price; a market with neither is an error before anything is
  signed. Exit codes: 0 after SIGINT/SIGTERM (or ``--ticks``), 2 for bad arguments or an
  unusable node.
- Logs go to stderr; one JSON line per ``--report-every`` ticks goes to stdout, and a last
  one when it stops. ``--print-addresses`` prints the keys' addresses (what the venue
  config lists in ``oracle_publishers``) and exits without a node.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from typing import Any

import aiohttp

from asyncdex.client.keys import InvalidKey, read_private_key
from asyncdex.oracle.publisher import (
    DEFAULT_INTERVAL_MS,
    FeedMarket,
    OraclePublisher,
    PublisherError,
    fetch_feed_info,
)
from asyncdex.signing.eip712 import address_of_private_key, checksum_address
from asyncdex.types.numeric import USDC_DECIMALS, parse_scaled

EXIT_USAGE = 2


class OracleArgsError(ValueError):
    pass


def _starts(texts: list[str], markets: tuple[FeedMarket, ...]) -> dict[int, tuple[int, int]]:
    symbols = {market.symbol for market in markets}
    given: dict[str, str] = {}
    for text in texts:
        symbol, sep, price_text = text.partition("=")
        if not sep or symbol not in symbols:
            raise OracleArgsError(f"--start {text!r}: expected SYMBOL=PRICE with a known symbol")
        given[symbol] = price_text
    starts: dict[int, tuple[int, int]] = {}
    for market in markets:
        price: int
        if market.symbol in given:
            decimals = USDC_DECIMALS - market.sz_decimals
            try:
                price = parse_scaled(given[market.symbol], decimals)
            except ValueError as exc:
                raise OracleArgsError(f"--start {market.symbol}: {exc}") from None
        else:
            price = market.index_price
        if price <= 0:
            raise OracleArgsError(f"{market.symbol} has no index price yet: give --start")
        starts[market.market] = (price, market.tick)
    return starts


async def run_publisher(args: argparse.Namespace, keys: list[bytes]) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        info = await fetch_feed_info(session, args.node)
        starts = _starts(args.start or [], info.markets)
        publisher = OraclePublisher(
            args.node,
            keys,
            info.domain,
            starts,
            interval_ms=args.interval_ms,
            seed=args.seed,
            session=session,
        )
        strangers = [a for a in publisher.addresses if a not in info.publishers]
        if strangers:
            names = ", ".join("0x" + a.hex() for a in strangers)
            logging.getLogger(__name__).warning("not publishers of this node: %s", names)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        reporter = asyncio.create_task(_report(publisher, stop, args.report_every))
        try:
            await publisher.run(stop, args.ticks)
        finally:
            stop.set()
            await reporter
        print(json.dumps({"event": "stopped", **_stats_json(publisher)}), flush=True)
    return 0


def _stats_json(publisher: OraclePublisher) -> dict[str, Any]:
    stats = publisher.stats
    return {
        "ticks": stats.ticks,
        "accepted": stats.accepted,
        "refused": stats.refused,
        "unreachable": stats.unreachable,
        "prices": {str(market): price for market, price in stats.prices.items()},
        "lastError": stats.last_error or None,
    }


async def _report(publisher: OraclePublisher, stop: asyncio.Event, every: int) -> None:
    reported = 0
    while not stop.is_set():
        if every and publisher.stats.ticks >= reported + every:
            reported = publisher.stats.ticks
            print(json.dumps({"event": "ticks", **_stats_json(publisher)}), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), publisher.interval_ms / 1000)


def cmd_oracle(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        if args.interval_ms < 1:
            raise OracleArgsError("--interval-ms must be positive")
        keys = [read_private_key(path) for path in args.key_file]
        if args.print_addresses:
            for key in keys:
                print(checksum_address(address_of_private_key(key)))
            return 0
        if args.node is None:
            raise OracleArgsError("--node is required (unless --print-addresses)")
        return asyncio.run(run_publisher(args, keys))
    except (OracleArgsError, InvalidKey, PublisherError) as exc:
        print(f"asyncdex oracle: {exc}", file=sys.stderr)
        return EXIT_USAGE


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``oracle`` to an ``add_subparsers()`` object; the handler is ``args.func``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "oracle", help="publish simulated, signed oracle prices to a node"
    )
    parser.add_argument("--node", help="the node's URL, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--key-file",
        action="append",
        required=True,
        help="a publisher's private key (64 hex digits); repeat for several publishers",
    )
    parser.add_argument(
        "--interval-ms",
        type=int,
        default=DEFAULT_INTERVAL_MS,
        help=f"one signed tick per key and market this often (default {DEFAULT_INTERVAL_MS})",
    )
    parser.add_argument("--seed", type=int, default=1, help="the random walks' seed")
    parser.add_argument(
        "--start",
        action="append",
        metavar="SYMBOL=PRICE",
        help="a market's first price in USDC (default: the node's index price)",
    )
    parser.add_argument("--ticks", type=int, default=None, help="stop after this many ticks")
    parser.add_argument(
        "--report-every", type=int, default=10, help="a JSON stats line every N ticks (0: none)"
    )
    parser.add_argument(
        "--print-addresses",
        action="store_true",
        help="print each key's publisher address (for the config's oracle_publishers) and exit",
    )
    parser.set_defaults(func=cmd_oracle)
    return parser
