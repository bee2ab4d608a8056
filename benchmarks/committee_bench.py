"""Committee benchmark: signed intents into four committee member processes on loopback,
against one plain node on the same venue config, all in one run.

What runs: ``asyncdex node`` processes on ``examples/committee.toml`` (file journals with
fsync, signature checks in each node's event loop as that config says, ``--snapshot-every
0``). The load is the end-to-end bench's (:mod:`benchmarks.e2e_load`): generator processes
sending pre-signed intents, two per request from one account, as msgpack bodies on keep-alive
HTTP/1.1, with the same setup (1,000 funded traders, an oracle mid, the makers' depth) and
the same stream (90% place-and-cancel 20% off the mid, 10% crossing IOCs). An oracle price is
refreshed every 2 s through ``POST /v1/system`` (the config's prices go stale after 10 s).

Scenarios, in this order:
1. ``single_max``: one node without a ``[committee]`` table (the single sequencer), closed
   loop: intents/s acknowledged, and executed (its applied seq over the phase, read from
   ``GET /metrics`` every 50 ms: ``/v1/status`` hashes every account for its state root).
2. ``committee_1000``: four members (``asyncdex.cli.committee_cmd.CommitteeProcesses``),
   open loop at 1,000 intents/s in all, requests spread over the members in turn. Executed
   intents/s (a member's applied seq), and the latency from submission to ``ordered``: a
   request's due time (client wall clock; the generator sends it then unless it is late) to
   ``ordered.atMs`` on the member it was sent to (that member's wall clock when it saw the
   commit), read back for every request of the phase from ``GET /v1/intents/{id}``.
3. ``committee_max``: closed loop on the four members, each generator keeping at most
   ``UNEXECUTED_WINDOW / GENERATORS`` acknowledged intents not yet executed (a receipt comes
   before ordering, so a loop on receipts alone would only fill the intake); executed
   intents/s, and ``ratio = committee max / (single-node max / 4)`` (the members share the
   machine's cores).
4. ``committee_1000_one_killed``: member 3 SIGKILLed (while another member leads) before an
   open loop at 1,000/s over the other three; then member 3 restarts: the time until it
   serves, then until it executed as far as the others had then (applied seq).
5. ``leader_crash``: open loop at 1,000/s over members 1-3; member 0 is SIGKILLed as soon as
   member 1's ``/v1/status`` (polled every few ms) says it leads. From the ``ordered`` steps
   read back (the view and commit time of every request's block): the time from the kill
   until the survivors committed a block of a view after the dead leader's (the view change
   is done and a new leader's block is committed), and the longest time after the kill in
   which no request saw a commit. Member 0 restarts mid-phase and is timed as member 3 was.
6. The gas of a 4-member certificate (:func:`benchmarks.certificate_gas.measure_committee`).

Latency percentiles are per request (two intents each). Prints a table and returns the
figures; never asserts a time. Run: ``asyncdex bench committee [--quick] [--json]`` or
``python -m benchmarks.committee_bench [--quick] [--json] [--profile FILE]``; ``--profile``
runs member 2 (never killed) under cProfile and prints where its time went.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncdex.cli.committee_cmd import CommitteeProcesses, free_port_range, member_dir
from asyncdex.consensus.replica import ReplicaConfig
from asyncdex.settlement.chain import EthTesterChain
from benchmarks.certificate_gas import measure_committee
from benchmarks.e2e_bench import (
    ACCOUNTS,
    LOOPBACK_BUDGETS,
    MID,
    OPERATOR_TOKEN,
    NodeProcess,
    _process_cpu,
    setup_requests,
    summarize,
)
from benchmarks.e2e_load import GeneratorPool, GeneratorSpec, Phase, PhaseResult
from benchmarks.journal_bench import load_average

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "committee.toml"
MEMBERS = 4
RATE = 1_000
GENERATORS = 2
OPEN_BATCH = 2  # intents per open-loop request: 250 requests/s per generator at 1,000/s
MAX_BATCH = 100
MAX_CONNECTIONS = 4  # per generator, closed loop (spread over the members)
SINGLE_POOL_RATE = 12_000  # intents/s per generator signed in advance for the single node
COMMITTEE_POOL_RATE = 4_000  # ... and for the committee's closed loop
ALL = 1_000_000  # sampled requests: every request of the phase
UNEXECUTED_WINDOW = 6_000  # committee closed loop: acknowledged intents not yet executed
NODE_ARGS = (*LOOPBACK_BUDGETS, "--snapshot-every", "0")
PRICE_EVERY_S = 2.0
POLL_S = 0.05  # the applied seq while the load runs
DRAIN_TIMEOUT_S = 60.0


_STARTED = time.monotonic()


def _stage(text: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {text}", flush=True)


def _venue() -> tuple[int, bytes, bytes]:
    """(chain id, settlement contract, first oracle publisher) of the config."""
    document = tomllib.loads(CONFIG.read_text())
    venue = document["venue"]
    contract = bytes.fromhex(venue["settlement_contract"].removeprefix("0x"))
    publisher = bytes.fromhex(document["oracle_publishers"][0].removeprefix("0x"))
    return int(venue["chain_id"]), contract, publisher


CHAIN_ID, CONTRACT, PUBLISHER = _venue()


# ------------------------------------------------------------------------------- HTTP


class Api:
    """One keep-alive connection to one node; reconnects after a failure."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        status, raw = self.raw(method, path, body, headers)
        return status, json.loads(raw) if raw else None

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout
            )
        try:
            self.connection.request(method, path, body=body, headers=headers or {})
            response = self.connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        return response.status, raw

    def applied_seq(self) -> int | None:
        """The last seq the node applied, from ``GET /metrics``: cheap, where ``/v1/status``
        hashes every account for its state root (tens of ms of the node's CPU per call)."""
        try:
            status, raw = self.raw("GET", "/metrics")
        except (OSError, http.client.HTTPException):
            return None
        marker = raw.find(b"\nasyncdex_applied_seq ")
        if status != 200 or marker < 0:
            return None
        return int(float(raw[marker + 1 : raw.index(b"\n", marker + 1)].split()[1]))

    def get(self, path: str) -> Any:
        status, document = self.call("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {document}")
        return document

    def status(self) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = self.get("/v1/status")
            return document
        except (OSError, http.client.HTTPException, RuntimeError, ValueError):
            return None

    def system(self, commands: list[dict[str, Any]]) -> Any:
        body = json.dumps({"commands": commands}).encode()
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}", "Content-Type": "application/json"}
        status, document = self.call("POST", "/v1/system", body, headers)
        if status != 200:
            raise RuntimeError(f"POST /v1/system: {status} {document}")
        return document

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _wait(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Seconds until ``predicate`` held; raises after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


class PriceKeeper:
    """Keeps the oracle price fresh through whichever listed node answers first."""

    def __init__(self, ports: Sequence[int]) -> None:
        self.apis = [Api(port, timeout=2.0) for port in ports]
        self.stop_event = threading.Event()
        publisher = "0x" + PUBLISHER.hex()
        self.command = [{"type": "oraclePrice", "publisher": publisher, "market": 0, "price": MID}]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        turn = 0
        while not self.stop_event.wait(PRICE_EVERY_S):
            for api in self.apis[turn % len(self.apis) :] + self.apis[: turn % len(self.apis)]:
                try:
                    api.system(self.command)
                    break
                except (OSError, http.client.HTTPException, RuntimeError, ValueError):
                    continue
            turn += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


class AppliedPoller:
    """A node's applied seq every ``every`` seconds (``Api.applied_seq``), in a thread of its
    own: ``samples`` is a list of (monotonic time, applied seq)."""

    def __init__(self, port: int, every: float) -> None:
        self.api = Api(port, timeout=2.0)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            applied = self.api.applied_seq()
            if applied is not None:
                self.samples.append((time.monotonic(), applied))
            self.stop_event.wait(self.every)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.api.close()


def applied_at(samples: list[tuple[float, int]], when: float) -> float:
    """A node's applied seq at ``when``, interpolated between the polls around it."""
    before = [(t, seq) for t, seq in samples if t <= when]
    after = [(t, seq) for t, seq in samples if t > when]
    if not before:
        return float(after[0][1]) if after else 0.0
    if not after:
        return float(before[-1][1])
    (t0, a0), (t1, a1) = before[-1], after[0]
    return a0 + (a1 - a0) * (when - t0) / (t1 - t0)


def executed_figures(
    samples: list[tuple[float, int]], start: float, seconds: float, final: int
) -> dict[str, Any]:
    """Records executed per second: all of the phase's over the time from its start until the
    last was executed (the committed rate, a backlog's drain included: on a committee the
    receipts come long before execution), and those executed while the load ran."""
    first = applied_at(samples, start)
    during = applied_at(samples, start + seconds) - first
    drained = next((t for t, seq in samples if seq >= final), None)
    executed = final - round(first)
    return {
        "executed_per_s": None if drained is None else round(executed / (drained - start)),
        "executed_while_loaded_per_s": round(during / seconds),
        "executed": executed,
        "all_executed_after_s": None if drained is None else round(drained - start, 2),
    }


def _runqueue_wait(pid: int) -> float:
    """Seconds the process's main thread (a node's event loop) spent runnable but waiting for
    a CPU (``/proc/PID/schedstat``, second field): on a shared machine, where a view's time
    goes when the members' own CPU is small."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ------------------------------------------------------------------------------- the single node


def _open(name: str, seconds: float, ports: tuple[int, ...]) -> Phase:
    return Phase(name, False, RATE / GENERATORS, seconds, OPEN_BATCH, 0, ports, ALL)


def _closed(name: str, seconds: float, ports: tuple[int, ...] = ()) -> Phase:
    if not ports:  # the single node: its receipts come once its journal has the intents
        return Phase(name, True, 0.0, seconds, MAX_BATCH, MAX_CONNECTIONS)
    # a member's receipts come before ordering: keep a bounded window not yet executed
    window = UNEXECUTED_WINDOW // GENERATORS
    return Phase(
        name, True, 0.0, seconds, MAX_BATCH, MAX_CONNECTIONS, ports, ALL, window, GENERATORS
    )


def _specs(
    port: int, phases: Sequence[Phase], pool_rate: float, committee: bool
) -> list[GeneratorSpec]:
    nonce_base = time.time_ns() // 1_000_000
    specs = []
    for index in range(GENERATORS):
        accounts = tuple(range(index, ACCOUNTS, GENERATORS))
        specs.append(
            GeneratorSpec("127.0.0.1", port, CHAIN_ID, CONTRACT, accounts, nonce_base, MID,
                          tuple(phases), pool_rate, seed=index * 1_000, committee=committee)
        )  # fmt: skip
    return specs


def single_node_max(workdir: Path, seconds: float, pool_rate: float) -> dict[str, Any]:
    """The plain node's closed-loop maximum: acknowledged and executed intents/s."""
    _stage("single node: starting")
    node = NodeProcess(workdir, NODE_ARGS, None, config=CONFIG)
    prices: PriceKeeper | None = None
    try:
        deposits, price, depth = setup_requests(CONTRACT, PUBLISHER, CHAIN_ID)
        for commands in deposits:
            node.system(commands)
        node.system(price)
        answer = node.request(
            "POST", "/v1/intents", depth, **{"Content-Type": "application/msgpack"}
        )
        node.wait_applied(answer["receipts"][-1]["seq"])
        prices = PriceKeeper([node.port])
        phase = _closed("single max", seconds)
        generators = GeneratorPool(_specs(node.port, [phase], pool_rate, False))
        signed, signing_s = generators.wait_signed()
        _stage("single node: maximum")
        poller = AppliedPoller(node.port, POLL_S)
        cpu_before = _process_cpu(node.process.pid)
        wait_before = _runqueue_wait(node.process.pid)
        generator_cpu = sum(_process_cpu(pid) for pid in generators.pids)
        start_at = time.monotonic() + 0.5
        generators.start_phase(start_at)
        results = generators.phase_results(seconds + 300)
        node_cpu = _process_cpu(node.process.pid) - cpu_before
        waited = _runqueue_wait(node.process.pid) - wait_before
        generator_cpu = sum(_process_cpu(pid) for pid in generators.pids) - generator_cpu
        generators.join()
        row = summarize(phase, None, results, node_cpu, 0.0, generator_cpu)
        row["node_loop_cpu_wait_per_s"] = round(waited / row["seconds"], 3)
        final = node.wait_applied(row["max_seq"])["appliedSeq"]
        time.sleep(2 * POLL_S)
        poller.stop()
        row.update(executed_figures(poller.samples, start_at, seconds, final))
        row["signed"] = signed
        row["signing_s"] = round(signing_s, 1)
        return row
    finally:
        if prices is not None:
            prices.stop()
        node.stop()


# ------------------------------------------------------------------------------- the committee


PROFILED_MEMBER = 2  # no scenario kills it
# cProfile with a CPU clock (``python -m cProfile`` times the wall, idle waits included): the
# CPU a member spends is what four members on two cores compete for
_PROFILE_MAIN = (
    "import cProfile, runpy, sys, time\n"
    "out, sys.argv = sys.argv[1], ['asyncdex', *sys.argv[2:]]\n"
    "profiler = cProfile.Profile(time.process_time)\n"
    "try:\n"
    "    profiler.runcall(runpy.run_module, 'asyncdex.cli.main', run_name='__main__')\n"
    "finally:\n"
    "    profiler.dump_stats(out)\n"
)


class ProfiledProcesses(CommitteeProcesses):
    """The members, one of them run under cProfile (its profile is written when it stops)."""

    profile: Path | None = None

    def start(self, index: int) -> None:
        if self.profile is None or index != PROFILED_MEMBER:
            super().start(index)
            return
        command = [
            sys.executable, "-c", _PROFILE_MAIN, str(self.profile), "node",
            "--data", str(member_dir(self.data, index)),
            "--config", str(self.configs[index]),
            "--port", str(self.port + index),
            *self.node_args,
        ]  # fmt: skip
        stderr = self.log if self.log is not None else subprocess.DEVNULL
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=self.env
        )
        self.processes[index] = process
        self.ready[index] = None


