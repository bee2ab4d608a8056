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
import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from asyncdex.gateway.eip712 import Domain
from asyncdex.gateway.intake import DEFAULT_LIMITS, Intake, IntakeError, IntakeLimits
from asyncdex.sequencer.records import decode_trusted_record, encode_record
from asyncdex.sequencer.sequencer import Submission

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


def _ready() -> bool:
    return _intake is not None


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


class VerifierPool:
    """``workers`` processes decoding and verifying intents for one venue's domain."""

    def __init__(self, domain: Domain, workers: int, limits: IntakeLimits = DEFAULT_LIMITS) -> None:
        if workers < 1:
            raise ValueError("a verifier pool has at least one worker")
        self.domain = domain
        self.limits = limits
        self.workers = workers
        self._executor = self._new_executor()
        self._pending: list[tuple[tuple[bytes, str], asyncio.Future[list[Submission]]]] = []
        self._flush_scheduled = False
        self.chunks = 0  # tasks sent to workers, for metrics

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init,
            initargs=(self.domain, self.limits, os.getpid()),
        )

    async def start(self) -> None:
        """Spawn every worker and wait until each has imported and initialised."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, _ready) for _ in range(self.workers))
        )

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
        # Split whole requests into at most ``workers`` chunks of similar sizes in bytes.
        chunks: list[list[tuple[tuple[bytes, str], asyncio.Future[list[Submission]]]]] = [
            [] for _ in range(min(self.workers, len(pending)))
        ]
        sizes = [0] * len(chunks)
        for item in sorted(pending, key=lambda item: -len(item[0][0])):
            smallest = sizes.index(min(sizes))
            chunks[smallest].append(item)
            sizes[smallest] += len(item[0][0])
        loop = asyncio.get_running_loop()
        if getattr(self._executor, "_broken", False):
            # a worker died (killed, out of memory): its requests failed; start afresh
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
        for chunk in chunks:
            self.chunks += 1
            task = loop.run_in_executor(
                self._executor, _process_chunk, [request for request, _ in chunk]
            )
            task.add_done_callback(functools.partial(_resolve, [f for _, f in chunk]))

    def close(self) -> None:
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending = []
        self._executor.shutdown(wait=True, cancel_futures=True)


def _resolve(
    futures: list[asyncio.Future[list[Submission]]], done: asyncio.Future[list[Outcome]]
) -> None:
    if done.cancelled():
        for future in futures:
            future.cancel()
        return
    failure = done.exception()
    if failure is not None:
        # a worker died (BrokenProcessPool) or could not unpickle: the requests fail, nothing
        # was sequenced
        for future in futures:
            if not future.done():
                future.set_exception(failure)
        return
    for future, outcome in zip(futures, done.result(), strict=True):
        if future.done():
            continue
        if isinstance(outcome, IntakeError):
            future.set_exception(outcome)
        else:
            future.set_result(decode_outcome(outcome))
