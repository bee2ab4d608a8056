"""Quorum certificates and equivocation evidence for the committee settlement contract.

Invariants:
- A certificate is ``bitmap (32 bytes, big-endian) || signature_i (65 bytes)`` for every set
  bit i in increasing order, bit i naming member index i of the contract's current set: exactly
  what ``CommitteeSettlement._verifyCertificate`` reads, so each member counts once.
- Slashing empties a member's slot (``EMPTY_SLOT``, the zero address) instead of shifting the
  others, so indexes hold for a whole epoch; a bit naming an empty slot is refused.
- ``quorum(n) = n - (n - 1) // 3`` (2f + 1 when n = 3f + 1), the same rule as
  ``asyncdex.consensus.Committee.quorum`` and ``CommitteeSettlement.quorum``, applied to the
  members still seated (``active_quorum``).
- Members sign the contract's own digests: a batch header is signed over ``batch_digest``
  (EIP-712, the same digest the single-operator contract checks), an epoch change over
  ``epoch_digest`` (EIP-712 ``Epoch(uint256 epoch,address[] members)``), and a consensus vote
  over ``asyncdex.consensus.messages.vote_digest`` and a leader's proposal over
  ``proposal_digest``, both of which the contract recomputes. Evidence is therefore checkable
  on chain with nothing but ``ecrecover``.
- Evidence is built only from two valid signatures of one member over two different messages
  of the same slot (batch number or view); anything else raises ``ValueError`` rather than
  producing evidence the contract would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from eth_abi import encode

from asyncdex.consensus.crypto import SIGNATURE_SIZE, Secp256k1Verifier, Signer
from asyncdex.consensus.messages import proposal_digest, vote_digest
from asyncdex.settlement.chain import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    EIP712_DOMAIN_TYPE,
    batch_digest,
)
from asyncdex.types.hashing import keccak256

EPOCH_TYPE = b"Epoch(uint256 epoch,address[] members)"
MAX_MEMBERS = 256
BITMAP_SIZE = 32
EMPTY_SLOT = bytes(20)  # a slashed member's slot until the next epoch replaces the set

_verify = Secp256k1Verifier()


def quorum(members: int) -> int:
    """Signatures a certificate needs from a set of ``members``."""
    if members < 1:
        raise ValueError("a committee has at least one member")
    return members - (members - 1) // 3


def is_empty_slot(member: bytes) -> bool:
    """True for the slot of a member slashed out of the current set (the zero address)."""
    return member == EMPTY_SLOT


def active_members(members: Sequence[bytes]) -> int:
    """Members of a set (the contract's ``members()``) still holding their seat."""
    return sum(1 for member in members if not is_empty_slot(member))


def active_quorum(members: Sequence[bytes]) -> int:
    """Signatures a certificate needs from ``members``, the contract's slots in index order:
    a quorum of the members still seated, as ``CommitteeSettlement.quorum`` counts it."""
    return quorum(active_members(members))


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fields of a batch the committee certifies (as in ``commitBatch``)."""

    batch_number: int
    prev_state_root: bytes
    new_state_root: bytes
    withdrawals_root: bytes
    l1_messages_consumed: int
    batch_data_hash: bytes

    def digest(self, chain_id: int, contract_address: str) -> bytes:
        return batch_digest(
            chain_id,
            contract_address,
            self.batch_number,
            self.prev_state_root,
            self.new_state_root,
            self.withdrawals_root,
            self.l1_messages_consumed,
            self.batch_data_hash,
        )

    def as_tuple(self) -> tuple[int, bytes, bytes, bytes, int, bytes]:
        """The ABI tuple of ``CommitteeSettlement.BatchHeader``."""
        return (
            self.batch_number,
            self.prev_state_root,
            self.new_state_root,
            self.withdrawals_root,
            self.l1_messages_consumed,
            self.batch_data_hash,
        )


def _domain_separator(chain_id: int, contract_address: str) -> bytes:
    return keccak256(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak256(EIP712_DOMAIN_TYPE),
                keccak256(DOMAIN_NAME),
                keccak256(DOMAIN_VERSION),
                chain_id,
                contract_address,
            ],
        )
    )


def epoch_digest(
    chain_id: int, contract_address: str, epoch: int, members: Sequence[str | bytes]
) -> bytes:
    """The EIP-712 digest the current members sign to install ``members`` as ``epoch``
    (mirrors ``CommitteeSettlement.epochDigest``)."""
    members_hash = keccak256(b"".join(encode(["address"], [member]) for member in members))
    struct_hash = keccak256(
        encode(["bytes32", "uint256", "bytes32"], [keccak256(EPOCH_TYPE), epoch, members_hash])
    )
    return keccak256(b"\x19\x01" + _domain_separator(chain_id, contract_address) + struct_hash)


# ---------------------------------------------------------------- certificates


def pack_certificate(signatures: Mapping[int, bytes]) -> bytes:
    """Bitmap plus signatures in member-index order, from ``{member index: signature}``."""
    bitmap = 0
    for index, signature in signatures.items():
        if not 0 <= index < MAX_MEMBERS:
            raise ValueError(f"member index {index} outside 0..{MAX_MEMBERS - 1}")
        if len(signature) != SIGNATURE_SIZE:
            raise ValueError(f"a signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
        bitmap |= 1 << index
    ordered = b"".join(signatures[index] for index in sorted(signatures))
    return bitmap.to_bytes(BITMAP_SIZE, "big") + ordered


def unpack_certificate(certificate: bytes) -> dict[int, bytes]:
    """The ``{member index: signature}`` of a certificate; ``ValueError`` if malformed."""
    if len(certificate) < BITMAP_SIZE:
        raise ValueError(f"a certificate has a {BITMAP_SIZE}-byte bitmap")
    bitmap = int.from_bytes(certificate[:BITMAP_SIZE], "big")
    indexes = [index for index in range(MAX_MEMBERS) if bitmap >> index & 1]
    body = certificate[BITMAP_SIZE:]
    if len(body) != SIGNATURE_SIZE * len(indexes):
        raise ValueError(
            f"bitmap names {len(indexes)} signers but {len(body)} signature bytes follow"
        )
    return {
        index: body[position * SIGNATURE_SIZE : (position + 1) * SIGNATURE_SIZE]
        for position, index in enumerate(indexes)
    }


def certify(
    digest: bytes, members: Sequence[bytes], signers: Sequence[Signer], count: int | None = None
) -> bytes:
    """A certificate over ``digest`` from ``signers`` (each must be one of ``members``, the
    contract's current set in index order); by default exactly a quorum of the seated members
    signs, the lowest member indexes first, which is the cheapest certificate the contract
    accepts."""
    wanted = active_quorum(members) if count is None else count
    by_index: dict[int, Signer] = {}
    for signer in signers:
        if signer.address not in members:
            raise ValueError(f"0x{signer.address.hex()} is not a member")
        by_index[members.index(signer.address)] = signer
    if len(by_index) < wanted:
        raise ValueError(f"{len(by_index)} member signers cannot make {wanted} signatures")
    chosen = sorted(by_index)[:wanted]
    return pack_certificate({index: by_index[index].sign(digest) for index in chosen})


def verify_certificate(digest: bytes, members: Sequence[bytes], certificate: bytes) -> bool:
    """True when the contract would accept ``certificate`` over ``digest`` for ``members``."""
    try:
        signatures = unpack_certificate(certificate)
    except ValueError:
        return False
    if any(index >= len(members) or is_empty_slot(members[index]) for index in signatures):
        return False
    if active_members(members) == 0 or len(signatures) < active_quorum(members):
        return False
    return all(
        _verify(members[index], digest, signature) for index, signature in signatures.items()
    )


# ---------------------------------------------------------------- equivocation evidence


@dataclass(frozen=True, slots=True)
class BatchEquivocation:
    """One member's signatures over two different headers for the same batch number."""

    member: bytes
    header_a: BatchHeader
    signature_a: bytes
    header_b: BatchHeader
    signature_b: bytes


@dataclass(frozen=True, slots=True)
class VoteEquivocation:
    """One member's votes for two different blocks in the same consensus view."""

    member: bytes
    view: int
    block_hash_a: bytes
    signature_a: bytes
    block_hash_b: bytes
    signature_b: bytes


@dataclass(frozen=True, slots=True)
class ProposalEquivocation:
    """One leader's proposals of two different blocks in the same consensus view."""

    member: bytes
    view: int
    block_hash_a: bytes
    signature_a: bytes
    block_hash_b: bytes
    signature_b: bytes


def batch_equivocation(
    chain_id: int,
    contract_address: str,
    member: bytes,
    header_a: BatchHeader,
    signature_a: bytes,
    header_b: BatchHeader,
    signature_b: bytes,
) -> BatchEquivocation:
    """Evidence for ``slashBatchEquivocation``, checked here as the contract will check it."""
    if header_a.batch_number != header_b.batch_number:
        raise ValueError("equivocation needs two headers for the same batch number")
    digest_a = header_a.digest(chain_id, contract_address)
    digest_b = header_b.digest(chain_id, contract_address)
    if digest_a == digest_b:
        raise ValueError("the two headers are the same")
    if not (_verify(member, digest_a, signature_a) and _verify(member, digest_b, signature_b)):
        raise ValueError(f"the signatures are not both by 0x{member.hex()}")
    return BatchEquivocation(member, header_a, signature_a, header_b, signature_b)


def vote_equivocation(
    domain: bytes,
    member: bytes,
    view: int,
    block_hash_a: bytes,
    signature_a: bytes,
    block_hash_b: bytes,
    signature_b: bytes,
) -> VoteEquivocation:
    """Evidence for ``slashVoteEquivocation`` from two consensus votes of ``member`` (signed
    over ``vote_digest(domain, view, block_hash)``, the committee's own vote encoding)."""
    _check_view_equivocation(
        vote_digest, "votes for", "votes", domain, member, view, block_hash_a, signature_a,
        block_hash_b, signature_b,
    )  # fmt: skip
    return VoteEquivocation(member, view, block_hash_a, signature_a, block_hash_b, signature_b)


def proposal_equivocation(
    domain: bytes,
    member: bytes,
    view: int,
    block_hash_a: bytes,
    signature_a: bytes,
    block_hash_b: bytes,
    signature_b: bytes,
) -> ProposalEquivocation:
    """Evidence for ``slashProposalEquivocation`` from two proposals signed by ``member``
    (over ``proposal_digest(domain, view, block_hash)``): an equivocating leader."""
    _check_view_equivocation(
        proposal_digest, "proposals of", "proposals", domain, member, view, block_hash_a,
        signature_a, block_hash_b, signature_b,
    )  # fmt: skip
    return ProposalEquivocation(member, view, block_hash_a, signature_a, block_hash_b, signature_b)


def _check_view_equivocation(
    digest_of: Callable[[bytes, int, bytes], bytes],
    same_block: str,
    what: str,
    domain: bytes,
    member: bytes,
    view: int,
    block_hash_a: bytes,
    signature_a: bytes,
    block_hash_b: bytes,
    signature_b: bytes,
) -> None:
    """Votes and proposals alike: two different block hashes for one view, both signed by
    ``member`` over ``digest_of(domain, view, block_hash)``."""
    if not 0 <= view < 1 << 64:
        raise ValueError("a view the contract takes is below 2**64")
    if block_hash_a == block_hash_b:
        raise ValueError(f"{same_block} the same block are not equivocation")
    digest_a = digest_of(domain, view, block_hash_a)
    digest_b = digest_of(domain, view, block_hash_b)
    if not (_verify(member, digest_a, signature_a) and _verify(member, digest_b, signature_b)):
        raise ValueError(f"the {what} are not both signed by 0x{member.hex()}")
