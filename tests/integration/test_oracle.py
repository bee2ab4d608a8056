"""The oracle publisher process (``asyncdex oracle``) drives a real node's index price.

A node process runs with three configured publishers; ``asyncdex oracle`` runs as a second
process with their key files. The index in ``/v1/markets`` leaves the start price and keeps
moving, and in every view of ``/v1/oracle`` (one engine state) it is the median of the three
publishers' latest prices. A key the node does not list is refused: its ticks are counted as
refused and the index does not move. The publisher's signing is also checked on its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncdex.oracle import OraclePrice, oracle_price_digest
from asyncdex.oracle.publisher import OraclePublisher
from asyncdex.signing.eip712 import LocalSigner, checksum_address, recover_address
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256
from asyncdex.types.numeric import median_low

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, keccak256(b"oracle process contract")[-20:])
KEYS = [keccak256(f"oracle process publisher {i}".encode()) for i in range(3)]
STRANGER_KEY = keccak256(b"oracle process stranger")
MARKETS = (("BTC", 5, 10, 10), ("ETH", 4, 1, 10))
BTC_START = 600_000  # $60,000 in $0.1 units
DEADLINE_S = 60.0


def start_publisher(node: RunningNode, key_files: list[Path], *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "asyncdex.cli.main", "oracle", "--node", node.url]
    for path in key_files:
        command += ["--key-file", str(path)]
    command += ["--interval-ms", "100", "--start", "BTC=60000", "--start", "ETH=3000", *extra]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def stop_publisher(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    """SIGTERM; the exit code, the final stats line and stderr."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=DEADLINE_S)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return process.returncode, lines[-1], err


def key_files(tmp_path: Path, keys: list[bytes]) -> list[Path]:
    paths = []
    for index, key in enumerate(keys):
        path = tmp_path / f"publisher-{index}.key"
        path.write_text(key.hex() + "\n")
        paths.append(path)
    return paths


def oracle_view(node: RunningNode) -> dict[str, Any]:
    result = node.get("/v1/oracle")
    assert result.status == 200, result.body
    view: dict[str, Any] = result.json()
    return view


def btc_index(node: RunningNode) -> str | None:
    markets = node.get("/v1/markets").json()["markets"]
    index: str | None = markets[0]["indexPrice"]
    return index


def test_the_publisher_process_drives_the_index_as_the_median(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    publishers = [LocalSigner(key).address for key in KEYS]
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, publishers)
    launcher = node_launcher(tmp_path / "data", config)
    node = launcher.start()
    assert btc_index(node) is None  # no price before the publisher runs

    process = start_publisher(node, key_files(tmp_path, KEYS))
    try:
        seen: set[str] = set()
        checked = 0
        deadline = time.monotonic() + DEADLINE_S
        while (len(seen) < 5 or checked < 5) and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            index = btc_index(node)
            if index is not None:
                seen.add(index)
            view = oracle_view(node)["markets"][0]
            prices = [entry["price"] for entry in view["prices"].values()]
            if len(prices) == 3:
                # all three published within the staleness window: the index is their median
                assert view["indexPrice"] == median_low(prices), view
                checked += 1
            time.sleep(0.1)
        assert len(seen) >= 5, seen  # the walk moves the index tick after tick
        assert checked >= 5
        assert set(oracle_view(node)["markets"][1]["prices"]) == {
            "0x" + p.hex() for p in publishers
        }
    finally:
        code, stats, err = stop_publisher(process)
    assert code == 0, err
    assert stats["accepted"] > 0 and stats["refused"] == 0, stats
    assert launcher.terminate() == 0


def test_a_key_the_node_does_not_list_is_refused(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    publishers = [LocalSigner(key).address for key in KEYS]
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, publishers)
    launcher = node_launcher(tmp_path / "data", config)
    node = launcher.start()
    process = start_publisher(node, key_files(tmp_path, [STRANGER_KEY]), "--ticks", "5")
    out, err = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, err
    stats = json.loads(out.splitlines()[-1])
    assert (stats["ticks"], stats["accepted"], stats["refused"]) == (5, 0, 10), stats
    assert "unknown_publisher" in stats["lastError"]
    assert btc_index(node) is None
    assert node.status()["lastSeq"] == 0  # nothing was sequenced

    missing = subprocess.run(
        [sys.executable, "-m", "asyncdex.cli.main", "oracle", "--node", node.url,
         "--key-file", str(tmp_path / "missing.key")],
        capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    key_args = ["--key-file", str(key_files(tmp_path, KEYS[:1])[0])]
    for extra, message in (
        (["--start", "DOGE=1"], "expected SYMBOL=PRICE with a known symbol"),
        (["--start", "BTC=60000.05"], "--start BTC"),  # BTC prices have one decimal place
        (["--start", "BTC=60000"], "ETH has no index price yet: give --start"),
    ):
        refused = subprocess.run(
            [sys.executable, "-m", "asyncdex.cli.main", "oracle", "--node", node.url,
             *key_args, *extra],
            capture_output=True, text=True, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert node.status()["lastSeq"] == 0

    # what goes in the config's oracle_publishers: the keys' addresses, no node needed
    paths = key_files(tmp_path, KEYS)
    printed = subprocess.run(
        [sys.executable, "-m", "asyncdex.cli.main", "oracle", "--print-addresses",
         *(arg for path in paths for arg in ("--key-file", str(path)))],
        capture_output=True, text=True, timeout=DEADLINE_S, check=True,
    )  # fmt: skip
    assert printed.stdout.split() == [checksum_address(p) for p in publishers]
    assert launcher.terminate() == 0


def test_a_tick_is_signed_by_every_key_with_increasing_timestamps() -> None:
    """The publisher's signing, without a node: each update recovers to its key's address;
    timestamps strictly increase per key and market even when the clock stands still; the
    same seed walks the same path."""

    def publisher(seed: int) -> OraclePublisher:
        starts = {0: (BTC_START, 10), 1: (300_000, 1)}
        return OraclePublisher("http://127.0.0.1:1", KEYS, DOMAIN, starts, seed=seed,
                               clock=lambda: 1_000)  # fmt: skip

    first, twin, other = publisher(7), publisher(7), publisher(8)
    ticks = [first.sign_tick() for _ in range(20)]
    assert [twin.sign_tick() for _ in range(20)] == ticks
    assert [other.sign_tick() for _ in range(20)] != ticks
    addresses = [LocalSigner(key).address for key in KEYS]
    last: dict[tuple[bytes, int], int] = {}
    for tick in ticks:
        assert len(tick) == 2 * len(KEYS)
        for update in tick:
            price = OraclePrice(update["market"], update["price"], update["timestamp"])
            signer = recover_address(
                oracle_price_digest(DOMAIN, price), bytes.fromhex(update["signature"][2:])
            )
            assert signer in addresses
            assert price.timestamp > last.get((signer, price.market), 0)
            last[(signer, price.market)] = price.timestamp
    # a scripted jump moves the walk (and so every publisher's next quote) by that much
    before = first.walks[0].price
    after = first.jump(0, -45_000)
    assert after % 10 == 0 and abs(after - before * 955_000 // 1_000_000) <= 10
