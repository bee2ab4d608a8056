"""End-to-end benchmark: signed intents over loopback HTTP into a real node process.

What runs: ``asyncdex node`` as its own process, in the embedded shape without settlement
(file journal with fsync, no chain: batches and the chain would add a thread's work but
nothing on an intent's path to its receipt), ``--snapshot-every 0``, one BTC market. The
load comes from ``GENERATORS`` separate generator processes (:mod:`benchmarks.e2e_load`):
``ACCOUNTS`` traders, each intent signed by its own account key before the timed phases,
sent as msgpack bodies of several intents (``{"intents": [...]}``'s binary form) on
keep-alive HTTP/1.1 connections (a minimal asyncio client: request bytes are built in advance).

Setup (untimed): every trader and two makers get collateral through ``POST /v1/system``
deposits, an oracle price sets the mid at $60,000, and the makers rest 200 BTC of depth a
dollar either side of it. The stream (see :mod:`benchmarks.e2e_load`): 90% of two-intent
units place a GTC order 20% off the mid and cancel it by client id; 10% buy IOC and sell IOC
through the makers' depth. Every intent is meant to execute (no rejections by design); the
bench reads back a sample of records after each phase and reports the engine's rejections.

Phases, each after the node has applied everything before it:
- open loop at 1,000 and 10,000 intents/s offered (requests due at fixed intervals; latency
  runs from the due time);
- the maximum: closed loop, ``MAX_CONNECTIONS`` connections per generator each sending
  ``MAX_BATCH`` intents and waiting for the receipts, for the phase's duration.

Per phase: acknowledged intents/s sustained (acknowledged / (last answer - start)), receipt
latency p50/p99/p99.9 per intent (request due or sent -> its 200 with the receipts), request
size, errors by status and code (every answer must be 200 with one receipt per intent), how
late the generators sent, and the CPU the node and the generators used (cores). Afterwards
the node's ``appliedSeq`` must cover every receipt.

Signature verification runs as the node is configured: by default in worker processes, one
per core; ``--node-arg=--verify-workers=0`` verifies in the event loop.

Prints a table and returns the figures; never asserts a time. Run:
``asyncdex bench e2e [--quick] [--rate N]`` or ``python -m benchmarks.e2e_bench [--quick]
[--rate N ...] [--node-arg=--flag ...] [--py-spy FILE] [--profile FILE]``: ``--rate`` runs
open-loop phases at those rates instead of the usual ones (no maximum); ``--py-spy``
samples the node and its workers under the maximum load (py-spy must be installed) and
prints where the event loop's time goes; ``--profile`` runs the whole node under cProfile
(wall time, so the loop's idle waits included) and prints its top functions.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack

from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    encode_signed_intent,
    sign_intent,
)
from asyncdex.types.hashing import keccak256
from benchmarks.e2e_load import GeneratorPool, GeneratorSpec, Phase, PhaseResult, trader_key
from benchmarks.journal_bench import load_average

CHAIN_ID = 31337
CONTRACT = keccak256(b"e2e bench contract")[-20:]
PUBLISHER = LocalSigner(keccak256(b"e2e bench publisher")).address
OPERATOR_TOKEN = "e2e bench operator"
MID = 600_000  # $60,000.0 in $0.1
GENERATORS = 2
ACCOUNTS = 1_000
TRADER_DEPOSIT = 1_000_000 * 10**6  # $1M each, in micro-USDC
MAKERS = 2
MAKER_DEPOSIT = 100_000_000 * 10**6
MAKER_LEVELS = 4  # per side and maker, a dollar apart from $1 off the mid
MAKER_LEVEL_SIZE = 2_500_000  # 25 BTC: 200 BTC per side in all
OPEN_LOADS = (1_000, 10_000)
OPEN_REQUEST_EVERY_S = 0.002  # an open-loop request carries what is due in about 2 ms
MAX_BATCH = 100  # the node's intake limit per request
MAX_CONNECTIONS = 4  # per generator, in the closed loop
POOL_RATE = 25_000  # intents/s per generator the closed loop may use, signed in advance
START_TIMEOUT_S = 120.0


# ------------------------------------------------------------------------------- the node


# The load comes from one loopback address and a handful of accounts: budgets far above the
# node's defaults (Hyperliquid's), so the benchmark measures the venue, not its rate limits.
LOOPBACK_BUDGETS = (
    "--ip-weight-per-minute", "1000000000",
    "--address-initial-requests", "1000000000",
    "--max-sockets-per-address", "1000",
)  # fmt: skip


class NodeProcess:
    def __init__(
        self,
        workdir: Path,
        node_args: Sequence[str],
        profile: Path | None,
        config: Path | None = None,
    ) -> None:
        """A node on ``config``, by default a one-market venue of this bench's own."""
        if config is None:
            config = workdir / "venue.toml"
            config.write_text(
                f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n'
                f'[venue]\nchain_id = {CHAIN_ID}\nsettlement_contract = "0x{CONTRACT.hex()}"\n\n'
                '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
                "oracle_staleness_ms = 86400000\n"  # one price for the whole run
            )
        command = [sys.executable]
        if profile is not None:
            command += ["-m", "cProfile", "-o", str(profile)]
        command += [
            "-m", "asyncdex.cli.node_cmd", "--data", str(workdir / "data"),
            "--config", str(config), "--port", "0", "--snapshot-every", "0",
            *LOOPBACK_BUDGETS, *node_args,
        ]  # fmt: skip
        env = dict(os.environ, ASYNCDEX_OPERATOR_TOKEN=OPERATOR_TOKEN)
        self.stderr_path = workdir / "node-stderr.log"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            line = self.process.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("node did not start:\n" + self.stderr_path.read_text()[-3000:])
            if line.startswith(b"{") and json.loads(line).get("event") == "listening":
                break
        ready = json.loads(line)
        self.url: str = ready["url"]
        self.port: int = ready["port"]
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:300]!r}")
        return json.loads(raw)

    def system(self, commands: list[dict[str, Any]]) -> None:
        body = json.dumps({"commands": commands}).encode()
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"}
        self.request("POST", "/v1/system", body, **auth)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.request("GET", "/v1/status")
        return status

    def wait_applied(self, seq: int) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while True:
            status = self.status()
            if status["appliedSeq"] >= seq or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds (user + system, all threads) of the node process and of the processes
        it started (signature verification workers)."""
        own = _process_cpu(self.process.pid)
        return own, sum(_process_cpu(pid) for pid in _descendants(self.process.pid))

    def stop(self) -> int:
        self.connection.close()
        self.process.terminate()
        return self.process.wait(timeout=120)


def setup_venue(node: NodeProcess, domain_contract: bytes) -> None:
    """Collateral for every trader and maker, the mid, and the makers' depth."""
    deposits, price, depth = setup_requests(domain_contract, PUBLISHER, CHAIN_ID)
    for commands in deposits:
        node.system(commands)
    node.system(price)
    answer = node.request("POST", "/v1/intents", depth, **{"Content-Type": "application/msgpack"})
    node.wait_applied(answer["receipts"][-1]["seq"])


