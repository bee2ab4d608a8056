"""The committee poster: every member signs the batches it cut, and a quorum's certificate posts.

Invariants:
- Every member executes the same committed blocks, so it cuts the same batches; it signs each
  batch header it cut with its member key over the contract's EIP-712 digest, and only after
  ``SignedHeaderLog`` made (batch number, digest) durable. A member never signs two headers
  for one batch number, across restarts: a conflicting header halts this poster
  (``PosterHalted``) instead, since it means this member's execution diverged.
- A peer's signature is stored only after it recovered to the contract's member at the index
  it claims (an empty slot, a non-member, a wrong index, a malformed payload are each refused
  and counted in ``refused`` by reason, never stored). Each member counts once per header.
- A certificate forms once the member holds a quorum (``certificate.active_quorum``) of valid
  signatures over the digest of the header it cut itself; it packs the lowest member indexes,
  the cheapest certificate the contract accepts. Signatures over any other header never make
  a certificate here; two valid signatures of one member over different headers for one batch
  number become ``BatchEquivocation`` evidence in ``evidence`` (one piece per member: one
  takes its whole bond).
- Who posts: the designated poster of batch k is member k mod n, at once; the member r places
  after it (cyclically) posts the same certificate r grace periods after its certificate
  formed, so a dead poster delays settlement by one grace period and never stalls it. Before
  each pass with an uncommitted batch the member re-reads the chain, so a batch already posted
  by another member is marked committed rather than sent again; a duplicate that races anyway
  reverts ``UnexpectedBatchNumber``, which the base poster treats as "re-read the chain".
- A revert that says the member set changed under a certificate (an epoch change, a slash)
  makes the member re-read the set and rebuild its certificates from the signatures still
  valid; a member no longer in the set halts (``PosterHalted``).
- Ordering, retries, gas, receipts and finality are the single-operator ``Poster``'s: this
  class only replaces the sequencer's signature by the certificate and gates when a batch is
  ready to send.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from asyncdex.consensus.crypto import SIGNATURE_SIZE, Secp256k1Verifier, Signer
from asyncdex.settlement.batch import CutBatch
from asyncdex.settlement.certificate import (
    BatchEquivocation,
    BatchHeader,
    active_quorum,
    batch_equivocation,
    is_empty_slot,
    pack_certificate,
)
from asyncdex.settlement.chain import CommitteeSettlementClient, ContractReverted, PrivateKey
from asyncdex.settlement.header_guard import ConflictingHeader, SignedHeaderLog
from asyncdex.settlement.poster import BatchPosting, Poster, PosterHalted

_log = logging.getLogger(__name__)

PAYLOAD_KIND = "asyncdex/batch-signature/1"
# A certificate costs about 8,000 gas a signer (ecrecover, a cold member load, calldata);
# the base model does not know it, so pipelined commits get this on top.
GAS_PER_SIGNATURE = 10_000
# Reverts that mean "the member set is not the one the certificate was built for".
CERTIFICATE_ERRORS = frozenset(
    {"SignerNotMember", "WrongSigner", "DuplicateSigner", "TooFewSignatures", "EmptySlot"}
)

_verify = Secp256k1Verifier()


class PayloadError(ValueError):
    """A signature payload that does not decode to a header, an index and a signature."""


def header_of(batch: CutBatch) -> BatchHeader:
    return BatchHeader(
        batch.number,
        batch.prev_state_root,
        batch.state_root,
        batch.withdrawals_root,
        batch.l1_consumed,
        batch.data_hash,
    )


def encode_signature(header: BatchHeader, member_index: int, signature: bytes) -> bytes:
    """The bytes a member broadcasts: its signature over ``header`` as member ``member_index``."""
    return msgpack.packb(
        [PAYLOAD_KIND, *header.as_tuple(), member_index, signature], use_bin_type=True
    )


def decode_signature(payload: bytes) -> tuple[BatchHeader, int, bytes]:
    """The (header, member index, signature) of a payload; ``PayloadError`` if malformed."""
    try:
        fields = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:
        raise PayloadError(f"not msgpack: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != 9 or fields[0] != PAYLOAD_KIND:
        raise PayloadError(f"not a {PAYLOAD_KIND} payload")
    _, number, prev_root, new_root, withdrawals_root, consumed, data_hash, index, signature = fields
    for name, value in (("batch number", number), ("l1 consumed", consumed), ("index", index)):
        if type(value) is not int or value < 0:
            raise PayloadError(f"{name} is not a non-negative integer")
    for name, value in (
        ("previous root", prev_root),
        ("new root", new_root),
        ("withdrawals root", withdrawals_root),
        ("data hash", data_hash),
    ):
        if type(value) is not bytes or len(value) != 32:
            raise PayloadError(f"{name} is not 32 bytes")
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise PayloadError(f"signature is not {SIGNATURE_SIZE} bytes")
    header = BatchHeader(number, prev_root, new_root, withdrawals_root, consumed, data_hash)
    return header, index, signature


class CommitteePoster(Poster):
    """A member's poster: signs its cut batches, gathers peers' signatures, posts certified.

    ``members`` is the contract's member list in index order (``client.members()``), with
    empty slots for slashed members; ``refresh_members`` re-reads it after an epoch change.
    ``broadcast`` carries this member's signatures to the others (the runtime's channel);
    peers' payloads come in through ``on_signature``.
    """

    client: CommitteeSettlementClient

    def __init__(
        self,
        client: CommitteeSettlementClient,
        signer: Signer,
        members: Sequence[bytes],
        broadcast: Callable[[bytes], None],
        signed_log: SignedHeaderLog,
        sender_key: PrivateKey,
        *,
        grace_s: float = 5.0,
        rebroadcast_s: float = 2.0,
        max_ahead: int = 64,
        **poster_options: Any,
    ) -> None:
        # The sender key signs transactions only; batches are authorised by certificates.
        super().__init__(client, sender_key, sender_key, **poster_options)
        self.signer = signer
        self.broadcast = broadcast
        self.signed_log = signed_log
        self.grace_s = grace_s
        self.rebroadcast_s = rebroadcast_s
        self.max_ahead = max_ahead
        self.members: list[bytes] = []
        self.member_index = -1
        self.refused: Counter[str] = Counter()
        self.evidence: list[BatchEquivocation] = []
        # batch number -> header digest -> member index -> signature (all verified)
        self._signatures: dict[int, dict[bytes, dict[int, bytes]]] = {}
        # batch number -> member index -> (header, signature): the first one seen, for evidence
        self._first_signed: dict[int, dict[int, tuple[BatchHeader, bytes]]] = {}
        self._own: dict[int, tuple[BatchHeader, bytes, bytes]] = {}  # header, digest, signature
        self._certificates: dict[int, bytes] = {}
        self._certified_at: dict[int, float] = {}
        self._last_broadcast = self._clock()
        self._members_stale = False
        self.set_members(members)

    # ------------------------------------------------------------------ membership

    def set_members(self, members: Sequence[bytes]) -> None:
        """Adopt the contract's member list; signatures by indexes that no longer name their
        signer are dropped, and certificates rebuilt."""
        self.members = list(members)
        if self.signer.address not in self.members:
            raise ValueError(f"0x{self.signer.address.hex()} is not a member of the committee")
        self.member_index = self.members.index(self.signer.address)
        for number, by_digest in self._signatures.items():
            for digest, by_index in by_digest.items():
                for index in [i for i, s in by_index.items() if not self._valid(i, digest, s)]:
                    del by_index[index]
            self._certificates.pop(number, None)
            self._certified_at.pop(number, None)
        for number, (_, digest, signature) in self._own.items():
            self._store(number, digest, self.member_index, signature)
            self._try_certify(number)

    async def refresh_members(self) -> None:
        members = await self._call(self.client.members)
        if self.signer.address not in members:
            # slashed, or left out by an epoch change: this member certifies nothing more
            number = self.committed_number + 1
            raise PosterHalted(number, f"0x{self.signer.address.hex()} left the committee")
        self.set_members(members)
        self._members_stale = False

    # ------------------------------------------------------------------ intake

    def enqueue(self, batch: CutBatch) -> None:
        """Take the next cut batch: record it, sign its header, broadcast the signature."""
        super().enqueue(batch)
        if self.posting(batch.number).committed or self.halted is not None:
            return
        header = header_of(batch)
        digest = header.digest(self.client.chain.chain_id, self.client.address)
        try:
            self.signed_log.check_and_record(batch.number, digest)
        except ConflictingHeader as conflict:
            # This member cut a different header than it signed before: its own execution
            # diverged. Signing would be equivocation; stop settling from here instead.
            _log.error("refusing to sign: %s", conflict)
            self.halted = PosterHalted(batch.number, str(conflict))
            return
        signature = self.signer.sign(digest)
        self._own[batch.number] = (header, digest, signature)
        self._store(batch.number, digest, self.member_index, signature)
        self._try_certify(batch.number)
        self.broadcast(encode_signature(header, self.member_index, signature))

    def on_signature(self, payload: bytes) -> bool:
        """Take a peer's signature payload; True when it was stored (new and valid)."""
        try:
            header, index, signature = decode_signature(payload)
        except PayloadError:
            self.refused["malformed"] += 1
            return False
        number = header.batch_number
        if number <= self.committed_number:
            return False  # on chain already: nothing left to certify
        if number > len(self._postings) + self.max_ahead:
            self.refused["too far ahead"] += 1
            return False
        if index >= len(self.members) or is_empty_slot(self.members[index]):
            self.refused["not a member"] += 1
            return False
        digest = header.digest(self.client.chain.chain_id, self.client.address)
        if not self._valid(index, digest, signature):
            self.refused["wrong signer"] += 1
            return False
        first = self._first_signed.setdefault(number, {}).get(index)
        if first is not None and first[0] != header:
            self._record_equivocation(index, first, header, signature)
            return False
        if index in self._signatures.get(number, {}).get(digest, {}):
            return False
        self._first_signed[number][index] = (header, signature)
        self._store(number, digest, index, signature)
        self._try_certify(number)
        return True

    # ------------------------------------------------------------------ queries

    def certificate(self, batch_number: int) -> bytes | None:
        """The certificate this member holds for its own header of ``batch_number``."""
        return self._certificates.get(batch_number)

    def designated_poster(self, batch_number: int) -> int:
        return batch_number % len(self.members)

    # ------------------------------------------------------------------ driving

    async def run_once(self) -> None:
        if self._members_stale:
            try:
                await self.refresh_members()
            except PosterHalted as halted:
                self.halted = halted
                raise
        if self.committed_number < len(self._postings):
            # Another member may have posted: read the chain before deciding to send.
            self._needs_sync = True
        self._rebroadcast()
        try:
            await super().run_once()
        finally:
            self._forget_committed()

    # ------------------------------------------------------------------ Poster hooks

    def _next_to_send(self) -> BatchPosting | None:
        posting = super()._next_to_send()
        if posting is None or posting.number not in self._certificates:
            return None
        turn = (self.member_index - self.designated_poster(posting.number)) % len(self.members)
        if self._clock() < self._certified_at[posting.number] + turn * self.grace_s:
            return None
        return posting

    def _authorization(self, batch_number: int, digest: bytes) -> bytes:
        own = self._own.get(batch_number)
        if own is None or own[1] != digest:
            raise PosterHalted(batch_number, "no certificate for the header being posted")
        return self._certificates[batch_number]

    def _modelled_gas(self, batch: CutBatch) -> int:
        return super()._modelled_gas(batch) + GAS_PER_SIGNATURE * active_quorum(self.members)

    def _on_revert(self, batch_number: int, reverted: ContractReverted) -> None:
        if reverted.error in CERTIFICATE_ERRORS:
            # The set changed under the certificate (an epoch change or a slash): re-read it
            # and rebuild from the signatures still valid, rather than halting settlement.
            self._members_stale = True
            self._needs_sync = True
            return
        if reverted.error == "CommitteeNotBonded":
            raise reverted  # a genesis member has yet to bond: retried with backoff, not fatal
        super()._on_revert(batch_number, reverted)

    # ------------------------------------------------------------------ internals

    def _valid(self, index: int, digest: bytes, signature: bytes) -> bool:
        member = self.members[index] if index < len(self.members) else None
        return (
            member is not None and not is_empty_slot(member) and _verify(member, digest, signature)
        )

    def _store(self, number: int, digest: bytes, index: int, signature: bytes) -> None:
        self._signatures.setdefault(number, {}).setdefault(digest, {})[index] = signature

    def _try_certify(self, number: int) -> None:
        own = self._own.get(number)
        if own is None or number in self._certificates:
            return
        signatures = self._signatures.get(number, {}).get(own[1], {})
        needed = active_quorum(self.members)
        if len(signatures) < needed:
            return
        chosen = sorted(signatures)[:needed]
        self._certificates[number] = pack_certificate({i: signatures[i] for i in chosen})
        self._certified_at[number] = self._clock()

    def _record_equivocation(
        self, index: int, first: tuple[BatchHeader, bytes], header: BatchHeader, signature: bytes
    ) -> None:
        self.refused["equivocation"] += 1
        member = self.members[index]
        if any(evidence.member == member for evidence in self.evidence):
            return  # one piece of evidence takes the whole bond; more only cost memory
        chain = self.client.chain
        self.evidence.append(
            batch_equivocation(
                chain.chain_id,
                self.client.address,
                member,
                first[0],
                first[1],
                header,
                signature,
            )
        )

    def _forget_committed(self) -> None:
        done = self.committed_number
        for table in (
            self._signatures,
            self._first_signed,
            self._own,
            self._certificates,
            self._certified_at,
        ):
            for number in [n for n in table if n <= done]:
                del table[number]

    def _rebroadcast(self) -> None:
        """Send this member's signatures on uncommitted batches again now and then: a peer
        that was down or partitioned when they first went out still needs them."""
        now = self._clock()
        if not self._own or now - self._last_broadcast < self.rebroadcast_s:
            return
        self._last_broadcast = now
        for number in sorted(self._own)[:16]:
            header, _, signature = self._own[number]
            self.broadcast(encode_signature(header, self.member_index, signature))
