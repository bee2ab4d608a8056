"""asyncdex.commitment: the Merkle tree and the leaves that state roots and proofs commit to.

Invariants:

- Pure functions of bytes and integers (keccak256 only): no clock, no I/O, no state, so the
  engine's ``state_root`` can build on it and stay deterministic.
- The same scheme as the settlement contract's ``verifyProof`` and leaf functions; a change
  here is a change of the on-chain format.
- Imports only ``asyncdex.types``; never the engine, the settlement package or anything above
  (see ``tests/unit/test_layering.py``).
"""
