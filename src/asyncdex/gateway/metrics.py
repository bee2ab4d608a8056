"""Prometheus metrics (``GET /metrics``) and readiness (``GET /v1/ready``).

Invariants:

- ``GET /metrics`` answers the Prometheus text exposition format 0.0.4: every family has one
  ``# HELP`` and one ``# TYPE`` line before its samples, label values are escaped (``\\``,
  ``"``, newline), and every histogram's buckets are cumulative, in increasing ``le`` order,
  end with ``le="+Inf"`` and that bucket equals ``_count``. Counters never go down while
  the process lives; they start at zero with it (Prometheus handles the reset).
- Scraping reads memory only (the engine state, the journal's counters, the settlement
  service's status); it never touches the chain or the disk, and never changes the node.
- The counters cost the hot path next to nothing: one middleware step per request that
  returns at once for every route but ``POST /v1/intents``, and one listener call per
  applied record. The journal's group-commit histograms are kept by its writer thread
  (:class:`~asyncdex.sequencer.journal.GroupCommitStats`) and only read here.
- ``asyncdex_receipt_latency_seconds`` measures ``POST /v1/intents`` from the moment the
  handler is called (headers read) to the moment its receipts are ready to send, which is
  after the journal reported them durable: answered requests (200) only.
- ``GET /v1/ready`` is 200 ``{"ready": true}`` only when the node recovered, accepts
  intents (not draining, journal not failed) and, when it settles, its settlement service
  reached the chain and has not halted; else 503 ``{"ready": false, "reasons": [...]}``.
  ``GET /v1/health`` (the node's) stays the liveness probe.

The node's counters of intents cover its native door (``POST /v1/intents``); other doors
(the Hyperliquid API, streams) show in ``asyncdex_records_applied_total`` like every record.
"""

from __future__ import annotations

import bisect
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asyncdex.messages.events import Event, Rejected, TradeExecuted
from asyncdex.messages.reasons import Reject
from asyncdex.sequencer.journal import GroupCommitStats
from asyncdex.sequencer.sequencer import Sequenced

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INTENTS_PATH = "/v1/intents"
STAGES = ("committed", "finalized")

# Seconds: receipts wait for one fsync, so most fall between a tenth of a millisecond and a
# few tens of milliseconds; the upper buckets show stalls.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_RECORDS_BOUNDS: tuple[int, ...] = tuple(4**power for power in range(10))  # 1 .. 262144

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ---------------------------------------------------------------------------------------------
# Exposition format


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers exactly, floats by ``repr`` (round-trips), infinities and
    NaN spelled as Prometheus reads them."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def format_labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


class Exposition:
    """Lines of one exposition, family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.lines.append(f"{name}{format_labels(labels or {})} {format_value(value)}")

    def scalar(self, name: str, kind: str, help_text: str, value: float) -> None:
        self.family(name, kind, help_text)
        self.sample(name, value)

    def histogram(
        self,
        name: str,
        help_text: str,
        bounds: Sequence[float],
        counts: Sequence[int],
        total: float,
    ) -> None:
        """``counts[i]``: observations in bucket ``i`` alone (``<= bounds[i]``, above the
        bound before), ``counts[len(bounds)]`` those above the last bound."""
        if len(counts) != len(bounds) + 1:
            raise ValueError(f"{name}: {len(bounds)} bounds need {len(bounds) + 1} counts")
        self.family(name, "histogram", help_text)
        cumulative = 0
        for bound, count in zip(bounds, counts, strict=False):
            cumulative += count
            self.sample(f"{name}_bucket", cumulative, {"le": format_value(bound)})
        cumulative += counts[-1]
        self.sample(f"{name}_bucket", cumulative, {"le": "+Inf"})
        self.sample(f"{name}_sum", total)
        self.sample(f"{name}_count", cumulative)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Histogram:
    """Observations kept on the event loop: per-bucket counts and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must increase strictly")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)
        self.total: float = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


# ---------------------------------------------------------------------------------------------
# The extension


def reject_name(reason: int) -> str:
    try:
        return Reject(reason).name.lower()
    except ValueError:
        return str(reason)


