"""The ``[committee]`` table of a node config: this node's seat in a sequencer committee.

Invariants:
- The table names every member, in index order, by address and consensus address
  (``host:port``), this node's ``index`` and the file holding its member key (hex, relative
  to the config file). The key must be the key of the member at ``index``: a node never
  signs as another member.
- Unknown keys, wrong types and inconsistent members are refused with a message naming the
  key, before anything starts.

```toml
[committee]
index = 0
key_file = "member.key"
domain = "asyncdex/consensus/v1"     # optional: separates committees (chain, epoch)
base_timeout_ms = 1_000              # optional: a view's timer
members = [
    { address = "0x...", consensus = "127.0.0.1:9100" },
    ...
]

[committee.sealing]                  # optional: sealed intents (docs/fairness.md)
key_file = "sealing.json"            # the DKG's committee key and this member's share
epoch_ms = 100                       # optional: sealing epoch length
key_alarm_ms = 2_000                # optional: warn when execution waits this long for a key
```

The sealing key file (``asyncdex.fairness.keyfile``) must hold the share of member
``index + 1`` (DKG indices start at 1): a share that does not match its public share is
refused here.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from asyncdex.committee.venue import CommitteeSettings, SealingSettings
from asyncdex.consensus.replica import ReplicaConfig
from asyncdex.fairness.keyfile import parse_sealing_key_document
from asyncdex.signing.eip712 import parse_address

COMMITTEE_TABLE = "committee"
_KEYS = frozenset(
    {"index", "key_file", "domain", "members", "base_timeout_ms", "max_block_items", "sealing"}
)
_SEALING_KEYS = frozenset({"key_file", "epoch_ms", "key_alarm_ms"})


class CommitteeConfigError(ValueError):
    pass


def _endpoint(text: Any, where: str) -> tuple[str, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise CommitteeConfigError(f"{where}: consensus must be 'host:port'")
    host, port_text = text.split(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65_536:
        raise CommitteeConfigError(f"{where}: consensus must be 'host:port' with a port 1..65535")
    return host, int(port_text)


def read_member_key(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise CommitteeConfigError(f"{path}: cannot read the member key: {exc}") from None
    try:
        secret = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise CommitteeConfigError(f"{path}: a member key is 64 hex digits") from None
    if len(secret) != 32:
        raise CommitteeConfigError(f"{path}: a member key is 64 hex digits")
    return secret


def parse_committee_table(path: Path, table: Any) -> CommitteeSettings:
    where = f"{path}: [{COMMITTEE_TABLE}]"
    if not isinstance(table, dict):
        raise CommitteeConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise CommitteeConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("index", "key_file", "members"):
        if key not in table:
            raise CommitteeConfigError(f"{where}: {key} is required")
    index = table["index"]
    if type(index) is not int:
        raise CommitteeConfigError(f"{where}: index must be an integer")
    members_table = table["members"]
    if not isinstance(members_table, list) or not members_table:
        raise CommitteeConfigError(f"{where}: members must be a non-empty array of tables")
    addresses, peers = [], []
    for position, member in enumerate(members_table):
        at = f"{where} members[{position}]"
        if not isinstance(member, dict) or set(member) != {"address", "consensus"}:
            raise CommitteeConfigError(f"{at}: a member is {{ address, consensus }}")
        try:
            addresses.append(parse_address(member["address"]))
        except (TypeError, ValueError) as exc:
            raise CommitteeConfigError(f"{at}: address: {exc}") from None
        peers.append(_endpoint(member["consensus"], at))
    key_file = table["key_file"]
    if not isinstance(key_file, str):
        raise CommitteeConfigError(f"{where}: key_file must be a string")
    secret = read_member_key((path.parent / key_file).resolve())
    domain = table.get("domain", "asyncdex/consensus/v1")
    if not isinstance(domain, str) or not domain:
        raise CommitteeConfigError(f"{where}: domain must be a non-empty string")
    replica = ReplicaConfig()
    overrides = _positive_ints(table, ("base_timeout_ms", "max_block_items"), where)
    sealing = None
    if "sealing" in table:
        sealing = _parse_sealing(path, f"{where} sealing", table["sealing"], index)
    try:
        if overrides:
            replica = dataclasses.replace(replica, **overrides)
        return CommitteeSettings(
            index=index,
            members=tuple(addresses),
            peers=tuple(peers),
            secret=secret,
            domain=domain.encode(),
            replica=replica,
            sealing=sealing,
        )
    except ValueError as exc:
        raise CommitteeConfigError(f"{where}: {exc}") from None


def _positive_ints(table: dict[str, Any], keys: tuple[str, ...], where: str) -> dict[str, int]:
    """The optional positive integers ``keys`` of ``table`` that are there."""
    found = {}
    for key in keys:
        if key in table:
            value = table[key]
            if type(value) is not int or value <= 0:
                raise CommitteeConfigError(f"{where}: {key} must be a positive integer")
            found[key] = value
    return found


def _parse_sealing(path: Path, where: str, table: Any, index: Any) -> SealingSettings:
    if not isinstance(table, dict):
        raise CommitteeConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _SEALING_KEYS)
    if unknown:
        raise CommitteeConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    key_file = table.get("key_file")
    if not isinstance(key_file, str):
        raise CommitteeConfigError(f"{where}: key_file (a string) is required")
    numbers = _positive_ints(table, ("epoch_ms", "key_alarm_ms"), where)
    key_path = (path.parent / key_file).resolve()
    try:
        document = json.loads(key_path.read_text())
        committee_key, share = parse_sealing_key_document(document)
    except OSError as exc:
        raise CommitteeConfigError(f"{key_path}: cannot read the sealing key: {exc}") from None
    except ValueError as exc:  # JSONDecodeError too
        raise CommitteeConfigError(f"{key_path}: {exc}") from None
    if share is not None and share.index != index + 1:
        raise CommitteeConfigError(
            f"{key_path}: holds the share of DKG member {share.index}, this node is member "
            f"{index} (share {index + 1})"
        )
    try:
        return SealingSettings(committee_key, share, **numbers)
    except ValueError as exc:
        raise CommitteeConfigError(f"{where}: {exc}") from None


def load_committee(path: Path) -> CommitteeSettings | None:
    """The ``[committee]`` table of the node config at ``path``, or None without one."""
    with path.open("rb") as file:
        document = tomllib.load(file)
    if COMMITTEE_TABLE not in document:
        return None
    return parse_committee_table(path, document[COMMITTEE_TABLE])
