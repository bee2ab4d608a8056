"""A seeded, deterministic simulation of a whole committee in one process.

Invariants:
- Everything random comes from ``random.Random(seed)``: a seed fixes the scenario (faults,
  Byzantine behaviours, network), every delivery and every tick, so any failure replays from
  its seed number alone (``asyncdex simulate consensus --start SEED --seeds 1``).
- Replicas are the real ``Replica`` with real secp256k1 signatures (a shared
  ``CachingVerifier`` avoids verifying the same signature twice); the simulation only moves
  their actions around and injects faults.
- Checked after every step (each delivery, tick, submission, crash or restart):
  safety: no two honest members commit different blocks at one height, and each member's
  committed log is a chain (so logs are prefixes of one another);
  liveness: once the network is synchronous (after GST) and the last crashed member is back,
  with at most f Byzantine members, every item submitted to an honest member is committed
  by every honest member within ``liveness_bound_ms``.
- With ``hold_items_ms`` > 0 every replica gets an ``item_ready`` (:func:`held_item_ready`):
  each item is ready only from a block time drawn after its submission, as a sealed intent
  for the next epoch is. Then also checked: no block an honest leader proposed holds an item
  before its time, and the liveness bound counts from that time when it is later.
- With ``deadline_items_ms`` > 0 every replica gets an ``item_deadline``
  (:func:`item_deadline`): each item counts only in a block stamped by a deadline drawn up
  to that much after its submission (or its ready time), as a sealed intent counts only in
  its epoch. Then also checked, at each block an honest member proposes: no item pending at
  that member (not in the chain below the block, ready at its deadline) has a deadline at
  or after the parent's time and before the block's (the leader should have stamped the
  block then). Items committed past their deadline are counted, not failed: a leader that
  has not heard of an item, or whose parent is already past it, cannot help it.

The faults: before GST, messages are delayed (up to ``max_delay_before_gst_ms``), dropped,
duplicated, reordered and cut by partitions; honest members crash and restart keeping only
their persisted safety state and committed log (their journaled items are resubmitted);
at any time the network replays old messages. Byzantine members (at most f) run the honest
code but twist its output: an equivocating leader, double votes, withheld votes, invalid
signatures and impersonation, forged certificates (bad, duplicate and non-member signers,
too few signers), stale certificates, and replays.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Secp256k1Signer
from asyncdex.consensus.messages import (
    GENESIS_BLOCK,
    GENESIS_QC,
    Block,
    Message,
    NewView,
    Proposal,
    QuorumCertificate,
    TimeoutMessage,
    Vote,
    timeout_digest,
)
from asyncdex.consensus.replica import (
    Action,
    Broadcast,
    Commit,
    PersistBlock,
    PersistSafety,
    Replica,
    ReplicaConfig,
    SafetyViolation,
    Send,
)
from asyncdex.consensus.safety import SafetyState
from asyncdex.types.hashing import keccak256

BEHAVIOURS = (
    "equivocate",
    "double-vote",
    "withhold-votes",
    "bad-signatures",
    "forge-certificates",
    "stale-certificates",
    "replay",
)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    nodes: int = 4
    tick_ms: int = 5
    max_gst_ms: int = 600
    max_delay_before_gst_ms: int = 60
    delay_after_gst_ms: int = 10  # Δ: every message sent after GST arrives within it
    drop_rate: float = 0.15
    duplicate_rate: float = 0.05
    replay_rate: float = 0.02
    items: int = 12
    hold_items_ms: int = 0  # > 0: each item is ready from a block time up to this much later
    deadline_items_ms: int = 0  # > 0: each item counts until a block time up to this much later
    replica: ReplicaConfig = field(
        default_factory=lambda: ReplicaConfig(
            base_timeout_ms=100,
            max_timeout_ms=800,
            proposal_wait_ms=30,
            idle_block_ms=40,
            fetch_retry_ms=40,
        )
    )

    @property
    def liveness_bound_ms(self) -> int:
        # after stabilization: the timer may have grown to its maximum, and up to f of every
        # n consecutive leaders are faulty; a generous multiple of a full rotation
        return (2 * self.nodes + 6) * self.replica.max_timeout_ms


def held_item_ready(item: bytes, timestamp_ms: int) -> bool:
    """The simulation's ``item_ready``: an item named ``...@<ms>`` is ready from block time
    ``ms`` on; any other item (the Byzantine members' made-up ones) at any time."""
    return timestamp_ms >= _ready_ms(item)


def _ready_ms(item: bytes) -> int:
    _, at, ready = item.rpartition(b"@")
    return int(ready) if at and ready.isdigit() else 0


def item_deadline(item: bytes) -> int | None:
    """The simulation's ``item_deadline``: an item named ``...~<ms>`` (before any ``@``)
    counts until block time ``ms``; any other item has no deadline."""
    name = item.partition(b"@")[0]
    _, tilde, deadline = name.rpartition(b"~")
    return int(deadline) if tilde and deadline.isdigit() else None


class SimulationFailure(AssertionError):
    def __init__(self, seed: int, reason: str, trace: list[str]) -> None:
        super().__init__(f"seed {seed}: {reason}")
        self.seed = seed
        self.reason = reason
        self.trace = trace

    def report(self) -> str:
        lines = [f"FAILED seed {self.seed}: {self.reason}", "last events:"]
        lines += [f"  {line}" for line in self.trace]
        return "\n".join(lines)


@dataclass(slots=True)
class SimulationResult:
    seed: int
    nodes: int
    byzantine: dict[int, tuple[str, ...]]
    crashes: int
    gst_ms: int
    end_ms: int
    committed_height: int
    items: int
    messages: int
    rejected: dict[str, int]
    late_items: int = 0  # with deadlines: items first committed in a block past theirs


@dataclass(slots=True)
class _Member:
    replica: Replica
    up: bool = True
    persisted: bytes = b""
    log: list[Block] = field(default_factory=list)
    journal: list[bytes] = field(default_factory=list)  # items submitted here (durable)
    journaled: dict[bytes, Block] = field(default_factory=dict)  # blocks voted for
    # items its replica (this incarnation) asked the deadline of: it asks once per item, as
    # the item becomes pending, and an item leaves the pending set only by a commit
    asked_deadline: set[bytes] = field(default_factory=set)


class _Byzantine:
    """Twists an honest replica's output; signs only with its own key."""

    def __init__(
        self,
        index: int,
        behaviours: tuple[str, ...],
        signer: Secp256k1Signer,
        committee: Committee,
        rng: random.Random,
    ) -> None:
        self.index = index
        self.behaviours = behaviours
        self.signer = signer
        self.committee = committee
        self.rng = rng
        self.seen: deque[Message] = deque(maxlen=64)
        self.qcs: deque[QuorumCertificate] = deque(maxlen=16)
        self.forged_view = 0

    def sign(self, message: Any) -> Any:
        return replace(
            message, signature=self.signer.sign(message.signing_digest(self.committee.domain))
        )

    def observe(self, message: Message) -> list[tuple[int | None, Message]]:
        """Learn from a received message; a double voter votes for every proposal it sees
        (both sides of an equivocation, forks below its lock)."""
        self.seen.append(message)
        qc = None
        out: list[tuple[int | None, Message]] = []
        if isinstance(message, Proposal):
            qc = message.block.justify
            if "double-vote" in self.behaviours:
                block = message.block
                vote = self.sign(Vote(block.view, block.hash, self.index))
                out.append((self.committee.leader(block.view + 1), vote))
        elif isinstance(message, TimeoutMessage | NewView):
            qc = message.high_qc
        if qc is not None and qc.signatures and (not self.qcs or self.qcs[-1] != qc):
            self.qcs.append(qc)
        return out

    def forge_qc(self, view: int, block_hash: bytes) -> QuorumCertificate:
        n, quorum, rng = self.committee.size, self.committee.quorum, self.rng
        kind = rng.randrange(5)
        if kind == 0:  # random bytes as honest members' signatures
            sigs = tuple((i, rng.randbytes(65)) for i in range(quorum))
        elif kind == 1:  # its own genuine vote, counted quorum times
            own = self.sign(Vote(view, block_hash, self.index)).signature
            sigs = tuple((self.index, own) for _ in range(quorum))
        elif kind == 2:  # a signer that is not a member
            own = self.sign(Vote(view, block_hash, self.index)).signature
            sigs = ((self.index, own), *((n + i, own) for i in range(quorum)))
        elif kind == 3 and self.qcs:  # real signatures, moved to another block / view
            sigs = self.rng.choice(self.qcs).signatures
        elif self.qcs:  # a real certificate missing one signature
            real = self.qcs[-1]
            return QuorumCertificate(real.view, real.block_hash, real.signatures[1:])
        else:
            sigs = ()
        return QuorumCertificate(view, block_hash, sigs)

    def twist(self, action: Action, replica: Replica) -> list[tuple[int | None, Message]]:
        """What the Byzantine member really sends for one action (None = everyone)."""
        rng, has = self.rng, self.behaviours.__contains__
        if isinstance(action, Send):
            out: list[tuple[int | None, Message]] = [(action.to, action.message)]
            message = action.message
        elif isinstance(action, Broadcast):
            out = [(None, action.message)]
            message = action.message
        else:
            return []
        if isinstance(message, Vote):
            if has("withhold-votes") and rng.random() < 0.7:
                out = []
            if has("double-vote"):
                other = self.sign(Vote(message.view, rng.randbytes(32), self.index))
                out.append((action.to if isinstance(action, Send) else None, other))
        if isinstance(message, Proposal):
            block = message.block
            if has("equivocate"):
                twin = Block(
                    block.view,
                    block.height,
                    block.justify,
                    self.index,
                    (b"equivocation-" + rng.randbytes(4),),
                    block.timestamp,
                )
                twin_proposal = self.sign(Proposal(twin, message.tc, self.index))
                members = [i for i in range(self.committee.size) if i != self.index]
                rng.shuffle(members)
                half = len(members) // 2
                out = [(i, message) for i in members[:half]]
                out += [(i, twin_proposal) for i in members[half:]]
            if has("forge-certificates") and rng.random() < 0.5:
                forged = self.forge_qc(block.view - 1, rng.randbytes(32))
                fake = Block(block.view, block.height + 5, forged, self.index, block.payload)
                out.append((None, self.sign(Proposal(fake, None, self.index))))
            if has("stale-certificates") and message.tc is not None:
                # extend an old certificate instead of the highest: only the lock rule
                # stops honest members from certifying a fork below a commit
                known = [qc for qc in (GENESIS_QC, *self.qcs) if replica.knows(qc.block_hash)]
                old = known[0] if rng.random() < 0.5 else rng.choice(known)
                parent_height = replica.block_height(old.block_hash)
                stale = Block(
                    block.view,
                    parent_height + 1,
                    old,
                    self.index,
                    (b"stale-" + rng.randbytes(4),),
                    block.timestamp,
                )
                stale_proposal = self.sign(Proposal(stale, message.tc, self.index))
                if rng.random() < 0.7:
                    out = [(None, stale_proposal)]  # instead of the honest proposal
                else:
                    out.append((None, stale_proposal))
        if isinstance(message, TimeoutMessage) and has("forge-certificates"):
            self.forged_view = max(self.forged_view, message.view) + 3
            forged = self.forge_qc(self.forged_view, rng.randbytes(32))
            out.append((None, self.sign(TimeoutMessage(message.view, forged, None, self.index))))
        if has("bad-signatures") and rng.random() < 0.3:
            corrupt = bytearray(message.signature or bytes(65))
            corrupt[rng.randrange(len(corrupt))] ^= 0xFF
            out.append((None, replace(message, signature=bytes(corrupt))))
            victim = rng.choice(
                [i for i in range(self.committee.size) if i != self.index] or [self.index]
            )
            out.append((None, replace(message, sender=victim)))  # impersonation
        return out

    def extra(self, now_ms: int) -> list[tuple[int | None, Message]]:
        if "replay" in self.behaviours and self.seen and self.rng.random() < 0.2:
            return [(None, self.rng.choice(self.seen))]
        return []


class Simulation:
    def __init__(self, seed: int, config: SimulationConfig | None = None) -> None:
        self.seed = seed
        self.config = config = config or SimulationConfig()
        self.rng = rng = random.Random(seed)
        n = config.nodes
        self.signers = [Secp256k1Signer.from_seed(f"member-{i}".encode()) for i in range(n)]
        self.committee = Committee(tuple(s.address for s in self.signers))
        self.verifier = _shared_verifier()
        f = self.committee.max_faulty

        # --- the scenario, all drawn from the seed -------------------------------------
        self.gst_ms = rng.randrange(0, config.max_gst_ms + 1)
        byzantine_count = rng.randint(0, f)
        indexes = list(range(n))
        rng.shuffle(indexes)
        self.byzantine: dict[int, _Byzantine] = {}
        for index in indexes[:byzantine_count]:
            behaviours = tuple(b for b in BEHAVIOURS if rng.random() < 0.5) or ("withhold-votes",)
            self.byzantine[index] = _Byzantine(
                index,
                behaviours,
                self.signers[index],
                self.committee,
                random.Random(rng.getrandbits(64)),
            )
        self.honest = [i for i in range(n) if i not in self.byzantine]
        crash_plan: list[tuple[int, int, int]] = []
        if n > 1:
            for index in self.honest:
                if rng.random() < 0.3:
                    down = rng.randrange(0, max(1, self.gst_ms + 200))
                    crash_plan.append((index, down, down + rng.randrange(20, 400)))
        self.partitions: list[tuple[int, int, frozenset[int]]] = []
        for _ in range(rng.randint(0, 3)):
            start = rng.randrange(0, max(1, self.gst_ms))
            group = frozenset(i for i in range(n) if rng.random() < 0.5)
            self.partitions.append((start, min(self.gst_ms, start + rng.randrange(20, 300)), group))
        self.stable_ms = max([self.gst_ms] + [up for _, _, up in crash_plan])

        self.item_ready = held_item_ready if config.hold_items_ms > 0 else None
        self.members: list[_Member] = []
        for i in range(n):
            asked: set[bytes] = set()
            self.members.append(_Member(self._replica(i, asked), asked_deadline=asked))
        self.blocks: dict[bytes, Block] = {GENESIS_BLOCK.hash: GENESIS_BLOCK}
        self.checked_proposals: set[bytes] = set()
        self.late_items = 0
        self.queue: list[tuple[int, int, str, Any]] = []
        self._sequence = 0
        self.now_ms = 0
        self.trace: deque[tuple[int, str, Any]] = deque(maxlen=40)
        self.messages = 0
        self.canonical: list[bytes] = []
        self.items: dict[bytes, int] = {}  # item -> deadline
        self.committed_by: dict[bytes, set[int]] = {}
        self.crashes = len(crash_plan)

        for index in range(n):
            self._schedule(0, "tick", index)
        for index, down, up in crash_plan:
            self._schedule(down, "crash", index)
            self._schedule(up, "restart", index)
        last_submit = self.stable_ms + 200
        for number in range(config.items):
            at = rng.randrange(0, last_submit)
            target = rng.choice(self.honest)
            name = f"item-{seed}-{number}"
            ready = at
            if config.hold_items_ms > 0:  # drawn only then: other runs keep their streams
                ready = at + rng.randrange(0, config.hold_items_ms + 1)
            if config.deadline_items_ms > 0:
                name += f"~{ready + rng.randrange(0, config.deadline_items_ms + 1)}"
            if config.hold_items_ms > 0:
                name += f"@{ready}"
            self._schedule(at, "submit", (target, name.encode()))
        self.hard_end_ms = last_submit + config.liveness_bound_ms + 1

    # --- plumbing ---------------------------------------------------------------------------

    def _replica(self, index: int, asked: set[bytes], **restart: Any) -> Replica:
        """Member ``index``'s replica; with deadlines, each item it asks the deadline of is
        added to ``asked`` (what ``_check_block_time`` takes for its pending items)."""
        deadline = None
        if self.config.deadline_items_ms > 0:

            def deadline(item: bytes) -> int | None:
                asked.add(item)
                return item_deadline(item)

        return Replica(
            self.committee,
            index,
            self.signers[index],
            self.verifier,
            self.config.replica,
            item_ready=self.item_ready,
            item_deadline=deadline,
            **restart,
        )

    def _schedule(self, at: int, kind: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self.queue, (at, self._sequence, kind, payload))

    def _fail(self, reason: str) -> SimulationFailure:
        trace = [f"t={t}ms {kind} {_describe(payload)}" for t, kind, payload in self.trace]
        return SimulationFailure(self.seed, reason, trace)

    def _cut(self, a: int, b: int, at: int) -> bool:
        for start, end, group in self.partitions:
            if start <= at < end and ((a in group) != (b in group)):
                return True
        return False

    def _transmit(self, sender: int, to: int | None, message: Message) -> None:
        targets = [i for i in range(self.config.nodes) if i != sender] if to is None else [to]
        rng, now = self.rng, self.now_ms
        if isinstance(message, Proposal):
            self.blocks.setdefault(message.block.hash, message.block)
        for target in targets:
            self.messages += 1
            if now < self.gst_ms:
                if rng.random() < self.config.drop_rate or self._cut(sender, target, now):
                    continue
                delay = rng.randint(1, self.config.max_delay_before_gst_ms)
            else:
                delay = rng.randint(1, self.config.delay_after_gst_ms)
            self._schedule(now + delay, "deliver", (target, message))
            if rng.random() < self.config.duplicate_rate:
                # the duplicate arrives later still within Δ after GST (a partially
                # synchronous network delivers, it may deliver twice)
                self._schedule(now + delay + rng.randint(0, 5), "deliver", (target, message))
            if rng.random() < self.config.replay_rate:
                self._schedule(now + rng.randint(50, 500), "deliver", (target, message))

    def _perform(self, index: int, actions: list[Action]) -> None:
        member = self.members[index]
        byzantine = self.byzantine.get(index)
        for action in actions:
            if isinstance(action, PersistSafety):
                member.persisted = action.state.to_bytes()
            elif isinstance(action, PersistBlock):
                member.journaled[action.block.hash] = action.block
                # a committee of one broadcasts no proposal: its blocks are seen here
                self.blocks.setdefault(action.block.hash, action.block)
                if byzantine is None and action.block.proposer == index:
                    self._check_block_time(index, action.block)
            elif isinstance(action, Commit):
                self._record_commit(index, action.blocks)
            elif byzantine is not None:
                for to, message in byzantine.twist(action, member.replica):
                    self._transmit(index, to, message)
            elif isinstance(action, Send):
                self._transmit(index, action.to, action.message)
            elif isinstance(action, Broadcast):
                if isinstance(action.message, Proposal):
                    self._check_block_time(index, action.message.block)
                self._transmit(index, None, action.message)

    # --- invariants -------------------------------------------------------------------------

    def _check_block_time(self, index: int, block: Block) -> None:
        """With deadlines: the honest member ``index`` just proposed ``block``; no item
        pending at it (by the deadlines its replica asked for, less what it committed) may
        have had its deadline reachable (at or after the parent's time, ready then) and
        before the block's time. Called once per block; a block whose chain the simulation
        has not seen whole is skipped (never a false failure)."""
        if self.config.deadline_items_ms <= 0 or block.hash in self.checked_proposals:
            return
        self.checked_proposals.add(block.hash)
        member = self.members[index]
        parent = self.blocks.get(block.parent)
        if parent is None:
            return
        done = {item for committed in member.log for item in committed.payload}
        below: Block | None = parent
        while below is not None and below.height > len(member.log):
            done.update(below.payload)
            below = self.blocks.get(below.parent)
        if below is None:
            return
        ready = self.item_ready
        for item in member.asked_deadline - done:
            deadline = item_deadline(item)
            if (
                deadline is not None
                and parent.timestamp <= deadline < block.timestamp
                and (ready is None or ready(item, deadline))
            ):
                raise self._fail(
                    f"DEADLINE: member {index} stamped its block at height {block.height} "
                    f"{block.timestamp}, its parent {parent.timestamp}, past the deadline "
                    f"{deadline} of its pending {item.decode()}"
                )

    def _record_commit(self, index: int, blocks: tuple[Block, ...]) -> None:
        member = self.members[index]
        height = blocks[-1].height
        # the journal keeps only blocks that may still commit (a node would truncate it so)
        member.journaled = {h: b for h, b in member.journaled.items() if b.height > height}
        for block in blocks:
            expected_parent = member.log[-1].hash if member.log else None
            if len(member.log) + 1 != block.height or (
                expected_parent is not None and block.parent != expected_parent
            ):
                raise self._fail(f"member {index} committed a block that does not extend its log")
            if member.log and block.timestamp < member.log[-1].timestamp:
                raise self._fail(f"member {index} committed a block whose time goes back")
            member.log.append(block)
            if index in self.byzantine:
                continue
            if block.height <= len(self.canonical):
                if self.canonical[block.height - 1] != block.hash:
                    raise self._fail(
                        f"SAFETY: member {index} committed 0x{block.hash.hex()[:12]} at height "
                        f"{block.height}, another honest member committed "
                        f"0x{self.canonical[block.height - 1].hex()[:12]}"
                    )
            else:
                self.canonical.append(block.hash)
                for item in block.payload:
                    deadline = item_deadline(item) if item in self.items else None
                    if deadline is not None and block.timestamp > deadline:
                        self.late_items += 1
            for item in block.payload:
                if item in self.items:
                    self.committed_by.setdefault(item, set()).add(index)
                    if block.proposer not in self.byzantine and _ready_ms(item) > block.timestamp:
                        raise self._fail(
                            f"HOLD: {item.decode()} in a block of member {block.proposer} "
                            f"stamped {block.timestamp}, before its time"
                        )

    def _check_liveness(self) -> None:
        for item, deadline in self.items.items():
            if self.now_ms > deadline:
                missing = [i for i in self.honest if i not in self.committed_by.get(item, ())]
                if missing:
                    raise self._fail(
                        f"LIVENESS: {item.decode()} not committed by members {missing} "
                        f"{self.config.liveness_bound_ms} ms after stabilization"
                    )

    def _all_committed(self) -> bool:
        return len(self.committed_by) == self.config.items and all(
            len(self.committed_by[item]) == len(self.honest) for item in self.committed_by
        )

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        try:
            return self._run()
        except SafetyViolation as violation:
            # a replica found a certified chain that conflicts with its own commits
            raise self._fail(f"SAFETY: {violation}") from None

    def _run(self) -> SimulationResult:
        tick_ms = self.config.tick_ms
        next_liveness_check = 0
        while self.queue:
            at, _, kind, payload = heapq.heappop(self.queue)
            self.now_ms = at
            if at > self.hard_end_ms:
                break
            if kind == "deliver":
                target, message = payload
                member = self.members[target]
                if not member.up:
                    continue
                self.trace.append((at, kind, (target, message)))
                byzantine = self.byzantine.get(target)
                if byzantine is not None:
                    for to, extra in byzantine.observe(message):
                        if to != target:
                            self._transmit(target, to, extra)
                self._perform(target, member.replica.on_message(message))
            elif kind == "tick":
                member = self.members[payload]
                if member.up:
                    self._perform(payload, member.replica.on_tick(at))
                    byzantine = self.byzantine.get(payload)
                    if byzantine is not None:
                        for to, message in byzantine.extra(at):
                            self._transmit(payload, to, message)
                    self._schedule(at + tick_ms, "tick", payload)
            elif kind == "submit":
                index, item = payload
                self.trace.append((at, kind, payload))
                self.items[item] = (
                    max(at, self.stable_ms, _ready_ms(item)) + self.config.liveness_bound_ms
                )
                member = self.members[index]
                member.journal.append(item)
                if member.up:
                    self._perform(index, member.replica.submit(item))
            elif kind == "crash":
                self.trace.append((at, kind, payload))
                self.members[payload].up = False
            elif kind == "restart":
                self.trace.append((at, kind, payload))
                self._restart(payload)
            if at >= next_liveness_check:
                self._check_liveness()
                next_liveness_check = at + tick_ms
            if at > self.stable_ms and self._all_committed():
                break
        self._check_liveness()
        if not self._all_committed():
            raise self._fail("LIVENESS: the run ended with items not committed everywhere")
        rejected: dict[str, int] = {}
        for index in self.honest:
            for reason, count in self.members[index].replica.stats.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
        return SimulationResult(
            seed=self.seed,
            nodes=self.config.nodes,
            byzantine={i: b.behaviours for i, b in self.byzantine.items()},
            crashes=self.crashes,
            gst_ms=self.gst_ms,
            end_ms=self.now_ms,
            committed_height=len(self.canonical),
            items=self.config.items,
            messages=self.messages,
            rejected=rejected,
            late_items=self.late_items,
        )

    def _restart(self, index: int) -> None:
        """A restart keeps only what was durable: the safety state and the committed log
        (and the journal of items submitted here, which the member proposes again)."""
        member = self.members[index]
        state = SafetyState.from_bytes(member.persisted) if member.persisted else None
        member.asked_deadline = set()  # the new replica's pending set starts empty
        member.replica = self._replica(
            index,
            member.asked_deadline,
            safety_state=state,
            committed=list(member.log),
            journaled=list(member.journaled.values()),
            now_ms=self.now_ms,
        )
        member.up = True
        self._schedule(self.now_ms, "tick", index)
        committed = {item for block in member.log for item in block.payload}
        for item in member.journal:
            if item not in committed:
                self._perform(index, member.replica.submit(item))


_VERIFIER: CachingVerifier | None = None


def _shared_verifier() -> CachingVerifier:
    """One cache for every simulation in this process: verification is a pure function."""
    global _VERIFIER
    if _VERIFIER is None:
        _VERIFIER = CachingVerifier(max_entries=500_000)
    return _VERIFIER


def _describe(payload: Any) -> str:
    if isinstance(payload, tuple) and len(payload) == 2 and not isinstance(payload[1], bytes):
        target, message = payload
        kind = type(message).__name__
        view = getattr(message, "view", None)
        if isinstance(message, Proposal):
            view = message.block.view
        return f"-> {target}: {kind} from {message.sender} view={view}"
    return repr(payload)


def run_seed(seed: int, config: SimulationConfig | None = None) -> SimulationResult:
    """Run one seed; raises ``SimulationFailure`` (with a trace) if an invariant breaks."""
    return Simulation(seed, config).run()


def timeout_signature_digest(committee: Committee, view: int) -> bytes:
    return timeout_digest(committee.domain, view)


def item_id(item: bytes) -> bytes:
    return keccak256(item)
