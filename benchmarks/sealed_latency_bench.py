"""Sealed-intent latency: submission to ordered / revealed / executed, sealed against plain, on
4 member processes, quiet or under a background load.

What runs: ``asyncdex committee``'s processes (``CommitteeProcesses``, 4 members on loopback,
``examples/committee.toml``, file journals and member stores with fsync, ``--snapshot-every
0``) with a sealing key from its local DKG and ``--epoch-ms`` sealing epochs. With ``--rate``
the committee bench's venue is set up (1,000 funded traders, an oracle mid kept fresh, the
makers' depth) and its load generator (:mod:`benchmarks.e2e_load`, two processes) sends
``--rate`` plain intents/s for ``--seconds``, spread over the members in turn.

Meanwhile ``--traders`` probe traders (threads, one SDK client each) send orders one at a
time to member 1, alternately plain (``submit``) and sealed (``submit_sealed`` for the epoch
of the client clock, as the SDK picks it, or ``--lead-ms`` ahead), each a resting buy far
below the mid, and poll its status every 5 ms (20 ms under load: the probed member serves
the polls too) until it is executed (a sealed one by its sealed id, which answers
``ordered`` while sealed and the revealed intent's status after), with a random pause inside
an epoch between probes. Per probe: submission to ``ordered`` (``ordered.atMs``, member 1's
clock when it saw the commit of the block ordering it; the same machine's clock as the
client's), submission to executed, and commit to executed: for
a sealed intent that is the ``commit -> revealed`` step (a revealed intent executes in the
same journal write as its reveal, so from outside the two are one moment), for a plain one
the execution lag it is compared with. "added" is sealed minus plain, percentile by
percentile. For sealed probes also their epoch's end to executed: what the protocol takes
once the epoch is over (the closing block's commit, the shares, the execution), apart from
the wait for the epoch's end that the epoch length sets. Probes refused (``epoch_closed`` at the
intake, when the client's epoch ended before the node checked it, or in their block when
it was ordered after its epoch) are counted, not timed. Prints figures and a JSON line;
never asserts a time.

    python -m benchmarks.sealed_latency_bench [--count 20] [--epoch-ms 250] [--json]
    python -m benchmarks.sealed_latency_bench --rate 1000 --seconds 60 --epoch-ms 1000 \
        [--lead-ms 500]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from asyncdex.cli.committee_cmd import CommitteeProcesses, free_port_range
from asyncdex.client import Client, IntakeRefused, StatusTimeout, UnknownIntent, Wallet
from asyncdex.client.status import IntentStatus, Receipt
from benchmarks.committee_bench import (
    CONFIG,
    GENERATORS,
    NODE_ARGS,
    OPEN_BATCH,
    PUBLISHER,
    Api,
    Committee,
    PriceKeeper,
    _specs,
    percentile,
    setup_committee,
)
from benchmarks.e2e_bench import ACCOUNTS, MAKERS, MID, OPERATOR_TOKEN
from benchmarks.e2e_load import GeneratorPool, Phase
from benchmarks.journal_bench import load_average

MEMBERS = 4
PROBED_MEMBER = 1
POLL_S = 0.005
LOADED_POLL_S = 0.02  # under load: polls are requests the probed member serves too
PROBE_TIMEOUT_S = 60.0
STEPS = ("ordered", "executed", "commit_to_executed")


def _probe_trader(api: Api, l1_index: int) -> Wallet:
    """A funded trader of its own (the next L1 message: deposits are taken in order)."""
    wallet = Wallet(random.Random(7 + l1_index).randbytes(32))
    account = "0x" + wallet.address.hex()
    api.system([{"type": "deposit", "account": account, "amount": 10**11, "l1Index": l1_index}])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the deposit executes on the probed member
        if api.call("GET", f"/v1/accounts/{account}")[0] == 200:
            return wallet
        time.sleep(0.1)
    raise RuntimeError("the probe trader's deposit did not execute")


def _follow(
    client: Client, receipt: Receipt, started: float, epoch_end_ms: float | None, poll_s: float
) -> dict[str, Any]:
    """Poll one probe to its end: ms from ``started`` (wall clock, s) to each step."""
    ident = receipt.sealed_id or receipt.intent_id
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    ordered_ms: float | None = None
    while time.monotonic() < deadline:
        try:
            status: IntentStatus | None = client.status(ident)
        except UnknownIntent:
            status = None
        if status is not None:
            if ordered_ms is None and status.ordered is not None:
                ordered_ms = status.ordered["atMs"] - started * 1e3
            if status.sealed_rejection:
                return {"refused": status.sealed_rejection}
            if status.status != "ordered" and status.status != "sequenced":
                executed_ms = (time.time() - started) * 1e3
                if ordered_ms is None:
                    return {"refused": "no ordered step seen"}
                row = {
                    "ordered": ordered_ms,
                    "executed": executed_ms,
                    "commit_to_executed": executed_ms - ordered_ms,
                }
                if epoch_end_ms is not None:
                    row["epoch_end_to_executed"] = started * 1e3 + executed_ms - epoch_end_ms
                return row
        time.sleep(poll_s)
    raise StatusTimeout(f"probe {ident} not executed after {PROBE_TIMEOUT_S} s", last=None)


class Probes:
    """What the probe traders saw: timed rows per kind, refusals by reason."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, float]]] = {"plain": [], "sealed": []}
        self.refused: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, kind: str, outcome: dict[str, Any]) -> None:
        with self.lock:
            if "refused" in outcome:
                key = f"{kind}: {outcome['refused']}"
                self.refused[key] = self.refused.get(key, 0) + 1
            else:
                self.rows[kind].append(outcome)

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"probes": {kind: len(rows) for kind, rows in self.rows.items()}}
        for kind, rows in self.rows.items():
            for step in (*STEPS, "epoch_end_to_executed"):
                values = [row[step] for row in rows if step in row]
                for name, share in (("p50", 0.5), ("p99", 0.99)):
                    value = percentile(values, share)
                    figures[f"{kind}_{step}_{name}_ms"] = None if value is None else round(value, 1)
        for step in STEPS:
            for name in ("p50", "p99"):
                plain = figures[f"plain_{step}_{name}_ms"]
                sealed = figures[f"sealed_{step}_{name}_ms"]
                added = None if plain is None or sealed is None else round(sealed - plain, 1)
                figures[f"added_{step}_{name}_ms"] = added
        figures["refused"] = self.refused
        return figures


