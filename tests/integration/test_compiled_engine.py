"""The compiled engine (mypyc) and the interpreted reference give identical results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from asyncdex.cli.demo import run_demo
from asyncdex.engine.compiled import compiled_env, is_compiled

SCRIPT = """
import json
from asyncdex.cli.demo import run_demo
from asyncdex.engine.compiled import is_compiled
summary = run_demo(hours=1.5, seed=5, quiet=True)
print(json.dumps({"compiled": is_compiled(), "root": summary.state_root,
                  "events": dict(summary.events), "commands": summary.commands}))
"""


def test_compiled_engine_replays_the_demo_to_the_same_root() -> None:
    assert not is_compiled(), "the test process runs the interpreted reference"
    reference = run_demo(hours=1.5, seed=5, quiet=True)
    assert reference.liquidations >= 1 and reference.events["TradeExecuted"] > 100
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=compiled_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    compiled = json.loads(proc.stdout.strip().splitlines()[-1])
    assert compiled["compiled"] is True
    assert compiled["commands"] == reference.commands
    assert compiled["events"] == dict(reference.events)
    assert compiled["root"] == reference.state_root


SCENARIOS_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from asyncdex.engine.compiled import is_compiled
from scenarios.runner import load_scenario, run_scenario, scenario_paths
roots = {path.stem: "0x" + run_scenario(load_scenario(path)).hex() for path in scenario_paths()}
print(json.dumps({"compiled": is_compiled(), "roots": roots}))
"""


def test_compiled_engine_passes_every_golden_scenario() -> None:
    """Each scenario's events, post-states and final root, checked by the one runner, hold
    for the compiled build too (builder fees, liquidations and triggers included)."""
    tests_dir = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIOS_SCRIPT, str(tests_dir)],
        env=compiled_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    compiled = json.loads(proc.stdout.strip().splitlines()[-1])
    assert compiled["compiled"] is True
    expected = {
        path.stem: json.loads(path.read_text())["final_root"]
        for path in sorted((tests_dir / "scenarios" / "cases").glob("*.json"))
    }
    assert compiled["roots"] == expected
    assert "builder_fee_approved_then_paid_on_fills" in expected
