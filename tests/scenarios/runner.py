"""The one runner of the golden scenario files in ``tests/scenarios/cases/*.json``.

A scenario names its markets and oracle publishers, then lists steps: a command, the
timestamp it is sequenced at, the events the engine must emit for it, and optionally some
post-state values. The file format is described in ``tests/scenarios/README.md``.

What the runner checks, besides what the file lists:
- after every step no book is crossed (``Book.check_invariants``; a batch-auction book only
  right after an auction that an ``AdvanceTime`` step ran) and the conserved sum
  ``State.total_money()`` equals deposits minus withdrawals, both counted from the
  ``Deposited`` / ``Withdrawn`` events (not from the engine's own counters);
- a step flagged ``"unchanged": true`` leaves the state root exactly as it found it (how a
  rejected command proves it changed nothing);
- the final state root equals the file's ``final_root``;
- replay determinism: a second engine fed the same commands through the journal codec, and a
  third engine restored from a snapshot taken at the middle step, emit the same events and
  reach the same final root.

Expected events are written by hand from the rules. Only the final root may be filled in by
the runner: with ``ASYNCDEX_UPDATE_ROOTS=1`` it writes the computed root into a file whose
every other check passed, and never touches anything else in the file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, get_type_hints

from asyncdex.engine.snapshot import restore, snapshot
from asyncdex.engine.state import State
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.codec import COMMAND_TAG, decode_command, encode_command
from asyncdex.messages.commands import (
    ALL_MARKETS,
    COMMAND_TYPES,
    AdvanceTime,
    Command,
    OrderType,
    TimeInForce,
    TriggerKind,
)
from asyncdex.messages.events import EVENT_TYPES, Deposited, Event, Withdrawn
from asyncdex.messages.reasons import CancelReason, Reject
from asyncdex.types.market import EngineConfig, MarketSpec

CASES_DIR = Path(__file__).parent / "cases"
UPDATE_ROOTS_ENV = "ASYNCDEX_UPDATE_ROOTS"

COMMANDS: dict[str, type] = {cls.__name__: cls for cls in COMMAND_TYPES}
EVENTS: dict[str, type] = {cls.__name__: cls for cls in EVENT_TYPES}
COMMAND_NAMES: dict[int, str] = {tag: cls.__name__ for cls, tag in COMMAND_TAG.items()}

# Fields whose integers are enum members: a file may write the member's name instead.
COMMAND_ENUMS: dict[str, type[IntEnum]] = {
    "tif": TimeInForce,
    "order_type": OrderType,
    "trigger_kind": TriggerKind,
}
EVENT_ENUMS: dict[tuple[str, str], type[IntEnum]] = {
    ("Rejected", "reason"): Reject,
    ("OrderCancelled", "reason"): CancelReason,
}

_INT_TEXT = re.compile(r"-?\d[\d_]*")
_FINAL_ROOT = re.compile(r'"final_root"\s*:\s*(null|"[^"]*")')
_ADDRESS_BYTES = 20


class ScenarioFormatError(ValueError):
    """The scenario file itself is malformed (not an engine failure)."""


class ScenarioFailure(AssertionError):
    """The engine did not do what the scenario file says it must."""


# ---------------------------------------------------------------------------- names


def address(name: str) -> bytes:
    """A short name ("alice") as a 20-byte address: its ASCII bytes, right-padded with zeros.

    Right padding keeps the byte order of addresses the alphabetical order of the names,
    which matters wherever the engine walks accounts in address order (liquidations,
    auto-deleveraging ties). ``0x``-prefixed hex is taken as raw bytes of any length, so a
    file can also name a malformed address on purpose.
    """
    if name.startswith("0x"):
        return bytes.fromhex(name[2:])
    data = name.encode("ascii")
    if not data or len(data) > _ADDRESS_BYTES or b"\x00" in data:
        raise ScenarioFormatError(f"address name must be 1..20 ASCII characters: {name!r}")
    return data.ljust(_ADDRESS_BYTES, b"\x00")


def address_name(raw: bytes) -> str:
    """The inverse of ``address`` for display."""
    stripped = raw.rstrip(b"\x00")
    if len(raw) == _ADDRESS_BYTES and stripped and all(32 < b < 127 for b in stripped):
        return stripped.decode("ascii")
    return "0x" + raw.hex()


def parse_int(value: Any, where: str) -> int:
    """An integer written as a JSON number or as a string with ``_`` separators."""
    if isinstance(value, bool):
        raise ScenarioFormatError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_TEXT.fullmatch(value):
        return int(value)
    raise ScenarioFormatError(f"{where}: expected an integer, got {value!r}")


# ---------------------------------------------------------------------------- loading


@dataclass
class Step:
    index: int
    timestamp: int
    command: Command
    expect: list[dict[str, Any]]
    post: dict[str, Any]
    unchanged: bool
    why: str
    raw_command: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    path: Path
    description: str
    config: EngineConfig
    market_ids: dict[str, int]
    steps: list[Step]
    final_root: str | None
    engine_bug: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def scenario_paths() -> list[Path]:
    return sorted(CASES_DIR.glob("*.json"))


def _why(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(line) for line in value)
    return str(value or "")


def build_config(data: dict[str, Any]) -> tuple[EngineConfig, dict[str, int]]:
    spec_fields = set(MarketSpec.__dataclass_fields__) - {"market_id"}
    specs = []
    market_ids: dict[str, int] = {}
    for index, market in enumerate(data["markets"]):
        unknown = set(market) - spec_fields
        if unknown:
            raise ScenarioFormatError(f"market {index}: unknown parameters {sorted(unknown)}")
        symbol = str(market["symbol"])
        numbers: dict[str, Any] = {
            key: parse_int(value, f"market {index}.{key}")
            for key, value in market.items()
            if key not in ("symbol", "ordering")
        }
        if "ordering" in market:
            numbers["ordering"] = str(market["ordering"])
        specs.append(MarketSpec(market_id=index, symbol=symbol, **numbers))
        market_ids[symbol] = index
    config = EngineConfig(
        markets=tuple(specs),
        oracle_publishers=tuple(address(name) for name in data.get("publishers", [])),
        max_open_orders_per_account=parse_int(
            data.get("max_open_orders_per_account", 1_000), "max_open_orders_per_account"
        ),
        committee_fee_share_ppm=parse_int(
            data.get("committee_fee_share_ppm", 0), "committee_fee_share_ppm"
        ),
        committee_members=tuple(address(name) for name in data.get("committee_members", [])),
    )
    config.validate()
    return config, market_ids


def market_id(value: Any, market_ids: dict[str, int], where: str) -> int:
    """A market written as its symbol, ``"ALL"`` (every market, -1) or its integer id."""
    if value == "ALL":
        return ALL_MARKETS
    if isinstance(value, str) and value in market_ids:
        return market_ids[value]
    return parse_int(value, where)


def _command_value(cls: type, name: str, kind: Any, value: Any, market_ids: dict[str, int]) -> Any:
    where = f"{cls.__name__}.{name}"
    if isinstance(value, dict):
        # a Signed envelope carries the command it authorizes
        return build_command(value, market_ids)
    if kind is bytes:
        if not isinstance(value, str):
            raise ScenarioFormatError(f"{where}: an address is written as a name")
        return address(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise ScenarioFormatError(f"{where}: expected true or false")
        return value
    if name == "market":
        return market_id(value, market_ids, where)
    enum = COMMAND_ENUMS.get(name)
    if enum is not None and isinstance(value, str) and value in enum.__members__:
        return int(enum[value])
    return parse_int(value, where)


def build_command(data: dict[str, Any], market_ids: dict[str, int]) -> Command:
    cls = COMMANDS.get(data.get("type", ""))
    if cls is None:
        raise ScenarioFormatError(f"unknown command type {data.get('type')!r}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        if name == "type":
            continue
        if name not in hints:
            raise ScenarioFormatError(f"{cls.__name__} has no field {name!r}")
        kwargs[name] = _command_value(cls, name, hints[name], value, market_ids)
    command: Command = cls(**kwargs)
    return command


def load_scenario(path: Path) -> Scenario:
    data = json.loads(path.read_text())
    config, market_ids = build_config(data)
    steps = []
    for index, raw in enumerate(data["steps"]):
        if "expect" not in raw:
            raise ScenarioFormatError(f"step {index}: every step lists its expected events")
        for event in raw["expect"]:
            if event.get("type") not in EVENTS:
                raise ScenarioFormatError(f"step {index}: unknown event {event.get('type')!r}")
            unknown = set(event) - {"type", *get_type_hints(EVENTS[event["type"]])}
            if unknown:
                raise ScenarioFormatError(f"step {index}: {event['type']} has no {unknown}")
        steps.append(
            Step(
                index=index,
                timestamp=parse_int(raw["t"], f"step {index}.t"),
                command=build_command(raw["cmd"], market_ids),
                expect=raw["expect"],
                post=raw.get("post", {}),
                unchanged=bool(raw.get("unchanged", False)),
                why=_why(raw.get("why")),
                raw_command=raw["cmd"],
            )
        )
    return Scenario(
        path=path,
        description=_why(data.get("description")),
        config=config,
        market_ids=market_ids,
        steps=steps,
        final_root=data.get("final_root"),
        engine_bug=data.get("engine_bug"),
    )


# ---------------------------------------------------------------------------- events


def describe_event(event: Event) -> dict[str, Any]:
    """An event as the file would write it: names for addresses, enums and commands."""
    kind = type(event).__name__
    out: dict[str, Any] = {"type": kind}
    for name, value in zip(event._fields, event, strict=True):
        enum = EVENT_ENUMS.get((kind, name))
        if isinstance(value, bytes):
            out[name] = address_name(value)
        elif enum is not None and isinstance(value, int) and value in enum._value2member_map_:
            out[name] = enum(value).name
        elif kind == "Rejected" and name == "command" and isinstance(value, int):
            out[name] = COMMAND_NAMES.get(value, value)
        else:
            out[name] = value
    return out


def _expected_value(kind: str, name: str, value: Any, scenario: Scenario) -> Any:
    cls = EVENTS[kind]
    hint = get_type_hints(cls)[name]
    where = f"{kind}.{name}"
    if hint is bytes:
        return address(value)
    if hint is bool:
        return value
    if kind == "Rejected" and name == "command" and isinstance(value, str):
        return COMMAND_TAG[COMMANDS[value]]
    enum = EVENT_ENUMS.get((kind, name))
    if enum is not None and isinstance(value, str) and value in enum.__members__:
        return int(enum[value])
    if name == "market":
        return market_id(value, scenario.market_ids, where)
    return parse_int(value, where)


def compare_events(
    expected: list[dict[str, Any]], actual: list[Event], scenario: Scenario
) -> list[str]:
    problems = []
    if len(expected) != len(actual):
        problems.append(f"expected {len(expected)} events, got {len(actual)}")
    for position, (want, got) in enumerate(zip(expected, actual, strict=False)):
        kind = type(got).__name__
        if want["type"] != kind:
            problems.append(f"event {position}: expected {want['type']}, got {kind}")
            continue
        for name, value in want.items():
            if name == "type":
                continue
            wanted = _expected_value(kind, name, value, scenario)
            have = getattr(got, name)
            if wanted != have or (type(wanted) is bool) != (type(have) is bool):
                shown = describe_event(got)[name]
                problems.append(
                    f"event {position} {kind}.{name}: expected {value!r}, got {shown!r}"
                )
    return problems


# ---------------------------------------------------------------------------- post-state


_POSITION_FIELDS = (
    "size",
    "entry_notional",
    "iso_margin",
    "open_buy",
    "open_sell",
    "leverage",
    "isolated",
    "cum_funding",
)


def _check_value(problems: list[str], where: str, expected: Any, actual: Any) -> None:
    wanted: Any
    if isinstance(expected, bool) or expected is None:
        wanted = expected
    elif isinstance(expected, list):
        wanted = [parse_int(item, where) for item in expected]
    else:
        wanted = parse_int(expected, where)
    if wanted != actual:
        problems.append(f"{where}: expected {expected!r}, got {actual!r}")


def check_post(state: State, post: dict[str, Any], scenario: Scenario) -> list[str]:
    problems: list[str] = []
    unknown = set(post) - {"accounts", "markets", "insurance_fund", "fee_pool", "committee_pool"}
    if unknown:
        raise ScenarioFormatError(f"unknown post-state keys {sorted(unknown)}")
    for key in ("insurance_fund", "fee_pool", "committee_pool"):
        if key in post:
            _check_value(problems, key, post[key], getattr(state, key))
    for name, wants in post.get("accounts", {}).items():
        account = state.accounts.get(address(name))
        if account is None:
            problems.append(f"account {name}: does not exist")
            continue
        for key, want in wants.items():
            where = f"{name}.{key}"
            if key == "collateral":
                _check_value(problems, where, want, account.collateral)
            elif key == "scheduled_cancel":
                _check_value(problems, where, want, account.scheduled_cancel)
            elif key == "orders":
                ids = sorted(oid for p in account.positions.values() for oid in p.orders)
                _check_value(problems, where, want, ids)
            elif key == "positions":
                for market, fields in want.items():
                    mid = market_id(market, scenario.market_ids, where)
                    position = account.positions.get(mid)
                    if fields is None:
                        if position is not None:
                            problems.append(f"{where}.{market}: expected no position")
                        continue
                    if position is None:
                        problems.append(f"{where}.{market}: no position")
                        continue
                    for attr, value in fields.items():
                        if attr not in _POSITION_FIELDS:
                            raise ScenarioFormatError(f"{where}.{market}: unknown {attr!r}")
                        _check_value(problems, f"{where}.{market}.{attr}", value,
                                     getattr(position, attr))  # fmt: skip
            else:
                raise ScenarioFormatError(f"{where}: unknown account check")
    for market, wants in post.get("markets", {}).items():
        mid = market_id(market, scenario.market_ids, f"markets.{market}")
        ms = state.markets[mid]
        book = ms.book
        actual: dict[str, Any] = {
            "best_bid": book.best_bid(),
            "best_ask": book.best_ask(),
            "bids": [o.order_id for o in book.orders_in_priority() if o.is_buy],
            "asks": [o.order_id for o in book.orders_in_priority() if not o.is_buy],
            "triggers": sorted(ms.triggers),
            "index_price": ms.index_price,
            "mark_price": ms.mark_price,
            "funding_rate_ppb": ms.funding_rate_ppb,
            "cumulative_funding": ms.cumulative_funding,
        }
        for key, want in wants.items():
            if key not in actual:
                raise ScenarioFormatError(f"markets.{market}: unknown check {key!r}")
            _check_value(problems, f"{market}.{key}", want, actual[key])
    return problems


# ---------------------------------------------------------------------------- running


@dataclass
class Run:
    """What one engine did with a scenario's commands."""

    events: list[list[Event]] = field(default_factory=list)
    root: bytes = b""


