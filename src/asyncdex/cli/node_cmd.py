"""``asyncdex node``: run a minimal venue node on loopback (see :mod:`asyncdex.gateway.node`).

Invariants:
- The process exits 0 only after a clean shutdown (SIGTERM or SIGINT): everything accepted
  is durable, applied and snapshotted. Non-zero (``EXIT_CODES``, also in ``--help``): bad
  arguments or config (2), damaged journal (65), journal behind a snapshot (66), journal
  write failure (74), engine fault (70). A refusal to start is one line on stderr, never a
  traceback.
- The node never starts on a journal that lost acknowledged records (it ends below a valid
  snapshot's seq) unless ``--accept-journal-loss`` is given: the snapshot proves they were
  durable, so this is damage to investigate, not a torn write to cut.
- Once the node listens, exactly one line goes to stdout: a JSON object with ``"event":
  "listening"``, the ``url`` and ``port`` (useful with ``--port 0``), and the recovered
  ``lastSeq`` and ``stateRoot``. Logs go to stderr.
- The config file is the engine config (:mod:`asyncdex.types.config_file`, strict) plus an
  optional ``[venue]`` table with ``chain_id`` and ``settlement_contract``: the signing
  domain. ``--chain-id`` / ``--contract`` override it; with neither the node refuses to
  start, since a wrong domain would make every signature recover to a stranger.
- The operator token (for ``POST /v1/system``) comes from ``--operator-token`` or the
  ``ASYNCDEX_OPERATOR_TOKEN`` environment variable (preferred: flags show in ``ps``).
- Settlement is on with ``--chain-rpc URL`` (any EVM JSON-RPC node, e.g. anvil; the contract
  from ``--contract`` or ``[venue] settlement_contract``, the sequencer key from
  ``--sequencer-key-file``), or with ``[settlement] deploy = true`` in the config: the
  embedded chain (py-evm in a child process on loopback, :mod:`asyncdex.settlement.devchain`),
  kept in ``DATA/chain`` with the token and contract deployed on its first start and found
  there on every later one (the demo shape; the signing domain is then the deployed
  contract's). Otherwise the node does not settle. Finality is the contract's
  ``finalityBlocks``, read from the chain.
- ``--censor-forced-requests`` drops forced requests in the watcher, to test the escape
  hatch; the node refuses it unless ``ASYNCDEX_TEST_MODE=1``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from asyncdex.cli.committee_config import COMMITTEE_TABLE, CommitteeConfigError, load_committee
from asyncdex.committee.store import StoreCorruption
from asyncdex.engine.build import ENGINE_KINDS
from asyncdex.engine.native import native_available, native_unavailable_reason
from asyncdex.gateway.fanout import DEFAULT_CONNECTION_CAPS, ConnectionCaps
from asyncdex.gateway.hyperliquid import hyperliquid_extension
from asyncdex.gateway.metrics import Metrics
from asyncdex.gateway.node import (
    DEFAULT_SNAPSHOT_EVERY,
    EXIT_FAULT,
    EXIT_JOURNAL_FAILED,
    ExtensionFactory,
    Node,
    NodeSettings,
    serve,
)
from asyncdex.gateway.oracle_feed import OracleFeed
from asyncdex.gateway.ratelimit import DEFAULT_RATE_LIMITS, RateLimits
from asyncdex.gateway.streams import NativeStreams
from asyncdex.logs import FORMATS, configure_logging
from asyncdex.sequencer.journal import JournalCorruption
from asyncdex.sequencer.recovery import JournalLoss
from asyncdex.settlement.service import (
    DEFAULT_BATCH_INTERVAL_MS,
    DEFAULT_BATCH_MAX_RECORDS,
    DEFAULT_CONFIRMATIONS,
    DEFAULT_MAX_LAG_MS,
    DEFAULT_TICK_MS,
    EmbeddedChain,
    SettlementError,
    SettlementSettings,
    deploy_embedded,
    read_key_file,
)
from asyncdex.signing.eip712 import parse_address
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.config_file import (
    ConfigFileError,
    adopt_committee_members,
    parse_engine_config,
)
from asyncdex.types.market import EngineConfig
from asyncdex.web import WebPage

TOKEN_ENV = "ASYNCDEX_OPERATOR_TOKEN"
TEST_MODE_ENV = "ASYNCDEX_TEST_MODE"
EXIT_USAGE = 2
EXIT_JOURNAL_CORRUPT = 65  # EX_DATAERR: damage that is not a torn tail; nothing was changed
EXIT_JOURNAL_LOSS = 66  # the journal ends below a snapshot: acknowledged records are missing
EXIT_CODES = f"""exit codes:
  0   clean shutdown (SIGTERM or SIGINT)
  {EXIT_USAGE}   bad arguments or config
  {EXIT_JOURNAL_CORRUPT}  journal damaged where a crash cannot have damaged it (named segment and
      byte offset); nothing was changed: restore the segment, or inspect it with
      `asyncdex journal verify`; on a committee member, the same for its consensus store
      (named file and offset): restore it, or let the member rejoin from an empty directory
  {EXIT_JOURNAL_LOSS}  journal ends below a snapshot's seq: acknowledged records are missing
      (named segment, offset and snapshot); restore the journal, or start with
      --accept-journal-loss to continue from what it holds
  {EXIT_FAULT}  engine or sequencer fault
  {EXIT_JOURNAL_FAILED}  journal write or fsync failed while running
