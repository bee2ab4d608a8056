"""Threshold identity-based encryption keys: epoch identities, decryption shares, combination.

Boneh-Franklin IBE with the master secret ``s`` Shamir-shared among the n members (as in
Shutter): member ``i`` holds ``s_i = f(i)`` for a degree ``t - 1`` polynomial ``f`` with
``f(0) = s``; the committee's public key is ``P = s·g1`` and member ``i``'s public share is
``P_i = s_i·g1`` (both in G1). The identity of an epoch hashes to ``Q = H(id)`` in G2; the
epoch key is ``s·Q`` and member ``i``'s decryption share is ``s_i·Q``.

Invariants:

- A decryption share proves itself: it is correct exactly when ``e(g1, share) = e(P_i, Q)``,
  which anyone holding the committee key can check. A share that fails is refused with its
  member and the failed equation (:class:`ShareRefused`), so a member that signed it (the
  committee transport signs every message) is provably faulty. A share from an index that
  is not a member, or for another epoch, or not a canonical G2 point, is refused too.
- Any ``t`` valid shares from distinct members combine, by Lagrange interpolation at 0 in
  the exponent, into the same epoch key; ``t - 1`` never do (the combined point fails the
  key's own pairing check ``e(g1, key) = e(P, Q)``, which :func:`verify_epoch_key` runs).
- Pure: no clock, no I/O, no randomness. Members are numbered 1..n (0 would be the secret).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import msgpack
from py_arkworks_bls12381 import G1Point, G2Point

from asyncdex.fairness.bls import (
    PointError,
    R,
    decode_g1,
    decode_g2,
    encode_g2,
    g1_generator,
    g2_multiexp,
    hash_to_g2,
    pairing_check,
    scalar,
)

SEALING_DST = b"ASYNCDEX-SEALED-INTENTS-V1_BLS12381G2_XMD:SHA-256_SSWU_RO_"
IDENTITY_PREFIX = b"asyncdex/sealed-intents/v1/epoch"
VENUE_BYTES = 32
MAX_EPOCH = (1 << 64) - 1


def epoch_of(timestamp_ms: int, epoch_ms: int) -> int:
    """The sealing epoch a block timestamp (ms) falls in: ``floor(timestamp / epoch_ms)``."""
    if epoch_ms <= 0:
        raise ValueError(f"epoch_ms must be positive, got {epoch_ms}")
    if timestamp_ms < 0:
        raise ValueError(f"timestamp must be non-negative, got {timestamp_ms}")
    return timestamp_ms // epoch_ms


def epoch_identity(venue: bytes, epoch: int) -> bytes:
    """The IBE identity of ``epoch`` at ``venue`` (a 32-byte venue id, e.g. the EIP-712 domain
    separator), so a key released for one venue or epoch opens nothing at another."""
    if type(venue) is not bytes or len(venue) != VENUE_BYTES:
        raise ValueError(f"venue id must be {VENUE_BYTES} bytes")
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch {epoch} out of range for uint64")
    return IDENTITY_PREFIX + venue + epoch.to_bytes(8, "big")


@functools.lru_cache(maxsize=256)
def identity_point(venue: bytes, epoch: int) -> G2Point:
    # remembered: a member hashes one epoch's identity to make its share, check each other
    # share and check the key (1.5 ms each time), all in the moments the key is waited for
    return hash_to_g2(epoch_identity(venue, epoch), SEALING_DST)


# ---------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True, slots=True)
class CommitteeKey:
    """The committee's public sealing key: ``P`` and every member's ``P_i`` (index i+1)."""

    threshold: int
    public_key: bytes  # P, compressed G1
    public_shares: tuple[bytes, ...]  # P_1..P_n, compressed G1
    _points: tuple[G1Point, tuple[G1Point, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        n = len(self.public_shares)
        if not 1 <= self.threshold <= n:
            raise ValueError(f"threshold {self.threshold} must be between 1 and {n} members")
        master = decode_g1(self.public_key, "public_key")
        shares = tuple(
            decode_g1(share, f"public_shares[{k}]") for k, share in enumerate(self.public_shares)
        )
        object.__setattr__(self, "_points", (master, shares))

    @property
    def members(self) -> int:
        return len(self.public_shares)

    @property
    def point(self) -> G1Point:
        return self._points[0]

    def share_point(self, member: int) -> G1Point:
        return self._points[1][member - 1]


@dataclass(frozen=True, slots=True)
class KeyShare:
    """Member ``index``'s secret share ``s_i`` (never printed)."""

    index: int
    secret: int = field(repr=False)

    def __post_init__(self) -> None:
        if self.index < 1:
            raise ValueError("member indices start at 1")
        if not 0 < self.secret < R:
            raise ValueError("a key share is a non-zero scalar below the group order")