def check_invariants(
    state: State, deposited: int, withdrawn: int, auctioned: frozenset[int] = frozenset()
) -> list[str]:
    """``auctioned``: the batch-auction markets whose auction ran in the step and that took
    no new order after it (an ``AdvanceTime`` step): their book must not be crossed. Any
    other batch-auction book may be, between auctions."""
    problems = []
    for market in state.markets:
        may_cross = bool(market.auction_interval) and market.spec.market_id not in auctioned
        try:
            market.book.check_invariants(may_cross)
        except AssertionError as exc:
            problems.append(f"book {market.spec.symbol}: {exc}")
    total = state.total_money()
    if total != deposited - withdrawn:
        problems.append(
            f"money not conserved: total_money {total} != deposits {deposited} "
            f"- withdrawals {withdrawn}"
        )
    return problems


def _failure(scenario: Scenario, step: Step | None, problems: list[str], events: Any) -> None:
    lines = [f"scenario {scenario.name}"]
    if scenario.engine_bug:
        lines.append(f"  (known engine bug: {scenario.engine_bug})")
    if step is not None:
        lines.append(f"step {step.index} at t={step.timestamp}: {json.dumps(step.raw_command)}")
        if step.why:
            lines.append("why: " + step.why.replace("\n", "\n     "))
    lines += [f"  - {p}" for p in problems]
    if events is not None:
        lines.append("actual events:")
        lines += [f"  {json.dumps(describe_event(e))}" for e in events]
    raise ScenarioFailure("\n".join(lines))