def setup_requests(
    domain_contract: bytes, publisher_address: bytes, chain_id: int
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]], bytes]:
    """``POST /v1/system`` bodies' commands for the deposits (in chunks) and the mid, and the
    msgpack body of the makers' depth for ``POST /v1/intents``."""
    makers = [LocalSigner(keccak256(f"e2e bench maker {i}".encode())) for i in range(MAKERS)]
    deposits = [("0x" + LocalSigner(trader_key(i)).address.hex(), TRADER_DEPOSIT)
                for i in range(ACCOUNTS)]  # fmt: skip
    deposits += [("0x" + maker.address.hex(), MAKER_DEPOSIT) for maker in makers]
    commands = [
        {"type": "deposit", "account": account, "amount": amount, "l1Index": index}
        for index, (account, amount) in enumerate(deposits)
    ]
    chunks = [commands[first : first + 1_000] for first in range(0, len(commands), 1_000)]
    publisher = "0x" + publisher_address.hex()
    mid = [{"type": "oraclePrice", "publisher": publisher, "market": 0, "price": MID}]
    domain = asyncdex_domain(chain_id, domain_contract)
    nonce = time.time_ns() // 1_000_000
    depth = []
    for maker in makers:
        for level in range(1, MAKER_LEVELS + 1):
            for is_buy in (True, False):
                nonce += 1
                price = MID - 10 * level if is_buy else MID + 10 * level
                order = PlaceOrder(
                    maker.address, nonce, 0, 0, is_buy, price, MAKER_LEVEL_SIZE,
                    OrderType.LIMIT, TimeInForce.GTC, False, NO_CLIENT_ID, 0, 0,
                    TriggerKind.NONE,
                )  # fmt: skip
                depth.append(encode_signed_intent(sign_intent(maker, domain, order)))
    return chunks, mid, msgpack.packb(depth)


# ------------------------------------------------------------------------------- figures


