"""What a node answers and does when its journal fails or is found damaged: real node processes.

- A full disk (ENOSPC) and a dying disk (every fsync failing) are injected into the journal's
  writer of a node started through the CLI (the test's bootstrap wraps the module's write and
  sync functions, nothing else). Under concurrent multi-intent requests the node stops with
  exit code 74; after a restart on a healthy disk no intent answered ``journal_failed``
  ("nothing of the request was sequenced") is in the journal, every intent answered
  ``outcome_unknown`` is either in it with the seq the answer named or absent, and every
  acknowledged one is in it. Resending the same bytes then resolves every one of them.
- The other doors name the intents whose outcome is unknown in their own shape: a
  ``/v1/ws`` submit lists them as ``POST /v1/intents`` does, ``/exchange`` names the intent
  and tells the client to resend the same signed action (refused after the restart as a
  spent nonce, since it was journaled).
- A journal that ends below a snapshot's seq (damaged last record, lost last segment) stops
  ``asyncdex node`` with exit code 66 and one line naming the segment, the byte offset and the
  snapshot, leaving the files as they were, unless ``--accept-journal-loss``; damage in the
  middle of the journal stops it with exit code 65 and one line, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from eth_account import Account
from hyperliquid.utils.signing import sign_l1_action

from asyncdex.cli.node_cmd import EXIT_JOURNAL_CORRUPT, EXIT_JOURNAL_LOSS, load_config
from asyncdex.engine.transition import Engine
from asyncdex.gateway.hyperliquid.common import DUPLICATE_NONCE
from asyncdex.gateway.node import EXIT_JOURNAL_FAILED, JOURNAL_SUBDIR, SNAPSHOT_SUBDIR
from asyncdex.messages.commands import Deposit, PublishOraclePrice
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.records import encode_record
from asyncdex.sequencer.recovery import SnapshotStore, snapshot_file_name
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
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
from asyncdex.types.market import EngineConfig

if TYPE_CHECKING:
    from conftest import NodeLauncher

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"journal-fault publisher")[-20:]
MARKETS = (("BTC", 5, 10, 10),)
OPERATOR_TOKEN = "journal-fault operator"
TRADERS = tuple(LocalSigner(keccak256(f"journal-fault trader {i}".encode())) for i in range(4))
DEPOSIT = 1_000_000 * 10**6
PRICE = 600_000
JSON_HEADERS = {"Content-Type": "application/json"}
SENDERS = 6
INTENTS_PER_REQUEST = 4  # several records per request, so a failed batch holds whole records
FAULT_ENV = "ASYNCDEX_TEST_JOURNAL_FAULT"

# Runs `asyncdex node` with the journal's writer wrapped (mode:budget in FAULT_ENV):
# - enospc: the first write once `budget` bytes were written stops one byte short of its end
#   (whole records of the batch reach the file, as on a disk that fills up mid-write), and
#   every later write raises ENOSPC;
# - eio: writes succeed, but from the batch that crosses `budget` on every fsync and truncate
#   fails, as on a disk that died (the bytes stay in the page cache).
FAULTY_NODE = """
import errno, os, sys
from asyncdex.sequencer import journal

mode, budget = os.environ["ASYNCDEX_TEST_JOURNAL_FAULT"].split(":")
left = [int(budget)]
real_write_all, real_sync, real_fsync, real_ftruncate = (
    journal._write_all, journal._sync_file, os.fsync, os.ftruncate
)

def write_all(fd, data):
    if mode == "enospc" and len(data) > left[0]:
        if left[0] > 0:
            real_write_all(fd, data[: len(data) - 1])
        left[0] = 0
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_write_all(fd, data)
    left[0] -= len(data)

def dying(real):
    def call(*args):
        if left[0] <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(*args)
    return call

journal._write_all = write_all
if mode == "eio":
    journal._sync_file = dying(real_sync)
    os.fsync = dying(real_fsync)
    os.ftruncate = dying(real_ftruncate)

