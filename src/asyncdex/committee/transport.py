"""Authenticated links between committee members over TCP (plain asyncio streams).

Invariants:
- Every member listens on its own host:port and dials every other member. A dialed
  connection only carries frames from the dialer to the listener (the listener sends only
  its challenge), so each direction of a pair has exactly one link and nothing is deduplicated.
- The first frame on a connection is the listener's challenge (a fresh random nonce); the
  dialer answers with a hello naming its member index, signed by that member's key over
  ``keccak256(pack([domain, "hello", listener index, nonce]))``. Until a valid hello arrives
  no frame is handed to anyone; afterwards every frame is attributed to that member. A bad
  or late hello, an oversized or empty frame, an unknown channel, or a frame a handler calls
  invalid closes the connection and is counted in ``rejected`` (an honest member redials).
- A frame is ``length (u32, big-endian) | channel (1 byte) | payload`` with ``length`` =
  1 + the payload's size, at most ``max_frame_bytes``: a peer cannot make us buffer more.
- Sending never blocks and never fails: each peer has a bounded queue of frames; when it is
  full (the peer is down or slow) the oldest frame is dropped and counted. The consensus
  protocol recovers what is lost through its timeouts and block fetches.
- Dialing retries with exponential backoff (``min_backoff`` doubling to ``max_backoff``).
- At most ``max_links`` accepted connections exist at once (authenticated or not): a flood of
  connections is refused and counted instead of holding memory and tasks.

Channels let other parts reuse the links: ``CHANNEL_CONSENSUS`` carries
``asyncdex.consensus.messages.encode`` bytes; settlement (batch-header signatures) and
fairness (decryption shares) register their own with :meth:`Transport.register`. Handlers
get ``(member index, payload)`` on the event loop and must return quickly.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import struct
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import Secp256k1Verifier, Signer, Verifier
from asyncdex.types.hashing import keccak256
from asyncdex.types.packing import pack, unpack

_log = logging.getLogger(__name__)

CHANNEL_HELLO = 0  # reserved: the challenge and the hello
CHANNEL_CONSENSUS = 1
CHANNEL_SETTLEMENT = 2
CHANNEL_FAIRNESS = 3

DEFAULT_MAX_FRAME_BYTES = 64 << 20  # a block fetch response of 64 full blocks fits
DEFAULT_QUEUE_FRAMES = 4_096
_LENGTH = struct.Struct(">I")
_NONCE_BYTES = 32

FrameHandler = Callable[[int, bytes], None]


class InvalidFrame(ValueError):
    """Raised by a handler for a frame no honest member sends: the link is closed."""


def hello_digest(domain: bytes, listener: int, nonce: bytes) -> bytes:
    return keccak256(pack([domain, "hello", listener, nonce]))


@dataclass(slots=True)
class TransportStats:
    frames_sent: int = 0
    frames_received: int = 0
    dropped_frames: int = 0  # oldest frames dropped from a full send queue
    connects: int = 0
    connect_failures: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


@dataclass(slots=True)
class _Peer:
    host: str
    port: int
    queue: collections.deque[bytes]
    ready: asyncio.Event
    connected: bool = False


class _Rejected(Exception):
    pass


def _frame(channel: int, payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload) + 1) + bytes((channel,)) + payload


async def _read_frame(reader: asyncio.StreamReader, max_frame_bytes: int) -> tuple[int, bytes]:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length == 0:
        raise _Rejected("empty frame")
    if length > max_frame_bytes:
        raise _Rejected("frame too large")
    body = await reader.readexactly(length)
    return body[0], body[1:]


class Transport:
    def __init__(
        self,
        committee: Committee,
        index: int,
        signer: Signer,
        peers: Sequence[tuple[str, int]],
        *,
        verify: Verifier | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        hello_timeout: float = 5.0,
        min_backoff: float = 0.05,
        max_backoff: float = 1.0,
        max_links: int = 64,
    ) -> None:
        if len(peers) != committee.size:
            raise ValueError(f"{len(peers)} addresses for a committee of {committee.size}")
        if signer.address != committee.members[index]:
            raise ValueError(f"the signer is not member {index} of the committee")
        self.committee = committee
        self.index = index
        self._signer = signer
        self._verify: Verifier = verify if verify is not None else Secp256k1Verifier()
        self._max_frame_bytes = max_frame_bytes
        self._hello_timeout = hello_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._max_links = max(max_links, 2 * committee.size)
        self._listen_address = peers[index]
        self._peers: dict[int, _Peer] = {
            i: _Peer(host, port, collections.deque(maxlen=queue_frames), asyncio.Event())
            for i, (host, port) in enumerate(peers)
            if i != index
        }
        self._handlers: dict[int, FrameHandler] = {}
        self._inbound: dict[int, asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # accepted connections are ended by closing them, never by cancelling their task
        # (asyncio's server callback would log the cancellation as an error)
        self._accepted: dict[asyncio.StreamWriter, asyncio.Task[Any] | None] = {}
        self._closing = False
        self.port = peers[index][1]
        self.stats = TransportStats()

    # --- life cycle -----------------------------------------------------------------------

    def register(self, channel: int, handler: FrameHandler) -> None:
        """Hand frames of ``channel`` to ``handler(member index, payload)``."""
        if not 0 < channel < 256:
            raise ValueError(f"channel {channel} is not 1..255 (0 is the hello)")
        if channel in self._handlers:
            raise ValueError(f"channel {channel} already has a handler")
        self._handlers[channel] = handler

    async def start(self) -> None:
        host, port = self._listen_address
        self._server = await asyncio.start_server(self._accept, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        for peer in self._peers:
            self._spawn(self._dial_loop(peer))

    async def stop(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._accepted):
            writer.close()
        accepting = [task for task in self._accepted.values() if task is not None]
        await asyncio.gather(*accepting, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending --------------------------------------------------------------------------

    def send(self, to: int, channel: int, payload: bytes) -> None:
        """Queue one frame for member ``to`` (never blocks; drops the oldest when full)."""
        peer = self._peers.get(to)
        if peer is None:
            raise ValueError(f"no link to member {to}")
        if len(payload) + 1 > self._max_frame_bytes:
            self.stats.reject("outgoing frame too large")
            return
        self._enqueue(peer, _frame(channel, payload))

    def broadcast(self, channel: int, payload: bytes) -> None:
        """Queue one frame for every other member."""
        if len(payload) + 1 > self._max_frame_bytes:
            self.stats.reject("outgoing frame too large")
            return
        frame = _frame(channel, payload)
        for peer in self._peers.values():
            self._enqueue(peer, frame)

    def _enqueue(self, peer: _Peer, frame: bytes) -> None:
        if len(peer.queue) == peer.queue.maxlen:
            self.stats.dropped_frames += 1
        peer.queue.append(frame)
        peer.ready.set()

    @property
    def connected_peers(self) -> list[int]:
        """Members this one can send to now and has an authenticated link from."""
        return sorted(i for i, peer in self._peers.items() if peer.connected and i in self._inbound)

    async def _dial_loop(self, index: int) -> None:
        peer = self._peers[index]
        backoff = self._min_backoff
        while not self._closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(peer.host, peer.port), self._hello_timeout
                )
            except (OSError, TimeoutError):
                self.stats.connect_failures += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            try:
                channel, nonce = await asyncio.wait_for(
                    _read_frame(reader, self._max_frame_bytes), self._hello_timeout
                )
                if channel != CHANNEL_HELLO or len(nonce) != _NONCE_BYTES:
                    raise _Rejected("bad challenge")
                digest = hello_digest(self.committee.domain, index, nonce)
                writer.write(_frame(CHANNEL_HELLO, pack([self.index, self._signer.sign(digest)])))
                await writer.drain()
                self.stats.connects += 1
                peer.connected = True
                backoff = self._min_backoff
                await self._write_loop(peer, reader, writer)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, _Rejected) as error:
                _log.debug("link to member %d lost: %s", index, error)
            finally:
                peer.connected = False
                writer.close()
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _write_loop(
        self, peer: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # the listener sends nothing after its challenge: a read ending means the link is gone
        closed = asyncio.ensure_future(reader.read(1))
        try:
            while True:
                if not peer.queue:
                    peer.ready.clear()
                    ready = asyncio.ensure_future(peer.ready.wait())
                    done, _ = await asyncio.wait(
                        {ready, closed}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if closed in done:
                        ready.cancel()
                        return
                frames = list(peer.queue)
                peer.queue.clear()
                writer.write(b"".join(frames))
                self.stats.frames_sent += len(frames)
                await writer.drain()
        finally:
            closed.cancel()

    # --- receiving ------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.close()
            return
        if len(self._accepted) >= self._max_links:
            # members hold one link each (a redial replaces it): the rest is a flood
            self.stats.reject("too many connections")
            writer.close()
            return
        self._accepted[writer] = asyncio.current_task()
        member: int | None = None
        try:
            member = await self._authenticate(reader, writer)
            previous = self._inbound.get(member)
            if previous is not None:
                previous.close()  # a redial replaces the old link
            self._inbound[member] = writer
            while True:
                channel, payload = await _read_frame(reader, self._max_frame_bytes)
                handler = self._handlers.get(channel)
                if handler is None:
                    raise _Rejected(f"unknown channel {channel}")
                self.stats.frames_received += 1
                try:
                    handler(member, payload)
                except InvalidFrame as error:
                    raise _Rejected(f"invalid frame on channel {channel}: {error}") from None
        except _Rejected as error:
            reason = str(error)
            self.stats.reject(reason.split(":")[0])
            _log.info("dropped a link from %s: %s", _who(member, writer), reason)
        except TimeoutError:
            self.stats.reject("no hello in time")
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if member is not None and self._inbound.get(member) is writer:
                del self._inbound[member]
            writer.close()
            self._accepted.pop(writer, None)

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> int:
        nonce = os.urandom(_NONCE_BYTES)  # fresh per connection: a recorded hello never replays
        writer.write(_frame(CHANNEL_HELLO, nonce))
        await writer.drain()
        channel, payload = await asyncio.wait_for(
            _read_frame(reader, self._max_frame_bytes), self._hello_timeout
        )
        if channel != CHANNEL_HELLO:
            raise _Rejected("frame before hello")
        try:
            member, signature = unpack(payload)
        except Exception:
            raise _Rejected("malformed hello") from None
        if type(member) is not int or type(signature) is not bytes:
            raise _Rejected("malformed hello")
        if not 0 <= member < self.committee.size or member == self.index:
            raise _Rejected("hello from a non-member")
        digest = hello_digest(self.committee.domain, self.index, nonce)
        if not self._verify(self.committee.members[member], digest, signature):
            raise _Rejected("hello with a bad signature")
        return member


def _who(member: int | None, writer: asyncio.StreamWriter) -> str:
    if member is not None:
        return f"member {member}"
    return f"unauthenticated {writer.get_extra_info('peername')}"
