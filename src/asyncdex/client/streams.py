"""WebSocket streams of a node (``/v1/ws``, see ``docs/streams.md``): book mirrors, trades,
account events, intent status, and submission over the socket.

Invariants:

- A :class:`BookMirror` shows a book only while it is in sync: after a snapshot, with every
  delta since applied in order (each delta's ``prevSeq`` is the seq the mirror is at). A
  gap, a ``dropped`` notice from the node or a book that would be crossed (in a continuous
  market; a batch-auction book, flagged ``auction`` in its snapshot, is crossed between
  auctions on purpose) puts it out of sync: :meth:`BookMirror.bids`, ``asks`` and ``best``
  then raise :class:`StaleBook` instead of showing a stale or crossed book, and the
  :class:`Stream` that feeds it resubscribes for a fresh snapshot. Deltas arriving before
  that snapshot are ignored.
- One reader task per :class:`Stream` reads every frame in order: replies resolve the op
  they answer (by ``id``), book messages update the mirrors, and every channel message is
  then queued for ``async for message in stream``. So once a reply arrives (``ping``, say),
  the mirrors reflect every message the node sent before it.
- ``submit`` returns receipts only for intents the node made durable; a refusal raises
  :class:`~asyncdex.client.errors.IntakeRefused` with the node's code and HTTP-equivalent
  status, exactly as the HTTP client does, and nothing of the request was sequenced.
- No reconnection: when the socket closes, pending ops fail with :class:`StreamClosed`
  and iteration ends; ``close_code`` says why (1001: the node shut down; 1008: this client
  read too slowly; 1009: a frame too large).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp

from asyncdex.client.errors import ClientError, DomainMismatch, IntakeRefused, NodeError
from asyncdex.client.status import Receipt, parse_receipts
from asyncdex.signing.intents import Intent, SignedIntent, signed_intent_to_json

if TYPE_CHECKING:
    from asyncdex.client.client import AsyncClient

Level = tuple[Decimal, Decimal]  # (price, total size)


class StreamError(ClientError):
    """The node refused a stream op (bad op, unknown market, too many subscriptions ...)."""

    def __init__(self, message: str, *, code: str, body: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.message = message
        self.code = code
        self.body = body


class StreamClosed(ClientError):
    """The socket closed before the op was answered."""

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class StaleBook(ClientError):
    """A :class:`BookMirror` was read while out of sync (before its first snapshot, or after
    a gap until the fresh snapshot arrives)."""


def ws_url(base_url: str) -> str:
    """``http://host:port`` (a node's base URL) -> ``ws://host:port/v1/ws``."""
    url = base_url.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    return url if url.endswith("/v1/ws") else url + "/v1/ws"


# ---------------------------------------------------------------------------------------------
# Book mirror


class BookMirror:
    """One market's book rebuilt from a snapshot and the deltas that follow it.

    :meth:`apply` takes every book message of the market, in order, and returns True when
    the mirror fell out of sync and needs a fresh snapshot (resubscribe); a :class:`Stream`
    does that itself for the mirrors it made (:meth:`Stream.book`).
    """

    def __init__(self, market: str) -> None:
        self.market = market
        self.seq: int | None = None  # the node's seq the mirror reflects; None: out of sync
        self._bids: dict[Decimal, Decimal] = {}
        self._asks: dict[Decimal, Decimal] = {}
        self.resyncs = 0  # times the mirror fell out of sync (gaps, drops, crossings)
        self.auction = False  # a batch-auction market: crossed between auctions is normal

    @property
    def synced(self) -> bool:
        return self.seq is not None

    def apply(self, message: dict[str, Any]) -> bool:
        """Apply one book message; True if the mirror just fell out of sync."""
        kind = message.get("type")
        if kind == "snapshot":
            self._bids = {Decimal(p): Decimal(s) for p, s in message["bids"]}
            self._asks = {Decimal(p): Decimal(s) for p, s in message["asks"]}
            self.seq = int(message["seq"])
            self.auction = message.get("auction") is True
            return self._check_uncrossed()
        if kind == "dropped":
            return self._lose_sync()
        if kind != "delta" or self.seq is None:
            return False  # before the (fresh) snapshot: superseded by it
        if message["prevSeq"] != self.seq:
            return self._lose_sync()  # a message went missing
        for side, price, size in message["changes"]:
            levels = self._bids if side == "bid" else self._asks
            amount = Decimal(size)
            if amount:
                levels[Decimal(price)] = amount
            else:
                levels.pop(Decimal(price), None)
        self.seq = int(message["seq"])
        return self._check_uncrossed()

    def _check_uncrossed(self) -> bool:
        if self.auction:
            return False
        if self._bids and self._asks and max(self._bids) >= min(self._asks):
            return self._lose_sync()  # never show a crossed book
        return False

    def _lose_sync(self) -> bool:
        was_synced = self.seq is not None
        self.seq = None
        self._bids.clear()
        self._asks.clear()
        if was_synced:
            self.resyncs += 1
        return True

    def _levels(self, levels: dict[Decimal, Decimal], best_first_descending: bool,
                depth: int | None) -> list[Level]:  # fmt: skip
        if self.seq is None:
            raise StaleBook(f"the {self.market} book is not in sync (awaiting a snapshot)")
        prices = sorted(levels, reverse=best_first_descending)[:depth]
        return [(price, levels[price]) for price in prices]

    def bids(self, depth: int | None = None) -> list[Level]:
        """(price, size) levels, best (highest) first."""
        return self._levels(self._bids, True, depth)

    def asks(self, depth: int | None = None) -> list[Level]:
        """(price, size) levels, best (lowest) first."""
        return self._levels(self._asks, False, depth)

    def best(self) -> tuple[Decimal | None, Decimal | None]:
        """(best bid, best ask) prices; None for an empty side."""
        if self.seq is None:
            raise StaleBook(f"the {self.market} book is not in sync (awaiting a snapshot)")
        return (max(self._bids) if self._bids else None, min(self._asks) if self._asks else None)