"""


class ConfigError(ValueError):
    """The config file or the flags do not describe a venue."""


VENUE_TABLE = "venue"
VENUE_KEYS = frozenset({"chain_id", "settlement_contract"})
SETTLEMENT_TABLE = "settlement"
# The embedded chain's deployment, and the batching a flag of the same name overrides.
SETTLEMENT_KEYS: dict[str, tuple[type, Any]] = {
    "deploy": (bool, False),
    "finality_blocks": (int, 5),
    "forced_deadline_blocks": (int, 100),
    "block_time_ms": (int, 1_000),
    "confirmations": (int, DEFAULT_CONFIRMATIONS),
    "batch_interval_ms": (int, DEFAULT_BATCH_INTERVAL_MS),
    "batch_max_records": (int, DEFAULT_BATCH_MAX_RECORDS),
    "max_settlement_lag_ms": (int, DEFAULT_MAX_LAG_MS),
    "tick_ms": (int, DEFAULT_TICK_MS),
}
NODE_TABLE = "node"
# The process: each key is also a flag (``verify_workers`` is ``--verify-workers``), which wins.
NODE_KEYS: dict[str, tuple[type, Any]] = {
    "port": (int, 8080),
    "snapshot_every": (int, DEFAULT_SNAPSHOT_EVERY),
    "verify_workers": (int, None),  # None: one per core but the event loop's
    "log_format": (str, "text"),
    "hyperliquid_network": (str, "testnet"),
    "hyperliquid_api": (bool, True),
    # Request budgets (Hyperliquid's numbers; see docs/hyperliquid.md "Rate limits") and
    # WebSocket caps. Benchmarks and tests driving a venue from loopback raise them.
    "rate_limits": (bool, True),
    "ip_weight_per_minute": (int, DEFAULT_RATE_LIMITS.ip_weight_per_minute),
    "address_initial_requests": (int, DEFAULT_RATE_LIMITS.address_initial_requests),
    "address_requests_per_usdc": (int, DEFAULT_RATE_LIMITS.address_requests_per_usdc),
    "max_sockets": (int, DEFAULT_CONNECTION_CAPS.per_door),
    "max_sockets_per_address": (int, DEFAULT_CONNECTION_CAPS.per_address),
}
HYPERLIQUID_NETWORKS = ("testnet", "mainnet")


def _node_table(document: dict[str, Any], path: Path, name: str, keys: Any) -> dict[str, Any]:
    table = document.pop(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ConfigError(f"{path}: [{name}]: unknown key(s) {', '.join(unknown)}")
    return table


def _typed_table(path: Path, name: str, table: dict[str, Any], keys: Any) -> None:
    """Fill in defaults and check each value's type (TOML's true is a bool, not a count)."""
    for key, (kind, default) in keys.items():
        value = table.setdefault(key, default)
        if value is None and default is None:
            continue
        if kind is str:
            if type(value) is not str:
                raise ConfigError(f"{path}: [{name}] {key} must be a string")
        elif type(value) is not kind or (type(value) is int and value < 0):
            wanted = "a boolean" if kind is bool else "a non-negative integer"
            raise ConfigError(f"{path}: [{name}] {key} must be {wanted}")


def load_node_file(
    path: Path,
) -> tuple[EngineConfig, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The engine config and the ``[venue]``, ``[settlement]`` and ``[node]`` tables (the
    last two with defaults filled in) of one TOML file.

    The engine part is parsed by :func:`asyncdex.types.config_file.parse_engine_config`,
    strictly; ``[venue]`` (signing domain), ``[settlement]`` (embedded chain, batching) and
    ``[node]`` (port, workers, logs, Hyperliquid network), all optional, are the node's and
    are taken out before, so one file describes the whole venue.
    """
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    venue = _node_table(document, path, VENUE_TABLE, VENUE_KEYS)
    try:
        adopt_committee_members(document, str(path))  # a share paid to the [committee] members
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    document.pop(COMMITTEE_TABLE, None)  # the node's seat in a committee: load_committee
    settlement = _node_table(document, path, SETTLEMENT_TABLE, SETTLEMENT_KEYS)
    _typed_table(path, SETTLEMENT_TABLE, settlement, SETTLEMENT_KEYS)
    node = _node_table(document, path, NODE_TABLE, NODE_KEYS)
    _typed_table(path, NODE_TABLE, node, NODE_KEYS)
    if node["log_format"] not in FORMATS:
        raise ConfigError(f"{path}: [node] log_format must be one of {', '.join(FORMATS)}")
    if node["hyperliquid_network"] not in HYPERLIQUID_NETWORKS:
        raise ConfigError(
            f"{path}: [node] hyperliquid_network must be one of {', '.join(HYPERLIQUID_NETWORKS)}"
        )
    try:
        return parse_engine_config(document, str(path)), venue, settlement, node
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None


