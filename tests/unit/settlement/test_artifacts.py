"""The committed contract artifacts are exactly what the pinned compiler makes of the sources.

The byte-for-byte recompile needs node and the npm packages (``npm ci``); without
``node_modules`` it is skipped locally and fails under CI (``CI`` set), so CI cannot pass with
stale artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from asyncdex.settlement.chain import load_artifact
from asyncdex.types.hashing import keccak256

REPO = Path(__file__).resolve().parents[3]
CONTRACTS = REPO / "src" / "asyncdex" / "settlement" / "contracts"
NAMES = ["Settlement", "CommitteeSettlement", "TestToken"]


@pytest.mark.parametrize("name", NAMES)
def test_artifact_was_compiled_from_the_current_source(name: str) -> None:
    artifact = load_artifact(name)
    source = (CONTRACTS / f"{name}.sol").read_bytes()
    assert artifact["sourceKeccak256"] == "0x" + keccak256(source).hex(), (
        f"{name}.sol changed since {name}.json was built: run node scripts/compile_contracts.js"
    )


@pytest.mark.parametrize("name", NAMES)
def test_artifact_records_the_pinned_compiler(name: str) -> None:
    pinned = json.loads((REPO / "package.json").read_text())["devDependencies"]["solc"]
    artifact = load_artifact(name)
    assert artifact["compiler"]["version"].startswith(f"{pinned}+commit.")
    assert artifact["settings"]["metadata"] == {"bytecodeHash": "none"}
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2


def test_recompiling_gives_the_committed_artifacts_byte_for_byte(tmp_path: Path) -> None:
    node = shutil.which("node")
    installed = (REPO / "node_modules" / "solc" / "package.json").is_file()
    if node is None or not installed:
        if os.environ.get("CI"):
            pytest.fail("CI needs node and the npm packages: run `npm ci` at the repo root")
        pytest.skip("node or node_modules/solc missing; run `npm ci` to enable this check")
    subprocess.run(
        [node, str(REPO / "scripts" / "compile_contracts.js"), "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for name in NAMES:
        fresh = (tmp_path / f"{name}.json").read_bytes()
        assert fresh == (CONTRACTS / f"{name}.json").read_bytes(), f"{name}.json is stale"
