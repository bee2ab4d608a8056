"""Sequencer benchmark: durable intents/s, receipt latency under paced load, replay speed.

Everything goes through the real ``Sequencer`` + ``GroupCommitter`` + ``FileJournal`` with
fsync on, in one asyncio loop in this process, in a fresh temporary directory (on the file
system of ``$TMPDIR``; point it at the disk the journal will use). Signatures are not
checked here (the gateway does that before ``submit``); each record still carries a 65-byte
signature, so records have their real size.

The commands are realistic: the ``exchange-core`` mix of ``benchmarks.engine_bench``
(GTC and IOC places, cancels and moves of resting orders on a prepared book of 4,000 orders
from 1,000 accounts), each wrapped in a ``Signed`` envelope with a fresh nonce, after the
deposits, an oracle price and the book's orders. The journal written by the throughput run
is a replayable venue history.

- Durable throughput: 512 concurrent clients, each submitting calls of 1-50 intents and
  waiting for the receipts before the next call; intents / seconds until the last receipt.
- Receipt latency: an asyncio generator offers intents at 1k, 10k, 20k and 50k per second,
  one intent per ``submit`` call (a trader's request); latency = receipt - the moment the
  generator issued the call. asyncio sleeps are at best ~1 ms, so at high rates intents
  arrive in bursts of about rate / 1000, as from a busy socket. ``achieved/s`` below the
  offered rate means the loop saturated and the latency is queueing. One more row offers
  50k/s in calls of up to 10 intents (what is due at a tick), as a gateway that hands over
  a socket read at once would.
- Replay: the throughput run's journal through ``recovery.replay`` into a fresh engine
  from seq 1, and from a snapshot two thirds in + the tail (``recover`` is timed whole
  too), with the engine's own share (``apply`` over pre-decoded records) beside it. In
  subprocesses, once with the native core (when the extension is built; else left out with
  a warning) and once with the interpreted reference; each also measures 20k intents/s
  receipt latency with its engine executing every durable record as a consumer in the same
  loop, as a node does.

The pre-built workload (millions of objects) is moved out of the collector's sight with
``gc.freeze()``: a node holds no such thing, and full collections walking it would be
charged to the sequencer.

Prints a table and returns the figures; never asserts a time. Run:
``python -m benchmarks.sequencer_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asyncdex.engine.build import build_engine
from asyncdex.engine.native import native_available, native_unavailable_reason
from asyncdex.messages.commands import Command, Deposit, PublishOraclePrice, Signed
from asyncdex.sequencer.journal import FileJournal, GroupCommitter, JournalFailed
from asyncdex.sequencer.records import decode_trusted_record
from asyncdex.sequencer.recovery import EngineExecutor, SnapshotStore, recover, replay
from asyncdex.sequencer.sequencer import Sequencer, Submission
from benchmarks.engine_bench import bench_config, generate
from benchmarks.journal_bench import load_average

LOADS = (1_000, 10_000, 20_000, 50_000)
ENGINE_LOAD = 20_000
BATCHED_CALL = 10
CLIENTS = 512
MAX_CALL = 50
SIGNATURE = bytes(range(65))
MARKETS = 1
ACCOUNTS = 1_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------------- workload


def build_workload(operations: int) -> tuple[list[Submission], list[Submission]]:
    """(setup, timed) submissions: genesis and book first, then the exchange-core mix."""
    setup_commands, timed_commands = generate("exchange-core", MARKETS, ACCOUNTS, operations)
    # Nonces are milliseconds near the sequencer's clock, as wallets pick them; the engine
    # accepts those within days of its time and never one twice per signer.
    next_nonce: dict[bytes, int] = {}
    base = wall_clock_ms()
    intent = 0

    def wrap(command: Command) -> Submission:
        nonlocal intent
        intent += 1
        intent_id = intent.to_bytes(32, "big")
        if isinstance(command, Deposit | PublishOraclePrice):
            return Submission(command, b"", intent_id)
        account: bytes = command.account  # type: ignore[union-attr]
        nonce = next_nonce.get(account, base) + 1
        next_nonce[account] = nonce
        return Submission(Signed(account, nonce, 0, command), SIGNATURE, intent_id)

    return [wrap(c) for c in setup_commands], [wrap(c) for c in timed_commands]


def split_calls(submissions: Sequence[Submission], seed: int) -> list[Sequence[Submission]]:
    rng = random.Random(seed)
    calls = []
    index = 0
    while index < len(submissions):
        size = rng.randint(1, MAX_CALL)
        calls.append(submissions[index : index + size])
        index += size
    return calls


class _BatchCounter:
    """Counts fsync'd batches (durability notifications) for the mean batch size."""

    def __init__(self) -> None:
        self.batches = 0

    def on_durable(self, durable_seq: int) -> None:
        self.batches += 1

    def on_failure(self, error: JournalFailed) -> None:
        pass