def weighted_percentiles(
    latencies: Sequence[float], weights: Sequence[int], quantiles: Sequence[float]
) -> list[float]:
    """Per-intent percentiles when each request's latency counts once per intent in it."""
    pairs = sorted(zip(latencies, weights, strict=True))
    total = sum(weights)
    out = []
    for quantile in quantiles:
        rank = quantile * total
        seen = 0
        value = pairs[-1][0] if pairs else 0.0
        for latency, weight in pairs:
            seen += weight
            if seen >= rank:
                value = latency
                break
        out.append(value)
    return out


def outcome_sample(node: NodeProcess, seqs: Sequence[int]) -> dict[str, int]:
    """Engine outcomes of sampled records (a request's last intent and the one before it)."""
    counts: dict[str, int] = {}
    for top in seqs:
        for seq in (top - 1, top):
            document = node.request("GET", f"/v1/seq/{seq}")
            events = document["events"]
            if events is None:
                key = "events no longer indexed"
            else:
                rejected = [e for e in events if e["type"] == "Rejected"]
                key = "rejected " + rejected[0]["reasonName"] if rejected else "executed"
            counts[key] = counts.get(key, 0) + 1
    return counts


def summarize(
    phase: Phase,
    offered: float | None,
    results: list[PhaseResult],
    node_cpu_s: float,
    workers_cpu_s: float,
    generator_cpu_s: float,
) -> dict[str, Any]:
    start = min(result.first_due for result in results)
    end = max(result.last_answer for result in results)
    span = max(end - start, 1e-9)
    acked = sum(result.intents_acked for result in results)
    requests = sum(result.requests for result in results)
    latencies = [lat for result in results for lat in result.latencies_us]
    sizes = [size for result in results for size in result.sizes]
    p50, p99, p999 = weighted_percentiles(latencies, sizes, (0.50, 0.99, 0.999))
    errors: dict[str, int] = {}
    for result in results:
        for key, count in result.errors.items():
            errors[key] = errors.get(key, 0) + count
    lateness = sum(result.lateness_us_total for result in results)
    by_second: dict[int, int] = {}
    for result in results:
        for second, count in result.acked_by_second.items():
            by_second[second] = by_second.get(second, 0) + count
    whole_seconds = [by_second.get(second, 0) for second in range(int(span))]
    return {
        "phase": phase.name,
        "offered_per_s": offered,
        "closed_loop_in_flight": phase.connections * len(results) if phase.closed else None,
        "sustained_per_s": round(acked / span),
        "intents_sent": sum(result.intents_sent for result in results),
        "intents_acknowledged": acked,
        "requests": requests,
        "intents_per_request": round(acked / max(1, len(sizes)), 1),
        "p50_ms": round(p50 / 1000, 2),
        "p99_ms": round(p99 / 1000, 2),
        "p999_ms": round(p999 / 1000, 2),
        "errors": errors,
        "send_lateness_mean_ms": None
        if phase.closed
        else round(lateness / max(1, requests) / 1000, 3),
        "pool_exhausted": any(result.pool_exhausted for result in results),
        "seconds": round(span, 2),
        "node_cpu_cores": round(node_cpu_s / span, 2),
        "verify_workers_cpu_cores": round(workers_cpu_s / span, 2),
        "generator_cpu_cores": round(generator_cpu_s / span, 2),
        # per acknowledged intent: the figure least bent by other processes on the machine
        "node_cpu_us_per_intent": round(node_cpu_s / max(acked, 1) * 1e6, 1),
        "verify_workers_cpu_us_per_intent": round(workers_cpu_s / max(acked, 1) * 1e6, 1),
        "max_seq": max(result.max_seq for result in results),
        "acked_per_second": whole_seconds,  # each whole second of the phase, in order
    }


def print_row(row: dict[str, Any]) -> None:
    offered = "max" if row["offered_per_s"] is None else f"{row['offered_per_s']:,.0f}"
    errors = sum(row["errors"].values())
    print(
        f"{offered:>8s} {row['sustained_per_s']:>10,d} {row['p50_ms']:>8.2f} "
        f"{row['p99_ms']:>8.2f} {row['p999_ms']:>8.2f} {row['intents_per_request']:>8.1f} "
        f"{errors:>6d} {row['node_cpu_cores']:>6.2f} {row['verify_workers_cpu_cores']:>6.2f} "
        f"{row['generator_cpu_cores']:>6.2f} {row['node_cpu_us_per_intent']:>8.1f} "
        f"{row['verify_workers_cpu_us_per_intent']:>8.1f}",
        flush=True,
    )


# ------------------------------------------------------------------------------- the run


