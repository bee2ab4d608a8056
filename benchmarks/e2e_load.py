"""Load generator process for ``benchmarks.e2e_bench``: pre-signed intents over HTTP keep-alive.

Invariants:
- Every intent is built and signed before any timed phase starts, each with its own
  signature by its own account key: the timed loop only sends bytes and reads answers, so
  the figures measure the node (and the loopback), not the signing.
- The stream stays valid under load, in any interleaving of requests: intents travel in
  units of two from one account, always in one request and in order (a request is
  sequenced as a whole, in order). A resting unit places a GTC order 20% away from the
  mid, out of reach of any other order, and cancels it by client id; a crossing unit buys
  IOC 1% above the mid and sells IOC 1% below, against the makers' depth, so the taker
  stays flat. Nonces per account rise by one per intent; client ids are unique per account.
- Open loop: request ``i`` of a phase is due at ``start + i * interval``, whatever happened
  to earlier ones; its latency runs from that due time, not from when it actually left, so
  a late generator or a slow node shows in the figures instead of hiding (no coordinated
  omission). At most ``OPEN_LOOP_CONNECTIONS`` requests are in flight per process; a due
  request that waits for a connection has that wait in its latency.
- Closed loop (the maximum): each connection sends its next request as soon as the
  previous one is answered; latency runs from the send. With ``Phase.unexecuted_window``
  (a committee, where a receipt comes long before execution) a connection also waits while
  more than that many of the process's acknowledged intents are not executed yet, reading
  the node's applied seq from ``GET /metrics`` every ``METRICS_EVERY_S`` (its share: the
  records executed since the phase began, divided by ``Phase.generators``).
- A request counts as acknowledged only with HTTP 200 and one receipt per intent, each with
  a seq; anything else is counted as an error with its code and never as throughput. On a
  committee member (``GeneratorSpec.committee``) a receipt's seq is 0 (durable on that member,
  the seq comes when its block executes): there a receipt counts with its intent id, and the
  sampled requests keep their ids, the member they went to and the wall-clock time they were
  due, so the bench can read back when each was ordered.
- A phase may spread its requests over several ports (``Phase.ports``, the members of a
  committee): request ``i`` of an open loop, and closed-loop connection ``i``, go to port
  ``i mod len(ports)``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from queue import Empty
from typing import Any

import msgpack

from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    CancelByClientId,
    Intent,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    encode_signed_intent,
    sign_intent,
)
from asyncdex.types.hashing import keccak256

MARKET = 0
ORDER_SIZE = 100  # 0.001 BTC in 10^-5 BTC: $60 at the mid, above the $10 minimum
CROSSING_EVERY = 10  # one unit in ten trades against the makers
OPEN_LOOP_CONNECTIONS = 128  # per generator: the node's listen backlog is 128 too
SAMPLED_SEQS = 200  # per phase and process: seqs whose engine outcome the bench reads back
METRICS_EVERY_S = 0.01


def trader_key(index: int) -> bytes:
    return keccak256(f"e2e bench trader {index}".encode())


@dataclass(frozen=True)
class Phase:
    name: str
    closed: bool  # True: closed loop on ``connections`` connections (the maximum)
    rate: float  # open loop: intents/s this process offers
    duration_s: float
    batch: int  # intents per request (even: units of two)
    connections: int  # closed loop: requests in flight
    ports: tuple[int, ...] = ()  # where the requests go, in turn (empty: the spec's port)
    sampled_requests: int = SAMPLED_SEQS  # answers kept for reading back outcomes
    unexecuted_window: int = 0  # closed loop: acknowledged, not yet executed (0: no limit)
    generators: int = 1  # processes sharing the node's applied seq (for the window)


@dataclass(frozen=True)
class GeneratorSpec:
    host: str
    port: int
    chain_id: int
    contract: bytes
    accounts: tuple[int, ...]  # trader indexes this process signs for
    nonce_base: int  # ms: each account's nonces count up from here
    mid: int  # BTC mid price in $0.1
    phases: tuple[Phase, ...]
    pool_rate: float  # closed loop: intents/s it may need at most (signed in advance)
    seed: int
    committee: bool = False  # receipts say "sequenced" (seq 0): count them by intent id


@dataclass
class PhaseResult:
    name: str
    requests: int = 0
    intents_sent: int = 0
    intents_acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_us: array[float] = field(default_factory=lambda: array("d"))
    sizes: array[int] = field(default_factory=lambda: array("i"))
    first_due: float = 0.0
    last_answer: float = 0.0
    lateness_us_total: float = 0.0  # open loop: how late requests left, summed
    max_seq: int = 0
    sampled_seqs: list[int] = field(default_factory=list)
    pool_exhausted: bool = False
    # committee: (port, wall-clock time the request was due or sent, its intents' ids)
    sampled_intents: list[tuple[int, float, list[str]]] = field(default_factory=list)
    acked_by_second: dict[int, int] = field(default_factory=dict)  # since the phase start


class StreamBuilder:
    """Units of two signed intents per account, round robin over the process's accounts."""

    def __init__(self, spec: GeneratorSpec) -> None:
        self.domain = asyncdex_domain(spec.chain_id, spec.contract)
        self.signers = [LocalSigner(trader_key(index)) for index in spec.accounts]
        self.nonces = [spec.nonce_base] * len(self.signers)
        self.client_ids = [0] * len(self.signers)
        self.mid = spec.mid
        self.unit = 0

    def _intent(self, slot: int, build: Any, *fields: Any) -> bytes:
        signer = self.signers[slot]
        self.nonces[slot] += 1
        intent: Intent = build(signer.address, self.nonces[slot], 0, MARKET, *fields)
        return encode_signed_intent(sign_intent(signer, self.domain, intent))

    def _order(self, slot: int, is_buy: bool, price: int, tif: int, client_id: bytes) -> bytes:
        return self._intent(
            slot, PlaceOrder, is_buy, price, ORDER_SIZE, OrderType.LIMIT, tif, False,
            client_id, 0, 0, TriggerKind.NONE,
        )  # fmt: skip

    def next_unit(self) -> list[bytes]:
        slot = self.unit % len(self.signers)
        self.unit += 1
        mid = self.mid
        if self.unit % CROSSING_EVERY == 0:
            no_id = bytes(16)
            return [
                self._order(slot, True, mid + mid // 100, TimeInForce.IOC, no_id),
                self._order(slot, False, mid - mid // 100, TimeInForce.IOC, no_id),
            ]
        self.client_ids[slot] += 1
        client_id = self.client_ids[slot].to_bytes(16, "big")
        is_buy = self.unit % 2 == 0
        away = mid // 5 + 10 * (self.unit % 50)  # 20% off the mid, spread over 50 ticks
        price = mid - away if is_buy else mid + away
        return [
            self._order(slot, is_buy, price, TimeInForce.GTC, client_id),
            self._intent(slot, CancelByClientId, client_id),
        ]

    def requests(self, intents: int, batch: int, host: str, port: int) -> list[tuple[bytes, int]]:
        """``(HTTP request, intents in it)`` for about ``intents`` intents, msgpack bodies."""
        out = []
        for _ in range(max(1, round(intents / batch))):
            encoded: list[bytes] = []
            while len(encoded) < batch:
                encoded.extend(self.next_unit())
            body = msgpack.packb(encoded, use_bin_type=True)
            out.append((http_request(host, port, body), len(encoded)))
        return out


def _check_answer(
    status: int, raw: bytes, count: int, result: PhaseResult, committee: bool = False
) -> list[Any] | None:
    """The receipts of a good answer, or None after counting the error."""
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if status != 200:
        code = document.get("code") if isinstance(document, dict) else None
        key = f"{status} {code or 'no code'}"
        result.errors[key] = result.errors.get(key, 0) + 1
        return None
    receipts = document.get("receipts") if isinstance(document, dict) else None
    if not isinstance(receipts, list) or len(receipts) != count:
        result.errors["200 without a receipt per intent"] = (
            result.errors.get("200 without a receipt per intent", 0) + 1
        )
        return None
    if committee:
        if not all(isinstance(receipt.get("intentId"), str) for receipt in receipts):
            key = "receipt without intent id"
            result.errors[key] = result.errors.get(key, 0) + 1
            return None
        return receipts
    seqs = [receipt.get("seq") for receipt in receipts]
    if not all(type(seq) is int and seq > 0 for seq in seqs):
        result.errors["receipt without seq"] = result.errors.get("receipt without seq", 0) + 1
        return None
    return receipts


class HttpError(Exception):
    """The node's answer is not an HTTP/1.1 response this client can read."""


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to the node, at most ``limit`` open.

    A plain asyncio stream client: each request is pre-built bytes (head and body), each
    answer is read by its ``Content-Length``. A general HTTP client costs a few hundred
    microseconds of CPU per request, and on two cores that CPU is taken from the node.
    """

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.waiters: deque[asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
        self.waiters = deque()

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        if self.opened < self.limit:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def release(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def discard(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        connection[1].close()
        self.opened -= 1

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; (status, body) of the answer."""
        connection = await self.acquire()
        reader, writer = connection
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 "):
                raise HttpError(f"not an HTTP/1.1 answer: {head[:40]!r}")
            status = int(head[9:12])
            marker = head.lower().find(b"\r\ncontent-length:")
            if marker < 0:
                raise HttpError("answer without Content-Length")
            length = int(head[marker + 17 : head.index(b"\r\n", marker + 2)])
            body = await reader.readexactly(length)
        except BaseException:
            self.discard(connection)
            raise
        self.release(connection)
        return status, body

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def http_request(host: str, port: int, body: bytes) -> bytes:
    """``POST /v1/intents`` with a msgpack body, as bytes ready to write."""
    head = (
        f"POST /v1/intents HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/msgpack\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _send(
    pool: ConnectionPool,
    request: bytes,
    count: int,
    started: float,
    result: PhaseResult,
    sample: bool,
    committee: bool = False,
) -> None:
    try:
        status, raw = await pool.exchange(request)
    except (OSError, EOFError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
        key = f"transport {type(exc).__name__}"
        result.errors[key] = result.errors.get(key, 0) + 1
        return
    answered = time.monotonic()
    receipts = _check_answer(status, raw, count, result, committee)
    if receipts is None:
        return
    max_seq = max(receipt["seq"] or 0 for receipt in receipts)
    result.intents_acked += count
    second = int(answered - result.first_due)
    result.acked_by_second[second] = result.acked_by_second.get(second, 0) + count
    result.latencies_us.append((answered - started) * 1e6)
    result.sizes.append(count)
    result.last_answer = max(result.last_answer, answered)
    result.max_seq = max(result.max_seq, max_seq)
    if sample and committee:
        wall = started + time.time() - time.monotonic()
        ids = [receipt["intentId"] for receipt in receipts]
        result.sampled_intents.append((pool.port, wall, ids))
    elif sample:
        result.sampled_seqs.append(max_seq)


async def run_phase(
    host: str, port: int, phase: Phase, requests: list[tuple[bytes, int]], start_at: float,
    seed: int, committee: bool = False,
) -> PhaseResult:  # fmt: skip
    result = PhaseResult(phase.name)
    rng = random.Random(seed)
    sampled = set(rng.sample(range(len(requests)), min(phase.sampled_requests, len(requests))))
    # Open loop: enough connections for any sane backlog; beyond that a due request waits
    # for a free connection, and that wait counts in its latency.
    limit = phase.connections if phase.closed else OPEN_LOOP_CONNECTIONS
    ports = phase.ports or (port,)
    pools = [ConnectionPool(host, each, limit) for each in ports]
    # Open connections before the clock starts: a TCP handshake is not the node's work.
    for pool in pools:
        warm = [await pool.acquire() for _ in range(min(limit, 16))]
        for connection in warm:
            pool.release(connection)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    result.first_due = start_at
    try:
        if phase.closed:
            await _closed_loop(pools, phase, requests, result, sampled, committee)
        else:
            await _open_loop(pools, phase, requests, start_at, result, sampled, committee)
    finally:
        for pool in pools:
            pool.close()
    return result


async def _open_loop(
    pools: list[ConnectionPool],
    phase: Phase,
    requests: list[tuple[bytes, int]],
    start_at: float,
    result: PhaseResult,
    sampled: set[int],
    committee: bool,
) -> None:
    interval = phase.batch / phase.rate
    tasks = []
    for index, (request, count) in enumerate(requests):
        due = start_at + index * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        result.lateness_us_total += max(0.0, time.monotonic() - due) * 1e6
        result.requests += 1
        result.intents_sent += count
        pool = pools[index % len(pools)]
        send = _send(pool, request, count, due, result, index in sampled, committee)
        tasks.append(asyncio.create_task(send))
    await asyncio.gather(*tasks)


async def _closed_loop(
    pools: list[ConnectionPool],
    phase: Phase,
    requests: list[tuple[bytes, int]],
    result: PhaseResult,
    sampled: set[int],
    committee: bool,
) -> None:
    end = result.first_due + phase.duration_s
    pending = iter(enumerate(requests))
    executed = [0]  # records applied since the phase began, this process's share
    watcher = None
    if phase.unexecuted_window:
        metrics = ConnectionPool(pools[0].host, pools[0].port, 1)
        watcher = asyncio.create_task(_watch_applied(metrics, phase, executed, end))

    async def connection(pool: ConnectionPool) -> None:
        for index, (request, count) in pending:
            while (
                phase.unexecuted_window
                and result.intents_acked - executed[0] > phase.unexecuted_window
                and time.monotonic() < end
            ):
                await asyncio.sleep(METRICS_EVERY_S / 2)
            now = time.monotonic()
            if now >= end:
                return
            result.requests += 1
            result.intents_sent += count
            await _send(pool, request, count, now, result, index in sampled, committee)
        if time.monotonic() < end:
            result.pool_exhausted = True

    await asyncio.gather(
        *(connection(pools[number % len(pools)]) for number in range(phase.connections))
    )
    if watcher is not None:
        watcher.cancel()
        metrics.close()


async def _watch_applied(
    pool: ConnectionPool, phase: Phase, executed: list[int], end: float
) -> None:
    """Keep ``executed[0]`` at this process's share of the records applied since the start."""
    host = f"{pool.host}:{pool.port}"
    request = f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    first = None
    while time.monotonic() < end:
        try:
            status, body = await pool.exchange(request)
        except (OSError, EOFError, asyncio.IncompleteReadError, HttpError, ValueError):
            status, body = 0, b""
        marker = body.find(b"\nasyncdex_applied_seq ")
        if status == 200 and marker >= 0:
            line = body[marker + 1 : body.index(b"\n", marker + 1)]
            applied = int(float(line.split()[1]))
            first = applied if first is None else first
            executed[0] = (applied - first) // phase.generators
        await asyncio.sleep(METRICS_EVERY_S)


def generator_main(
    spec: GeneratorSpec,
    ready: Queue[Any],
    start: Queue[float],
    results: Queue[Any],
) -> None:
    """Sign every phase's requests, report ready, then run each phase when told to start."""
    builder = StreamBuilder(spec)
    signing_started = time.perf_counter()
    streams = []
    for phase in spec.phases:
        rate = spec.pool_rate if phase.closed else phase.rate
        count = int(rate * phase.duration_s)
        streams.append(builder.requests(count, phase.batch, spec.host, spec.port))
    signed = sum(count for stream in streams for _, count in stream)
    ready.put({"intents": signed, "signing_s": time.perf_counter() - signing_started})
    for index, (phase, requests) in enumerate(zip(spec.phases, streams, strict=True)):
        start_at = start.get()
        seed = spec.seed + index
        result = asyncio.run(
            run_phase(spec.host, spec.port, phase, requests, start_at, seed, spec.committee)
        )
        results.put(result)


class GeneratorPool:
    """The parent's side: one generator process per spec, each signing every phase's
    requests up front; ``run_phase`` starts the next phase in all of them at once."""

    def __init__(self, specs: list[GeneratorSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready: Any = context.Queue()
        self.results: Any = context.Queue()
        self.starts = [context.Queue() for _ in specs]
        self.processes = []
        for spec, start in zip(specs, self.starts, strict=True):
            process = context.Process(
                target=generator_main, args=(spec, self.ready, start, self.results), daemon=True
            )
            process.start()
            self.processes.append(process)
        self.pids = [process.pid for process in self.processes if process.pid is not None]

    def wait_signed(self, timeout: float = 600) -> tuple[int, float]:
        """(intents signed in all, seconds the slowest generator took)."""
        signing = [self.take(self.ready, timeout) for _ in self.processes]
        return (
            sum(item["intents"] for item in signing),
            max(item["signing_s"] for item in signing),
        )

    def start_phase(self, start_at: float) -> None:
        for queue in self.starts:
            queue.put(start_at)

    def phase_results(self, timeout: float) -> list[PhaseResult]:
        return [self.take(self.results, timeout) for _ in self.processes]

    def join(self) -> None:
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()

    def take(self, queue: Any, timeout: float) -> Any:
        """The next item a generator reports; fails at once if a generator died."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return queue.get(timeout=1.0)
            except Empty:
                dead = [p.exitcode for p in self.processes if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"a generator failed (exit codes {dead})") from None