# ----------------------------------------------------------------------------- throughput


def measure_throughput(
    directory: Path, setup: list[Submission], timed: list[Submission]
) -> dict[str, Any]:
    journal, _ = FileJournal.open(directory)
    counter = _BatchCounter()

    async def main() -> float:
        committer = GroupCommitter(journal)
        sequencer = Sequencer(committer, wall_clock_ms)
        for chunk in split_calls(setup, seed=1):
            await sequencer.submit(chunk)
        journal.add_durability_listener(counter)
        calls = iter(split_calls(timed, seed=2))
        submit = sequencer.submit

        async def client() -> None:
            # Taking the next call and submitting it happen in one step of the loop, so the
            # journal holds the calls in the order they were generated: a replayable history.
            for call in calls:
                await submit(call)

        gc.collect()
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
        await sequencer.close()
        committer.close()
        return elapsed

    elapsed = asyncio.run(main())
    last_seq = journal.last_seq
    journal.close()
    return {
        "intents": len(timed),
        "seconds": elapsed,
        "intents_per_s": len(timed) / elapsed,
        "fsyncs": counter.batches,
        "mean_batch": len(timed) / max(counter.batches, 1),
        "journal_records": last_seq,
    }


# -------------------------------------------------------------------------------- latency


def measure_latency(
    directory: Path,
    setup: list[Submission],
    timed: list[Submission],
    rate: int,
    seconds: float,
    engine: str | None = None,
    per_call: int = 1,
) -> dict[str, Any]:
    """Receipt latency at ``rate`` offered intents/s, ``per_call`` at most in a call.

    With ``per_call`` > 1, the intents due at one tick go out in calls of up to that many,
    as from a gateway that hands over what it read from a socket in one go. ``engine``: the
    kind of engine that executes every durable record (None: no engine).
    """
    journal, _ = FileJournal.open(directory)
    counter = _BatchCounter()
    total = int(rate * seconds)
    latencies = array("d")

    async def main() -> None:
        committer = GroupCommitter(journal)
        sequencer = Sequencer(committer, wall_clock_ms)
        if engine is not None:
            executor = EngineExecutor(build_engine(engine, bench_config(MARKETS)), None, 1)
            sequencer.add_consumer(executor)
        for chunk in split_calls(setup, seed=1):
            await sequencer.submit(chunk)
        journal.add_durability_listener(counter)
        submit = sequencer.submit
        # Tasks are dropped as they finish: keeping tens of thousands of finished ones alive
        # makes every full collection walk them, which shows up as latency.
        pending: set[asyncio.Task[None]] = set()
        spawn = asyncio.get_running_loop().create_task
        now = time.perf_counter
        record = latencies.append

        async def one(call: list[Submission], issued_at: float) -> None:
            await submit(call)
            latency = now() - issued_at
            for _ in call:
                record(latency)

        start = now()
        issued = 0
        while issued < total:
            due = min(total, int((now() - start) * rate) + 1)
            while issued < due:
                size = min(per_call, due - issued)
                call = [timed[(issued + k) % len(timed)] for k in range(size)]
                task = spawn(one(call, now()))
                pending.add(task)
                task.add_done_callback(pending.discard)
                issued += size
            await asyncio.sleep(max(0.0, start + issued / rate - now()))
        while pending:
            await asyncio.gather(*pending)
        spans.append(now() - start)
        await sequencer.close()
        committer.close()

    spans: list[float] = []
    asyncio.run(main())
    journal.close()
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e3

    return {
        "rate": rate,
        "per_call": per_call,
        "achieved_per_s": len(ordered) / spans[0],
        "intents": len(ordered),
        "engine": engine,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "p999_ms": percentile(0.999),
        "max_ms": ordered[-1] * 1e3,
        "mean_batch": len(ordered) / max(counter.batches, 1),
    }


