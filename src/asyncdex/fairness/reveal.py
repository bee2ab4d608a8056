"""Where sealed intents open in the committed log: epochs, their closing blocks, their keys.

A member's shares arrive when the network delivers them, which differs from member to
member, so "open when the key is ready" would execute intents at different points of each
member's log. The point is therefore fixed by the committed log alone, as Aptos fixes it for
its encrypted transactions (the block's key is awaited before the block executes): epoch
``e``'s sealed intents open right before the first committed block stamped past ``e`` (its
*closing block*), in their certified order, on every member. The key of an epoch is unique
(threshold BLS: any ``t`` valid shares interpolate to the same ``s * H(id)``), so waiting for
it changes when a member executes, never what.

Invariants (for :class:`SealedLog`, a pure function of the committed blocks and the epochs'
keys):

- A sealed intent counts only in a block whose timestamp lies in its target epoch; in any
  other block it is rejected when the block executes (``epoch_closed`` for an earlier epoch,
  ``epoch_not_open`` for a later one). Block timestamps never decrease, so once a block lies
  past epoch ``e``, no later block adds to ``e``: the epoch is *closed*, and only then does a
  member release its share (a committed block past it). No share, and so no key, exists for
  an epoch some certified block could still extend.
- Executing a block first opens every epoch it closes (:meth:`SealedLog.closes`), oldest
  first, each epoch's intents in (height, position) order, with that epoch's key, which the
  caller must hold: :meth:`SealedLog.apply_block` refuses to run without it
  (:class:`MissingEpochKey`) rather than skip anything. Then the block's own sealed intents
  join their epoch. Every sealed intent of a committed block therefore ends opened or rejected
  with a reason, at a point of the log every member agrees on; none is dropped.
- Keys given to :meth:`SealedLog.apply_block` are trusted: they come from
  :class:`KeyAssembler` (interpolated from shares each checked by its pairing equation) or
  from the member's own key store, written after that.

:class:`KeyAssembler` is the member's local side: it checks shares as they arrive (refusing
and attributing faulty ones) and interpolates the key once ``t`` are valid. It is not part
of the replicated state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
)
from asyncdex.signing.eip712 import Domain, SignatureError


class SealedRejection(Enum):
    """Why a sealed intent in a committed block was not opened (besides ``Rejection``)."""

    MALFORMED = "malformed_sealed_intent"
    EPOCH_CLOSED = "epoch_closed"
    EPOCH_NOT_OPEN = "epoch_not_open"


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
    order the engine takes them (the epochs the block closes first, by epoch, then this
    block's refusals)."""

    ordered: tuple[SealedPlace, ...]
    outcomes: tuple[SealedOutcome, ...]
    revealed_epochs: tuple[int, ...]


class MissingEpochKey(LookupError):
    """A block closes an epoch whose key the caller did not give: it must not execute yet."""

    def __init__(self, epochs: Sequence[int]) -> None:
        self.epochs = tuple(epochs)
        super().__init__(f"the key of epoch(s) {', '.join(map(str, epochs))} is needed first")


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
    last_timestamp_ms: int = -1
    _pending: dict[int, list[_Pending]] = field(default_factory=dict)
    _venue: bytes = b""

    def __post_init__(self) -> None:
        if self.epoch_ms <= 0:
            raise ValueError("epoch_ms must be positive")
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

    def waiting(self, epoch: int) -> int:
        return len(self._pending.get(epoch, ()))

    def closes(self, timestamp_ms: int) -> tuple[int, ...]:
        """The epochs with intents waiting that a block stamped ``timestamp_ms`` closes (and
        so opens, before its own items), oldest first: the keys it needs."""
        block_epoch = epoch_of(timestamp_ms, self.epoch_ms)
        return tuple(e for e in sorted(self._pending) if e < block_epoch)

    # ------------------------------------------------------------------ execution

    def apply_block(
        self,
        height: int,
        timestamp_ms: int,
        sealed: Sequence[bytes],
        keys: Mapping[int, EpochKey] | None = None,
    ) -> BlockEffects:
        """Execute one committed block's sealed part: open the epochs it closes with their
        ``keys`` (raises :class:`MissingEpochKey`, changing nothing, if one is absent), then
        record or refuse its own sealed envelopes."""
        if timestamp_ms < self.last_timestamp_ms:
            raise ValueError("committed block timestamps never decrease")
        closing = self.closes(timestamp_ms)
        keys = keys or {}
        missing = [epoch for epoch in closing if epoch not in keys]
        if missing:
            raise MissingEpochKey(missing)
        self.last_timestamp_ms = timestamp_ms
        block_epoch = epoch_of(timestamp_ms, self.epoch_ms)
        outcomes: list[SealedOutcome] = []
        for epoch in closing:
            outcomes.extend(self._reveal(keys[epoch]))
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
        return BlockEffects(tuple(ordered), tuple(outcomes), closing)

    def forget_epoch(self, epoch: int) -> tuple[bytes, ...]:
        """Drop an epoch's waiting intents without opening them (their sealed ids): only for
        a member rebuilding its log from blocks whose opened intents its journal holds
        already, when its key store lost that epoch's key."""
        return tuple(p.sealed_id for p in self._pending.pop(epoch, ()))

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
        # epoch -> member -> (its checked share's point, its bytes)
        self._valid: dict[int, dict[int, tuple[G2Point, bytes]]] = {}
        self._keys: dict[int, EpochKey] = {}

    def add(self, share: DecryptionShare, *, own: bool = False) -> EpochKey | None:
        """Take one share; return the epoch's key when this share completes it.

        ``own``: the member's own share, made from a key share that was matched to its
        public share when loaded, so right by construction: it is not checked again (a
        pairing saved at the moment the key is waited for)."""
        if share.epoch in self._keys:
            return None
        checked = self._valid.get(share.epoch, {}).get(share.member)
        if checked is not None and checked[1] == share.share:
            # the very share already checked (a resend answering a request, say): no
            # pairing spent on it again; a different one is checked, and refused as a fault
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
        valid.setdefault(share.member, (point, share.share))
        if len(valid) < self.committee.threshold:
            return None
        used = sorted(valid)[: self.committee.threshold]
        key_point = g2_multiexp([valid[i][0] for i in used], lagrange_at_zero(used))
        key = EpochKey(share.epoch, encode_g2(key_point))
        self._keys[share.epoch] = key
        del self._valid[share.epoch]
        return key

    def add_all(self, shares: Iterable[DecryptionShare]) -> list[EpochKey]:
        return [key for share in shares if (key := self.add(share)) is not None]

    def key(self, epoch: int) -> EpochKey | None:
        return self._keys.get(epoch)

    def forget(self, epoch: int) -> None:
        """Drop an epoch once its intents are opened (its key is kept by the caller)."""
        self._keys.pop(epoch, None)
        self._valid.pop(epoch, None)