from asyncdex.cli.node_cmd import main
sys.exit(main())
"""


def with_fault(launcher: NodeLauncher, fault: str) -> NodeLauncher:
    """The launcher, now starting its node with the journal fault ``fault`` injected."""
    command = launcher.command()
    assert command[1:3] == ["-m", "asyncdex.cli.node_cmd"]
    faulty = [sys.executable, "-c", FAULTY_NODE, *command[3:]]
    launcher.command = lambda: faulty  # type: ignore[method-assign]
    launcher.extra_env[FAULT_ENV] = fault
    return launcher


@pytest.fixture
def venue(tmp_path: Path, venue_config: Callable[..., Path]) -> tuple[Path, Path, EngineConfig]:
    config_path = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    config, _ = load_config(config_path)
    return tmp_path / "data", config_path, config


def order_requests(count: int) -> list[tuple[bytes, list[str]]]:
    """(body, intent ids) of requests of resting orders, each of a few intents."""
    nonce = time.time_ns() // 1_000_000
    requests = []
    for index in range(count):
        signed = []
        for item in range(INTENTS_PER_REQUEST):
            trader = TRADERS[(index + item) % len(TRADERS)]
            nonce += 1
            is_buy = item % 2 == 0
            price = PRICE - 1_000 if is_buy else PRICE + 1_000
            intent = PlaceOrder(
                trader.address, nonce, 0, 0, is_buy, price, 20, OrderType.LIMIT,
                TimeInForce.GTC, False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
            )  # fmt: skip
            signed.append(sign_intent(trader, DOMAIN, intent))
        body = json.dumps({"intents": [signed_intent_to_json(s) for s in signed]}).encode()
        ids = ["0x" + intent_digest(DOMAIN, s.intent).hex() for s in signed]
        requests.append((body, ids))
    return requests


async def send_all(url: str, requests: list[tuple[bytes, list[str]]]) -> list[tuple[int, Any]]:
    """POST every request from concurrent senders; (status, JSON) per request, (0, None) when
    the connection failed (the node stopped)."""
    answers: list[tuple[int, Any]] = [(0, None)] * len(requests)
    queue = list(enumerate(requests))
    timeout = aiohttp.ClientTimeout(total=30)

    async def sender(session: aiohttp.ClientSession) -> None:
        while queue:
            index, (body, _ids) = queue.pop(0)
            try:
                async with session.post(url + "/v1/intents", data=body, headers=JSON_HEADERS) as r:
                    answers[index] = (r.status, json.loads(await r.read()))
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                answers[index] = (0, None)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
    return answers


@pytest.mark.parametrize(("fault", "budget"), [("enospc", 30_000), ("eio", 30_000)])
def test_journal_failure_answers_only_what_is_certain(
    venue: tuple[Path, Path, EngineConfig],
    node_launcher: Callable[..., NodeLauncher],
    fault: str,
    budget: int,
) -> None:
    data_dir, config_path, _config = venue
    healthy = node_launcher(data_dir, config_path, operator_token=OPERATOR_TOKEN)
    node = healthy.start()
    node.system(
        OPERATOR_TOKEN,
        *(
            {"type": "deposit", "account": "0x" + t.address.hex(), "amount": DEPOSIT,
             "l1Index": i}
            for i, t in enumerate(TRADERS)
        ),
        {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0, "price": PRICE},
    )  # fmt: skip
    assert healthy.terminate() == 0, healthy.stderr_tail()

    faulty = with_fault(node_launcher(data_dir, config_path), f"{fault}:{budget}")
    node = faulty.start()
    requests = order_requests(300)
    answers = asyncio.run(send_all(node.url, requests))
    assert node.process.wait(timeout=30) == EXIT_JOURNAL_FAILED, faulty.stderr_tail()

    acknowledged: dict[str, int] = {}  # intent id -> seq
    refused: list[str] = []  # answered journal_failed: must not be in the journal
    unknown: dict[str, int] = {}  # answered outcome_unknown: in the journal at that seq, or absent
    for (status, document), (_body, ids) in zip(answers, requests, strict=True):
        if status == 200:
            acknowledged.update((r["intentId"], r["seq"]) for r in document["receipts"])
        elif status == 503 and document["code"] == "journal_failed":
            refused += ids
        elif status == 503 and document["code"] == "outcome_unknown":
            listed = {item["intentId"]: item["seq"] for item in document["unknown"]}
            assert set(listed) <= set(ids) and listed, document
            unknown.update(listed)
            refused += [i for i in ids if i not in listed]
        else:
            assert status in (0, 503), (status, document)  # unanswered, or shutting down
    assert acknowledged, "the fault struck before any request was acknowledged"
    assert refused or unknown, "the fault never struck"
    if fault == "eio":
        assert unknown, "a batch whose fsync failed and could not be undone is unknown"

    restarted = node_launcher(data_dir, config_path).start()

    def seq_of(intent_id: str) -> int | None:
        result = restarted.get(f"/v1/intents/{intent_id}")
        if result.status == 404:
            assert result.json()["code"] == "unknown_intent"
            return None
        assert result.status == 200, result.body
        seq: int = result.json()["seq"]
        return seq

    for intent_id, seq in acknowledged.items():
        assert seq_of(intent_id) == seq, intent_id
    in_journal = [intent_id for intent_id in refused if seq_of(intent_id) is not None]
    assert in_journal == [], f"{len(in_journal)} intents answered journal_failed are journaled"
    resolved = {intent_id: seq_of(intent_id) for intent_id in unknown}
    for intent_id, found in resolved.items():
        assert found in (None, unknown[intent_id]), (intent_id, found, unknown[intent_id])
    if fault == "eio":
        # the dying disk's last batch stayed whole in the page cache: the restart keeps it
        assert None not in resolved.values(), resolved

    # Resending the same bytes resolves every request: the first receipts of what was
    # journaled, a new sequencing of what was not.
    answers_again = asyncio.run(send_all(restarted.url, requests))
    for (status, document), (_body, ids) in zip(answers_again, requests, strict=True):
        assert status == 200, document
        for receipt, intent_id in zip(document["receipts"], ids, strict=True):
            first = acknowledged.get(intent_id) or resolved.get(intent_id)
            if first is not None:
                assert receipt["seq"] == first, (intent_id, receipt, first)


# ---------------------------------------------------------------------------------------------
# A journal found damaged at start


RECORDS = 40
SEGMENT_BYTES = 400  # a handful of records per segment


def damaged_venue(data_dir: Path, config: EngineConfig) -> list[Path]:
    """A data dir whose journal holds RECORDS deposits in small segments, with snapshots at
    20 and at RECORDS (the last one proves every record was durable); its segment files."""
    journal, _ = FileJournal.open(data_dir / JOURNAL_SUBDIR, segment_bytes=SEGMENT_BYTES)
    engine = Engine(config)
    snapshots = SnapshotStore(data_dir / SNAPSHOT_SUBDIR)
    start = time.time_ns() // 1_000_000
    commands = [PublishOraclePrice(PUBLISHER, 0, PRICE)] + [
        Deposit(TRADERS[seq % len(TRADERS)].address, 10**6 * seq, seq) for seq in range(1, RECORDS)
    ]
    for seq, command in enumerate(commands, start=1):
        journal.append(seq, encode_record(start + seq, command, b""))
        engine.apply(command, start + seq)
        if seq in (20, RECORDS):
            journal.flush()
            snapshots.save(seq, engine.state)
    journal.close()
    segments = sorted((data_dir / JOURNAL_SUBDIR).glob("*.seg"))
    assert len(segments) > 3
    return segments


def run_node(launcher: NodeLauncher, *extra: str) -> subprocess.CompletedProcess[str]:
    """``asyncdex node`` as a process, for a start that must fail."""
    return subprocess.run(
        [*launcher.command(), *extra], capture_output=True, text=True, timeout=60, check=False
    )


def refusal_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("asyncdex node: refusing to start: "), result.stderr
    return lines[-1]


@pytest.mark.parametrize("damage", ["last record", "last segment"])
def test_invalid_journal_behind_a_snapshot_refuses_to_start(
    venue: tuple[Path, Path, EngineConfig],
    node_launcher: Callable[..., NodeLauncher],
    damage: str,
) -> None:
    data_dir, config_path, config = venue
    segments = damaged_venue(data_dir, config)
    last = segments[-1]
    if damage == "last record":
        data = bytearray(last.read_bytes())
        data[-1] ^= 0xFF  # the payload's last byte: a checksum mismatch at the very end
        last.write_bytes(bytes(data))
        segment, kept = last, bytes(data)
    else:
        last.unlink()
        segment, kept = segments[-2], segments[-2].read_bytes()
    launcher = node_launcher(data_dir, config_path)

    result = run_node(launcher)
    assert result.returncode == EXIT_JOURNAL_LOSS, result.stderr
    line = refusal_line(result)
    assert str(segment) in line and "ends at byte" in line, line
    assert snapshot_file_name(RECORDS) in line and f"seq {RECORDS}" in line, line
    assert "--accept-journal-loss" in line
    assert segment.read_bytes() == kept, "the refusal changed the journal"

    # The operator accepts the loss: the node starts from what the journal holds.
    node = node_launcher(data_dir, config_path, extra_args=["--accept-journal-loss"]).start()
    status = node.status()
    assert status["lastSeq"] == status["appliedSeq"] < RECORDS
    assert node.ready["snapshotSeq"] == 20
    lost = data_dir / SNAPSHOT_SUBDIR / ("lost-" + snapshot_file_name(RECORDS))
    assert lost.exists()


def test_invalid_damage_in_the_middle_of_the_journal_refuses_to_start(
    venue: tuple[Path, Path, EngineConfig], node_launcher: Callable[..., NodeLauncher]
) -> None:
    data_dir, config_path, config = venue
    segments = damaged_venue(data_dir, config)
    data = bytearray(segments[1].read_bytes())
    data[-1] ^= 0xFF  # a record followed by whole segments of valid ones
    segments[1].write_bytes(bytes(data))
    launcher = node_launcher(data_dir, config_path)
    for extra in ((), ("--accept-journal-loss",)):  # no flag makes the node guess
        result = run_node(launcher, *extra)
        assert result.returncode == EXIT_JOURNAL_CORRUPT, result.stderr
        line = refusal_line(result)
        assert str(segments[1]) in line and "at byte" in line, line
    assert segments[1].read_bytes() == bytes(data)


# ---------------------------------------------------------------------------------------------
# Every door names the intents whose outcome is unknown


HL_TRADER = Account.from_key(keccak256(b"journal-fault hyperliquid trader"))
HL_INTENT = re.compile(r"intent (0x[0-9a-f]{64}) \(seq (\d+) if journaled\)")


async def ws_submit(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One ``submit`` op on ``/v1/ws``: its ``receipts`` or ``error`` frame."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/v1/ws") as ws:
        await ws.send_json({"op": "submit", "id": 1, **body})
        while True:
            frame = await ws.receive_json(timeout=30)
            if frame.get("id") == 1 and frame["op"] in ("receipts", "error"):
                return dict(frame)


def test_outcome_unknown_on_the_stream_and_hyperliquid_doors(
    venue: tuple[Path, Path, EngineConfig], node_launcher: Callable[..., NodeLauncher]
) -> None:
    # A dying disk from the first write on: the first request's batch reaches the page cache
    # but its fsync fails, so the node cannot say whether it is durable.
    data_dir, config_path, _config = venue
    healthy = node_launcher(data_dir, config_path, operator_token=OPERATOR_TOKEN)
    healthy.start().system(
        OPERATOR_TOKEN,
        *(
            {"type": "deposit", "account": "0x" + t.address.hex(), "amount": DEPOSIT,
             "l1Index": i}
            for i, t in enumerate(TRADERS)
        ),
        {"type": "deposit", "account": HL_TRADER.address, "amount": DEPOSIT,
         "l1Index": len(TRADERS)},
        {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0, "price": PRICE},
    )  # fmt: skip
    assert healthy.terminate() == 0, healthy.stderr_tail()

    faulty = with_fault(node_launcher(data_dir, config_path), "eio:1")
    ((body, ids),) = order_requests(1)
    answer = asyncio.run(ws_submit(faulty.start().url, json.loads(body)))
    assert faulty.node is not None
    assert faulty.node.process.wait(timeout=30) == EXIT_JOURNAL_FAILED, faulty.stderr_tail()
    assert (answer["op"], answer["code"], answer["status"]) == ("error", "outcome_unknown", 503)
    listed = {item["intentId"]: item["seq"] for item in answer["unknown"]}
    assert [item["index"] for item in answer["unknown"]] == list(range(len(ids)))
    assert list(listed) == ids

    nonce = time.time_ns() // 1_000_000
    wire = {
        "a": 0,
        "b": True,
        "p": "59000",
        "s": "0.01",
        "r": False,
        "t": {"limit": {"tif": "Gtc"}},
    }
    action = {"type": "order", "orders": [wire], "grouping": "na"}
    signature = sign_l1_action(HL_TRADER, action, None, nonce, None, False)
    payload = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": None}
    node = faulty.start()
    refused = node.post_json("/exchange", payload)
    assert refused.status == 200 and refused.json()["status"] == "err", refused.body
    text = refused.json()["response"]
    assert "outcome of the action is unknown" in text, text
    assert node.process.wait(timeout=30) == EXIT_JOURNAL_FAILED, faulty.stderr_tail()
    assert text.endswith("resend the same signed action to learn its outcome")
    named = HL_INTENT.search(text)
    assert named is not None, text
    hl_seq = int(named.group(2))

    # The dying disk's batches stayed in the page cache: the restart keeps them, at the
    # seqs the answers named.
    restarted = node_launcher(data_dir, config_path).start()
    for intent_id, seq in listed.items():
        found = restarted.get(f"/v1/intents/{intent_id}")
        assert found.status == 200, (intent_id, found.body)
        assert found.json()["seq"] == seq, (intent_id, found.body)
    assert restarted.status()["lastSeq"] == hl_seq == seq + 1
    # the same signed action again learns its outcome: it ran, its nonce is spent
    again = restarted.post_json("/exchange", payload).json()
    assert again == {"status": "err", "response": DUPLICATE_NONCE}, again