# --------------------------------------------------------------------------------- replay


def replay_here(
    kind: str, journal_dir: Path, snapshot_dir: Path, snapshot_seq: int, latency_seconds: float
) -> dict[str, Any]:
    """Replay figures with the engine ``kind`` (run in a subprocess of its own)."""
    config = bench_config(MARKETS)
    figures: dict[str, Any] = {"implementation": kind}

    started = time.perf_counter()
    journal, _ = FileJournal.open(journal_dir)
    figures["open_s"] = time.perf_counter() - started  # every segment's checksums verified
    last_seq = journal.last_seq
    engine = build_engine(kind, config)
    gc.collect()
    started = time.perf_counter()
    count = replay(journal, engine, 1)
    elapsed = time.perf_counter() - started
    full_root = engine.state_root()
    figures["full"] = {"records": count, "seconds": elapsed, "records_per_s": count / elapsed}
    del engine

    # The engine's share: the same records, decoded beforehand (outside the timing).
    decoded = [decode_trusted_record(payload) for _seq, payload in journal.read()]
    gc.collect()
    gc.freeze()
    engine = build_engine(kind, config)
    apply = engine.apply
    started = time.perf_counter()
    for timestamp, command, _signature in decoded:
        apply(command, timestamp)
    figures["apply_only_per_s"] = len(decoded) / (time.perf_counter() - started)
    gc.unfreeze()
    del decoded, engine

    # The snapshot is made outside the timing, from a replay up to its seq.
    partial = build_engine(kind, config)
    replay(journal, partial, 1, to_seq=snapshot_seq)
    store = SnapshotStore(snapshot_dir)
    path = store.save_engine(snapshot_seq, partial)
    figures["snapshot_bytes"] = path.stat().st_size
    del partial
    journal.close()

    gc.collect()
    started = time.perf_counter()
    found = store.latest(config)
    loaded = time.perf_counter()
    assert found is not None and found[0] == snapshot_seq
    resumed = build_engine(kind, config, found[1])
    journal, _ = FileJournal.open(journal_dir)
    opened = time.perf_counter()
    tail = replay(journal, resumed, snapshot_seq + 1)
    finished = time.perf_counter()
    journal.close()
    if resumed.state_root() != full_root:
        raise RuntimeError("snapshot + tail and full replay reached different roots")
    figures["snapshot_tail"] = {
        "snapshot_seq": snapshot_seq,
        "snapshot_load_s": loaded - started,
        "tail_records": tail,
        "tail_seconds": finished - opened,
        "tail_records_per_s": tail / (finished - opened),
    }

    started = time.perf_counter()
    recovered = recover(journal_dir, snapshot_dir, config, engine_kind=kind)
    figures["recover_s"] = time.perf_counter() - started
    recovered.journal.close()
    if recovered.state_root != full_root or recovered.last_seq != last_seq:
        raise RuntimeError("recover() disagrees with the full replay")
    figures["state_root"] = full_root.hex()
    del recovered, resumed, found

    setup, timed = build_workload(int(ENGINE_LOAD * latency_seconds) + 1)
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="asyncdex-sequencer-bench-") as tmp:
        figures["latency_with_engine"] = measure_latency(
            Path(tmp), setup, timed, ENGINE_LOAD, latency_seconds, engine=kind
        )
    return figures


def run_replays(
    journal_dir: Path, snapshot_root: Path, snapshot_seq: int, latency_seconds: float
) -> dict[str, Any]:
    """Both engines, each in a fresh process: the native core (when it is built) and the
    reference; they must replay to the same root."""
    root = Path(__file__).resolve().parents[1]
    results: dict[str, Any] = {}
    kinds = ["reference"]
    if native_available():
        kinds.insert(0, "native")
    else:
        print(f"warning: native core left out: {native_unavailable_reason()}", file=sys.stderr)
    for kind in kinds:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (env.get("PYTHONPATH"), str(root))))
        args = [sys.executable, "-m", "benchmarks.sequencer_bench", "--replay", kind,
                str(journal_dir), str(snapshot_root / kind), str(snapshot_seq),
                str(latency_seconds)]  # fmt: skip
        proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"replay ({kind}) failed:\n{proc.stderr[-3000:]}")
        results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    if len({row["state_root"] for row in results.values()}) != 1:
        raise RuntimeError("the native core and the reference replayed to different roots")
    return results