def run_primary(scenario: Scenario) -> tuple[Run, bytes]:
    """Apply every step, checking it; return the run and a snapshot after the middle step."""
    engine = Engine(scenario.config)
    run = Run()
    deposited = withdrawn = 0
    middle = len(scenario.steps) // 2
    snap = snapshot(engine.state)
    root_before = state_root(engine.state)
    for step in scenario.steps:
        auctions_before = [market.next_auction for market in engine.state.markets]
        events = engine.apply(step.command, step.timestamp)
        auctioned = frozenset(
            market.spec.market_id
            for market, before in zip(engine.state.markets, auctions_before, strict=True)
            if market.auction_interval
            and before not in (0, market.next_auction)
            and type(step.command) is AdvanceTime
        )
        run.events.append(events)
        for event in events:
            if type(event) is Deposited:
                deposited += event.amount
            elif type(event) is Withdrawn:
                withdrawn += event.amount
        problems = compare_events(step.expect, events, scenario)
        problems += check_invariants(engine.state, deposited, withdrawn, auctioned)
        root_after = state_root(engine.state)
        if step.unchanged and root_after != root_before:
            problems.append(
                "state root changed on an 'unchanged' step (a rejected command must change "
                "nothing; the step must reuse the previous step's timestamp)"
            )
        if step.post:
            problems += check_post(engine.state, step.post, scenario)
        if problems:
            _failure(scenario, step, problems, events)
        root_before = root_after
        if step.index == middle - 1:
            snap = snapshot(engine.state)
    run.root = root_before
    return run, snap


