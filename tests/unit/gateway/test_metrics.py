"""The metrics exposition and readiness, and the journal's group-commit statistics.

Every exposition here is read back by :func:`parse_exposition`, a strict parser of the
Prometheus text format 0.0.4 written for these tests: one HELP and one TYPE line per family
before its samples, well-formed names, labels and values, no duplicate series, counters not
negative, and histogram buckets cumulative in increasing ``le`` order ending in ``+Inf``
equal to ``_count``. A node is a real one, in process, on a temporary journal.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asyncdex.gateway.metrics import CONTENT_TYPE, Exposition, Histogram, Metrics
from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.sequencer.journal import FileJournal, GroupCommitStats, GroupCommitter
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    Cancel,
    Intent,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.types.config_file import parse_engine_config
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig

# ---------------------------------------------------------------------------------------------
# A strict parser of the text exposition format 0.0.4

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
HELP_LINE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_LINE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")
SAMPLE_LINE = re.compile(rf"^({NAME})(\{{.*\}})? (\S+)$")
LABEL = re.compile(rf'({LABEL_NAME})="((?:[^"\\\n]|\\[\\"n])*)"')
VALUE = re.compile(r"^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)$")
HELP_TEXT = re.compile(r"^(?:[^\\\n]|\\[\\n])*$")


class ExpositionError(AssertionError):
    pass


@dataclass
class Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def value(self, suffix: str = "", **labels: str) -> float:
        for name, sample_labels, value in self.samples:
            if name == self.name + suffix and sample_labels == labels:
                return value
        raise KeyError((self.name + suffix, labels))


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def parse_labels(text: str, line: str) -> dict[str, str]:
    inner = text[1:-1]
    labels: dict[str, str] = {}
    position = 0
    while position < len(inner):
        match = LABEL.match(inner, position)
        if match is None:
            raise ExpositionError(f"bad label set: {line!r}")
        name, value = match.group(1), unescape(match.group(2))
        if name in labels:
            raise ExpositionError(f"label {name} twice: {line!r}")
        labels[name] = value
        position = match.end()
        if position < len(inner):
            if inner[position] != "," or position + 1 == len(inner):
                raise ExpositionError(f"bad label separator: {line!r}")
            position += 1
    return labels


def sample_names(family: Family) -> set[str]:
    if family.kind == "histogram":
        return {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return {family.name}


def check_histogram(family: Family) -> None:
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    sums: dict[tuple[tuple[str, str], ...], float] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for name, labels, value in family.samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        if name.endswith("_bucket"):
            if "le" not in labels:
                raise ExpositionError(f"{name}: bucket without le")
            bound = float(labels["le"]) if VALUE.match(labels["le"]) else math.nan
            if math.isnan(bound):
                raise ExpositionError(f"{name}: le={labels['le']!r} is not a number")
            series.setdefault(key, []).append((bound, value))
        elif name.endswith("_sum"):
            sums[key] = value
        else:
            counts[key] = value
    if not series or set(series) != set(sums) or set(series) != set(counts):
        raise ExpositionError(f"{family.name}: buckets, _sum and _count do not match up")
    for key, buckets in series.items():
        bounds = [bound for bound, _ in buckets]
        values = [value for _, value in buckets]
        if bounds != sorted(set(bounds)):
            raise ExpositionError(f"{family.name}: le not strictly increasing: {bounds}")
        if bounds[-1] != math.inf:
            raise ExpositionError(f"{family.name}: the last bucket is not +Inf")
        if values != sorted(values) or values[0] < 0:
            raise ExpositionError(f"{family.name}: buckets not cumulative: {values}")
        if values[-1] != counts[key]:
            raise ExpositionError(f"{family.name}: +Inf bucket {values[-1]} != _count")


def parse_exposition(text: str) -> dict[str, Family]:
    if not text.endswith("\n"):
        raise ExpositionError("the exposition must end with a newline")
    families: dict[str, Family] = {}
    current: Family | None = None
    pending_help: tuple[str, str] | None = None
    seen_series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            match = HELP_LINE.match(line)
            if match is None or HELP_TEXT.match(match.group(2)) is None:
                raise ExpositionError(f"bad HELP line: {line!r}")
            if match.group(1) in families or pending_help is not None:
                raise ExpositionError(f"HELP out of place: {line!r}")
            pending_help = (match.group(1), unescape(match.group(2)))
        elif line.startswith("# TYPE "):
            match = TYPE_LINE.match(line)
            if match is None:
                raise ExpositionError(f"bad TYPE line: {line!r}")
            name, kind = match.groups()
            if pending_help is None or pending_help[0] != name:
                raise ExpositionError(f"TYPE without its HELP just before: {line!r}")
            current = families[name] = Family(name, kind, pending_help[1])
            pending_help = None
        else:
            match = SAMPLE_LINE.match(line)
            if match is None or current is None or pending_help is not None:
                raise ExpositionError(f"not a sample of a declared family: {line!r}")
            name, label_text, value_text = match.groups()
            if name not in sample_names(current):
                raise ExpositionError(f"{name} outside its family {current.name}")
            labels = parse_labels(label_text, line) if label_text else {}
            if VALUE.match(value_text) is None:
                raise ExpositionError(f"bad value: {line!r}")
            value = float(value_text)
            series = (name, tuple(sorted(labels.items())))
            if series in seen_series:
                raise ExpositionError(f"series twice: {line!r}")
            seen_series.add(series)
            if current.kind in ("counter", "histogram") and not value >= 0:
                raise ExpositionError(f"negative or NaN counter: {line!r}")
            current.samples.append((name, labels, value))
    if pending_help is not None:
        raise ExpositionError(f"HELP without TYPE for {pending_help[0]}")
    for family in families.values():
        if family.kind == "histogram":
            check_histogram(family)
    return families


# ---------------------------------------------------------------------------------------------
# The exposition's building blocks


def test_histogram_buckets_are_cumulative_and_end_in_inf() -> None:
    histogram = Histogram((0.001, 0.01, 0.1))
    for value in (0.0005, 0.001, 0.002, 0.05, 0.05, 3.0):
        histogram.observe(value)
    out = Exposition()
    out.histogram("t_seconds", "test", histogram.bounds, histogram.counts, histogram.total)
    family = parse_exposition(out.text())["t_seconds"]
    assert family.kind == "histogram"
    assert [family.value("_bucket", le=le) for le in ("0.001", "0.01", "0.1", "+Inf")] == [
        2,
        3,
        5,
        6,
    ]  # le is inclusive: 0.001 falls in the first bucket
    assert family.value("_count") == 6
    assert family.value("_sum") == pytest.approx(3.1035)


def test_label_values_and_help_are_escaped() -> None:
    nasty = 'a "quoted" back\\slash\nnew line'
    out = Exposition()
    out.family("t_total", "counter", "help with \\ and\nnewline")
    out.sample("t_total", 1, {"code": nasty, "other": ""})
    family = parse_exposition(out.text())["t_total"]
    assert family.help == "help with \\ and\nnewline"
    assert family.value(code=nasty, other="") == 1


def test_the_parser_refuses_malformed_expositions() -> None:
    good = "# HELP x_total x\n# TYPE x_total counter\nx_total 1\n"
    parse_exposition(good)
    for bad in (
        good[:-1],  # no final newline
        "x_total 1\n",  # no HELP/TYPE
        "# TYPE x_total counter\nx_total 1\n",  # TYPE without HELP
        good + "x_total 2\n",  # the same series twice
        good.replace("x_total 1", 'x_total{a="1",} 1'),  # trailing comma
        good.replace("x_total 1", 'x_total{a="\\q"} 1'),  # unknown escape
        good.replace("x_total 1", "x_total 1_000"),  # not a Prometheus number
        good.replace("x_total 1", "x_total -1"),  # negative counter
        good.replace("x_total 1", "y_total 1"),  # outside its family
        "# HELP h h\n# TYPE h histogram\n"
        'h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n',  # not cumulative
        "# HELP h h\n# TYPE h histogram\n"
        'h_bucket{le="1"} 1\nh_bucket{le="2"} 1\nh_sum 0\nh_count 1\n',  # no +Inf
        "# HELP h h\n# TYPE h histogram\n"
        'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0\nh_count 3\n',  # +Inf != count
    ):
        with pytest.raises(ExpositionError):
            parse_exposition(bad)


def test_histogram_refuses_counts_that_do_not_fit_its_bounds() -> None:
    with pytest.raises(ValueError, match="3 bounds need 4 counts"):
        Exposition().histogram("h", "h", (1, 2, 3), [0, 0, 0], 0)
    with pytest.raises(ValueError, match="increase"):
        Histogram((1, 1, 2))


# ---------------------------------------------------------------------------------------------
# The journal's group-commit statistics


def test_group_commit_stats_buckets_are_inclusive_upper_bounds() -> None:
    stats = GroupCommitStats()
    for records in (1, 2, 3, 4, 5, 65_536, 65_537):
        stats.record(records, 0.0)
    # buckets: <=1, <=2, <=4, <=8, ..., <=65536, above
    assert stats.records_counts[:4] == [1, 1, 2, 1]
    assert stats.records_counts[16:] == [1, 1]
    assert sum(stats.records_counts) == 7
    assert stats.records_sum == 1 + 2 + 3 + 4 + 5 + 65_536 + 65_537

    stats = GroupCommitStats()
    for seconds in (0.0001, 0.00011, 0.003, 20.0):
        stats.record(1, seconds)
    bounds = GroupCommitStats.SECONDS_BOUNDS
    assert stats.seconds_counts[0] == 1  # 0.0001 is at the first bound
    assert stats.seconds_counts[1] == 1
    assert stats.seconds_counts[bounds.index(0.005)] == 1
    assert stats.seconds_counts[len(bounds)] == 1  # past the last bound
    assert stats.seconds_sum == pytest.approx(20.00321)


def test_group_committer_records_every_commit(tmp_path: Path) -> None:
    journal, _ = FileJournal.open(tmp_path / "journal")
    try:
        committer = GroupCommitter(journal)
        seq = 0
        for chunk in range(20):
            payloads = [b"record %d.%d" % (chunk, i) for i in range(chunk % 4 + 1)]
            seq = committer.append_many(seq + 1, payloads)
            if chunk % 3 == 0:
                assert committer.wait_durable(seq, timeout=30)
        assert committer.wait_durable(seq, timeout=30)
        committer.close()  # the writer's last commit is recorded before the thread ends
        stats = committer.stats
        assert stats.records_sum == seq == journal.durable_seq
        commits = sum(stats.records_counts)
        assert 1 <= commits <= seq
        assert sum(stats.seconds_counts) == commits
        assert stats.seconds_sum > 0
    finally:
        journal.close()


# ---------------------------------------------------------------------------------------------
# A real node

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"metrics publisher")[-20:]
OPERATOR_TOKEN = "metrics operator"
MAKER = LocalSigner(keccak256(b"metrics maker"))
TAKER = LocalSigner(keccak256(b"metrics taker"))
DEPOSIT = 100_000 * 10**6
INDEX = 600_000  # BTC $60,000 in $0.1 units
SYSTEM_HEADERS = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

EXPECTED_FAMILIES = {
    "asyncdex_intent_requests_received_total": "counter",
    "asyncdex_intent_requests_refused_total": "counter",
    "asyncdex_intents_acknowledged_total": "counter",
    "asyncdex_receipt_latency_seconds": "histogram",
    "asyncdex_records_applied_total": "counter",
    "asyncdex_engine_rejections_total": "counter",
    "asyncdex_trades_total": "counter",
    "asyncdex_fills_total": "counter",
    "asyncdex_last_seq": "gauge",
    "asyncdex_applied_seq": "gauge",
    "asyncdex_durable_seq": "gauge",
    "asyncdex_protective_mode": "gauge",
    "asyncdex_open_orders": "gauge",
    "asyncdex_accounts": "gauge",
    "asyncdex_draining": "gauge",
    "asyncdex_journal_fsync_seconds": "histogram",
    "asyncdex_journal_group_records": "histogram",
    "asyncdex_settlement_lag_records": "gauge",
    "asyncdex_settlement_lag_ms": "gauge",
    "asyncdex_settlement_batch_records": "histogram",
}


def engine_config() -> EngineConfig:
    return parse_engine_config(
        {
            "oracle_publishers": ["0x" + PUBLISHER.hex()],
            "markets": [{"symbol": "BTC", "sz_decimals": 5, "tick": 10, "lot": 10}],
        }
    )


def signed(trader: LocalSigner, intent: Intent) -> dict[str, Any]:
    return signed_intent_to_json(sign_intent(trader, DOMAIN, intent))


def place(trader: LocalSigner, nonce: int, is_buy: bool, price: int, size: int) -> dict[str, Any]:
    return signed(
        trader,
        PlaceOrder(
            trader.address, nonce, 0, 0, is_buy, price, size, OrderType.LIMIT, TimeInForce.GTC,
            False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
        ),
    )  # fmt: skip


async def with_node(tmp_path: Path, body: Callable[[Node, aiohttp.ClientSession], Any]) -> None:
    settings = NodeSettings(
        tmp_path / "data", engine_config(), DOMAIN, operator_token=OPERATOR_TOKEN,
        extensions=(Metrics,),
    )  # fmt: skip
    node = Node(settings)
    await node.start()
    try:
        async with aiohttp.ClientSession() as session:
            await body(node, session)
    finally:
        await node.stop()


async def scrape(node: Node, session: aiohttp.ClientSession) -> dict[str, Family]:
    async with session.get(node.url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE
        return parse_exposition(await response.text())


async def post(
    node: Node, session: aiohttp.ClientSession, path: str, document: Any, **headers: str
) -> tuple[int, Any]:
    async with session.post(node.url + path, json=document, headers=headers) as response:
        return response.status, await response.json()


def test_a_trading_node_exposes_strictly_well_formed_metrics(tmp_path: Path) -> None:
    async def body(node: Node, session: aiohttp.ClientSession) -> None:
        families = await scrape(node, session)
        assert {name: family.kind for name, family in families.items()} == EXPECTED_FAMILIES

        commands = [
            {"type": "deposit", "account": "0x" + trader.address.hex(), "amount": DEPOSIT,
             "l1Index": index}
            for index, trader in enumerate((MAKER, TAKER))
        ] + [{"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0,
              "price": INDEX}]  # fmt: skip
        status, _ = await post(node, session, "/v1/system", {"commands": commands},
                               **SYSTEM_HEADERS)  # fmt: skip
        assert status == 200
        nonce = time.time_ns() // 1_000_000
        requests = [
            place(MAKER, nonce, True, 599_990, 20),
            {"intents": [place(MAKER, nonce + 1, True, 599_900, 30),
                         place(TAKER, nonce + 2, False, 599_990, 20)]},
            signed(TAKER, Cancel(TAKER.address, nonce + 3, 0, 0, 999_999)),  # unknown order
        ]  # fmt: skip
        for document in requests:
            status, answer = await post(node, session, "/v1/intents", document)
            assert status == 200, answer
        status, answer = await post(node, session, "/v1/intents", {"intents": []})
        assert status == 400
        refused_code = answer["code"]
        last = node.last_seq
        await node.wait_applied(last)

        families = await scrape(node, session)
        assert set(families) == set(EXPECTED_FAMILIES)
        value = {name: family.value for name, family in families.items()}
        assert value["asyncdex_intent_requests_received_total"]() == 4
        assert value["asyncdex_intent_requests_refused_total"](code=refused_code) == 1
        assert len(families["asyncdex_intent_requests_refused_total"].samples) == 1
        assert value["asyncdex_intents_acknowledged_total"]() == 4
        assert value["asyncdex_receipt_latency_seconds"]("_count") == 3
        assert value["asyncdex_records_applied_total"]() == last == 7
        assert value["asyncdex_engine_rejections_total"](reason="unknown_order") == 1
        assert value["asyncdex_trades_total"]() == 1
        assert value["asyncdex_fills_total"]() == 2
        assert value["asyncdex_last_seq"]() == value["asyncdex_applied_seq"]() == last
        assert value["asyncdex_durable_seq"]() == last
        assert value["asyncdex_open_orders"]() == 1  # the maker's lower bid rests
        assert value["asyncdex_accounts"]() == 2
        assert value["asyncdex_protective_mode"]() == 0
        assert value["asyncdex_draining"]() == 0
        assert value["asyncdex_journal_fsync_seconds"]("_count") >= 1
        # the writer records a commit just after publishing it: wait for the last one
        deadline = time.monotonic() + 30
        while value["asyncdex_journal_group_records"]("_sum") != last:
            assert time.monotonic() < deadline, "group commits never added up to the journal"
            await asyncio.sleep(0.01)
            value = {name: family.value for name, family in (await scrape(node, session)).items()}
        # no settlement: its gauges have no samples
        assert families["asyncdex_settlement_lag_ms"].samples == []
        assert value["asyncdex_settlement_batch_records"]("_count") == 0

    asyncio.run(with_node(tmp_path, body))


def test_ready_until_the_node_drains(tmp_path: Path) -> None:
    async def body(node: Node, session: aiohttp.ClientSession) -> None:
        async with session.get(node.url + "/v1/ready") as response:
            assert (response.status, await response.json()) == (200, {"ready": True})
        node.request_stop()  # draining from here; ``run`` would now shut the node down
        async with session.get(node.url + "/v1/ready") as response:
            assert response.status == 503
            assert await response.json() == {"ready": False, "reasons": ["draining"]}
        async with session.get(node.url + "/v1/health") as response:
            assert response.status == 503  # liveness is the node's own, unchanged
        families = await scrape(node, session)  # metrics stay readable while draining
        assert families["asyncdex_draining"].value() == 1

    asyncio.run(with_node(tmp_path, body))
