"""The compiled engine (mypyc) and the interpreted reference give identical results."""

from __future__ import annotations

import json
import subprocess
import sys

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
