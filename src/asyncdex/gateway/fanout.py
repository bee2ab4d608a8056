"""Fan-out to WebSocket subscribers: frames encoded once, bounded backlogs, batched writes,
connection caps. Used by both socket doors (``/v1/ws`` and Hyperliquid's ``/ws``).

Invariants:

- A message is encoded once: its JSON text becomes one complete WebSocket text frame
  (bytes) and that same object is queued to every subscriber. ``FanOut.encoded`` counts the
  frames built, so a test can see that a message for many subscribers cost one encoding.
- A connection's backlog is its queued frames plus its transport's write buffer. Past
  ``max_backlog_bytes`` or ``max_backlog_messages`` (after the door's own shedding, see
  ``Outbox.on_overflow``) the connection is closed; so is one that had a backlog and made no
  write progress for ``stall_seconds`` (a peer that stopped reading). What a connection holds
  is bounded by those limits plus the kernel's send buffer, itself bounded (``SO_SNDBUF``).
- Closing never waits on the peer: a close frame is written behind what is queued and the
  connection is reset if it is still open ``close_grace_seconds`` later, or at once when
  the socket's handler ends with bytes still unsent. (asyncio's ``transport.close()`` waits
  for the write buffer to empty: for a peer that never reads, forever; and a socket closed
  with unsent bytes in the kernel lingers there, orphaned, still holding them. A reset,
  ``SO_LINGER`` 0 then close, discards both at once.)
- Writes are batched and yield: enqueueing only appends and marks the connection; a flush
  writes each marked connection's frames in one transport write, at most ``flush_batch``
  connections per callback, the rest in the next, so the event loop runs the sequencer's
  and the receipts' callbacks in between. Market data waits for the next flush, at most
  ``flush_interval_seconds`` away, so a burst of records costs each socket one system call
  rather than one per record (what a socket costs is mostly that call, whatever it
  carries); an answer to the client's own request (a receipt, an intent's status, a pong)
  is ``urgent`` and flushed in the same loop iteration. A connection whose write
  buffer is above ``write_high_water`` gets nothing more until it drains (checked every
  ``sweep_seconds``), so its frames stay in the queue where the door may still shed them.
- Sockets are counted from the upgrade until the socket's handler has closed or aborted the
  transport, per door and per client address; past either cap the upgrade is refused with
  ``503`` before any WebSocket is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket as sockets
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

TEXT_OPCODE = 0x81  # FIN + text
CLOSE_OPCODE = 0x88  # FIN + close
# The kernel's send buffer is part of what a reader that does not read holds: bounded here
# (Linux doubles it) rather than left to grow to the system's maximum, several MB a socket.
# Ample for market data: 256 KiB per round trip is 5 MB/s at 50 ms.
SEND_BUFFER_BYTES = 256 * 1024
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection


@dataclass(frozen=True, slots=True)
class ConnectionCaps:
    """WebSocket sockets one door accepts, in all and from one client address."""

    per_door: int = 1_000
    per_address: int = 100  # Hyperliquid's WebSocket limit per IP


DEFAULT_CONNECTION_CAPS = ConnectionCaps()


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """What one door allows: sockets, and each socket's backlog and silence."""

    max_connections: int = 1_000
    max_connections_per_address: int = 100  # Hyperliquid's WebSocket limit per IP
    max_backlog_messages: int = 4_096
    max_backlog_bytes: int = 8 * 1024 * 1024
    stall_seconds: float = 10.0  # a backlog with no write progress this long: closed
    close_grace_seconds: float = 2.0
    write_high_water: int = 64 * 1024  # transport buffer above which no more is written
    flush_batch: int = 64  # connections written per loop callback
    flush_interval_seconds: float = 0.05  # market data: at most this long in the queue
    sweep_seconds: float = 0.05


