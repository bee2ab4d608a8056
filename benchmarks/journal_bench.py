"""Journal benchmark: durable throughput, receipt latency under paced load, replay speed.

Everything runs in this process against real files with fsync on, in a fresh temporary
directory (on the file system of ``$TMPDIR``; point it at the disk the journal will use).

- Durable throughput: one thread appends 200-byte payloads as fast as it can while the
  group committer writes and fsyncs; records / seconds until the last one is durable.
  Measured twice: a plain thread (synchronous API) and an asyncio loop that also asks for a
  durability future per record, as the sequencer does.
- Receipt latency: an asyncio generator offers records at a fixed rate (1k, 10k, 20k, 50k
  per second) and stamps each append; latency is append -> the durability callback running
  on the loop. asyncio sleeps are at best ~1 ms, so at high rates records arrive in bursts of
  about rate / 1000, as they would from a busy network socket.
- Replay: reading every record back through ``FileJournal.read`` (checksums verified).

Prints a table and returns the figures; never asserts a time. Run:
``python -m benchmarks.journal_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from asyncdex.sequencer.journal import DEFAULT_MAX_DELAY, FileJournal, GroupCommitter

PAYLOAD_BYTES = 200
LOADS = (1_000, 10_000, 20_000, 50_000)


def _payload() -> bytes:
    return os.urandom(PAYLOAD_BYTES)


def measure_device_fsync(directory: Path, seconds: float) -> dict[str, float]:
    """Bare ``write`` + fdatasync of one 4 KiB block, back to back: the floor under latency.

    The journal's latency cannot beat this; on shared or throttled disks it moves a lot from
    one minute to the next, so it is measured in the same run.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = bytes(4096)
    sync = getattr(os, "fdatasync", os.fsync)
    samples = []
    try:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            os.write(fd, block)
            sync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
    samples.sort()
    return {
        "fsyncs_per_s": len(samples) / seconds,
        "p50_ms": samples[len(samples) // 2] * 1e3,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1e3,
        "max_ms": samples[-1] * 1e3,
    }


def measure_sync_throughput(directory: Path, records: int, max_delay: float) -> dict[str, float]:
    journal, _ = FileJournal.open(directory)
    payload = _payload()
    with GroupCommitter(journal, max_delay=max_delay):
        base = journal.last_seq
        append = journal.append
        start = time.perf_counter()
        for seq in range(base + 1, base + records + 1):
            append(seq, payload)
        journal.wait_durable(base + records)
        elapsed = time.perf_counter() - start
    journal.close()
    return {
        "records": records,
        "seconds": elapsed,
        "records_per_s": records / elapsed,
        "mb_per_s": records * (PAYLOAD_BYTES + 16) / elapsed / 1e6,
        "fsyncs": journal.stats.batches,
        "mean_batch": records / max(journal.stats.batches, 1),
    }


def measure_async_throughput(directory: Path, records: int, max_delay: float) -> dict[str, float]:
    journal, _ = FileJournal.open(directory)
    payload = _payload()

    async def produce() -> float:
        committer = GroupCommitter(journal, max_delay=max_delay)
        waiter = committer.async_waiter()
        base = journal.last_seq
        append = journal.append
        wait_durable = waiter.wait_durable
        outstanding: list[asyncio.Future[None]] = []
        start = time.perf_counter()
        last: asyncio.Future[None] | None = None
        for seq in range(base + 1, base + records + 1):
            append(seq, payload)
            future = wait_durable(seq)
            if future is not last:
                outstanding.append(future)
                last = future
            if seq % 512 == 0:
                await asyncio.sleep(0)  # let receipts go out, as a real sequencer loop would
        await asyncio.gather(*outstanding)
        elapsed = time.perf_counter() - start
        waiter.close()
        committer.close()
        return elapsed

    elapsed = asyncio.run(produce())
    journal.close()
    return {"records": records, "seconds": elapsed, "records_per_s": records / elapsed}


def measure_latency(
    directory: Path, rate: int, seconds: float, max_delay: float
) -> dict[str, float]:
    journal, _ = FileJournal.open(directory)
    payload = _payload()
    total = int(rate * seconds)
    appended_at = array("d", bytes(8 * total))
    latencies = array("d")

    def on_group_durable(first: int, end: int) -> None:
        now = time.perf_counter()
        record = latencies.append
        for index in range(first, end):
            record(now - appended_at[index])

    async def generate() -> None:
        committer = GroupCommitter(journal, max_delay=max_delay)
        waiter = committer.async_waiter()
        base = journal.last_seq
        issued = 0
        start = time.perf_counter()
        while issued < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            group_future: asyncio.Future[None] | None = None
            group_first = issued
            while issued < due:
                seq = base + issued + 1
                appended_at[issued] = time.perf_counter()
                journal.append(seq, payload)
                future = waiter.wait_durable(seq)
                if future is not group_future:
                    if group_future is not None:
                        _when_done(group_future, on_group_durable, group_first, issued)
                    group_future = future
                    group_first = issued
                issued += 1
            if group_future is not None:
                _when_done(group_future, on_group_durable, group_first, issued)
            next_due = start + issued / rate
            await asyncio.sleep(max(0.0, next_due - time.perf_counter()))
        # Futures are not kept (a sequencer would not keep them either): poll for the end.
        while len(latencies) < total:
            await asyncio.sleep(0.001)
        waiter.close()
        committer.close()

    asyncio.run(generate())
    journal.close()
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e3

    return {
        "rate": rate,
        "records": len(ordered),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "p999_ms": percentile(0.999),
        "max_ms": ordered[-1] * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3,
        "mean_batch": len(ordered) / max(journal.stats.batches, 1),
        # Power-of-two buckets: an upper bound, enough to see whether the disk stalled.
        "fsync_p50_ms_max": journal.stats.fsync_percentile(0.50) * 1e3,
        "fsync_p99_ms_max": journal.stats.fsync_percentile(0.99) * 1e3,
        "fsync_max_ms": journal.stats.fsync_seconds_max * 1e3,
    }


def _when_done(future: asyncio.Future[None], callback: Any, first: int, end: int) -> None:
    future.add_done_callback(lambda _future: callback(first, end))


def measure_replay(directory: Path) -> dict[str, float]:
    journal, report = FileJournal.open(directory)
    start = time.perf_counter()
    count = 0
    for _seq, _payload_bytes in journal.read():
        count += 1
    elapsed = time.perf_counter() - start
    journal.close()
    return {
        "records": count,
        "seconds": elapsed,
        "records_per_s": count / elapsed,
        "segments": report.segments,
    }


def run(quick: bool = False, max_delay: float = DEFAULT_MAX_DELAY) -> dict[str, Any]:
    """Measure and print; ``quick`` cuts the record counts and durations about threefold."""
    # Latency runs first: the throughput runs write hundreds of MB, which on throttled
    # (cloud, VM) disks slows every fsync for a while afterwards.
    records = 200_000 if quick else 600_000
    seconds = 1.0 if quick else 4.0
    results: dict[str, Any] = {
        "payload_bytes": PAYLOAD_BYTES,
        "max_delay_s": max_delay,
        "cpus": os.cpu_count(),
        "load_average_before": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="asyncdex-journal-bench-") as tmp:
        root = Path(tmp)
        results["device"] = measure_device_fsync(root / "probe", 0.5 if quick else 1.0)
        results["latency"] = {
            rate: measure_latency(root / f"latency-{rate}", rate, seconds, max_delay)
            for rate in LOADS
        }
        results["throughput_sync"] = measure_sync_throughput(root / "sync", records, max_delay)
        results["throughput_asyncio"] = measure_async_throughput(root / "async", records, max_delay)
        results["replay"] = measure_replay(root / "sync")
    results["load_average_after"] = load_average()
    _print_table(results)
    return results


def load_average() -> float | None:
    """Other processes on the machine skew every figure here; the table says how busy it was."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _format_load(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _print_table(results: dict[str, Any]) -> None:
    sync = results["throughput_sync"]
    asyncio_run = results["throughput_asyncio"]
    replay = results["replay"]
    device = results["device"]
    print(
        f"journal benchmark: {results['payload_bytes']}-byte payloads, fsync on, "
        f"max_delay {results['max_delay_s'] * 1e6:.0f} us, {results['cpus']} CPUs, "
        f"load average {_format_load(results['load_average_before'])} -> "
        f"{_format_load(results['load_average_after'])}"
    )
    print(
        f"  device: bare 4 KiB write+fdatasync p50 {device['p50_ms']:.3f} ms, "
        f"p99 {device['p99_ms']:.3f} ms, max {device['max_ms']:.3f} ms"
    )
    print(
        f"  durable throughput (thread)   {sync['records_per_s']:>12,.0f} records/s"
        f"  ({sync['mb_per_s']:.1f} MB/s, {sync['mean_batch']:.0f} records per fsync)"
    )
    print(f"  durable throughput (asyncio)  {asyncio_run['records_per_s']:>12,.0f} records/s")
    print(f"  replay (read, verified)       {replay['records_per_s']:>12,.0f} records/s")
    print("  receipt latency, append -> durability callback on the loop:")
    print(
        f"  {'offered/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}"
        f" {'per fsync':>10}   {'fsync p99 <':>11} {'fsync max':>9}"
    )
    for rate, row in results["latency"].items():
        print(
            f"  {rate:>10,} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['p999_ms']:>9.3f}"
            f" {row['max_ms']:>8.3f} {row['mean_batch']:>10.1f}"
            f"   {row['fsync_p99_ms_max']:>11.3f} {row['fsync_max_ms']:>9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-delay-us", type=float, default=DEFAULT_MAX_DELAY * 1e6)
    arguments = parser.parse_args()
    run(quick=arguments.quick, max_delay=arguments.max_delay_us / 1e6)


if __name__ == "__main__":
    main()
