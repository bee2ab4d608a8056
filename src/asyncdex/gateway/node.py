"""A minimal venue node: HTTP intake, sequencer, durable journal, engine, snapshots.

Invariants:

- A ``200`` from ``POST /v1/intents`` (or ``/v1/system``) carries receipts only for records
  that are durable in the journal: the handler returns after ``Sequencer.submit``, which
  resolves only after fsync. A crash at any moment loses nothing that was acknowledged.
- Bad input is refused with a 4xx and ``{"error", "code", ...}`` before the sequencer is
  called (see :mod:`asyncdex.signing.intake`): it takes no seq and leaves no journal record.
  So is a signed intent the engine's authorization would certainly refuse — unknown agent or
  foreign domain, agent acting for another account, replayed or out-of-window nonce, passed
  deadline (:mod:`asyncdex.gateway.precheck`); the engine still checks when it executes.
  A request whose intents were all acknowledged before (a client's retry) is answered with
  their first receipts and sequences nothing, also after a restart: the newest
  ``index_capacity`` intents are kept, and beyond them every intent whose nonce the engine
  still holds as used; at start both are rebuilt from the journal. A request mixing such
  intents with new ones gets their first receipts and sequences only the new ones.
- A journal failure answers 503 ``journal_failed`` only when nothing of the request can be in
  the journal; when some of it may be (a write that could not be undone, a record durable
  before the failure), 503 ``outcome_unknown`` lists those intents (``unknown``: index,
  intent id, seq); after the restart each is in the journal with that receipt or absent.
- The engine sees exactly the durable records, in seq order, once each (it is a sequencer
  consumer). ``GET /v1/status`` reports the root of the engine state after ``appliedSeq``.
- State at start is the recovered state: latest snapshot plus journal tail, which equals a
  full replay of the journal (replay determinism). Seqs continue from the journal's last
  seq; timestamps continue from the recovered engine time, never backwards.
- Oracle prices, L1 deposits and time ticks enter only as sequenced commands: from the L1
  watcher and the node's timer when the node settles; oracle prices from the configured
  publishers' signed updates (``POST /v1/oracle``, :mod:`asyncdex.gateway.oracle_feed`).
  ``POST /v1/system`` is an operator door for tests and local runs: it is refused (403)
  unless the node was given an operator token, and refused (401) to requests that do not
  present it.
- Shutdown on SIGTERM or SIGINT: stop accepting connections, answer new requests on open
  connections with 503, sequence whatever an ordering policy still holds, wait until all of
  it is durable and applied, let in-flight requests receive their receipts, snapshot the
  engine, close the journal, exit 0. A journal failure (write or fsync error) or an engine
  fault stops the node with a non-zero exit code: continuing could acknowledge what is not
  on disk, or serve a state that diverged from the journal.
- Listens on loopback only: there is no TLS, rate limiting or account-level auth yet.
- With settlement on (``NodeSettings.settlement``, see
  :mod:`asyncdex.settlement.service`) the engine is rebuilt at start by replaying the
  journal from seq 1 through the batcher, so the batches cut are the ones posted before; the
  L1 watcher, the poster, time ticks and protective mode run beside the executor. Deposits
  then come only from the chain: the ``deposit`` system command is refused.
- Status queries read memory only, never the chain: a record's status is ``sequenced`` until
  applied, ``executed`` once applied, ``committed`` once its batch is on chain (with the
  transaction hash) and ``finalized`` once the contract calls that batch final. Intent ids and
  events are kept for the newest ``index_capacity`` records (oldest dropped first); at start
  intent ids are rebuilt from the journal's tail, and events for the records replayed then.

Endpoints (JSON; errors are ``{"error": message, "code": ..., "index"?, "field"?}``):

- ``POST /v1/intents``: one signed intent or ``{"intents": [...]}`` (JSON), or the msgpack
  form (``Content-Type: application/msgpack``), see :mod:`asyncdex.signing.intake`. 200
  ``{"receipts": [{"intentId": "0x<EIP-712 digest>", "seq": n, "timestamp": ms}, ...]}`` in
  request order; 400/413/415 for bad input, 503 while shutting down or after a journal
  failure, 500 on an internal fault (none of these acknowledge anything; only a 503
  ``outcome_unknown`` says some of the request may be in the journal, see above).
- ``POST /v1/system`` (``Authorization: Bearer <operator token>``): ``{"commands": [
  {"type": "deposit", "account": "0x..", "amount": n, "l1Index": n} | {"type":
  "oraclePrice", "publisher": "0x..", "market": n, "price": n} | {"type": "advanceTime"}]}``;
  200 receipts as above with ``"intentId": null``.
- ``GET /v1/status``: ``{"lastSeq", "durableSeq", "appliedSeq", "snapshotSeq", "stateRoot":
  "0x..", "engineTime", "draining", "protectiveMode", "settlement", "engine"}``; ``stateRoot``
  is the engine's after ``appliedSeq``; ``engine`` says which implementation runs:
  ``"native"`` (the C++ core, the default when it is built), ``"reference"`` (the
  interpreted engine; ``--engine reference``, or the fallback without the core);
  ``settlement`` is null when the node does not settle, else the last cut, committed and
  finalized batches, the lag (records and sequenced ms behind, committed and finalized), the
  poster's and watcher's health (see :meth:`SettlementService.status_json`).
- ``GET /v1/intents/{intentId}`` and ``GET /v1/seq/{seq}``: ``{"seq", "intentId", "status":
  "sequenced" | "executed" | "committed" | "finalized", "events": [...] | null, "batch",
  "txHash"}``; ``events`` are the record's events (fills, rests, the rejection and its
  reason, ...), null once out of the index; 404 for an id or seq the node does not know.
- ``GET /v1/withdrawals/{id}/proof``: the batch, leaf index and Merkle proof that
  ``claimWithdrawal`` takes, once the withdrawal is in a cut batch, with the batch's status
  (``claimable`` once final); 404 before, or without settlement.
- ``POST /v1/dev/deposit`` (operator token, embedded chain only): ``{"account", "amount"}``
  mints test tokens and deposits them on the embedded chain; the watcher sequences it.
- ``GET /v1/health``: 200 ``{"status": "ok"}``, 503 ``{"status": "draining"}``.
- Read-only market data (memory only; shapes in :mod:`asyncdex.gateway.openapi`, list in
  ``docs/sequencer.md``): ``GET /v1/markets``, ``/v1/markets/{symbol}/book?depth=``,
  ``/trades?limit=``, ``/candles?interval=&start=&end=``, ``/funding?start=&end=``,
  ``/v1/accounts/{address}``, ``/orders``, ``/fills?limit=``. Decimal strings for prices,
  sizes and money; 400 with a specific code for a bad or unknown parameter, 404 for an
  unknown market or account. Trades, candles, funding and fills come from
  :class:`~asyncdex.gateway.market_data.MarketData`, fed in ``_on_events`` (and from the
  replay, when settling); the rest reads the engine state.
- ``GET /v1/venue``: what a client needs to sign and build intents — chain id, the EIP-712
  domain intents are verified against, the settlement contract (null without settlement),
  the markets' ids, decimals, tick and lot (:mod:`asyncdex.gateway.venue`).
- ``GET /v1/openapi.json``: the OpenAPI 3.0 document of all of the above.

Threads and processes: the event loop runs HTTP, decoding, sequencing, the engine and batch
cuts; intent decoding and signature recovery run in ``verify_workers`` worker processes
(:mod:`asyncdex.signing.verify_pool`), or in the loop when that is 0; the journal's
group-commit thread writes and fsyncs; one settlement thread makes every chain call.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import signal
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from asyncdex.committee.items import intent_item
from asyncdex.committee.venue import CommitteeSettings, CommitteeVenue, ordered_json
from asyncdex.engine.build import choose_engine
from asyncdex.engine.orderbook import Order
from asyncdex.engine.reader import StateReader
from asyncdex.engine.state import MarketState
from asyncdex.engine.transition import NONCE_PAST_MS
from asyncdex.fairness.intake import (
    SealedIntakeError,
    check_sealed_submissions,
    parse_sealed_body,
)
from asyncdex.gateway.collector import FullCollections
from asyncdex.gateway.fanout import DEFAULT_CONNECTION_CAPS, ConnectionCaps
from asyncdex.gateway.market_data import INTERVALS_MS, MarketData, account_view
from asyncdex.gateway.openapi import openapi_document
from asyncdex.gateway.precheck import Precheck, PrecheckRefused
from asyncdex.gateway.ratelimit import (
    RateLimited,
    RateLimiter,
    RateLimits,
    address_requests,
    sealed_address_requests,
)
from asyncdex.gateway.venue import venue_json
from asyncdex.messages import commands as engine_commands
from asyncdex.messages.codec import EVENT_TAG
from asyncdex.messages.commands import (
    AdvanceTime,
    Command,
    Deposit,
    OrderType,
    PublishOraclePrice,
    Signed,
    TimeInForce,
)
from asyncdex.messages.events import EVENT_TYPES, Event, Rejected
from asyncdex.messages.reasons import Reject
from asyncdex.sequencer.journal import FileJournal, GroupCommitter, JournalFailed
from asyncdex.sequencer.records import Record, decode_trusted_record
from asyncdex.sequencer.recovery import (
    EngineExecutor,
    Recovered,
    SnapshotStore,
    open_journal,
    recover,
)
from asyncdex.sequencer.sequencer import (
    NotDurable,
    Receipt,
    Sequenced,
    Sequencer,
    SequencerClosed,
    Submission,
)
from asyncdex.settlement.service import SettlementService, SettlementSettings
from asyncdex.signing import intents as wire
from asyncdex.signing import jsonbody
from asyncdex.signing.eip712 import Domain, SignatureError, parse_address, recover_address
from asyncdex.signing.intake import (
    DEFAULT_LIMITS,
    BodyTooLarge,
    Intake,
    IntakeError,
    IntakeLimits,
    MalformedBody,
    ParsedIntent,
)
from asyncdex.signing.verify_pool import VerifierPool
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import MAX_COLLATERAL, MAX_MARKET_BOUND, format_scaled, format_usdc
from asyncdex.types.packing import new_packer, unpack

_log = logging.getLogger(__name__)

JOURNAL_SUBDIR = "journal"
SNAPSHOT_SUBDIR = "snapshots"
LOOPBACK = "127.0.0.1"
DEFAULT_SNAPSHOT_EVERY = 10_000
DEFAULT_INDEX_CAPACITY = 100_000
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
    settlement: SettlementSettings | None = None  # None: the node does not settle
    index_capacity: int = DEFAULT_INDEX_CAPACITY  # records whose intent id and events are kept
    # Built at start, after recovery, in this order: each gets the node and adds its routes
    # and listeners (see ``NodeExtension``).
    extensions: tuple[ExtensionFactory, ...] = ()
    # Processes recovering signatures of POST /v1/intents (0: in the event loop itself).
    verify_workers: int = 0
    # Request-weight budgets per client IP and per address on every door (None: none, as
    # for a node embedded in a test; ``asyncdex node`` sets Hyperliquid's by default).
    rate_limits: RateLimits | None = None
    # WebSocket sockets per door (/v1/ws, /ws) and per client address on each
    connection_caps: ConnectionCaps = DEFAULT_CONNECTION_CAPS
    # Start even when the journal ends below a snapshot's seq (acknowledged records lost);
    # otherwise recovery refuses with JournalLoss (see asyncdex.sequencer.recovery).
    accept_journal_loss: bool = False
    # A seat in a sequencer committee: intents are ordered by the committee's consensus and
    # executed from its committed blocks (None: this node orders alone).
    committee: CommitteeSettings | None = None
    # The engine implementation ("reference" or "native"; None: native when it is built,
    # else the reference with a warning). Both serve the same responses.
    engine: str | None = None


class NodeExtension(Protocol):
    """A part of the node beside the native HTTP API (WebSocket streams, the Hyperliquid API,
    metrics, the oracle door): made by its factory once the engine state is recovered.

    ``install`` adds routes to the app before it starts; listeners registered with
    :meth:`Node.add_listener` see every applied record. ``close`` runs at shutdown after new
    connections stop and before in-flight requests are awaited: close long-lived sockets
    there.
    """

    def install(self, app: web.Application) -> None: ...

    async def close(self) -> None: ...


ExtensionFactory = Callable[["Node"], NodeExtension]
Listener = Callable[[Sequenced, list[Event]], None]


class SubmitRefused(Exception):
    """``Node.submit_intents`` did not acknowledge: nothing of the request was sequenced
    (but for :class:`OutcomeUnknown`, which names the intents that may have been).

    ``status`` is the HTTP status the native API answers with; ``code`` and ``index`` as in
    every error body.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        index: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.index = index
        self.retry_after_ms = retry_after_ms  # a rate limit's hint (429)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": str(self), "code": self.code}
        if self.index is not None:
            body["index"] = self.index
        if self.retry_after_ms is not None:
            body["retryAfterMs"] = self.retry_after_ms
        return body

    def reindexed(self, positions: Sequence[int]) -> SubmitRefused:
        """This refusal of ``[request[i] for i in positions]``, told about the request."""
        if self.index is None:
            return self
        index = positions[self.index]
        message = str(self)
        prefix = f"intent {self.index}:"
        if message.startswith(prefix):
            message = f"intent {index}:" + message[len(prefix) :]
        return SubmitRefused(self.status, self.code, message, index, self.retry_after_ms)

    def response(self) -> web.Response:
        headers = {}
        if self.retry_after_ms is not None:
            headers["Retry-After"] = str(-(-self.retry_after_ms // 1000))
        return web.json_response(self.to_json(), status=self.status, headers=headers)


class OutcomeUnknown(SubmitRefused):
    """The journal failed while some of the request's intents may have reached it.

    ``unknown`` lists ``(index in the request, receipt it would have had)`` for each of them:
    after the node restarts each one is either in the journal with that receipt, or absent.
    Every other intent of the request is certainly absent.
    """

    def __init__(self, unknown: list[tuple[int, Receipt]]) -> None:
        super().__init__(
            503,
            "outcome_unknown",
            f"journal failure: the outcome of {len(unknown)} intent(s) is unknown (resolve by "
            "intent id or by resending the same bytes once the node is back); the rest of the "
            "request was not sequenced",
        )
        self.unknown = unknown

    def reindexed(self, positions: Sequence[int]) -> SubmitRefused:
        return OutcomeUnknown([(positions[index], receipt) for index, receipt in self.unknown])

    def unknown_json(self) -> list[dict[str, Any]]:
        """``unknown`` as every door lists it: ``{index, intentId, seq, timestamp}`` each."""
        return [{"index": index, **_receipt_json(receipt)} for index, receipt in self.unknown]

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["unknown"] = self.unknown_json()
        return body


# ---------------------------------------------------------------------------------------------
# System commands (operator door)


class SystemCommandError(IntakeError):
    code = "invalid_system_command"


_UINT64_MAX = (1 << 64) - 1
_UINT32_MAX = (1 << 32) - 1


def _uint(obj: dict[str, Any], key: str, index: int, limit: int = _UINT64_MAX) -> int:
    """A non-negative integer up to ``limit``: what the engine can hold (an amount past
    ``MAX_COLLATERAL`` is refused here, before it is sequenced)."""
    value = obj.get(key)
    if type(value) is not int or not 0 <= value <= limit:
        raise SystemCommandError(
            f"command {index}: {key} must be an integer in 0..{limit}", index=index, field=key
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
                    _uint(obj, "amount", index, MAX_COLLATERAL),
                    _uint(obj, "l1Index", index),
                )
            )
        elif kind == "oraclePrice":
            commands.append(
                PublishOraclePrice(
                    _address(obj, "publisher", index),
                    _uint(obj, "market", index, _UINT32_MAX),
                    _uint(obj, "price", index, MAX_MARKET_BOUND),
                )
            )
        else:
            commands.append(AdvanceTime())
    return commands


# ---------------------------------------------------------------------------------------------
# Record index: what status queries read


def wire_intent_of(signed: Signed) -> wire.Intent | None:
    """The wire intent a journaled envelope was made from (:mod:`asyncdex.signing.mapping`
    inverted), so its intent id can be recomputed from the journal. None for an
    ``ApproveAgent``, whose agent name the engine command does not keep."""
    nonce, expires = signed.nonce, signed.expires_after
    command = signed.command
    match command:
        case engine_commands.PlaceOrder():
            return wire.PlaceOrder(
                command.account, nonce, expires, command.market, command.is_buy, command.price,
                command.size, command.order_type, command.tif, command.reduce_only,
                command.client_id.to_bytes(16, "big"), command.expiry, command.trigger_price,
                command.trigger_kind,
            )  # fmt: skip
        case engine_commands.CancelOrder():
            return wire.Cancel(command.account, nonce, expires, command.market, command.order_id)
        case engine_commands.CancelByClientId():
            return wire.CancelByClientId(
                command.account,
                nonce,
                expires,
                command.market,
                command.client_id.to_bytes(16, "big"),
            )
        case engine_commands.CancelAll():
            every = command.market == engine_commands.ALL_MARKETS
            market = wire.ALL_MARKETS if every else command.market
            return wire.CancelAll(command.account, nonce, expires, market)
        case engine_commands.ModifyOrder():
            return wire.Modify(
                command.account, nonce, expires, command.market, command.order_id, command.price,
                command.size,
            )  # fmt: skip
        case engine_commands.ScheduleCancel():
            return wire.ScheduleCancel(command.account, nonce, expires, command.at_time)
        case engine_commands.SetLeverage():
            return wire.SetLeverage(
                command.account, nonce, expires, command.market, command.leverage,
                command.isolated,
            )  # fmt: skip
        case engine_commands.UpdateIsolatedMargin():
            return wire.UpdateIsolatedMargin(
                command.account, nonce, expires, command.market, command.delta
            )
        case engine_commands.Withdraw():
            return wire.Withdraw(command.account, nonce, expires, command.amount, command.account)
    return None


def intent_id_of(domain: Domain, record: Record) -> bytes | None:
    """The intent id (EIP-712 digest) of a journaled trader intent, or None."""
    command = record.command
    if type(command) is not Signed:
        return None
    intent = wire_intent_of(command)
    if intent is None:
        return None
    try:
        digest = wire.intent_digest(domain, intent)
    except wire.MalformedIntent:
        return None  # not something the native intake produced
    if type(intent) is wire.Withdraw:
        # The Hyperliquid API journals withdrawals as the same envelope, signed over its own
        # message: the native digest is theirs only if the signature is over it. (Withdrawals
        # are rare; every other Hyperliquid action is a Batch, which has no native form.)
        try:
            if recover_address(digest, record.signature) != command.signer:
                return None
        except SignatureError:
            return None
    return digest


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def event_json(event: Event) -> dict[str, Any]:
    """``{"type": EventName, field: value, ...}``: camelCase fields, bytes as 0x-hex, and a
    ``reasonName`` beside a rejection's numbered reason."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for name, value in zip(event._fields, event, strict=True):
        out[_camel(name)] = "0x" + value.hex() if isinstance(value, bytes) else value
    if type(event) is Rejected:
        try:
            out["reasonName"] = Reject(event.reason).name
        except ValueError:
            out["reasonName"] = None
    return out


class RecordIndex:
    """The newest records for status queries: intent id -> seq, seq -> (intent id, events).

    Bounded to ``capacity`` entries each, oldest dropped first. An intent id keeps its first
    seq: a resubmitted intent is sequenced again but only the first spends its nonce.

    Each record is kept as one packed ``bytes`` (:mod:`asyncdex.types.packing`: intent id and
    its events as ``[tag, *fields]``) and rebuilt when read: the cycle collector never
    tracks bytes, and a hundred thousand records of tracked events and tuples made every full
    collection a long pause.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the record index holds at least one record")
        self.capacity = capacity
        self._seq_of: OrderedDict[bytes, int] = OrderedDict()
        self._records: OrderedDict[int, bytes] = OrderedDict()
        self._pack = new_packer().pack

    def add(self, seq: int, intent_id: bytes | None, events: list[Event] | None) -> None:
        if intent_id:
            seq_of = self._seq_of
            if intent_id not in seq_of:
                seq_of[intent_id] = seq
                if len(seq_of) > self.capacity:
                    seq_of.popitem(last=False)
        records = self._records
        kept = None
        if events is not None:
            tags = EVENT_TAG
            kept = [(tags[type(event)], *event) for event in events]
        records[seq] = self._pack((intent_id or None, kept))
        if len(records) > self.capacity:
            records.popitem(last=False)

    def seq_of(self, intent_id: bytes) -> int | None:
        return self._seq_of.get(intent_id)

    def record(self, seq: int) -> tuple[bytes | None, list[Event] | None]:
        packed = self._records.get(seq)
        if packed is None:
            return None, None
        intent_id, kept = unpack(packed, use_list=False)
        if kept is None:
            return intent_id, None
        types = EVENT_TYPES
        return intent_id, [tuple.__new__(types[item[0]], item[1:]) for item in kept]


# ---------------------------------------------------------------------------------------------
# Read-only market data: parameters and JSON shapes

MAX_BOOK_DEPTH = 100
DEFAULT_BOOK_DEPTH = 20
MAX_LIST_LIMIT = 1_000
DEFAULT_LIST_LIMIT = 100
MAX_TIME_MS = 2**63 - 1


class BadParameter(ValueError):
    """A query or path parameter the read endpoints refuse (400)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _query(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters, each at most once and each one the endpoint knows."""
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            raise BadParameter(f"unknown query parameter {key!r}", "unknown_parameter")
        if key in out:
            raise BadParameter(f"query parameter {key!r} given twice", "duplicate_parameter")
        out[key] = value
    return out


def _uint_text(text: str, low: int, high: int) -> int | None:
    """The integer ``text`` spells in ASCII digits if it is in low..high (``high`` < 10^19),
    else None: the one parser of every integer in a native query or path."""
    # digits only: int() would also take signs, spaces, underscores and other scripts' digits
    # ("²".isdigit() is true, and int("²") raises)
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        return None
    return int(text)


def _int_parameter(
    query: dict[str, str], name: str, default: int, low: int, high: int, code: str
) -> int:
    text = query.get(name)
    if text is None:
        return default
    value = _uint_text(text, low, high)
    if value is None:
        raise BadParameter(f"{name} must be an integer in {low}..{high}", code)
    return value


def _time_range(query: dict[str, str]) -> tuple[int, int]:
    start = _int_parameter(query, "start", 0, 0, MAX_TIME_MS, "invalid_start")
    end = _int_parameter(query, "end", MAX_TIME_MS, 0, MAX_TIME_MS, "invalid_end")
    if start > end:
        raise BadParameter("start must not be after end", "invalid_time_range")
    return start, end


def _bad_parameter(error: BadParameter) -> web.Response:
    return web.json_response({"error": str(error), "code": error.code}, status=400)


def _price(spec: MarketSpec, value: int | None) -> str | None:
    """A price in engine units as a decimal string; None (JSON null) for no price."""
    return None if not value else format_scaled(value, spec.price_decimals)


def _size(spec: MarketSpec, value: int) -> str:
    return format_scaled(value, spec.sz_decimals)


def _market_json(market: MarketState) -> dict[str, Any]:
    spec = market.spec
    return {
        "marketId": spec.market_id,
        "symbol": spec.symbol,
        "szDecimals": spec.sz_decimals,
        "tick": _price(spec, spec.tick),
        "lot": _size(spec, spec.lot),
        "minOrderValue": format_usdc(spec.min_order_value),
        "maxLeverage": spec.max_leverage,
        "initialMarginPpm": spec.initial_margin_ppm,
        "maintenanceMarginPpm": spec.maintenance_margin_ppm,
        "makerFeePpm": spec.maker_fee_ppm,
        "takerFeePpm": spec.taker_fee_ppm,
        "fundingIntervalMs": spec.funding_interval_ms,
        "markPrice": _price(spec, market.mark_price),
        "indexPrice": _price(spec, market.index_price),
        "bestBid": _price(spec, market.book.best_bid()),
        "bestAsk": _price(spec, market.book.best_ask()),
        "fundingRatePpb": market.funding_rate_ppb,
        "cumulativeFunding": str(market.cumulative_funding),
        "nextFundingTime": market.next_funding,
    }


def _order_json(spec: MarketSpec, order: Order, armed: bool = False) -> dict[str, Any]:
    """An open order; ``armed``: a trigger waiting for its price (not in the book)."""
    # On a batch-auction market an IOC or market order waits in the book for the next
    # auction and is cancelled after it if unfilled: it never rests, unlike GTC and ALO.
    waiting = (
        spec.auction_interval_ms > 0
        and not armed
        and (order.tif == TimeInForce.IOC or order.order_type == OrderType.MARKET)
    )
    return {
        "orderId": order.order_id,
        "market": order.market,
        "symbol": spec.symbol,
        "side": "buy" if order.is_buy else "sell",
        "price": _price(spec, order.price),
        "size": _size(spec, order.size),
        "origSize": _size(spec, order.orig_size),
        "orderType": order.order_type,
        "tif": order.tif,
        "reduceOnly": order.reduce_only,
        "clientId": "0x" + order.client_id.to_bytes(16, "big").hex(),
        "expiry": order.expiry,
        "triggerKind": order.trigger_kind,
        "triggerPrice": _price(spec, order.trigger_price),
        "timestamp": order.timestamp,
        "waitingForAuction": waiting,
    }


# ---------------------------------------------------------------------------------------------
# The node


def _json_error(error: IntakeError) -> web.Response:
    return web.json_response(error.to_json(), status=error.status)


def _not_found(message: str, code: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=404)


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "intentId": "0x" + receipt.intent_id.hex() if receipt.intent_id else None,
        "seq": receipt.seq,
        "timestamp": receipt.timestamp,
    }


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it is known to exceed ``limit`` bytes.

    Reads at most one byte past the limit, so a body without Content-Length (chunked) cannot
    make the node buffer more than that; ``read(n)`` returns what has arrived, so it reads
    until the end.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(f"body of {length} bytes exceeds {limit}")
    chunks = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise BodyTooLarge(f"body exceeds {limit} bytes")
    return b"".join(chunks)


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
        self._settlement: SettlementService | None = None
        self.index = RecordIndex(settings.index_capacity)
        self.market_data = MarketData(len(settings.engine_config.markets))
        self._market_ids = {spec.symbol: spec.market_id for spec in settings.engine_config.markets}
        self._openapi = openapi_document()
        self.precheck: Precheck | None = None
        self._root_cache: tuple[int, bytes] | None = None  # (applied seq, state root)
        self.engine_name = "reference"  # what runs, as /v1/status says it; set at start
        # intent id -> its first receipt (seq, timestamp) and its (signer, nonce), so a
        # resubmitted intent is answered, not re-sequenced (flat tuples of atomic values, which
        # the cycle collector stops tracking); see ``_remember_receipt``
        self._acknowledged: OrderedDict[bytes, tuple[int, int, bytes, int]] = OrderedDict()
        # at start only: the (signer, nonce) of the indexed tail's intents, and its first seq
        self._tail_nonces: set[tuple[bytes, int]] = set()
        self._tail_first_seq = 0
        self._listeners: list[Listener] = []
        self.rate_limiter: RateLimiter | None = None
        if settings.rate_limits is not None:
            self.rate_limiter = RateLimiter(settings.rate_limits, settings.clock)
            self._listeners.append(self.rate_limiter.on_record)
        self._extensions: list[NodeExtension] = []
        # seq -> futures of ``wait_applied`` callers, resolved with the record's events
        self._applied_waiters: dict[int, list[asyncio.Future[list[Event]]]] = {}
        self.verifier: VerifierPool | None = None
        self._collector: FullCollections | None = None
        self._collector_task: asyncio.Task[None] | None = None
        self._venue_extras: dict[str, Any] = {}  # what extensions add to GET /v1/venue
        self.committee: CommitteeVenue | None = None
        # committee mode: intent id -> its item (the signed intent's bytes), from verification
        # until the intent is handed to the committee
        self._committee_items: OrderedDict[bytes, bytes] = OrderedDict()
        # committee mode: intent id -> futures of ``wait_outcome`` callers (its seq comes late)
        self._intent_waiters: dict[bytes, list[asyncio.Future[tuple[int, list[Event]]]]] = {}
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        settings = self.settings
        self._stop_requested = asyncio.Event()
        data = Path(settings.data_dir)
        kind, warning = choose_engine(settings.engine)
        if warning is not None:
            _log.warning(warning, extra={"event": "engine_fallback"})
        if settings.settlement is None:
            recovered = recover(
                data / JOURNAL_SUBDIR,
                data / SNAPSHOT_SUBDIR,
                settings.engine_config,
                accept_loss=settings.accept_journal_loss,
                engine_kind=kind,
            )
        else:
            # The settlement replay opens the journal itself: refuse a journal behind its
            # snapshots first (JournalLoss), exactly as recover() does.
            open_journal(
                data / JOURNAL_SUBDIR,
                data / SNAPSHOT_SUBDIR,
                accept_loss=settings.accept_journal_loss,
            )[0].close()
            self._settlement = SettlementService(
                settings.settlement, settings.engine_config, settings.clock
            )
            recovered = self._settlement.recover(
                data / JOURNAL_SUBDIR,
                self._index_replayed,
                tail=settings.index_capacity,
                engine_kind=kind,
            )
        self.recovered = recovered
        self._journal = recovered.journal
        # what runs: recovery may have fallen back to the reference (a journal the native
        # core cannot run; it says why in its own warning)
        self.engine_name = recovered.engine.kind
        _log.info(
            "engine: %s", self.engine_name, extra={"event": "engine", "engine": self.engine_name}
        )
        _log.info(
            "recovered: snapshot seq %d, replayed %d, last seq %d, root 0x%s%s",
            recovered.snapshot_seq,
            recovered.replayed,
            recovered.last_seq,
            recovered.state_root.hex(),
            f", cut torn tail of {recovered.report.truncated_bytes} bytes"
            if recovered.report.truncated
            else "",
            extra={
                "event": "recovered",
                "snapshot_seq": recovered.snapshot_seq,
                "replayed": recovered.replayed,
                "last_seq": recovered.last_seq,
                "state_root": "0x" + recovered.state_root.hex(),
                "truncated_bytes": recovered.report.truncated_bytes,
            },
        )
        for skipped in recovered.skipped_snapshots:
            _log.warning("snapshot %s skipped: %s", skipped.path, skipped.reason)
        try:
            if settings.settlement is None:  # a settling node indexed its replay
                self._index_journal_tail(recovered.journal, recovered.last_seq)
            self._index_nonce_window(recovered)
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
                on_events=self._on_events,
            )
            self._sequencer.add_consumer(self._consume)
            if settings.committee is None:
                self.precheck = Precheck(recovered.engine)
            else:
                # Every member executes what the committee ordered, from any member: a local
                # precheck of in-flight intents would see only this member's share of them.
                self.committee = CommitteeVenue(
                    settings.committee,
                    settings.domain,
                    self._sequencer,
                    recovered.journal,
                    data,
                    settings.clock,
                )
                self.committee.executor.on_failure = lambda _: self.request_stop(EXIT_FAULT)
                if self._settlement is not None:
                    # batch signatures travel on the committee's own authenticated links
                    self.committee.connect_settlement(self._settlement)
                await self.committee.start()
            # long-lived state recovered: out of the collector's sight from now on
            gc.collect()
            gc.freeze()
            sequencer = self._sequencer
            self._collector = FullCollections(lambda: sequencer.next_seq)
            self._collector.install()
            self._collector_task = asyncio.get_running_loop().create_task(self._collector.run())

            if settings.verify_workers > 0:
                self.verifier = VerifierPool(
                    settings.domain, settings.verify_workers, settings.limits
                )
                await self.verifier.start()
            app = web.Application(client_max_size=settings.limits.max_body_bytes + 1)
            app.router.add_post("/v1/intents", self.handle_intents)
            app.router.add_post("/v1/sealed", self.handle_sealed)
            app.router.add_get("/v1/intents/{intent_id}", self.handle_intent_status)
            app.router.add_get("/v1/seq/{seq}", self.handle_seq_status)
            app.router.add_get("/v1/withdrawals/{withdrawal_id}/proof", self.handle_withdrawal)
            app.router.add_post("/v1/system", self.handle_system)
            app.router.add_post("/v1/dev/deposit", self.handle_dev_deposit)
            app.router.add_get("/v1/status", self.handle_status)
            app.router.add_get("/v1/health", self.handle_health)
            app.router.add_get("/v1/openapi.json", self.handle_openapi)
            app.router.add_get("/v1/venue", self.handle_venue)
            app.router.add_get("/v1/markets", self.handle_markets)
            app.router.add_get("/v1/markets/{symbol}/book", self.handle_book)
            app.router.add_get("/v1/markets/{symbol}/trades", self.handle_trades)
            app.router.add_get("/v1/markets/{symbol}/candles", self.handle_candles)
            app.router.add_get("/v1/markets/{symbol}/funding", self.handle_funding)
            app.router.add_get("/v1/accounts/{address}", self.handle_account)
            app.router.add_get("/v1/accounts/{address}/orders", self.handle_account_orders)
            app.router.add_get("/v1/accounts/{address}/fills", self.handle_account_fills)
            if self.rate_limiter is not None:
                self.rate_limiter.install(app)
            for factory in settings.extensions:
                extension = factory(self)
                extension.install(app)
                self._extensions.append(extension)
            self._runner = web.AppRunner(
                app, access_log=None, shutdown_timeout=settings.shutdown_timeout
            )
            await self._runner.setup()
            self._site = web.TCPSite(self._runner, LOOPBACK, settings.port)
            await self._site.start()
            if self._settlement is not None:
                await self._settlement.start(self._submit_commands)
        except BaseException:
            if self.committee is not None:
                await self.committee.stop()
            if self._collector_task is not None:
                self._collector_task.cancel()
            if self._collector is not None:
                self._collector.uninstall()
            if self._settlement is not None:
                await self._settlement.stop()
            if self.verifier is not None:
                self.verifier.close()
            await self._close_storage()
            raise
        self.port = int(self._runner.addresses[0][1])
        _log.info(
            "listening on %s",
            self.url,
            extra={
                "event": "listening",
                "url": self.url,
                "settlement": self._settlement is not None,
                "engine": self.engine_name,
                "verify_workers": settings.verify_workers,
                "extensions": [type(extension).__name__ for extension in self._extensions],
            },
        )

    def _index_replayed(self, seq: int, record: Record, events: list[Event]) -> None:
        intent_id = intent_id_of(self.settings.domain, record)
        self.index.add(seq, intent_id, events)
        self._remember_journaled(seq, record, intent_id)
        self.market_data.add(seq, record.timestamp, events)

    def _remember_journaled(self, seq: int, record: Record, intent_id: bytes | None) -> None:
        """At start: a journaled intent's first receipt, so a retry of it is answered with
        that receipt after a restart as before it."""
        command = record.command
        if type(command) is Signed:
            self._tail_nonces.add((command.signer, command.nonce))
        if intent_id:
            self._remember_receipt(intent_id, seq, record.timestamp, command)
        if self._tail_first_seq == 0:
            self._tail_first_seq = seq

    def _index_journal_tail(self, journal: FileJournal, last_seq: int) -> None:
        """Intent ids and first receipts of the journal's newest records (their events are
        not known: the engine state they ran against was restored from a snapshot)."""
        first = max(journal.first_seq, last_seq - self.settings.index_capacity + 1)
        if last_seq < first:
            return
        records = journal.read(first)
        try:
            for seq, payload in records:
                if seq > last_seq:
                    break
                record = decode_trusted_record(payload)
                intent_id = intent_id_of(self.settings.domain, record)
                self.index.add(seq, intent_id, None)
                self._remember_journaled(seq, record, intent_id)
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()

    def _index_nonce_window(self, recovered: Recovered) -> None:
        """First receipts of the records older than the indexed tail whose nonce the engine
        still holds as used: a retry of any of them would otherwise be refused
        (``nonce_already_used``) although it is in the journal.

        Reads the journal backwards a segment at a time and stops once every such nonce is
        found, so it costs nothing when the tail already holds them all (the common case)
        and at most the nonce window (a few days) of journal otherwise.
        """
        journal, tail_first = recovered.journal, self._tail_first_seq
        tail_nonces, self._tail_nonces = self._tail_nonces, set()
        if tail_first == 0:
            tail_first = recovered.last_seq + 1
        horizon = self.settings.clock() - NONCE_PAST_MS
        wanted = {
            (signer, nonce)
            for signer, kept in recovered.engine.state.nonces.items()
            for nonce in kept
            if nonce > horizon and (signer, nonce) not in tail_nonces
        }
        firsts = [first for first in journal.segment_first_seqs if first < tail_first]
        found: list[tuple[bytes, int, int, bytes, int]] = []
        end = tail_first
        domain = self.settings.domain
        for first in reversed(firsts):
            if not wanted:
                break
            records = journal.read(first)
            try:
                for seq, payload in records:
                    if seq >= end:
                        break
                    record = decode_trusted_record(payload)
                    command = record.command
                    if type(command) is not Signed:
                        continue
                    pair = (command.signer, command.nonce)
                    if pair in wanted:
                        wanted.discard(pair)
                        intent_id = intent_id_of(domain, record)
                        if intent_id:
                            found.append((intent_id, seq, record.timestamp, *pair))
            finally:
                close = getattr(records, "close", None)
                if close is not None:
                    close()
            end = first
        acknowledged = self._acknowledged
        # older than the tail: first in line when the index drops its oldest entries
        found.sort(key=lambda item: item[1], reverse=True)
        for intent_id, seq, timestamp, signer, nonce in found:
            if intent_id not in acknowledged:
                acknowledged[intent_id] = (seq, timestamp, signer, nonce)
                acknowledged.move_to_end(intent_id, last=False)

    def _remember_receipt(
        self, intent_id: bytes, seq: int, timestamp: int, command: Command
    ) -> None:
        """Keep an intent's first receipt for retries: the newest ``index_capacity`` intents,
        and beyond them every one whose nonce the engine still holds as used (a retry of it
        would otherwise be refused although it is in the journal), as a restart rebuilds."""
        acknowledged = self._acknowledged
        if intent_id in acknowledged:
            return  # an intent keeps its first receipt
        signer, nonce = (command.signer, command.nonce) if type(command) is Signed else (b"", 0)
        acknowledged[intent_id] = (seq, timestamp, signer, nonce)
        if len(acknowledged) > self.settings.index_capacity:
            oldest, (_, _, signer, nonce) = next(iter(acknowledged.items()))
            if signer and self._nonce_held(signer, nonce):
                # to the back of the line: looked at again once the newer ones were
                acknowledged.move_to_end(oldest)
            else:
                acknowledged.popitem(last=False)

    def _nonce_held(self, signer: bytes, nonce: int) -> bool:
        """Would the engine still refuse this nonce as used?"""
        kept = self.state.nonces.get(signer)
        if not kept or nonce <= self.settings.clock() - NONCE_PAST_MS:
            return False
        at = bisect_left(kept, nonce)
        return at < len(kept) and kept[at] == nonce

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
        started = time.monotonic()
        _log.info("stopping", extra={"event": "stopping", "exit_code": self.exit_code})
        # 0. No more ticks, L1 messages or commits: what settlement sequences must be in
        #    before the sequencer closes. An open batch stays open; the replay at the next
        #    start re-cuts it identically.
        if self._settlement is not None:
            await self._settlement.stop()
        # 0b. A committee member stops ordering: its intake log holds every acknowledged
        #     intent, which it proposes again after a restart if no block has it yet.
        if self.committee is not None:
            await self.committee.stop()
        # 1. No new connections; requests on open connections now get 503.
        if self._site is not None:
            await self._site.stop()
        for extension in self._extensions:
            try:
                await extension.close()
            except Exception:
                _log.exception("extension %s failed to close", type(extension).__name__)
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
        if self.verifier is not None:
            self.verifier.close()
        # 4. Snapshot what was applied so the next start replays nothing, unless the engine
        #    faulted: a snapshot of a state that diverged from the journal would persist it.
        executor, snapshots = self._executor, self._snapshots
        if executor is not None and snapshots is not None and not self._engine_faulted:
            try:
                if self._snapshot_seq() != executor.last_seq:
                    snapshots.save_engine(executor.last_seq, executor.engine)
            except OSError:
                _log.exception("final snapshot failed; the next start replays the tail")
        await self._close_storage()
        self._fail_waiters()
        if self._collector_task is not None:
            self._collector_task.cancel()
        if self._collector is not None:
            self._collector.uninstall()
        _log.info(
            "stopped",
            extra={
                "event": "stopped",
                "exit_code": self.exit_code,
                "applied_seq": executor.last_seq if executor is not None else None,
                "elapsed_ms": round((time.monotonic() - started) * 1000),
            },
        )

    def _fail_waiters(self) -> None:
        intent_waiters, self._intent_waiters = self._intent_waiters, {}
        for intent_futures in intent_waiters.values():
            for intent_future in intent_futures:
                if not intent_future.done():
                    intent_future.set_exception(SequencerClosed("the node stopped"))
        waiters, self._applied_waiters = self._applied_waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(SequencerClosed("the node stopped before applying"))

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
        executor = self._executor
        assert executor is not None
        if self._engine_faulted:
            return  # the engine state is no longer trustworthy; the node is stopping
        precheck = self.precheck
        try:
            if self._settlement is None:
                executor(batch)
            else:
                # A cut needs the state before the record that falls past the batch window.
                before_record = self._settlement.before_record
                for record in batch:
                    before_record(record.timestamp)
                    executor((record,))
        except Exception:
            # The records are durable, so the journal stays right; only this process's
            # engine state is wrong. Stop, and let recovery rebuild it from the journal.
            _log.exception("engine fault while applying seqs %d..%d", batch[0].seq, batch[-1].seq)
            self._engine_faulted = True
            self.request_stop(EXIT_FAULT)
        finally:
            if precheck is not None:
                precheck.release(record.command for record in batch)

    def _on_events(self, record: Sequenced, events: list[Event]) -> None:
        self.index.add(record.seq, record.intent_id, events)
        self.market_data.add(record.seq, record.timestamp, events)
        if self._settlement is not None:
            self._settlement.after_record(record.seq, record.timestamp, events)
        for listener in self._listeners:
            try:
                listener(record, events)
            except Exception:
                # a stream or metric must never stop the engine; the record is applied
                _log.exception("listener failed on seq %d", record.seq)
        waiters = self._applied_waiters.pop(record.seq, None)
        if waiters is not None:
            for future in waiters:
                if not future.done():
                    future.set_result(events)
        if self._intent_waiters and record.intent_id:
            for intent_future in self._intent_waiters.pop(record.intent_id, ()):
                if not intent_future.done():
                    intent_future.set_result((record.seq, events))

    # ----------------------------------------------------------------- for extensions

    @property
    def state(self) -> StateReader:
        """The engine state after ``applied_seq`` (read only: never change it)."""
        return self._state()

    @property
    def applied_seq(self) -> int:
        assert self._executor is not None
        return self._executor.last_seq

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def settlement(self) -> SettlementService | None:
        """The settlement service (None when the node does not settle); read it, never drive it."""
        return self._settlement

    @property
    def journal(self) -> FileJournal | None:
        return self._journal

    @property
    def committer(self) -> GroupCommitter | None:
        """The journal's group committer: read its ``stats``, never drive it."""
        return self._committer

    @property
    def last_seq(self) -> int:
        """The last seq handed out (durable or about to be)."""
        assert self._sequencer is not None
        return self._sequencer.next_seq - 1

    def record_status(self, seq: int) -> dict[str, Any]:
        """What ``GET /v1/seq/{seq}`` answers: status, events, batch and tx hash of a record."""
        return self._record_json(seq)

    def add_venue_info(self, key: str, value: Any) -> None:
        """Answer ``value`` under ``key`` in ``GET /v1/venue`` (an extension's facts a client
        needs, such as the Hyperliquid API's network)."""
        self._venue_extras[key] = value

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(record, events)`` on the event loop after each record is applied,
        in seq order (records replayed at start are not shown)."""
        self._listeners.append(listener)

    async def wait_applied(self, seq: int) -> list[Event] | None:
        """The events of record ``seq`` once the engine has applied it (None if that was so
        long ago the index no longer keeps them). Raises ``SequencerClosed`` if the node
        stops first."""
        if seq <= self.applied_seq:
            return self.index.record(seq)[1]
        if self._stopped:
            raise SequencerClosed("the node is stopping")
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._applied_waiters.setdefault(seq, []).append(future)
        return await future

    async def wait_outcome(self, receipt: Receipt) -> tuple[int, list[Event] | None]:
        """The seq an acknowledged intent executed at, and its events (None if the index no
        longer keeps them), once the engine applied it: on a committee member the receipt
        has no seq yet, so the intent is waited for by its id. Raises ``SequencerClosed``
        if the node stops first."""
        if self.committee is None or receipt.seq:
            return receipt.seq, await self.wait_applied(receipt.seq)
        seq = self.index.seq_of(receipt.intent_id)
        if seq is not None:
            return seq, self.index.record(seq)[1]
        if self._stopped:
            raise SequencerClosed("the node is stopping")
        future: asyncio.Future[tuple[int, list[Event]]] = asyncio.get_running_loop().create_future()
        self._intent_waiters.setdefault(receipt.intent_id, []).append(future)
        return await future

    def relay(self, submission: Submission, scheme: str, inputs: list[Any]) -> None:
        """Committee mode: what the client signed for ``submission`` in another signing scheme
        than native intents' (``asyncdex.committee.items`` SCHEME_*), so every member can check
        the signer; call before ``submit_intents``. Nothing to do on a single node."""
        committee = self.committee
        if committee is None:
            return
        command = submission.command
        item = committee.relayed_item(scheme, inputs, command, submission.signature)
        self._committee_items[submission.intent_id] = item

    async def verify_body(self, body: bytes, content_type: str) -> list[Submission]:
        """Decode and verify a native intents body (``POST /v1/intents``'s forms): in the
        worker processes when the node has them. Raises ``IntakeError`` (and
        ``BrokenProcessPool`` if a worker died)."""
        verifier = self.verifier
        if verifier is None:
            submissions = self.intake.process(body, content_type)
        else:
            submissions = await verifier.process(body, content_type)
        if self.committee is not None:
            self.note_signed_intents(self.intake.decode(body, content_type), submissions)
        return submissions

    def note_signed_intents(
        self, parsed: Sequence[ParsedIntent], submissions: Sequence[Submission]
    ) -> None:
        """Committee mode: keep the signed bytes of verified native intents, which the
        committee orders (every member verifies them itself); nothing on a single node."""
        if self.committee is None:
            return
        items = self._committee_items
        for (intent, signature), submission in zip(parsed, submissions, strict=True):
            signed = wire.SignedIntent(intent, signature, b"")
            items[submission.intent_id] = intent_item(wire.encode_signed_intent(signed))
            items.move_to_end(submission.intent_id)
        while len(items) > self.settings.index_capacity:
            items.popitem(last=False)

    async def submit_intents(self, submissions: list[Submission]) -> list[Receipt]:
        """Acknowledge verified intents: the first receipts for a retry, else precheck and
        sequence them; returns once all of them are durable.

        Raises :class:`SubmitRefused` when nothing was acknowledged (precheck refusal,
        shutting down, journal failure, internal fault).

        A request holding some acknowledged intents and some new ones (resent after an
        ``outcome_unknown`` that journaled part of it) gets the first receipts of the former
        and sequences only the latter, in one go; indexes in errors are the request's.
        """
        if self._draining:
            raise SubmitRefused(503, "shutting_down", "node is shutting down")
        acknowledged = self._acknowledged
        known = [acknowledged.get(submission.intent_id) for submission in submissions]
        if all(first is not None for first in known):
            # the same signed intents again (a client's retry): the first receipts, nothing new
            return [
                Receipt(submission.intent_id, first[0], first[1])
                for submission, first in zip(submissions, known, strict=True)
                if first is not None
            ]
        if any(first is not None for first in known):
            positions = [index for index, first in enumerate(known) if first is None]
            try:
                fresh = await self.submit_intents([submissions[index] for index in positions])
            except SubmitRefused as refusal:
                raise refusal.reindexed(positions) from None
            merged = iter(fresh)
            return [
                next(merged) if first is None else Receipt(submission.intent_id, first[0], first[1])
                for submission, first in zip(submissions, known, strict=True)
            ]
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.charge_addresses(
                    address_requests(submission.command for submission in submissions)
                )
            except RateLimited as limited:
                raise SubmitRefused(
                    429, "rate_limited", str(limited), retry_after_ms=limited.retry_after_ms
                ) from None
        precheck = self.precheck
        if precheck is not None:
            try:
                # what the engine's authorization would refuse never reaches the journal
                precheck.check(submissions, self.settings.clock())
            except PrecheckRefused as refusal:
                raise SubmitRefused(400, refusal.code, str(refusal), refusal.index) from None
        try:
            receipts = await self._sequence(submissions)
        except SubmitRefused:
            if precheck is not None:
                # not acknowledged: no longer in flight; what was acknowledged is released
                # when the engine applies it (``_consume``)
                precheck.release(submission.command for submission in submissions)
            raise
        for receipt, submission in zip(receipts, submissions, strict=True):
            if receipt.intent_id:
                self._remember_receipt(
                    receipt.intent_id, receipt.seq, receipt.timestamp, submission.command
                )
        return receipts

    async def submit_commands(self, commands: Sequence[Command]) -> list[Receipt]:
        """Sequence unsigned commands the caller has authenticated itself (a publisher's
        signed oracle price, say); raises :class:`SubmitRefused` like ``submit_intents``."""
        if self._draining:
            raise SubmitRefused(503, "shutting_down", "node is shutting down")
        return await self._sequence([Submission(command) for command in commands])

    async def _sequence_or_stop(self, submissions: list[Submission]) -> list[Receipt]:
        """``Sequencer.submit``, stopping the node on a journal failure or a sequencer fault
        (the exception is raised on): continuing could acknowledge what is not on disk."""
        assert self._sequencer is not None
        try:
            return await self._sequencer.submit(submissions)
        except SequencerClosed:
            raise
        except JournalFailed:
            _log.exception("journal failed; stopping")
            self.request_stop(EXIT_JOURNAL_FAILED)
            raise
        except Exception:
            # Intake only passes journalable commands, so this is a bug; the sequencer's
            # counters may no longer match the journal. Fail stop: recovery restarts clean.
            _log.exception("sequencer fault; stopping")
            self.request_stop(EXIT_FAULT)
            raise

    async def _sequence(self, submissions: list[Submission]) -> list[Receipt]:
        """``_sequence_or_stop`` with its failures as the ``SubmitRefused`` clients are shown."""
        if self.committee is not None:
            return await self._order(submissions)
        try:
            return await self._sequence_or_stop(submissions)
        except SequencerClosed:
            raise SubmitRefused(503, "shutting_down", "node is shutting down") from None
        except NotDurable as failure:
            if failure.unknown_receipts:
                raise OutcomeUnknown(failure.unknown_receipts) from None
            raise SubmitRefused(
                503, "journal_failed", "journal failure: nothing of the request was sequenced"
            ) from None
        except JournalFailed:
            # failed before the request was appended: certainly not in the journal
            raise SubmitRefused(
                503, "journal_failed", "journal failure: nothing of the request was sequenced"
            ) from None
        except Exception:
            raise SubmitRefused(500, "internal_error", "internal error: not acknowledged") from None

    async def _order(self, submissions: list[Submission]) -> list[Receipt]:
        """Committee mode: hand the submissions to the committee; the receipt says they are
        durable on this member (``sequenced``), with no seq yet: the seq comes when the
        block holding them is committed and executed (``GET /v1/intents/{id}``)."""
        committee = self.committee
        assert committee is not None
        items = []
        for index, submission in enumerate(submissions):
            if submission.intent_id:
                item = self._committee_items.pop(submission.intent_id, None)
                if item is None:
                    raise SubmitRefused(
                        400,
                        "not_orderable",
                        "this door's intents are not ordered by the committee yet: use "
                        "POST /v1/intents or /v1/ws",
                        index,
                    )
                items.append(item)
            else:
                try:
                    items.append(committee.system_item(submission.command))
                except ValueError as exc:
                    raise SubmitRefused(400, "not_orderable", str(exc), index) from None
        try:
            await committee.submit(items)
        except Exception as exc:
            _log.warning("committee intake refused %d items: %s", len(items), exc)
            raise SubmitRefused(503, "not_sequenced", f"not sequenced: {exc}") from None
        now = self.settings.clock()
        return [Receipt(submission.intent_id, 0, now) for submission in submissions]

    async def _submit_commands(self, commands: Sequence[Command]) -> list[Receipt]:
        """Sequence the node's own commands (time ticks, L1 messages, protective mode)."""
        if self.committee is not None:
            # a committee's time is its blocks' (each block starts with a tick); the rest is
            # ordered like any system command, attributed to this member
            ordered = [Submission(c) for c in commands if type(c) is not AdvanceTime]
            return await self._order(ordered) if ordered else []
        return await self._sequence_or_stop([Submission(command) for command in commands])

    # ----------------------------------------------------------------- HTTP handlers

    def _refuse_if_draining(self) -> web.Response | None:
        if self._draining:
            return web.json_response(
                {"error": "node is shutting down", "code": "shutting_down"}, status=503
            )
        return None

    async def _read_body(self, request: web.Request) -> bytes:
        return await read_body(request, self.settings.limits.max_body_bytes)

    async def _submit(self, submissions: list[Submission]) -> web.Response:
        try:
            receipts = await self.submit_intents(submissions)
        except SubmitRefused as refusal:
            return refusal.response()
        return web.json_response({"receipts": [_receipt_json(r) for r in receipts]})

    async def handle_intents(self, request: web.Request) -> web.Response:
        refused = self._refuse_if_draining()
        if refused is not None:
            return refused
        try:
            body = await self._read_body(request)
            submissions = await self.verify_body(body, request.headers.get("Content-Type", ""))
        except IntakeError as error:
            return _json_error(error)
        except BrokenProcessPool:
            _log.exception("a verification worker died; the pool restarts")
            return web.json_response(
                {"error": "verification unavailable, retry", "code": "verifier_failed"}, status=503
            )
        return await self._submit(submissions)

    async def handle_sealed(self, request: web.Request) -> web.Response:
        """``POST /v1/sealed``: sealed intents, ordered by the committee still sealed and
        revealed right before the block that closes their epoch (docs/fairness.md)."""
        refused = self._sealing_refusal()
        if refused is not None:
            return refused.response()  # before reading the body, whatever it holds
        try:
            envelopes = parse_sealed_body(await self._read_body(request))
            receipts = await self.submit_sealed(envelopes)
        except IntakeError as error:
            return _json_error(error)
        except SealedIntakeError as error:
            return web.json_response(error.to_json(), status=error.status)
        except SubmitRefused as refusal:
            return refusal.response()
        return web.json_response({"receipts": receipts})

    def _sealing_refusal(self) -> SubmitRefused | None:
        """Why this node takes no sealed intents now, if it does not."""
        if self._draining:
            return SubmitRefused(503, "shutting_down", "node is shutting down")
        committee = self.committee
        if committee is None or committee.settings.sealing is None:
            return SubmitRefused(
                404, "no_sealing",
                "this node takes no sealed intents (not a committee member with a sealing key)",
            )  # fmt: skip
        return None

    async def submit_sealed(self, envelopes: list[bytes]) -> list[dict[str, Any]]:
        """Check sealed envelopes (``asyncdex.fairness.intake``) and hand them to the
        committee: their receipts' JSON once they are durable in this member's intake. The
        one path of ``POST /v1/sealed`` and of a ``/v1/ws`` ``submit`` of ``sealed``.
        Raises ``SealedIntakeError`` for a bad envelope and :class:`SubmitRefused` when the
        node takes none; either way nothing was sequenced."""
        refused = self._sealing_refusal()
        if refused is not None:
            raise refused
        committee = self.committee
        sealing = None if committee is None else committee.settings.sealing
        assert committee is not None and sealing is not None  # _sealing_refusal said so
        accepted = check_sealed_submissions(
            self.settings.domain, envelopes, self.settings.clock() // sealing.epoch_ms
        )
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.charge_addresses(
                    sealed_address_requests(e.envelope.header.account for e in accepted)
                )
            except RateLimited as limited:
                raise SubmitRefused(
                    429, "rate_limited", str(limited), retry_after_ms=limited.retry_after_ms
                ) from None
        try:
            await committee.submit_sealed([envelope.data for envelope in accepted])
        except Exception as exc:
            _log.warning("committee intake refused %d sealed intents: %s", len(accepted), exc)
            raise SubmitRefused(503, "not_sequenced", f"not sequenced: {exc}") from None
        now = self.settings.clock()
        return [
            {"sealedId": "0x" + envelope.sealed_id.hex(), "seq": 0, "timestamp": now}
            for envelope in accepted
        ]

    def _refuse_unless_operator(self, request: web.Request) -> web.Response | None:
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
        return None

    async def _read_json(self, request: web.Request) -> Any:
        body = await self._read_body(request)
        try:
            return jsonbody.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedBody(f"invalid JSON: {exc}") from None

    async def handle_system(self, request: web.Request) -> web.Response:
        refused = self._refuse_if_draining() or self._refuse_unless_operator(request)
        if refused is not None:
            return refused
        try:
            commands = parse_system_commands(await self._read_json(request))
            if self._settlement is not None:
                for index, command in enumerate(commands):
                    if type(command) is Deposit:
                        raise SystemCommandError(
                            f"command {index}: deposits come from the settlement contract "
                            "while the node settles",
                            index=index,
                            field="type",
                        )
        except IntakeError as error:
            return _json_error(error)
        try:
            receipts = await self._sequence([Submission(command) for command in commands])
        except SubmitRefused as refusal:
            return web.json_response(refusal.to_json(), status=refusal.status)
        return web.json_response({"receipts": [_receipt_json(r) for r in receipts]})

    async def handle_dev_deposit(self, request: web.Request) -> web.Response:
        """Embedded chain only: mint test tokens and deposit them on chain for an account."""
        refused = self._refuse_if_draining() or self._refuse_unless_operator(request)
        if refused is not None:
            return refused
        settlement = self._settlement
        if settlement is None or settlement.settings.embedded is None:
            return _not_found("no embedded chain: deposit on the base chain", "no_embedded_chain")
        try:
            document = await self._read_json(request)
            if not isinstance(document, dict) or set(document) != {"account", "amount"}:
                raise MalformedBody('expected {"account": "0x..", "amount": n}')
            account = _address(document, "account", 0)
            amount = _uint(document, "amount", 0, MAX_COLLATERAL)
            if amount == 0:
                raise SystemCommandError("amount must be positive", field="amount")
        except IntakeError as error:
            return _json_error(error)
        try:
            l1_index, tx_hash = await settlement.dev_deposit(account, amount)
        except Exception as exc:
            _log.exception("dev deposit failed")
            return web.json_response(
                {"error": f"the chain refused: {exc}", "code": "chain_error"}, status=502
            )
        return web.json_response({"l1Index": l1_index, "txHash": "0x" + tx_hash.hex()})

    # -- status queries (memory only)

    def _record_json(self, seq: int) -> dict[str, Any]:
        assert self._executor is not None
        intent_id, events = self.index.record(seq)
        status = "sequenced" if seq > self._executor.last_seq else "executed"
        batch = tx_hash = None
        if status == "executed" and self._settlement is not None:
            settled, batch, tx_hash = self._settlement.settled_status(seq)
            if settled is not None:
                status = settled
        return {
            "seq": seq,
            "intentId": None if intent_id is None else "0x" + intent_id.hex(),
            "status": status,
            "events": None if events is None else [event_json(event) for event in events],
            "batch": batch,
            "txHash": None if tx_hash is None else "0x" + tx_hash.hex(),
        }

    async def handle_intent_status(self, request: web.Request) -> web.Response:
        text = request.match_info["intent_id"]
        try:
            if not text.startswith("0x") or len(text) != 66:
                raise ValueError
            intent_id = bytes.fromhex(text[2:])
        except ValueError:
            return web.json_response(
                {"error": "an intent id is 0x and 64 hex digits", "code": "invalid_intent_id"},
                status=400,
            )
        seq = self.index.seq_of(intent_id)
        committee = self.committee
        if committee is not None:
            return self._committee_intent_json(committee, intent_id, seq)
        if seq is None:
            return _not_found("unknown intent (or older than the index keeps)", "unknown_intent")
        return web.json_response(self._record_json(seq))

    def _committee_intent_json(
        self, committee: CommitteeVenue, intent_id: bytes, seq: int | None
    ) -> web.Response:
        """An intent's life on a committee member: ``sequenced`` (in this member's intake),
        ``ordered`` (in a committed block, with its certificate), then ``executed``. A sealed
        intent's id (docs/fairness.md) answers ``ordered`` while it is still sealed,
        ``revealed`` (with the revealed intent's id) once opened until its execution is
        applied, then the life of the intent it revealed (with ``sealedId``), or, if it was
        refused when its block executed, ``ordered`` for good with ``sealedRejection`` saying
        why."""
        sealed = committee.sealed
        verdict = None if sealed is None or seq is not None else sealed.verdict(intent_id)
        if verdict is not None and verdict.intent_id is not None:
            revealed = verdict.intent_id
            revealed_seq = self.index.seq_of(revealed)
            document = self._committee_intent_document(committee, revealed, revealed_seq)
            if document is None:  # not applied yet, or forgotten by the index
                document = self._committee_intent_document(committee, intent_id, None)
                recent = verdict.height + 1 >= committee.executor.next_height
                if document is not None and recent:
                    # opened with its closing block, whose journal write that executes it
                    # is under way
                    document["status"] = "revealed"
                    document["intentId"] = "0x" + revealed.hex()
            elif document["ordered"] is None:
                # the revealed intent was certified where its envelope was, sealed
                where = committee.ordered(intent_id)
                document["ordered"] = None if where is None else ordered_json(where)
        elif verdict is not None:
            document = self._committee_intent_document(committee, intent_id, None)
            if document is not None:
                document["sealedRejection"] = verdict.reason
        else:
            document = self._committee_intent_document(committee, intent_id, seq)
        if document is None:
            return _not_found("unknown intent (or older than the index keeps)", "unknown_intent")
        if verdict is not None:
            document["sealedId"] = "0x" + intent_id.hex()
        return web.json_response(document)

    def _committee_intent_document(
        self, committee: CommitteeVenue, intent_id: bytes, seq: int | None
    ) -> dict[str, Any] | None:
        ordered = committee.ordered(intent_id)
        if seq is not None:
            document = self._record_json(seq)
        elif ordered is not None:
            document = {
                "seq": None,
                "intentId": "0x" + intent_id.hex(),
                "status": "ordered",
                "events": None,
                "batch": None,
                "txHash": None,
            }
        elif intent_id in self._acknowledged:
            first = self._acknowledged[intent_id]
            document = {
                "seq": None,
                "intentId": "0x" + intent_id.hex(),
                "status": "sequenced",
                "timestamp": first[1],
                "events": None,
                "batch": None,
                "txHash": None,
            }
        else:
            return None
        document["ordered"] = None if ordered is None else ordered_json(ordered)
        return document

    async def handle_seq_status(self, request: web.Request) -> web.Response:
        assert self._sequencer is not None
        text = request.match_info["seq"]
        seq = _uint_text(text, 1, MAX_TIME_MS)
        if seq is None:
            return web.json_response(
                {"error": f"a seq is an integer in 1..{MAX_TIME_MS}", "code": "invalid_seq"},
                status=400,
            )
        if seq >= self._sequencer.next_seq:
            return _not_found(f"seq {seq} is not sequenced yet", "unknown_seq")
        return web.json_response(self._record_json(seq))

    async def handle_withdrawal(self, request: web.Request) -> web.Response:
        text = request.match_info["withdrawal_id"]
        withdrawal_id = _uint_text(text, 1, MAX_TIME_MS)
        if withdrawal_id is None:
            return web.json_response(
                {
                    "error": f"a withdrawal id is an integer in 1..{MAX_TIME_MS}",
                    "code": "invalid_withdrawal",
                },
                status=400,
            )
        if self._settlement is None:
            return _not_found("the node does not settle", "no_settlement")
        proof = self._settlement.withdrawal_proof(withdrawal_id)
        if proof is None:
            return _not_found(
                f"withdrawal {withdrawal_id} is in no batch yet (or does not exist)",
                "unknown_withdrawal",
            )
        return web.json_response(proof)

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
                "stateRoot": "0x" + self._state_root(executor).hex(),
                "engineTime": executor.engine.state.time,
                "draining": self._draining,
                "protectiveMode": executor.engine.state.protective,
                "settlement": None if self._settlement is None else self._settlement.status_json(),
                "engine": self.engine_name,
                "committee": None if self.committee is None else self.committee.status_json(),
            }
        )

    def _state_root(self, executor: EngineExecutor) -> bytes:
        """The root after the last applied record, computed once per applied seq: it hashes
        every account, and status may be polled often."""
        cached = self._root_cache
        if cached is None or cached[0] != executor.last_seq:
            cached = self._root_cache = (executor.last_seq, executor.engine.state_root())
        return cached[1]

    async def handle_health(self, request: web.Request) -> web.Response:
        if self._draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ok"})

    # -- read-only market data (memory only; see docs/sequencer.md)

    async def handle_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    async def handle_venue(self, request: web.Request) -> web.Response:
        """What a client needs to sign and build intents (:mod:`asyncdex.gateway.venue`)."""
        try:
            _query(request, frozenset())
        except BadParameter as error:
            return _bad_parameter(error)
        settings = self.settings
        settlement = settings.settlement
        contract = chain = None
        if settlement is not None:
            chain = "rpc" if settlement.embedded is None else "embedded"
            # the node takes its signing domain from the embedded deployment
            contract = settlement.contract or settings.domain.verifying_contract
        return web.json_response(
            venue_json(
                settings.domain,
                settings.engine_config,
                settlement_contract=contract,
                settlement_chain=chain,
                extras=self._venue_extras_now(),
            )
        )

    def _venue_extras_now(self) -> dict[str, Any]:
        sealing = None if self.committee is None else self.committee.sealing_json()
        if sealing is None:
            return self._venue_extras
        # the current sealing epoch moves with the clock: computed per request
        return {**self._venue_extras, "sealing": sealing}

    def _state(self) -> StateReader:
        assert self._executor is not None
        return self._executor.engine.state

    def _market_of(self, request: web.Request) -> MarketState | None:
        market_id = self._market_ids.get(request.match_info["symbol"])
        return None if market_id is None else self._state().markets[market_id]

    def _unknown_market(self, request: web.Request) -> web.Response:
        return _not_found(f"no market {request.match_info['symbol']!r}", "unknown_market")

    async def handle_markets(self, request: web.Request) -> web.Response:
        try:
            _query(request, frozenset())
        except BadParameter as error:
            return _bad_parameter(error)
        assert self._executor is not None
        markets = [_market_json(market) for market in self._state().markets]
        return web.json_response({"seq": self._executor.last_seq, "markets": markets})

    async def handle_book(self, request: web.Request) -> web.Response:
        assert self._executor is not None
        try:
            query = _query(request, frozenset({"depth"}))
            depth = _int_parameter(
                query, "depth", DEFAULT_BOOK_DEPTH, 1, MAX_BOOK_DEPTH, "invalid_depth"
            )
        except BadParameter as error:
            return _bad_parameter(error)
        market = self._market_of(request)
        if market is None:
            return self._unknown_market(request)
        spec = market.spec

        def levels(is_buy: bool) -> list[dict[str, Any]]:
            return [
                {"price": _price(spec, price), "size": _size(spec, size), "orders": count}
                for price, size, count in market.book.level_sizes(is_buy, depth)
            ]

        return web.json_response(
            {
                "symbol": spec.symbol,
                "market": spec.market_id,
                "seq": self._executor.last_seq,
                "time": self._state().time,
                "bids": levels(True),
                "asks": levels(False),
            }
        )

    async def handle_trades(self, request: web.Request) -> web.Response:
        try:
            query = _query(request, frozenset({"limit"}))
            limit = _int_parameter(
                query, "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT, "invalid_limit"
            )
        except BadParameter as error:
            return _bad_parameter(error)
        market = self._market_of(request)
        if market is None:
            return self._unknown_market(request)
        spec = market.spec
        trades = [
            {
                "seq": trade.seq,
                "time": trade.time,
                "price": _price(spec, trade.price),
                "size": _size(spec, trade.size),
                "side": "buy" if trade.taker_is_buy else "sell",
                "makerOrder": trade.maker_order,
                "takerOrder": trade.taker_order,
            }
            for trade in self.market_data.trades(spec.market_id, limit)
        ]
        return web.json_response({"symbol": spec.symbol, "trades": trades})

    async def handle_candles(self, request: web.Request) -> web.Response:
        try:
            query = _query(request, frozenset({"interval", "start", "end"}))
            interval = query.get("interval", "1m")
            interval_ms = INTERVALS_MS.get(interval)
            if interval_ms is None:
                raise BadParameter(
                    f"interval must be one of {', '.join(INTERVALS_MS)}", "invalid_interval"
                )
            start, end = _time_range(query)
        except BadParameter as error:
            return _bad_parameter(error)
        market = self._market_of(request)
        if market is None:
            return self._unknown_market(request)
        spec = market.spec
        candles = [
            {
                "start": candle.start,
                "open": _price(spec, candle.open),
                "high": _price(spec, candle.high),
                "low": _price(spec, candle.low),
                "close": _price(spec, candle.close),
                "volume": _size(spec, candle.volume),
                "trades": candle.trades,
            }
            for candle in self.market_data.candles(spec.market_id, interval_ms, start, end)
        ]
        return web.json_response({"symbol": spec.symbol, "interval": interval, "candles": candles})

    async def handle_funding(self, request: web.Request) -> web.Response:
        try:
            start, end = _time_range(_query(request, frozenset({"start", "end"})))
        except BadParameter as error:
            return _bad_parameter(error)
        market = self._market_of(request)
        if market is None:
            return self._unknown_market(request)
        spec = market.spec
        funding = [
            {
                "seq": record.seq,
                "time": record.time,
                "ratePpb": record.rate_ppb,
                "indexPrice": _price(spec, record.index_price),
                "cumulativeIndex": str(record.cumulative_index),
            }
            for record in self.market_data.funding(spec.market_id, start, end)
        ]
        return web.json_response({"symbol": spec.symbol, "funding": funding})

    def _address_of(self, request: web.Request) -> bytes:
        text = request.match_info["address"]
        # parse_address takes checksummed or lower/upper case; its error names the problem
        try:
            return parse_address(text)
        except ValueError as exc:
            raise BadParameter(f"address: {exc}", "invalid_address") from None

    async def handle_account(self, request: web.Request) -> web.Response:
        assert self._executor is not None
        try:
            _query(request, frozenset())
            address = self._address_of(request)
        except BadParameter as error:
            return _bad_parameter(error)
        state = self._state()
        account = state.accounts.get(address)
        if account is None:
            return _not_found("no such account", "unknown_account")
        view = account_view(state, account)
        positions = []
        for position in view.positions:
            spec = state.markets[position.market].spec
            positions.append(
                {
                    "market": position.market,
                    "symbol": spec.symbol,
                    "size": _size(spec, position.size),
                    "entryPrice": _price(spec, position.entry_price),
                    "markPrice": _price(spec, position.mark_price),
                    "unrealizedPnl": format_usdc(position.unrealized_pnl),
                    "marginUsed": format_usdc(position.margin_used),
                    "liquidationPrice": _price(spec, position.liquidation_price),
                    "leverage": position.leverage,
                    "isolated": position.isolated,
                    "isolatedMargin": format_usdc(position.isolated_margin),
                    "fundingPaid": format_usdc(position.funding_paid),
                }
            )
        return web.json_response(
            {
                "address": "0x" + address.hex(),
                "seq": self._executor.last_seq,
                "collateral": format_usdc(view.collateral),
                "equity": format_usdc(view.equity),
                "crossEquity": format_usdc(view.cross_equity),
                "crossInitialMargin": format_usdc(view.cross_initial),
                "crossMaintenanceMargin": format_usdc(view.cross_maintenance),
                "positions": positions,
            }
        )

    async def handle_account_orders(self, request: web.Request) -> web.Response:
        try:
            _query(request, frozenset())
            address = self._address_of(request)
        except BadParameter as error:
            return _bad_parameter(error)
        state = self._state()
        account = state.accounts.get(address)
        if account is None:
            return _not_found("no such account", "unknown_account")
        markets = state.markets
        orders = [
            _order_json(
                markets[market_id].spec, order, order.order_id in markets[market_id].triggers
            )
            for market_id, position in account.positions.items()
            for order in position.orders.values()
        ]
        orders.sort(key=lambda order: order["orderId"])
        return web.json_response({"address": "0x" + address.hex(), "orders": orders})

    async def handle_account_fills(self, request: web.Request) -> web.Response:
        try:
            query = _query(request, frozenset({"limit"}))
            limit = _int_parameter(
                query, "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT, "invalid_limit"
            )
            address = self._address_of(request)
        except BadParameter as error:
            return _bad_parameter(error)
        state = self._state()
        if address not in state.accounts and not self.market_data.has_fills(address):
            return _not_found("no such account", "unknown_account")
        fills = []
        for fill in self.market_data.fills(address, limit):
            spec = state.markets[fill.market].spec
            fills.append(
                {
                    "seq": fill.seq,
                    "time": fill.time,
                    "market": fill.market,
                    "symbol": spec.symbol,
                    "price": _price(spec, fill.price),
                    "size": _size(spec, fill.size),
                    "side": "buy" if fill.is_buy else "sell",
                    "liquidity": "maker" if fill.is_maker else "taker",
                    "orderId": fill.order_id,
                    "fee": format_usdc(fill.fee),
                    "builderFee": format_usdc(fill.builder_fee),
                }
            )
        return web.json_response({"address": "0x" + address.hex(), "fills": fills})


async def serve(settings: NodeSettings, on_ready: Callable[[Node], None] | None = None) -> int:
    """Start a node, call ``on_ready`` once it listens, serve until signalled; exit code."""
    node = Node(settings)
    await node.start()
    node.install_signal_handlers()
    if on_ready is not None:
        on_ready(node)
    return await node.run()
