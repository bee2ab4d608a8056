"""Sealed intents in a committee member: their block items, shares over the links, the key
back into a block (docs/fairness.md, "Running it in the committee").

Invariants:
- Two item kinds beside ``asyncdex.committee.items``' (1 to 3): ``KIND_SEALED`` (a sealed
  envelope, as ``POST /v1/sealed`` took it) and ``KIND_EPOCH_KEY`` (``EpochKey.encode()``).
  :meth:`SealedReveal.execute_block` is a pure function of the committed blocks so far
  (through ``asyncdex.fairness.reveal.SealedLog``): for each block it returns the signed
  intents the block reveals, as ``KIND_INTENT`` items in certified order, which the executor
  journals right after the block's marker, before the block's own items. Every member thus
  journals the same records at the same seqs; replay of the committed log is replay of the
  journal. A restarted member rebuilds the log from its committed blocks (:meth:`rebuild`).
- Releasing is local and follows commits: as soon as a block is committed (before it is
  executed: :meth:`SealedReveal.on_committed`), a member sends its share for every epoch that
  holds sealed intents and that block closed, once, on ``CHANNEL_FAIRNESS``; after a restart,
  :meth:`SealedReveal.after_commit` sends them for the closed epochs of the rebuilt log
  (``SealedLog.epochs_to_release``). Never for an epoch a certified block could still extend:
  only a committed block past it closes an epoch.
- Pacing (a liveness aid, no safety rule): while a committed block holds sealed intents of an
  epoch no committed block has closed yet, :meth:`SealedReveal.closing_block_due_ms` is that
  epoch's end, from which the member's leader proposes without waiting for the idle timer, so
  the closing block comes at the boundary and commits at once.
- A share frame is attributed to the member its link authenticated (consensus index ``i``
  holds DKG share ``i + 1``): one claiming another member's share index is an invalid frame
  (the link closes). A wrong share is kept as evidence
  (``KeyAssembler.faults``). The first ``t`` valid shares give the key, which the member
  submits as a ``KIND_EPOCH_KEY`` item, so whichever leader comes next puts it in a block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from asyncdex.committee.items import KIND_INTENT
from asyncdex.committee.transport import InvalidFrame
from asyncdex.fairness.bls import encode_g1, g1_generator, g1_mul
from asyncdex.fairness.reveal import BlockEffects, KeyAssembler, SealedLog
from asyncdex.fairness.sealing import (
    MalformedSealedIntent,
    Opened,
    Rejected,
    decode_sealed_intent,
)
from asyncdex.fairness.threshold import (
    CommitteeKey,
    DecryptionShare,
    EpochKey,
    KeyShare,
    create_decryption_share,
    epoch_of,
)
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intents import intent_digest

KIND_SEALED = 4
KIND_EPOCH_KEY = 5
_SEALED = bytes((KIND_SEALED,))
_SHARE_WINDOW = 64  # epochs back from the present that a share is still taken for


class SealedVerdict(NamedTuple):
    """What became of a sealed intent: revealed as ``intent_id``, or refused for ``reason``."""

    height: int  # the block that revealed or refused it
    intent_id: bytes | None
    reason: str | None  # a ``Rejection`` or ``SealedRejection`` value


def sealed_item(envelope: bytes) -> bytes:
    return bytes((KIND_SEALED,)) + envelope


def key_item(key: EpochKey) -> bytes:
    return bytes((KIND_EPOCH_KEY,)) + key.encode()


class SealedReveal:
    """A member's sealed-intent state: the replicated log and its local share exchange.

    ``broadcast(payload)`` sends a frame on ``CHANNEL_FAIRNESS`` to every other member;
    ``submit_item(item)`` hands an item to the member's replica (to be proposed). Neither may
    block: the runtime's ``Transport.broadcast`` and a task around ``CommitteeMember.submit``
    fit.
    """

    def __init__(
        self,
        domain: Domain,
        committee_key: CommitteeKey,
        key_share: KeyShare | None,
        *,
        epoch_ms: int,
        reveal_timeout_ms: int,
        broadcast: Callable[[bytes], None],
        submit_item: Callable[[bytes], None],
    ) -> None:
        if key_share is not None and (
            key_share.index > committee_key.members
            or encode_g1(g1_mul(g1_generator(), key_share.secret))
            != committee_key.public_shares[key_share.index - 1]
        ):
            # its own shares are taken unchecked (KeyAssembler.add(own=True)): they must be right
            raise ValueError(f"the key share does not match public share {key_share.index}")
        self.domain = domain
        self.log = SealedLog(domain, committee_key, epoch_ms, reveal_timeout_ms)
        self.assembler = KeyAssembler(committee_key, domain)
        self._key_share = key_share
        self._broadcast = broadcast
        self._submit_item = submit_item
        self._released: set[int] = set()
        self._submitted: set[int] = set()
        self._committed_epoch: int | None = None  # of the last block seen committed
        self._unclosed: set[int] = set()  # epochs with sealed intents, no committed block past
        self._verdicts: OrderedDict[bytes, SealedVerdict] = OrderedDict()
        self._remember = 100_000
        self.refused_items = 0  # sealed-kind items that did not decode (left out, counted)

    # ----------------------------------------------------------------- replicated part

    @staticmethod
    def split(items: Iterable[bytes]) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """(sealed envelopes, key encodings, every other item) of a block, in block order."""
        sealed, keys, others = [], [], []
        for item in items:
            if item[:1] == bytes((KIND_SEALED,)):
                sealed.append(item[1:])
            elif item[:1] == bytes((KIND_EPOCH_KEY,)):
                keys.append(item[1:])
            else:
                others.append(item)
        return sealed, keys, others

    def execute_block(
        self, height: int, timestamp_ms: int, items: Sequence[bytes]
    ) -> tuple[list[bytes], list[bytes], BlockEffects]:
        """(revealed intents as ``KIND_INTENT`` items, the block's other items, effects).

        The caller journals the block's marker, then the revealed items, then the others.
        """
        sealed, encoded_keys, others = self.split(items)
        keys = []
        for encoded in encoded_keys:
            try:
                keys.append(EpochKey.decode(encoded))
            except ValueError:
                self.refused_items += 1  # a faulty leader's garbage: the same on every member
        effects = self.log.apply_block(height, timestamp_ms, sealed, keys)
        revealed = []
        for outcome in effects.outcomes:
            result = outcome.result
            if isinstance(result, Opened):
                revealed.append(bytes((KIND_INTENT,)) + result.body)
                intent_id = intent_digest(self.domain, result.signed.intent)
                verdict = SealedVerdict(height, intent_id, None)
            elif isinstance(result, Rejected):
                verdict = SealedVerdict(height, None, result.reason.value)
            else:
                verdict = SealedVerdict(height, None, result.value)
            self._verdicts[outcome.sealed_id] = verdict
        while len(self._verdicts) > self._remember:
            self._verdicts.popitem(last=False)
        for epoch in effects.revealed_epochs + effects.expired_epochs:
            self.assembler.forget(epoch)
            self._submitted.add(epoch)  # done: late shares for it are not assembled again
        current = self.log.current_epoch
        if current is not None:
            for done in (self._released, self._submitted):
                done.difference_update([e for e in done if e < current - _SHARE_WINDOW])
        return revealed, others, effects

    def verdict(self, sealed_id: bytes) -> SealedVerdict | None:
        """Revealed as which intent, or refused why (None: not decided yet, or forgotten)."""
        return self._verdicts.get(sealed_id)

    def rebuild(self, blocks: Iterable[tuple[int, int, Sequence[bytes]]]) -> None:
        """Replay committed blocks (height, timestamp, items) already journaled, to restore
        the log after a restart. The next :meth:`after_commit` sends this member's shares for
        closed epochs still waiting again: a share is the same bytes every time, members keep
        one per member, and the shares sent before the crash may never have left."""
        for height, timestamp_ms, items in blocks:
            self.execute_block(height, timestamp_ms, items)

    # ----------------------------------------------------------------- local part

    def on_committed(self, timestamp_ms: int, items: Sequence[bytes]) -> None:
        """A block is committed (called in height order, as soon as this member's replica
        commits it, before the block is durable in its committed log or executed): release
        this member's share for every epoch with sealed intents that the block closes. The
        epoch is closed from the commit on, so the share need not wait for either."""
        epoch = epoch_of(timestamp_ms, self.log.epoch_ms)
        for item in items:
            if item[:1] != _SEALED:
                continue
            try:
                target = decode_sealed_intent(item[1:]).header.epoch
            except MalformedSealedIntent:
                continue  # refused when the block executes
            if target == epoch:  # only those count (SealedLog.apply_block)
                self._unclosed.add(epoch)
        if self._committed_epoch is None or epoch > self._committed_epoch:
            self._committed_epoch = epoch
        for closed in sorted(e for e in self._unclosed if e < epoch):
            self._unclosed.discard(closed)
            self._release(closed)

    def closing_block_due_ms(self) -> int | None:
        """The end of the oldest epoch holding committed sealed intents that no committed
        block has closed yet: from then on a block is wanted even with nothing pending (its
        timestamp closes the epoch). None when no epoch waits for one."""
        if not self._unclosed:
            return None
        return (min(self._unclosed) + 1) * self.log.epoch_ms

    def after_commit(self) -> None:
        """Release this member's share for every epoch of the executed log now closed, once
        (what :meth:`on_committed` released already is not sent again)."""
        for epoch in self.log.epochs_to_release():
            self._release(epoch)

    def _release(self, epoch: int) -> None:
        if self._key_share is None or epoch in self._released:
            return  # a follower without a share, or sent already
        self._released.add(epoch)
        share = create_decryption_share(self._key_share, self.log.venue, epoch)
        self._broadcast(share.encode())
        self._take(share, own=True)  # its own share counts toward the key too

    def on_share_frame(self, member: int, payload: bytes) -> None:
        """A ``CHANNEL_FAIRNESS`` frame from ``member`` (as its link authenticated it)."""
        try:
            share = DecryptionShare.decode(payload)
        except ValueError as exc:
            raise InvalidFrame(f"decryption share: {exc}") from None
        if share.member != member + 1:
            raise InvalidFrame(
                f"member {member} sent a share in the name of member index {share.member}"
            )
        self._take(share)

    def _take(self, share: DecryptionShare, *, own: bool = False) -> None:
        present = (self.log.current_epoch, self._committed_epoch)
        current = max((e for e in present if e is not None), default=None)
        if share.epoch in self._submitted or current is None:
            return
        # A share may arrive before this member has executed the block that closes its epoch
        # (members commit at slightly different moments): keep it, but only for epochs near
        # the present, so a faulty member cannot make us check shares of arbitrary epochs.
        if not current - _SHARE_WINDOW <= share.epoch <= current + 1:
            return
        key = self.assembler.add(share, own=own)
        if key is not None:
            self._submitted.add(key.epoch)
            self._submit_item(key_item(key))
