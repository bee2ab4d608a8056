"""BLS12-381 arithmetic for sealed intents: scalars, strict point decoding, pairing bytes.

Invariants:

- Scalars are Python ints reduced modulo the group order ``R``; conversion to the library's
  ``Scalar`` happens here only, so callers never meet a value the library would refuse.
- A point is accepted from bytes only in its canonical compressed form (48 bytes in G1, 96 in
  G2), on the curve, in the prime-order subgroup and not the identity: decoding re-encodes the
  point and compares, because the library accepts some non-canonical flag bytes. Anything else
  raises :class:`PointError` saying what was wrong.
- :func:`gt_bytes` is the one serialization of a pairing result that keys are derived from.
  The library offers only a hex string form; it is read strictly (exactly 1,152 lowercase hex
  digits, the 576-byte canonical serialization of an Fp12 element), and the library version
  is pinned in ``pyproject.toml`` because every member must derive the same bytes. A
  known-answer test (tests/unit/fairness/test_bls.py) fails if an upgrade changes them.
- No clock, no I/O; randomness only in :func:`random_scalar`, which takes the caller's RNG or
  uses ``secrets``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence

from py_arkworks_bls12381 import GT, G1Point, G2Point, Scalar

R = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
"""The order of G1, G2 and GT."""

G1_BYTES = 48
G2_BYTES = 96
GT_BYTES = 576
SCALAR_BYTES = 32

RandomBits = Callable[[int], int]
"""``getrandbits``-shaped source of randomness (``random.Random(seed).getrandbits`` in tests)."""


class PointError(ValueError):
    """Bytes that are not the canonical encoding of a usable curve point."""


def scalar(value: int) -> Scalar:
    """The library scalar for ``value mod R``."""
    return Scalar.from_be_bytes((value % R).to_bytes(SCALAR_BYTES, "big"))


def random_scalar(rng: RandomBits | None = None) -> int:
    """A uniform non-zero scalar; ``rng`` for reproducible tests, else the OS's CSPRNG."""
    draw = rng if rng is not None else secrets.randbits
    while True:
        # 64 extra bits make the bias of reducing modulo R negligible (< 2^-64)
        value = draw(SCALAR_BYTES * 8 + 64) % R
        if value:
            return value


def g1_generator() -> G1Point:
    return G1Point()


def g2_generator() -> G2Point:
    return G2Point()


def g1_mul(point: G1Point, value: int) -> G1Point:
    return point * scalar(value)


def g2_mul(point: G2Point, value: int) -> G2Point:
    return point * scalar(value)


def g1_multiexp(points: Sequence[G1Point], values: Sequence[int]) -> G1Point:
    """``sum(values[k] * points[k])``; points are already validated (decoded by this module)."""
    return G1Point.multiexp_unchecked(list(points), [scalar(v) for v in values])


def g2_multiexp(points: Sequence[G2Point], values: Sequence[int]) -> G2Point:
    return G2Point.multiexp_unchecked(list(points), [scalar(v) for v in values])


def encode_g1(point: G1Point) -> bytes:
    return point.to_compressed_bytes()


def encode_g2(point: G2Point) -> bytes:
    return point.to_compressed_bytes()


def decode_g1(data: bytes, what: str) -> G1Point:
    """Decode a canonical, non-identity G1 point in the prime-order subgroup."""
    if type(data) is not bytes or len(data) != G1_BYTES:
        raise PointError(f"{what}: expected {G1_BYTES} bytes, got {_length(data)}")
    try:
        # the unchecked read still solves the curve equation; the subgroup is checked below
        point = G1Point.from_compressed_bytes_unchecked(data)
    except ValueError:
        raise PointError(f"{what}: not a point of G1") from None
    _check_point(point, point.to_compressed_bytes() == data, point == G1Point.identity(), what)
    return point


def decode_g2(data: bytes, what: str) -> G2Point:
    """Decode a canonical, non-identity G2 point in the prime-order subgroup."""
    if type(data) is not bytes or len(data) != G2_BYTES:
        raise PointError(f"{what}: expected {G2_BYTES} bytes, got {_length(data)}")
    try:
        point = G2Point.from_compressed_bytes_unchecked(data)
    except ValueError:
        raise PointError(f"{what}: not a point of G2") from None
    _check_point(point, point.to_compressed_bytes() == data, point == G2Point.identity(), what)
    return point


def _check_point(point: G1Point | G2Point, canonical: bool, identity: bool, what: str) -> None:
    if not canonical:
        raise PointError(f"{what}: not the canonical compressed encoding")
    if identity:
        raise PointError(f"{what}: the identity point is not allowed")
    if not point.is_in_subgroup():
        raise PointError(f"{what}: not in the prime-order subgroup")


def _length(data: object) -> str:
    return str(len(data)) if isinstance(data, bytes | bytearray) else type(data).__name__


def hash_to_g2(message: bytes, dst: bytes) -> G2Point:
    """RFC 9380 hash to G2 (``BLS12381G2_XMD:SHA-256_SSWU_RO_``) under domain tag ``dst``."""
    return G2Point.hash_to_curve(message, dst)


def pairing(p: G1Point, q: G2Point) -> GT:
    return GT.pairing(p, q)


def pairing_check(g1s: Sequence[G1Point], g2s: Sequence[G2Point]) -> bool:
    """True when the product of ``e(g1s[k], g2s[k])`` is the identity of GT."""
    return GT.pairing_check(list(g1s), list(g2s))


_GT_HEX = re.compile(f"[0-9a-f]{{{2 * GT_BYTES}}}")


def gt_bytes(value: GT) -> bytes:
    """The 576-byte canonical serialization of a pairing result (see the invariants)."""
    text = str(value)
    if not _GT_HEX.fullmatch(text):
        raise AssertionError("py-arkworks-bls12381 changed its GT serialization; pin 0.5.0")
    return bytes.fromhex(text)


def encode_scalar(value: int) -> bytes:
    return (value % R).to_bytes(SCALAR_BYTES, "big")


def decode_scalar(data: bytes, what: str) -> int:
    """A 32-byte big-endian scalar strictly below ``R``."""
    if type(data) is not bytes or len(data) != SCALAR_BYTES:
        raise ValueError(f"{what}: expected {SCALAR_BYTES} bytes, got {_length(data)}")
    value = int.from_bytes(data, "big")
    if value >= R:
        raise ValueError(f"{what}: not below the group order")
    return value
