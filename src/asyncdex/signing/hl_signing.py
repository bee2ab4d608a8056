"""Hyperliquid-compatible signature verification (what ``hyperliquid-python-sdk`` signs).

Invariants:

- A trading ("L1") action is hashed exactly as received: msgpack of the parsed JSON object in
  its received key order ‖ nonce (8 bytes big-endian) ‖ ``0x00`` or ``0x01``‖vault (20
  bytes) ‖ optionally ``0x00``‖expiresAfter (8 bytes big-endian); keccak256 of that is the
  ``connectionId``. The action is never re-serialised from a model, so a client's exact
  bytes are what is verified.
- The signed message is the phantom agent ``Agent(string source, bytes32 connectionId)`` in
  domain ``{name: "Exchange", version: "1", chainId: 1337, verifyingContract: 0x0…0}``,
  with source ``"a"`` on mainnet and ``"b"`` elsewhere. The venue's flag decides; the
  client's choice is not trusted.
- A user-signed (transfer-type) action is the EIP-712 struct
  ``HyperliquidTransaction:<Action>`` over the action's own fields, in domain
  ``{name: "HyperliquidSignTransaction", version: "1", chainId: signatureChainId,
  verifyingContract: 0x0…0}``. Its ``hyperliquidChain`` must equal the venue's
  (``"Mainnet"``/``"Testnet"``); a mismatch is refused rather than recovered to a stranger.
- Recovery goes through :func:`asyncdex.signing.eip712.recover_address`: low-s only, v 27/28.
  These functions return the signer; mapping it to an account (itself or the master of an
  approved agent) is stateful and belongs to the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

from asyncdex.signing.eip712 import (
    Domain,
    EIP712EncodingError,
    StructType,
    domain_separator,
    recover_address,
    signature_from_rsv,
    typed_data_digest,
)
from asyncdex.types.hashing import keccak256

ZERO_ADDRESS = bytes(20)
AGENT_DOMAIN = Domain("Exchange", "1", 1337, ZERO_ADDRESS)
AGENT_TYPE = StructType("Agent", [("source", "string"), ("connectionId", "bytes32")])
USER_SIGNED_DOMAIN_NAME = "HyperliquidSignTransaction"

MAINNET_SOURCE = "a"
TESTNET_SOURCE = "b"


class MalformedAction(ValueError):
    """A Hyperliquid action or signature object does not have the expected shape."""


def _user_signed(name: str, fields: list[tuple[str, str]]) -> StructType:
    return StructType(f"HyperliquidTransaction:{name}", [("hyperliquidChain", "string"), *fields])


USER_SIGNED_TYPES: Mapping[str, StructType] = {
    "usdSend": _user_signed(
        "UsdSend", [("destination", "string"), ("amount", "string"), ("time", "uint64")]
    ),
    "spotSend": _user_signed(
        "SpotSend",
        [("destination", "string"), ("token", "string"), ("amount", "string"), ("time", "uint64")],
    ),
    "withdraw3": _user_signed(
        "Withdraw", [("destination", "string"), ("amount", "string"), ("time", "uint64")]
    ),
    "usdClassTransfer": _user_signed(
        "UsdClassTransfer", [("amount", "string"), ("toPerp", "bool"), ("nonce", "uint64")]
    ),
    "sendAsset": _user_signed(
        "SendAsset",
        [
            ("destination", "string"),
            ("sourceDex", "string"),
            ("destinationDex", "string"),
            ("token", "string"),
            ("amount", "string"),
            ("fromSubAccount", "string"),
            ("nonce", "uint64"),
        ],
    ),
    "approveAgent": _user_signed(
        "ApproveAgent",
        [("agentAddress", "address"), ("agentName", "string"), ("nonce", "uint64")],
    ),
    "approveBuilderFee": _user_signed(
        "ApproveBuilderFee",
        [("maxFeeRate", "string"), ("builder", "address"), ("nonce", "uint64")],
    ),
}
"""Action ``type`` -> its EIP-712 struct (field lists as in hyperliquid-python-sdk 0.24.0)."""

# The SDK signs approveAgent with agentName "" when no name is given, then deletes the key
# before posting; the verifier must put the empty name back to get the signed message.
_USER_SIGNED_DEFAULTS: Mapping[str, Mapping[str, Any]] = {"approveAgent": {"agentName": ""}}

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_WORD = re.compile(r"0x[0-9a-fA-F]{1,64}")


def hyperliquid_chain(is_mainnet: bool) -> str:
    return "Mainnet" if is_mainnet else "Testnet"


# ---------------------------------------------------------------------------------------------
# Trading (L1) actions


def action_hash(
    action: object, nonce: int, vault_address: bytes | str | None, expires_after: int | None
) -> bytes:
    """Return the 32-byte connectionId of a trading action (see the module invariants)."""
    try:
        packed = msgpack.packb(action)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MalformedAction(f"action cannot be msgpack-encoded: {exc}") from None
    data = packed + _uint64(nonce, "nonce")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + _address(vault_address, "vaultAddress")
    if expires_after is not None:
        data += b"\x00" + _uint64(expires_after, "expiresAfter")
    return keccak256(data)


def phantom_agent_digest(connection_id: bytes, *, is_mainnet: bool = False) -> bytes:
    """Return the EIP-712 digest of ``Agent{source, connectionId}`` in the Exchange domain."""
    source = MAINNET_SOURCE if is_mainnet else TESTNET_SOURCE
    try:
        struct_hash = AGENT_TYPE.hash((source, connection_id))
    except EIP712EncodingError as exc:
        raise MalformedAction(str(exc)) from None
    return typed_data_digest(domain_separator(AGENT_DOMAIN), struct_hash)


def l1_action_digest(
    action: object,
    nonce: int,
    vault_address: bytes | str | None,
    expires_after: int | None,
    *,
    is_mainnet: bool = False,
) -> bytes:
    """Return the digest an agent or account key signs for a trading action."""
    return phantom_agent_digest(
        action_hash(action, nonce, vault_address, expires_after), is_mainnet=is_mainnet
    )


def recover_l1_action_signer(
    action: object,
    signature: Mapping[str, Any],
    nonce: int,
    vault_address: bytes | str | None,
    expires_after: int | None,
    *,
    is_mainnet: bool = False,
) -> bytes:
    """Return the 20-byte address that signed a trading action (an agent or the account)."""
    digest = l1_action_digest(action, nonce, vault_address, expires_after, is_mainnet=is_mainnet)
    return recover_address(digest, parse_signature(signature))


# ---------------------------------------------------------------------------------------------
# User-signed (transfer-type) actions


def user_signed_digest(action: Mapping[str, Any], *, is_mainnet: bool = False) -> bytes:
    """Return the EIP-712 digest of a user-signed action such as ``withdraw3``."""
    if not isinstance(action, Mapping):
        raise MalformedAction("action must be an object")
    action_type = action.get("type")
    if not isinstance(action_type, str) or action_type not in USER_SIGNED_TYPES:
        raise MalformedAction(f"not a user-signed action type: {action_type!r}")
    struct = USER_SIGNED_TYPES[action_type]
    expected_chain = hyperliquid_chain(is_mainnet)
    if action.get("hyperliquidChain") != expected_chain:
        raise MalformedAction(
            f"hyperliquidChain must be {expected_chain!r}, got {action.get('hyperliquidChain')!r}"
        )
    chain_id_text = action.get("signatureChainId")
    if not isinstance(chain_id_text, str) or not _HEX_WORD.fullmatch(chain_id_text):
        raise MalformedAction("signatureChainId must be a 0x-prefixed hex string")
    defaults = _USER_SIGNED_DEFAULTS.get(action_type, {})
    values = []
    for field_name, field_type in zip(struct.field_names, struct.field_types, strict=True):
        if field_name in action:
            value = action[field_name]
        elif field_name in defaults:
            value = defaults[field_name]
        else:
            raise MalformedAction(f"{action_type}: missing field {field_name!r}")
        values.append(_USER_FIELD_PARSERS[str(field_type)](value, field_name))
    try:
        struct_hash = struct.hash(values)
    except EIP712EncodingError as exc:
        raise MalformedAction(f"{action_type}: {exc}") from None
    domain = Domain(USER_SIGNED_DOMAIN_NAME, "1", int(chain_id_text, 16), ZERO_ADDRESS)
    return typed_data_digest(domain_separator(domain), struct_hash)


def recover_user_signed_signer(
    action: Mapping[str, Any], signature: Mapping[str, Any], *, is_mainnet: bool = False
) -> bytes:
    """Return the 20-byte address that signed a user-signed action (must be the account)."""
    return recover_address(
        user_signed_digest(action, is_mainnet=is_mainnet), parse_signature(signature)
    )


# ---------------------------------------------------------------------------------------------
# Wire helpers


def parse_signature(signature: Mapping[str, Any]) -> bytes:
    """Turn ``{"r": "0x…", "s": "0x…", "v": 27}`` into 65 bytes ``r‖s‖v``.

    r and s arrive as hex integers without zero padding (``to_hex(int)``), so they are parsed
    as integers, never as fixed-width byte strings.
    """
    if not isinstance(signature, Mapping):
        raise MalformedAction("signature must be an object {r, s, v}")
    r, s, v = signature.get("r"), signature.get("s"), signature.get("v")
    if not (isinstance(r, str) and _HEX_WORD.fullmatch(r)):
        raise MalformedAction("signature.r must be a 0x-prefixed hex string of at most 64 digits")
    if not (isinstance(s, str) and _HEX_WORD.fullmatch(s)):
        raise MalformedAction("signature.s must be a 0x-prefixed hex string of at most 64 digits")
    if type(v) is not int or not 0 <= v < 256:
        raise MalformedAction("signature.v must be an integer (27 or 28)")
    return signature_from_rsv(int(r, 16), int(s, 16), v)


def _uint64(value: int, name: str) -> bytes:
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise MalformedAction(f"{name} must be an unsigned 64-bit integer")
    return value.to_bytes(8, "big")


def _address(value: bytes | str, name: str) -> bytes:
    if isinstance(value, bytes) and len(value) == 20:
        return value
    if isinstance(value, str) and _HEX_ADDRESS.fullmatch(value):
        # Any letter case: the bytes are what is signed, and clients send lowercase or EIP-55.
        return bytes.fromhex(value[2:])
    raise MalformedAction(f"{name} must be a 0x-prefixed 20-byte hex address")


def _parse_string(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise MalformedAction(f"{name} must be a string")
    return value


def _parse_bool(value: Any, name: str) -> Any:
    if not isinstance(value, bool):
        raise MalformedAction(f"{name} must be a boolean")
    return value


def _parse_uint64(value: Any, name: str) -> Any:
    _uint64(value, name)
    return value


def _parse_address(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        raise MalformedAction(f"{name} must be a 0x-prefixed 20-byte hex address")
    return _address(value, name)


_USER_FIELD_PARSERS: Mapping[str, Callable[[Any, str], Any]] = {
    "string": _parse_string,
    "bool": _parse_bool,
    "uint64": _parse_uint64,
    "address": _parse_address,
}
