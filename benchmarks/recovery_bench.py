"""Recovery benchmark: a node's restart over a long journal, on the native core and the
reference (``asyncdex bench recovery``).

The journal: ``RECORDS`` records (10,000,000; 1,000,000 with ``--quick``) of the engine
benchmark's exchange-core mix (9% GTC place, 3% IOC, 6% cancel, 82% move), written with
``encode_record`` to a ``FileJournal`` in 64 MiB segments. Generating that many commands
with a shadow engine would take longer than everything measured, so one copy of the stream
(a tenth of the records) is generated on market 0 and its accounts, and the other nine
copies are the same stream moved to markets 1..9, to accounts of their own, at later times,
with order ids shifted by the ids the copies before them used: each copy meets the same
book and the same margin, as it would alone.

Measured, each through ``asyncdex.sequencer.recovery.recover`` (the node's own start path:
journal open and check, snapshot load, replay of the tail, the state root):
- ``node_cadence``: the last snapshot a node with default settings writes (every 10,000
  records) before the end, the tail after it replayed; native and reference.
- ``tenth_tail``: a snapshot at 90% of the journal, the last tenth replayed; native and
  reference.
- ``native_full_replay``: no snapshot, every record replayed (native only: the reference
  would take minutes).
Both engines must reach the same root. It prints figures and never asserts a duration.
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asyncdex.engine.native import NativeEngine, native_available
from asyncdex.messages.commands import (
    CancelOrder,
    Command,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    PublishOraclePrice,
)
from asyncdex.sequencer.journal import FileJournal, segment_file_name
from asyncdex.sequencer.records import encode_record
from asyncdex.sequencer.recovery import SnapshotStore, recover, replay_segments_natively
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import MAX_COLLATERAL
from benchmarks.engine_bench import MID, PUBLISHER, _address, generate

COPIES = 10  # markets, one copy of the stream each
NODE_SNAPSHOT_EVERY = 10_000  # asyncdex.gateway.node.DEFAULT_SNAPSHOT_EVERY
ACCOUNTS = 1_000  # per copy


def bench_config() -> EngineConfig:
    specs = tuple(
        MarketSpec(m, f"M{m}", sz_decimals=5, tick=1, lot=1, min_order_value=1_000_000)
        for m in range(COPIES)
    )
    return EngineConfig(specs, oracle_publishers=(PUBLISHER,), max_open_orders_per_account=10**7)


def _moved(command: Command, copy: int, id_shift: int) -> Command:
    """``command`` of copy 0 as copy ``copy`` runs it: its market, its accounts, its ids."""
    account = _address(int.from_bytes(command.account, "big") + copy * ACCOUNTS)  # type: ignore[union-attr]
    if type(command) is PlaceOrder:
        return command._replace(account=account, market=copy)
    if type(command) is CancelOrder or type(command) is ModifyOrder:
        return command._replace(account=account, market=copy, order_id=command.order_id + id_shift)
    raise ValueError(f"unexpected command in the stream: {command!r}")


def write_journal(directory: Path, records: int) -> tuple[int, float]:
    """The journal (see the module docstring); returns (records written, seconds taken)."""
    started = time.perf_counter()
    per_copy = records // COPIES
    setup, timed = generate("exchange-core", 1, ACCOUNTS, per_copy, seed=11)
    # copy 0's genesis: its deposits and price; the copies' orders follow
    orders = ([c for c in setup if type(c) is PlaceOrder] + timed)[:per_copy]
    # ids one copy uses: every place is given one, accepted or not (the engine counts them)
    shadow = NativeEngine(bench_config())
    amount = min(10**15, MAX_COLLATERAL // (ACCOUNTS * COPIES))
    genesis: list[Command] = [Deposit(_address(i), amount, i) for i in range(ACCOUNTS * COPIES)]
    genesis += [PublishOraclePrice(PUBLISHER, m, MID) for m in range(COPIES)]
    for command in genesis:
        shadow.apply(command, 0)
    shadow.run_stream(orders, 64)
    id_shift = shadow.state.next_order_id - 1
    journal, _ = FileJournal.open(directory)
    seq = 0
    append = journal.append
    for command in genesis:
        seq += 1
        append(seq, encode_record(0, command))
    clock = 64
    for copy in range(COPIES):
        shift = copy * id_shift
        batch: list[bytes] = []
        for command in orders:
            clock += 1
            moved = command if copy == 0 else _moved(command, copy, shift)
            batch.append(encode_record(clock >> 6, moved))
        journal.append_many(seq + 1, batch)
        seq += len(batch)
        journal.flush()
        print(f"  journal: copy {copy + 1}/{COPIES} written, {seq:,} records", file=sys.stderr)
    journal.close()
    return seq, time.perf_counter() - started


def _timed_recover(
    journal_dir: Path, snapshot_dir: Path | None, config: EngineConfig, engine_kind: str
) -> dict[str, Any]:
    gc.collect()
    started = time.perf_counter()
    recovered = recover(journal_dir, snapshot_dir, config, engine_kind=engine_kind)
    seconds = time.perf_counter() - started
    recovered.journal.close()
    return {
        "engine": recovered.engine.kind,
        "seconds": round(seconds, 3),
        "snapshot_seq": recovered.snapshot_seq,
        "replayed": recovered.replayed,
        "last_seq": recovered.last_seq,
        "records_per_s": round(recovered.last_seq / seconds),
        "tail_records_per_s": round(recovered.replayed / seconds),
        "state_root": "0x" + recovered.state_root.hex(),
    }


def run(quick: bool = False) -> dict[str, Any]:
    if not native_available():
        raise SystemExit("asyncdex bench recovery: the native engine core is not built")
    records = 1_000_000 if quick else 10_000_000
    config = bench_config()
    figures: dict[str, Any] = {"records": records}
    work = Path(tempfile.mkdtemp(prefix="asyncdex-recovery-bench-"))
    try:
        journal_dir = work / "journal"
        written, seconds = write_journal(journal_dir, records)
        figures["records"] = written
        figures["journal_bytes"] = sum(p.stat().st_size for p in journal_dir.iterdir())
        figures["journal_write_s"] = round(seconds, 1)
        print(f"journal: {written:,} records, {figures['journal_bytes']:,} bytes "
              f"in {seconds:.1f} s", file=sys.stderr)  # fmt: skip
        journal, _ = FileJournal.open(journal_dir, verify_all_segments=False)
        firsts = journal.segment_first_seqs
        journal.close()
        segments = [(first, journal_dir / segment_file_name(first)) for first in firsts]
        # two snapshots, at multiples of the node's interval (10,000): the last one before
        # the end (what a node restarting with default settings finds: a tail under 10,000
        # records), and one with a tenth of the journal after it
        cases = {
            "node_cadence": written // NODE_SNAPSHOT_EVERY * NODE_SNAPSHOT_EVERY,
            "tenth_tail": written * 9 // 10 // NODE_SNAPSHOT_EVERY * NODE_SNAPSHOT_EVERY,
        }
        native = NativeEngine(config)
        applied = 0
        for name, snapshot_seq in sorted(cases.items(), key=lambda item: item[1]):
            started = time.perf_counter()
            applied += replay_segments_natively(segments, native, applied + 1, snapshot_seq) or 0
            if applied != snapshot_seq:
                raise RuntimeError("the journal did not replay to the snapshot's seq")
            path = SnapshotStore(work / name).save_engine(snapshot_seq, native)
            figures[f"{name}_snapshot_bytes"] = path.stat().st_size
            figures[f"{name}_snapshot_write_s"] = round(time.perf_counter() - started, 1)
        rows = {
            "native_full_replay": _timed_recover(journal_dir, None, config, "native"),
        }
        for name in cases:
            for kind in ("native", "reference"):
                rows[f"{kind}_{name}"] = _timed_recover(journal_dir, work / name, config, kind)
        if len({row["state_root"] for row in rows.values()}) != 1:
            raise RuntimeError("the engines recovered to different roots")
        figures.update(rows)
        for name in cases:
            figures[f"{name}_native_vs_reference"] = round(
                rows[f"reference_{name}"]["seconds"] / rows[f"native_{name}"]["seconds"], 1
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, row in figures.items():
        if isinstance(row, dict):
            print(f"{name:<28} {row['seconds']:>7.2f} s  snapshot at {row['snapshot_seq']:>10,}  "
                  f"replayed {row['replayed']:>10,}  {row['records_per_s']:>11,} records/s of "
                  f"journal")  # fmt: skip
    for name in ("node_cadence", "tenth_tail"):
        print(f"native vs reference, {name}: {figures[f'{name}_native_vs_reference']}x")
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv)))