# ---------------------------------------------------------------------------------------------
# Decryption shares


@dataclass(frozen=True, slots=True)
class DecryptionShare:
    """Member ``member``'s share ``s_i·H(id)`` of the key of ``epoch`` (compressed G2)."""

    epoch: int
    member: int
    share: bytes

    def encode(self) -> bytes:
        """Canonical msgpack ``[epoch, member, share]``."""
        packed = msgpack.packb([self.epoch, self.member, self.share], use_bin_type=True)
        assert isinstance(packed, bytes)
        return packed

    @classmethod
    def decode(cls, data: bytes) -> DecryptionShare:
        """Strictly decode :meth:`encode`'s form (the share point is checked when verified)."""
        items = _unpack(data, "decryption share", 3)
        epoch, member, share = items
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise ValueError("decryption share: epoch must be a uint64")
        if type(member) is not int or not 1 <= member <= 0xFFFF:
            raise ValueError("decryption share: member must be an index from 1 to 65535")
        if type(share) is not bytes:
            raise ValueError("decryption share: share must be bytes")
        decoded = cls(epoch, member, share)
        if decoded.encode() != data:
            raise ValueError("decryption share: non-canonical encoding")
        return decoded


def _unpack(data: bytes, what: str, count: int) -> list[Any]:
    if type(data) is not bytes or len(data) > 256:
        raise ValueError(f"{what}: expected at most 256 bytes")
    try:
        items = msgpack.unpackb(data, raw=False, max_map_len=0, max_ext_len=0, max_array_len=8)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"{what}: not a msgpack document: {exc}") from None
    if type(items) is not list or len(items) != count:
        raise ValueError(f"{what}: expected an array of {count} items")
    return items


class ShareFault(Enum):
    NOT_A_MEMBER = "not_a_member"
    WRONG_EPOCH = "wrong_epoch"
    MALFORMED = "malformed"  # not a canonical, non-identity G2 point of the subgroup
    FAILED_EQUATION = "failed_equation"  # e(g1, share) != e(P_i, H(id)): provably wrong


class ShareRefused(ValueError):
    """A decryption share that is not accepted; ``member`` and ``share`` attribute it."""

    def __init__(self, fault: ShareFault, share: DecryptionShare, detail: str):
        super().__init__(f"share of member {share.member} for epoch {share.epoch}: {detail}")
        self.fault = fault
        self.member = share.member
        self.share = share


def create_decryption_share(key: KeyShare, venue: bytes, epoch: int) -> DecryptionShare:
    """Member ``key.index``'s share of the key of ``epoch``.

    The committee runtime calls this only once the block closing ``epoch`` is committed; the
    function itself does not know about blocks.
    """
    point = identity_point(venue, epoch) * scalar(key.secret)
    return DecryptionShare(epoch, key.index, encode_g2(point))


def verify_decryption_share(
    committee: CommitteeKey, venue: bytes, epoch: int, share: DecryptionShare
) -> G2Point:
    """Return the share's point if it is member ``share.member``'s correct share of ``epoch``.

    Raises :class:`ShareRefused` naming the fault otherwise.
    """
    return _verify_share(committee, identity_point(venue, epoch), epoch, share)


def _verify_share(
    committee: CommitteeKey, identity: G2Point, epoch: int, share: DecryptionShare
) -> G2Point:
    if not 1 <= share.member <= committee.members:
        raise ShareRefused(
            ShareFault.NOT_A_MEMBER,
            share,
            f"no member {share.member} in a committee of {committee.members}",
        )
    if share.epoch != epoch:
        raise ShareRefused(ShareFault.WRONG_EPOCH, share, f"expected epoch {epoch}")
    try:
        point = decode_g2(share.share, "share")
    except PointError as exc:
        raise ShareRefused(ShareFault.MALFORMED, share, str(exc)) from None
    # e(g1, share) == e(P_i, Q)  <=>  e(-g1, share) · e(P_i, Q) == 1
    if not pairing_check([-g1_generator(), committee.share_point(share.member)], [point, identity]):
        raise ShareRefused(
            ShareFault.FAILED_EQUATION, share, "e(g1, share) != e(P_i, H(epoch identity))"
        )
    return point