def load_venue_file(path: Path) -> tuple[EngineConfig, dict[str, Any], dict[str, Any]]:
    """The engine config, ``[venue]`` and ``[settlement]`` of one file (see ``load_node_file``)."""
    engine_config, venue, settlement, _ = load_node_file(path)
    return engine_config, venue, settlement


def load_config(path: Path) -> tuple[EngineConfig, dict[str, Any]]:
    """The engine config and the ``[venue]`` table of one TOML file (see ``load_venue_file``)."""
    engine_config, venue, _ = load_venue_file(path)
    return engine_config, venue


def _settlement_from_args(
    args: argparse.Namespace, engine_config: EngineConfig, table: dict[str, Any]
) -> tuple[dict[str, Any] | None, EmbeddedChain | None]:
    """``SettlementSettings`` arguments but the contract (None: no settlement), and the
    embedded deployment when there is one (it fixes the signing domain)."""
    embedded_deploy = table["deploy"]
    if args.censor_forced_requests and os.environ.get(TEST_MODE_ENV) != "1":
        raise ConfigError(f"--censor-forced-requests is for tests only (set {TEST_MODE_ENV}=1)")
    if args.chain_rpc is None and not embedded_deploy:
        if args.sequencer_key_file is not None or args.censor_forced_requests:
            raise ConfigError(
                "settlement options need --chain-rpc or [settlement] deploy = true in the config"
            )
        return None, None
    if args.chain_rpc is not None and embedded_deploy:
        raise ConfigError(
            "[settlement] deploy is for the embedded chain; on --chain-rpc deploy the contract "
            "yourself and pass --contract"
        )
    # a flag given wins over the config file's key of the same name
    for name in ("confirmations", "batch_interval_ms", "batch_max_records", "tick_ms",
                "max_settlement_lag_ms"):  # fmt: skip
        if getattr(args, name) is None:
            setattr(args, name, table[name])
    numbers = {
        "--confirmations": args.confirmations,
        "--batch-interval-ms": args.batch_interval_ms,
        "--batch-max-records": args.batch_max_records,
        "--tick-ms": args.tick_ms,
    }
    for flag, value in numbers.items():
        if value < 1:
            raise ConfigError(f"{flag} must be positive")
    if args.max_settlement_lag_ms < 0 or args.from_block < 0:
        raise ConfigError("--max-settlement-lag-ms and --from-block must not be negative")
    try:
        key = None if args.sequencer_key_file is None else read_key_file(args.sequencer_key_file)
    except SettlementError as exc:
        raise ConfigError(f"--sequencer-key-file: {exc}") from None
    common: dict[str, Any] = {
        "sequencer_key": key,
        "confirmations": args.confirmations,
        "batch_interval_ms": args.batch_interval_ms,
        "batch_max_records": args.batch_max_records,
        "max_lag_ms": args.max_settlement_lag_ms,
        "tick_ms": args.tick_ms,
        "from_block": args.from_block,
        "censor_forced_requests": args.censor_forced_requests,
    }
    if args.chain_rpc is not None:
        if key is None:
            raise ConfigError(
                "--chain-rpc needs --sequencer-key-file (the key batches are signed with)"
            )
        return {**common, "rpc_url": args.chain_rpc}, None
    embedded, key = deploy_embedded(
        engine_config,
        key,
        data_dir=args.data,
        finality_blocks=table["finality_blocks"],
        forced_deadline_blocks=table["forced_deadline_blocks"],
        block_time_ms=table["block_time_ms"],
    )
    return {**common, "sequencer_key": key, "embedded": embedded}, embedded


