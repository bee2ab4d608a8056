"""``asyncdex simulate consensus``: summary, JSON line, exit codes, failing seeds."""

from __future__ import annotations

import json

import pytest

import asyncdex.cli.simulate_cmd as simulate_cmd
from asyncdex.cli.main import main
from asyncdex.consensus.simulator import SimulationFailure


def test_runs_seeds_and_prints_a_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "consensus", "--seeds", "3", "--start", "5", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("consensus simulation: 3 seeds from 5, n=4: 3 passed, 0 failed")
    summary = json.loads(lines[-1])
    assert summary["seeds"] == 3 and summary["failed"] == 0 and summary["committed_blocks"] > 0


def test_a_single_member_committee(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "consensus", "--seeds", "2", "--nodes", "1"]) == 0
    assert "n=1: 2 passed" in capsys.readouterr().out


def test_a_failing_seed_is_reported_with_its_trace_and_how_to_reproduce(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = simulate_cmd.run_seed

    def fail_seed_7(seed: int, config: object) -> object:
        if seed == 7:
            raise SimulationFailure(7, "SAFETY: planted", ["t=1ms deliver -> 0: Vote"])
        return real(seed, config)  # type: ignore[arg-type]

    monkeypatch.setattr(simulate_cmd, "run_seed", fail_seed_7)
    assert main(["simulate", "consensus", "--seeds", "2", "--start", "6"]) == 1
    out = capsys.readouterr().out
    assert "FAILED seed 7: SAFETY: planted" in out and "t=1ms deliver -> 0: Vote" in out
    assert "--start 7 --seeds 1" in out


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "consensus", "--seeds", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
