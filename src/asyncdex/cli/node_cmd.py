"""``asyncdex node``: run a minimal venue node on loopback (see :mod:`asyncdex.gateway.node`).

Invariants:
- The process exits 0 only after a clean shutdown (SIGTERM or SIGINT): everything accepted
  is durable, applied and snapshotted. Non-zero: bad arguments or config (2), journal
  failure (74), engine fault (70).
- Once the node listens, exactly one line goes to stdout: a JSON object with ``"event":
  "listening"``, the ``url`` and ``port`` (useful with ``--port 0``), and the recovered
  ``lastSeq`` and ``stateRoot``. Logs go to stderr.
- The config file is the engine config (:mod:`asyncdex.types.config_file`, strict) plus an
  optional ``[venue]`` table with ``chain_id`` and ``settlement_contract``: the signing
  domain. ``--chain-id`` / ``--contract`` override it; with neither the node refuses to
  start, since a wrong domain would make every signature recover to a stranger.
- The operator token (for ``POST /v1/system``) comes from ``--operator-token`` or the
  ``ASYNCDEX_OPERATOR_TOKEN`` environment variable (preferred: flags show in ``ps``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from asyncdex.gateway.eip712 import parse_address
from asyncdex.gateway.intents import asyncdex_domain
from asyncdex.gateway.node import DEFAULT_SNAPSHOT_EVERY, Node, NodeSettings, serve
from asyncdex.types.config_file import ConfigFileError, parse_engine_config
from asyncdex.types.market import EngineConfig

TOKEN_ENV = "ASYNCDEX_OPERATOR_TOKEN"
EXIT_USAGE = 2


class ConfigError(ValueError):
    """The config file or the flags do not describe a venue."""


VENUE_TABLE = "venue"
VENUE_KEYS = frozenset({"chain_id", "settlement_contract"})


def load_config(path: Path) -> tuple[EngineConfig, dict[str, Any]]:
    """The engine config and the ``[venue]`` table (signing domain) of one TOML file.

    The engine part is parsed by :func:`asyncdex.types.config_file.parse_engine_config`,
    strictly; ``[venue]`` (optional, keys ``chain_id`` and ``settlement_contract``) is the
    node's and is taken out before, so one file can describe the whole venue.
    """
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    venue = document.pop(VENUE_TABLE, {})
    if not isinstance(venue, dict):
        raise ConfigError(f"{path}: [{VENUE_TABLE}] must be a table")
    unknown = sorted(set(venue) - VENUE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: [{VENUE_TABLE}]: unknown key(s) {', '.join(unknown)}")
    try:
        return parse_engine_config(document, str(path)), venue
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None


def settings_from_args(args: argparse.Namespace) -> NodeSettings:
    engine_config, venue = load_config(Path(args.config))
    chain_id = args.chain_id if args.chain_id is not None else venue.get("chain_id")
    contract_text = args.contract if args.contract is not None else venue.get("settlement_contract")
    if type(chain_id) is not int or chain_id <= 0:
        raise ConfigError("a positive chain id is required (--chain-id or [venue] chain_id)")
    if not isinstance(contract_text, str):
        raise ConfigError(
            "the settlement contract is required (--contract or [venue] settlement_contract)"
        )
    try:
        contract = parse_address(contract_text)
    except ValueError as exc:
        raise ConfigError(f"settlement contract: {exc}") from None
    if args.snapshot_every < 0:
        raise ConfigError("--snapshot-every must not be negative")
    token = args.operator_token or os.environ.get(TOKEN_ENV) or None
    return NodeSettings(
        data_dir=Path(args.data),
        engine_config=engine_config,
        domain=asyncdex_domain(chain_id, contract),
        port=args.port,
        snapshot_every=args.snapshot_every,
        operator_token=token,
    )


def _announce(node: Node) -> None:
    recovered = node.recovered
    assert recovered is not None
    line = {
        "event": "listening",
        "url": node.url,
        "port": node.port,
        "lastSeq": recovered.last_seq,
        "snapshotSeq": recovered.snapshot_seq,
        "replayed": recovered.replayed,
        "stateRoot": "0x" + recovered.state_root.hex(),
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def cmd_node(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"asyncdex node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(serve(settings, on_ready=_announce))


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``node`` to an ``add_subparsers()`` object; the handler is ``args.func``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "node", help="run a venue node (HTTP intake, sequencer, journal, engine) on loopback"
    )
    parser.add_argument("--data", required=True, help="data directory (journal, snapshots)")
    parser.add_argument("--config", required=True, help="venue config file (TOML)")
    parser.add_argument("--port", type=int, default=8080, help="loopback port; 0 = any free")
    parser.add_argument("--chain-id", type=int, default=None, help="overrides [venue] chain_id")
    parser.add_argument(
        "--contract", default=None, help="settlement contract 0x.., overrides the config"
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=DEFAULT_SNAPSHOT_EVERY,
        help=f"snapshot the engine every N records (0 = only at shutdown; default "
        f"{DEFAULT_SNAPSHOT_EVERY})",
    )
    parser.add_argument(
        "--operator-token",
        default=None,
        help=f"enables POST /v1/system for holders of this token (or set ${TOKEN_ENV})",
    )
    parser.set_defaults(func=cmd_node)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asyncdex")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["node", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