# ---------------------------------------------------------------------------------------------
# Stream


_CLOSED = object()


class Stream:
    """One WebSocket connection to a node: ``async with Stream(url) as stream: ...``.

    ``url`` is the node's base URL (``http://host:port``) or the socket's (``ws://.../v1/ws``).
    With ``client`` (an :class:`~asyncdex.client.AsyncClient`), :meth:`submit` signs unsigned
    intents and checks receipts' intent ids like the client does. ``keep_messages=False``
    queues nothing for iteration (for a stream used only for mirrors and submissions).
    """

    def __init__(
        self,
        url: str,
        *,
        client: AsyncClient | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        keep_messages: bool = True,
    ) -> None:
        self.url = ws_url(url)
        self.client = client
        self.timeout = timeout
        self.keep_messages = keep_messages
        self._session = session
        self._owns_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._messages: asyncio.Queue[Any] = asyncio.Queue()
        self._mirrors: dict[str, BookMirror] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.close_code: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> Stream:
        if self._session is None:
            # a total timeout would end the socket too: bound the connecting only
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
            )
        try:
            self._ws = await self._session.ws_connect(
                self.url, timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout)
            )
        except BaseException:
            if self._owns_session:
                await self._session.close()
                self._session = None
            raise
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aenter__(self) -> Stream:
        return await self.connect()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed

    # ------------------------------------------------------------------ ops

    async def send_raw(self, text: str) -> None:
        """Send one frame as is (no reply awaited): for testing a node's refusals."""
        assert self._ws is not None, "connect() first"
        await self._ws.send_str(text)

    async def request(self, op: dict[str, Any]) -> dict[str, Any]:
        """Send an op with a fresh ``id`` and return the node's reply to it;
        :class:`StreamError` if the node refused it."""
        if self._ws is None or self._ws.closed:
            raise StreamClosed("the stream is not connected", close_code=self.close_code)
        op_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[op_id] = future
        try:
            await self._ws.send_str(json.dumps({**op, "id": op_id}, separators=(",", ":")))
            reply = await asyncio.wait_for(future, self.timeout)
        finally:
            self._pending.pop(op_id, None)
        if reply.get("op") == "error":
            raise _refusal(reply)
        return reply

    async def subscribe(self, channel: str, **key: Any) -> dict[str, Any]:
        """``subscribe``: ``market=`` for book and trades, ``address=`` for account,
        ``ids=[...]`` or ``account=`` for intents."""
        return await self.request({"op": "subscribe", "channel": channel, **key})

    async def unsubscribe(self, channel: str, **key: Any) -> dict[str, Any]:
        if channel == "book":
            self._mirrors.pop(key.get("market", ""), None)
        return await self.request({"op": "unsubscribe", "channel": channel, **key})

    async def ping(self) -> int:
        """Round trip; the node's applied seq when it answered. Every message the node sent
        before the answer has been read (and applied to the mirrors) when this returns."""
        reply = await self.request({"op": "ping"})
        return int(reply["seq"])

    async def book(self, market: str) -> BookMirror:
        """Subscribe to ``market``'s book; the mirror this stream keeps in sync (it
        resubscribes by itself after a gap), returned once the snapshot is applied."""
        mirror = self._mirrors.get(market)
        if mirror is None:
            mirror = self._mirrors[market] = BookMirror(market)
        await self.subscribe("book", market=market)
        await self.ping()  # answered after the snapshot, which follows the subscribe's reply
        return mirror

    async def resync(self, market: str) -> None:
        """Ask for a fresh snapshot of ``market``'s book (resubscribing)."""
        await self.subscribe("book", market=market)

    async def submit(
        self, intents: Sequence[Intent | SignedIntent], *, follow: bool = False
    ) -> list[Receipt]:
        """Submit over the socket; receipts once durable. ``follow=True`` streams each
        intent's status (``intents`` channel messages) on this connection."""
        signed = []
        for intent in intents:
            if isinstance(intent, SignedIntent):
                signed.append(intent)
            elif self.client is not None:
                signed.append(self.client.sign(intent))
            else:
                raise ValueError("unsigned intent: sign it, or give the Stream a client")
        if not signed:
            raise ValueError("nothing to submit")
        op: dict[str, Any] = {"op": "submit", "intents": [signed_intent_to_json(s) for s in signed]}
        if follow:
            op["follow"] = True
        try:
            reply = await self.request(op)
        except StreamError as error:
            raise _intake_refused(error.body) from None
        try:
            receipts = parse_receipts(reply, len(signed))
        except ValueError as exc:
            raise NodeError(f"unexpected receipts: {exc}", body=reply) from None
        if self.client is not None:
            expected = [self.client.intent_id(s) for s in signed]
            if [r.intent_id for r in receipts] != expected:
                raise DomainMismatch(
                    "the node's intent ids differ from the digests signed: the node has "
                    "another signing domain, and will reject these intents",
                    receipts=receipts,
                )
        return receipts

    # ------------------------------------------------------------------ messages

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self._messages.get()
            if message is _CLOSED:
                self._messages.put_nowait(_CLOSED)  # later iterations end too
                return
            yield message

    async def next_message(self, timeout: float | None = None) -> dict[str, Any]:
        """The next channel message; :class:`StreamClosed` once the socket closed."""
        message = await asyncio.wait_for(self._messages.get(), timeout)
        if message is _CLOSED:
            self._messages.put_nowait(_CLOSED)
            raise StreamClosed("the stream closed", close_code=self.close_code)
        result: dict[str, Any] = message
        return result

    def drain(self) -> list[dict[str, Any]]:
        """Every channel message queued now, without waiting."""
        out: list[dict[str, Any]] = []
        while not self._messages.empty():
            message = self._messages.get_nowait()
            if message is _CLOSED:
                self._messages.put_nowait(_CLOSED)
                break
            out.append(message)
        return out

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        close_code = None
        try:
            while True:
                frame = await ws.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._dispatch(json.loads(frame.data))
                elif frame.type == aiohttp.WSMsgType.CLOSE:
                    # the node's code, as it sent it: the socket's own may say 1006 when the
                    # node drops the connection before this side's close reply
                    close_code = int(frame.data)
                elif frame.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        finally:
            self.close_code = close_code if close_code is not None else ws.close_code
            closed = StreamClosed("the stream closed", close_code=self.close_code)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(closed)
            self._messages.put_nowait(_CLOSED)

    def _dispatch(self, message: dict[str, Any]) -> None:
        op_id = message.get("id")
        if "op" in message and op_id is not None:
            future = self._pending.get(op_id)
            if future is not None and not future.done():
                future.set_result(message)
            return
        if message.get("channel") == "book":
            mirror = self._mirrors.get(message.get("market", ""))
            if mirror is not None and mirror.apply(message):
                task = asyncio.get_running_loop().create_task(self._resync_quietly(mirror.market))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if self.keep_messages:
            self._messages.put_nowait(message)

    async def _resync_quietly(self, market: str) -> None:
        with contextlib.suppress(StreamClosed, StreamError, TimeoutError):
            await self.resync(market)


def _refusal(reply: dict[str, Any]) -> StreamError:
    return StreamError(str(reply.get("error", "")), code=str(reply.get("code")), body=reply)


def _intake_refused(reply: Any) -> IntakeRefused:
    field, index, status = reply.get("field"), reply.get("index"), reply.get("status")
    return IntakeRefused(
        str(reply.get("error", "")),
        status=status if type(status) is int else 400,
        code=str(reply.get("code")),
        field=field if isinstance(field, str) else None,
        index=index if type(index) is int else None,
        body=reply,
    )