def phases(quick: bool, rates: Sequence[int] | None = None) -> list[Phase]:
    """The open-loop phases at ``OPEN_LOADS`` and the maximum; with ``rates``, open loop at
    those rates only (to compare with another measurement at the same rate, the demo's)."""
    duration = 3.0 if quick else 10.0
    out = []
    for load in OPEN_LOADS if rates is None else rates:
        per_generator = load / GENERATORS
        batch = max(2, 2 * round(per_generator * OPEN_REQUEST_EVERY_S / 2))
        out.append(Phase(f"{load}/s", False, per_generator, duration, batch, 0))
    if rates is None:
        out.append(Phase("max", True, 0.0, duration, MAX_BATCH, MAX_CONNECTIONS))
    return out


def py_spy_path() -> str:
    """py-spy (``pip install py-spy``) beside this interpreter, else on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--py-spy needs py-spy: pip install py-spy")
    return found


def run(
    quick: bool = False,
    node_args: Sequence[str] = (),
    profile: Path | None = None,
    spy: Path | None = None,
    rates: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Start a node, load it at each offered rate, print a table and return the figures."""
    load_before = load_average()
    plan = phases(quick, rates)
    if spy is not None:
        py_spy_path()  # refuse before the long setup, not after it
    with tempfile.TemporaryDirectory(prefix="asyncdex-e2e-") as tmp:
        workdir = Path(tmp)
        node = NodeProcess(workdir, node_args, profile)
        try:
            setup_venue(node, CONTRACT)
            figures = drive(node, plan, spy)
            final = node.wait_applied(max(row["max_seq"] for row in figures["phases"]))
            figures["applied_seq"] = final["appliedSeq"]
            figures["engine"] = final["engine"]  # which implementation the node ran
            figures["all_applied"] = all(
                row["max_seq"] <= final["appliedSeq"] for row in figures["phases"]
            )
        finally:
            exit_code = node.stop()
        figures["node_exit_code"] = exit_code
    figures.update(
        {
            "node": "asyncdex node, file journal (fsync), no settlement, --snapshot-every 0"
            + (" " + " ".join(node_args) if node_args else ""),
            "generators": GENERATORS,
            "accounts": ACCOUNTS,
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        }
    )
    print(
        f"engine {figures.get('engine')}; "
        f"applied seq {figures['applied_seq']} covers every receipt: {figures['all_applied']}; "
        f"node exit {exit_code}; load average {load_before} -> {figures['load_average_after']}"
    )
    if profile is not None:
        print_profile(profile)
    if spy is not None:
        figures["cpu_samples"] = print_samples(spy)
    return figures


