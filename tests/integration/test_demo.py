"""``asyncdex demo`` as a user runs it: a subprocess, nothing else running, exit code and
summary checked.

The demo starts the whole venue (the node in a process of its own, the embedded chain with the
contract in the node's child process, the signed oracle and the SDK bots in the demo's); with
``--json`` its last line is the summary. Its output is not a
terminal there, so the view writes one status line per second; under a pseudo-terminal it
redraws in place. With ``--keep-open`` the venue serves after trading until SIGTERM, and
what is done meanwhile (a faucet deposit) is no part of the summary.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

TIMEOUT_S = 300  # generous: the machine may be loaded; the test never asserts a duration


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asyncdex.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_the_venue_demo_trades_liquidates_and_finalizes() -> None:
    result = run_cli("demo", "--duration", "8", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    summary = json.loads(lines[-1])
    assert summary["ok"] is True
    assert summary["fills"] > 0
    assert summary["batches_finalized"] >= 1
    assert summary["batches_committed"] >= summary["batches_finalized"]
    assert summary["all_final"] is True  # every record of the trading window is final
    assert summary["conserved"] is True
    assert summary["contract_balance"] == summary["deposited"] != "0"
    assert summary["chain_final_batch"] >= 1  # read from the contract itself
    assert summary["liquidations"] >= 1  # the scripted oracle jump liquidates a leveraged long
    assert summary["oracle_prices"] > 0
    assert summary["intents"] > 0 and summary["intents_per_second"] > 0
    assert summary["receipt_p50_ms"] is not None
    assert summary["receipt_p50_ms"] <= summary["receipt_p99_ms"]
    # the rate the latency was measured at: intents acknowledged per second of trading
    assert summary["acknowledged_per_second"] > 0
    assert summary["node_exit_code"] == 0
    assert summary["state_root"].startswith("0x") and len(summary["state_root"]) == 66
    # the human-readable side: status lines while trading, the jumps, the summary table
    text = result.stdout
    assert "oracle jump, BTC" in text and "oracle jump, ETH" in text
    assert sum(line.startswith("t ") and "finalized" in line for line in lines) >= 3
    assert "asyncdex demo summary" in text
    assert "money conserved          yes" in text
    assert "intents acknowledged" in text and "receipt latency          p50" in text


def test_on_a_terminal_the_view_redraws_the_books(tmp_path: Path) -> None:
    """Under a pseudo-terminal the view clears and redraws in place, with both books."""
    controller, terminal = pty.openpty()
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "asyncdex.cli.main", "demo", "--duration", "3"],
            stdin=subprocess.DEVNULL, stdout=terminal, stderr=stderr,
        )  # fmt: skip
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the demo exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(timeout=TIMEOUT_S) == 0, stderr_path.read_text()[-3000:]
    screen = b"".join(chunks).decode(errors="replace")
    frames = screen.split("\x1b[H\x1b[2J")[1:]
    assert len(frames) >= 3, screen[-2000:]
    last = frames[-1]
    for text in ("BTC", "ETH", " bid ", " ask ", "trade ", "receipt latency p50", "finalized"):
        assert text in last, (text, last)
    assert "asyncdex demo summary" in last


def post_json(url: str, document: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_keep_open_serves_after_trading_until_sigterm_and_the_summary_is_of_trading(
    tmp_path: Path,
) -> None:
    """With --keep-open the venue serves after trading; a faucet deposit made then is
    credited but is no part of the summary (money still conserved); SIGTERM ends it with
    the normal summary and exit code 0."""
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "asyncdex.cli.main", "demo", "--duration", "3",
             "--keep-open", "--json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    output: list[str] = []
    url = None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                assert process.poll() is None, stderr_path.read_text()[-3000:]
                continue
            output.append(line)
            found = re.search(r"the venue stays open at (http://\S+)/ ", line)
            if found:
                url = found.group(1)
        assert url is not None, "".join(output)[-3000:]
        # still serving: a fresh account funded from the faucet is credited by the engine
        account = "0x" + "5a" * 20
        post_json(url + "/v1/dev/faucet", {"account": account, "amount": 123 * 10**6})
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/v1/accounts/{account}", timeout=10) as answer:
                    assert Decimal(json.loads(answer.read())["equity"]) == 123
                    break
            except urllib.error.HTTPError as error:
                assert error.code == 404
                time.sleep(0.2)
        else:
            raise AssertionError("the faucet deposit was not credited")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT_S) == 0, stderr_path.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=30)
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    summary = json.loads(text.splitlines()[-1])
    assert summary["ok"] is True and summary["interrupted"] is False
    assert summary["conserved"] is True
    assert summary["contract_balance"] == summary["deposited"]  # the demo's own deposits
    assert "money conserved          yes" in text


def test_the_engine_only_session_still_runs() -> None:
    result = run_cli("demo", "--engine-only", "--hours", "0.2", "--seed", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "money conserved          yes" in result.stdout


def test_a_non_positive_duration_is_refused() -> None:
    result = run_cli("demo", "--duration", "0")
    assert result.returncode == 2
    assert "--duration must be positive" in result.stderr


@pytest.mark.xdist_group("committee")  # several processes: with the other committee tests
def test_the_committee_demo_survives_killing_its_leader() -> None:
    result = run_cli("demo", "--committee", "4", "--duration", "9", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["ok"] is True and summary["members"] == 4
    assert summary["trades"] > 0 and summary["intents"] > 0
    assert summary["killed_member"] is not None
    assert summary["no_commit_after_kill_ms"] is not None  # a new leader committed
    assert summary["rejoin_ms"] is not None  # the restarted member caught up
    assert summary["batches_committed"] >= 1
    assert summary["one_history"] is True and summary["member_exit_codes"] == [0, 0, 0, 0]
    assert summary["common_seq"] >= summary["trading_seq"] > 0
    assert "killed member" in result.stdout and "caught up" in result.stdout
