"""The Python SDK: sign intents, send them to a node, follow them to finality.

Invariants:

- An action returns once the node has made the intent durable: the :class:`Receipt`
  (intent id, seq, timestamp) is the node's promise that the intent is in the journal. What
  the engine then did (filled, rested, rejected with a reason) is read with :meth:`status`
  / :meth:`wait_for`; a rejection is an outcome there, never an exception from the action.
- One call, one request: :meth:`AsyncClient.batch` sends several signed intents in one
  ``POST /v1/intents``, which the node refuses or sequences as a whole, in the given order.
- The intent id in each receipt is checked against the EIP-712 digest the client signed.
  They differ only if the client's chain id or contract differs from the node's, and then
  every signature recovers to a stranger: :class:`DomainMismatch` says so at once instead
  of letting the engine reject everything as ``UNKNOWN_AGENT``.
- Retries are only of what is safe to repeat. A submission is retried only as the *same
  signed bytes* (never re-signed with a new nonce), and only after a transport failure
  (connection refused or broken, timeout) or a 429/502/503/504; after a 429 the next try
  waits at least the node's ``Retry-After`` (:func:`retry_after_seconds`). If the first copy was
  sequenced after all (the connection broke after the node received it, or the node
  answered 503 ``outcome_unknown``: its journal failed while writing the request), the node
  answers the same bytes with the first copy's receipts, also after a restart, and sequences
  nothing again: one signed intent has one effect, however often it is sent. A 4xx is
  never retried (the same bytes get the same refusal), nor a 500 (a node fault: the node
  stops; :class:`NodeError` carries nothing acknowledged). Reads (status) are retried the
  same way. Resubmitting after the retries ran out is the caller's call:
  ``client.submit(error.signed)`` keeps the guarantee.
- The sync :class:`Client` runs one :class:`AsyncClient` on its own event loop thread (see
  there for why) and is safe to call from several threads at once.
- ``connect(url, wallet)`` takes the signing domain and the markets from the node itself
  (``GET /v1/venue``), so a client needs no config file and signs for exactly the domain
  the node verifies, including an embedded chain's contract deployed at the node's start.
  The constructors take them from the caller instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import random
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import aiohttp

from asyncdex.client.builder import IntentBuilder
from asyncdex.client.errors import (
    ClientError,
    DomainMismatch,
    IntakeRefused,
    NodeError,
    NodeUnavailable,
    StatusTimeout,
    UnknownIntent,
)
from asyncdex.client.keys import BaseWallet
from asyncdex.client.markets import MarketInfo, Markets, load_venue_file
from asyncdex.client.nonces import NonceSource, shared_nonce_source
from asyncdex.client.sealing import SealingInfo, seal_signed_intent, sealing_key
from asyncdex.client.status import (
    EXECUTED,
    IntentStatus,
    Receipt,
    parse_receipts,
    parse_sealed_receipts,
    status_rank,
)
from asyncdex.client.streams import Stream
from asyncdex.client.venue import Venue, check_domain
from asyncdex.fairness.sealing import SealedIntent, SealingKey, sealed_intent_id
from asyncdex.signing.eip712 import Domain, parse_address
from asyncdex.signing.intents import (
    Intent,
    SignedIntent,
    asyncdex_domain,
    intent_digest,
    signed_intent_to_json,
)
from asyncdex.types.market import EngineConfig, MarketSpec

P = ParamSpec("P")
T = TypeVar("T")
MarketsArg: TypeAlias = Markets | EngineConfig | Iterable[MarketSpec | MarketInfo] | None
IntentRef: TypeAlias = str | bytes | Receipt

_NOT_SENT: tuple[type[Exception], ...] = (
    aiohttp.ClientConnectorError,
    # aiohttp >= 3.10 tells a timeout while connecting (nothing sent) from one while waiting
    # for the answer (the request may have arrived); older versions raise the latter for both.
    getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError),
)
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
RETRY_STATUSES = frozenset({429, 502, 503, 504})
OUTCOME_UNKNOWN = "outcome_unknown"  # the node's 503 when a journal failure hit the request
DEFAULT_WAIT_TIMEOUT = 30.0  # seconds
MAX_RETRY_AFTER = 60.0  # seconds: the longest wait a node's Retry-After can ask of a retry


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to repeat a request that is safe to repeat.

    ``attempts`` counts every try (1 = no retry). The delay before retry ``n`` (from 1) is
    ``min(max_delay, base_delay * 2 ** (n - 1))`` scaled by a random factor in [0.5, 1], so
    many clients cut off together do not come back in step.
    """

    attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, retry: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1)) * random.uniform(0.5, 1.0)


