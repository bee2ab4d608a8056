"""Golden scenarios: every ``cases/*.json`` file through the one runner (see ``runner.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncdex.messages.commands import PlaceOrder

from .runner import (
    ScenarioFailure,
    ScenarioFormatError,
    address,
    address_name,
    build_command,
    load_scenario,
    run_scenario,
    scenario_paths,
)

PATHS = scenario_paths()


def test_there_are_enough_scenarios() -> None:
    assert len(PATHS) >= 30


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_scenario(path: Path) -> None:
    run_scenario(load_scenario(path))


def test_invalid_cases_assert_that_nothing_changed() -> None:
    """An ``invalid_*`` file exists to show a rejection that leaves the state untouched."""
    for path in PATHS:
        if path.stem.startswith("invalid_"):
            scenario = load_scenario(path)
            rejected = [
                s for s in scenario.steps if s.unchanged and any(
                    e["type"] == "Rejected" for e in s.expect
                )
            ]  # fmt: skip
            assert rejected, f"{path.name} has no rejected step flagged unchanged"


def test_addresses_are_padded_ascii_and_keep_name_order() -> None:
    assert address("alice") == b"alice" + b"\x00" * 15
    assert address("alice") < address("bob") < address("carol")
    assert address_name(address("dave")) == "dave"
    assert address("0x0102") == b"\x01\x02"
    with pytest.raises(ScenarioFormatError):
        address("a" * 21)


def test_commands_accept_enum_names_and_separated_integers() -> None:
    command = build_command(
        {"type": "PlaceOrder", "account": "alice", "market": "TST", "is_buy": True,
         "price": "10_000", "size": 100, "tif": "IOC"},
        {"TST": 0},
    )  # fmt: skip
    assert isinstance(command, PlaceOrder)
    assert command.price == 10_000 and command.tif == 1 and command.market == 0


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The runner must be able to fail: a deposit expected with the wrong amount."""
    case = tmp_path / "wrong.json"
    case.write_text(
        '{"markets": [{"symbol": "TST", "sz_decimals": 4, "tick": 10, "lot": 100}],'
        ' "steps": [{"t": 1, "cmd": {"type": "Deposit", "account": "alice", "amount": 5,'
        ' "l1_index": 0}, "expect": [{"type": "Deposited", "amount": 6}]}],'
        ' "final_root": null}'
    )
    with pytest.raises(ScenarioFailure, match=r"Deposited\.amount"):
        run_scenario(load_scenario(case))