DEFAULT_SOCKET_LIMITS = SocketLimits()


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented server text frame (RFC 6455 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((TEXT_OPCODE, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", TEXT_OPCODE, 126, size)
    else:
        header = struct.pack("!BBQ", TEXT_OPCODE, 127, size)
    return header + payload


def close_frame(code: int, reason: str) -> bytes:
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return bytes((CLOSE_OPCODE, len(payload))) + payload


def client_address(request: web.Request) -> str:
    """The peer's IP address (the key of per-address caps and budgets)."""
    return request.remote or "unknown"


class Outbox:
    """One socket's queue of encoded frames (each tagged by the door, e.g. "book message").

    ``on_overflow(outbox, tag)`` (set by the door) may shed queued frames when a put would
    pass a bound, and answers whether the frame being put is to be dropped too; if the bound
    is still passed, the connection is closed."""

    __slots__ = (
        "address",
        "close_code",
        "closed",
        "fanout",
        "frames",
        "last_buffer",
        "marked",
        "max_bytes",
        "max_messages",
        "on_overflow",
        "progress_at",
        "queued_bytes",
        "transport",
    )

    def __init__(self, fanout: FanOut, transport: asyncio.Transport, address: str) -> None:
        self.fanout = fanout
        self.transport = transport
        self.address = address
        self.frames: deque[tuple[bool, bytes]] = deque()
        self.queued_bytes = 0
        self.max_messages = fanout.limits.max_backlog_messages
        self.max_bytes = fanout.limits.max_backlog_bytes
        self.marked = False  # waiting in the fan-out's list of outboxes to write
        self.closed = False
        self.close_code: int | None = None
        self.on_overflow: Callable[[Outbox, bool], bool] | None = None
        self.progress_at = fanout.now()
        self.last_buffer = 0

    def backlog_bytes(self) -> int:
        return self.queued_bytes + self.transport.get_write_buffer_size()

    def over_bounds(self, extra: int = 0) -> bool:
        # The transport's buffer is not read here (the sweeper checks it): nothing is written
        # to a transport above ``write_high_water``, so it holds at most that plus one write.
        return len(self.frames) >= self.max_messages or self.queued_bytes + extra > self.max_bytes

    def put(self, frame: bytes, tag: bool = False, urgent: bool = False) -> None:
        """Queue a frame; never waits. Past a bound: the door sheds, else the socket closes.
        (Called once per subscriber and message: kept to a few attribute reads.)"""
        if self.closed:
            return
        frames = self.frames
        size = len(frame)
        if frames and (
            len(frames) >= self.max_messages or self.queued_bytes + size > self.max_bytes
        ):
            if self.on_overflow is not None and self.on_overflow(self, tag):
                return
            if self.closed:
                return
            frames = self.frames  # shedding replaced it
            if frames and self.over_bounds(size):
                self.close(1008, "slow consumer: send queue overflow")
                return
        frames.append((tag, frame))
        self.queued_bytes += size
        if not self.marked:
            self.fanout.mark(self)
        if urgent:
            self.fanout.hurry()

    def force(self, frame: bytes) -> None:
        """Queue a small notice past the bounds (what shedding leaves must still be said)."""
        if not self.closed:
            self.frames.append((False, frame))
            self.queued_bytes += len(frame)
            if not self.marked:
                self.fanout.mark(self)

    def send_text(self, text: str, tag: bool = False, urgent: bool = False) -> None:
        self.put(self.fanout.encode(text), tag, urgent)

    def shed(self, keep: Callable[[bool], bool]) -> None:
        """Drop the queued frames whose tag ``keep`` refuses."""
        kept = deque(item for item in self.frames if keep(item[0]))
        self.frames = kept
        self.queued_bytes = sum(len(frame) for _, frame in kept)
        if kept and not self.marked:
            self.fanout.mark(self)

    def close(self, code: int, reason: str, *, going_away: bool = False) -> None:
        """Close now: queued frames are dropped, a close frame goes out behind what the
        transport holds, and the connection is reset after the grace unless the peer has
        answered the close by then. (Not ``transport.close()`` at once: what the kernel still
        holds for a peer that does not read would linger there after it.) ``going_away``
        (the node stops): the transport is closed at once when it holds nothing, so a peer
        busy elsewhere still finds the close frame and a clean end once the node is gone."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.frames.clear()
        self.queued_bytes = 0
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(close_frame(code, reason))
        if going_away and transport.get_write_buffer_size() == 0:
            transport.close()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.fanout.limits.close_grace_seconds, self.reset)

    def reset(self) -> None:
        """Drop the connection now, with whatever the transport and the kernel still hold
        (a TCP reset: nothing is left behind for a peer that does not read)."""
        transport = self.transport
        raw = transport.get_extra_info("socket")
        if raw is not None and raw.fileno() >= 0:
            with contextlib.suppress(OSError):
                raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_LINGER, LINGER_RESET)
        transport.abort()


class FanOut:
    """The sockets of one door: admission, the write batching and the sweeper."""

    def __init__(self, limits: SocketLimits = DEFAULT_SOCKET_LIMITS) -> None:
        self.limits = limits
        self.outboxes: dict[Outbox, None] = {}
        self.per_address: dict[str, int] = {}
        self.encoded = 0  # frames built (a test counts encodings per message)
        self._marked: deque[Outbox] = deque()
        self._soon = False  # a flush is due in this loop iteration
        self._later = False  # a flush is due within ``flush_interval_seconds``
        self._sweeper: asyncio.Task[None] | None = None

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def encode(self, text: str) -> bytes:
        self.encoded += 1
        return text_frame(text)

    # -- admission

    def refusal(self, request: web.Request) -> web.Response | None:
        """A 503 answer when the door or the client's address is at its cap, else None."""
        limits = self.limits
        if len(self.outboxes) >= limits.max_connections:
            return web.json_response(
                {"error": f"too many sockets (at most {limits.max_connections})",
                 "code": "too_many_connections"}, status=503)  # fmt: skip
        address = client_address(request)
        if self.per_address.get(address, 0) >= limits.max_connections_per_address:
            return web.json_response(
                {"error": f"too many sockets from {address} (at most "
                          f"{limits.max_connections_per_address})",
                 "code": "too_many_connections_from_address"}, status=503)  # fmt: skip
        return None

    def open(self, request: web.Request) -> Outbox:
        """Count a socket about to be upgraded (call right after :meth:`refusal`)."""
        transport = request.transport
        assert transport is not None
        raw = transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_SNDBUF, SEND_BUFFER_BYTES)
        address = client_address(request)
        outbox = Outbox(self, transport, address)
        self.outboxes[outbox] = None
        self.per_address[address] = self.per_address.get(address, 0) + 1
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return outbox

    def release(self, outbox: Outbox) -> None:
        """The socket's handler is ending: the transport is closed (aborted if bytes are
        still unsent, which a peer that stopped reading would hold forever), then uncounted."""
        outbox.closed = True
        outbox.frames.clear()
        outbox.queued_bytes = 0
        transport = outbox.transport
        unsent = transport.get_write_buffer_size() > 0
        if transport.is_closing() and not unsent:
            pass  # closed cleanly (the peer answered the close): nothing is left behind
        elif unsent or outbox.close_code is not None:
            # bytes unsent, or closed by the node and not answered: the kernel may hold some
            outbox.reset()
        else:
            transport.close()
        if self.outboxes.pop(outbox, 0) is None:
            left = self.per_address[outbox.address] - 1
            if left:
                self.per_address[outbox.address] = left
            else:
                del self.per_address[outbox.address]

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # -- writing

    def mark(self, outbox: Outbox) -> None:
        outbox.marked = True
        self._marked.append(outbox)
        if not self._later:
            self._later = True
            loop = asyncio.get_running_loop()
            loop.call_later(self.limits.flush_interval_seconds, self._flush_later)

    def hurry(self) -> None:
        """Flush in this loop iteration (an answer the client is waiting for is queued)."""
        if not self._soon:
            self._soon = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_later(self) -> None:
        self._later = False
        self._flush()

    def _flush_soon(self) -> None:
        self._soon = False
        self._flush()

    def _flush(self) -> None:
        marked = self._marked
        batch = self.limits.flush_batch
        while marked and batch:
            outbox = marked.popleft()
            outbox.marked = False
            self._write(outbox)
            batch -= 1
        if marked:
            self.hurry()  # the rest in the next callback, after what else is ready

    def _write(self, outbox: Outbox) -> None:
        if outbox.closed or not outbox.frames:
            return
        transport = outbox.transport
        if transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        if buffered < outbox.last_buffer:
            outbox.progress_at = self.now()
        room = self.limits.write_high_water - buffered
        if room <= 0:
            return  # the sweeper comes back once it drains
        frames = outbox.frames
        out = []
        while frames and room > 0:
            _, frame = frames.popleft()
            out.append(frame)
            room -= len(frame)
            outbox.queued_bytes -= len(frame)
        transport.write(b"".join(out))
        outbox.last_buffer = transport.get_write_buffer_size()

    async def _sweep(self) -> None:
        """Resume writing to connections that drained; close those past a bound or silent."""
        limits = self.limits
        while True:
            await asyncio.sleep(limits.sweep_seconds)
            now = self.now()
            for outbox in list(self.outboxes):
                if outbox.closed:
                    continue
                buffered = outbox.transport.get_write_buffer_size()
                if not outbox.frames and buffered == 0:
                    outbox.progress_at = now
                    outbox.last_buffer = 0
                    continue
                if buffered < outbox.last_buffer:
                    outbox.progress_at = now
                outbox.last_buffer = buffered
                if outbox.backlog_bytes() > limits.max_backlog_bytes:
                    outbox.close(1008, "slow consumer: send queue overflow")
                elif now - outbox.progress_at > limits.stall_seconds:
                    outbox.close(1008, "slow consumer: no read progress")
                elif outbox.frames and buffered < limits.write_high_water and not outbox.marked:
                    self.mark(outbox)
