"""Four committee members in one process over loopback TCP: real links, real fsync'd stores.

What these show: items submitted to different members commit in one order everywhere; a
stopped leader is replaced and ordering goes on; a member restarted from its data directory
after the others moved far ahead catches up through the network to the very same committed
log; links that send garbage or a hello signed by the wrong key are dropped and counted while
consensus continues. Timing bounds are generous deadlines for progress, never measurements.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from asyncdex.committee import CommitteeMember, MemberStopped
from asyncdex.committee.store import MemberStore
from asyncdex.committee.transport import CHANNEL_HELLO, hello_digest
from asyncdex.consensus import Block, Committee, QuorumCertificate, ReplicaConfig
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.types.packing import pack

N = 4
SIGNERS = [Secp256k1Signer.from_seed(b"runtime-member-%d" % i) for i in range(N)]
COMMITTEE = Committee(tuple(signer.address for signer in SIGNERS))
# short timers so a lost leader costs little; small fetches so catch-up takes many rounds
CONFIG = ReplicaConfig(
    base_timeout_ms=250,
    max_timeout_ms=1_000,
    proposal_wait_ms=50,
    idle_block_ms=40,
    fetch_retry_ms=150,
    max_fetch_blocks=4,
)
DEADLINE_S = 30.0  # progress deadline on a loaded 2-core machine; not a measurement


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.peers = [("127.0.0.1", port) for port in free_ports(N)]
        self.members: list[CommitteeMember | None] = [None] * N
        self.commits: list[list[Block]] = [[] for _ in range(N)]
        self.certificates: list[list[QuorumCertificate]] = [[] for _ in range(N)]

    async def start(self, index: int) -> CommitteeMember:
        def on_commit(blocks: Sequence[Block], certificate: QuorumCertificate) -> None:
            self.commits[index].extend(blocks)
            self.certificates[index].append(certificate)

        member = CommitteeMember(
            COMMITTEE,
            index,
            SIGNERS[index],
            self.peers,
            self.root / f"member-{index}",
            CONFIG,
            on_commit=on_commit,
        )
        await member.start()
        self.members[index] = member
        return member

    async def stop(self, index: int) -> None:
        member = self.members[index]
        assert member is not None
        await member.stop()
        self.members[index] = None

    def live(self) -> list[CommitteeMember]:
        return [member for member in self.members if member is not None]

    def member(self, index: int) -> CommitteeMember:
        member = self.members[index]
        assert member is not None
        return member

    async def wait_for(self, condition: object, what: str) -> None:
        assert callable(condition)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while not condition():
            if loop.time() > deadline:
                status = [member.status_json() for member in self.live()]
                raise AssertionError(f"no progress: {what}; members: {status}")
            await asyncio.sleep(0.02)

    def committed_items(self, index: int) -> list[bytes]:
        member = self.member(index)
        return [item for block in member.committed_blocks(1) for item in block.payload]

    def log(self, index: int) -> list[bytes]:
        return [block.hash for block in self.member(index).committed_blocks(1)]


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def test_items_submitted_to_different_members_commit_in_one_order_everywhere(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        cluster = Cluster(tmp_path)
        for index in range(N):
            await cluster.start(index)
        items = [b"intent-%03d" % i for i in range(60)]
        await asyncio.gather(
            *(cluster.member(i % N).submit(items[i::N]) for i in range(N)),
            *(cluster.member(2).submit([b"single-%d" % i]) for i in range(5)),
        )
        everything = {*items, *(b"single-%d" % i for i in range(5))}

        def all_committed() -> bool:
            return all(set(cluster.committed_items(i)) >= everything for i in range(N))

        await cluster.wait_for(all_committed, "every item committed on every member")
        order = cluster.committed_items(0)
        assert sorted(order) == sorted(everything)  # each item exactly once
        height = min(m.committed_height for m in cluster.live())
        logs = [cluster.log(i)[:height] for i in range(N)]
        assert all(log == logs[0] for log in logs)
        for index in range(N):
            # on_commit: height order, each block once, the durable log's blocks
            heights = [block.height for block in cluster.commits[index]]
            assert heights == list(range(1, len(heights) + 1))
            assert [b.hash for b in cluster.commits[index]] == cluster.log(index)[: len(heights)]
            times = [block.timestamp for block in cluster.commits[index]]
            assert times == sorted(times)
            for certificate in cluster.certificates[index]:
                assert len(certificate.signatures) >= COMMITTEE.quorum
        for member in cluster.live():
            status = member.status_json()
            assert status["peers_connected"] == [i for i in range(N) if i != member.index]
            assert status["links_rejected"] == {}
        for index in range(N):
            await cluster.stop(index)

    run(scenario())


def test_a_stopped_leader_is_replaced_and_catches_up_from_its_data_dir_after_restart(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        cluster = Cluster(tmp_path)
        for index in range(N):
            await cluster.start(index)
        await cluster.member(0).submit([b"before"])
        await cluster.wait_for(
            lambda: all(b"before" in cluster.committed_items(i) for i in range(N)), "warm-up"
        )
        leader = cluster.member(0).leader
        survivors = [i for i in range(N) if i != leader]
        await cluster.stop(leader)
        height_at_stop = max(m.committed_height for m in cluster.live())

        # the others keep ordering without it, past many fetch responses' worth of blocks
        for round_ in range(6):
            target = survivors[round_ % len(survivors)]
            await cluster.member(target).submit([b"while-down-%d" % round_])
        await cluster.wait_for(
            lambda: all(
                b"while-down-5" in cluster.committed_items(i)
                and cluster.member(i).committed_height
                >= height_at_stop + 3 * CONFIG.max_fetch_blocks
                for i in survivors
            ),
            "ordering without the stopped leader",
        )
        # (the two blocks above the commit at the stop may still be the old leader's)
        proposers = {
            block.proposer
            for block in cluster.member(survivors[0]).committed_blocks(height_at_stop + 3)
        }
        assert leader not in proposers and proposers  # new leaders took over

        recovered_height = len(cluster.log(survivors[0]))
        restarted = await cluster.start(leader)
        commits_before = len(cluster.commits[leader])
        await restarted.submit([b"after-restart"])
        await cluster.wait_for(
            lambda: (
                all(b"after-restart" in cluster.committed_items(i) for i in range(N))
                and restarted.committed_height >= recovered_height
            ),
            "the restarted member catches up",
        )
        height = min(m.committed_height for m in cluster.live())
        logs = [cluster.log(i)[:height] for i in range(N)]
        assert all(log == logs[0] for log in logs)
        # blocks committed before the restart are read from the log, not reported again
        assert restarted.recovered is not None
        first_new = len(restarted.recovered.committed) + 1
        # a commit is reported once the committed log is fsync'd, after the replica made it:
        # wait for the reports to reach the height committed now
        committed = restarted.committed_height
        await cluster.wait_for(
            lambda: (
                len(cluster.commits[leader]) > commits_before
                and cluster.commits[leader][-1].height >= committed
            ),
            "the commits up to the restarted member's height reported",
        )
        new_heights = [block.height for block in cluster.commits[leader][commits_before:]]
        assert new_heights == list(range(first_new, first_new + len(new_heights)))
        assert new_heights[-1] >= committed
        for index in range(N):
            await cluster.stop(index)

    run(scenario())


def test_items_acknowledged_but_never_shared_commit_after_their_member_restarts(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        cluster = Cluster(tmp_path)
        alone = await cluster.start(0)  # no peer is up: nothing can be shared or ordered
        await alone.submit([b"acked-1", b"acked-2"])
        await alone.submit([b"acked-3"])
        await cluster.stop(0)  # its send queues die with it
        for index in range(1, N):
            await cluster.start(index)
        restarted = await cluster.start(0)
        assert restarted.recovered is not None
        assert restarted.recovered.unordered_intake == [b"acked-1", b"acked-2", b"acked-3"]
        await cluster.wait_for(
            lambda: all(
                {b"acked-1", b"acked-2", b"acked-3"} <= set(cluster.committed_items(i))
                for i in range(N)
            ),
            "the resubmitted items commit",
        )
        for index in range(N):
            await cluster.stop(index)

    run(scenario())


async def _raw_link(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    body = await reader.readexactly(length)
    assert body[0] == CHANNEL_HELLO
    return reader, writer, body[1:]


def _frame(channel: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 1) + bytes((channel,)) + payload


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), DEADLINE_S) == b""
    except ConnectionResetError:
        return True


def test_links_sending_garbage_or_a_wrong_key_hello_are_dropped_while_consensus_continues(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        cluster = Cluster(tmp_path)
        for index in range(N):
            await cluster.start(index)
        target = cluster.member(0)

        # 1. garbage instead of a hello
        reader, writer, _ = await _raw_link(target.port)
        writer.write(b"\x00\x00\x00\x05garbage-not-a-frame")
        assert await _closed_by_peer(reader)
        # 2. a hello claiming member 2, signed by a key that is not member 2's
        impostor = Secp256k1Signer.from_seed(b"not a member")
        reader, writer, nonce = await _raw_link(target.port)
        signature = impostor.sign(hello_digest(COMMITTEE.domain, 0, nonce))
        writer.write(_frame(CHANNEL_HELLO, pack([2, signature])))
        assert await _closed_by_peer(reader)
        # 3. a hello replayed from another connection (member 3's real signature, old nonce)
        reader, writer, nonce = await _raw_link(target.port)
        old = SIGNERS[3].sign(hello_digest(COMMITTEE.domain, 0, b"\x00" * 32))
        writer.write(_frame(CHANNEL_HELLO, pack([3, old])))
        assert await _closed_by_peer(reader)
        # 4. a genuine member's link that then sends a consensus frame that does not decode
        reader, writer, nonce = await _raw_link(target.port)
        good = SIGNERS[1].sign(hello_digest(COMMITTEE.domain, 0, nonce))
        writer.write(_frame(CHANNEL_HELLO, pack([1, good])) + _frame(1, b"\xc1junk"))
        assert await _closed_by_peer(reader)

        rejected = target.transport.stats.rejected
        assert rejected["hello with a bad signature"] == 2
        assert rejected["invalid frame on channel 1"] == 1
        assert sum(rejected.values()) == 4

        await cluster.member(3).submit([b"still ordering"])
        await cluster.wait_for(
            lambda: all(b"still ordering" in cluster.committed_items(i) for i in range(N)),
            "consensus continues",
        )
        for index in range(N):
            await cluster.stop(index)

    run(scenario())


@pytest.mark.parametrize("bad", [b"", b"x" * (CONFIG.max_item_bytes + 1)])
def test_submit_refuses_bad_items_and_a_stopped_member(tmp_path: Path, bad: bytes) -> None:
    async def scenario() -> None:
        cluster = Cluster(tmp_path)
        member = await cluster.start(0)
        with pytest.raises(ValueError, match=r"an item is 1\.\."):
            await member.submit([b"fine", bad])
        await cluster.stop(0)
        with pytest.raises(MemberStopped):
            await member.submit([b"late"])
        restarted = await cluster.start(0)
        assert restarted.recovered is not None
        assert restarted.recovered.unordered_intake == []  # the refused batch stored nothing
        await cluster.stop(0)

    run(scenario())


# --- one process-level test: SIGKILL a member mid-load --------------------------------------

MEMBER_PROCESS = r"""
import asyncio, signal, sys, time
from pathlib import Path
from asyncdex.committee import CommitteeMember
from asyncdex.consensus import Committee, ReplicaConfig
from asyncdex.consensus.crypto import Secp256k1Signer

