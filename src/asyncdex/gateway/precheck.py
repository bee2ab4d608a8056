"""Refuse, before sequencing, signed intents the engine is certain to refuse for authorization.

Invariants:
- Advisory and one-sided: the engine's ``check_authorization`` stays the authority, applied
  when the record executes. The precheck runs the very same function against the engine's
  current state, so a refusal here names the reason the engine would give, and it refuses only
  what the engine would also refuse later: every condition it relies on can only get worse
  with time (deadlines pass, agents expire, nonces are spent, the kept window moves up).
- Intents in flight (sequenced, not yet applied) count: their nonces are spent for the next
  check, so a replayed intent is refused before it reaches the journal even when its twin is
  still in the pipeline; and while an agent approval is in flight, intents from that agent
  are let through (the engine decides once the approval is applied).
- It never changes engine state; the node calls ``release`` for each record the engine applied
  (or for each submission the sequencer did not take).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asyncdex.engine.reader import EngineLike
from asyncdex.messages.commands import ApproveAgent, Signed
from asyncdex.messages.reasons import Reject
from asyncdex.sequencer.sequencer import Submission


class PrecheckRefused(Exception):
    """An intent the engine would refuse; ``index`` is its position in the request."""

    def __init__(self, index: int, reason: Reject) -> None:
        super().__init__(f"intent {index}: {reason.name.lower().replace('_', ' ')}")
        self.index = index
        self.reason = reason

    @property
    def code(self) -> str:
        return self.reason.name.lower()


class Precheck:
    def __init__(self, engine: EngineLike) -> None:
        self.engine = engine
        self._nonces: dict[bytes, set[int]] = {}  # signer -> nonces in flight
        self._approvals: dict[bytes, int] = {}  # agent -> approvals in flight

    def check(self, submissions: Sequence[Submission], now_ms: int) -> None:
        """Raise ``PrecheckRefused`` for the first intent the engine would refuse; otherwise
        count every intent of the request as in flight."""
        seen: set[tuple[bytes, int]] = set()
        approving: set[bytes] = set()  # agents approved earlier in this same request
        for index, submission in enumerate(submissions):
            command = submission.command
            if type(command) is not Signed:
                continue
            signer, nonce, expires_after, inner = command
            if nonce in self._nonces.get(signer, ()) or (signer, nonce) in seen:
                raise PrecheckRefused(index, Reject.NONCE_ALREADY_USED)
            seen.add((signer, nonce))
            reason = self.engine.check_authorization(signer, nonce, expires_after, inner, now_ms)
            if reason in (Reject.UNKNOWN_AGENT, Reject.AGENT_EXPIRED) and (
                signer in approving or self._approvals.get(signer)
            ):
                reason = None  # an approval of this agent is in flight: the engine decides
            if reason is not None:
                raise PrecheckRefused(index, reason)
            if type(inner) is ApproveAgent:
                approving.add(inner.agent)
        for submission in submissions:
            self._hold(submission.command)

    def _hold(self, command: object) -> None:
        if type(command) is Signed:
            signer, nonce, _, inner = command
            self._nonces.setdefault(signer, set()).add(nonce)
            if type(inner) is ApproveAgent:
                self._approvals[inner.agent] = self._approvals.get(inner.agent, 0) + 1

    def release(self, commands: Iterable[object]) -> None:
        """The engine applied (or the sequencer refused) these commands: no longer in flight."""
        for command in commands:
            if type(command) is not Signed:
                continue
            signer, nonce, _, inner = command
            held = self._nonces.get(signer)
            if held is not None:
                held.discard(nonce)
                if not held:
                    del self._nonces[signer]
            if type(inner) is ApproveAgent:
                left = self._approvals.get(inner.agent, 0) - 1
                if left > 0:
                    self._approvals[inner.agent] = left
                else:
                    self._approvals.pop(inner.agent, None)

    @property
    def in_flight(self) -> int:
        return sum(len(nonces) for nonces in self._nonces.values())
