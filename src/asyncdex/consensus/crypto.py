"""Member signatures: secp256k1 over 32-byte digests, identified by Ethereum addresses.

Invariants:
- A signature is 65 bytes ``r || s || v`` with ``v`` in {27, 28} and ``s`` in the lower half
  of the curve order, so every (key, digest) has exactly one accepted signature and the same
  bytes verify with ``ecrecover`` on chain (equivocation evidence, batch certificates).
- A member is known by its address (the last 20 bytes of keccak256 of its public key); a
  signature verifies for an address only if it recovers to that address, so no member can
  produce a signature that verifies for another.
- Verification is a plain function of (address, digest, signature): ``CachingVerifier`` may
  therefore remember answers, and one cache may be shared by every replica of a simulation.
"""

from __future__ import annotations

from typing import Protocol

from coincurve import PrivateKey, PublicKey

from asyncdex.types.hashing import keccak256

SIGNATURE_SIZE = 65
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


class Signer(Protocol):
    """Signs digests as one member; the only holder of that member's key."""

    @property
    def address(self) -> bytes: ...

    def sign(self, digest: bytes) -> bytes: ...


class Verifier(Protocol):
    """True when ``signature`` over ``digest`` was made by the key of ``address``."""

    def __call__(self, address: bytes, digest: bytes, signature: bytes) -> bool: ...


def address_of(public_key: PublicKey) -> bytes:
    """The Ethereum address of a public key."""
    return keccak256(public_key.format(compressed=False)[1:])[12:]


class Secp256k1Signer:
    """A member key. Signing is deterministic (RFC 6979), so a replay signs identically."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError(f"a secp256k1 secret is 32 bytes, got {len(secret)}")
        self._key = PrivateKey(secret)
        self._address = address_of(self._key.public_key)

    @classmethod
    def from_seed(cls, seed: bytes) -> Secp256k1Signer:
        """A key derived from ``seed`` (tests and simulations only: never for real stake)."""
        return cls(keccak256(b"asyncdex/consensus/test-key/" + seed))

    @property
    def address(self) -> bytes:
        return self._address

    def sign(self, digest: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError(f"sign a 32-byte digest, got {len(digest)} bytes")
        raw = self._key.sign_recoverable(digest, hasher=None)
        # libsecp256k1 already emits low-s signatures; only the recovery id needs +27
        return raw[:64] + bytes([raw[64] + 27])


class Secp256k1Verifier:
    """Verifies by public-key recovery, as ``ecrecover`` does on chain."""

    def __call__(self, address: bytes, digest: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_SIZE or len(digest) != 32:
            return False
        v = signature[64]
        if v not in (27, 28):
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:64], "big")
        # high-s twins are refused so a signature has one form (no malleated duplicates)
        if not (0 < r < _SECP256K1_N and 0 < s <= _HALF_N):
            return False
        try:
            public = PublicKey.from_signature_and_message(
                signature[:64] + bytes([v - 27]), digest, hasher=None
            )
        except Exception:  # coincurve raises plain Exception for unrecoverable input
            return False
        return address_of(public) == address


class CachingVerifier:
    """Remembers verification answers (positive and negative) of an inner verifier.

    Safe because verification is a pure function of its arguments; the bound keeps memory
    flat in long simulations (the cache is cleared when full, which costs only speed).
    """

    def __init__(self, inner: Verifier | None = None, max_entries: int = 200_000) -> None:
        self._inner: Verifier = inner if inner is not None else Secp256k1Verifier()
        self._max_entries = max_entries
        self._answers: dict[tuple[bytes, bytes, bytes], bool] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, address: bytes, digest: bytes, signature: bytes) -> bool:
        key = (address, digest, signature)
        answer = self._answers.get(key)
        if answer is not None:
            self.hits += 1
            return answer
        self.misses += 1
        answer = self._inner(address, digest, signature)
        if len(self._answers) >= self._max_entries:
            self._answers.clear()
        self._answers[key] = answer
        return answer