class Metrics:
    """The metrics and readiness endpoints of one node (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.intent_requests_received = 0
        self.intent_requests_refused: dict[str, int] = {}  # error code -> requests
        self.intents_acknowledged = 0
        self.receipt_latency = Histogram(LATENCY_BOUNDS)
        self.records_applied = 0
        self.rejections: dict[int, int] = {}  # reject reason -> records
        self.trades = 0
        self.settlement_batches = Histogram(BATCH_RECORDS_BOUNDS)
        self._batches_seen = 0  # cut batches already in ``settlement_batches``
        node.add_listener(self._on_applied)

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def count_intents(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method != "POST" or request.path != INTENTS_PATH:
                return await handler(request)
            return await self._count_intents(request, handler)

        app.middlewares.append(count_intents)
        app.router.add_get("/metrics", self.handle_metrics)
        app.router.add_get("/v1/ready", self.handle_ready)

    async def close(self) -> None:
        pass  # nothing long-lived: every scrape is one short request

    # ----------------------------------------------------------------- counting

    def _on_applied(self, record: Sequenced, events: list[Event]) -> None:
        self.records_applied += 1
        for event in events:
            if type(event) is TradeExecuted:
                self.trades += 1
            elif type(event) is Rejected:
                reason = event.reason
                self.rejections[reason] = self.rejections.get(reason, 0) + 1

    async def _count_intents(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        self.intent_requests_received += 1
        try:
            response = await handler(request)
        except web.HTTPException as error:
            self._count_refused(f"http_{error.status}")
            raise
        except Exception:
            self._count_refused("internal_error")
            raise
        if response.status == 200:
            self.receipt_latency.observe(time.perf_counter() - started)
            self.intents_acknowledged += _receipts_in(response)
        else:
            self._count_refused(_error_code(response))
        return response

    def _count_refused(self, code: str) -> None:
        self.intent_requests_refused[code] = self.intent_requests_refused.get(code, 0) + 1

    # ----------------------------------------------------------------- readiness

    def not_ready_reasons(self) -> list[str]:
        node = self.node
        reasons = []
        if node.recovered is None:
            reasons.append("recovering")
        if node.draining:
            reasons.append("draining")
        journal = node.journal
        if journal is None:
            reasons.append("journal_closed")
        elif journal.failure is not None:
            reasons.append("journal_failed")
        settlement = node.settlement
        if settlement is not None:
            if settlement.client is None:
                reasons.append("settlement_not_connected")
            if settlement.halted:
                reasons.append("settlement_halted")
        return reasons

    async def handle_ready(self, request: web.Request) -> web.Response:
        reasons = self.not_ready_reasons()
        if reasons:
            return web.json_response({"ready": False, "reasons": reasons}, status=503)
        return web.json_response({"ready": True})

    # ----------------------------------------------------------------- exposition

    async def handle_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.exposition().encode(), headers={"Content-Type": CONTENT_TYPE})

    def exposition(self) -> str:
        out = Exposition()
        self._intake_metrics(out)
        self._engine_metrics(out)
        self._journal_metrics(out)
        self._settlement_metrics(out)
        return out.text()

    def _intake_metrics(self, out: Exposition) -> None:
        out.scalar(
            "asyncdex_intent_requests_received_total",
            "counter",
            "POST /v1/intents requests received (each carries one or more intents).",
            self.intent_requests_received,
        )
        out.family(
            "asyncdex_intent_requests_refused_total",
            "counter",
            "POST /v1/intents requests refused, by error code; nothing in them was sequenced.",
        )
        for code, count in sorted(self.intent_requests_refused.items()):
            out.sample("asyncdex_intent_requests_refused_total", count, {"code": code})
        out.scalar(
            "asyncdex_intents_acknowledged_total",
            "counter",
            "Intents POST /v1/intents answered with a durable receipt.",
            self.intents_acknowledged,
        )
        latency = self.receipt_latency
        out.histogram(
            "asyncdex_receipt_latency_seconds",
            "POST /v1/intents, from the request to its durable receipts (answered requests).",
            latency.bounds,
            list(latency.counts),
            latency.total,
        )

    def _engine_metrics(self, out: Exposition) -> None:
        node = self.node
        state = node.state
        out.scalar(
            "asyncdex_records_applied_total",
            "counter",
            "Journal records the engine applied since the process started (replay excluded).",
            self.records_applied,
        )
        out.family(
            "asyncdex_engine_rejections_total",
            "counter",
            "Commands the engine rejected, by reason.",
        )
        for reason, count in sorted(self.rejections.items()):
            labels = {"reason": reject_name(reason)}
            out.sample("asyncdex_engine_rejections_total", count, labels)
        out.scalar(
            "asyncdex_trades_total", "counter", "Trades executed (each fills two orders).",
            self.trades,
        )  # fmt: skip
        out.scalar(
            "asyncdex_fills_total", "counter", "Order fills (two per trade).", 2 * self.trades
        )
        out.scalar("asyncdex_last_seq", "gauge", "Last seq handed out.", node.last_seq)
        out.scalar(
            "asyncdex_applied_seq", "gauge", "Last seq the engine applied.", node.applied_seq
        )
        out.scalar(
            "asyncdex_protective_mode",
            "gauge",
            "1 while the engine is in protective mode, else 0.",
            int(state.protective),
        )
        out.scalar(
            "asyncdex_open_orders", "gauge", "Live orders (resting or armed triggers).",
            len(state.orders),
        )  # fmt: skip
        out.scalar("asyncdex_accounts", "gauge", "Accounts the engine knows.", len(state.accounts))
        out.scalar(
            "asyncdex_draining", "gauge", "1 once shutdown began, else 0.", int(node.draining)
        )

    def _journal_metrics(self, out: Exposition) -> None:
        journal = self.node.journal
        out.family("asyncdex_durable_seq", "gauge", "Last seq fsync'd to the journal.")
        if journal is not None:
            out.sample("asyncdex_durable_seq", journal.durable_seq)
        stats = self._commit_stats()
        if stats is None:
            stats = GroupCommitStats()  # the journal is closed: no commits to show
        # Copies first: the writer thread may be recording a commit meanwhile.
        seconds_counts, records_counts = list(stats.seconds_counts), list(stats.records_counts)
        out.histogram(
            "asyncdex_journal_fsync_seconds",
            "Time to write and fsync one group commit of the journal.",
            stats.SECONDS_BOUNDS,
            seconds_counts,
            stats.seconds_sum,
        )
        out.histogram(
            "asyncdex_journal_group_records",
            "Records per group commit of the journal.",
            stats.RECORDS_BOUNDS,
            records_counts,
            stats.records_sum,
        )

    def _commit_stats(self) -> GroupCommitStats | None:
        committer = self.node.committer
        return None if committer is None else committer.stats

    def _settlement_metrics(self, out: Exposition) -> None:
        settlement = self.node.settlement
        status: dict[str, Any] | None = None
        if settlement is not None and settlement.batcher is not None:
            status = settlement.status_json()
            batches = settlement.batcher.batches
            for span in batches[self._batches_seen :]:
                self.settlement_batches.observe(span.last_seq - span.first_seq + 1)
            self._batches_seen = len(batches)
        lag = {} if status is None else status["lag"]
        out.family(
            "asyncdex_settlement_lag_records",
            "gauge",
            "Records applied after the newest committed (finalized) one; absent without "
            "settlement.",
        )
        for stage in STAGES:
            records = lag.get(f"{stage}Records")
            if records is not None:
                out.sample("asyncdex_settlement_lag_records", records, {"stage": stage})
        out.family(
            "asyncdex_settlement_lag_ms",
            "gauge",
            "Sequenced milliseconds between the newest applied record and the newest committed "
            "(finalized) one; absent until a batch reached that stage.",
        )
        for stage in STAGES:
            ms = lag.get(f"{stage}Ms")
            if ms is not None:
                out.sample("asyncdex_settlement_lag_ms", ms, {"stage": stage})
        histogram = self.settlement_batches
        out.histogram(
            "asyncdex_settlement_batch_records",
            "Records per settlement batch cut since the process started (replay included).",
            histogram.bounds,
            list(histogram.counts),
            histogram.total,
        )


def _receipts_in(response: web.StreamResponse) -> int:
    """Receipts in an answer of ``POST /v1/intents``: one ``"seq"`` key per receipt in the
    body the node wrote (counted without decoding the JSON)."""
    body = getattr(response, "body", None)
    return body.count(b'"seq"') if isinstance(body, bytes) else 0


def _error_code(response: web.StreamResponse) -> str:
    """The ``code`` of an error answer (``{"error", "code", ...}``), else ``http_<status>``."""
    body = getattr(response, "body", None)
    if isinstance(body, bytes):
        try:
            code = json.loads(body).get("code")
        except (ValueError, AttributeError):
            code = None
        if isinstance(code, str) and code:
            return code
    return f"http_{response.status}"