index, ports, work, tag = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
rate = float(sys.argv[5])
signers = [Secp256k1Signer.from_seed(b"runtime-member-%d" % i) for i in range(4)]
committee = Committee(tuple(s.address for s in signers))
config = ReplicaConfig(
    base_timeout_ms=250, max_timeout_ms=1_000, proposal_wait_ms=50, idle_block_ms=40
)

async def main():
    unordered = set()
    done = asyncio.Event()
    def on_commit(blocks, certificate):
        for block in blocks:
            unordered.difference_update(block.payload)
    member = CommitteeMember(committee, index, signers[index],
                             [("127.0.0.1", int(p)) for p in ports.split(",")],
                             work / f"member-{index}", config, on_commit=on_commit)
    await member.start()
    acked = open(work / f"acked-{index}-{tag}", "a")
    count = 0
    while not (work / "stop-submitting").exists():
        count += 1
        item = b"%d%s-%d" % (index, tag.encode(), count)
        unordered.add(item)
        await member.submit([item])
        acked.write(item.decode() + "\n")  # the receipt reached the client
        acked.flush()
        await asyncio.sleep(1 / rate)
    while unordered:
        await asyncio.sleep(0.02)
    (work / f"done-{index}").write_text(str(member.committed_height))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await member.stop()

asyncio.run(main())
"""


@pytest.mark.xdist_group("committee")  # member processes: with the other committee tests
def test_a_member_killed_mid_load_loses_no_acknowledged_item(tmp_path: Path) -> None:
    rng = random.Random(11)  # seeded: which member dies and when
    victim = rng.randrange(N)
    ports = ",".join(str(port) for port in free_ports(N))

    def launch(index: int, tag: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", MEMBER_PROCESS, str(index), ports, str(tmp_path), tag]
        return subprocess.Popen([*command, "40"])

    def acked_by(index: int, tag: str) -> int:
        path = tmp_path / f"acked-{index}-{tag}"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def wait_until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, what
            assert all(p.poll() is None for p in processes.values()), "a member died"
            time.sleep(0.05)

    processes = {index: launch(index, "a") for index in range(N)}
    try:
        wait_until(lambda: all(acked_by(i, "a") >= 10 for i in range(N)), "members serving")
        time.sleep(rng.random())
        processes[victim].send_signal(signal.SIGKILL)  # no clean stop: whatever was in flight
        processes[victim].wait()
        time.sleep(0.5 + rng.random())
        processes[victim] = launch(victim, "b")
        wait_until(lambda: acked_by(victim, "b") >= 10, "the restarted member serving")
        (tmp_path / "stop-submitting").write_text("")
        wait_until(
            lambda: all((tmp_path / f"done-{i}").exists() for i in range(N)),
            "acknowledged items were not all ordered",
        )
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    acked = {
        line.encode() for path in tmp_path.glob("acked-*") for line in path.read_text().splitlines()
    }
    assert any(item.startswith(b"%da-" % victim) for item in acked)  # it acked before dying
    logs = []
    for index in range(N):
        store, recovered = MemberStore.open(tmp_path / f"member-{index}")
        store.close()
        logs.append(recovered.committed)
    height = min(len(log) for log in logs)
    assert all([b.hash for b in log[:height]] == [b.hash for b in logs[0][:height]] for log in logs)
    longest = max(logs, key=len)
    ordered = [item for block in longest for item in block.payload]
    assert acked <= set(ordered)  # every receipt's item, the victim's included, was ordered
    assert len(ordered) == len(set(ordered))  # and ordered once
