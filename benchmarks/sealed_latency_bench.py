"""Sealed-intent latency: submission to execution, sealed against plain, on 4 member processes.

What runs: ``asyncdex committee``'s processes (``CommitteeProcesses``, 4 members on loopback,
``examples/committee.toml``) with a sealing key from its local DKG and ``--epoch-ms``
sealing epochs. One trader sends orders one at a time through the SDK, alternately plain
(``submit``) and sealed (``submit_sealed``) to the same member, each followed with
``wait_for(..., "executed")`` polling every 10 ms; the figure is the client's time from the
call to the executed status. The difference between the two is what sealing adds: waiting
for the epoch to be closed by a block, the share round, and the block that carries the key.
A low, sequential rate: this measures the path, not throughput (issue 12's target is at
1,000 intents/s, which this does not drive). Prints figures and a JSON line; never asserts.

    python -m benchmarks.sealed_latency_bench [--count 20] [--epoch-ms 250] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from asyncdex.cli.committee_cmd import CommitteeProcesses, free_port_range
from asyncdex.client import Client, Wallet

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "examples" / "committee.toml"
TOKEN = "sealed-latency-bench"
PUBLISHER = "0xc377c94d857b217ac94de730b94d5ce0a302f765"  # the config's first publisher


def _operator(url: str, commands: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        url + "/v1/system",
        json.dumps({"commands": commands}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(count: int, epoch_ms: int) -> dict[str, Any]:
    base = free_port_range(8)
    with tempfile.TemporaryDirectory() as data:
        processes = CommitteeProcesses(
            Path(data),
            CONFIG,
            4,
            port=base,
            consensus_port=base + 4,
            node_args=("--operator-token", TOKEN, "--ip-weight-per-minute", "1000000000"),
            log=open(Path(data) / "members.log", "w"),  # noqa: SIM115 - closed with the dir
            sealing_epoch_ms=epoch_ms,
        )
        try:
            processes.start_all()
            url = processes.url(1)
            wallet = Wallet(random.Random(7).randbytes(32))
            account = "0x" + wallet.address.hex()
            _operator(
                url, [{"type": "deposit", "account": account, "amount": 10**11, "l1Index": 0}]
            )
            _operator(
                url,
                [{"type": "oraclePrice", "publisher": PUBLISHER, "market": 0, "price": 600_000}],
            )
            plain: list[float] = []
            sealed: list[float] = []
            with Client.connect(url, wallet) as client:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # the deposit executes on the member
                    try:
                        urllib.request.urlopen(f"{url}/v1/accounts/{account}", timeout=5)
                        break
                    except OSError:
                        time.sleep(0.2)
                for k in range(2 * count):
                    intent = client.build.place_order("BTC", "buy", "0.001", str(50_000 + k))
                    started = time.perf_counter()
                    if k % 2:
                        (receipt,) = client.submit_sealed([intent])
                    else:
                        (receipt,) = client.submit([intent])
                    client.wait_for(receipt, "executed", timeout=60, poll_interval=0.01)
                    (sealed if k % 2 else plain).append((time.perf_counter() - started) * 1e3)
                    time.sleep(random.random() * epoch_ms / 1000)  # a random phase in the epoch
        finally:
            processes.stop_all()
    figures: dict[str, Any] = {"count": count, "epoch_ms": epoch_ms, "members": 4}
    for name, values in (("plain", plain), ("sealed", sealed)):
        figures[f"{name}_p50_ms"] = round(statistics.median(values), 1)
        figures[f"{name}_p99_ms"] = round(_percentile(values, 0.99), 1)
    figures["added_p50_ms"] = round(figures["sealed_p50_ms"] - figures["plain_p50_ms"], 1)
    figures["added_p99_ms"] = round(figures["sealed_p99_ms"] - figures["plain_p99_ms"], 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="orders of each kind")
    parser.add_argument("--epoch-ms", type=int, default=250)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    figures = measure(args.count, args.epoch_ms)
    if not args.json:
        print(f"submission -> executed, 4 members, sealing epochs of {args.epoch_ms} ms")
        for name in ("plain", "sealed", "added"):
            print(
                f"  {name:<7} p50 {figures[f'{name}_p50_ms']:>8.1f} ms"
                f"   p99 {figures[f'{name}_p99_ms']:>8.1f} ms"
            )
    print(json.dumps({"bench": "sealed_latency", **figures}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
