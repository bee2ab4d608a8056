"""Binary Merkle tree over keccak256, shared by the engine's state root and the contract.

Invariants:
- A leaf hash is whatever 32 bytes the caller supplies (callers hash their own encodings).
- The tree is positional: the leaves keep their order, and the list is padded with
  ``ZERO_HASH`` leaves up to the next power of two; an empty tree has root ``ZERO_HASH``.
- An inner node is ``keccak256(left || right)``. A proof is the list of sibling hashes from
  the leaf up, and the leaf's index tells at each level whether the sibling is on the left
  (bit set) or the right (bit clear). ``contracts/Settlement.sol`` verifies exactly this.
"""

from __future__ import annotations

from collections.abc import Sequence

from asyncdex.types.hashing import keccak256

ZERO_HASH = b"\x00" * 32


def _padded(leaves: Sequence[bytes]) -> list[bytes]:
    size = 1
    while size < len(leaves):
        size *= 2
    return list(leaves) + [ZERO_HASH] * (size - len(leaves))


def merkle_levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first and the root's one-element level last."""
    if not leaves:
        return [[ZERO_HASH]]
    level = _padded(leaves)
    levels = [level]
    while len(level) > 1:
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over ``leaves`` (32-byte hashes)."""
    return merkle_levels(leaves)[-1][0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` up to (not including) the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for {len(leaves)} leaves")
    proof = []
    for level in merkle_levels(leaves)[:-1]:
        proof.append(level[index ^ 1])
        index //= 2
    return proof


def verify_proof(root: bytes, leaf: bytes, index: int, proof: Sequence[bytes]) -> bool:
    """True when ``leaf`` at ``index`` with ``proof`` hashes up to ``root``."""
    node = leaf
    for sibling in proof:
        node = keccak256(sibling + node) if index & 1 else keccak256(node + sibling)
        index //= 2
    return index == 0 and node == root
