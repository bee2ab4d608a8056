"""``CommitteeMember``: one consensus replica hosted on an asyncio loop, with its network
links and its durable store.

Invariants:
- The replica is called (``on_message``, ``on_tick``, ``submit_many``) under one lock, and the
  actions of each call are performed in the order returned before the next call's are:
  ``PersistBlock``/``PersistSafety`` are durable before any later ``Send``/``Broadcast``
  leaves, so a vote, timeout or proposal never leaves ahead of the state that guards it.
- ``on_commit`` is called in height order, exactly once per block per process lifetime, only
  after the committed log holding the block is durable. That fsync runs in its own task,
  since no message depends on it, so votes and proposals do not wait for it. Blocks
  committed before a restart are read with ``committed_blocks``. ``on_committing``, if
  given, is called in height order, once per block per process lifetime, as soon as the
  replica commits it (before that log is durable): for what needs only the fact of the
  commit.
- ``submit`` returns only once every item is durable in the intake log (many concurrent
  submits share one fsync) and handed to the replica: an acknowledged item is resubmitted
  after any restart until a committed block holds it. Ordering does not wait for that
  fsync (the items go to the replica while it runs), so an item whose fsync fails may still
  be ordered: its client got an error, not a receipt, and must treat the outcome as unknown,
  as after any lost reply.
- Time enters the core only through ``replica.on_tick(clock())``: from the tick task every
  ``tick_ms``, and from the driver before each batch of messages.
- A message from a peer is attributed to the member its link authenticated; one claiming
  another sender closes the link. Signatures are checked by the replica through a cache (a
  certificate seen twice is verified once); when a batch of messages carries many (block
  fetches, certificates), a worker thread fills the cache first, so the loop the member
  shares with the node's HTTP intake stays responsive. Messages are handled in short batches.
- Fail-stop: when a log write or fsync fails (the logs then refuse everything, see
  ``FileJournal``) or the replica finds a safety violation, the member stops taking items and
  ``failure`` / ``status_json()["failure"]`` say why; a restart recovers from the files.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from asyncdex.committee.store import MemberStore, Recovered
from asyncdex.committee.transport import CHANNEL_CONSENSUS, InvalidFrame, Transport
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Signer
from asyncdex.consensus.messages import (
    Block,
    BlockResponse,
    MalformedMessage,
    Message,
    NewView,
    Proposal,
    QuorumCertificate,
    TimeoutCertificate,
    TimeoutMessage,
    decode,
    encode,
    timeout_digest,
    vote_digest,
)
from asyncdex.consensus.replica import (
    Action,
    Broadcast,
    Commit,
    ItemDeadline,
    ItemReady,
    PersistBlock,
    PersistSafety,
    Replica,
    ReplicaConfig,
    ReportEquivocation,
    Send,
)
from asyncdex.consensus.safety import SafetyState

_log = logging.getLogger(__name__)

# messages handled per turn before the loop gets a chance to run other work
_MESSAGES_PER_TURN = 32
_INBOUND_PER_PEER = 4_096
# signature checks in one turn worth a thread hop (~0.15 ms each; the hop costs about one)
_CHECKS_OFF_LOOP = 16


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class MemberStopped(RuntimeError):
    """The member is not running (not started yet, stopping or stopped)."""


class IntakeFull(RuntimeError):
    """The member already holds as many unordered items as its replica may keep."""


class CommitteeMember:
    def __init__(
        self,
        committee: Committee,
        index: int,
        signer: Signer,
        peers: Sequence[tuple[str, int]],
        data_dir: Path,
        config: ReplicaConfig | None = None,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        on_commit: Callable[[Sequence[Block], QuorumCertificate], None],
        on_equivocation: Callable[[ReportEquivocation], None] | None = None,
        on_committing: Callable[[Sequence[Block]], None] | None = None,
        tick_ms: int = 10,
        item_ready: ItemReady | None = None,
        item_deadline: ItemDeadline | None = None,
    ) -> None:
        """``item_ready`` goes to the replica (``Replica``'s docstring): a pure predicate by
        which this member, as leader, leaves out of a block the items not ready for its time
        (they stay pending). Readiness is judged whenever the replica tries to propose, at
        least every tick, so a leader idling in its view takes an item at most ``tick_ms``
        after it becomes ready.

        ``item_deadline`` goes to the replica too: a pure function giving an item's last
        block time (or ``None``), by which this member, as leader, stamps its block earlier
        than its clock (never before the parent's time) when a pending item's deadline lies
        in between, so the item still counts. It is asked once per item as it becomes
        pending, so it must be cheap."""
        if signer.address != committee.members[index]:
            raise ValueError(f"the signer is not member {index} of the committee")
        self.committee = committee
        self.index = index
        self.config = config or ReplicaConfig()
        self._signer = signer
        self._peer_addresses = tuple(peers)
        self._data_dir = Path(data_dir)
        self._clock = clock
        self._on_commit = on_commit
        self._on_committing = on_committing
        self._on_equivocation = on_equivocation
        self._tick_s = tick_ms / 1000
        self._verify = CachingVerifier()
        self._transport = Transport(committee, index, signer, peers, verify=self._verify)
        self._transport.register(CHANNEL_CONSENSUS, self._on_consensus_frame)
        self._store: MemberStore | None = None
        self._replica: Replica | None = None
        self._lock = asyncio.Lock()
        # one queue per peer, served in turn: a flooding member delays only its own messages
        self._inbound: dict[int, collections.deque[Message]] = {
            peer: collections.deque() for peer in range(committee.size) if peer != index
        }
        self._inbound_count = 0
        self._inbound_ready = asyncio.Event()
        self._backlog: collections.deque[bytes] = collections.deque()
        self._intake_flush: asyncio.Future[int] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._commits: collections.deque[Commit] = collections.deque()
        self._commits_ready = asyncio.Event()
        self._reporter: asyncio.Task[None] | None = None
        self._running = False
        self.recovered: Recovered | None = None
        self.failure: BaseException | None = None  # why the member stopped by itself
        self._stopped = False
        self.dropped_messages = 0
        self.equivocations = 0
        self.committed_view = 0  # of the last block this process committed (its leader: view % n)
        self._hurry_from_ms: int | None = None
        self._item_ready = item_ready
        self._item_deadline = item_deadline

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open and recover the store, rebuild the replica, listen, dial, start ticking."""
        if self._store is not None:
            raise RuntimeError("a member starts once")
        store, recovered = await asyncio.to_thread(MemberStore.open, self._data_dir)
        self._store, self.recovered = store, recovered
        for repair in recovered.repairs:
            _log.warning(
                "member %d: cut a torn tail of %d bytes in %s (%s)",
                self.index,
                repair.truncated_bytes,
                repair.truncated_segment,
                repair.reason,
            )
        try:
            self._replica = Replica(
                self.committee,
                self.index,
                self._signer,
                self._verify,
                self.config,
                safety_state=recovered.safety,
                committed=recovered.committed,
                journaled=recovered.journaled,
                now_ms=self._clock(),
                item_ready=self._item_ready,
                item_deadline=self._item_deadline,
            )
            await self._transport.start()
        except BaseException:
            store.close()
            raise
        self._running = True
        self._backlog.extend(recovered.unordered_intake)
        self._tasks = [
            asyncio.ensure_future(self._drive()),
            asyncio.ensure_future(self._tick_loop()),
        ]
        self._reporter = asyncio.ensure_future(self._report_commits())
        for task in (*self._tasks, self._reporter):
            task.add_done_callback(self._on_task_done)
        async with self._lock:
            await self._perform(self._take_backlog())

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """Fail-stop: a failed write or fsync (the logs refuse to go on, see FileJournal) or a
        safety violation ends the member; it takes no more items and says why."""
        if task.cancelled() or task.exception() is None or self.failure is not None:
            return
        self.failure = task.exception()
        self._running = False
        for other in (*self._tasks, self._reporter):
            if other is not None:
                other.cancel()
        _log.critical("committee member %d failed: %r", self.index, self.failure)

    async def stop(self) -> None:
        """Stop cleanly: no new submits, performed actions finished, every log flushed."""
        if self._store is None or self._stopped:
            return
        self._running = False
        self._stopped = True
        async with self._lock:
            for task in self._tasks:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reporter is not None:
            self._reporter.cancel()
            await asyncio.gather(self._reporter, return_exceptions=True)
            if self._commits and self.failure is None:
                await self._flush_commits(self.store)  # report what was committed, once
        if self._intake_flush is not None:
            await asyncio.gather(self._intake_flush, return_exceptions=True)
        await self._transport.stop()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    # --- client items -----------------------------------------------------------------------

    async def submit(self, items: Sequence[bytes]) -> None:
        """Make ``items`` durable in the intake log and hand them to the replica; returns once
        both are done (the receipt's promise: from then on they are ordered eventually).

        Raises ``MemberStopped`` when the member is not running, ``IntakeFull`` when the
        replica would hold too many unordered items, ``ValueError`` for an item of bad size;
        in all three cases nothing was stored.
        """
        if not self._running or self._store is None:
            reason = f" (failed: {self.failure!r})" if self.failure is not None else ""
            raise MemberStopped(f"committee member {self.index} is not running{reason}")
        limit = self.config.max_item_bytes
        for item in items:
            if type(item) is not bytes or not 0 < len(item) <= limit:
                size = len(item) if isinstance(item, bytes | bytearray) else type(item).__name__
                raise ValueError(f"an item is 1..{limit} bytes, got {size}")
        held = self.replica.pending_items + len(self._backlog)
        if held + len(items) > self.config.max_pending_items:
            raise IntakeFull(
                f"member {self.index} holds {held} unordered items "
                f"(limit {self.config.max_pending_items})"
            )
        if not items:
            return
        last = self._store.append_intake(items)
        # ordering starts while the fsync runs: the driver hands everything waiting to the
        # replica in one batch (one signed ForwardItem for all concurrent submissions)
        self._backlog.extend(items)
        self._inbound_ready.set()
        await self._intake_durable(last)

    async def _intake_durable(self, seq: int) -> None:
        """Group commit: one fsync runs at a time and takes everything appended before it."""
        store = self._store
        assert store is not None
        while store.intake_durable_seq < seq:
            flush = self._intake_flush
            if flush is None:
                flush = self._intake_flush = asyncio.ensure_future(self._flush_intake(store))
            await asyncio.shield(flush)

    async def _flush_intake(self, store: MemberStore) -> int:
        try:
            return await asyncio.to_thread(store.flush_intake)
        finally:
            self._intake_flush = None

    def _backlog_ready(self) -> bool:
        return bool(self._backlog) and (self.replica.pending_items < self.config.max_pending_items)

    def _take_backlog(self) -> list[Action]:
        """Hand waiting intake items to the replica, as far as it has room."""
        replica = self.replica
        room = self.config.max_pending_items - replica.pending_items
        batch = [self._backlog.popleft() for _ in range(min(room, len(self._backlog)))]
        # one ForwardItem (one signature, one check per peer) for everything waiting
        return replica.submit_many(batch) if batch else []

    def hurry(self, from_ms: int | None) -> None:
        """Want a block stamped at or after ``from_ms`` (this member's clock) committed and
        known to every member soon (``Replica.hurry``); ``None`` cancels it. Applied by the
        tick task, which wakes at ``from_ms``; callable from any code on the member's loop."""
        self._hurry_from_ms = from_ms

    # --- the replica's inputs ---------------------------------------------------------------

    def _on_consensus_frame(self, member: int, payload: bytes) -> None:
        try:
            message = decode(payload)
        except MalformedMessage as error:
            raise InvalidFrame(str(error)) from None
        if message.sender != member:
            raise InvalidFrame(f"message names member {message.sender} as its sender")
        queue = self._inbound[member]
        if len(queue) >= _INBOUND_PER_PEER:
            self.dropped_messages += 1  # overloaded: the protocol resends what matters
            return
        queue.append(message)
        self._inbound_count += 1
        self._inbound_ready.set()

    async def _drive(self) -> None:
        replica = self.replica
        while True:
            if not self._inbound_count and not self._backlog_ready():
                self._inbound_ready.clear()
                await self._inbound_ready.wait()
            batch = self._take_inbound()
            checks = [check for message in batch for check in self._signature_checks(message)]
            if len(checks) >= _CHECKS_OFF_LOOP:
                # libsecp256k1 runs without the GIL: the loop (and the node's HTTP intake on
                # it) keeps serving while a thread fills the cache the replica then reads
                await asyncio.to_thread(self._check_signatures, checks)
            async with self._lock:
                # the present, not the last tick's time: a block proposed in answer to these
                # messages is stamped with it (a stamp up to a tick late can put a block in the
                # epoch before the one its sealed intents were sealed for)
                actions: list[Action] = replica.on_tick(self._clock())
                for message in batch:
                    actions += replica.on_message(message)
                actions += self._take_backlog()
                await self._perform(actions)
            await asyncio.sleep(0)

    def _take_inbound(self) -> list[Message]:
        """Up to ``_MESSAGES_PER_TURN`` messages, taken from the peers' queues in turn."""
        batch: list[Message] = []
        # bounded by what is queued: the count falls only after the turn
        wanted = min(_MESSAGES_PER_TURN, self._inbound_count)
        while len(batch) < wanted:
            for queue in self._inbound.values():
                if queue and len(batch) < wanted:
                    batch.append(queue.popleft())
        self._inbound_count -= len(batch)
        return batch

    def _signature_checks(self, message: Message) -> list[tuple[bytes, bytes, bytes]]:
        """Every (address, digest, signature) the replica will verify for ``message``."""
        members, domain = self.committee.members, self.committee.domain
        if not 0 <= message.sender < len(members):
            return []
        checks = [(members[message.sender], message.signing_digest(domain), message.signature)]
        certificates: list[QuorumCertificate] = []
        timeouts: list[TimeoutCertificate] = []
        if isinstance(message, Proposal):
            certificates.append(message.block.justify)
            timeouts.extend(tc for tc in (message.tc,) if tc is not None)
        elif isinstance(message, TimeoutMessage):
            certificates.append(message.high_qc)
            timeouts.extend(tc for tc in (message.last_tc,) if tc is not None)
        elif isinstance(message, NewView):
            certificates.append(message.high_qc)
        elif isinstance(message, BlockResponse):
            certificates.extend(block.justify for block in message.blocks)
        for qc in certificates:
            digest = vote_digest(domain, qc.view, qc.block_hash)
            checks += [(members[i], digest, sig) for i, sig in qc.signatures if i < len(members)]
        for tc in timeouts:
            digest = timeout_digest(domain, tc.view)
            checks += [(members[i], digest, sig) for i, sig in tc.signatures if i < len(members)]
        return checks

    def _check_signatures(self, checks: list[tuple[bytes, bytes, bytes]]) -> None:
        for address, digest, signature in checks:
            self._verify(address, digest, signature)

    async def _tick_loop(self) -> None:
        replica = self.replica
        while True:
            pause = self._tick_s
            hurry = self._hurry_from_ms
            if hurry is not None:
                # wake right at the hurry time (an epoch's end), not up to a tick after it
                until = (hurry + 1 - self._clock()) / 1000
                if 0 < until < pause:
                    pause = until
            await asyncio.sleep(pause)
            async with self._lock:
                hurry = self._hurry_from_ms
                actions: list[Action] = []
                if hurry != replica.hurry_from_ms:
                    actions += replica.hurry(hurry)
                actions += replica.on_tick(self._clock())
                # items that found no room earlier (commits make room)
                await self._perform(actions + self._take_backlog())

    # --- the replica's outputs --------------------------------------------------------------

    async def _perform(self, actions: list[Action]) -> None:
        """Perform actions in order. Persists are gathered up to the next outgoing message
        and made durable before it leaves (one fsync per file however many asked)."""
        store = self.store
        safety: SafetyState | None = None
        blocks: list[Block] = []
        for action in actions:
            if isinstance(action, PersistSafety):
                safety = action.state
            elif isinstance(action, PersistBlock):
                blocks.append(action.block)
            elif isinstance(action, Commit):
                self._commit(store, action)
            else:
                if safety is not None or blocks:
                    await self._persist(store, safety, blocks)
                    safety, blocks = None, []
                self._perform_one(action)
        if safety is not None or blocks:
            await self._persist(store, safety, blocks)

    async def _persist(
        self, store: MemberStore, safety: SafetyState | None, blocks: list[Block]
    ) -> None:
        store.append_blocks(blocks)
        writes = []
        if safety is not None:
            writes.append(asyncio.to_thread(store.write_safety, safety))
        if blocks:
            writes.append(asyncio.to_thread(store.flush_blocks))
        await asyncio.gather(*writes)

    def _perform_one(self, action: Action) -> None:
        if isinstance(action, Send):
            self._transport.send(action.to, CHANNEL_CONSENSUS, encode(action.message))
        elif isinstance(action, Broadcast):
            self._transport.broadcast(CHANNEL_CONSENSUS, encode(action.message))
        elif isinstance(action, ReportEquivocation):
            self.equivocations += 1
            _log.warning("member %d: equivocation by member %d", self.index, action.first.sender)
            if self._on_equivocation is not None:
                self._on_equivocation(action)

    def _commit(self, store: MemberStore, commit: Commit) -> None:
        # the committed log guards no message: it is made durable by the committer task,
        # off the path of the votes and proposals that follow in these actions
        store.append_committed(commit.blocks, commit.certificate)
        self.committed_view = commit.blocks[-1].view
        self._commits.append(commit)
        self._commits_ready.set()
        if self._on_committing is not None:
            # soon, not now: it runs while these actions wait for their next fsync
            asyncio.get_running_loop().call_soon(self._report_committing, commit.blocks)

    def _report_committing(self, blocks: Sequence[Block]) -> None:
        if self._on_committing is None:
            return
        try:
            self._on_committing(blocks)
        except Exception:
            _log.exception("member %d: on_committing failed", self.index)

    async def _report_commits(self) -> None:
        """Make appended commits durable (one fsync for all waiting), then report them in
        height order."""
        store = self.store
        while True:
            if not self._commits:
                self._commits_ready.clear()
                await self._commits_ready.wait()
            await self._flush_commits(store)

    async def _flush_commits(self, store: MemberStore) -> None:
        commits = list(self._commits)
        self._commits.clear()
        await asyncio.to_thread(store.flush_committed)
        for commit in commits:
            try:
                self._on_commit(commit.blocks, commit.certificate)
            except Exception:
                _log.exception("member %d: on_commit failed", self.index)

    # --- views ----------------------------------------------------------------------------

    @property
    def replica(self) -> Replica:
        if self._replica is None:
            raise MemberStopped(f"committee member {self.index} has not started")
        return self._replica

    @property
    def store(self) -> MemberStore:
        if self._store is None:
            raise MemberStopped(f"committee member {self.index} has not started")
        return self._store

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def port(self) -> int:
        return self._transport.port

    @property
    def view(self) -> int:
        return self.replica.view

    @property
    def leader(self) -> int:
        return self.committee.leader(self.replica.view)

    @property
    def committed_height(self) -> int:
        return self.replica.committed_height

    @property
    def running(self) -> bool:
        return self._running

    def committed_blocks(self, from_height: int = 1) -> Iterator[Block]:
        """Durable committed blocks from ``from_height`` on (a node replaying after restart)."""
        for entry in self.store.committed_entries(from_height):
            yield entry.block

    def status_json(self) -> dict[str, Any]:
        replica = self.replica
        transport = self._transport
        return {
            "member": self.index,
            "members": self.committee.size,
            "view": replica.view,
            "leader": self.committee.leader(replica.view),
            "committed_height": replica.committed_height,
            "committed_view": self.committed_view,
            "high_qc_view": replica.high_qc.view,
            "pending_items": replica.pending_items + len(self._backlog),
            "peers_connected": transport.connected_peers,
            "rejected": dict(replica.stats.rejected),
            "links_rejected": dict(transport.stats.rejected),
            "frames_dropped": transport.stats.dropped_frames,
            "messages_dropped": self.dropped_messages,
            "equivocations": self.equivocations,
            "failure": None if self.failure is None else repr(self.failure),
        }
