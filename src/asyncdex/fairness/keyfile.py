"""The JSON form of a member's sealing key: the committee's public key from the DKG and, for a
member, its secret share.

Invariants:

- ``{"threshold": t, "public_key": "0x" + 96 hex, "public_shares": ["0x" + 96 hex, ...],
  "member": i, "share": "0x" + 64 hex}``; ``member`` and ``share`` are absent for a node that
  holds no share (a follower). Parsing is strict (unknown or missing keys, wrong types,
  points that are not usable G1 points, a share that does not match its public share) and
  raises ``ValueError`` naming the key: a member with a wrong share would release shares the
  others refuse, so it is refused before the node starts.
- Pure: the caller reads and writes the file (with permissions a secret deserves).
"""

from __future__ import annotations

from typing import Any

from asyncdex.fairness.bls import (
    G1_BYTES,
    SCALAR_BYTES,
    R,
    encode_g1,
    encode_scalar,
    g1_generator,
    g1_mul,
)
from asyncdex.fairness.threshold import CommitteeKey, KeyShare

_PUBLIC = frozenset({"threshold", "public_key", "public_shares"})
_SECRET = frozenset({"member", "share"})


def sealing_key_document(key: CommitteeKey, share: KeyShare | None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "threshold": key.threshold,
        "public_key": "0x" + key.public_key.hex(),
        "public_shares": ["0x" + p.hex() for p in key.public_shares],
    }
    if share is not None:
        document["member"] = share.index
        document["share"] = "0x" + encode_scalar(share.secret).hex()
    return document


def parse_sealing_key_document(document: Any) -> tuple[CommitteeKey, KeyShare | None]:
    if not isinstance(document, dict):
        raise ValueError("a sealing key is a JSON object")
    keys = set(document)
    unknown = sorted(keys - _PUBLIC - _SECRET)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}")
    missing = sorted(_PUBLIC - keys)
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    if keys & _SECRET and not keys >= _SECRET:
        raise ValueError("member and share go together")
    threshold = document["threshold"]
    if type(threshold) is not int:
        raise ValueError("threshold: expected an integer")
    shares = document["public_shares"]
    if not isinstance(shares, list):
        raise ValueError("public_shares: expected a list")
    public_key = _hex(document["public_key"], G1_BYTES, "public_key")
    public_shares = tuple(_hex(p, G1_BYTES, f"public_shares[{k}]") for k, p in enumerate(shares))
    key = CommitteeKey(threshold, public_key, public_shares)  # checks the points
    if "share" not in document:
        return key, None
    member = document["member"]
    if type(member) is not int or not 1 <= member <= key.members:
        raise ValueError(f"member: expected an index from 1 to {key.members}")
    secret = int.from_bytes(_hex(document["share"], SCALAR_BYTES, "share"), "big")
    if not 0 < secret < R:
        raise ValueError("share: not a non-zero scalar below the group order")
    if encode_g1(g1_mul(g1_generator(), secret)) != key.public_shares[member - 1]:
        raise ValueError(f"share: does not match public_shares[{member - 1}]")
    return key, KeyShare(member, secret)


def _hex(value: Any, size: int, where: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 2 + 2 * size:
        raise ValueError(f"{where}: expected 0x followed by {2 * size} hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ValueError(f"{where}: expected 0x followed by {2 * size} hex digits") from None
