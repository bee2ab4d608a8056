"""A venue's engine config from a TOML file: markets and oracle publishers.

Invariants:
- Strict: every key must be known and every value of the type the field takes; anything
  else is refused with :class:`ConfigFileError` naming the file, the table and the key. A
  typo (``tick_size`` for ``tick``) must never fall back silently to a default, because the
  config is part of the venue's identity: snapshots and state roots are only valid under
  the exact config they were made with.
- What is loaded is validated as the engine would (``EngineConfig.validate``), so a file
  that loads can start an engine.
- Integers stay integers: TOML floats are refused wherever the engine wants an int, and
  booleans are refused where an int is expected (Python counts ``True`` as an int).
- One file describes a venue: :func:`load_engine_config` also reads a node's config file
  (``asyncdex node --config``, e.g. ``examples/node.toml``) and skips its process tables,
  :data:`NODE_TABLES`, which ``asyncdex node`` reads strictly itself. Nothing in them is
  engine config, so skipping them cannot change the engine a journal replays under; every
  other unknown key is still refused.

Format::

    oracle_publishers = ["0x<40 hex digits>", ...]
    max_open_orders_per_account = 1000          # optional
    committee_fee_share_ppm = 200000            # optional: committee incentives
    committee_members = ["0x<40 hex digits>", ...]  # in member-index order (docs/engine.md)

    [[markets]]                                 # market ids are positions, from 0
    symbol = "BTC"
    sz_decimals = 5
    tick = 10
    lot = 10
    # any other MarketSpec field may be given; omitted ones take MarketSpec's defaults,
    # e.g. a frequent-batch-auction market (docs/engine.md, "Batch auctions"):
    # ordering = "batch_auction"
    # auction_interval_ms = 200
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from asyncdex.types.market import EngineConfig, MarketSpec

__all__ = [
    "NODE_TABLES",
    "ConfigFileError",
    "adopt_committee_members",
    "load_engine_config",
    "parse_engine_config",
]

NODE_TABLES = ("node", "settlement", "venue", "committee")
"""The tables of a node's config file that configure the process, not the engine (see
``asyncdex.cli.node_cmd``): its port and logs, settlement, the signing domain, its seat in a
committee (whose member list a venue paying its committee also gives the engine, see
:func:`adopt_committee_members`)."""

_TOP_LEVEL = (
    "markets",
    "oracle_publishers",
    "max_open_orders_per_account",
    "committee_fee_share_ppm",
    "committee_members",
)
_MARKET_FIELDS = {f.name: f for f in dataclasses.fields(MarketSpec)}
_REQUIRED_MARKET_FIELDS = tuple(
    name
    for name, f in _MARKET_FIELDS.items()
    if f.default is dataclasses.MISSING and name != "market_id"
)


class ConfigFileError(ValueError):
    """A config file that cannot be loaded; the message says where and why."""


def load_engine_config(path: str | os.PathLike[str]) -> EngineConfig:
    """Read, check and validate the engine config in the TOML file at ``path``: a venue file
    or a node's config file, whose :data:`NODE_TABLES` are skipped (the node checks them)."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigFileError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{source}: not valid TOML: {exc}") from exc
    adopt_committee_members(document, str(source))
    for name in NODE_TABLES:
        # only as tables: ``venue = "x"`` is still refused as an unknown key
        if isinstance(document.get(name), dict):
            del document[name]
    return parse_engine_config(document, str(source))


def adopt_committee_members(document: dict[str, Any], origin: str = "<config>") -> None:
    """A committee member's config that pays the committee (``committee_fee_share_ppm``)
    names its members once, in ``[committee]`` (``members = [{address = ...}, ...]``, index
    order): the engine's ``committee_members`` are taken from there. Given at the top level
    too, they must be the same list. Call before the node tables are taken out."""
    table = document.get("committee")
    if not isinstance(table, dict) or not document.get("committee_fee_share_ppm"):
        return
    seats = table.get("members")
    if not isinstance(seats, list) or not all(isinstance(seat, dict) for seat in seats):
        return  # malformed: the committee table's own loader says what is wrong
    addresses = [seat.get("address") for seat in seats]
    given = document.get("committee_members")
    if given is None:
        document["committee_members"] = addresses
    elif [str(a).lower() for a in given] != [str(a).lower() for a in addresses]:
        raise ConfigFileError(
            f"{origin}: committee_members differs from the [committee] table's members"
        )


def parse_engine_config(document: dict[str, Any], origin: str = "<config>") -> EngineConfig:
    """The engine config a parsed TOML document describes (see the module docstring)."""
    _refuse_unknown(document, _TOP_LEVEL, origin)
    raw_markets = document.get("markets")
    if not isinstance(raw_markets, list) or not raw_markets:
        raise ConfigFileError(f"{origin}: needs at least one [[markets]] table")
    markets = tuple(
        _market(raw, index, f"{origin}: markets[{index}]") for index, raw in enumerate(raw_markets)
    )
    publishers = _addresses(document.get("oracle_publishers", []), "oracle_publishers", origin)
    limit = document.get("max_open_orders_per_account", 1_000)
    if type(limit) is not int or limit < 1:
        raise ConfigFileError(f"{origin}: max_open_orders_per_account must be a positive integer")
    share = document.get("committee_fee_share_ppm", 0)
    if type(share) is not int:
        raise ConfigFileError(f"{origin}: committee_fee_share_ppm must be an integer")
    members = _addresses(document.get("committee_members", []), "committee_members", origin)
    config = EngineConfig(markets, publishers, limit, share, members)
    try:
        config.validate()
    except ValueError as exc:
        raise ConfigFileError(f"{origin}: {exc}") from exc
    return config


def _refuse_unknown(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ConfigFileError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )


def _market(raw: Any, index: int, where: str) -> MarketSpec:
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{where}: must be a table")
    _refuse_unknown(raw, tuple(_MARKET_FIELDS), where)
    missing = [name for name in _REQUIRED_MARKET_FIELDS if name not in raw]
    if missing:
        raise ConfigFileError(f"{where}: missing {', '.join(missing)}")
    values: dict[str, Any] = {"market_id": index}
    for name, value in raw.items():
        wanted = str if name in ("symbol", "ordering") else int
        # bool is a subclass of int: ``tick = true`` must not load as 1.
        if type(value) is not wanted:
            raise ConfigFileError(
                f"{where}: {name} must be {'a string' if wanted is str else 'an integer'}, "
                f"got {value!r}"
            )
        values[name] = value
    if values["market_id"] != index:
        raise ConfigFileError(
            f"{where}: market_id {values['market_id']} must equal its position {index}"
        )
    return MarketSpec(**values)


def _addresses(raw: Any, key: str, origin: str) -> tuple[bytes, ...]:
    if not isinstance(raw, list):
        raise ConfigFileError(f"{origin}: {key} must be a list of addresses")
    addresses = []
    for index, item in enumerate(raw):
        where = f"{origin}: {key}[{index}]"
        if type(item) is not str or not item.startswith("0x") or len(item) != 42:
            raise ConfigFileError(f"{where}: must be a 0x-prefixed 20-byte hex address")
        try:
            addresses.append(bytes.fromhex(item[2:]))
        except ValueError:
            raise ConfigFileError(f"{where}: {item!r} is not hex") from None
    if len(set(addresses)) != len(addresses):
        raise ConfigFileError(f"{origin}: {key} lists an address twice")
    return tuple(addresses)
