"""Nothing acknowledged is ever lost: a real node process, SIGKILLed at random moments.

The crash test streams pre-signed intents (orders, cancels, modifies from several accounts)
and oracle prices into a node subprocess from concurrent clients, and SIGKILLs the node at
seeded random moments, more than twenty times. After each kill, with the node down:

- the journal holds seqs 1..N with no gap, and every record durable before is unchanged;
- every seq the clients received a receipt for is in it, holding exactly the command and
  signature that were sent, with the receipt's timestamp; no seq was receipted twice;

and after each restart the node's recovered state root (snapshot + journal tail) equals the
root of a clean replay of the whole journal on a fresh engine, and acknowledged requests sent
again byte for byte (the retry the docs recommend) are answered with their first receipts:
same intent ids, seqs and timestamps, nothing sequenced again. Finally a SIGTERM exits 0
and leaves a snapshot at the last seq, from which recovery replays nothing.

The second test sends bad requests of every kind to a running node and checks that each is
refused with its status and code, and that none of them moved the journal.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from asyncdex.cli.node_cmd import load_config
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.gateway.node import JOURNAL_SUBDIR, SNAPSHOT_SUBDIR
from asyncdex.messages.commands import Command, Deposit, PublishOraclePrice
from asyncdex.messages.events import Event
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.records import Record, decode_record
from asyncdex.sequencer.recovery import recover
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intake import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INTENTS
from asyncdex.signing.intents import (
    ALL_MARKETS,
    NO_CLIENT_ID,
    Cancel,
    CancelAll,
    CancelByClientId,
    Intent,
    Modify,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    Withdraw,
    asyncdex_domain,
    intent_digest,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.signing.mapping import envelope
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

SEED = 20_261_124
KILLS = 22
SNAPSHOT_EVERY = 50  # small, so most restarts recover from a snapshot plus a tail
WORKERS = 4
PRESIGNED_INTENTS = 20_000
RESUBMITTED_PER_RESTART = 12  # half the newest acknowledged requests, half older ones

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"crash-test publisher")[-20:]
MARKETS = (("BTC", 5, 10, 10), ("ETH", 4, 1, 10))  # symbol, sz_decimals, tick, lot
TICK = tuple(market[2] for market in MARKETS)
LOT = tuple(market[3] for market in MARKETS)
OPERATOR_TOKEN = "crash-test operator"
BASE_PRICES = (600_000, 300_000)  # BTC $60,000 in $0.1; ETH $3,000 in $0.01
MIN_LOTS = (2, 4)  # smallest order above the $10 minimum value at the base price
TRADERS = tuple(LocalSigner(keccak256(f"crash-test trader {i}".encode())) for i in range(6))
DEPOSIT = 100_000 * 10**6  # micro-USDC each
JSON_HEADERS = {"Content-Type": "application/json"}
SYSTEM_HEADERS = {**JSON_HEADERS, "Authorization": f"Bearer {OPERATOR_TOKEN}"}
CONNECTION_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


@dataclass(frozen=True)
class Sent:
    """What a journal record acknowledged for this submission must hold."""

    command: Command
    signature: bytes


@dataclass(frozen=True)
class IntentRequest:
    body: bytes
    expected: tuple[tuple[bytes, Sent], ...]  # (intent id, sent), in request order


# ---------------------------------------------------------------------------------------------
# Workload


def presign(
    rng: random.Random, count: int, nonce_base: int, config: EngineConfig
) -> list[IntentRequest]:
    """Valid signed intents of several kinds from several traders, in batches of 1-5.

    A shadow engine runs the stream in the order it is made, so that some modifies can aim at
    orders that will likely be resting when they arrive (uniform guesses hit a live order of
    their own account and market about once in 700: too rarely for a modify to succeed in
    every run)."""
    nonces = {trader.address: nonce_base for trader in TRADERS}
    client_ids: dict[bytes, list[bytes]] = {trader.address: [] for trader in TRADERS}
    placed = 0
    shadow = Engine(config)
    for index, trader in enumerate(TRADERS):
        shadow.apply(Deposit(trader.address, DEPOSIT, index), nonce_base)
    for market, base in enumerate(BASE_PRICES):
        shadow.apply(PublishOraclePrice(PUBLISHER, market, base), nonce_base)

    def next_intent() -> tuple[LocalSigner, Intent]:
        nonlocal placed
        trader = rng.choice(TRADERS)
        account = trader.address
        nonces[account] += 1
        nonce = nonces[account]
        market = rng.randrange(len(MARKETS))
        price = BASE_PRICES[market] + rng.randint(-20, 20) * TICK[market]
        size = LOT[market] * rng.randint(MIN_LOTS[market], MIN_LOTS[market] * 4)
        # Order ids are global and sequential in the engine; guessing from the count placed
        # hits live orders, other accounts' orders and dead ones, all deterministic outcomes.
        order_id = rng.randint(1, max(1, placed))
        roll = rng.random()
        stake = shadow.state.accounts[account].positions.get(market)
        if 0.72 <= roll < 0.85 and stake is not None and stake.orders and rng.random() < 0.5:
            order_id = rng.choice(sorted(stake.orders))
        if roll < 0.55 or placed == 0:
            placed += 1
            # Low 8 bytes only: the journal holds client ids up to 2**64 - 1 for now, and the
            # intake refuses wider ones (test_intake.test_invalid_client_id_above_64_bits).
            client_id = bytes(8) + rng.randbytes(8) if rng.random() < 0.5 else NO_CLIENT_ID
            if client_id != NO_CLIENT_ID:
                client_ids[account].append(client_id)
            tif = rng.choices([TimeInForce.GTC, TimeInForce.IOC, TimeInForce.ALO], [7, 2, 1])[0]
            return trader, PlaceOrder(
                account, nonce, 0, market, rng.random() < 0.5, price, size,
                OrderType.LIMIT, tif, False, client_id, 0, 0, TriggerKind.NONE,
            )  # fmt: skip
        if roll < 0.72:
            return trader, Cancel(account, nonce, 0, market, order_id)
        if roll < 0.85:
            return trader, Modify(account, nonce, 0, market, order_id, price, size)
        if roll < 0.95 and client_ids[account]:
            cid = rng.choice(client_ids[account])
            return trader, CancelByClientId(account, nonce, 0, market, cid)
        return trader, CancelAll(account, nonce, 0, rng.choice([market, ALL_MARKETS]))

    requests = []
    made = 0
    while made < count:
        batch = []
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            trader, intent = next_intent()
            signed = sign_intent(trader, DOMAIN, intent)
            shadow.apply(envelope(signed), nonce_base + made + len(batch))
            batch.append(signed)
        made += len(batch)
        document: Any = (
            signed_intent_to_json(batch[0])
            if len(batch) == 1
            else {"intents": [signed_intent_to_json(s) for s in batch]}
        )
        expected = tuple(
            (intent_digest(DOMAIN, s.intent), Sent(envelope(s), s.signature)) for s in batch
        )
        requests.append(IntentRequest(json.dumps(document).encode(), expected))
    return requests


def oracle_commands(rng: random.Random) -> list[Command]:
    return [
        PublishOraclePrice(PUBLISHER, market, base + rng.randint(-5, 5) * TICK[market])
        for market, base in enumerate(BASE_PRICES)
    ]


def system_json(command: Command) -> dict[str, Any]:
    if isinstance(command, Deposit):
        return {"type": "deposit", "account": "0x" + command.account.hex(),
                "amount": command.amount, "l1Index": command.l1_index}  # fmt: skip
    assert isinstance(command, PublishOraclePrice)
    return {"type": "oraclePrice", "publisher": "0x" + command.publisher.hex(),
            "market": command.market, "price": command.price}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The client: concurrent senders that record every receipt


@dataclass
class Client:
    requests: Iterator[IntentRequest]
    oracle_rng: random.Random
    acked: dict[int, tuple[Sent, int]] = field(default_factory=dict)  # seq -> (sent, timestamp)
    # (body, receipts) of each acknowledged POST /v1/intents, in the order answered
    answered: list[tuple[bytes, list[dict[str, Any]]]] = field(default_factory=list)
    unanswered: int = 0  # connection lost or 503: may or may not be in the journal
    unexpected: list[tuple[int, bytes]] = field(default_factory=list)
    url: str = ""
    session: aiohttp.ClientSession | None = None
    in_flight: int = 0
    stopped: bool = False

    def __post_init__(self) -> None:
        self.up = asyncio.Event()

    def record(
        self, receipts: list[dict[str, Any]], expected: list[tuple[bytes | None, Sent]]
    ) -> None:
        assert len(receipts) == len(expected), (receipts, expected)
        for receipt, (intent_id, sent) in zip(receipts, expected, strict=True):
            got_id = receipt["intentId"]
            assert got_id == (None if intent_id is None else "0x" + intent_id.hex())
            seq = receipt["seq"]
            assert seq not in self.acked, f"seq {seq} receipted twice"
            self.acked[seq] = (sent, receipt["timestamp"])

    async def post(
        self, path: str, body: bytes, headers: dict[str, str], expected: list[Any]
    ) -> None:
        session = self.session
        if session is None or not self.up.is_set():
            return  # paused after this sender woke up: never sent, so nothing to account for
        self.in_flight += 1
        try:
            async with session.post(self.url + path, data=body, headers=headers) as resp:
                status, payload = resp.status, await resp.read()
        except CONNECTION_ERRORS:
            self.unanswered += 1
            await asyncio.sleep(0.01)  # the node is down or draining: do not spin
            return
        finally:
            self.in_flight -= 1
        if status == 200:
            receipts = json.loads(payload)["receipts"]
            self.record(receipts, expected)
            if path == "/v1/intents":
                self.answered.append((body, receipts))
        elif status == 503:
            self.unanswered += 1
        else:
            self.unexpected.append((status, payload))

    async def intent_worker(self) -> None:
        while not self.stopped:
            await self.up.wait()
            request = next(self.requests, None)
            if request is None:
                await asyncio.sleep(0.01)
                continue
            await self.post("/v1/intents", request.body, JSON_HEADERS, list(request.expected))

    async def oracle_worker(self) -> None:
        while not self.stopped:
            await self.up.wait()
            commands = oracle_commands(self.oracle_rng)
            body = json.dumps({"commands": [system_json(c) for c in commands]}).encode()
            await self.post(
                "/v1/system", body, SYSTEM_HEADERS, [(None, Sent(c, b"")) for c in commands]
            )
            await asyncio.sleep(0.05)

    def resume(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.up.set()

    async def pause(self) -> None:
        """Stop sending and wait until every request in flight has its outcome."""
        self.up.clear()
        while self.in_flight:
            await asyncio.sleep(0.005)
        if self.session is not None:
            await self.session.close()
            self.session = None


# ---------------------------------------------------------------------------------------------
# Checks


def read_journal(journal_dir: Path) -> list[tuple[int, Record]]:
    """Every durable record (opening cuts a torn tail, as the node's recovery does)."""
    journal, _ = FileJournal.open(journal_dir)
    try:
        return [(seq, decode_record(payload)) for seq, payload in journal.read()]
    finally:
        journal.close()


def replay_root(
    config: EngineConfig, records: list[tuple[int, Record]]
) -> tuple[bytes, Counter[str]]:
    """The root of a clean replay on a fresh engine, and the events it produced by type."""
    engine = Engine(config)
    events: Counter[str] = Counter()
    for _, record in records:
        produced: list[Event] = engine.apply(record.command, record.timestamp)
        events.update(type(event).__name__ for event in produced)
    return state_root(engine.state), events


def check_acknowledged(
    records: list[tuple[int, Record]],
    previous: list[tuple[int, Record]],
    acked: dict[int, tuple[Sent, int]],
) -> None:
    assert [seq for seq, _ in records] == list(range(1, len(records) + 1)), "gap in the journal"
    assert records[: len(previous)] == previous, "a durable record changed or vanished"
    for seq, (sent, timestamp) in sorted(acked.items()):
        assert seq <= len(records), f"acknowledged seq {seq} lost (journal ends at {len(records)})"
        record = records[seq - 1][1]
        assert record.command == sent.command, f"seq {seq} holds another command"
        assert record.signature == sent.signature, f"seq {seq} holds another signature"
        assert record.timestamp == timestamp, f"seq {seq} has another timestamp"


def check_recovered(node: RunningNode, records: list[tuple[int, Record]], root: bytes) -> None:
    assert node.ready["lastSeq"] == len(records)
    assert node.ready["stateRoot"] == "0x" + root.hex(), "snapshot + tail != full replay"
    status = node.status()
    assert status["lastSeq"] == status["durableSeq"] == status["appliedSeq"] == len(records)
    assert status["stateRoot"] == "0x" + root.hex()


async def deposit_all(url: str, client: Client) -> None:
    """Fund every trader before any intent is sent."""
    deposits = [Deposit(t.address, DEPOSIT, i) for i, t in enumerate(TRADERS)]
    body = json.dumps({"commands": [system_json(d) for d in deposits]}).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/system", data=body, headers=SYSTEM_HEADERS) as response,
    ):
        assert response.status == 200, await response.read()
        receipts = (await response.json())["receipts"]
    client.record(receipts, [(None, Sent(d, b"")) for d in deposits])


