"""A minimal venue node: HTTP intake, sequencer, durable journal, engine, snapshots.

Invariants:

- A ``200`` from ``POST /v1/intents`` (or ``/v1/system``) carries receipts only for records
  that are durable in the journal: the handler returns after ``Sequencer.submit``, which
  resolves only after fsync. A crash at any moment loses nothing that was acknowledged.
- Bad input is refused with a 4xx and ``{"error", "code", ...}`` before the sequencer is
  called (see :mod:`asyncdex.gateway.intake`): it takes no seq and leaves no journal record.
- The engine sees exactly the durable records, in seq order, once each (it is a sequencer
  consumer). ``GET /v1/status`` reports the root of the engine state after ``appliedSeq``.
- State at start is the recovered state: latest snapshot plus journal tail, which equals a
  full replay of the journal (replay determinism). Seqs continue from the journal's last
  seq; timestamps continue from the recovered engine time, never backwards.
- Oracle prices, L1 deposits and time ticks enter only as sequenced commands, through
  ``POST /v1/system``. That endpoint is an operator door for tests and local runs until the
  oracle feed and the chain watcher land: it is refused (403) unless the node was given an
  operator token, and refused (401) to requests that do not present it.
- Shutdown on SIGTERM or SIGINT: stop accepting connections, answer new requests on open
  connections with 503, sequence whatever an ordering policy still holds, wait until all of
  it is durable and applied, let in-flight requests receive their receipts, snapshot the
  engine, close the journal, exit 0. A journal failure (write or fsync error) or an engine
  fault stops the node with a non-zero exit code: continuing could acknowledge what is not
  on disk, or serve a state that diverged from the journal.
- Listens on loopback only: there is no TLS, rate limiting or account-level auth yet.

Endpoints (JSON; errors are ``{"error": message, "code": ..., "index"?, "field"?}``):

- ``POST /v1/intents``: one signed intent or ``{"intents": [...]}`` (JSON), or the msgpack
  form (``Content-Type: application/msgpack``), see :mod:`asyncdex.gateway.intake`. 200
  ``{"receipts": [{"intentId": "0x<EIP-712 digest>", "seq": n, "timestamp": ms}, ...]}`` in
  request order; 400/413/415 for bad input, 503 while shutting down or after a journal
  failure, 500 on an internal fault (none of these acknowledge anything).
- ``POST /v1/system`` (``Authorization: Bearer <operator token>``): ``{"commands": [
  {"type": "deposit", "account": "0x..", "amount": n, "l1Index": n} | {"type":
  "oraclePrice", "publisher": "0x..", "market": n, "price": n} | {"type": "advanceTime"}]}``;
  200 receipts as above with ``"intentId": null``.
- ``GET /v1/status``: ``{"lastSeq", "durableSeq", "appliedSeq", "snapshotSeq", "stateRoot":
  "0x..", "engineTime", "draining"}``; ``stateRoot`` is the engine's after ``appliedSeq``.
- ``GET /v1/health``: 200 ``{"status": "ok"}``, 503 ``{"status": "draining"}``.

Threads: the event loop runs HTTP, decoding, verification, sequencing and the engine; the
journal's group-commit thread writes and fsyncs. Verification is a call to
:meth:`Intake.verify` on picklable values, so it can move to a process pool unchanged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from asyncdex.engine.state_root import state_root
from asyncdex.gateway.eip712 import Domain, parse_address
from asyncdex.gateway.intake import (
    DEFAULT_LIMITS,
    BodyTooLarge,
    Intake,
    IntakeError,
    IntakeLimits,
    MalformedBody,
)
from asyncdex.messages.commands import AdvanceTime, Command, Deposit, PublishOraclePrice
from asyncdex.sequencer.journal import FileJournal, GroupCommitter, JournalFailed
from asyncdex.sequencer.recovery import EngineExecutor, Recovered, SnapshotStore, recover
from asyncdex.sequencer.sequencer import (
    Receipt,
    Sequenced,
    Sequencer,
    SequencerClosed,
    Submission,
)
from asyncdex.types.market import EngineConfig

_log = logging.getLogger(__name__)

JOURNAL_SUBDIR = "journal"
SNAPSHOT_SUBDIR = "snapshots"
LOOPBACK = "127.0.0.1"
DEFAULT_SNAPSHOT_EVERY = 10_000
MAX_SYSTEM_COMMANDS = 1_000
EXIT_OK = 0
EXIT_JOURNAL_FAILED = 74  # EX_IOERR
EXIT_FAULT = 70  # EX_SOFTWARE: an engine or sequencer fault (a bug)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class NodeSettings:
    data_dir: Path
    engine_config: EngineConfig
    domain: Domain
    port: int = 0  # 0: any free port; the bound one is in Node.url
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    operator_token: str | None = None
    limits: IntakeLimits = DEFAULT_LIMITS
    clock: Callable[[], int] = wall_clock_ms
    shutdown_timeout: float = 10.0  # seconds in-flight requests get to finish on shutdown


# ---------------------------------------------------------------------------------------------
# System commands (operator door)


class SystemCommandError(IntakeError):
    code = "invalid_system_command"


def _uint(obj: dict[str, Any], key: str, index: int) -> int:
    value = obj.get(key)
    if type(value) is not int or value < 0:
        raise SystemCommandError(
            f"command {index}: {key} must be a non-negative integer", index=index, field=key
        )
    return value


def _address(obj: dict[str, Any], key: str, index: int) -> bytes:
    value = obj.get(key)
    try:
        return parse_address(value)  # type: ignore[arg-type]  # parse_address checks the type
    except ValueError as exc:
        raise SystemCommandError(f"command {index}: {key}: {exc}", index=index, field=key) from None


_SYSTEM_FIELDS = {
    "deposit": frozenset({"type", "account", "amount", "l1Index"}),
    "oraclePrice": frozenset({"type", "publisher", "market", "price"}),
    "advanceTime": frozenset({"type"}),
}


def parse_system_commands(document: Any) -> list[Command]:
    """``{"commands": [{"type": "deposit" | "oraclePrice" | "advanceTime", ...}, ...]}``."""
    if not isinstance(document, dict) or set(document) != {"commands"}:
        raise MalformedBody('expected {"commands": [...]}')
    items = document["commands"]
    if not isinstance(items, list) or not items:
        raise MalformedBody('"commands" must be a non-empty list')
    if len(items) > MAX_SYSTEM_COMMANDS:
        raise MalformedBody(f"at most {MAX_SYSTEM_COMMANDS} commands per request")
    commands: list[Command] = []
    for index, obj in enumerate(items):
        kind = obj.get("type") if isinstance(obj, dict) else None
        fields = _SYSTEM_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise SystemCommandError(
                f"command {index}: type must be one of {', '.join(_SYSTEM_FIELDS)}",
                index=index,
                field="type",
            )
        assert isinstance(obj, dict)
        if set(obj) != fields:
            raise SystemCommandError(
                f"command {index}: {kind} takes exactly {', '.join(sorted(fields))}", index=index
            )
        if kind == "deposit":
            commands.append(
                Deposit(
                    _address(obj, "account", index),
                    _uint(obj, "amount", index),
                    _uint(obj, "l1Index", index),
                )
            )
        elif kind == "oraclePrice":
            commands.append(
                PublishOraclePrice(
                    _address(obj, "publisher", index),
                    _uint(obj, "market", index),
                    _uint(obj, "price", index),
                )
            )
        else:
            commands.append(AdvanceTime())
    return commands


# ---------------------------------------------------------------------------------------------
# The node


def _json_error(error: IntakeError) -> web.Response:
    return web.json_response(error.to_json(), status=error.status)


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "intentId": "0x" + receipt.intent_id.hex() if receipt.intent_id else None,
        "seq": receipt.seq,
        "timestamp": receipt.timestamp,
    }


class Node:
    """One venue process. ``await start()``, then ``await run()`` until a signal or ``stop``."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.intake = Intake(settings.domain, settings.limits)
        self.recovered: Recovered | None = None
        self.exit_code = EXIT_OK
        self._draining = False
        self._stop_requested: asyncio.Event | None = None
        self._stopped = False
        self._engine_faulted = False
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._committer: GroupCommitter | None = None
        self._sequencer: Sequencer | None = None
        self._executor: EngineExecutor | None = None
        self._snapshots: SnapshotStore | None = None
        self._journal: FileJournal | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        settings = self.settings
        self._stop_requested = asyncio.Event()
        data = Path(settings.data_dir)
        recovered = recover(data / JOURNAL_SUBDIR, data / SNAPSHOT_SUBDIR, settings.engine_config)
        self.recovered = recovered
        self._journal = recovered.journal
        _log.info(
            "recovered: snapshot seq %d, replayed %d, last seq %d, root 0x%s%s",
            recovered.snapshot_seq,
            recovered.replayed,
            recovered.last_seq,
            recovered.state_root.hex(),
            f", cut torn tail of {recovered.report.truncated_bytes} bytes"
            if recovered.report.truncated
            else "",
        )
        for skipped in recovered.skipped_snapshots:
            _log.warning("snapshot %s skipped: %s", skipped.path, skipped.reason)
        try:
            self._committer = GroupCommitter(recovered.journal)
            self._sequencer = Sequencer(
                self._committer, settings.clock, start_time=recovered.engine.state.time
            )
            self._snapshots = SnapshotStore(data / SNAPSHOT_SUBDIR)
            # every=0 means "only at shutdown": the executor then gets no store at all.
            periodic = settings.snapshot_every > 0
            self._executor = EngineExecutor(
                recovered.engine,
                self._snapshots if periodic else None,
                settings.snapshot_every if periodic else 1,
                last_seq=recovered.last_seq,
            )
            self._sequencer.add_consumer(self._consume)

            app = web.Application(client_max_size=settings.limits.max_body_bytes + 1)
            app.router.add_post("/v1/intents", self.handle_intents)
            app.router.add_post("/v1/system", self.handle_system)
            app.router.add_get("/v1/status", self.handle_status)
            app.router.add_get("/v1/health", self.handle_health)
            self._runner = web.AppRunner(
                app, access_log=None, shutdown_timeout=settings.shutdown_timeout
            )
            await self._runner.setup()
            self._site = web.TCPSite(self._runner, LOOPBACK, settings.port)
            await self._site.start()
        except BaseException:
            await self._close_storage()
            raise
        self.port = int(self._runner.addresses[0][1])

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)

    def request_stop(self, exit_code: int = EXIT_OK) -> None:
        if exit_code != EXIT_OK and self.exit_code == EXIT_OK:
            self.exit_code = exit_code
        self._draining = True
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def run(self) -> int:
        """Serve until a stop is requested, then shut down cleanly; return the exit code."""
        assert self._stop_requested is not None, "start() first"
        await self._stop_requested.wait()
        await self.stop()
        return self.exit_code

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._draining = True
        # 1. No new connections; requests on open connections now get 503.
        if self._site is not None:
            await self._site.stop()
        # 2. Sequence what an ordering policy still holds and wait until it is durable and
        #    applied. A journal failure here must not block the rest of the shutdown.
        if self._sequencer is not None:
            try:
                await self._sequencer.close()
            except JournalFailed:
                _log.exception("journal failed while draining")
                self.exit_code = self.exit_code or EXIT_JOURNAL_FAILED
            except Exception:
                _log.exception("sequencer fault while draining")
                self.exit_code = self.exit_code or EXIT_FAULT
        # 3. In-flight requests get their receipts (all of them are durable by now).
        if self._runner is not None:
            await self._runner.cleanup()
        # 4. Snapshot what was applied so the next start replays nothing, unless the engine
        #    faulted: a snapshot of a state that diverged from the journal would persist it.
        executor, snapshots = self._executor, self._snapshots
        if executor is not None and snapshots is not None and not self._engine_faulted:
            try:
                if self._snapshot_seq() != executor.last_seq:
                    snapshots.save(executor.last_seq, executor.engine.state)
            except OSError:
                _log.exception("final snapshot failed; the next start replays the tail")
        await self._close_storage()

    async def _close_storage(self) -> None:
        if self._committer is not None:
            self._committer.close()
            self._committer = None
        if self._journal is not None:
            try:
                self._journal.close()
            except JournalFailed:
                self.exit_code = self.exit_code or EXIT_JOURNAL_FAILED
            self._journal = None

    def _snapshot_seq(self) -> int:
        """Seq of the newest snapshot file on disk (0: none)."""
        paths = self._snapshots.paths() if self._snapshots is not None else []
        return paths[-1][0] if paths else 0

    def _consume(self, batch: Sequence[Sequenced]) -> None:
        assert self._executor is not None
        if self._engine_faulted:
            return  # the engine state is no longer trustworthy; the node is stopping
        try:
            self._executor(batch)
        except Exception:
            # The records are durable, so the journal stays right; only this process's
            # engine state is wrong. Stop, and let recovery rebuild it from the journal.
            _log.exception("engine fault while applying seqs %d..%d", batch[0].seq, batch[-1].seq)
            self._engine_faulted = True
            self.request_stop(EXIT_FAULT)

    # ----------------------------------------------------------------- HTTP handlers

    def _refuse_if_draining(self) -> web.Response | None:
        if self._draining:
            return web.json_response(
                {"error": "node is shutting down", "code": "shutting_down"}, status=503
            )
        return None

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.settings.limits.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise BodyTooLarge(f"body of {length} bytes exceeds {limit}")
        chunks = []
        size = 0
        # Read at most one byte past the limit, so a body without Content-Length (chunked)
        # cannot make the node buffer more than that.
        while size <= limit:
            chunk = await request.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds {limit} bytes")
        return b"".join(chunks)

    async def _submit(self, submissions: list[Submission]) -> web.Response:
        assert self._sequencer is not None
        try:
            receipts = await self._sequencer.submit(submissions)
        except SequencerClosed:
            return web.json_response(
                {"error": "node is shutting down", "code": "shutting_down"}, status=503
            )
        except JournalFailed:
            _log.exception("journal failed; stopping")
            self.request_stop(EXIT_JOURNAL_FAILED)
            return web.json_response(
                {"error": "journal failure: not acknowledged", "code": "journal_failed"},
                status=503,
            )
        except Exception:
            # Intake only passes journalable commands, so this is a bug; the sequencer's
            # counters may no longer match the journal. Fail stop: recovery restarts clean.
            _log.exception("sequencer fault; stopping")
            self.request_stop(EXIT_FAULT)
            return web.json_response(
                {"error": "internal error: not acknowledged", "code": "internal_error"},
                status=500,
            )
        return web.json_response({"receipts": [_receipt_json(r) for r in receipts]})

    async def handle_intents(self, request: web.Request) -> web.Response:
        refused = self._refuse_if_draining()
        if refused is not None:
            return refused
        try:
            body = await self._read_body(request)
            parsed = self.intake.decode(body, request.headers.get("Content-Type", ""))
            # The expensive half; a process pool can take it over (see module docstring).
            submissions = self.intake.verify(parsed)
        except IntakeError as error:
            return _json_error(error)
        return await self._submit(submissions)

    async def handle_system(self, request: web.Request) -> web.Response:
        refused = self._refuse_if_draining()
        if refused is not None:
            return refused
        token = self.settings.operator_token
        if not token:
            return web.json_response(
                {"error": "system endpoint disabled: no operator token configured",
                 "code": "forbidden"},
                status=403,
            )  # fmt: skip
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return web.json_response(
                {"error": "missing or wrong operator token", "code": "unauthorized"}, status=401
            )
        try:
            body = await self._read_body(request)
            try:
                document = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise MalformedBody(f"invalid JSON: {exc}") from None
            commands = parse_system_commands(document)
        except IntakeError as error:
            return _json_error(error)
        return await self._submit([Submission(command) for command in commands])

    async def handle_status(self, request: web.Request) -> web.Response:
        assert self._sequencer is not None and self._executor is not None
        assert self._journal is not None
        journal = self._journal
        executor = self._executor
        return web.json_response(
            {
                "lastSeq": self._sequencer.next_seq - 1,
                "durableSeq": journal.durable_seq,
                "appliedSeq": executor.last_seq,
                "snapshotSeq": self._snapshot_seq(),
                "stateRoot": "0x" + state_root(executor.engine.state).hex(),
                "engineTime": executor.engine.state.time,
                "draining": self._draining,
            }
        )

    async def handle_health(self, request: web.Request) -> web.Response:
        if self._draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ok"})


async def serve(settings: NodeSettings, on_ready: Callable[[Node], None] | None = None) -> int:
    """Start a node, call ``on_ready`` once it listens, serve until signalled; exit code."""
    node = Node(settings)
    await node.start()
    node.install_signal_handlers()
    if on_ready is not None:
        on_ready(node)
    return await node.run()
