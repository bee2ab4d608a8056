"""Keccak-256, the one hash function of asyncdex.

Invariants: keccak256 here is Ethereum's Keccak-256 (not NIST SHA3-256); every commitment
(state roots, Merkle trees, EIP-712 digests, batch hashes) goes through this function so the
Python side and the settlement contract agree byte for byte.
"""

from __future__ import annotations

import sha3  # safe-pysha3: a C implementation, several times faster than the pure fallback


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 digest of ``data``."""
    return sha3.keccak_256(data).digest()