def retry_after_seconds(header: str | None, document: Any) -> float:
    """How long the node asked us to wait before trying again (0 when it did not say).

    A rate-limited node answers ``429`` with ``retryAfterMs`` in the body and ``Retry-After``
    (whole seconds) in the headers; the body's figure is the finer one. Retrying sooner only
    spends budget on another refusal. Capped at :data:`MAX_RETRY_AFTER` so a wrong hint
    cannot park a client for hours.
    """
    seconds = 0.0
    if isinstance(document, dict) and isinstance(document.get("retryAfterMs"), int):
        seconds = document["retryAfterMs"] / 1000
    elif header is not None and header.strip().isascii() and header.strip().isdigit():
        seconds = float(int(header.strip()))
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _markets_of(markets: MarketsArg) -> Markets:
    if markets is None:
        return Markets(())
    if isinstance(markets, Markets):
        return markets
    if isinstance(markets, EngineConfig):
        return Markets.from_config(markets)
    return Markets(markets)


def _intent_id(ref: IntentRef) -> str:
    if isinstance(ref, Receipt):
        return ref.intent_id
    if isinstance(ref, bytes):
        if len(ref) != 32:
            raise ValueError("an intent id is 32 bytes")
        return "0x" + ref.hex()
    text = ref.lower()
    if len(text) != 66 or not text.startswith("0x"):
        raise ValueError(f"an intent id is 0x followed by 64 hex digits, got {ref!r}")
    bytes.fromhex(text[2:])  # ValueError on a non-hex digit
    return text