@dataclass
class Committee:
    processes: CommitteeProcesses
    ports: list[int]
    apis: list[Api]

    def applied(self, index: int) -> int | None:
        return self.apis[index].applied_seq()

    def committee_status(self, index: int) -> dict[str, Any] | None:
        status = self.apis[index].status()
        return None if status is None else status["committee"]

    def alive(self, index: int) -> bool:
        process = self.processes.processes[index]
        return process is not None and process.poll() is None

    def waits(self) -> dict[int, float]:
        """Seconds each live member's event loop thread has waited for a CPU, by pid."""
        return {
            process.pid: _runqueue_wait(process.pid)
            for process in self.processes.processes
            if process is not None and process.poll() is None
        }

    def cpu(self) -> dict[int, float]:
        """CPU seconds of each live member process, by pid."""
        return {
            process.pid: _process_cpu(process.pid)
            for process in self.processes.processes
            if process is not None and process.poll() is None
        }


def setup_committee(committee: Committee) -> None:
    """The e2e bench's venue, entered through member 0 and executed by every member."""
    api = committee.apis[0]
    deposits, price, depth = setup_requests(CONTRACT, PUBLISHER, CHAIN_ID)
    for commands in deposits:
        api.system(commands)
    api.system(price)
    status, answer = api.call("POST", "/v1/intents", depth, {"Content-Type": "application/msgpack"})
    if status != 200:
        raise RuntimeError(f"the makers' depth was refused: {status} {answer}")
    last = answer["receipts"][-1]["intentId"]

    def executed_everywhere() -> bool:
        for member in committee.apis:
            try:
                document = member.get(f"/v1/intents/{last}")
            except (OSError, http.client.HTTPException, RuntimeError, ValueError):
                return False
            if document["status"] != "executed":
                return False
        return True

    _wait(executed_everywhere, DRAIN_TIMEOUT_S, "the venue's setup on every member", 0.1)