def probe(
    probes: Probes,
    url: str,
    wallet: Wallet,
    epoch_ms: int,
    until: float,
    count: int,
    lead_ms: int = 0,
    poll_s: float = POLL_S,
) -> None:
    """Alternate plain and sealed probes until ``count`` of each or the monotonic ``until``;
    a sealed one targets the epoch ``lead_ms`` from now (0: the current one, as the SDK
    does), at most the next one (the intake takes no later)."""
    timed = {"plain": 0, "sealed": 0}
    with Client.connect(url, wallet) as client:
        k = 0
        while time.monotonic() < until and min(timed.values()) < count:
            kind = "sealed" if k % 2 else "plain"
            intent = client.build.place_order("BTC", "buy", "0.001", str(40_000 + k % 1000))
            k += 1
            started = time.time()
            epoch_end_ms = None
            try:
                if kind == "sealed":
                    now_ms = int(started * 1e3)
                    epoch = min((now_ms + lead_ms) // epoch_ms, now_ms // epoch_ms + 1)
                    (receipt,) = client.submit_sealed([intent], epoch=epoch)
                    epoch_end_ms = (epoch + 1) * epoch_ms
                else:
                    (receipt,) = client.submit([intent])
            except IntakeRefused as refusal:
                probes.add(kind, {"refused": f"intake {refusal.code}"})
                continue
            outcome = _follow(client, receipt, started, epoch_end_ms, poll_s)
            probes.add(kind, outcome)
            if "refused" not in outcome:
                timed[kind] += 1
            time.sleep(random.random() * epoch_ms / 1000)  # a random phase in the epoch


def run_probes(
    url: str,
    wallets: list[Wallet],
    epoch_ms: int,
    until: float,
    count: int,
    lead_ms: int,
    poll_s: float,
) -> dict[str, Any]:
    """One thread per probe trader, each alternating plain and sealed probes."""
    probes = Probes()
    threads = [
        threading.Thread(target=probe, args=(probes, url, wallet, epoch_ms, until, count, lead_ms))
        for wallet in wallets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return probes.figures()


def measure(
    count: int, epoch_ms: int, rate: float, seconds: float, lead_ms: int = 0, traders: int = 1
) -> dict[str, Any]:
    base = free_port_range(2 * MEMBERS)
    ports = [base + index for index in range(MEMBERS)]
    figures: dict[str, Any] = {
        "members": MEMBERS, "epoch_ms": epoch_ms, "lead_ms": lead_ms, "rate": rate,
        "probe_traders": traders,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as data:
        workdir = Path(data)
        generators: GeneratorPool | None = None
        if rate > 0:  # sign while the members start
            phase = Phase("background", False, rate / GENERATORS, seconds, OPEN_BATCH, 0,
                          tuple(ports), sampled_requests=0)  # fmt: skip
            generators = GeneratorPool(_specs(ports[0], [phase], rate, True))
        processes = CommitteeProcesses(
            workdir / "committee", CONFIG, MEMBERS, port=base, consensus_port=base + MEMBERS,
            node_args=("--operator-token", OPERATOR_TOKEN, *NODE_ARGS),
            log=(workdir / "members.log").open("w"), sealing_epoch_ms=epoch_ms,
        )  # fmt: skip
        committee = Committee(processes, ports, [Api(port) for port in ports])
        prices: PriceKeeper | None = None
        try:
            processes.start_all()
            if generators is not None:
                setup_committee(committee)
                prices = PriceKeeper(ports)
                generators.wait_signed()
            deposited = ACCOUNTS + MAKERS if generators is not None else 0
            api = committee.apis[PROBED_MEMBER]
            wallets = [_probe_trader(api, deposited + k) for k in range(traders)]
            api.system([{"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(),
                         "market": 0, "price": MID}])  # fmt: skip
            url = processes.url(PROBED_MEMBER)
            figures["load_average_before"] = load_average()
            if generators is None:
                figures.update(run_probes(url, wallets, epoch_ms, 1e18, count, lead_ms, POLL_S))
            else:
                start_at = time.monotonic() + 0.5
                generators.start_phase(start_at)
                # probes from 1 s into the load until it ends, whatever their number
                time.sleep(1.5)
                until = start_at + seconds
                figures.update(
                    run_probes(url, wallets, epoch_ms, until, 10**9, lead_ms, LOADED_POLL_S)
                )
                results = generators.phase_results(seconds + 300)
                acked = sum(result.intents_acked for result in results)
                figures["background_acked_per_s"] = round(acked / seconds)
                generators.join()
            figures["load_average_after"] = load_average()
        finally:
            if prices is not None:
                prices.stop()
            for api in committee.apis:
                api.close()
            processes.stop_all()
    return figures


def report(figures: dict[str, Any]) -> None:
    load = (
        f"{figures['rate']:,.0f} plain intents/s in the background"
        if figures["rate"]
        else ("no other load")
    )
    lead = f", sealed {figures['lead_ms']} ms ahead" if figures["lead_ms"] else ""
    print(f"4 members, sealing epochs of {figures['epoch_ms']} ms{lead}, {load}")
    print(f"  probes timed: {figures['probes']}, refused: {figures['refused'] or 'none'}")
    for step, title in (
        ("ordered", "submission -> ordered"),
        ("executed", "submission -> executed"),
        ("commit_to_executed", "commit -> executed (sealed: commit -> revealed)"),
    ):
        print(f"  {title}")
        for kind in ("plain", "sealed", "added"):
            p50, p99 = figures[f"{kind}_{step}_p50_ms"], figures[f"{kind}_{step}_p99_ms"]
            print(f"    {kind:<7} p50 {p50!s:>8} ms   p99 {p99!s:>8} ms")
    p50, p99 = (
        figures["sealed_epoch_end_to_executed_p50_ms"],
        figures["sealed_epoch_end_to_executed_p99_ms"],
    )
    print(f"  sealed: its epoch's end -> executed   p50 {p50!s:>8} ms   p99 {p99!s:>8} ms")
    if figures["rate"]:
        print(f"  background intents acknowledged: {figures['background_acked_per_s']}/s")
    print(f"  load average {figures['load_average_before']} -> {figures['load_average_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="quiet: probes of each kind")
    parser.add_argument("--epoch-ms", type=int, default=250)
    parser.add_argument("--rate", type=float, default=0.0, help="background intents/s (0: none)")
    parser.add_argument("--seconds", type=float, default=30.0, help="background load duration")
    parser.add_argument(
        "--lead-ms", type=int, default=0,
        help="seal for the epoch this far ahead (at most the next; 0: the SDK's choice)",
    )  # fmt: skip
    parser.add_argument(
        "--traders", type=int, default=1, help="probe traders, each probing in turn"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    figures = measure(
        args.count, args.epoch_ms, args.rate, args.seconds, args.lead_ms, args.traders
    )
    if not args.json:
        report(figures)
    print(json.dumps({"bench": "sealed_latency", **figures}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
