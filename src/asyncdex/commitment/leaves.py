"""Leaf encodings of the settlement Merkle trees, the one definition both sides use.

Invariants:
- ``exit_leaf`` and ``withdrawal_leaf`` are byte for byte ``Settlement.exitLeaf`` and
  ``Settlement.withdrawalLeaf``: keccak256 of the Solidity ``abi.encode`` of their fields.
- The engine's state root is ``merkle_root`` over the exit leaves of every account sorted by
  address (ascending, as 20-byte integers), followed by exactly one global
  leaf (``asyncdex.engine.state_root`` builds the tree).
- An exit value is the account's collateral plus its settled PnL at the batch's mark prices,
  floored at 0, in collateral base units (USDC, 10^-6); it is what ``Settlement.exit`` pays.
- A withdrawal appears in the withdrawals root of the batch whose state root first excludes it
  from the account's exit value, and its id is never reused; so after a freeze, exits from the
  exit batch and claims from batches up to it never pay the same money twice.
- The global leaf's preimage must never start with twelve zero bytes (``abi.encode(address,
  ...)`` always does), or a 96-byte global preimage whose first word is a small number would
  prove an "exit" for the address equal to that number. The engine's global leaf hashes a
  msgpack array, whose first byte (0x9N / 0xdc) is never zero; ``is_unambiguous_global_preimage``
  states the rule for any future encoding.
- Inner nodes hash 64 bytes and leaves 96, so no leaf can pass for an inner node or back.
"""

from __future__ import annotations

from asyncdex.types.hashing import keccak256


def _address_bytes(account: str | bytes) -> bytes:
    raw = bytes.fromhex(account.removeprefix("0x")) if isinstance(account, str) else account
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(raw)}")
    return raw


def exit_leaf(account: str | bytes, exit_value: int, account_state_hash: bytes) -> bytes:
    """keccak256(abi.encode(address account, uint256 exitValue, bytes32 accountStateHash)).

    Written out by hand (three 32-byte words) because the state root computes one per
    account; ``tests/unit/settlement`` checks it against ``eth_abi`` and the contract.
    """
    if not 0 <= exit_value < 1 << 256 or len(account_state_hash) != 32:
        raise ValueError("exit value must fit uint256 and the state hash be 32 bytes")
    return keccak256(
        _address_bytes(account).rjust(32, b"\x00")
        + exit_value.to_bytes(32, "big")
        + account_state_hash
    )


def withdrawal_leaf(withdrawal_id: int, account: str | bytes, amount: int) -> bytes:
    """keccak256(abi.encode(uint256 withdrawalId, address account, uint256 amount))."""
    if not 0 <= withdrawal_id < 1 << 256 or not 0 <= amount < 1 << 256:
        raise ValueError("withdrawal id and amount must fit uint256")
    return keccak256(
        withdrawal_id.to_bytes(32, "big")
        + _address_bytes(account).rjust(32, b"\x00")
        + amount.to_bytes(32, "big")
    )


def is_unambiguous_global_preimage(preimage: bytes) -> bool:
    """True when ``preimage`` can never be mistaken for an exit leaf's abi encoding."""
    return len(preimage) != 96 or preimage[:12] != b"\x00" * 12