@dataclass(frozen=True, slots=True)
class EpochKey:
    """The decryption key ``s·H(id)`` of one epoch (compressed G2)."""

    epoch: int
    key: bytes
    _point: G2Point = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_point", decode_g2(self.key, "epoch key"))

    @property
    def point(self) -> G2Point:
        return self._point

    def encode(self) -> bytes:
        """Canonical msgpack ``[epoch, key]``: how a key travels in a block."""
        packed = msgpack.packb([self.epoch, self.key], use_bin_type=True)
        assert isinstance(packed, bytes)
        return packed

    @classmethod
    def decode(cls, data: bytes) -> EpochKey:
        """Strictly decode :meth:`encode`'s form; the point must be a usable G2 point
        (``PointError``, a ``ValueError``, otherwise). Whether it is *the* key is
        :func:`verify_epoch_key`'s question."""
        epoch, key = _unpack(data, "epoch key", 2)
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise ValueError("epoch key: epoch must be a uint64")
        if type(key) is not bytes:
            raise ValueError("epoch key: key must be bytes")
        decoded = cls(epoch, key)
        if decoded.encode() != data:
            raise ValueError("epoch key: non-canonical encoding")
        return decoded


@dataclass(frozen=True, slots=True)
class Combination:
    """What :func:`combine_decryption_shares` made of the shares it was given."""

    key: EpochKey | None  # None: fewer than ``threshold`` valid shares
    used: tuple[int, ...]  # members whose shares went into the key
    refused: tuple[ShareRefused, ...]  # faulty shares, attributed
    duplicates: tuple[int, ...]  # members that sent more than one valid share (first one kept)


def lagrange_at_zero(indices: Sequence[int]) -> list[int]:
    """Coefficients ``λ_i`` with ``f(0) = Σ λ_i f(i)`` for distinct non-zero ``indices``."""
    if len(set(indices)) != len(indices) or any(i % R == 0 for i in indices):
        raise ValueError("interpolation needs distinct non-zero indices")
    coefficients = []
    for i in indices:
        numerator = denominator = 1
        for j in indices:
            if j != i:
                numerator = numerator * j % R
                denominator = denominator * (j - i) % R
        coefficients.append(numerator * pow(denominator, -1, R) % R)
    return coefficients


def combine_decryption_shares(
    committee: CommitteeKey, venue: bytes, epoch: int, shares: Iterable[DecryptionShare]
) -> Combination:
    """Verify ``shares`` and, if ``threshold`` members' shares are valid, the epoch key.

    Deterministic in its input: shares are verified in the order given, the ``threshold``
    lowest member indices with valid shares are interpolated (any t valid shares give the
    same key, so the choice only fixes which members are reported as used).
    """
    identity = identity_point(venue, epoch)
    valid: dict[int, G2Point] = {}
    refused: list[ShareRefused] = []
    duplicates: list[int] = []
    for share in shares:
        try:
            point = _verify_share(committee, identity, epoch, share)
        except ShareRefused as exc:
            refused.append(exc)
            continue
        if share.member in valid:
            duplicates.append(share.member)
            continue
        valid[share.member] = point
    if len(valid) < committee.threshold:
        return Combination(None, tuple(sorted(valid)), tuple(refused), tuple(duplicates))
    used = sorted(valid)[: committee.threshold]
    key_point = g2_multiexp([valid[i] for i in used], lagrange_at_zero(used))
    key = EpochKey(epoch, encode_g2(key_point))
    return Combination(key, tuple(used), tuple(refused), tuple(duplicates))


def verify_epoch_key(committee: CommitteeKey, venue: bytes, key: EpochKey) -> bool:
    """True when ``key`` is the committee's key for its epoch: ``e(g1, key) = e(P, H(id))``.

    A node that received a combined key from elsewhere checks it here instead of the shares.
    """
    identity = identity_point(venue, key.epoch)
    return pairing_check([-g1_generator(), committee.point], [key.point, identity])