async def resubmit_acknowledged(url: str, client: Client, rng: random.Random) -> int:
    """Send acknowledged requests again, byte for byte: each must be answered with its first
    receipts (a client's retry after a restart). Returns how many were sent."""
    answered = client.answered
    newest = answered[-(RESUBMITTED_PER_RESTART // 2) :]
    older = answered[: len(answered) - len(newest)]
    chosen = rng.sample(older, min(len(older), RESUBMITTED_PER_RESTART - len(newest))) + newest
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for body, receipts in chosen:
            async with session.post(url + "/v1/intents", data=body, headers=JSON_HEADERS) as resp:
                payload = await resp.read()
                assert resp.status == 200, f"retry of an acknowledged request: {payload!r}"
                assert json.loads(payload)["receipts"] == receipts, "not the first receipts"
    return len(chosen)


def raise_worker_failure(workers: list[asyncio.Task[None]]) -> None:
    """Re-raise a failed check from a sender task (a task's exception is otherwise lost)."""
    for worker in workers:
        if worker.done() and not worker.cancelled() and worker.exception() is not None:
            raise AssertionError("a client task failed") from worker.exception()


# ---------------------------------------------------------------------------------------------
# The crash test


@pytest.fixture
def venue(tmp_path: Path, venue_config: Callable[..., Path]) -> tuple[Path, Path, EngineConfig]:
    """(data dir, config file, engine config) of the test venue."""
    config_path = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    config, _ = load_config(config_path)
    return tmp_path / "data", config_path, config


@pytest.mark.slow
def test_acknowledged_intents_survive_sigkill(
    venue: tuple[Path, Path, EngineConfig], node_launcher: Callable[..., NodeLauncher]
) -> None:
    data_dir, config_path, config = venue
    launcher = node_launcher(
        data_dir,
        config_path,
        extra_args=["--snapshot-every", str(SNAPSHOT_EVERY)],
        operator_token=OPERATOR_TOKEN,
    )
    rng = random.Random(SEED)
    requests = presign(rng, PRESIGNED_INTENTS, time.time_ns() // 1_000_000, config)
    asyncio.run(crash_loop(launcher, data_dir, config, requests, rng))


async def crash_loop(
    launcher: NodeLauncher,
    data_dir: Path,
    config: EngineConfig,
    requests: list[IntentRequest],
    rng: random.Random,
) -> None:
    client = Client(iter(requests), random.Random(SEED + 1))
    workers = [asyncio.create_task(client.intent_worker()) for _ in range(WORKERS)]
    workers.append(asyncio.create_task(client.oracle_worker()))
    records: list[tuple[int, Record]] = []
    root, _ = replay_root(config, records)
    progress_cycles = 0
    tail_recoveries = 0
    resubmitted = 0
    try:
        for cycle in range(KILLS + 1):
            node = await asyncio.to_thread(launcher.start)
            check_recovered(node, records, root)
            resubmitted += await resubmit_acknowledged(
                node.url, client, random.Random(SEED + 2 + cycle)
            )
            # the retries were answered from the index: the journal did not move
            assert node.status()["lastSeq"] == len(records)
            if node.ready["snapshotSeq"] > 0 and node.ready["replayed"] > 0:
                tail_recoveries += 1
            if cycle == 0:
                await deposit_all(node.url, client)
            acked_before = len(client.acked)
            client.resume(node.url)
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            # In a thread, so the senders keep going while the node dies or drains.
            if cycle < KILLS:
                await asyncio.to_thread(launcher.kill)
            else:
                exit_code = await asyncio.to_thread(launcher.terminate)
                assert exit_code == 0, launcher.stderr_tail()
            await client.pause()
            progress_cycles += len(client.acked) > acked_before

            previous, records = records, read_journal(data_dir / JOURNAL_SUBDIR)
            check_acknowledged(records, previous, client.acked)
            root, events = replay_root(config, records)
            raise_worker_failure(workers)
    finally:
        client.stopped = True
        client.up.set()
        await client.pause()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    raise_worker_failure(workers)

    print(
        f"crash test: {launcher.starts} starts, {len(records)} records, "
        f"{len(client.acked)} receipts, {client.unanswered} requests unanswered, "
        f"{resubmitted} acknowledged requests resent after restarts, "
        f"{progress_cycles} cycles with new receipts, {tail_recoveries} snapshot+tail "
        f"recoveries, events {dict(events.most_common(8))}"
    )
    assert client.unexpected == [], client.unexpected[:3]
    # The checks above only mean something if the node acknowledged a real workload.
    intents_acked = sum(1 for sent, _ in client.acked.values() if sent.signature)
    assert intents_acked >= 200, f"only {intents_acked} intents acknowledged"
    assert progress_cycles >= KILLS // 2, f"only {progress_cycles} cycles made progress"
    assert tail_recoveries >= 1, "no restart recovered from a snapshot plus a journal tail"
    assert resubmitted >= KILLS * RESUBMITTED_PER_RESTART // 2, resubmitted
    assert events["TradeExecuted"] > 0 and events["OrderRested"] > 0, events
    assert events["OrderCancelled"] > 0 and events["OrderModified"] > 0, events

    # The clean shutdown left a snapshot at the last seq: recovery replays nothing, and
    # matches a clean replay (verify=True replays from seq 1 and compares the roots).
    recovered = recover(data_dir / JOURNAL_SUBDIR, data_dir / SNAPSHOT_SUBDIR, config, verify=True)
    try:
        assert recovered.snapshot_seq == recovered.last_seq == len(records)
        assert recovered.replayed == 0
        assert recovered.state_root == root
    finally:
        recovered.journal.close()


# ---------------------------------------------------------------------------------------------
# Bad input never reaches the journal


def signed_json(intent: Intent, trader: LocalSigner = TRADERS[0]) -> dict[str, Any]:
    return signed_intent_to_json(sign_intent(trader, DOMAIN, intent))


def test_bad_requests_leave_the_journal_untouched(
    venue: tuple[Path, Path, EngineConfig], node_launcher: Callable[..., NodeLauncher]
) -> None:
    data_dir, config_path, _config = venue
    launcher = node_launcher(data_dir, config_path, operator_token=OPERATOR_TOKEN)
    node = launcher.start()
    trader = TRADERS[0].address
    nonce = time.time_ns() // 1_000_000
    setup = node.post_json(
        "/v1/system",
        {"commands": [system_json(Deposit(trader, DEPOSIT, 0)),
                      *(system_json(c) for c in oracle_commands(random.Random(1)))]},
        OPERATOR_TOKEN,
    )  # fmt: skip
    assert setup.status == 200, setup.body
    order = PlaceOrder(trader, nonce, 0, 0, True, BASE_PRICES[0] - 100, 20, OrderType.LIMIT,
                       TimeInForce.GTC, False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE)  # fmt: skip
    good = node.post_json("/v1/intents", signed_json(order))
    assert good.status == 200, good.body
    last_seq = node.status()["lastSeq"]
    assert last_seq == 4

    cancel = Cancel(trader, nonce + 1, 0, 0, 1)
    good_cancel = signed_json(cancel)
    signature = bytes.fromhex(good_cancel["signature"][2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (
        signature[:32]
        + (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big")
        + bytes((55 - signature[64],))
    )
    missing = dict(good_cancel)
    del missing["orderId"]
    elsewhere = signed_json(Withdraw(trader, nonce + 2, 0, 10**6, TRADERS[1].address))

    def with_sig(sig: bytes) -> bytes:
        return json.dumps({**good_cancel, "signature": "0x" + sig.hex()}).encode()

    def as_body(document: Any) -> bytes:
        return json.dumps(document).encode()

    oversize = as_body(good_cancel) + b" " * DEFAULT_MAX_BODY_BYTES
    cases: list[tuple[str, str, bytes, dict[str, str], bool, int, str]] = [
        # (name, path, body, headers, chunked, status, code)
        ("malformed JSON", "/v1/intents", b'{"kind": ', JSON_HEADERS, False, 400, "malformed_body"),
        ("malleable s", "/v1/intents", with_sig(high_s), JSON_HEADERS, False, 400,
         "malleable_signature"),
        ("short signature", "/v1/intents", with_sig(signature[:64]), JSON_HEADERS, False, 400,
         "signature_length"),
        ("recovery id 29", "/v1/intents", with_sig(signature[:64] + b"\x1d"), JSON_HEADERS,
         False, 400, "invalid_recovery_id"),
        ("unknown field", "/v1/intents", as_body({**good_cancel, "memo": "x"}), JSON_HEADERS,
         False, 400, "unknown_field"),
        ("missing field", "/v1/intents", as_body(missing), JSON_HEADERS, False, 400,
         "missing_field"),
        ("out of range", "/v1/intents", as_body({**good_cancel, "market": 2**32}), JSON_HEADERS,
         False, 400, "invalid_field"),
        ("oversize", "/v1/intents", oversize, JSON_HEADERS, False, 413, "body_too_large"),
        ("oversize chunked", "/v1/intents", oversize, JSON_HEADERS, True, 413, "body_too_large"),
        ("too many", "/v1/intents", as_body({"intents": [good_cancel] * (DEFAULT_MAX_INTENTS + 1)}),
         JSON_HEADERS, False, 400, "too_many_intents"),
        ("withdraw elsewhere", "/v1/intents", as_body(elsewhere), JSON_HEADERS, False, 400,
         "unsupported_intent"),
        ("good then bad", "/v1/intents", as_body({"intents": [good_cancel, missing]}),
         JSON_HEADERS, False, 400, "missing_field"),
        ("media type", "/v1/intents", as_body(good_cancel), {"Content-Type": "text/plain"},
         False, 415, "unsupported_media_type"),
        ("system without token", "/v1/system", as_body({"commands": [{"type": "advanceTime"}]}),
         JSON_HEADERS, False, 401, "unauthorized"),
        ("system wrong token", "/v1/system", as_body({"commands": [{"type": "advanceTime"}]}),
         {**JSON_HEADERS, "Authorization": "Bearer nope"}, False, 401, "unauthorized"),
        ("system bad command", "/v1/system", as_body({"commands": [{"type": "mint"}]}),
         SYSTEM_HEADERS, False, 400, "invalid_system_command"),
    ]  # fmt: skip
    for name, path, body, headers, chunked, status, code in cases:
        result = node.request("POST", path, body, headers, chunked=chunked)
        assert (result.status, result.json().get("code")) == (status, code), (name, result.body)
        assert "error" in result.json(), name
    status = node.status()
    assert (status["lastSeq"], status["durableSeq"]) == (last_seq, last_seq)

    # A signature under another domain is well formed but recovers to a stranger to the
    # account; replaying an acknowledged nonce in a new intent, or a passed deadline, is
    # refused the same way: the engine's own authorization check, run before sequencing.
    foreign = signed_intent_to_json(
        sign_intent(TRADERS[0], asyncdex_domain(1, DOMAIN.verifying_contract), cancel)
    )
    refused = node.post_json("/v1/intents", foreign)
    assert (refused.status, refused.json().get("code")) == (400, "unknown_agent"), refused.body
    expired = signed_intent_to_json(
        sign_intent(TRADERS[0], DOMAIN, cancel._replace(nonce=cancel.nonce + 7, expires_after=1))
    )
    refused = node.post_json("/v1/intents", expired)
    assert (refused.status, refused.json().get("code")) == (400, "intent_expired"), refused.body
    status = node.status()
    assert (status["lastSeq"], status["durableSeq"]) == (last_seq, last_seq)
    assert launcher.terminate() == 0, launcher.stderr_tail()
    assert len(read_journal(data_dir / JOURNAL_SUBDIR)) == last_seq