def default_extensions(
    hyperliquid_mainnet: bool = False, hyperliquid: bool = True
) -> tuple[ExtensionFactory, ...]:
    """Everything a venue serves beside the native HTTP API: the trading page at ``/`` and the
    Hyperliquid-compatible API (unless ``hyperliquid`` is false: it derives fills and order
    histories from every record, which a venue that does not serve it need not pay for)."""
    hyperliquid_api = (hyperliquid_extension(mainnet=hyperliquid_mainnet),) if hyperliquid else ()
    return (NativeStreams, *hyperliquid_api, OracleFeed, Metrics, WebPage)


def _node_options(args: argparse.Namespace, table: dict[str, Any]) -> None:
    """Flags not given take the config file's ``[node]`` values."""
    for key in NODE_KEYS:
        if getattr(args, key, None) is None:
            setattr(args, key, table[key])
    if args.verify_workers is None:
        # every core but the event loop's: on two cores a second worker only competes with
        # the loop (measured: p99 at 10k intents/s rose from 14 to 33 ms)
        args.verify_workers = max(1, (os.cpu_count() or 1) - 1)
    if args.verify_workers < 0:
        raise ConfigError("--verify-workers must not be negative")
    if args.port < 0 or args.port > 65_535:
        raise ConfigError("--port must be 0..65535")
    for key in ("ip_weight_per_minute", "max_sockets", "max_sockets_per_address"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be positive")
    for key in ("address_initial_requests", "address_requests_per_usdc"):
        if getattr(args, key) < 0:
            raise ConfigError(f"--{key.replace('_', '-')} must not be negative")


def _rate_limits(args: argparse.Namespace) -> RateLimits | None:
    if not args.rate_limits:
        return None
    return RateLimits(
        ip_weight_per_minute=args.ip_weight_per_minute,
        address_initial_requests=args.address_initial_requests,
        address_requests_per_usdc=args.address_requests_per_usdc,
    )


def settings_from_args(args: argparse.Namespace) -> NodeSettings:
    engine_choice(args)  # a refused engine is refused before anything starts (the chain)
    engine_config, venue, settlement_table, node_table = load_node_file(Path(args.config))
    _node_options(args, node_table)
    settlement_args, embedded = _settlement_from_args(args, engine_config, settlement_table)
    try:
        return _node_settings(args, engine_config, venue, node_table, settlement_args, embedded)
    except BaseException:
        if embedded is not None:
            embedded.close()  # the chain process started above: not left behind by a refusal
        raise


def _node_settings(
    args: argparse.Namespace,
    engine_config: EngineConfig,
    venue: dict[str, Any],
    node_table: dict[str, Any],
    settlement_args: dict[str, Any] | None,
    embedded: EmbeddedChain | None,
) -> NodeSettings:
    chain_id = args.chain_id if args.chain_id is not None else venue.get("chain_id")
    contract_text = args.contract if args.contract is not None else venue.get("settlement_contract")
    if embedded is not None:
        # The embedded deployment is the domain; a config naming another one is a mistake.
        deployed_chain_id = embedded.client.chain.chain_id
        if chain_id is not None and chain_id != deployed_chain_id:
            raise ConfigError(
                f"chain id {chain_id} given, the embedded chain's is {deployed_chain_id}"
            )
        deployed_text = embedded.client.address.lower()
        if contract_text is not None and str(contract_text).lower() != deployed_text:
            raise ConfigError(
                f"contract {contract_text} given, the embedded one is {deployed_text}"
            )
        chain_id, contract_text = deployed_chain_id, deployed_text
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
    try:
        committee = load_committee(Path(args.config))
    except CommitteeConfigError as exc:
        raise ConfigError(str(exc)) from None
    if committee is not None and settlement_args is not None:
        if embedded is not None:
            raise ConfigError(
                "a committee member settles on a shared chain (--chain-rpc, --contract of a "
                "CommitteeSettlement), never on an embedded chain of its own"
            )
        # batches are signed by the member key and posted with a quorum's certificate
        settlement_args["member_secret"] = committee.secret
    settlement = None
    if settlement_args is not None:
        rpc_contract = contract if embedded is None else None
        try:
            if embedded is not None and args.from_block == 0:
                settlement_args["from_block"] = embedded.deploy_block
            settlement = SettlementSettings(
                **settlement_args, contract=rpc_contract, expected_chain_id=chain_id
            )
        except SettlementError as exc:
            raise ConfigError(str(exc)) from None
    return NodeSettings(
        data_dir=Path(args.data),
        engine_config=engine_config,
        domain=asyncdex_domain(chain_id, contract),
        port=args.port,
        snapshot_every=args.snapshot_every,
        operator_token=token,
        settlement=settlement,
        extensions=default_extensions(
            args.hyperliquid_network == "mainnet", hyperliquid=args.hyperliquid_api
        ),
        verify_workers=args.verify_workers,
        accept_journal_loss=args.accept_journal_loss,
        rate_limits=_rate_limits(args),
        connection_caps=ConnectionCaps(args.max_sockets, args.max_sockets_per_address),
        committee=committee,
        engine=engine_choice(args),
    )


def engine_choice(args: argparse.Namespace) -> str | None:
    """The engine ``--engine`` asks for (None: the default, native when it is built)."""
    if getattr(args, "compiled", False):
        # the flag of the retired mypyc build: refused with the way forward, rather than
        # "unrecognized arguments", so an existing script says what to change
        raise ConfigError(
            "--compiled is retired: the native core is the fast engine and runs by default "
            "when it is built; use --engine native to require it"
        )
    requested: str | None = getattr(args, "engine", None)
    if requested == "native" and not native_available():
        raise ConfigError(f"--engine native: {native_unavailable_reason()}")
    return requested


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
        "chainId": node.settings.domain.chain_id,
        "contract": "0x" + node.settings.domain.verifying_contract.hex(),
        "settlement": node.settings.settlement is not None,
        "engine": node.engine_name,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def cmd_node(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        configure_logging(args.log_format, "INFO")
        return asyncio.run(serve(settings, on_ready=_announce))
    except (ConfigError, SettlementError) as exc:
        print(f"asyncdex node: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (JournalCorruption, StoreCorruption) as exc:
        # the journal, or a committee member's consensus store: damage is never guessed over
        print(f"asyncdex node: refusing to start: {exc}", file=sys.stderr)
        return EXIT_JOURNAL_CORRUPT
    except JournalLoss as exc:
        print(
            f"asyncdex node: refusing to start: {exc} (restore them, or start with "
            "--accept-journal-loss)",
            file=sys.stderr,
        )
        return EXIT_JOURNAL_LOSS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``node`` to an ``add_subparsers()`` object; the handler is ``args.func``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "node",
        help="run a venue node (HTTP intake, sequencer, journal, engine) on loopback",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="data directory (journal, snapshots)")
    parser.add_argument("--config", required=True, help="venue config file (TOML)")
    parser.add_argument(
        "--port", type=int, default=None, help="loopback port; 0 = any free (default 8080)"
    )
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=None,
        help="processes recovering signatures (0: in the event loop; default: cores - 1)",
    )
    parser.add_argument(
        "--log-format", choices=FORMATS, default=None, help="stderr logs: text or json lines"
    )
    parser.add_argument(
        "--hyperliquid-api",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve /info, /exchange and /ws (default on)",
    )
    parser.add_argument(
        "--hyperliquid-network",
        choices=HYPERLIQUID_NETWORKS,
        default=None,
        help='what Hyperliquid clients must sign for (testnet: source "b"; default testnet)',
    )
    limits = parser.add_argument_group(
        "rate limits", "per client IP and per address, on every door (defaults: Hyperliquid's)"
    )
    limits.add_argument(
        "--rate-limits",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="charge requests to budgets and answer 429 past them (default on)",
    )
    limits.add_argument(
        "--ip-weight-per-minute", type=int, default=None,
        help="request weight per client IP per minute (default 1200)",
    )  # fmt: skip
    limits.add_argument(
        "--address-initial-requests", type=int, default=None,
        help="requests an address may make before trading raises its cap (default 10000)",
    )  # fmt: skip
    limits.add_argument(
        "--address-requests-per-usdc", type=int, default=None,
        help="requests added to an address's cap per USDC it traded (default 1)",
    )  # fmt: skip
    limits.add_argument(
        "--max-sockets", type=int, default=None,
        help="WebSocket sockets per door, /v1/ws and /ws (default 1000)",
    )  # fmt: skip
    limits.add_argument(
        "--max-sockets-per-address", type=int, default=None,
        help="WebSocket sockets per client address on each door (default 100)",
    )  # fmt: skip
    parser.add_argument(
        "--engine",
        choices=ENGINE_KINDS,
        default=None,
        help="the engine implementation: native (the C++ core; the default when it is built) "
        "or reference (the interpreted engine); both serve the same responses",
    )
    # retired with the mypyc build; kept only to refuse it with a clear message
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--chain-id", type=int, default=None, help="overrides [venue] chain_id")
    parser.add_argument(
        "--contract", default=None, help="settlement contract 0x.., overrides the config"
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        help=f"snapshot the engine every N records (0 = only at shutdown; default "
        f"{DEFAULT_SNAPSHOT_EVERY})",
    )
    parser.add_argument(
        "--accept-journal-loss",
        action="store_true",
        help="start even if the journal ends below a snapshot's seq, dropping the missing"
        " acknowledged records (the snapshots beyond are renamed lost-snapshot-*)",
    )
    parser.add_argument(
        "--operator-token",
        default=None,
        help=f"enables POST /v1/system for holders of this token (or set ${TOKEN_ENV})",
    )
    settle = parser.add_argument_group(
        "settlement", "on with --chain-rpc, or with [settlement] deploy = true (embedded EVM)"
    )
    settle.add_argument("--chain-rpc", default=None, help="EVM JSON-RPC URL (e.g. anvil)")
    settle.add_argument(
        "--sequencer-key-file", default=None, help="file holding the batch-signing key (hex)"
    )
    settle.add_argument(
        "--confirmations",
        type=int,
        default=None,
        help="blocks (the message's own included) before an L1 message is sequenced",
    )
    settle.add_argument(
        "--batch-interval-ms",
        type=int,
        default=None,
        help="a batch covers at most this much sequenced time",
    )
    settle.add_argument(
        "--batch-max-records",
        type=int,
        default=None,
        help="a batch holds at most this many records",
    )
    settle.add_argument(
        "--max-settlement-lag-ms",
        type=int,
        default=None,
        help="protective mode beyond this committed lag, off again below half (0: never)",
    )
    settle.add_argument("--tick-ms", type=int, default=None, help="sequence a time tick this often")
    settle.add_argument(
        "--from-block", type=int, default=0, help="the contract's deploy block (log scans)"
    )
    settle.add_argument(
        "--censor-forced-requests",
        action="store_true",
        help=f"TESTS ONLY ({TEST_MODE_ENV}=1): drop forced requests, to exercise the exit",
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
