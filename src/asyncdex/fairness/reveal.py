"""Where sealed intents open in the committed log: epochs, releases, keys carried in blocks.

A member's shares arrive when the network delivers them, which differs from member to
member; opening intents "when the key is ready" would execute them at different points of
each member's log. So the epoch key itself travels in a block, as Aptos does with its
block's key: the leader includes the first valid key it has assembled (checked with
:meth:`SealedLog.check_block`), and executing that block opens the epoch's sealed intents, in
their certified order, at that point of the log on every member.

Invariants (for :class:`SealedLog`, a pure function of the committed blocks):

- A sealed intent counts only in a block whose timestamp lies in its target epoch; in any
  other block it is rejected when the block executes (``epoch_closed`` for an earlier epoch,
  ``epoch_not_open`` for a later one). Block timestamps never decrease, so once a block lies
  past epoch ``e``, no later block adds to ``e``: the epoch is *closed*, and only then
  does a member release its share (:meth:`SealedLog.epochs_to_release`). No share, and so no
  key, exists for an epoch some certified block could still extend.
- A key in a block opens its epoch only if the epoch is closed, has sealed intents waiting,
  has no other key earlier in the block, and the key verifies against the committee key
  (``e(g1, key) = e(P, H(id))``); executing the block then opens the epoch's intents in
  (height, position) order. Any other key is skipped and reported, identically on every
  member: the consensus core certifies payloads without judging them, so a faulty leader's
  bad key must not split the members.
- When a block's timestamp reaches the end of epoch ``e`` plus ``reveal_timeout_ms`` and no
  key of ``e`` has been in a block, that block rejects ``e``'s sealed intents as
  ``key_unavailable``. Every sealed intent in a committed block therefore ends opened or
  rejected with a reason, decided by block timestamps, never by a member's clock; none is
  dropped. With at most ``f`` faulty members this only happens if blocks commit while fewer
  than ``f + 1`` members release, which the committee's quorum of ``2f + 1`` rules out.

:class:`KeyAssembler` is the member's local side: it checks shares as they arrive (refusing
and attributing faulty ones) and interpolates the key once ``t`` are valid. It is not part
of the replicated state; only the key it produces, once in a block, is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from py_arkworks_bls12381 import G2Point

from asyncdex.fairness.bls import decode_g2, encode_g2, g2_multiexp
from asyncdex.fairness.sealing import (
    MalformedSealedIntent,
    Opened,
    Rejected,
    SealedIntent,
    Sessions,
    decode_sealed_intent,
    envelope_signer,
    open_sealed_intent,
    sealed_intent_id,
    venue_id,
)
from asyncdex.fairness.threshold import (
    CommitteeKey,
    DecryptionShare,
    EpochKey,
    ShareRefused,
    epoch_of,
    lagrange_at_zero,
    verify_decryption_share,
    verify_epoch_key,
)
from asyncdex.signing.eip712 import Domain, SignatureError


class SealedRejection(Enum):
    """Why a sealed intent in a committed block was not opened (besides ``Rejection``)."""

    MALFORMED = "malformed_sealed_intent"
    EPOCH_CLOSED = "epoch_closed"
    EPOCH_NOT_OPEN = "epoch_not_open"
    KEY_UNAVAILABLE = "key_unavailable"


@dataclass(frozen=True, slots=True)
class SealedOutcome:
    """What became of one sealed intent: ``Opened``, ``Rejected`` (bad contents), or a
    :class:`SealedRejection`; ``height`` and ``index`` are its place in the log."""

    sealed_id: bytes
    height: int
    index: int
    epoch: int | None  # None when the envelope did not even decode
    result: Opened | Rejected | SealedRejection


@dataclass(frozen=True, slots=True)
class SealedPlace:
    """A sealed intent ordered in a certified block, still sealed, waiting for ``epoch``."""

    sealed_id: bytes
    height: int
    index: int
    epoch: int
    signer: bytes  # from the envelope signature (gateway-checked; ``b""`` if it fails)


@dataclass(frozen=True, slots=True)
class BlockEffects:
    """Executing one block: intents newly ordered (still sealed), and final outcomes in the
    order the engine takes them (revealed epochs first, by epoch, then expired ones, then
    this block's refusals)."""

    ordered: tuple[SealedPlace, ...]
    outcomes: tuple[SealedOutcome, ...]
    revealed_epochs: tuple[int, ...]
    expired_epochs: tuple[int, ...]
    refused_keys: tuple[tuple[int, str], ...] = ()  # (epoch, why) of keys a faulty leader put


class InvalidBlockKey(ValueError):
    """A block carries a key no member may accept; the block must not be voted for."""


@dataclass(slots=True)
class _Pending:
    sealed_id: bytes
    height: int
    index: int
    envelope: SealedIntent


@dataclass(slots=True)
class SealedLog:
    """The sealed intents of the committed log, per epoch, until each is opened or rejected."""

    domain: Domain
    committee: CommitteeKey
    epoch_ms: int
    reveal_timeout_ms: int
    last_timestamp_ms: int = -1
    _pending: dict[int, list[_Pending]] = field(default_factory=dict)
    _venue: bytes = b""

    def __post_init__(self) -> None:
        if self.epoch_ms <= 0 or self.reveal_timeout_ms < 0:
            raise ValueError("epoch_ms must be positive and reveal_timeout_ms non-negative")
        self._venue = venue_id(self.domain)

    # ------------------------------------------------------------------ queries

    @property
    def venue(self) -> bytes:
        """The venue id epoch identities are made with."""
        return self._venue

    @property
    def current_epoch(self) -> int | None:
        """The epoch of the last executed block (None before the first)."""
        if self.last_timestamp_ms < 0:
            return None
        return epoch_of(self.last_timestamp_ms, self.epoch_ms)

    def pending_epochs(self) -> tuple[int, ...]:
        """Epochs with sealed intents waiting for their key, oldest first."""
        return tuple(sorted(self._pending))

    def epochs_to_release(self) -> tuple[int, ...]:
        """Closed epochs with intents waiting: the epochs a member now releases shares for."""
        if self.last_timestamp_ms < 0:
            return ()
        current = epoch_of(self.last_timestamp_ms, self.epoch_ms)
        return tuple(e for e in sorted(self._pending) if e < current)

    def waiting(self, epoch: int) -> int:
        return len(self._pending.get(epoch, ()))

    # ------------------------------------------------------------------ validation

    def check_block(self, timestamp_ms: int, keys: Sequence[EpochKey]) -> None:
        """Refuse (``InvalidBlockKey``) keys a leader must not propose (and a host that
        validates payloads before voting must not vote for).

        A key is acceptable for an epoch that lies before the block's epoch (closed by it at
        the latest), has intents waiting, appears once in the block, and verifies.
        """
        if timestamp_ms < self.last_timestamp_ms:
            raise InvalidBlockKey("block timestamp before its parent's")
        block_epoch = epoch_of(timestamp_ms, self.epoch_ms)
        seen: set[int] = set()
        for key in keys:
            fault = self._key_fault(block_epoch, key, seen)
            if fault is not None:
                raise InvalidBlockKey(fault)
            seen.add(key.epoch)

    def _key_fault(self, block_epoch: int, key: EpochKey, seen: set[int]) -> str | None:
        if key.epoch in seen:
            return f"two keys for epoch {key.epoch}"
        if key.epoch >= block_epoch:
            return f"key of epoch {key.epoch}, which is not closed"
        if key.epoch not in self._pending:
            return f"key of epoch {key.epoch}, which has nothing waiting"
        if not verify_epoch_key(self.committee, self._venue, key):
            return f"key of epoch {key.epoch} fails e(g1, key) = e(P, Q)"
        return None

    # ------------------------------------------------------------------ execution

    def apply_block(
        self,
        height: int,
        timestamp_ms: int,
        sealed: Sequence[bytes],
        keys: Sequence[EpochKey] = (),
    ) -> BlockEffects:
        """Execute one committed block's sealed part.

        The consensus core certifies payloads without judging them, so a faulty leader's
        block may carry keys that :meth:`check_block` refuses: such a key is skipped, the
        same way on every member, and reported in ``refused_keys``; it opens nothing.
        """
        if timestamp_ms < self.last_timestamp_ms:
            raise ValueError("committed block timestamps never decrease")
        self.last_timestamp_ms = timestamp_ms
        block_epoch = epoch_of(timestamp_ms, self.epoch_ms)
        outcomes: list[SealedOutcome] = []
        revealed = []
        refused_keys = []
        seen: set[int] = set()
        for key in keys:
            fault = self._key_fault(block_epoch, key, seen)
            if fault is not None:
                refused_keys.append((key.epoch, fault))
                continue
            seen.add(key.epoch)
            outcomes.extend(self._reveal(key))
            revealed.append(key.epoch)
        expired = []
        for epoch in sorted(self._pending):
            if timestamp_ms >= (epoch + 1) * self.epoch_ms + self.reveal_timeout_ms:
                expired.append(epoch)
                outcomes.extend(
                    SealedOutcome(
                        p.sealed_id, p.height, p.index, epoch, SealedRejection.KEY_UNAVAILABLE
                    )
                    for p in self._pending.pop(epoch)
                )
        ordered = []
        for index, data in enumerate(sealed):
            sealed_id = sealed_intent_id(data)
            try:
                envelope = decode_sealed_intent(data)
            except MalformedSealedIntent:
                outcomes.append(
                    SealedOutcome(sealed_id, height, index, None, SealedRejection.MALFORMED)
                )
                continue
            target = envelope.header.epoch
            if target != block_epoch:
                reason = (
                    SealedRejection.EPOCH_CLOSED
                    if target < block_epoch
                    else SealedRejection.EPOCH_NOT_OPEN
                )
                outcomes.append(SealedOutcome(sealed_id, height, index, target, reason))
                continue
            self._pending.setdefault(target, []).append(
                _Pending(sealed_id, height, index, envelope)
            )
            try:
                signer = envelope_signer(self._venue, envelope)
            except SignatureError:
                signer = b""  # opening will reject it as bad_envelope_signature
            ordered.append(SealedPlace(sealed_id, height, index, target, signer))
        return BlockEffects(
            tuple(ordered), tuple(outcomes), tuple(revealed), tuple(expired), tuple(refused_keys)
        )

    def _reveal(self, key: EpochKey) -> list[SealedOutcome]:
        sessions: Sessions = {}
        return [
            SealedOutcome(
                p.sealed_id,
                p.height,
                p.index,
                key.epoch,
                open_sealed_intent(self.domain, key, p.envelope, sessions),
            )
            for p in self._pending.pop(key.epoch)
        ]


# ---------------------------------------------------------------------------------------------
# The member's local side


class KeyAssembler:
    """Collects decryption shares per epoch; the first ``t`` valid ones give the key.

    Each share is checked once, on arrival (one pairing equation); faulty ones are kept in
    :attr:`faults` with their member, as evidence.
    """

    def __init__(self, committee: CommitteeKey, domain: Domain) -> None:
        self.committee = committee
        self.venue = venue_id(domain)
        self.faults: list[ShareRefused] = []
        self._valid: dict[int, dict[int, G2Point]] = {}
        self._keys: dict[int, EpochKey] = {}

    def add(self, share: DecryptionShare, *, own: bool = False) -> EpochKey | None:
        """Take one share; return the epoch's key when this share completes it.

        ``own``: the member's own share, made from a key share that was matched to its
        public share when loaded, so right by construction: it is not checked again (a
        pairing saved at the moment the key is waited for)."""
        if share.epoch in self._keys:
            return None
        try:
            if own:
                point = decode_g2(share.share, "share")
            else:
                point = verify_decryption_share(self.committee, self.venue, share.epoch, share)
        except ShareRefused as exc:
            self.faults.append(exc)
            return None
        valid = self._valid.setdefault(share.epoch, {})
        valid.setdefault(share.member, point)
        if len(valid) < self.committee.threshold:
            return None
        used = sorted(valid)[: self.committee.threshold]
        key_point = g2_multiexp([valid[i] for i in used], lagrange_at_zero(used))
        key = EpochKey(share.epoch, encode_g2(key_point))
        self._keys[share.epoch] = key
        del self._valid[share.epoch]
        return key

    def add_all(self, shares: Iterable[DecryptionShare]) -> list[EpochKey]:
        return [key for share in shares if (key := self.add(share)) is not None]

    def key(self, epoch: int) -> EpochKey | None:
        return self._keys.get(epoch)

    def forget(self, epoch: int) -> None:
        """Drop an epoch once its key is in a committed block (or it expired)."""
        self._keys.pop(epoch, None)
        self._valid.pop(epoch, None)