def drive(node: NodeProcess, plan: list[Phase], spy: Path | None = None) -> dict[str, Any]:
    nonce_base = time.time_ns() // 1_000_000
    specs = []
    for index in range(GENERATORS):
        accounts = tuple(range(index, ACCOUNTS, GENERATORS))
        specs.append(
            GeneratorSpec("127.0.0.1", node.port, CHAIN_ID, CONTRACT, accounts, nonce_base, MID,
                          tuple(plan), POOL_RATE, seed=index * 1_000)
        )  # fmt: skip
    generators = GeneratorPool(specs)
    generator_pids = generators.pids
    signed, signing_s = generators.wait_signed()
    print(
        f"e2e benchmark: {GENERATORS} generator processes signed {signed:,} intents "
        f"in {signing_s:.1f} s (before any timing), {ACCOUNTS} accounts, {os.cpu_count()} CPUs"
    )
    print(
        f"{'offered':>8s} {'acked/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'p999 ms':>8s} "
        f"{'int/req':>8s} {'errors':>6s} {'node':>6s} {'verify':>6s} {'gen':>6s} "
        f"{'node µs':>8s} {'ver. µs':>8s}   (CPU: cores, then µs per intent)"
    )
    rows = []
    for phase in plan:
        status = node.status()
        node.wait_applied(status["lastSeq"])
        node_before, workers_before = node.cpu_seconds()
        generator_cpu = sum(_process_cpu(pid) for pid in generator_pids)
        sampler = None
        if spy is not None and phase.closed:
            sampler = subprocess.Popen(
                [py_spy_path(), "record", "--pid",
                 str(node.process.pid), "--subprocesses", "--rate", "200", "--format", "raw",
                 "--output", str(spy), "--duration", str(int(phase.duration_s) + 1)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        generators.start_phase(time.monotonic() + 0.5)
        phase_results = generators.phase_results(phase.duration_s + 300)
        if sampler is not None:
            sampler.wait(timeout=60)
        node_after, workers_after = node.cpu_seconds()
        generator_used = sum(_process_cpu(pid) for pid in generator_pids) - generator_cpu
        offered = None if phase.closed else phase.rate * GENERATORS
        row = summarize(
            phase,
            offered,
            phase_results,
            node_after - node_before,
            workers_after - workers_before,
            generator_used,
        )
        node.wait_applied(row["max_seq"])
        seqs = [seq for result in phase_results for seq in result.sampled_seqs]
        row["outcomes_sampled"] = outcome_sample(node, seqs[:100])
        rows.append(row)
        print_row(row)
    generators.join()
    for row in rows:
        if row["errors"] or row["pool_exhausted"]:
            print(f"  {row['phase']}: errors {row['errors']}, pool exhausted "
                  f"{row['pool_exhausted']}")  # fmt: skip
        print(f"  {row['phase']}: sampled outcomes {row['outcomes_sampled']}")
        print(f"  {row['phase']}: acknowledged per second {row['acked_per_second']}")
    return {"signed_intents": signed, "signing_s": round(signing_s, 1), "phases": rows}


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (field 3 on), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _process_cpu(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def print_profile(path: Path, top: int = 25) -> None:
    stats = pstats.Stats(str(path))
    print(f"node profile (cProfile, event loop thread), top {top} by own time:")
    stats.sort_stats("tottime").print_stats(top)


# Where the node's CPU goes: each py-spy sample is charged to the group of its innermost
# frame that names one (a wrapper such as the metrics middleware is charged only for its
# own frames).
SAMPLE_GROUPS = (
    ("signature recovery (secp256k1)", ("recover_address", "verify_intent", "coincurve")),
    ("intent decoding, mapping", ("intents.py", "intake.py", "mapping.py", "msgpack")),
    ("engine apply", ("transition.py", "orderbook.py", "margin.py", "liquidation.py")),
    ("listeners: hyperliquid", ("hyperliquid",)),
    ("listeners: index, market data, streams", ("_on_events", "market_data.py", "streams.py",
                                                "RecordIndex")),
    ("engine executor", ("recovery.py",)),
    ("sequencer", ("sequencer.py", "records.py")),
    ("journal (group commit thread)", ("journal.py",)),
    ("precheck", ("precheck.py",)),
    ("metrics", ("metrics.py",)),
    ("verify pool plumbing (pickle, pipes)", ("verify_pool.py", "multiprocessing",
                                              "concurrent/futures")),
    ("HTTP (aiohttp), JSON answers", ("aiohttp", "json")),
    ("asyncio loop", ("asyncio", "selectors")),
)  # fmt: skip


def _sample_group(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in SAMPLE_GROUPS:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def _sample_thread(frames: list[str]) -> str:
    stack = ";".join(frames)
    if "spawn_main" in stack or "_process_worker" in stack:
        return "verify worker processes"
    if "GroupCommitter" in stack:
        return "journal thread (mostly fsync: waiting on the disk)"
    if "run_forever" in stack:
        return "event loop thread"
    if "multiprocessing" in stack or "concurrent/futures" in stack:
        return "verify pool threads in the node (pickling, pipes)"
    return "other threads"


def print_samples(path: Path) -> dict[str, Any]:
    """Summarize a py-spy raw (collapsed) profile: samples per thread, and the event loop
    thread's samples per group (the loop is the one writer: its time bounds the rate)."""
    by_thread: dict[str, int] = {}
    by_group: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        thread = _sample_thread(frames)
        by_thread[thread] = by_thread.get(thread, 0) + count
        if thread == "event loop thread":
            group = _sample_group(frames[1:])
            by_group[group] = by_group.get(group, 0) + count
    loop = max(by_thread.get("event loop thread", 0), 1)
    print(f"node samples (py-spy at 200 Hz, idle threads excluded): {total}")
    for name, count in sorted(by_thread.items(), key=lambda item: -item[1]):
        print(f"  {name:52s} {count:6d}")
    print("event loop thread, by innermost component:")
    for name, count in sorted(by_group.items(), key=lambda item: -item[1]):
        print(f"    {name:50s} {100 * count / loop:5.1f}%")
    return {"samples": total, "threads": by_thread, "event_loop_groups": by_group}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the node here")
    parser.add_argument(
        "--py-spy", type=Path, default=None, help="py-spy the node under the maximum load"
    )
    parser.add_argument(
        "--node-arg", action="append", default=[], help="extra node flag (repeatable)"
    )
    parser.add_argument(
        "--rate", type=int, action="append", default=None,
        help="instead of the usual phases: open loop at this many intents/s (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    figures = run(args.quick, args.node_arg, args.profile, args.py_spy, args.rate)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