def wait_executed(committee: Committee, live: Sequence[int], seq: int) -> None:
    """Until every live member applied ``seq`` (from ``/metrics``: polling ``/v1/status``
    would have each member hash every account, again and again, while it catches up)."""

    def executed() -> bool:
        return all((committee.applied(index) or 0) >= seq for index in live)

    _wait(executed, DRAIN_TIMEOUT_S, f"the members to execute up to seq {seq}", 0.1)


@dataclass(frozen=True)
class OrderedRecord:
    """One sampled request as read back from the member it was sent to."""

    sent_ms: float  # client wall clock when it was due (sent then, unless the client ran late)
    at_ms: int  # that member's wall clock when it saw the commit
    view: int
    height: int


def read_back(
    committee: Committee, results: list[PhaseResult]
) -> tuple[list[OrderedRecord], dict[str, int]]:
    """Each sampled request's ``ordered`` step (its last intent's), from the member it was
    sent to, and the outcomes of those intents."""
    by_port: dict[int, list[tuple[float, str]]] = {}
    for result in results:
        for port, wall, ids in result.sampled_intents:
            by_port.setdefault(port, []).append((wall, ids[-1]))
    records: list[OrderedRecord] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def read(port: int, samples: list[tuple[float, str]]) -> None:
        api = Api(port)
        mine: list[OrderedRecord] = []
        counts: dict[str, int] = {}
        for wall, intent_id in samples:
            try:
                document = api.get(f"/v1/intents/{intent_id}")
            except (OSError, http.client.HTTPException, RuntimeError, ValueError):
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                continue
            ordered = document.get("ordered")
            if ordered is not None:
                mine.append(
                    OrderedRecord(wall * 1e3, ordered["atMs"], ordered["view"], ordered["height"])
                )
            key = document["status"]
            rejected = [e for e in document.get("events") or () if e["type"] == "Rejected"]
            if rejected:
                key = "rejected " + rejected[0]["reasonName"]
            counts[key] = counts.get(key, 0) + 1
        api.close()
        with lock:
            records.extend(mine)
            for key, count in counts.items():
                outcomes[key] = outcomes.get(key, 0) + count

    threads = [threading.Thread(target=read, args=item) for item in by_port.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records, outcomes


def ordered_figures(records: list[OrderedRecord]) -> dict[str, Any]:
    latencies = [record.at_ms - record.sent_ms for record in records]
    heights = [record.height for record in records]
    first_seen: dict[int, int] = {}
    for record in records:
        first_seen[record.height] = min(record.at_ms, first_seen.get(record.height, record.at_ms))
    span_ms = max(first_seen.values(), default=0) - min(first_seen.values(), default=0)
    height_span = max(first_seen, default=0) - min(first_seen, default=0)
    return {
        "ordered_samples": len(latencies),
        "ordered_p50_ms": _round(percentile(latencies, 0.50)),
        "ordered_p90_ms": _round(percentile(latencies, 0.90)),
        "ordered_p99_ms": _round(percentile(latencies, 0.99)),
        "ordered_max_ms": _round(max(latencies) if latencies else None),
        "blocks": len(set(heights)),
        "requests_per_block": round(len(heights) / max(1, len(set(heights))), 1),
        # committed blocks (empty ones too) per second between the first and last sampled
        "blocks_per_s": round(height_span / span_ms * 1e3, 1) if span_ms else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def run_committee_phase(
    committee: Committee,
    generators: GeneratorPool,
    phase: Phase,
    live: Sequence[int],
    during: Callable[[float], dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[OrderedRecord]]:
    """One phase on the committee; ``during(start_at)`` runs in this thread meanwhile."""
    applied_before = committee.applied(live[0])
    if applied_before is None:
        raise RuntimeError(f"member {live[0]} does not answer")
    poller = AppliedPoller(committee.ports[live[0]], POLL_S)
    cpu_before = committee.cpu()
    waits_before = committee.waits()
    generator_cpu = sum(_process_cpu(pid) for pid in generators.pids)
    start_at = time.monotonic() + 0.5
    generators.start_phase(start_at)
    extra = during(start_at) if during is not None else {}
    results = generators.phase_results(phase.duration_s + 300)
    # a member killed meanwhile is not counted (its /proc entry is gone), one started is
    cpu_after = committee.cpu()
    members_cpu = sum(used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items())
    waited = sum(wait - waits_before.get(pid, 0.0) for pid, wait in committee.waits().items())
    generator_cpu = sum(_process_cpu(pid) for pid in generators.pids) - generator_cpu
    row = summarize(phase, None if phase.closed else RATE, results, members_cpu, 0.0, generator_cpu)
    row["members_cpu_cores"] = row.pop("node_cpu_cores")
    row["members_cpu_us_per_intent"] = row.pop("node_cpu_us_per_intent")
    for key in ("verify_workers_cpu_cores", "verify_workers_cpu_us_per_intent", "max_seq"):
        row.pop(key)
    # per member and second of the phase: how long its event loop was runnable but had no CPU
    row["members_loop_cpu_wait_per_s"] = round(waited / len(live) / row["seconds"], 3)
    row["receipt_p50_ms"] = row.pop("p50_ms")
    row["receipt_p99_ms"] = row.pop("p99_ms")
    row["receipt_p999_ms"] = row.pop("p999_ms")
    # each acknowledged intent is one record (the oracle prices add a few more)
    final = applied_before + row["intents_acknowledged"]
    wait_executed(committee, [index for index in live if committee.alive(index)], final)
    time.sleep(2 * POLL_S)
    poller.stop()
    row.update(executed_figures(poller.samples, start_at, phase.duration_s, final))
    records, outcomes = read_back(committee, results)
    row.update(ordered_figures(records))
    row["outcomes"] = outcomes
    row.update(extra)
    return row, records


def kill_when(committee: Committee, victim: int, leading: bool, watch: int) -> tuple[float, int]:
    """SIGKILL ``victim`` as soon as member ``watch`` says it leads (``leading``) or does not
    lead the current view; (wall-clock time of the kill, that view)."""
    deadline = time.monotonic() + 30
    while True:
        status = committee.committee_status(watch)
        if status is not None and (status["leader"] == victim) == leading:
            committee.processes.kill(victim)
            return time.time(), status["view"]
        if time.monotonic() > deadline:
            raise RuntimeError(f"member {victim} never {'led' if leading else 'stopped leading'}")
        time.sleep(0.001)


def restart_and_catch_up(
    committee: Committee, index: int, survivors: Sequence[int]
) -> dict[str, Any]:
    """Restart ``index``; seconds until it serves, then until it executed as far as the
    survivors had when it started serving (its applied seq: a member executes what it
    committed)."""
    started = time.monotonic()
    committee.processes.restart(index)
    serving = time.monotonic() - started
    target = max(committee.applied(i) or 0 for i in survivors)

    def caught_up() -> bool:
        return (committee.applied(index) or 0) >= target

    catch_up = _wait(caught_up, DRAIN_TIMEOUT_S, f"member {index} to catch up", 0.01)
    return {
        "restart_to_serving_s": round(serving, 2),
        "catch_up_after_serving_s": round(catch_up, 3),
        "caught_up_to_seq": target,
    }


def crash_figures(
    records: list[OrderedRecord], killed_ms: float, view_at_kill: int, victim: int
) -> dict[str, Any]:
    """From the read-back ``ordered`` steps: when the survivors first committed a block of a
    view after the dead leader's turn (view change done, a new leader's block committed),
    and the longest time after the kill in which clients saw no commit."""
    dead_view = view_at_kill
    while dead_view % MEMBERS != victim:
        dead_view += 1
    later = [record.at_ms for record in records if record.view > dead_view]
    commits = sorted({record.at_ms for record in records if record.at_ms >= killed_ms})
    gaps = [b - a for a, b in itertools.pairwise([killed_ms, *commits])]
    return {
        "killed_leader": victim,
        "view_at_kill": view_at_kill,
        "dead_leaders_view": dead_view,
        "new_leader_commit_after_s": round((min(later) - killed_ms) / 1e3, 3) if later else None,
        "longest_commit_gap_s": round(max(gaps) / 1e3, 3) if gaps else None,
    }


def committee_scenarios(
    workdir: Path,
    seconds: float,
    crash_seconds: float,
    profile: Path | None = None,
    base_timeout_ms: int | None = None,
) -> dict[str, Any]:
    base = free_port_range(2 * MEMBERS)
    ports = [base + index for index in range(MEMBERS)]
    all_ports = tuple(ports)
    phases = [
        _open("committee 1000/s", seconds, all_ports),
        _closed("committee max", seconds, all_ports),
        _open("committee 1000/s, one killed", seconds, tuple(ports[:3])),
        _open("leader crash", crash_seconds, tuple(ports[1:])),
    ]
    # sign while the members start: both are done before any timing
    generators = GeneratorPool(_specs(ports[0], phases, COMMITTEE_POOL_RATE, True))
    log = (workdir / "members.log").open("w")
    processes = ProfiledProcesses(
        workdir / "committee", CONFIG, MEMBERS, port=base, consensus_port=base + MEMBERS,
        node_args=("--operator-token", OPERATOR_TOKEN, *NODE_ARGS), log=log,
        extra_committee="" if base_timeout_ms is None else f"base_timeout_ms = {base_timeout_ms}\n",
    )  # fmt: skip
    processes.profile = profile
    committee = Committee(processes, ports, [Api(port) for port in ports])
    prices: PriceKeeper | None = None
    figures: dict[str, Any] = {}
    try:
        _stage(f"committee: starting {MEMBERS} members")
        processes.start_all()
        setup_committee(committee)
        prices = PriceKeeper(ports)
        signed, signing_s = generators.wait_signed()
        figures["signed"] = signed
        figures["signing_s"] = round(signing_s, 1)
        members = list(range(MEMBERS))
        _stage(f"committee: {RATE:,}/s")
        figures["committee_1000"], _ = run_committee_phase(
            committee, generators, phases[0], members
        )
        _stage("committee: maximum")
        figures["committee_max"], _ = run_committee_phase(committee, generators, phases[1], members)

        # one member down for a whole phase: killed while another member leads
        killed = MEMBERS - 1
        _stage(f"committee: member {killed} killed, {RATE:,}/s")
        kill_when(committee, killed, False, 0)
        row, _ = run_committee_phase(committee, generators, phases[2], members[:killed])
        row.update(restart_and_catch_up(committee, killed, members[:killed]))
        figures["committee_1000_one_killed"] = row

        # the leader of the moment crashes under load
        victim = 0
        survivors = members[1:]
        kill: dict[str, Any] = {}

        def crash(start_at: float) -> dict[str, Any]:
            time.sleep(max(0.0, start_at + crash_seconds / 4 - time.monotonic()))
            kill["at"], kill["view"] = kill_when(committee, victim, True, survivors[0])
            time.sleep(max(0.0, kill["at"] + crash_seconds / 2 - time.time()))
            return restart_and_catch_up(committee, victim, survivors)

        _stage(f"committee: leader crash at {RATE:,}/s")
        row, records = run_committee_phase(committee, generators, phases[3], survivors, crash)
        row.update(crash_figures(records, kill["at"] * 1e3, kill["view"], victim))
        figures["leader_crash"] = row
        generators.join()
    finally:
        if prices is not None:
            prices.stop()
        for api in committee.apis:
            api.close()
        figures["member_exit_codes"] = processes.stop_all()
        log.close()
    return figures


# ------------------------------------------------------------------------------- the run


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _print(name: str, row: dict[str, Any]) -> None:
    offered = "max" if row["offered_per_s"] is None else f"{row['offered_per_s']:,}"
    errors = sum(row["errors"].values())

    def cell(key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:,.1f}"

    print(
        f"{name:<28s}{offered:>8s}{row['sustained_per_s']:>10,}{_count(row['executed_per_s']):>10s}"
        f"{cell('ordered_p50_ms'):>10s}{cell('ordered_p99_ms'):>10s}"
        f"{cell('receipt_p50_ms'):>10s}{cell('receipt_p99_ms'):>10s}{errors:>8,}",
        flush=True,
    )


def run(
    quick: bool = False, profile: Path | None = None, base_timeout_ms: int | None = None
) -> dict[str, Any]:
    """All the scenarios; prints a table and returns the figures. ``base_timeout_ms`` sets
    the members' view timer (``[committee] base_timeout_ms``; default: the node's)."""
    seconds = 2.0 if quick else 8.0
    crash_seconds = 3.0 if quick else 6.0
    load_before = load_average()
    print(
        f"committee bench: {MEMBERS} members vs one node on {CONFIG.name}, {os.cpu_count()} CPUs, "
        f"view timer {base_timeout_ms or ReplicaConfig().base_timeout_ms} ms, "
        f"load average {load_before}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="asyncdex-committee-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "single").mkdir()
        single = single_node_max(
            workdir / "single", seconds, SINGLE_POOL_RATE * (0.75 if quick else 1.0)
        )
        committee = committee_scenarios(workdir, seconds, crash_seconds, profile, base_timeout_ms)
    _stage("certificate gas")
    chain = EthTesterChain("prague")
    gas = measure_committee(chain, MEMBERS)
    scenarios = {"single_max": single}
    for key in ("committee_1000", "committee_max", "committee_1000_one_killed", "leader_crash"):
        scenarios[key] = committee[key]
    ratio = (committee["committee_max"]["executed_per_s"] or 0) / max(
        1, (single["executed_per_s"] or 0) / MEMBERS
    )
    print(
        f"{'scenario':<28s}{'offered':>8s}{'acked/s':>10s}{'exec/s':>10s}{'ord p50':>10s}"
        f"{'ord p99':>10s}{'rcpt p50':>10s}{'rcpt p99':>10s}{'errors':>8s}   (ms)"
    )
    for name, row in scenarios.items():
        _print(name, row)
    for name, row in scenarios.items():
        if row["errors"]:
            print(f"  {name}: errors {row['errors']}")
        if "outcomes" in row:
            print(
                f"  {name}: {row['blocks']} blocks sampled, {row['blocks_per_s']} blocks/s, "
                f"{row['requests_per_block']} requests per block; members' CPU "
                f"{row['members_cpu_cores']} cores ({row['members_cpu_us_per_intent']} µs per "
                f"intent); each member's loop waited {row['members_loop_cpu_wait_per_s']} s per "
                f"s for a CPU; outcomes {row['outcomes']}"
            )
        else:
            print(
                f"  {name}: node CPU {row['node_cpu_cores']} cores "
                f"({row['node_cpu_us_per_intent']} µs per intent); its loop waited "
                f"{row['node_loop_cpu_wait_per_s']} s per s for a CPU"
            )
    crash = committee["leader_crash"]
    killed = committee["committee_1000_one_killed"]
    print(
        f"committee max / (single-node max / {MEMBERS}) = "
        f"{_count(committee['committee_max']['executed_per_s'])} / "
        f"({_count(single['executed_per_s'])} / {MEMBERS}) = {ratio:.2f}  (target >= 0.70)"
    )
    print(
        f"leader crash (member {crash['killed_leader']} killed in view {crash['view_at_kill']}): "
        f"a block of a later view committed after {crash['new_leader_commit_after_s']} s "
        f"(target <= 1 s); longest gap between commits {crash['longest_commit_gap_s']} s; "
        f"restarted: serving after {crash['restart_to_serving_s']} s, caught up "
        f"{crash['catch_up_after_serving_s']} s later"
    )
    print(
        f"one member killed: restarted, serving after {killed['restart_to_serving_s']} s, "
        f"caught up {killed['catch_up_after_serving_s']} s later"
    )
    print(
        f"certificate for {MEMBERS} members: verify {gas['verify_gas']:,} gas + calldata "
        f"{gas['certificate_calldata_gas']:,} gas (target <= 30,000 for the check)"
    )
    for row in scenarios.values():
        row.pop("latencies", None)
    if profile is not None:
        print(f"member {PROFILED_MEMBER}'s CPU time (cProfile, all phases and its start):")
        stats = pstats.Stats(str(profile))
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats("asyncdex", 40)
    return {
        "scenarios": scenarios,
        "max_ratio_to_single_over_members": round(ratio, 3),
        "certificate_gas": gas,
        "member_exit_codes": committee["member_exit_codes"],
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "config": str(CONFIG.relative_to(ROOT)),
        "base_timeout_ms": base_timeout_ms or ReplicaConfig().base_timeout_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="last line: the figures as JSON")
    parser.add_argument(
        "--profile", type=Path, default=None, help=f"cProfile member {PROFILED_MEMBER} into FILE"
    )
    parser.add_argument(
        "--base-timeout-ms",
        type=int,
        default=None,
        help="the members' view timer ([committee] base_timeout_ms; default: the node's)",
    )
    args = parser.parse_args()
    figures = run(args.quick, args.profile, args.base_timeout_ms)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