def replay(scenario: Scenario, engine: Engine, steps: list[Step]) -> Run:
    """Feed ``steps`` through the journal codec into ``engine``, checking nothing."""
    run = Run()
    for step in steps:
        command = decode_command(encode_command(step.command))
        run.events.append(engine.apply(command, step.timestamp))
    run.root = state_root(engine.state)
    return run


def _compare_runs(scenario: Scenario, label: str, first: Run, offset: int, other: Run) -> None:
    for position, events in enumerate(other.events):
        step = scenario.steps[offset + position]
        if events != first.events[offset + position]:
            _failure(scenario, step, [f"{label}: events differ from the first run"], events)
    if other.root != first.root:
        _failure(scenario, None, [f"{label}: final root 0x{other.root.hex()} != "
                                  f"0x{first.root.hex()}"], None)  # fmt: skip


def update_final_root(path: Path, root: bytes) -> None:
    """Write ``root`` into the file's ``final_root`` value and change nothing else."""
    text = path.read_text()
    new, count = _FINAL_ROOT.subn(f'"final_root": "0x{root.hex()}"', text, count=1)
    if count != 1:
        raise ScenarioFormatError(f'{path.name}: no "final_root" key to update')
    path.write_text(new)


def run_scenario(scenario: Scenario) -> bytes:
    """Run every check of one scenario; raise ``ScenarioFailure`` on the first failure."""
    first, snap = run_primary(scenario)
    second = replay(scenario, Engine(scenario.config), scenario.steps)
    _compare_runs(scenario, "full replay", first, 0, second)
    middle = len(scenario.steps) // 2
    restored = Engine(state=restore(scenario.config, snap))
    third = replay(scenario, restored, scenario.steps[middle:])
    _compare_runs(scenario, f"replay from snapshot after step {middle - 1}", first, middle,
                  third)  # fmt: skip
    computed = "0x" + first.root.hex()
    if os.environ.get(UPDATE_ROOTS_ENV) == "1":
        if scenario.final_root != computed:
            update_final_root(scenario.path, first.root)
        return first.root
    if scenario.final_root is None:
        _failure(scenario, None, [f"no final_root recorded (computed {computed}); set "
                                  f"{UPDATE_ROOTS_ENV}=1 once the events are right"],
                 None)  # fmt: skip
    if scenario.final_root != computed:
        _failure(scenario, None, [f"final root {computed} != recorded {scenario.final_root}"],
                 None)  # fmt: skip
    return first.root
