"""A committee member running chained HotStuff-2, as a pure state machine.

Invariants:
- Pure: ``on_message``, ``on_tick``, ``submit``, ``hurry`` only change this object and return
  actions; time is whatever the last ``on_tick`` said. The caller performs the actions in
  order: a ``PersistSafety`` must be durable before any later ``Send``/``Broadcast`` leaves
  (it guards the signature in that message), and ``Commit`` blocks are appended to the
  committed log in the order given.
- Every handler validates (signature, certificates, shape), then updates, then emits; a
  message that fails validation changes nothing.
- Commits come only from the two-chain rule on verified certificates, each block extending the
  previous commit; the committed log only grows.
- An item given to ``submit`` stays pending until it is committed, and is proposed whenever
  this member leads, so an honest member's items commit even if other leaders leave them out.
  The one exception is the host's ``item_ready``: an item it calls not ready for a block's
  time is left out of that block and stays pending (it is never dropped for it).
- A leader stamps its block ``max(parent's time, its clock)``, or earlier, never before the
  parent's: at the earliest ``item_deadline`` of a pending item (not yet in the chain, ready
  then) that falls in between, so that item still goes into a block stamped in time.

Rules, under the paper's names (Malkhi & Nayak, "HotStuff-2", 2023; docs/consensus.md maps
each to the paper): Propose (``_try_propose``), Vote (``SafetyRules.sign_vote`` called from
``_process_proposal``), Prepare (``_process_vote``: 2f+1 votes form the certificate),
Commit (``_try_commit``: a certified block whose certified child is in the next view),
View change (``_local_timeout``/``_process_timeout``: 2f+1 timeouts form a timeout
certificate; ``NewView`` carries each member's lock to the next leader, who waits for all
of them or a bounded time before proposing).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeAlias

from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import Signer, Verifier
from asyncdex.consensus.messages import (
    GENESIS_BLOCK,
    GENESIS_QC,
    GENESIS_VIEW,
    Block,
    BlockRequest,
    BlockResponse,
    ForwardItem,
    Message,
    NewView,
    Proposal,
    QuorumCertificate,
    Signatures,
    TimeoutCertificate,
    TimeoutMessage,
    Vote,
    timeout_digest,
    vote_digest,
)
from asyncdex.consensus.safety import SafetyRules, SafetyState, UnsafeToSign
from asyncdex.types.hashing import keccak256

# how far ahead of its own view a member keeps votes and timeouts (bounds what spam can store)
FUTURE_VIEW_WINDOW = 1_000

ItemReady: TypeAlias = Callable[[bytes, int], bool]
"""``item_ready(item, timestamp_ms)``: whether a leader may put ``item`` in a block stamped
``timestamp_ms``. A pure function of its arguments (no clock, no state): the core stays
deterministic, and a replay of the same inputs proposes the same blocks."""

ItemDeadline: TypeAlias = Callable[[bytes], int | None]
"""``item_deadline(item)``: the last block time (ms) at which ``item`` still counts, or
``None`` if it has none. A pure function of the item (asked once, when the item becomes
pending, and remembered): a leader whose clock is past a pending item's deadline while its
parent's time is not stamps its block at that deadline instead of its clock."""


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    base_timeout_ms: int = 1_000  # a view's timer; doubled per timeout beyond f + 1 in a row
    max_timeout_ms: int = 8_000
    proposal_wait_ms: int = 100  # after a timeout certificate: wait for every member's lock
    idle_block_ms: int = 200  # an empty block at most this often when nothing is pending
    max_block_items: int = 1_000
    max_item_bytes: int = 65_536
    max_pending_items: int = 100_000
    fetch_retry_ms: int = 200
    max_fetch_blocks: int = 64
    max_clock_drift_ms: int = 1_000  # Block time: how far ahead of our clock a block may be

    def __post_init__(self) -> None:
        if self.idle_block_ms + self.proposal_wait_ms >= self.base_timeout_ms:
            raise ValueError("idle_block_ms + proposal_wait_ms must stay below base_timeout_ms")


@dataclass(frozen=True, slots=True)
class Send:
    to: int
    message: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """To every other member."""

    message: Message


@dataclass(frozen=True, slots=True)
class PersistSafety:
    state: SafetyState


@dataclass(frozen=True, slots=True)
class PersistBlock:
    """Journal ``block`` before the vote that follows: a vote means "durable here", so every
    certified block survives on at least f+1 honest members, and a restarted member can
    still extend the certificate it is locked on."""

    block: Block


@dataclass(frozen=True, slots=True)
class Commit:
    """Blocks committed, in height order; the first extends the previous commit.

    ``certificate`` made them committed: it certifies the child, in the next view, of the
    last block (so a node can show each block's ``ordered`` step with its proof)."""

    blocks: tuple[Block, ...]
    certificate: QuorumCertificate


