"""Intent decoding and signature recovery spread over worker processes, while the sequencer
stays one writer.

Invariants:

- ``process(body, content_type)`` returns exactly what ``Intake.process`` returns for the
  same body under the same domain and limits, or raises the same :class:`IntakeError` (the
  workers run that code): moving the work changes no answer.
- Requests that arrive in the same event-loop turn are handled together: they are spread
  over the workers in chunks of whole requests, one task per worker per turn, so the cost
  of crossing the process boundary is paid per chunk, not per request. A request's error
  refuses that request only.
- What crosses the boundary is bytes both ways: the raw bodies in, and per intent its
  journal record encoding and intent id out (:func:`asyncdex.sequencer.records.encode_record`,
  decoded back by the checked-free decoder the journal uses), so the node's threads spend
  almost nothing pickling object graphs under the GIL the event loop needs.
- Nothing here touches the sequencer or the engine: a request is sequenced when its
  processing completes, first come first served, as with verification in the loop.
- Workers are started with ``spawn`` (no copy of the node's memory or threads) and warmed
  up before the node listens; ``close`` stops them, and a worker whose node died (SIGKILL)
  exits by itself within a second.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.process
import os
import pickle
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool

from asyncdex.sequencer.records import decode_trusted_record, encode_record
from asyncdex.sequencer.sequencer import Submission
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intake import DEFAULT_LIMITS, Intake, IntakeError, IntakeLimits

_intake: Intake | None = None  # set in each worker by ``_init``
ORPHAN_CHECK_SECONDS = 0.5

# per intent: its record encoding (timestamp 0) and its intent id
Encoded = list[tuple[bytes, bytes]]
Outcome = Encoded | IntakeError
_new_tuple = tuple.__new__


def _init(domain: Domain, limits: IntakeLimits, parent: int) -> None:
    global _intake
    _intake = Intake(domain, limits)
    # A node killed with SIGKILL cannot stop its workers: each leaves when it is orphaned.
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(0)


def _process_chunk(requests: Sequence[tuple[bytes, str]]) -> list[Outcome]:
    """Worker side: each request decoded and verified alone; an error is its answer."""
    intake = _intake
    assert intake is not None, "worker not initialised"
    outcomes: list[Outcome] = []
    for body, content_type in requests:
        try:
            submissions = intake.process(body, content_type)
        except IntakeError as error:
            outcomes.append(error)
            continue
        outcomes.append(
            [
                (encode_record(0, submission.command, submission.signature), submission.intent_id)
                for submission in submissions
            ]
        )
    return outcomes


def decode_outcome(encoded: Encoded) -> list[Submission]:
    """The submissions a worker encoded (the node's side of ``_process_chunk``)."""
    submissions = []
    for payload, intent_id in encoded:
        _, command, signature = decode_trusted_record(payload)
        submissions.append(_new_tuple(Submission, (command, signature, intent_id)))
    return submissions


class _Worker:
    """One worker process and the loop's end of its socket: chunks go out in order and their
    answers come back in the same order."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.in_flight: deque[list[asyncio.Future[list[Submission]]]] = deque()
        self.queued_bytes = 0  # bodies sent whose answers have not come back
        self.sizes: deque[int] = deque()
        self.alive = True
        self.task: asyncio.Task[None] | None = None


class VerifierPool:
    """``workers`` processes decoding and verifying intents for one venue's domain.

    Each worker is a spawned process joined to the event loop by a socket pair: the loop
    writes length-prefixed chunks and reads the answers with its own non-blocking I/O, so
    no thread of the node's takes the GIL to move work to and from the workers.
    """

    def __init__(self, domain: Domain, workers: int, limits: IntakeLimits = DEFAULT_LIMITS) -> None:
        if workers < 1:
            raise ValueError("a verifier pool has at least one worker")
        self.domain = domain
        self.limits = limits
        self.workers = workers
        self._workers: list[_Worker] = []
        self._pending: list[tuple[tuple[bytes, str], asyncio.Future[list[Submission]]]] = []
        self._flush_scheduled = False
        self._closed = False
        self.chunks = 0  # chunks sent to workers, for metrics
        self.restarts = 0

    async def start(self) -> None:
        """Spawn every worker and wait until each has imported and initialised."""
        self._workers = list(await asyncio.gather(*(self._spawn() for _ in range(self.workers))))

    async def _spawn(self) -> _Worker:
        context = multiprocessing.get_context("spawn")
        ours, theirs = socket.socketpair()
        process = context.Process(
            target=_worker_main,
            args=(theirs, self.domain, self.limits, os.getpid()),
            name="asyncdex-verify",
            daemon=True,
        )
        process.start()
        theirs.close()
        worker = _Worker(process)
        worker.reader, worker.writer = await asyncio.open_connection(sock=ours)
        # the first answer says the worker has imported everything and is ready
        await worker.reader.readexactly(len(_READY))
        worker.task = asyncio.get_running_loop().create_task(self._read_answers(worker))
        return worker

    async def process(self, body: bytes, content_type: str) -> list[Submission]:
        """Decode and verify one request body in a worker; ``Intake.process``'s answer."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Submission]] = loop.create_future()
        self._pending.append(((body, content_type), future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # after the other requests already read in this turn have joined the queue
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self._closed:
            for _, future in pending:
                future.set_exception(BrokenProcessPool("the verifier pool is closed"))
            return
        for index, worker in enumerate(self._workers):
            if not worker.alive:
                # a worker died (killed, out of memory): its requests failed; replace it
                self._workers[index] = self._replacement(worker)
        alive = [worker for worker in self._workers if worker.alive and worker.writer]
        if not alive:
            for _, future in pending:
                future.set_exception(BrokenProcessPool("no verification worker is running"))
            return
        # Whole requests, each to the worker with the fewest bytes still to answer.
        chunks: dict[int, list[tuple[tuple[bytes, str], asyncio.Future[list[Submission]]]]] = {}
        load = [worker.queued_bytes for worker in alive]
        for item in sorted(pending, key=lambda item: -len(item[0][0])):
            least = load.index(min(load))
            chunks.setdefault(least, []).append(item)
            load[least] += len(item[0][0])
        for index, chunk in chunks.items():
            worker = alive[index]
            assert worker.writer is not None
            payload = pickle.dumps([request for request, _ in chunk], pickle.HIGHEST_PROTOCOL)
            worker.writer.write(len(payload).to_bytes(4, "big") + payload)
            size = sum(len(request[0]) for request, _ in chunk)
            worker.queued_bytes += size
            worker.sizes.append(size)
            worker.in_flight.append([future for _, future in chunk])
            self.chunks += 1

    def _replacement(self, dead: _Worker) -> _Worker:
        """A placeholder that becomes a live worker once spawned (in the background). It is
        alive, so it is not replaced again, and has no writer, so it takes no chunk."""
        self.restarts += 1
        dead.process.join(timeout=0.1)  # it is gone: collect its exit status
        placeholder = _Worker(dead.process)

        async def respawn() -> None:
            worker = await self._spawn()
            if self._closed:
                _stop(worker)
                return
            self._workers[self._workers.index(placeholder)] = worker

        placeholder.task = asyncio.get_running_loop().create_task(respawn())
        return placeholder

    async def _read_answers(self, worker: _Worker) -> None:
        reader = worker.reader
        assert reader is not None
        try:
            while True:
                header = await reader.readexactly(4)
                answer = await reader.readexactly(int.from_bytes(header, "big"))
                futures = worker.in_flight.popleft()
                worker.queued_bytes -= worker.sizes.popleft()
                _resolve(futures, pickle.loads(answer))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the worker died or the pool closed
        worker.alive = False
        failure = BrokenProcessPool("a verification worker died")
        while worker.in_flight:
            for future in worker.in_flight.popleft():
                if not future.done():
                    future.set_exception(failure)

    def close(self) -> None:
        self._closed = True
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending = []
        for worker in self._workers:
            _stop(worker)


def _stop(worker: _Worker) -> None:
    if worker.task is not None:
        worker.task.cancel()
    if worker.writer is not None:
        worker.writer.close()
    # a worker holds nothing but its imports: stop it now rather than wait for the loop to
    # carry the close to it
    worker.process.terminate()
    worker.process.join(timeout=2.0)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout=2.0)


def _resolve(futures: list[asyncio.Future[list[Submission]]], outcomes: list[Outcome]) -> None:
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, IntakeError):
            future.set_exception(outcome)
        else:
            future.set_result(decode_outcome(outcome))


_READY = b"ready"


def _recv_exactly(sock: socket.socket, count: int) -> bytes | None:
    chunks = []
    while count:
        chunk = sock.recv(min(count, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _worker_main(sock: socket.socket, domain: Domain, limits: IntakeLimits, parent: int) -> None:
    """A worker process: chunks in, answers out, until the node closes its end."""
    _init(domain, limits, parent)
    sock.sendall(_READY)
    while True:
        header = _recv_exactly(sock, 4)
        if header is None:
            return
        payload = _recv_exactly(sock, int.from_bytes(header, "big"))
        if payload is None:
            return
        answer = pickle.dumps(_process_chunk(pickle.loads(payload)), pickle.HIGHEST_PROTOCOL)
        sock.sendall(len(answer).to_bytes(4, "big") + answer)
