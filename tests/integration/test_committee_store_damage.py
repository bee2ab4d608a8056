"""A committee member whose consensus store is damaged mid-file refuses to start (exit 65),
naming the file, and changes nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from asyncdex.cli.committee_cmd import CommitteeProcesses, member_dir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "committee.toml"


def test_a_damaged_consensus_store_stops_the_start(tmp_path: Path, free_port_base: int) -> None:
    data = tmp_path / "committee"
    # a committee of one commits alone: a few empty blocks, then a clean stop
    processes = CommitteeProcesses(
        data, CONFIG, 1, port=free_port_base, consensus_port=free_port_base + 4
    )
    processes.start_all()
    time.sleep(2.0)
    assert processes.stop_all() == [0]
    committed = member_dir(data, 0) / "committee" / "committed"
    segment = sorted(committed.glob("*.seg"))[-1]
    raw = bytearray(segment.read_bytes())
    assert len(raw) > 200
    before = bytes(raw)
    raw[len(raw) // 3] ^= 0xFF  # inside an early record, not the tail a crash could tear
    segment.write_bytes(bytes(raw))
    result = subprocess.run(
        [sys.executable, "-m", "asyncdex.cli.main", "node",
         "--data", str(member_dir(data, 0)), "--config", str(processes.configs[0]),
         "--port", str(free_port_base)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 65, result.stderr[-2000:]
    assert "refusing to start" in result.stderr and "committed" in result.stderr
    assert segment.read_bytes() != before and len(segment.read_bytes()) == len(before)
