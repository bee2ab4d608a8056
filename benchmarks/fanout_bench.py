"""Fan-out benchmark: a trading client's receipt latency alone and beside WebSocket
subscribers of which half never read.

What runs: ``asyncdex node`` as its own process (as :mod:`benchmarks.e2e_bench` starts it:
file journal with fsync, no settlement, one BTC market with the makers' depth), a trading
client in this process (open loop at ``RATE`` intents/s, pre-signed msgpack bodies of two
intents on keep-alive connections, from :mod:`benchmarks.e2e_load`: every unit places an
order off the mid and cancels it, one in ten trades, so every record changes the book), and
a subscriber process holding ``SUBSCRIBERS`` sockets, alternately on ``/v1/ws`` (book and
trades) and Hyperliquid's ``/ws`` (l2Book, bbo and trades); half of them read everything,
half subscribe and never read again.

Phases: ``alone`` (no subscriber), then ``with subscribers`` (the same load, the sockets
open and subscribed before it starts, for longer than the node's stall bound, so the
never-reading ones are cut off during it). Per phase: receipt p50/p99 per intent (request
due -> its 200, open loop), the node's CPU (cores) and its RSS at the end; then the ratio
p99(with) / p99(alone), messages the readers received, and how many never-reading sockets
the node had closed by the end.

Prints figures and returns them; never asserts a time. On a shared machine p50 and p99 move
with other work; the ratio, measured minutes apart on the same machine, less so. Run:
``asyncdex bench fanout [--quick] [--json]`` or ``python -m benchmarks.fanout_bench
[--quick] [--rate N] [--subscribers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncdex.gateway.fanout import DEFAULT_SOCKET_LIMITS
from benchmarks.e2e_bench import (
    ACCOUNTS,
    CHAIN_ID,
    CONTRACT,
    MID,
    NodeProcess,
    setup_venue,
    weighted_percentiles,
)
from benchmarks.e2e_load import GeneratorSpec, Phase, StreamBuilder, run_phase
from benchmarks.journal_bench import load_average

RATE = 200  # intents/s offered by the trading client
BATCH = 2  # intents per request (one unit: place and cancel, or buy and sell)
SUBSCRIBERS = 300
TRADER_ACCOUNTS = 20
SETTLE_S = 1.0  # between phases: the node catches up, the sockets settle


# ------------------------------------------------------------------------------ subscribers
# Raw sockets: a reader reads bytes and drops them, never parsing frames, so the subscriber
# process takes little of the CPU the node and the trading client share with it.

TCP_ESTABLISHED = 1


def _client_frame(text: str) -> bytes:
    """A masked client text frame (the zero mask: masking is then the identity)."""
    payload = text.encode()
    size = len(payload)
    header = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0xFE)) + size.to_bytes(2)
    return header + bytes(4) + payload


def _subscriptions(index: int) -> tuple[str, list[str]]:
    ops: list[dict[str, Any]]
    if index % 2 == 0:
        ops = [{"op": "subscribe", "channel": channel, "market": "BTC"}
               for channel in ("book", "trades")]  # fmt: skip
        return "/v1/ws", [json.dumps(op) for op in ops]
    ops = [{"method": "subscribe", "subscription": {"type": kind, "coin": "BTC"}}
           for kind in ("l2Book", "bbo", "trades")]  # fmt: skip
    return "/ws", [json.dumps(op) for op in ops]


async def _subscribe(port: int, index: int, reads: bool) -> tuple[Any, Any]:
    path, ops = _subscriptions(index)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if not reads:
        # what a client that never reads holds in its kernel: bounded, as a phone's would be
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"subscriber {index}: {head[:60]!r}")
    writer.write(b"".join(_client_frame(op) for op in ops))
    return reader, writer


async def _subscribers_main(port: int, count: int, ready: Any, stop: Any, results: Any) -> None:
    received = [0]

    async def read(reader: asyncio.StreamReader) -> None:
        while chunk := await reader.read(1 << 16):
            received[0] += len(chunk)

    sockets = [await _subscribe(port, index, index < count // 2) for index in range(count)]
    readers = sockets[: count // 2]
    silent = sockets[count // 2 :]
    tasks = [asyncio.create_task(read(reader)) for reader, _ in readers]
    ready.put(len(sockets))
    while stop.empty():
        await asyncio.sleep(0.1)
    closed = 0
    for _, writer in silent:
        raw = writer.get_extra_info("socket")
        # the node closed it (FIN: CLOSE_WAIT; abort: CLOSE) or not (ESTABLISHED)
        state = raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        closed += state != TCP_ESTABLISHED
    results.put({"bytes_received_by_readers": received[0], "silent_closed_by_node": closed})
    for task in tasks:
        task.cancel()
    for _, writer in sockets:
        writer.transport.abort()


def subscribers_process(port: int, count: int, ready: Any, stop: Any, results: Any) -> None:
    asyncio.run(_subscribers_main(port, count, ready, stop, results))


# ------------------------------------------------------------------------------ the run


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _phase(
    node: NodeProcess, builder: StreamBuilder, name: str, rate: int, duration: float
) -> dict[str, Any]:
    phase = Phase(name, False, rate, duration, BATCH, 0)
    requests = builder.requests(int(rate * duration), BATCH, "127.0.0.1", node.port)
    cpu_before = node.cpu_seconds()[0]
    start_at = time.monotonic() + 0.5
    result = asyncio.run(run_phase("127.0.0.1", node.port, phase, requests, start_at, seed=1))
    cpu = node.cpu_seconds()[0] - cpu_before
    span = max(result.last_answer - result.first_due, 1e-9)
    p50, p99 = weighted_percentiles(result.latencies_us, result.sizes, (0.50, 0.99))
    return {
        "phase": name,
        "offered_per_s": rate,
        "intents_acknowledged": result.intents_acked,
        "errors": dict(result.errors),
        "p50_ms": round(p50 / 1000, 2),
        "p99_ms": round(p99 / 1000, 2),
        "node_cpu_cores": round(cpu / span, 2),
        "node_rss_mb": _rss_mb(node.process.pid),
        "max_seq": result.max_seq,
    }


def run(quick: bool = False, rate: int = RATE, subscribers: int = SUBSCRIBERS) -> dict[str, Any]:
    """Start a node, measure the trading client alone and beside the subscribers."""
    load_before = load_average()
    stall = DEFAULT_SOCKET_LIMITS.stall_seconds
    # with subscribers: long enough for the never-reading ones to pass the stall bound
    # (the kernel's buffers take a few seconds of a silent socket's stream before the node
    # holds any of it, and the stall bound counts from then)
    durations = (4.0, stall + 10.0) if quick else (15.0, 2 * stall + 15.0)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="asyncdex-fanout-") as tmp:
        node = NodeProcess(Path(tmp), (), None)
        process = None
        try:
            setup_venue(node, CONTRACT)
            spec = GeneratorSpec(
                "127.0.0.1", node.port, CHAIN_ID, CONTRACT, tuple(range(TRADER_ACCOUNTS)),
                time.time_ns() // 1_000_000, MID, (), 0, seed=0,
            )  # fmt: skip
            builder = StreamBuilder(spec)
            alone = _phase(node, builder, "alone", rate, durations[0])
            print(_line(alone), flush=True)
            ready, stop, results = context.Queue(), context.Queue(), context.Queue()
            process = context.Process(
                target=subscribers_process,
                args=(node.port, subscribers, ready, stop, results),
                daemon=True,
            )
            process.start()
            opened = ready.get(timeout=120)
            time.sleep(SETTLE_S)
            rss_subscribed = _rss_mb(node.process.pid)
            crowded = _phase(node, builder, "with subscribers", rate, durations[1])
            print(_line(crowded), flush=True)
            stop.put(True)
            sockets = results.get(timeout=120)
            process.join(timeout=30)
            final = node.wait_applied(max(alone["max_seq"], crowded["max_seq"]))
        finally:
            if process is not None and process.is_alive():
                process.kill()
            exit_code = node.stop()
    ratio = crowded["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] else None
    figures: dict[str, Any] = {
        "phases": [alone, crowded],
        "subscribers": opened,
        "never_reading": opened - opened // 2,
        "node_rss_mb_subscribed_idle": rss_subscribed,
        **sockets,
        "p99_ratio": None if ratio is None else round(ratio, 2),
        "p50_ratio": round(crowded["p50_ms"] / alone["p50_ms"], 2) if alone["p50_ms"] else None,
        "all_applied": final["appliedSeq"] >= max(alone["max_seq"], crowded["max_seq"]),
        "node_exit_code": exit_code,
        "node": "asyncdex node, file journal (fsync), no settlement, --snapshot-every 0",
        "stall_seconds": stall,
        "accounts": ACCOUNTS,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    print(
        f"p99 with {opened} subscribers (half never reading) / alone: {figures['p99_ratio']}; "
        f"readers got {sockets['bytes_received_by_readers'] / 1e6:,.1f} MB; the node closed "
        f"{sockets['silent_closed_by_node']} of {figures['never_reading']} never-reading "
        f"sockets; load average {load_before} -> {figures['load_average_after']}"
    )
    return figures


def _line(row: dict[str, Any]) -> str:
    errors = sum(row["errors"].values())
    return (
        f"{row['phase']:>17s}: {row['intents_acknowledged']:,} intents at {row['offered_per_s']}/s"
        f", receipt p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms, errors {errors}, "
        f"node CPU {row['node_cpu_cores']:.2f} cores, RSS {row['node_rss_mb']} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=int, default=RATE, help="intents/s offered")
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args()
    figures = run(args.quick, args.rate, args.subscribers)
    if args.json:
        print(json.dumps({"benchmark": "fanout", "quick": args.quick, **figures}))


if __name__ == "__main__":
    main()
