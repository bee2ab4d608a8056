"""Committee runtime benchmark: members in separate processes on loopback ordering opaque items
(the consensus runtime alone; ``benchmarks.committee_bench`` runs whole venue nodes).

Each member is a real ``asyncdex.committee.CommitteeMember`` in its own process (real TCP
links, real fsync'd stores, real secp256k1 signatures), with a load generator on the same
event loop standing in for the node's HTTP intake. Items are opaque 200-byte strings, so this
measures ordering alone (no engine): submit -> ``on_commit`` on the member that received the
item (the ``ordered`` step as its client sees it), and submit -> durable in the intake log
(the receipt).

Scenarios, all in one run:
- 4 members, 1,000 items/s offered in total (spread over the members), open loop;
- 4 members at the maximum: each member keeps a window of items in flight (closed loop);
- 4 members with one killed (SIGKILL) before the load starts, 1,000 items/s offered (750/s
  reach the three live members): every view that member leads times out, so this shows the
  cost of a dead leader in the rotation;
- the same member killed a third into the load: the longest stretch without a commit after
  the kill is the time to get past the dead leader (two view timers);
- 1 member (a committee of one, its own quorum) at the maximum: the baseline. All members
  share the machine's cores, so the printed ratio is committee max / (baseline / members).

Timers are set for loopback (``LOOPBACK``: 400 ms views), not the defaults meant for real
networks. Prints a table and returns the figures; never asserts a time. Run:
``python -m benchmarks.committee_runtime_bench [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asyncdex.committee import CommitteeMember, IntakeFull
from asyncdex.consensus import Block, Committee, QuorumCertificate, ReplicaConfig
from asyncdex.consensus.crypto import Secp256k1Signer

ITEM_BYTES = 200
RATE = 1_000
WINDOW = 2_000  # items in flight per member at the maximum
ROOT = Path(__file__).resolve().parents[1]
# timers for loopback (Δ of a few ms, a loaded 2-core machine): a crashed leader costs two
# 400 ms timers, so a new leader is in place within 0.8 s; defaults are for real networks
LOOPBACK = ReplicaConfig(base_timeout_ms=400, max_timeout_ms=4_000, proposal_wait_ms=50)


def _signers(n: int) -> list[Secp256k1Signer]:
    return [Secp256k1Signer.from_seed(b"committee-bench-%d" % i) for i in range(n)]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


# --- one member process -------------------------------------------------------------------


async def _member_main(args: argparse.Namespace) -> None:
    ports = [int(port) for port in args.ports.split(",")]
    signers = _signers(len(ports))
    committee = Committee(tuple(signer.address for signer in signers))
    work = Path(args.work)
    prefix = b"%d:" % args.member
    submitted: dict[bytes, float] = {}
    durable_ms: list[float] = []
    ordered: list[tuple[float, float]] = []  # (wall time of the commit, latency ms)
    loop = asyncio.get_running_loop()
    all_done = asyncio.Event()
    generating = True

    commit_walls: list[float] = []

    def on_commit(blocks: Sequence[Block], certificate: QuorumCertificate) -> None:
        now, wall = time.perf_counter(), time.time()
        commit_walls.append(wall)
        for block in blocks:
            for item in block.payload:
                if item.startswith(prefix):
                    started = submitted.pop(item, None)
                    if started is not None:
                        ordered.append((wall, (now - started) * 1e3))
        if not generating and not submitted:
            all_done.set()

    member = CommitteeMember(
        committee,
        args.member,
        signers[args.member],
        [("127.0.0.1", port) for port in ports],
        work / f"member-{args.member}",
        LOOPBACK,
        on_commit=on_commit,
    )
    await member.start()
    (work / f"ready-{args.member}").write_text("ready")
    go = work / "go"
    while not go.exists():
        await asyncio.sleep(0.01)
    start_wall = float(go.read_text())
    await asyncio.sleep(max(0.0, start_wall - time.time()))

    filler = os.urandom(ITEM_BYTES)
    counter = 0
    refused = 0
    tasks: set[asyncio.Task[None]] = set()

    async def submit_one(item: bytes) -> None:
        nonlocal refused
        started = submitted[item] = time.perf_counter()
        try:
            await member.submit([item])
        except IntakeFull:
            submitted.pop(item, None)
            refused += 1
            return
        durable_ms.append((time.perf_counter() - started) * 1e3)

    def next_item() -> bytes:
        nonlocal counter
        counter += 1
        head = prefix + b"%d:" % counter
        return head + filler[: ITEM_BYTES - len(head)]

    def launch() -> None:
        item = next_item()
        submitted[item] = time.perf_counter()  # in flight from now (the window counts it)
        task = loop.create_task(submit_one(item))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    cpu_start = time.process_time()
    t0 = time.perf_counter()
    end = t0 + args.seconds
    while (now := time.perf_counter()) < end:
        if args.rate > 0:
            due = int((now - t0) * args.rate) - counter
            for _ in range(due):
                launch()
            await asyncio.sleep(0.002)
        else:
            while len(submitted) < WINDOW:
                launch()
            await asyncio.sleep(0.001)
    generating = False
    if not submitted:
        all_done.set()
    with contextlib.suppress(TimeoutError):  # what is still unordered is reported as such
        await asyncio.wait_for(all_done.wait(), timeout=args.drain)
    result = {
        "member": args.member,
        "offered": counter,
        "refused": refused,
        "unordered": len(submitted),
        "start_wall": start_wall,
        "seconds": args.seconds,
        "ordered": ordered,
        "commit_walls": commit_walls,
        "durable_ms": durable_ms,
        "status": member.status_json(),
        "cpu_s": time.process_time() - cpu_start,
        "wall_s": time.perf_counter() - t0,
    }
    (work / f"result-{args.member}.json").write_text(json.dumps(result))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await member.stop()


# --- the parent: start members, release the load, gather --------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_scenario(
    members: int,
    rate: int,
    seconds: float,
    *,
    kill: int | None = None,
    kill_after: float = 0.0,
    drain: float = 15.0,
) -> dict[str, Any]:
    """One committee of ``members`` processes; ``rate`` items/s in total (0 = the maximum).

    ``kill``: that member is SIGKILLed ``kill_after`` seconds into the load (0: before it);
    the others keep their share of the load (so the offered rate drops by one member's)."""
    with tempfile.TemporaryDirectory(prefix="committee-bench-") as directory:
        work = Path(directory)
        ports = ",".join(str(port) for port in _free_ports(members))
        live = [i for i in range(members) if i != kill]
        per_member = 0 if rate == 0 else max(1, rate // members)
        processes = []
        killed_at: float | None = None
        for index in range(members):
            command = [
                sys.executable, "-m", "benchmarks.committee_runtime_bench", "--member", str(index),
                "--ports", ports, "--work", str(work), "--rate", str(per_member),
                "--seconds", str(seconds), "--drain", str(drain),
            ]  # fmt: skip
            processes.append(subprocess.Popen(command, cwd=ROOT))
        try:
            deadline = time.time() + 60
            while not all((work / f"ready-{i}").exists() for i in range(members)):
                if time.time() > deadline:
                    raise RuntimeError("committee members did not start")
                time.sleep(0.05)
            if kill is not None and kill_after == 0:
                processes[kill].send_signal(signal.SIGKILL)
                processes[kill].wait()
            start = time.time() + 0.5
            (work / "go.tmp").write_text(repr(start))
            (work / "go.tmp").rename(work / "go")
            if kill is not None and kill_after > 0:
                time.sleep(max(0.0, start + kill_after - time.time()))
                processes[kill].send_signal(signal.SIGKILL)
                killed_at = time.time()
                processes[kill].wait()
            deadline = time.time() + seconds + drain + 30
            while not all((work / f"result-{i}.json").exists() for i in live):
                if time.time() > deadline:
                    raise RuntimeError("committee members did not report")
                time.sleep(0.1)
            results = [json.loads((work / f"result-{i}.json").read_text()) for i in live]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    start = results[0]["start_wall"]
    window_end = start + seconds
    # the longest stretch without a commit on any live member after the kill: the cost of
    # the dead leader's turn (two view timers), the "new leader within" figure
    gap = None
    if killed_at is not None:
        walls = sorted({round(w, 3) for r in results for w in r["commit_walls"]})
        after = [killed_at] + [w for w in walls if killed_at < w <= window_end]
        gap = round(max(b - a for a, b in itertools.pairwise(after)) * 1e3, 1)
    latencies = [latency for r in results for _, latency in r["ordered"]]
    in_window = sum(1 for r in results for wall, _ in r["ordered"] if wall <= window_end)
    durable = [value for r in results for value in r["durable_ms"]]
    return {
        "members": members,
        "killed": kill,
        "offered_per_s": rate if rate else "max",
        "seconds": seconds,
        "offered": sum(r["offered"] for r in results),
        "refused": sum(r["refused"] for r in results),
        "ordered": len(latencies),
        "unordered": sum(r["unordered"] for r in results),
        "ordered_per_s": round(in_window / seconds, 1),
        "ordered_p50_ms": round(_percentile(latencies, 0.50), 2),
        "ordered_p99_ms": round(_percentile(latencies, 0.99), 2),
        "ordered_mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
        "durable_p50_ms": round(_percentile(durable, 0.50), 2),
        "durable_p99_ms": round(_percentile(durable, 0.99), 2),
        "committed_height": max(r["status"]["committed_height"] for r in results),
        "view": max(r["status"]["view"] for r in results),
        "max_commit_gap_after_kill_ms": gap,
        "cpu_per_member": [round(r["cpu_s"] / r["wall_s"], 2) for r in results],
    }


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 3.0 if quick else 8.0
    scenarios = {
        "committee_1000": run_scenario(4, RATE, seconds),
        "committee_max": run_scenario(4, 0, seconds),
        "committee_1000_one_down": run_scenario(4, RATE, seconds, kill=3),
        "committee_1000_kill_mid_load": run_scenario(
            4, RATE, seconds, kill=3, kill_after=seconds / 3
        ),
        "single_max": run_scenario(1, 0, seconds),
    }
    baseline = scenarios["single_max"]["ordered_per_s"]
    committee_max = scenarios["committee_max"]["ordered_per_s"]
    ratio = committee_max / (baseline / 4) if baseline else float("nan")
    print(
        f"{'scenario':<28}{'offered/s':>10}{'ordered/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'receipt p50':>13}{'receipt p99':>13}{'views':>7}{'height':>8}"
    )
    for name, figures in scenarios.items():
        print(
            f"{name:<28}{figures['offered_per_s']!s:>10}{figures['ordered_per_s']:>11}"
            f"{figures['ordered_p50_ms']:>9}{figures['ordered_p99_ms']:>9}"
            f"{figures['durable_p50_ms']:>13}{figures['durable_p99_ms']:>13}"
            f"{figures['view']:>7}{figures['committed_height']:>8}"
        )
    gap = scenarios["committee_1000_kill_mid_load"]["max_commit_gap_after_kill_ms"]
    print(f"longest stretch without a commit after killing a member mid-load: {gap} ms")
    print(
        f"committee max / (single-member max / 4) = {ratio:.2f}  "
        f"(all {4} members share this machine's {os.cpu_count()} cores)"
    )
    return {"scenarios": scenarios, "max_ratio_to_single_over_members": round(ratio, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="last line: the figures as JSON")
    parser.add_argument("--member", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--drain", type=float, default=15.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member is not None:
        profile = os.environ.get("COMMITTEE_BENCH_PROFILE")
        if profile and args.member == 0:
            import cProfile

            cProfile.runctx("asyncio.run(_member_main(args))", globals(), locals(), profile)
        else:
            asyncio.run(_member_main(args))
        return
    figures = run(quick=args.quick)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
