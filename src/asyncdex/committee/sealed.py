"""Sealed intents in a committee member: their block items, shares over the links, each
epoch's key awaited where the committed log says it opens (docs/fairness.md, "Running it in
the committee").

Invariants:
- One item kind beside ``asyncdex.committee.items``' (1 to 3): ``KIND_SEALED`` (a sealed
  envelope, as ``POST /v1/sealed`` took it). :meth:`SealedReveal.execute_block` is a pure
  function of the committed blocks so far and the epochs' keys (through
  ``asyncdex.fairness.reveal.SealedLog``): for each block it returns the signed intents of
  the epochs the block closes, as ``KIND_INTENT`` items in certified order, which the executor
  journals right after the block's marker, before the block's own items. The key of an epoch
  is unique, so every member journals the same records at the same seqs; replay of the
  committed log is replay of the journal.
- The executor does not run a block that closes an epoch before it holds that epoch's key
  (:meth:`SealedReveal.keys_for`): it waits, asking the other members for their shares again
  every ``_ASK_AGAIN_S``, and warns every ``alarm_ms``; nothing is skipped or dropped. With at
  most ``f`` faulty members the key comes: ``t = f + 1`` and at least ``2f + 1`` members are
  honest and release.
- A key is written to the member's key store (:class:`EpochKeyStore`) and fsync'd while the
  intents it opens are journaled (:meth:`SealedReveal.save_keys`), so a restarted member
  rebuilds its sealed log (:meth:`SealedReveal.rebuild`) and finishes a half-journaled block
  without the network; a key lost to a crash in between is asked for again.
- Releasing is local and follows commits: as soon as a block is committed (before it is
  executed: :meth:`SealedReveal.on_committed`), a member sends its share for every epoch that
  holds sealed intents and that block closed, once, on ``CHANNEL_FAIRNESS``. Never for an
  epoch a certified block could still extend: only a committed block past it closes an epoch,
  and a member answers another's request (:data:`ASK`) only for an epoch a block it saw
  committed closed.
- Pacing (a liveness aid, no safety rule): while a committed block holds sealed intents of an
  epoch no committed block has closed yet, :meth:`SealedReveal.closing_block_due_ms` is that
  epoch's end, from which the member's leader proposes without waiting for the idle timer, so
  the closing block comes at the boundary and commits at once.
- A share frame is attributed to the member its link authenticated (consensus index ``i``
  holds DKG share ``i + 1``): one claiming another member's share index is an invalid frame
  (the link closes). A wrong share is kept as evidence (``KeyAssembler.faults``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from asyncdex.committee.items import KIND_INTENT
from asyncdex.committee.store import StoreCorruption, open_log
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
from asyncdex.sequencer.journal import DEFAULT_SEGMENT_BYTES
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intents import intent_digest

KIND_SEALED = 4
_SEALED = bytes((KIND_SEALED,))
_SHARE_WINDOW = 64  # epochs back from the present that an unasked-for share is still taken for
# CHANNEL_FAIRNESS frames: a tag byte, then a share (``DecryptionShare.encode()``) or, for a
# request, the epoch as 8 bytes big-endian
SHARE = 1
ASK = 2
_ASK_AGAIN_S = 0.2  # a member waiting for a key asks again this often (frames can be lost)
_OWN_SHARES_KEPT = 1024  # own shares kept to answer requests without recomputing them
_log = logging.getLogger(__name__)


class SealedVerdict(NamedTuple):
    """What became of a sealed intent: revealed as ``intent_id``, or refused for ``reason``."""

    height: int  # the block that revealed or refused it
    intent_id: bytes | None
    reason: str | None  # a ``Rejection`` or ``SealedRejection`` value


def sealed_item(envelope: bytes) -> bytes:
    return bytes((KIND_SEALED,)) + envelope


def share_frame(share: DecryptionShare) -> bytes:
    return bytes((SHARE,)) + share.encode()


def ask_frame(epoch: int) -> bytes:
    return bytes((ASK,)) + epoch.to_bytes(8, "big")


class EpochKeyStore:
    """The epoch keys a member opened intents with: a ``FileJournal`` of ``EpochKey.encode()``
    records, fsync'd before the intents are journaled (a torn tail is cut at open: the keys
    it held are fetched from the other members again; other damage refuses the start, as for
    the member's other logs)."""

    def __init__(self, directory: Path) -> None:
        self._journal, _ = open_log(directory, DEFAULT_SEGMENT_BYTES)
        self._keys: dict[int, EpochKey] = {}
        for _, payload in self._journal.read(self._journal.first_seq):
            try:
                key = EpochKey.decode(payload)
            except ValueError as error:
                self._journal.close()
                raise StoreCorruption(directory, None, f"not an epoch key: {error}") from None
            self._keys[key.epoch] = key

    def get(self, epoch: int) -> EpochKey | None:
        return self._keys.get(epoch)

    def __len__(self) -> int:
        return len(self._keys)

    def put(self, keys: Sequence[EpochKey]) -> None:
        """Append and fsync (blocking: call it off the event loop)."""
        fresh = [key for key in keys if key.epoch not in self._keys]
        if not fresh:
            return
        self._journal.append_many(self._journal.last_seq + 1, [key.encode() for key in fresh])
        self._journal.flush()
        for key in fresh:
            self._keys[key.epoch] = key

    def close(self) -> None:
        self._journal.close()


