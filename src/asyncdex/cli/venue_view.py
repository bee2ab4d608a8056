"""The demo's live terminal view of a running venue, read through the node's public API.

Invariants:

- Everything shown about the venue comes from the node's HTTP API (``/v1/markets``, the
  book and trades of each market, ``/v1/status``), as any client would see it; the
  client-side figures (intents/s, receipt latency) come from :class:`ClientMetrics`, which the
  traders fill as they get receipts.
- On a terminal the view redraws in place (ANSI: cursor home, clear); otherwise it writes one
  plain status line per refresh, so logs and pipes stay readable.
- Reading the view never changes the venue: GET requests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

CLEAR = "\x1b[H\x1b[2J"
BOOK_DEPTH = 3
TRADES_SHOWN = 4


@dataclass
class ClientMetrics:
    """What the traders measured: receipts and their latency, refusals by code."""

    started: float = field(default_factory=time.perf_counter)
    intents: int = 0  # intents acknowledged (durable receipts)
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    refusals: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # moments worth a line, shown as they happen
    stopped: float | None = None  # when trading stopped (then the venue settles what is left)

    def elapsed(self) -> float:
        """Seconds of trading so far: the clock stops with the trading."""
        end = time.perf_counter() if self.stopped is None else self.stopped
        return end - self.started

    def note(self, text: str) -> None:
        self.notes.append(f"t {self.elapsed():.1f} s: {text}")

    def rate(self, elapsed: float) -> str:
        """Intents acknowledged per second so far (none in the first half second: too few)."""
        return "-" if elapsed < 0.5 else f"{self.intents / elapsed:,.0f}/s"

    def receipt(self, seconds: float, intents: int) -> None:
        self.latencies.append(seconds)
        self.intents += intents

    def refused(self, code: str) -> None:
        self.refusals[code] += 1

    def percentile_ms(self, fraction: float, since: int = 0) -> float | None:
        sample = sorted(self.latencies[since:])
        if not sample:
            return None
        return sample[min(len(sample) - 1, int(fraction * len(sample)))] * 1000


@dataclass
class VenueSnapshot:
    markets: list[dict[str, Any]]
    books: dict[str, dict[str, Any]]
    trades: dict[str, list[dict[str, Any]]]
    status: dict[str, Any]


async def read_snapshot(http: aiohttp.ClientSession, url: str) -> VenueSnapshot:
    async def get(path: str) -> Any:
        async with http.get(url + path) as response:
            response.raise_for_status()
            return await response.json()

    markets = (await get("/v1/markets"))["markets"]
    books, trades = {}, {}
    for market in markets:
        symbol = market["symbol"]
        books[symbol] = await get(f"/v1/markets/{symbol}/book?depth={BOOK_DEPTH}")
        trades[symbol] = (await get(f"/v1/markets/{symbol}/trades?limit={TRADES_SHOWN}"))["trades"]
    return VenueSnapshot(markets, books, trades, await get("/v1/status"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _lag(value: int | None) -> str:
    return "-" if value is None else f"{value / 1000:,.1f} s"


def settlement_line(status: dict[str, Any]) -> str:
    settlement = status.get("settlement")
    if not settlement:
        return "settlement off"
    lag = settlement["lag"]
    return (
        f"batches cut {settlement['cutBatches']}  committed {settlement['lastCommittedBatch']}"
        f"  finalized {settlement['lastFinalizedBatch']}"
        f"  lag committed {_lag(lag['committedMs'])} finalized {_lag(lag['finalizedMs'])}"
    )


def render(
    snapshot: VenueSnapshot, metrics: ClientMetrics, elapsed: float, duration: float
) -> list[str]:
    """The full-screen view, as lines."""
    status = snapshot.status
    phase = "trading" if metrics.stopped is None else "settling the last batch"
    lines = [
        f"asyncdex demo  {phase}  t {elapsed:5.1f}/{duration:g} s  seq {status['appliedSeq']:,}"
        f"  root {status['stateRoot'][:18]}…",
        f"intents {metrics.intents:,} ({metrics.rate(elapsed)})  receipt latency p50 "
        f"{_ms(metrics.percentile_ms(0.5))}  p99 {_ms(metrics.percentile_ms(0.99))}"
        + (f"  refused {dict(metrics.refusals)}" if metrics.refusals else ""),
        settlement_line(status) + ("  PROTECTIVE MODE" if status.get("protectiveMode") else ""),
        *metrics.notes[-4:],
        "",
    ]
    for market in snapshot.markets:
        symbol = market["symbol"]
        book = snapshot.books[symbol]
        lines.append(
            f"{symbol:<5} index {market['indexPrice'] or '-':>10}  mark "
            f"{market['markPrice'] or '-':>10}"
        )
        asks = list(reversed(book["asks"]))
        for level in asks:
            lines.append(f"        ask {level['price']:>10} {level['size']:>10}")
        if not asks and not book["bids"]:
            lines.append("        (empty book)")
        for level in book["bids"]:
            lines.append(f"        bid {level['price']:>10} {level['size']:>10}")
        for trade in snapshot.trades[symbol]:
            lines.append(
                f"        trade {trade['side']:<4} {trade['size']:>10} @ {trade['price']:>10}"
                f"  seq {trade['seq']}"
            )
        lines.append("")
    return lines


def status_line(
    snapshot: VenueSnapshot, metrics: ClientMetrics, elapsed: float, duration: float
) -> str:
    """The one-line form, for output that is not a terminal."""
    prices = "  ".join(
        f"{m['symbol']} {m['indexPrice'] or '-'} {m['bestBid'] or '-'}/{m['bestAsk'] or '-'}"
        for m in snapshot.markets
    )
    return (
        f"t {elapsed:5.1f}/{duration:g}s  {prices}  intents {metrics.intents:,}"
        f" ({metrics.rate(elapsed)})"
        f"  p50 {_ms(metrics.percentile_ms(0.5))} p99 {_ms(metrics.percentile_ms(0.99))}  "
        + settlement_line(snapshot.status)
    )


class VenueView:
    """Redraws every ``interval`` seconds until stopped."""

    def __init__(
        self,
        url: str,
        metrics: ClientMetrics,
        duration: float,
        out: TextIO,
        *,
        tty: bool | None = None,
    ) -> None:
        self.url = url
        self.metrics = metrics
        self.duration = duration
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.interval = 0.5 if self.tty else 1.0
        self.last: VenueSnapshot | None = None
        self._notes_shown = 0

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.draw(await read_snapshot(http, self.url))
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"(view: {type(exc).__name__}: {exc})", file=self.out, flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    def draw(self, snapshot: VenueSnapshot) -> None:
        self.last = snapshot
        elapsed = self.metrics.elapsed()
        if self.tty:
            lines = render(snapshot, self.metrics, elapsed, self.duration)
            self.out.write(CLEAR + "\n".join(lines) + "\n")
        else:
            for note in self.metrics.notes[self._notes_shown :]:
                self.out.write(note + "\n")
            self._notes_shown = len(self.metrics.notes)
            self.out.write(status_line(snapshot, self.metrics, elapsed, self.duration) + "\n")
        self.out.flush()