@dataclass(frozen=True, slots=True)
class ReportEquivocation:
    """Two messages signed by one member that no honest member signs: evidence for slashing."""

    first: Proposal | Vote
    second: Proposal | Vote


Action = Send | Broadcast | PersistSafety | PersistBlock | Commit | ReportEquivocation


class SafetyViolation(AssertionError):
    """A certified chain conflicts with this member's committed log: more than f faulty."""


@dataclass(slots=True)
class _Fetch:
    requested_ms: int
    peer: int
    attempts: int = 1


@dataclass(slots=True)
class _Stats:
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class Replica:
    def __init__(
        self,
        committee: Committee,
        index: int,
        signer: Signer,
        verify: Verifier,
        config: ReplicaConfig | None = None,
        *,
        safety_state: SafetyState | None = None,
        committed: list[Block] | None = None,
        journaled: list[Block] | None = None,
        now_ms: int = 0,
        item_ready: ItemReady | None = None,
        item_deadline: ItemDeadline | None = None,
    ) -> None:
        """A member, new or restarted from what it persisted: its safety state, its
        committed log and the blocks it journaled (``PersistBlock``) but has not committed.

        ``item_ready`` (see :data:`ItemReady`) lets the host hold back, as leader, items not
        yet valid at a block's time (sealed intents for a later epoch): they stay pending and
        go into the first block this member proposes whose time makes them ready. ``None``
        means every item is always ready. It is a leader's choice, not a rule: blocks from
        other leaders are validated as before, whatever they hold.

        ``item_deadline`` (see :data:`ItemDeadline`) lets a leader stamp its block early
        enough for a pending item whose deadline has passed by its clock but not by its
        parent's time (``_block_time``); ``None`` means no item has a deadline. Also a
        leader's choice: validation of blocks is unchanged."""
        self.committee = committee
        self.index = index
        self.config = config or ReplicaConfig()
        self._verify = verify
        self._signer = signer
        self._domain = committee.domain
        self.safety = SafetyRules(committee, index, signer, safety_state)
        self.stats = _Stats()

        self._blocks: dict[bytes, Block] = {GENESIS_BLOCK.hash: GENESIS_BLOCK}
        self._tentative: dict[bytes, Block] = {}  # stored but not committed
        self.committed_hashes: list[bytes] = [GENESIS_BLOCK.hash]
        self._committed_items: set[bytes] = set()
        for block in committed or ():
            if block.height != self.committed_height + 1 or (
                block.parent != self.committed_hashes[-1]
            ):
                raise ValueError(f"committed log broken at height {block.height}")
            self._blocks[block.hash] = block
            self.committed_hashes.append(block.hash)
            self._committed_items.update(keccak256(item) for item in block.payload)
        for block in journaled or ():
            if block.height > self.committed_height:
                self._store(block)
        self._pending: dict[bytes, bytes] = {}
        self._item_ready = item_ready
        self._item_deadline = item_deadline
        # the deadlines of pending items that have one, asked once per item (the function is
        # pure), so a proposal looks only at these instead of asking for every pending item
        self._deadlines: dict[bytes, int] = {}

        self.now_ms = now_ms
        lock = self.safety.lock
        self.view = max(lock.view + 1, self.safety.state.last_voted_view, 1)
        self._entered_by_tc: TimeoutCertificate | None = None
        self._last_tc: TimeoutCertificate | None = None
        self._view_entered_ms = now_ms
        self._consecutive_timeouts = 0
        self._deadline_ms = now_ms + self._timeout_ms()
        self._my_timeout: TimeoutMessage | None = None
        self._timeout_sent_ms = now_ms

        self._votes: dict[tuple[int, bytes], dict[int, bytes]] = {}
        self._formed_qc_views: set[int] = set()
        self._timeouts: dict[int, dict[int, bytes]] = {}
        self._locks_for_view: dict[int, dict[int, QuorumCertificate]] = {}
        self._first_vote: dict[tuple[int, int], Vote] = {}
        self._first_proposal: dict[int, Proposal] = {}
        self._waiting_for_parent: dict[bytes, list[Proposal]] = {}
        self._early_block: Block | None = None  # this view's proposal, ahead of our clock
        self._fetching: dict[bytes, _Fetch] = {}
        self._commit_candidates: list[QuorumCertificate] = []
        self._valid_qcs: set[QuorumCertificate] = {GENESIS_QC}
        self._valid_tcs: set[TimeoutCertificate] = set()

        self._hurry_from_ms: int | None = None  # see ``hurry``: a host input, not persisted

        self._out: list[Action] = []
        self._local: deque[Message] = deque()

    # --- entry points -------------------------------------------------------------------

    @property
    def committed_height(self) -> int:
        return len(self.committed_hashes) - 1

    @property
    def high_qc(self) -> QuorumCertificate:
        return self.safety.lock

    @property
    def pending_items(self) -> int:
        return len(self._pending)

    def knows(self, block_hash: bytes) -> bool:
        return block_hash in self._blocks

    def block_height(self, block_hash: bytes) -> int:
        return self._blocks[block_hash].height

    def on_message(self, message: Message) -> list[Action]:
        """A message from another member (as received: it is verified here)."""
        sender = message.sender
        if not 0 <= sender < self.committee.size or sender == self.index:
            self.stats.reject("sender")
            return []
        if not self._verify(
            self.committee.members[sender], message.signing_digest(self._domain), message.signature
        ):
            self.stats.reject("signature")
            return []
        self._dispatch(message)
        return self._drain()

    def on_tick(self, now_ms: int) -> list[Action]:
        """Advance time; fires the view timer, resends, retries fetches, paces proposals."""
        self.now_ms = max(self.now_ms, now_ms)
        early = self._early_block
        if early is not None and self._may_vote_at_time(early):
            self._early_block = None
            self._vote(early)
        if self._my_timeout is None and self.now_ms >= self._deadline_ms:
            self._local_timeout()
        elif self._my_timeout is not None and (
            self.now_ms - self._timeout_sent_ms >= self._timeout_ms()
        ):
            # the view is still stuck: say it again (messages may have been lost before GST)
            self._timeout_sent_ms = self.now_ms
            self._broadcast(self._my_timeout, deliver_locally=False)
        for block_hash, fetch in list(self._fetching.items()):
            if self.now_ms - fetch.requested_ms < self.config.fetch_retry_ms:
                continue
            if fetch.attempts >= 2 * self.committee.size:
                # every member asked twice: a block certified but pruned as a fork below the
                # commit; if it is needed after all, the next certificate naming it asks again
                del self._fetching[block_hash]
            else:
                self._request_block(block_hash, self._next_peer(fetch.peer), retry=True)
        self._try_propose()
        return self._drain()

    @property
    def hurry_from_ms(self) -> int | None:
        return self._hurry_from_ms

    def hurry(self, from_ms: int | None) -> list[Action]:
        """The host needs a block stamped at or after ``from_ms`` (this replica's time)
        committed and known to every member soon, even with nothing pending — e.g. sealed
        intents waiting for a committed block past their epoch (docs/fairness.md). Leaders
        then propose (empty blocks if need be) without waiting for ``idle_block_ms`` until
        that is done (``_hurried``); ``None`` cancels it. Only the pace changes: what a block
        holds, its time and every safety rule stay as they are."""
        self._hurry_from_ms = from_ms
        self._try_propose()
        return self._drain()

    def submit(self, item: bytes) -> list[Action]:
        """Order ``item``: it stays pending here until committed, and is shared with peers."""
        return self.submit_many((item,))

    def submit_many(self, items: Sequence[bytes]) -> list[Action]:
        """Order ``items`` (all or none): pending here until committed, shared with peers in
        one signed message per ``max_block_items`` of them (a host gathers concurrent client
        submissions, so one signature and one check per peer cover many items)."""
        for item in items:
            if not item or len(item) > self.config.max_item_bytes:
                raise ValueError(
                    f"an item is 1..{self.config.max_item_bytes} bytes, got {len(item)}"
                )
        if len(self._pending) + len(items) > self.config.max_pending_items:
            raise OverflowError(f"{len(self._pending)} items already pending")
        added = [item for item in items if self._add_pending(item)]
        step = self.config.max_block_items
        for start in range(0, len(added), step):
            forward = ForwardItem(tuple(added[start : start + step]), self.index)
            self._broadcast(self._sign(forward), deliver_locally=False)
        if added:
            self._try_propose()
        return self._drain()

    # --- plumbing -----------------------------------------------------------------------

    def _drain(self) -> list[Action]:
        while self._local:
            self._dispatch(self._local.popleft())
        out, self._out = self._out, []
        return out

    def _dispatch(self, message: Message) -> None:
        match message:
            case Proposal():
                self._process_proposal(message)
            case Vote():
                self._process_vote(message)
            case TimeoutMessage():
                self._process_timeout(message)
            case NewView():
                self._process_new_view(message)
            case BlockRequest():
                self._process_block_request(message)
            case BlockResponse():
                self._process_block_response(message)
            case ForwardItem():
                self._process_forward(message)

    def _sign(self, message: ForwardItem | NewView | BlockRequest | BlockResponse) -> Message:
        # these messages guard no safety rule, so they are signed outside SafetyRules
        digest = message.signing_digest(self._domain)
        return replace(message, signature=self._signer.sign(digest))

    def _send(self, to: int, message: Message) -> None:
        if to == self.index:
            self._local.append(message)
        else:
            self._out.append(Send(to, message))

    def _broadcast(self, message: Message, *, deliver_locally: bool = True) -> None:
        if self.committee.size > 1:
            self._out.append(Broadcast(message))
        if deliver_locally:
            self._local.append(message)

    def _persist(self) -> None:
        self._out.append(PersistSafety(self.safety.state))

    def _timeout_ms(self) -> int:
        # A crashed leader costs two timeouts in a row (the view before it, whose votes went
        # to it, and its own), f crashed leaders in a row f + 1: those are not a sign that the
        # timer is too short, so doubling (which reaches any unknown bound Δ after GST)
        # starts only beyond them. Liveness is unchanged, as the timer still grows without
        # bound while views keep failing; a crashed leader now costs two base timers, not 3x.
        grace = self.committee.max_faulty + 1
        doublings = min(max(self._consecutive_timeouts - grace, 0), 16)
        return min(self.config.base_timeout_ms << doublings, self.config.max_timeout_ms)

    def _next_peer(self, peer: int) -> int:
        peer = (peer + 1) % self.committee.size
        return (peer + 1) % self.committee.size if peer == self.index else peer

    # --- validation (reads no state but the committee and caches) -------------------------

    def _validate_signatures(self, signatures: Signatures, digest: bytes) -> str | None:
        members = self.committee.members
        previous = -1
        for signer, signature in signatures:
            # sorted strictly increasing: no duplicate signer can inflate a quorum
            if signer <= previous:
                return "signers not distinct and sorted"
            if signer >= len(members):
                return "signer not a member"
            previous = signer
            if not self._verify(members[signer], digest, signature):
                return "bad signature in certificate"
        if len(signatures) < self.committee.quorum:
            return "too few signatures for a quorum"
        return None

    def _validate_qc(self, qc: QuorumCertificate) -> str | None:
        if qc in self._valid_qcs:
            return None
        if qc.view == GENESIS_VIEW:
            return "forged genesis certificate"
        problem = self._validate_signatures(
            qc.signatures, vote_digest(self._domain, qc.view, qc.block_hash)
        )
        if problem is None:
            if len(self._valid_qcs) > 4_096:
                self._valid_qcs = {GENESIS_QC}
            self._valid_qcs.add(qc)
        return problem

    def _validate_tc(self, tc: TimeoutCertificate) -> str | None:
        if tc in self._valid_tcs:
            return None
        problem = self._validate_signatures(tc.signatures, timeout_digest(self._domain, tc.view))
        if problem is None:
            if len(self._valid_tcs) > 1_024:
                self._valid_tcs.clear()
            self._valid_tcs.add(tc)
        return problem

    def _validate_block(self, block: Block) -> str | None:
        if block.view <= block.justify.view:
            return "block view not above its justification"
        if block.proposer != self.committee.leader(block.view):
            return "proposer is not the view's leader"
        if block.height < 1:
            return "block height below 1"
        if len(block.payload) > self.config.max_block_items:
            return "too many items in block"
        if any(not item or len(item) > self.config.max_item_bytes for item in block.payload):
            return "item size out of range"
        return self._validate_qc(block.justify)

    # --- Propose ------------------------------------------------------------------------

    def _try_propose(self) -> None:
        """HotStuff-2 "Propose": the leader extends the highest certificate it knows.

        Guarantee: after a certificate of the previous view the leader proposes at once
        (optimistic responsiveness); after a timeout certificate it first waits for every
        member's lock or ``proposal_wait_ms``, so after GST its proposal extends every honest
        lock and every honest member votes for it (liveness).
        """
        view = self.view
        if (
            self.committee.leader(view) != self.index
            or self.safety.state.last_proposed_view >= view
            or self._my_timeout is not None
        ):
            return
        high_qc = self.high_qc
        tc = None
        if high_qc.view != view - 1:
            tc = self._entered_by_tc
            if tc is None or tc.view != view - 1:
                return  # not entered by a certificate of view - 1: nothing justifies a proposal
            heard = len(self._locks_for_view.get(view, {}))
            waited = self.now_ms - self._view_entered_ms >= self.config.proposal_wait_ms
            if heard < self.committee.size and not waited:
                return
        parent = self._blocks.get(high_qc.block_hash)
        if parent is None:
            self._request_block(high_qc.block_hash, self._next_peer(self.index))
            return
        # Block time: never before the parent's, so the committed time line never goes back;
        # earlier than the clock when a pending item's deadline needs it (``_block_time``).
        # Fixed before the payload, so that ``item_ready`` judges the time the block carries.
        in_chain = self._uncommitted_items(parent)
        timestamp = self._block_time(parent, in_chain)
        payload = self._choose_payload(in_chain, timestamp)
        chain_has_items = bool(in_chain)
        if (
            not payload
            and not chain_has_items
            and not self._hurried(parent)
            and not self._announces_commit_of_items(parent)
            and self.now_ms - self._view_entered_ms < self.config.idle_block_ms
        ):
            # nothing to order: pace empty blocks instead of spinning. Pending items that are
            # not ready count as nothing here, so they do not make an idle leader spin; the
            # first tick at which one is ready gives a non-empty payload and a proposal.
            return
        block = Block(view, parent.height + 1, high_qc, self.index, payload, timestamp)
        proposal = self.safety.sign_proposal(block, tc)
        self._persist()
        self._broadcast(proposal)

    def _hurried(self, parent: Block) -> bool:
        """``hurry``: a block stamped at or after ``from_ms`` is wanted, committed and known
        to every member. Until one is committed here, a leader proposes once its clock
        reaches ``from_ms`` and is past its parent's time (at most one such block per ms of
        block time, so a committee of one, or on a loss-free network, cannot spin). Then the
        proposal that tells the others of the commit of the first such block goes at once,
        as for a commit of items; after it the hurry has no effect until the host sets a new
        time. A block stamped before ``from_ms`` although the clock had reached it (stamped
        at a pending item's deadline, ``_block_time``) does not count: the hurry goes on, and
        its child, whose parent's time is behind the clock, is proposed at once."""
        start = self._hurry_from_ms
        if start is None:
            return False
        if self._blocks[self.committed_hashes[-1]].timestamp < start:
            return self.now_ms >= start and self.now_ms > parent.timestamp
        grandparent = self._blocks.get(parent.parent)
        if grandparent is None or grandparent.view + 1 != parent.view:
            return False
        before = self._blocks.get(grandparent.parent)
        return grandparent.timestamp >= start and before is not None and before.timestamp < start

    def _announces_commit_of_items(self, parent: Block) -> bool:
        """Whether a proposal extending ``parent`` is what tells the other members that a
        block with items committed: it carries the certificate of ``parent``, which commits
        ``parent``'s parent when their views follow each other. This leader formed that
        certificate from votes only it received, so without the proposal the others would
        learn of the commit (and execute the items) only an idle interval later. (A committee
        of one has nobody to tell.)"""
        grandparent = self._blocks.get(parent.parent)
        return (
            self.committee.size > 1
            and grandparent is not None
            and grandparent.height >= 1
            and grandparent.view + 1 == parent.view
            and bool(grandparent.payload)
        )

    def _uncommitted_items(self, parent: Block) -> set[bytes]:
        """The digests of the items in the uncommitted chain ending at ``parent`` (empty: no
        items there wait for a commit). Those are not proposed again."""
        in_chain: set[bytes] = set()
        block: Block | None = parent
        while block is not None and block.height > self.committed_height:
            in_chain.update(keccak256(item) for item in block.payload)
            block = self._blocks.get(block.parent)
        return in_chain

    def _block_time(self, parent: Block, in_chain: set[bytes]) -> int:
        """The time of a block extending ``parent``: ``max(parent's, this member's clock)``,
        or earlier when a pending item not in ``in_chain`` has a deadline ``d`` (by
        ``item_deadline``) with ``parent's time <= d <`` that, and is ready at ``d``: then
        the earliest such ``d``, so that the item still counts (a sealed intent whose epoch
        the clock has left but the chain has not). Items of a later time are then not ready
        for this block and go into the next, stamped at their own deadline or the clock.

        Only the leader's choice of stamp: the voting rule (at least the parent's, at most a
        voter's clock plus the drift) is unchanged, and a faulty leader could always pick
        any stamp in that range. An item whose deadline is before the parent's time cannot
        be helped and changes nothing here (it is proposed as any other; the host refuses
        it). An item not ready at its own deadline could not go in a block stamped then,
        so it moves nothing either. A block so stamped may be full (``max_block_items``)
        before the item: then the next block's parent is stamped at ``d`` and it can still
        take it."""
        timestamp = max(parent.timestamp, self.now_ms)
        if not self._deadlines:
            return timestamp
        ready = self._item_ready
        earliest = timestamp
        for digest, deadline in self._deadlines.items():
            if (
                parent.timestamp <= deadline < earliest
                and digest not in in_chain
                and (ready is None or ready(self._pending[digest], deadline))
            ):
                earliest = deadline
        return earliest

    def _choose_payload(self, in_chain: set[bytes], timestamp: int) -> tuple[bytes, ...]:
        """Pending items not in ``in_chain`` (the uncommitted chain below the block) and
        ready (by ``item_ready``) for a block stamped ``timestamp``.

        Items not ready are skipped, not counted against ``max_block_items`` and not removed:
        they are looked at again at every proposal until one's time makes them ready. Pacing
        sees only the payload chosen here, so an idle leader whose pending items are all not
        ready proposes empty blocks at the idle pace (``idle_block_ms``), as with nothing
        pending, rather than at once (which would spin a committee through empty blocks until
        the items' time comes)."""
        ready = self._item_ready
        payload: list[bytes] = []
        for digest, item in self._pending.items():
            if len(payload) >= self.config.max_block_items:
                break
            if digest not in in_chain and (ready is None or ready(item, timestamp)):
                payload.append(item)
        return tuple(payload)

    # --- Vote ---------------------------------------------------------------------------

    def _process_proposal(self, proposal: Proposal) -> None:
        block = proposal.block
        leader = self.committee.leader(block.view)
        problem = None
        if proposal.sender != leader:
            problem = "proposal not from the view's leader"
        elif (problem := self._validate_block(block)) is None and proposal.tc is not None:
            if proposal.tc.view != block.view - 1:
                problem = "timeout certificate not for the previous view"
            else:
                problem = self._validate_tc(proposal.tc)
        if problem is None and block.justify.view != block.view - 1 and proposal.tc is None:
            problem = "proposal neither follows the previous view nor carries its timeout"
        if problem is not None:
            self.stats.reject(problem)
            return
        self._check_equivocation_proposal(proposal)
        if proposal.tc is not None:
            self._observe_tc(proposal.tc)
        self._observe_qc(block.justify, source=proposal.sender)
        parent = self._blocks.get(block.parent)
        if parent is None:
            if block.view >= self.view:
                waiting = self._waiting_for_parent.setdefault(block.parent, [])
                if len(waiting) < 8:
                    waiting.append(proposal)
                self._request_block(block.parent, proposal.sender)
            return
        if block.height != parent.height + 1:
            self.stats.reject("height does not follow the parent")
            return
        if block.timestamp < parent.timestamp:
            self.stats.reject("block time before its parent's")
            return
        self._store(block)
        if block.view != self.view:
            return  # a late proposal: its certificate counted, but a vote would be useless
        if not self._may_vote_at_time(block):
            # kept, and voted on by on_tick once our clock is within the drift bound (if
            # still in this view): an honest proposer with a slightly fast clock still gets
            # its block certified, a proposer far ahead times out
            if self._early_block is None:
                self._early_block = block
            self.stats.reject("block time ahead of our clock (vote deferred)")
            return
        self._vote(block)

    def _may_vote_at_time(self, block: Block) -> bool:
        """Block time (after CometBFT's BFT time): a member votes only for a block stamped
        no later than its own clock plus ``max_clock_drift_ms``. With f+1 honest voters in
        every certificate, a faulty proposer can push time at most the drift ahead of an
        honest clock, and never backwards (the parent rule in ``_process_proposal``)."""
        return block.timestamp <= self.now_ms + self.config.max_clock_drift_ms

    def _vote(self, block: Block) -> None:
        if block.view != self.view or self._my_timeout is not None:
            return
        try:
            vote = self.safety.sign_vote(block)
        except UnsafeToSign as refusal:
            self.stats.reject(f"unsafe: {refusal.rule}")  # fixed keys: the counts stay bounded
            return
        self._out.append(PersistBlock(block))
        self._persist()
        self._send(self.committee.leader(block.view + 1), vote)

    def _check_equivocation_proposal(self, proposal: Proposal) -> None:
        first = self._first_proposal.setdefault(proposal.block.view, proposal)
        if first.block.hash != proposal.block.hash:
            self._out.append(ReportEquivocation(first, proposal))

    # --- Prepare (votes -> quorum certificate) ------------------------------------------

    def _process_vote(self, vote: Vote) -> None:
        if self.committee.leader(vote.view + 1) != self.index:
            self.stats.reject("vote sent to a member that does not lead the next view")
            return
        if not self.view - 1 <= vote.view <= self.view + FUTURE_VIEW_WINDOW:
            return  # stale or absurdly far ahead: nothing to gain from it
        first = self._first_vote.setdefault((vote.view, vote.sender), vote)
        if first.block_hash != vote.block_hash:
            self._out.append(ReportEquivocation(first, vote))
        if vote.view in self._formed_qc_views:
            return
        votes = self._votes.setdefault((vote.view, vote.block_hash), {})
        votes[vote.sender] = vote.signature
        if len(votes) >= self.committee.quorum:
            qc = QuorumCertificate(vote.view, vote.block_hash, tuple(sorted(votes.items())))
            self._formed_qc_views.add(vote.view)
            self._valid_qcs.add(qc)
            self._observe_qc(qc, source=vote.sender)

    # --- certificates: lock, view, commit ------------------------------------------------

    def _observe_qc(self, qc: QuorumCertificate, source: int) -> None:
        """A verified certificate: raise the lock, try the commit rule, follow the view (in
        that order, so a leader entering the next view knows what is already committed)."""
        if self.safety.observe_qc(qc):
            self._persist()
        if qc.view > GENESIS_VIEW:  # the genesis certificate has nothing to fetch or commit
            if self._blocks.get(qc.block_hash) is None:
                self._request_block(qc.block_hash, source)
            self._commit_candidates.append(qc)
            self._try_commit()
        if qc.view >= self.view:
            self._advance_view(qc.view + 1, by_qc=True)

    def _observe_tc(self, tc: TimeoutCertificate) -> None:
        if self._last_tc is None or tc.view > self._last_tc.view:
            self._last_tc = tc
        if tc.view >= self.view:
            self._advance_view(tc.view + 1, tc=tc)

    def _try_commit(self) -> None:
        """HotStuff-2 commit rule (chained): a block B commits when a certificate names a
        block whose parent is B and whose view is B's view + 1. Then f+1 honest members hold
        a lock on B's certificate, and no conflicting block can be certified later; all of
        B's ancestors commit with it, in height order."""
        remaining = []
        for qc in self._commit_candidates:
            child = self._blocks.get(qc.block_hash)
            if child is None:
                remaining.append(qc)
                continue
            parent = self._blocks.get(child.parent)
            if parent is None:
                remaining.append(qc)
                self._request_block(child.parent, self._next_peer(self.index))
                continue
            if parent.view + 1 != child.view or parent.height <= self.committed_height:
                continue
            if not self._commit_chain(parent, qc):
                remaining.append(qc)
        # bounded: a candidate waits for missing blocks, never forever
        self._commit_candidates = remaining[-64:]

    def _commit_chain(self, target: Block, certificate: QuorumCertificate) -> bool:
        chain = []
        block: Block | None = target
        while block is not None and block.height > self.committed_height:
            chain.append(block)
            block = self._blocks.get(block.parent)
        if block is None:
            self._request_block(chain[-1].parent, self._next_peer(self.index))
            return False
        if block.hash != self.committed_hashes[-1]:
            raise SafetyViolation(
                f"member {self.index}: certified block at height {target.height} does not "
                f"extend the committed block at height {self.committed_height}"
            )
        chain.reverse()
        for committed in chain:
            self.committed_hashes.append(committed.hash)
            for item in committed.payload:
                digest = keccak256(item)
                self._committed_items.add(digest)
                self._pending.pop(digest, None)
                self._deadlines.pop(digest, None)
        self._out.append(Commit(tuple(chain), certificate))
        self._prune_forks()
        return True

    def _prune_forks(self) -> None:
        """Forget blocks that can never commit: not committed, at or below the committed
        height (committed blocks stay, peers catching up fetch them)."""
        height = self.committed_height
        for block_hash in [h for h, b in self._tentative.items() if b.height <= height]:
            del self._tentative[block_hash]
            if self.committed_hashes[self._blocks[block_hash].height] != block_hash:
                del self._blocks[block_hash]

    # --- view change ----------------------------------------------------------------------

    def _advance_view(
        self, view: int, *, tc: TimeoutCertificate | None = None, by_qc: bool = False
    ) -> None:
        """Enter ``view`` (> the current one): on a certificate of an earlier view, or to join
        f+1 members already timing out in ``view``."""
        if view <= self.view:
            return
        if by_qc:
            self._consecutive_timeouts = 0  # a certificate: the committee is making progress
        self.view = view
        self._entered_by_tc = tc
        self._view_entered_ms = self.now_ms
        self._deadline_ms = self.now_ms + self._timeout_ms()
        self._my_timeout = None
        self._early_block = None
        for key in [key for key in self._votes if key[0] < view - 1]:
            del self._votes[key]
        for old in [v for v in self._timeouts if v < view - 1]:
            del self._timeouts[old]
        for old in [v for v in self._locks_for_view if v < view]:
            del self._locks_for_view[old]
        for stale in [key for key in self._first_vote if key[0] < view - 2]:
            del self._first_vote[stale]
        for old in [v for v in self._first_proposal if v < view - 2]:
            del self._first_proposal[old]
        self._formed_qc_views = {v for v in self._formed_qc_views if v >= view - 1}
        for parent in [h for h, ps in self._waiting_for_parent.items() if ps[-1].block.view < view]:
            del self._waiting_for_parent[parent]  # too late to vote; fetched again if needed
        if tc is not None:
            # HotStuff-2 view change: give the new leader this member's lock
            leader = self.committee.leader(view)
            if leader == self.index:
                self._locks_for_view.setdefault(view, {})[self.index] = self.high_qc
            else:
                self._send(leader, self._sign(NewView(view, self.high_qc, self.index)))
        self._try_propose()

    def _local_timeout(self) -> None:
        """The view's timer fired: give up the view (no more votes in it) and say so."""
        self._consecutive_timeouts += 1
        message = self.safety.sign_timeout(self.view, self.high_qc, self._last_tc)
        self._persist()
        self._my_timeout = message
        self._timeout_sent_ms = self.now_ms
        self._broadcast(message)

    def _process_timeout(self, message: TimeoutMessage) -> None:
        problem = self._validate_qc(message.high_qc)
        if problem is None and message.last_tc is not None:
            problem = self._validate_tc(message.last_tc)
        if problem is not None:
            self.stats.reject(problem)
            return
        if message.last_tc is not None:
            self._observe_tc(message.last_tc)
        self._observe_qc(message.high_qc, source=message.sender)
        view = message.view
        if not self.view - 1 <= view <= self.view + FUTURE_VIEW_WINDOW:
            return
        self._locks_for_view.setdefault(view + 1, {})[message.sender] = message.high_qc
        senders = self._timeouts.setdefault(view, {})
        senders[message.sender] = message.signature
        # f+1 timeouts include an honest one: join it, so a TC forms even if timers drift
        if (
            view >= self.view
            and len(senders) >= self.committee.max_faulty + 1
            and not (view == self.view and self._my_timeout is not None)
        ):
            self._advance_view(view)
            if self._my_timeout is None:
                self._local_timeout()
        if len(senders) >= self.committee.quorum and view >= self.view:
            tc = TimeoutCertificate(view, tuple(sorted(senders.items())))
            self._valid_tcs.add(tc)
            self._observe_tc(tc)
        else:
            self._try_propose()

    def _process_new_view(self, message: NewView) -> None:
        problem = self._validate_qc(message.high_qc)
        if problem is not None:
            self.stats.reject(problem)
            return
        self._observe_qc(message.high_qc, source=message.sender)
        if (
            self.committee.leader(message.view) == self.index
            and self.view <= message.view <= self.view + FUTURE_VIEW_WINDOW
        ):
            self._locks_for_view.setdefault(message.view, {})[message.sender] = message.high_qc
            self._try_propose()

    # --- catch-up -------------------------------------------------------------------------

    def _request_block(self, block_hash: bytes, peer: int, retry: bool = False) -> None:
        if self.committee.size == 1 or (block_hash in self._fetching and not retry):
            return
        if peer == self.index:
            peer = self._next_peer(peer)
        previous = self._fetching.get(block_hash)
        attempts = previous.attempts + 1 if previous is not None else 1
        self._fetching[block_hash] = _Fetch(self.now_ms, peer, attempts)
        request = self._sign(BlockRequest(block_hash, self.committed_height, self.index))
        self._send(peer, request)

    def _process_block_request(self, request: BlockRequest) -> None:
        blocks: list[Block] = []
        block = self._blocks.get(request.block_hash)
        while (
            block is not None
            and block.height > request.above_height
            and len(blocks) < self.config.max_fetch_blocks
        ):
            blocks.append(block)
            block = self._blocks.get(block.parent)
        if blocks:
            self._send(request.sender, self._sign(BlockResponse(tuple(blocks), self.index)))

    def _process_block_response(self, response: BlockResponse) -> None:
        """Blocks are authenticated by hash: the first must be one this member asked for
        (named by a verified certificate), each next one the parent of the one before."""
        blocks = response.blocks
        if not blocks or blocks[0].hash not in self._fetching:
            self.stats.reject("unrequested blocks")
            return
        for upper, lower in itertools.pairwise(blocks):
            if (
                lower.hash != upper.parent
                or lower.height + 1 != upper.height
                or lower.timestamp > upper.timestamp
            ):
                self.stats.reject("blocks do not form a chain")
                return
        for block in blocks:
            problem = self._validate_block(block)
            if problem is not None:
                self.stats.reject(f"fetched block: {problem}")
                return
        for block in blocks:
            self._fetching.pop(block.hash, None)
            self._store(block)
        lowest = blocks[-1]
        if lowest.parent not in self._blocks and lowest.height - 1 > self.committed_height:
            self._request_block(lowest.parent, response.sender)
        for block in reversed(blocks):
            for proposal in self._waiting_for_parent.pop(block.hash, []):
                self._process_proposal(proposal)
        self._try_commit()
        self._try_propose()

    # --- items --------------------------------------------------------------------------

    def _store(self, block: Block) -> None:
        if block.hash not in self._blocks:
            self._blocks[block.hash] = block
            self._tentative[block.hash] = block

    def _add_pending(self, item: bytes) -> bool:
        digest = keccak256(item)
        if digest in self._committed_items or digest in self._pending:
            return False
        self._pending[digest] = item
        if self._item_deadline is not None:
            deadline = self._item_deadline(item)
            if deadline is not None:
                self._deadlines[digest] = deadline
        return True

    def _process_forward(self, message: ForwardItem) -> None:
        items = message.items
        if len(items) > self.config.max_block_items or any(
            not item or len(item) > self.config.max_item_bytes for item in items
        ):
            self.stats.reject("item size out of range")
            return
        added = False
        for item in items:
            if len(self._pending) >= self.config.max_pending_items:
                break
            added = self._add_pending(item) or added
        if added:
            self._try_propose()
