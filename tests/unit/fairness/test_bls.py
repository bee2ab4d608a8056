"""Curve helpers: strict point decoding and the one serialization keys are derived from."""

from __future__ import annotations

import pytest

from asyncdex.fairness.bls import (
    G1_BYTES,
    G2_BYTES,
    PointError,
    R,
    decode_g1,
    decode_g2,
    decode_scalar,
    encode_g1,
    encode_g2,
    g1_generator,
    g1_mul,
    g2_generator,
    g2_mul,
    gt_bytes,
    hash_to_g2,
    pairing,
)
from asyncdex.types.hashing import keccak256

# keccak256 of gt_bytes(e(g1, g2)) as py-arkworks-bls12381 0.5.0 serializes it. Members derive
# AEAD keys from these bytes: a library upgrade that changes them would split the committee
# from every client that sealed with the old form, so it must fail here first.
GT_GENERATOR_DIGEST = "8cf9fb0d19ad2bf4d67ed58cda8315ebce284355927b385dc773ee6fcbd1d6bc"


def test_gt_bytes_known_answer() -> None:
    assert keccak256(gt_bytes(pairing(g1_generator(), g2_generator()))).hex() == GT_GENERATOR_DIGEST


def test_gt_bytes_is_a_function_of_the_group_element_not_of_how_it_was_computed() -> None:
    q = hash_to_g2(b"epoch", b"TEST-DST")
    left = gt_bytes(pairing(g1_mul(g1_generator(), 7), q))
    right = gt_bytes(pairing(g1_generator(), g2_mul(q, 7)))
    assert left == right
    assert len(left) == 576
    assert left != gt_bytes(pairing(g1_generator(), q))


def test_points_round_trip() -> None:
    p = g1_mul(g1_generator(), 12345)
    q = g2_mul(g2_generator(), 12345)
    assert decode_g1(encode_g1(p), "p") == p
    assert decode_g2(encode_g2(q), "q") == q


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01" * 47, "expected 48 bytes, got 47"),
        (bytes([0xC0]) + bytes(47), "identity"),
        (b"\xff" * 48, "not the canonical"),  # the library reads this as the identity
        (bytes([0x80]) + bytes(46) + b"\x01", "not a point of G1"),  # x = 1: no y
        (bytes([0x80]) + bytes(46) + b"\x05", "not in the prime-order subgroup"),
    ],
)
def test_decode_g1_refuses(data: bytes, message: str) -> None:
    with pytest.raises(PointError, match=message):
        decode_g1(data, "p")


def test_decode_g2_refuses_a_g1_point_and_the_identity() -> None:
    with pytest.raises(PointError, match=f"expected {G2_BYTES} bytes, got {G1_BYTES}"):
        decode_g2(encode_g1(g1_generator()), "q")
    with pytest.raises(PointError, match="identity"):
        decode_g2(bytes([0xC0]) + bytes(95), "q")


def test_decode_scalar_refuses_the_group_order() -> None:
    assert decode_scalar((R - 1).to_bytes(32, "big"), "s") == R - 1
    with pytest.raises(ValueError, match="not below the group order"):
        decode_scalar(R.to_bytes(32, "big"), "s")
