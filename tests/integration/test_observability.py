"""Health, readiness, metrics and logs of a real node process.

- A node run with ``--log-format json``: ready, then intents (one request refused) move the
  counters by exactly what was sent, the gauges agree with ``/v1/status``, the journal's
  group commits add up to its records, and every line the node logged is a JSON object.
- A settling node (embedded chain): ready once its settlement service reached the chain;
  batch sizes and the settlement lag show in the metrics.
- SIGTERM with many requests in flight: the node exits 0, and after a restart every seq it
  receipted holds the intent it receipted (the crash test in ``test_crash_recovery.py``
  ends with a SIGTERM under a few concurrent senders; this one keeps dozens in flight).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

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
    intent_digest,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"observability publisher")[-20:]
MARKETS = (("BTC", 5, 10, 10),)  # symbol, sz_decimals, tick, lot
OPERATOR_TOKEN = "observability operator"
TRADERS = tuple(LocalSigner(keccak256(f"observability trader {i}".encode())) for i in range(8))
DEPOSIT = 1_000_000 * 10**6
INDEX = 600_000  # BTC $60,000 in $0.1 units
WAIT = 60.0  # seconds a condition may take before the test fails
JSON_HEADERS = {"Content-Type": "application/json"}

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(node: RunningNode) -> Samples:
    """Every sample of ``GET /metrics`` by (name, labels); the format itself is checked
    strictly in the unit tests."""
    result = node.get("/metrics")
    assert result.status == 200, result.body
    samples: Samples = {}
    for line in result.body.decode().splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match is not None, line
        name, labels, value = match.groups()
        key = (name, frozenset(LABEL.findall(labels or "")))
        assert key not in samples, line
        samples[key] = float(value)
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_applied(node: RunningNode) -> dict[str, Any]:
    def caught_up() -> dict[str, Any] | None:
        status = node.status()
        return status if status["appliedSeq"] == status["lastSeq"] else None

    result: dict[str, Any] = wait_until(caught_up, "the engine to apply every record")
    return result


def place(trader: LocalSigner, nonce: int, is_buy: bool, price: int, size: int) -> Intent:
    return PlaceOrder(
        trader.address, nonce, 0, 0, is_buy, price, size, OrderType.LIMIT, TimeInForce.GTC,
        False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
    )  # fmt: skip


def signed(trader: LocalSigner, intent: Intent) -> dict[str, Any]:
    return signed_intent_to_json(sign_intent(trader, DOMAIN, intent))


def fund(node: RunningNode, traders: tuple[LocalSigner, ...]) -> None:
    commands: list[dict[str, Any]] = [
        {"type": "deposit", "account": "0x" + t.address.hex(), "amount": DEPOSIT, "l1Index": i}
        for i, t in enumerate(traders)
    ]
    commands.append(
        {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0, "price": INDEX}
    )
    node.system(OPERATOR_TOKEN, *commands)


def stderr_of_last_start(launcher: NodeLauncher) -> list[str]:
    text = launcher.stderr_path.read_text(errors="replace")
    return text.split(f"---- start {launcher.starts - 1}\n", 1)[1].splitlines()


# ---------------------------------------------------------------------------------------------


def test_counters_move_by_exactly_what_the_node_did(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    config_path = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    launcher = node_launcher(
        tmp_path / "data", config_path, extra_args=["--log-format", "json"],
        operator_token=OPERATOR_TOKEN,
    )  # fmt: skip
    node = launcher.start()
    assert node.get("/v1/health").status == 200
    ready = node.get("/v1/ready")
    assert (ready.status, ready.json()) == (200, {"ready": True})
    maker, taker = TRADERS[:2]
    fund(node, (maker, taker))
    wait_applied(node)
    before = scrape(node)

    nonce = time.time_ns() // 1_000_000
    requests = [
        signed(maker, place(maker, nonce, True, 599_990, 20)),
        signed(maker, place(maker, nonce + 1, True, 599_900, 30)),
        {"intents": [signed(taker, place(taker, nonce + 2, False, 599_990, 20)),
                     signed(taker, Cancel(taker.address, nonce + 3, 0, 0, 999_999))]},
        signed(taker, Cancel(taker.address, nonce + 4, 0, 0, 999_998)),
    ]  # fmt: skip
    for document in requests:
        result = node.post_json("/v1/intents", document)
        assert result.status == 200, result.body
    intents = 5
    refused = node.request("POST", "/v1/intents", b"{not json", JSON_HEADERS)
    assert refused.status == 400
    status = wait_applied(node)
    after = scrape(node)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("asyncdex_intent_requests_received_total") == len(requests) + 1
    assert moved("asyncdex_intents_acknowledged_total") == intents
    code = refused.json()["code"]
    assert moved("asyncdex_intent_requests_refused_total", code=code) == 1
    assert moved("asyncdex_receipt_latency_seconds_count") == len(requests)
    assert moved("asyncdex_receipt_latency_seconds_bucket", le="+Inf") == len(requests)
    assert moved("asyncdex_receipt_latency_seconds_sum") > 0
    assert moved("asyncdex_records_applied_total") == intents
    assert moved("asyncdex_engine_rejections_total", reason="unknown_order") == 2
    assert moved("asyncdex_trades_total") == 1
    assert moved("asyncdex_fills_total") == 2
    assert sample(after, "asyncdex_last_seq") == status["lastSeq"]
    assert sample(after, "asyncdex_applied_seq") == status["appliedSeq"]
    assert sample(after, "asyncdex_durable_seq") == status["durableSeq"] == status["lastSeq"]
    assert sample(after, "asyncdex_open_orders") == 1
    assert sample(after, "asyncdex_accounts") == 2
    assert sample(after, "asyncdex_protective_mode") == 0
    assert sample(after, "asyncdex_journal_fsync_seconds_count") > 0
    # The writer thread records a commit just after it publishes it: wait for the last one.
    # Every record this process wrote went through one group commit, exactly once.
    wait_until(
        lambda: sample(scrape(node), "asyncdex_journal_group_records_sum") == status["lastSeq"],
        "the group commits to add up to the journal",
    )
    assert node.get("/v1/ready").status == 200

    assert launcher.terminate() == 0
    lines = stderr_of_last_start(launcher)
    logged = [json.loads(line) for line in lines]  # every line: one JSON object
    assert logged, "the node logged nothing"
    for entry in logged:
        assert {"ts", "level", "logger", "msg"} <= set(entry), entry
    assert any(entry["msg"].startswith("recovered") for entry in logged), logged


SETTLING_CONFIG = (
    f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n'
    "[settlement]\ndeploy = true\nfinality_blocks = 2\nblock_time_ms = 200\n\n"
    '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
)


def test_a_settling_node_reports_batches_and_lag(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    config_path = tmp_path / "venue.toml"
    config_path.write_text(SETTLING_CONFIG)
    launcher = node_launcher(
        tmp_path / "data", config_path,
        extra_args=["--batch-interval-ms", "200", "--tick-ms", "50", "--verify-workers", "0"],
    )  # fmt: skip
    node = launcher.start()

    def ready() -> bool:
        result = node.get("/v1/ready")
        if result.status == 503:
            assert result.json()["ready"] is False and result.json()["reasons"], result.body
        return result.status == 200

    wait_until(ready, "the settling node to be ready")

    def committed() -> Samples | None:
        samples = scrape(node)
        present = ("asyncdex_settlement_lag_ms", frozenset({("stage", "committed")}))
        return samples if present in samples else None

    samples = wait_until(committed, "a committed batch in the metrics")
    cut = sample(samples, "asyncdex_settlement_batch_records_count")
    status = node.status()["settlement"]
    assert cut >= 1 and cut <= status["cutBatches"]  # the scrape came first
    batch_records = sample(samples, "asyncdex_settlement_batch_records_sum")
    assert 1 <= batch_records <= sample(samples, "asyncdex_applied_seq")
    assert sample(samples, "asyncdex_settlement_batch_records_bucket", le="+Inf") == cut
    lag_records = sample(samples, "asyncdex_settlement_lag_records", stage="committed")
    assert 0 <= lag_records <= sample(samples, "asyncdex_applied_seq")
    assert sample(samples, "asyncdex_settlement_lag_ms", stage="committed") >= 0
    assert launcher.terminate() == 0


# ---------------------------------------------------------------------------------------------
# SIGTERM with dozens of requests in flight

SENDERS = 48
INTENTS_PER_TRADER = 60
RECEIPTS_BEFORE_SIGTERM = 40


def presign_orders(nonce_base: int) -> list[tuple[bytes, bytes]]:
    """(intent id, body) of resting bids from every trader, far below the index."""
    requests = []
    for index in range(INTENTS_PER_TRADER):
        for trader in TRADERS:
            intent = place(trader, nonce_base + index, True, 500_000 - 10 * index, 40)
            body = json.dumps(signed(trader, intent)).encode()
            requests.append((intent_digest(DOMAIN, intent), body))
    return requests


async def send_all(
    url: str, requests: list[tuple[bytes, bytes]], sigterm: Callable[[], None]
) -> tuple[dict[int, bytes], list[tuple[int, Any]]]:
    """Send from ``SENDERS`` concurrent connections until the node is gone; SIGTERM it (in a
    thread, so sending goes on) once a few receipts are in. Returns seq -> intent id
    receipted, and every answer that was neither a receipt nor ``shutting_down``."""
    pending = iter(requests)
    receipted: dict[int, bytes] = {}
    unexpected: list[tuple[int, Any]] = []
    signalled = threading.Event()
    terminator: asyncio.Future[None] | None = None

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal terminator
        for intent_id, body in pending:
            try:
                async with session.post(
                    url + "/v1/intents", data=body, headers=JSON_HEADERS
                ) as response:
                    status, document = response.status, await response.json()
            except (aiohttp.ClientError, ConnectionError):
                return  # the node closed: nothing more gets in
            if status == 200:
                (receipt,) = document["receipts"]
                assert receipt["intentId"] == "0x" + intent_id.hex()
                assert receipt["seq"] not in receipted, "one seq receipted twice"
                receipted[receipt["seq"]] = intent_id
                if len(receipted) >= RECEIPTS_BEFORE_SIGTERM and not signalled.is_set():
                    signalled.set()
                    terminator = asyncio.ensure_future(asyncio.to_thread(sigterm))
            elif status == 503 and document.get("code") == "shutting_down":
                return
            else:
                unexpected.append((status, document))

    connector = aiohttp.TCPConnector(limit=SENDERS, force_close=False)
    timeout = aiohttp.ClientTimeout(total=WAIT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    assert terminator is not None, "the node was never signalled"
    await terminator
    return receipted, unexpected


def test_sigterm_with_many_requests_in_flight_keeps_every_receipt(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    config_path = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config_path, operator_token=OPERATOR_TOKEN)
    node = launcher.start()
    fund(node, TRADERS)
    requests = presign_orders(time.time_ns() // 1_000_000)
    exit_codes: list[int] = []

    def sigterm() -> None:
        exit_codes.append(launcher.terminate())

    receipted, unexpected = asyncio.run(send_all(node.url, requests, sigterm))
    print(f"SIGTERM under load: {len(receipted)} of {len(requests)} intents receipted")
    assert exit_codes == [0], launcher.stderr_tail()
    assert unexpected == [], unexpected[:3]
    assert len(receipted) >= RECEIPTS_BEFORE_SIGTERM
    assert len(receipted) < len(requests), "the node took everything before it stopped"

    restarted = launcher.start()
    assert restarted.get("/v1/ready").status == 200
    last_seq = restarted.ready["lastSeq"]
    assert max(receipted) <= last_seq
    # the clean stop snapshotted everything: the restart replays nothing
    assert restarted.ready["snapshotSeq"] == last_seq and restarted.ready["replayed"] == 0
    for seq, intent_id in sorted(receipted.items()):
        result = restarted.get(f"/v1/seq/{seq}")
        assert result.status == 200, (seq, result.body)
        record = result.json()
        assert record["intentId"] == "0x" + intent_id.hex(), seq
        assert record["status"] == "executed"
    assert launcher.terminate() == 0
