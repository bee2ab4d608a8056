"""Member links on loopback: frames by channel, attribution, bounds, redial."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

import pytest

from asyncdex.committee.transport import (
    CHANNEL_CONSENSUS,
    CHANNEL_SETTLEMENT,
    InvalidFrame,
    Transport,
)
from asyncdex.consensus import Committee, Secp256k1Signer

SIGNERS = [Secp256k1Signer.from_seed(b"link-member-%d" % i) for i in range(3)]
COMMITTEE = Committee(tuple(signer.address for signer in SIGNERS))
DEADLINE_S = 20.0


def free_ports(count: int) -> list[tuple[str, int]]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    peers = [("127.0.0.1", sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return peers


async def until(condition: object) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        assert loop.time() < deadline, "no progress"
        await asyncio.sleep(0.01)


def test_frames_reach_the_handler_of_their_channel_attributed_to_their_sender() -> None:
    async def scenario() -> None:
        peers = free_ports(3)
        links = [Transport(COMMITTEE, i, SIGNERS[i], peers) for i in range(3)]
        received: list[tuple[int, int, bytes]] = []

        def recorder(receiver: int, channel: int) -> Callable[[int, bytes], None]:
            return lambda member, payload: received.append((receiver, channel, payload))

        for i, link in enumerate(links):
            for channel in (CHANNEL_CONSENSUS, CHANNEL_SETTLEMENT):
                link.register(channel, recorder(i, channel))
        for link in links:
            await link.start()
        links[0].send(2, CHANNEL_SETTLEMENT, b"header signature")
        links[1].broadcast(CHANNEL_CONSENSUS, b"vote")
        await until(lambda: len(received) == 3)
        assert sorted(received) == [
            (0, CHANNEL_CONSENSUS, b"vote"),
            (2, CHANNEL_CONSENSUS, b"vote"),
            (2, CHANNEL_SETTLEMENT, b"header signature"),
        ]
        await until(lambda: all(len(link.connected_peers) == 2 for link in links))
        for link in links:
            await link.stop()

    asyncio.run(scenario())


def test_the_sender_is_the_member_the_link_authenticated() -> None:
    async def scenario() -> None:
        peers = free_ports(3)
        links = [Transport(COMMITTEE, i, SIGNERS[i], peers) for i in range(2)]
        senders: list[int] = []
        links[0].register(CHANNEL_CONSENSUS, lambda member, payload: senders.append(member))
        links[1].register(CHANNEL_CONSENSUS, lambda member, payload: None)
        for link in links:
            await link.start()
        links[1].send(0, CHANNEL_CONSENSUS, b"x")
        await until(lambda: senders == [1])
        for link in links:
            await link.stop()

    asyncio.run(scenario())


def test_a_frame_the_handler_calls_invalid_closes_the_link_and_is_counted() -> None:
    async def scenario() -> None:
        peers = free_ports(3)
        links = [Transport(COMMITTEE, i, SIGNERS[i], peers, min_backoff=0.01) for i in range(2)]
        good: list[bytes] = []

        def handler(member: int, payload: bytes) -> None:
            if payload == b"bad":
                raise InvalidFrame("not a message")
            good.append(payload)

        links[0].register(CHANNEL_CONSENSUS, handler)
        links[1].register(CHANNEL_CONSENSUS, handler)
        for link in links:
            await link.start()
        links[1].send(0, CHANNEL_CONSENSUS, b"bad")
        await until(lambda: links[0].stats.rejected.get("invalid frame on channel 1") == 1)
        links[1].send(0, CHANNEL_CONSENSUS, b"after the redial")
        await until(lambda: good == [b"after the redial"])
        assert links[1].stats.connects >= 2
        for link in links:
            await link.stop()

    asyncio.run(scenario())


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    async def scenario() -> None:
        peers = free_ports(3)
        link = Transport(COMMITTEE, 0, SIGNERS[0], peers, max_frame_bytes=1_000)
        link.register(CHANNEL_CONSENSUS, lambda member, payload: None)
        await link.start()
        reader, writer = await asyncio.open_connection(*peers[0])
        await reader.readexactly(4 + 1 + 32)  # the challenge
        writer.write(struct.pack(">I", 10_000_000))
        assert await asyncio.wait_for(reader.read(1), DEADLINE_S) == b""
        assert link.stats.rejected == {"frame too large": 1}
        link.send(1, CHANNEL_CONSENSUS, b"y" * 2_000)
        assert link.stats.rejected["outgoing frame too large"] == 1
        writer.close()
        await link.stop()

    asyncio.run(scenario())


def test_a_full_send_queue_drops_its_oldest_frames() -> None:
    async def scenario() -> None:
        peers = free_ports(3)
        link = Transport(COMMITTEE, 0, SIGNERS[0], peers, queue_frames=3)
        await link.start()  # nobody listens at the other members' addresses
        for i in range(5):
            link.send(1, CHANNEL_CONSENSUS, b"frame-%d" % i)
        assert link.stats.dropped_frames == 2
        listener = Transport(COMMITTEE, 1, SIGNERS[1], peers)
        received: list[bytes] = []
        listener.register(CHANNEL_CONSENSUS, lambda member, payload: received.append(payload))
        await listener.start()
        await until(lambda: len(received) == 3)
        assert received == [b"frame-2", b"frame-3", b"frame-4"]
        await link.stop()
        await listener.stop()

    asyncio.run(scenario())


def test_registering_a_channel_twice_or_the_hello_channel_is_refused() -> None:
    link = Transport(COMMITTEE, 0, SIGNERS[0], free_ports(3))
    link.register(CHANNEL_CONSENSUS, lambda member, payload: None)
    with pytest.raises(ValueError, match="already has a handler"):
        link.register(CHANNEL_CONSENSUS, lambda member, payload: None)
    with pytest.raises(ValueError, match="0 is the hello"):
        link.register(0, lambda member, payload: None)


def test_connections_beyond_the_limit_are_refused_and_counted() -> None:
    async def scenario() -> None:
        peers = free_ports(3)
        link = Transport(COMMITTEE, 0, SIGNERS[0], peers, max_links=6)
        await link.start()
        held = [await asyncio.open_connection(*peers[0]) for _ in range(6)]
        for reader, _ in held:
            await reader.readexactly(4 + 1 + 32)  # each got its challenge
        reader, writer = await asyncio.open_connection(*peers[0])
        assert await asyncio.wait_for(reader.read(1), DEADLINE_S) == b""
        assert link.stats.rejected == {"too many connections": 1}
        for _, held_writer in held:
            held_writer.close()
        writer.close()
        await link.stop()

    asyncio.run(scenario())
