"""Safety rules: the only code that signs votes, timeouts and proposals for a member.

Invariants (each kept by one check below, and persisted before any signature leaves):
- Vote once per view, in increasing views (HotStuff-2, "Vote": a replica votes for the first
  proposal of a view only). With quorum intersection this allows at most one certified block
  per view, whatever f Byzantine members do.
- Vote only for a block whose justifying certificate ranks at least as high as the lock
  (HotStuff-2, "Vote" / locking: the lock is the highest certificate seen). This is what
  keeps a committed block in every later certified chain.
- A timeout in view v is a promise not to vote in v any more (it raises the last voted view),
  so a member never helps certify a block in a view it has already given up.
- Propose at most once per view, so an honest leader cannot equivocate even across a restart.

Callers pass only certificates they have verified (``Replica`` checks every signature before
anything reaches here). The state is small and persisted by the caller on every change
(``PersistSafety`` precedes the signed message in the replica's actions); a restarted member
that loses it could vote twice, so it is the one piece of state a member may not lose.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import Signer
from asyncdex.consensus.messages import (
    GENESIS_QC,
    Block,
    Proposal,
    QuorumCertificate,
    TimeoutCertificate,
    TimeoutMessage,
    Vote,
)
from asyncdex.types.packing import pack, unpack


class UnsafeToSign(Exception):
    """Signing this would break a safety rule; ``rule`` names it (a fixed string, fit for
    counting), the message gives the views."""

    def __init__(self, rule: str, detail: str | None = None) -> None:
        super().__init__(detail or rule)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class SafetyState:
    last_voted_view: int = 0
    last_proposed_view: int = 0
    locked_qc: QuorumCertificate = GENESIS_QC

    def to_bytes(self) -> bytes:
        qc = self.locked_qc
        return pack(
            [
                self.last_voted_view,
                self.last_proposed_view,
                [qc.view, qc.block_hash, [list(pair) for pair in qc.signatures]],
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SafetyState:
        voted, proposed, (view, block_hash, signatures) = unpack(data)
        qc = QuorumCertificate(view, block_hash, tuple((i, s) for i, s in signatures))
        return cls(voted, proposed, qc)


class SafetyRules:
    def __init__(
        self, committee: Committee, index: int, signer: Signer, state: SafetyState | None = None
    ) -> None:
        if committee.members[index] != signer.address:
            raise ValueError(f"the signer is not member {index} of the committee")
        self._domain = committee.domain
        self._index = index
        self._signer = signer
        self.state = state if state is not None else SafetyState()

    @property
    def lock(self) -> QuorumCertificate:
        return self.state.locked_qc

    def observe_qc(self, qc: QuorumCertificate) -> bool:
        """Lock on ``qc`` if it is the highest certificate seen; True when the lock moved."""
        if qc.view <= self.state.locked_qc.view:
            return False
        self.state = replace(self.state, locked_qc=qc)
        return True

    def sign_vote(self, block: Block) -> Vote:
        state = self.state
        # HotStuff-2 "Vote": once per view, views increasing -> one certified block per view
        if block.view <= state.last_voted_view:
            raise UnsafeToSign(
                "already voted or timed out in the view",
                f"already voted or timed out in view {state.last_voted_view} >= {block.view}",
            )
        # HotStuff-2 locking: never vote against the lock -> committed blocks stay in the chain
        if block.justify.view < state.locked_qc.view:
            raise UnsafeToSign(
                "block justified by view below the lock",
                f"block justified by view {block.justify.view}, below the lock at view "
                f"{state.locked_qc.view}",
            )
        locked = block.justify if block.justify.view > state.locked_qc.view else state.locked_qc
        self.state = replace(state, last_voted_view=block.view, locked_qc=locked)
        vote = Vote(block.view, block.hash, self._index)
        return replace(vote, signature=self._signer.sign(vote.signing_digest(self._domain)))

    def sign_timeout(
        self, view: int, high_qc: QuorumCertificate, last_tc: TimeoutCertificate | None
    ) -> TimeoutMessage:
        # a timeout ends this member's voting in the view (no vote after giving it up)
        if view > self.state.last_voted_view:
            self.state = replace(self.state, last_voted_view=view)
        message = TimeoutMessage(view, high_qc, last_tc, self._index)
        return replace(message, signature=self._signer.sign(message.signing_digest(self._domain)))

    def sign_proposal(self, block: Block, tc: TimeoutCertificate | None) -> Proposal:
        # one proposal per view: an honest leader never equivocates, even after a restart
        if block.view <= self.state.last_proposed_view:
            raise UnsafeToSign(
                "already proposed in the view",
                f"already proposed in view {self.state.last_proposed_view}",
            )
        self.state = replace(self.state, last_proposed_view=block.view)
        proposal = Proposal(block, tc, self._index)
        return replace(proposal, signature=self._signer.sign(proposal.signing_digest(self._domain)))