class SealedReveal:
    """A member's sealed-intent state: the replicated log and its local share exchange.

    ``broadcast(payload)`` sends a frame on ``CHANNEL_FAIRNESS`` to every other member,
    ``send(member, payload)`` to one (the runtime's ``Transport.broadcast`` and
    ``Transport.send``; neither blocks). ``keys``: the member's key store (None keeps keys in
    memory only: tests and simulations).
    """

    def __init__(
        self,
        domain: Domain,
        committee_key: CommitteeKey,
        key_share: KeyShare | None,
        *,
        epoch_ms: int,
        alarm_ms: int,
        broadcast: Callable[[bytes], None],
        send: Callable[[int, bytes], None] | None = None,
        keys: EpochKeyStore | None = None,
    ) -> None:
        if key_share is not None and (
            key_share.index > committee_key.members
            or encode_g1(g1_mul(g1_generator(), key_share.secret))
            != committee_key.public_shares[key_share.index - 1]
        ):
            # its own shares are taken unchecked (KeyAssembler.add(own=True)): they must be right
            raise ValueError(f"the key share does not match public share {key_share.index}")
        self.domain = domain
        self.log = SealedLog(domain, committee_key, epoch_ms)
        self.assembler = KeyAssembler(committee_key, domain)
        self.alarm_ms = alarm_ms
        self._key_share = key_share
        self._broadcast = broadcast
        self._send = send
        self._store = keys
        self._memory: dict[int, EpochKey] = {}  # opened epochs' keys without a store
        self._own: OrderedDict[int, tuple[DecryptionShare, bytes]] = OrderedDict()  # made
        self._unsaved: list[EpochKey] = []  # keys handed out, not yet in the key store
        self._released: set[int] = set()
        self._opened: set[int] = set()  # epochs whose intents are opened: shares not needed
        self._waiters: dict[int, asyncio.Future[EpochKey]] = {}
        self._committed_epoch: int | None = None  # of the last block seen committed
        self._unclosed: set[int] = set()  # epochs with sealed intents, no committed block past
        self._verdicts: OrderedDict[bytes, SealedVerdict] = OrderedDict()
        self._remember = 100_000
        self.waits = 0  # blocks that had to wait for a key
        self.longest_wait_ms = 0

    # ----------------------------------------------------------------- replicated part

    @staticmethod
    def split(items: Iterable[bytes]) -> tuple[list[bytes], list[bytes]]:
        """(sealed envelopes, every other item) of a block, in block order."""
        sealed, others = [], []
        for item in items:
            if item[:1] == _SEALED:
                sealed.append(item[1:])
            else:
                others.append(item)
        return sealed, others

    def execute_block(
        self,
        height: int,
        timestamp_ms: int,
        items: Sequence[bytes],
        keys: Mapping[int, EpochKey] | None = None,
    ) -> tuple[list[bytes], list[bytes], BlockEffects]:
        """(revealed intents as ``KIND_INTENT`` items, the block's other items, effects).

        ``keys`` must hold the key of every epoch the block closes (``self.log.closes``;
        :meth:`keys_for` gets them), else ``MissingEpochKey`` and nothing changes. The
        caller journals the block's marker, then the revealed items, then the others.
        """
        sealed, others = self.split(items)
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
        for epoch in effects.revealed_epochs:
            self.assembler.forget(epoch)
            self._opened.add(epoch)  # done: late shares for it are not assembled again
        current = self.log.current_epoch
        if current is not None:
            for done in (self._released, self._opened):
                done.difference_update([e for e in done if e < current - _SHARE_WINDOW])
        return revealed, others, effects

    def verdict(self, sealed_id: bytes) -> SealedVerdict | None:
        """Revealed as which intent, or refused why (None: not decided yet, or forgotten)."""
        return self._verdicts.get(sealed_id)

    def rebuild(self, blocks: Iterable[tuple[int, int, Sequence[bytes]]]) -> None:
        """Replay committed blocks (height, timestamp, items) already journaled, to restore
        the log after a restart, with the keys of the key store. An epoch whose key the store
        lost (a torn tail) is dropped from the sealed log unopened: its intents are in the
        journal already, only their verdicts are not known again."""
        for height, timestamp_ms, items in blocks:
            keys = {}
            for epoch in self.log.closes(timestamp_ms):
                key = self.stored_key(epoch)
                if key is None:
                    lost = self.log.forget_epoch(epoch)
                    _log.warning(
                        "epoch %d's key is not in the key store: %d verdicts unknown",
                        epoch,
                        len(lost),
                    )
                else:
                    keys[epoch] = key
            self.execute_block(height, timestamp_ms, items, keys)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def status_json(self) -> dict[str, Any]:
        """The ``sealing`` object of the committee's ``/v1/status``."""
        return {
            "epochMs": self.log.epoch_ms,
            "waitingForKeys": sorted(self._waiters),  # epochs execution waits for now
            "keyWaits": self.waits,  # closing blocks that found their key missing
            "longestKeyWaitMs": self.longest_wait_ms,
            "shareFaults": len(self.assembler.faults),
            "keysStored": len(self._store) if self._store is not None else len(self._memory),
        }

    def stored_key(self, epoch: int) -> EpochKey | None:
        if self._store is not None:
            return self._store.get(epoch)
        return self._memory.get(epoch)

    def _share(self, epoch: int) -> tuple[DecryptionShare, bytes] | None:
        """This member's share of ``epoch`` and its frame, made once (None without a key
        share). Making it releases nothing: :meth:`_release` and answering a request do,
        only for a closed epoch."""
        if self._key_share is None:
            return None
        made = self._own.get(epoch)
        if made is None:
            share = create_decryption_share(self._key_share, self.log.venue, epoch)
            made = self._own[epoch] = (share, share_frame(share))
            while len(self._own) > _OWN_SHARES_KEPT:
                self._own.popitem(last=False)
        return made

    # ----------------------------------------------------------------- waiting for keys

    async def keys_for(self, epochs: Sequence[int]) -> dict[int, EpochKey]:
        """The keys of ``epochs`` (closed by a committed block: the one about to execute).
        Waits as long as it takes, asking again every ``_ASK_AGAIN_S`` and warning every
        ``alarm_ms``. New keys are written by :meth:`save_keys`, which the executor runs
        beside the journal write of the intents they open (two fsyncs at once, not in a
        row)."""
        keys: dict[int, EpochKey] = {}
        fresh: list[EpochKey] = []
        for epoch in epochs:
            key = self.stored_key(epoch)
            if key is None:
                key = self.assembler.key(epoch)
                if key is not None:
                    fresh.append(key)
            if key is not None:
                keys[epoch] = key
        missing = [epoch for epoch in epochs if epoch not in keys]
        if missing:
            fresh += await self._wait(missing)
            keys.update((key.epoch, key) for key in fresh)
        if fresh:
            if self._store is not None:
                self._unsaved += fresh
            else:
                self._memory.update((key.epoch, key) for key in fresh)
        return keys

    async def save_keys(self) -> None:
        """Make the keys :meth:`keys_for` handed out durable in the key store (a no-op when
        there are none). A crash before this ends loses at most those keys: a restart asks
        the members for them again, or, for blocks its journal already holds, only loses
        the verdicts of their intents (:meth:`rebuild`)."""
        if self._store is None or not self._unsaved:
            return
        keys, self._unsaved = self._unsaved, []
        await asyncio.to_thread(self._store.put, keys)

    async def _wait(self, epochs: Sequence[int]) -> list[EpochKey]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.waits += 1
        futures = {}
        for epoch in epochs:
            future = self._waiters.get(epoch)
            if future is None or future.done():
                future = self._waiters[epoch] = loop.create_future()
            futures[epoch] = future
            self._release(epoch)  # a restarted member's own share may never have left
            key = self.assembler.key(epoch)  # completed by that share, or just before
            if key is not None and not future.done():
                future.set_result(key)
        alarm_at = started + self.alarm_ms / 1000
        try:
            while True:
                pending = [f for f in futures.values() if not f.done()]
                if not pending:
                    break
                for epoch, future in futures.items():
                    if not future.done():
                        self._broadcast(ask_frame(epoch))
                await asyncio.wait(pending, timeout=_ASK_AGAIN_S)
                if loop.time() >= alarm_at and any(not f.done() for f in futures.values()):
                    alarm_at = loop.time() + self.alarm_ms / 1000
                    waiting = sorted(e for e, f in futures.items() if not f.done())
                    _log.warning(
                        "execution waits for the key of epoch(s) %s since %.1f s: fewer than "
                        "%d valid shares arrived (faults: %d)",
                        waiting,
                        loop.time() - started,
                        self.assembler.committee.threshold,
                        len(self.assembler.faults),
                    )
        finally:
            for epoch in epochs:
                self._waiters.pop(epoch, None)
        self.longest_wait_ms = max(self.longest_wait_ms, int((loop.time() - started) * 1000))
        return [future.result() for future in futures.values()]

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
            if target == epoch and epoch not in self._unclosed:  # only those count
                self._unclosed.add(epoch)
                # made now, released when a committed block closes the epoch: the hash to
                # G2 and the multiplication are then off the reveal's path
                self._share(epoch)
        if self._committed_epoch is None or epoch > self._committed_epoch:
            self._committed_epoch = epoch
        # the epochs with intents in committed blocks, and those of the executed log (after a
        # restart, blocks committed before it are known only from there)
        closed = {e for e in self._unclosed if e < epoch}
        closed.update(e for e in self.log.pending_epochs() if e < epoch)
        for done in sorted(closed):
            self._unclosed.discard(done)
            self._release(done)

    def closing_block_due_ms(self) -> int | None:
        """The end of the oldest epoch holding committed sealed intents that no committed
        block has closed yet: from then on a block is wanted even with nothing pending (its
        timestamp closes the epoch). None when no epoch waits for one."""
        if not self._unclosed:
            return None
        return (min(self._unclosed) + 1) * self.log.epoch_ms

    def _closed(self, epoch: int) -> bool:
        """A block this member saw committed lies past ``epoch``."""
        present = (self.log.current_epoch, self._committed_epoch)
        return any(e is not None and epoch < e for e in present)

    def _release(self, epoch: int) -> None:
        if epoch in self._released:
            return  # sent already
        made = self._share(epoch)
        if made is None:
            return  # a follower without a share
        self._released.add(epoch)
        share, frame = made
        self._broadcast(frame)
        self._take(share, own=True)  # its own share counts toward the key too

    def on_share_frame(self, member: int, payload: bytes) -> None:
        """A ``CHANNEL_FAIRNESS`` frame from ``member`` (as its link authenticated it)."""
        tag, body = payload[:1], payload[1:]
        if tag == bytes((ASK,)):
            if len(body) != 8:
                raise InvalidFrame("share request: expected an 8-byte epoch")
            epoch = int.from_bytes(body, "big")
            if self._send is not None and self._closed(epoch):
                made = self._share(epoch)
                if made is not None:
                    self._send(member, made[1])
            return  # an epoch not closed here (yet): the asker asks again
        if tag != bytes((SHARE,)):
            raise InvalidFrame(f"fairness frame of unknown tag {payload[:1].hex() or 'none'}")
        try:
            share = DecryptionShare.decode(body)
        except ValueError as exc:
            raise InvalidFrame(f"decryption share: {exc}") from None
        if share.member != member + 1:
            raise InvalidFrame(
                f"member {member} sent a share in the name of member index {share.member}"
            )
        self._take(share)

    def _take(self, share: DecryptionShare, *, own: bool = False) -> None:
        if share.epoch in self._opened:
            return
        waiter = self._waiters.get(share.epoch)
        if waiter is None:
            present = (self.log.current_epoch, self._committed_epoch)
            current = max((e for e in present if e is not None), default=None)
            # A share may arrive before this member has executed the block that closes its
            # epoch (members commit at slightly different moments): keep it, but only for
            # epochs near the present, so a faulty member cannot make us check shares of
            # arbitrary epochs. An epoch the executor waits for is always taken.
            if current is None or not current - _SHARE_WINDOW <= share.epoch <= current + 1:
                return
        key = self.assembler.add(share, own=own)
        if key is not None and waiter is not None and not waiter.done():
            waiter.set_result(key)