# ------------------------------------------------------------------------------------ run


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and print; ``quick`` cuts counts and durations about threefold."""
    operations = 150_000 if quick else 400_000
    seconds = 1.0 if quick else 3.0
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_before": load_average()}
    setup, timed = build_workload(operations)
    results["workload"] = {"setup_records": len(setup), "intents": len(timed)}
    gc.collect()
    gc.freeze()
    try:
        with tempfile.TemporaryDirectory(prefix="asyncdex-sequencer-bench-") as tmp:
            base = Path(tmp)
            # Latency first: the throughput run writes ~100 MB, which on throttled (cloud,
            # VM) disks slows every fsync for a while afterwards.
            results["latency"] = [
                measure_latency(base / f"latency-{rate}", setup, timed, rate, seconds)
                for rate in LOADS
            ]
            results["latency"].append(
                measure_latency(base / "latency-batched", setup, timed, LOADS[-1], seconds,
                                per_call=BATCHED_CALL)
            )  # fmt: skip
            results["throughput"] = measure_throughput(base / "journal", setup, timed)
            snapshot_seq = len(setup) + len(timed) * 2 // 3
            results["replay"] = run_replays(
                base / "journal", base / "snapshots", snapshot_seq, seconds
            )
    finally:
        gc.unfreeze()
    results["load_average_after"] = load_average()
    _print_table(results)
    return results


def _print_table(results: dict[str, Any]) -> None:
    load = results["load_average_before"], results["load_average_after"]
    throughput = results["throughput"]
    print(
        f"sequencer benchmark: {results['workload']['intents']:,} signed intents "
        f"(exchange-core mix) after {results['workload']['setup_records']:,} setup records, "
        f"fsync on, {results['cpus']} CPUs, load average "
        + " -> ".join("n/a" if v is None else f"{v:.2f}" for v in load)
    )
    print(
        f"  durable throughput ({CLIENTS} clients, calls of 1-{MAX_CALL})"
        f"  {throughput['intents_per_s']:>10,.0f} intents/s"
        f"  ({throughput['mean_batch']:.0f} intents per fsync)"
    )
    print("  receipt latency, submit -> receipt, one intent per call unless marked (xN: calls")
    print("  of up to N intents; +nat, +ref: that engine executes every durable record):")
    print(f"  {'offered/s':>16} {'achieved/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}"
          f" {'max ms':>8} {'per fsync':>10}")  # fmt: skip
    rows = [
        (f"{row['rate']:,}" + (f" x{row['per_call']}" if row["per_call"] > 1 else ""), row)
        for row in results["latency"]
    ]
    rows += [
        (f"{row['latency_with_engine']['rate']:,} +{impl[:3]}", row["latency_with_engine"])
        for impl, row in results["replay"].items()
    ]
    for label, row in rows:
        print(
            f"  {label:>16} {row['achieved_per_s']:>11,.0f} {row['p50_ms']:>8.3f}"
            f" {row['p99_ms']:>8.3f} {row['p999_ms']:>9.3f} {row['max_ms']:>8.3f}"
            f" {row['mean_batch']:>10.1f}"
        )
    print("  replay through the engine, records/s (engine alone: apply over decoded records):")
    print(f"  {'engine':>12} {'from seq 1':>11} {'snap+tail':>10} {'engine alone':>13}"
          f" {'snap load s':>12} {'recover s':>10} {'open s':>7}")  # fmt: skip
    for impl, row in results["replay"].items():
        tail = row["snapshot_tail"]
        print(
            f"  {impl:>12} {row['full']['records_per_s']:>11,.0f}"
            f" {tail['tail_records_per_s']:>10,.0f} {row['apply_only_per_s']:>13,.0f}"
            f" {tail['snapshot_load_s']:>12.3f} {row['recover_s']:>10.3f} {row['open_s']:>7.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replay", nargs=5,
                        metavar=("ENGINE", "JOURNAL", "SNAPSHOTS", "SEQ", "SECONDS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    arguments = parser.parse_args()
    if arguments.replay:
        kind, journal_dir, snapshot_dir, seq, seconds = arguments.replay
        figures = replay_here(kind, Path(journal_dir), Path(snapshot_dir), int(seq), float(seconds))
        print(json.dumps(figures))
    else:
        run(quick=arguments.quick)


if __name__ == "__main__":
    main()