def _action(
    build: Callable[Concatenate[IntentBuilder, P], Intent],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, Receipt]]:
    """An AsyncClient method that builds an intent with ``build``, signs and sends it."""

    async def act(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> Receipt:
        return await self.submit_one(build(self.build, *args, **kwargs))

    return _described(act, build, "AsyncClient")


def _sync_action(
    build: Callable[Concatenate[IntentBuilder, P], Intent],
) -> Callable[Concatenate[Client, P], Receipt]:
    """A Client method that builds an intent in the caller's thread and sends it."""

    def act(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Receipt:
        intent = build(self.build, *args, **kwargs)
        return self._call(self._client.submit_one(intent))

    return _described(act, build, "Client")


F = TypeVar("F", bound=Callable[..., Any])


def _described(method: F, build: Callable[..., Any], owner: str) -> F:
    """Give an action the builder's name, parameters and docs, returning a Receipt."""
    functools.update_wrapper(method, build)
    method.__qualname__ = f"{owner}.{build.__name__}"
    method.__doc__ = (
        f"Build with :meth:`IntentBuilder.{build.__name__}`, sign, send; return the Receipt.\n\n"
        + (build.__doc__ or "")
    )
    # inspect.signature follows __wrapped__ to the builder, which returns an Intent.
    del method.__wrapped__  # type: ignore[attr-defined]
    parameters = inspect.signature(build).parameters.values()
    method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        list(parameters), return_annotation="Receipt"
    )
    return method


class AsyncClient:
    """A trader's connection to one node: ``async with AsyncClient(...) as client: ...``.

    ``markets`` (a :class:`Markets`, an ``EngineConfig`` or market specs) lets calls name
    markets by symbol and give prices and sizes as decimals; without it, markets are ids
    and numbers are ints in engine units. ``nonces`` defaults to one source shared by the
    process, so two clients with one key cannot collide. ``intent_ttl`` (seconds) gives
    every intent a deadline: the engine rejects it (``INTENT_EXPIRED``) if it executes
    later than that after it was built.

    ``seal=True`` seals every action (:meth:`submit_sealed`); ``seal_lead_ms`` is how long
    before an epoch's end :meth:`seal` already targets the next epoch, the time an envelope
    needs from here into a leader's block (:meth:`SealingInfo.target_epoch` gives the
    trade). The default, 20 ms, is meant for a node close by; raise it for a distant one,
    since an envelope that reaches a block after its epoch is refused, while one sealed
    ahead only waits in the leaders' pool for its epoch.
    """

    def __init__(
        self,
        base_url: str,
        wallet: BaseWallet,
        chain_id: int,
        contract: bytes | str,
        markets: MarketsArg = None,
        *,
        nonces: NonceSource | None = None,
        retry: RetryPolicy = RetryPolicy(),
        request_timeout: float = 10.0,
        intent_ttl: float | None = None,
        session: aiohttp.ClientSession | None = None,
        seal: bool = False,
        seal_lead_ms: int = 20,
    ) -> None:
        if type(seal_lead_ms) is not int or seal_lead_ms < 0:
            raise ValueError(f"seal_lead_ms: expected a non-negative int, got {seal_lead_ms!r}")
        self.base_url = base_url.rstrip("/")
        self.wallet = wallet
        self.domain: Domain = asyncdex_domain(
            chain_id, parse_address(contract) if isinstance(contract, str) else contract
        )
        self.markets = _markets_of(markets)
        self.build = IntentBuilder(
            wallet,
            self.markets,
            nonces if nonces is not None else shared_nonce_source(),
            intent_ttl_ms=None if intent_ttl is None else round(intent_ttl * 1000),
        )
        self.retry = retry
        self.request_timeout = request_timeout
        self._session = session
        self._owns_session = session is None
        self.seal_intents = seal
        self.seal_lead_ms = seal_lead_ms
        self.sealing: SealingInfo | None = None
        self._sealing_key: SealingKey | None = None

    @classmethod
    def connect(cls, base_url: str, wallet: BaseWallet, **options: Any) -> Connecting:
        """A client for the venue the node at ``base_url`` serves, with the signing domain
        and markets it answers at ``GET /v1/venue``; ``options`` as the constructor's.

        ``client = await AsyncClient.connect(...)``, or ``async with AsyncClient.connect(...)
        as client:`` to close it at the end of the block.
        """
        return Connecting(cls._connect(base_url, wallet, options))

    @classmethod
    async def _connect(
        cls, base_url: str, wallet: BaseWallet, options: dict[str, Any]
    ) -> AsyncClient:
        client = cls(base_url, wallet, *_UNKNOWN_DOMAIN, **_connect_options(options))
        try:
            client._use_venue(await client.venue())
        except BaseException:
            await client.close()
            raise
        return client

    @classmethod
    def from_venue_file(
        cls, base_url: str, wallet: BaseWallet, path: str | Path, **options: Any
    ) -> AsyncClient:
        """A client for the venue a TOML file describes (markets, chain id, contract)."""
        return cls(base_url, wallet, *_venue(path), **options)

    def _use_venue(self, venue: Venue) -> None:
        try:
            check_domain(venue.domain)
        except ValueError as exc:
            raise NodeError(f"{exc}: use an SDK of the node's version") from None
        self.domain = venue.domain
        self.markets = self.build.markets = venue.markets
        self.sealing = venue.sealing
        self._sealing_key = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the loop it was created in, and the sync
        # Client builds this object outside its loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.request_timeout)
            )
            self._owns_session = True
        return self._session

    # ------------------------------------------------------------------ signing, sending

    def sign(self, intent: Intent) -> SignedIntent:
        return self.wallet.sign(self.domain, intent)

    def intent_id(self, intent: Intent | SignedIntent) -> str:
        """The id the node will give ``intent``: its EIP-712 digest under this domain."""
        bare = intent.intent if isinstance(intent, SignedIntent) else intent
        return "0x" + intent_digest(self.domain, bare).hex()

    async def submit(self, intents: Sequence[Intent | SignedIntent]) -> list[Receipt]:
        """Sign what is not signed yet and send all in one request; receipts in order.

        A client made with ``seal=True`` seals them first (:meth:`submit_sealed`).
        """
        if self.seal_intents:
            return await self.submit_sealed(intents)
        signed = [i if isinstance(i, SignedIntent) else self.sign(i) for i in intents]
        if not signed:
            raise ValueError("nothing to submit")
        body = json.dumps(
            {"intents": [signed_intent_to_json(s) for s in signed]}, separators=(",", ":")
        ).encode()
        status, document = await self._request("POST", "/v1/intents", body, signed=signed)
        if status != 200:
            raise _error_of(status, document)
        try:
            receipts = parse_receipts(document, len(signed))
        except ValueError as exc:
            raise NodeError(f"unexpected receipts: {exc}", status=status, body=document) from None
        expected = [self.intent_id(s) for s in signed]
        if [r.intent_id for r in receipts] != expected:
            raise DomainMismatch(
                f"the node's intent ids differ from the digests signed under chain id "
                f"{self.domain.chain_id} and contract 0x{self.domain.verifying_contract.hex()}: "
                "the node has another signing domain, and will reject these intents",
                receipts=receipts,
            )
        return receipts

    batch = submit

    def seal(
        self, intent: Intent | SignedIntent, *, epoch: int | None = None, fee_cap: int = 0
    ) -> SealedIntent:
        """Sign ``intent`` if needed and seal it for ``epoch`` to the committee key the node
        announced. By default the epoch is the current one, or the next one when less than
        ``seal_lead_ms`` is left of it (:meth:`SealingInfo.target_epoch`)."""
        if self.sealing is None:
            raise ClientError(
                'the node announces no sealing key (GET /v1/venue has no "sealing"): it '
                "is not a committee venue with sealed intents, or the client was not made "
                "with connect()"
            )
        if self._sealing_key is None:
            self._sealing_key = sealing_key(self.domain, self.sealing)
        signed = intent if isinstance(intent, SignedIntent) else self.sign(intent)
        if epoch is None:
            epoch = self.sealing.target_epoch(int(time.time() * 1000), self.seal_lead_ms)
        return seal_signed_intent(self.wallet, self._sealing_key, signed, epoch, fee_cap=fee_cap)

    async def submit_sealed(
        self,
        intents: Sequence[Intent | SignedIntent],
        *,
        epoch: int | None = None,
        fee_cap: int = 0,
    ) -> list[Receipt]:
        """Seal and send intents in one ``POST /v1/sealed``; receipts in order.

        The node answers ``{"receipts": [{"sealedId", "seq", "timestamp"}]}``; each receipt
        here also carries the ``intent_id`` the intent will have once revealed, so
        :meth:`wait_for` follows it to ``executed`` once it is revealed.
        """
        signed = [i if isinstance(i, SignedIntent) else self.sign(i) for i in intents]
        if not signed:
            raise ValueError("nothing to submit")
        sealed = [self.seal(one, epoch=epoch, fee_cap=fee_cap).encode() for one in signed]
        body = json.dumps(
            {"sealed": ["0x" + envelope.hex() for envelope in sealed]}, separators=(",", ":")
        ).encode()
        status, document = await self._request("POST", "/v1/sealed", body, signed=signed)
        if status != 200:
            raise _error_of(status, document)
        try:
            acknowledged = parse_sealed_receipts(document, len(signed))
        except ValueError as exc:
            raise NodeError(f"unexpected receipts: {exc}", status=status, body=document) from None
        receipts = []
        for envelope, one, (sealed_id, seq, timestamp) in zip(
            sealed, signed, acknowledged, strict=True
        ):
            expected = "0x" + sealed_intent_id(envelope).hex()
            if sealed_id != expected:
                raise NodeError(
                    f"the node acknowledged sealed id {sealed_id}, sent {expected}",
                    status=status,
                    body=document,
                )
            receipts.append(Receipt(self.intent_id(one), seq, timestamp, sealed_id))
        return receipts

    async def submit_one(self, intent: Intent | SignedIntent) -> Receipt:
        (receipt,) = await self.submit([intent])
        return receipt

    place_order = _action(IntentBuilder.place_order)
    market_order = _action(IntentBuilder.market_order)
    cancel = _action(IntentBuilder.cancel)
    cancel_by_client_id = _action(IntentBuilder.cancel_by_client_id)
    cancel_all = _action(IntentBuilder.cancel_all)
    modify = _action(IntentBuilder.modify)
    schedule_cancel = _action(IntentBuilder.schedule_cancel)
    set_leverage = _action(IntentBuilder.set_leverage)
    update_isolated_margin = _action(IntentBuilder.update_isolated_margin)
    withdraw = _action(IntentBuilder.withdraw)
    approve_agent = _action(IntentBuilder.approve_agent)

    # ------------------------------------------------------------------ following an intent

    async def status(self, intent: IntentRef) -> IntentStatus:
        """What the node knows of an intent now; :class:`UnknownIntent` if nothing."""
        return await self._status(f"/v1/intents/{_intent_id(intent)}")

    async def status_of_seq(self, seq: int) -> IntentStatus:
        """What the node knows of the record at ``seq`` (any command, not only intents)."""
        return await self._status(f"/v1/seq/{int(seq)}")

    async def resolve(
        self, intents: Sequence[IntentRef | Intent | SignedIntent]
    ) -> list[IntentStatus | None]:
        """Whether intents whose outcome is unknown (:class:`NodeUnavailable` with
        ``maybe_sequenced``) are in the node's journal: their status, or None for each one the
        node does not have (``GET /v1/intents/{id}``), in order.

        Ask once the node is back: a node whose journal failed stops, and the restarted one
        has every journaled intent (its index keeps the newest ``index_capacity``), so None
        then means it was never sequenced. Resending the same signed bytes
        (``client.submit(error.signed)``) resolves it too, by sequencing it or answering its
        first receipt. Never sign the same action again with a new nonce before resolving.
        """
        found: list[IntentStatus | None] = []
        for intent in intents:
            ref = intent if isinstance(intent, (str, bytes, Receipt)) else self.intent_id(intent)
            try:
                found.append(await self.status(ref))
            except UnknownIntent:
                found.append(None)
        return found

    async def _status(self, path: str) -> IntentStatus:
        status, document = await self._request("GET", path)
        if status == 404 and isinstance(document, dict):
            raise UnknownIntent(str(document.get("error") or f"{path}: not known to the node"))
        if status == 404:  # not the node's JSON error: the route itself is missing
            raise NodeError(f"{path}: the node has no such endpoint", status=404, body=document)
        if status != 200:
            raise _error_of(status, document)
        try:
            return IntentStatus.from_json(document)
        except ValueError as exc:
            raise NodeError(f"unexpected status: {exc}", status=status, body=document) from None

    async def wait_for(
        self,
        intent: IntentRef,
        status: str = EXECUTED,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        *,
        poll_interval: float = 0.5,
    ) -> IntentStatus:
        """Poll until the intent reaches ``status`` (or later); return what the node says.

        ``executed`` gives the engine's outcome: fills, the resting order, or the rejection
        reason. Polling starts fast and slows to ``poll_interval`` seconds. An id the node
        does not know yet is polled on (a receipt may reach the caller before the node's
        status index has the intent); :class:`StatusTimeout` after ``timeout`` seconds
        (``None``: wait for ever) carries the last status seen, if any. A sealed intent's
        receipt is followed by its sealed id: the answer is the revealed intent's status, or
        one with ``sealed_rejection`` set if it was refused unopened (returned at once: it
        will never execute).
        """
        status_rank(status)  # refuse an unknown status before waiting for it
        intent_id = _intent_id(intent)
        if isinstance(intent, Receipt) and intent.sealed_id is not None:
            # a sealed intent: its envelope's id answers from ordering on, and says so if
            # the intent was refused before it could execute (``sealed_rejection``)
            intent_id = intent.sealed_id
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        delay = min(0.01, poll_interval)
        last: IntentStatus | None = None
        while True:
            with contextlib.suppress(UnknownIntent):  # not indexed yet: poll on
                last = await self.status(intent_id)
            if last is not None and (last.reached(status) or last.sealed_rejection):
                return last
            if deadline is not None and loop.time() + delay > deadline:
                seen = last.status if last is not None else "not known to the node"
                raise StatusTimeout(
                    f"intent {intent_id} not {status} after {timeout} s (last: {seen})", last=last
                )
            await asyncio.sleep(delay)
            delay = min(poll_interval, delay * 2)

    async def venue(self) -> Venue:
        """``GET /v1/venue``: the node's signing domain, settlement contract and markets."""
        status, document = await self._request("GET", "/v1/venue")
        if status == 404 and not (isinstance(document, dict) and "code" in document):
            raise NodeError(
                "the node has no GET /v1/venue (an older node): give the chain id, contract "
                "and markets to the constructor",
                status=404,
                body=document,
            )
        if status != 200:
            raise _error_of(status, document)
        try:
            return Venue.from_json(document)
        except ValueError as exc:
            raise NodeError(f"unexpected venue: {exc}", status=status, body=document) from None

    async def node_status(self) -> dict[str, Any]:
        """``GET /v1/status``: the node's seqs, state root and engine time."""
        status, document = await self._request("GET", "/v1/status")
        if status != 200 or not isinstance(document, dict):
            raise _error_of(status, document)
        return document

    def stream(self, **options: Any) -> Stream:
        """A WebSocket stream to this node (``async with client.stream() as stream``) that
        signs what it submits with this client's wallet; see :mod:`asyncdex.client.streams`."""
        return Stream(self.base_url, client=self, **options)

    # ------------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        signed: Sequence[SignedIntent] = (),
    ) -> tuple[int, Any]:
        """``(status, parsed JSON body)``; retries what is safe (see the module docstring)."""
        url = self.base_url + path
        maybe_sequenced = False
        failure = ""
        hint = 0.0  # the node's Retry-After for the next attempt, in seconds
        for attempt in range(1, self.retry.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(max(self.retry.delay(attempt - 1), hint))
            hint = 0.0
            try:
                async with self._http().request(
                    method, url, data=body, headers=JSON_HEADERS if body is not None else None
                ) as response:
                    status = response.status
                    raw = await response.read()
                    retry_after = response.headers.get("Retry-After")
            except _NOT_SENT as exc:
                failure = f"cannot connect to {self.base_url}: {exc}"  # nothing was sent
                continue
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                # The request may have reached the node before the connection broke.
                maybe_sequenced = True
                failure = f"{method} {path}: {type(exc).__name__}: {exc}"
                continue
            document = _json_or_none(raw)
            if status in RETRY_STATUSES:
                hint = retry_after_seconds(retry_after, document)
                # A 503 from the node acknowledges nothing, but ``outcome_unknown`` says some
                # of it may be in the journal; a 502/504 from a proxy in front of the node
                # might have been forwarded: both count as possibly sequenced.
                maybe_sequenced = (
                    maybe_sequenced
                    or status in (502, 504)
                    or (isinstance(document, dict) and document.get("code") == OUTCOME_UNKNOWN)
                )
                failure = f"{method} {path}: HTTP {status}: {_message_of(document, raw)}"
                continue
            return status, document
        raise NodeUnavailable(
            f"{failure} (after {self.retry.attempts} attempts)"
            + (
                "; it may have been sequenced: resubmit error.signed unchanged"
                if maybe_sequenced and signed
                else ""
            ),
            signed=signed,
            maybe_sequenced=maybe_sequenced and bool(signed),
        )


class Connecting:
    """What :meth:`AsyncClient.connect` returns: await it for the client, or use it in
    ``async with`` to have the client closed at the end of the block."""

    def __init__(self, connecting: Coroutine[Any, Any, AsyncClient]) -> None:
        self._connecting = connecting
        self._client: AsyncClient | None = None

    def __await__(self) -> Generator[Any, None, AsyncClient]:
        return self._connecting.__await__()

    async def __aenter__(self) -> AsyncClient:
        self._client = await self._connecting
        return self._client

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _message_of(document: Any, raw: bytes) -> str:
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    return raw[:200].decode(errors="replace")


def _error_of(status: int, document: Any) -> Exception:
    if 400 <= status < 500 and isinstance(document, dict) and isinstance(document.get("code"), str):
        field = document.get("field")
        index = document.get("index")
        return IntakeRefused(
            str(document.get("error", "")),
            status=status,
            code=document["code"],
            field=field if isinstance(field, str) else None,
            index=index if type(index) is int else None,
            body=document,
        )
    return NodeError(
        f"HTTP {status}: {_message_of(document, json.dumps(document).encode())}",
        status=status,
        body=document,
    )


def _venue(path: str | Path) -> tuple[int, bytes, Markets]:
    config, chain_id, contract = load_venue_file(path)
    if chain_id is None or contract is None:
        raise ValueError(
            f"{path}: no [venue] chain_id and settlement_contract (an embedded chain's "
            "contract is only known once the node runs): use connect(url, wallet), which "
            "asks the node"
        )
    return chain_id, contract, Markets.from_config(config)


# The constructor's arguments while ``connect`` asks the node for the real ones; no intent
# is signed before they are replaced.
_UNKNOWN_DOMAIN = (0, bytes(20))


def _connect_options(options: dict[str, Any]) -> dict[str, Any]:
    given = sorted({"chain_id", "contract", "markets"} & set(options))
    if given:
        raise TypeError(f"connect takes {', '.join(given)} from the node; do not pass them")
    return options


# ---------------------------------------------------------------------------------------------
# The sync client


class Client:
    """The blocking twin of :class:`AsyncClient`: same arguments, same methods.

    Why a loop thread rather than ``asyncio.run`` per call: ``asyncio.run`` builds and tears
    down an event loop each call, so no HTTP session (and no keep-alive connection) can
    outlive a call — every request would pay a new TCP connection — and it refuses to run
    where a loop is already running (Jupyter, async frameworks calling sync code). One
    daemon thread running one loop keeps one session with pooled connections for the
    client's life, accepts calls from any thread (``run_coroutine_threadsafe``), and works
    under a running loop. Intents are built (nonces taken) in the caller's thread, so the
    order of a thread's calls is the order of its nonces. ``close()`` (or ``with``) stops
    the thread.
    """

    def __init__(
        self,
        base_url: str,
        wallet: BaseWallet,
        chain_id: int,
        contract: bytes | str,
        markets: MarketsArg = None,
        **options: Any,
    ) -> None:
        self._client = AsyncClient(base_url, wallet, chain_id, contract, markets, **options)
        self.build = self._client.build
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="asyncdex-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    @classmethod
    def connect(cls, base_url: str, wallet: BaseWallet, **options: Any) -> Client:
        """A client for the venue the node at ``base_url`` serves, with the signing domain
        and markets it answers at ``GET /v1/venue``; ``options`` as the constructor's."""
        client = cls(base_url, wallet, *_UNKNOWN_DOMAIN, **_connect_options(options))
        try:
            client._client._use_venue(client.venue())
        except BaseException:
            client.close()
            raise
        return client

    @classmethod
    def from_venue_file(
        cls, base_url: str, wallet: BaseWallet, path: str | Path, **options: Any
    ) -> Client:
        """A client for the venue a TOML file describes (markets, chain id, contract)."""
        return cls(base_url, wallet, *_venue(path), **options)

    def venue(self) -> Venue:
        """``GET /v1/venue``: the node's signing domain, settlement contract and markets."""
        return self._call(self._client.venue())

    @property
    def domain(self) -> Domain:
        return self._client.domain

    @property
    def wallet(self) -> BaseWallet:
        return self._client.wallet

    @property
    def markets(self) -> Markets:
        return self._client.markets

    @property
    def sealing(self) -> SealingInfo | None:
        """The committee's sealing key as the node announced it (None: no sealed intents)."""
        return self._client.sealing

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("client is closed")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a blocking Client call from its own loop thread would deadlock")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (Ctrl-C): stop the request instead of leaving it running unseen.
            future.cancel()
            raise

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call(self._client.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def sign(self, intent: Intent) -> SignedIntent:
        return self._client.sign(intent)

    def intent_id(self, intent: Intent | SignedIntent) -> str:
        return self._client.intent_id(intent)

    def submit(self, intents: Sequence[Intent | SignedIntent]) -> list[Receipt]:
        """Sign what is not signed yet and send all in one request; receipts in order."""
        return self._call(self._client.submit(intents))

    batch = submit

    def seal(
        self, intent: Intent | SignedIntent, *, epoch: int | None = None, fee_cap: int = 0
    ) -> SealedIntent:
        return self._client.seal(intent, epoch=epoch, fee_cap=fee_cap)

    def submit_sealed(
        self,
        intents: Sequence[Intent | SignedIntent],
        *,
        epoch: int | None = None,
        fee_cap: int = 0,
    ) -> list[Receipt]:
        return self._call(self._client.submit_sealed(intents, epoch=epoch, fee_cap=fee_cap))

    def submit_one(self, intent: Intent | SignedIntent) -> Receipt:
        return self._call(self._client.submit_one(intent))

    place_order = _sync_action(IntentBuilder.place_order)
    market_order = _sync_action(IntentBuilder.market_order)
    cancel = _sync_action(IntentBuilder.cancel)
    cancel_by_client_id = _sync_action(IntentBuilder.cancel_by_client_id)
    cancel_all = _sync_action(IntentBuilder.cancel_all)
    modify = _sync_action(IntentBuilder.modify)
    schedule_cancel = _sync_action(IntentBuilder.schedule_cancel)
    set_leverage = _sync_action(IntentBuilder.set_leverage)
    update_isolated_margin = _sync_action(IntentBuilder.update_isolated_margin)
    withdraw = _sync_action(IntentBuilder.withdraw)
    approve_agent = _sync_action(IntentBuilder.approve_agent)

    def status(self, intent: IntentRef) -> IntentStatus:
        return self._call(self._client.status(intent))

    def status_of_seq(self, seq: int) -> IntentStatus:
        return self._call(self._client.status_of_seq(seq))

    def resolve(
        self, intents: Sequence[IntentRef | Intent | SignedIntent]
    ) -> list[IntentStatus | None]:
        return self._call(self._client.resolve(intents))

    def wait_for(
        self,
        intent: IntentRef,
        status: str = EXECUTED,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        *,
        poll_interval: float = 0.5,
    ) -> IntentStatus:
        return self._call(
            self._client.wait_for(intent, status, timeout, poll_interval=poll_interval)
        )

    def node_status(self) -> dict[str, Any]:
        return self._call(self._client.node_status())
