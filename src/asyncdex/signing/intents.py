"""Signed trader intents: the EIP-712 types, stateless verification, binary and JSON codecs.

Invariants:

- Each intent kind is a frozen ``NamedTuple`` whose fields, in order, are exactly the
  fields of its EIP-712 struct (snake_case here, camelCase in EIP-712 and JSON). Every kind
  starts with ``account`` (the account acted for), ``nonce`` (uint64, per signer,
  millisecond-timestamp style) and ``expires_after`` (uint64 ms, 0 = none).
- A field name has one type in every kind (``market`` is always uint32, ``client_id`` always
  bytes16...): see ``FIELD_TYPES``. Kind tags (``KIND_*``) and EIP-712 type strings are part
  of the wire format and never change; a new kind takes a new tag.
- The signing domain is ``{name: "asyncdex", version: "1", chainId, verifyingContract}``
  where the contract is the settlement contract, so a signature is valid on one deployment
  of one chain only.
- ``verify_intent`` is stateless: it reads no clock and no account state. It returns the
  signer; whether the signer may act for ``account`` (itself or an approved agent), the nonce,
  the expiry and margin are checked later by the engine. The one stateless exception:
  ``ApproveAgent`` must be signed by the account key itself, so an agent can never approve
  another agent.
- The binary form is msgpack ``[kind, field..., signature]``; exactly one byte string encodes
  a given signed intent, and decoding refuses anything else (non-minimal integers, wrong
  types, wrong field counts, out-of-range values, trailing bytes, oversize payloads) with
  :class:`MalformedIntent`. The signer is never on the wire: it is recovered from the
  signature.
- ``validate_intent`` (run by both decoders) refuses values that no engine state could make
  meaningful: unknown enum values, a trigger kind without a trigger price or the reverse,
  zero leverage, over-long agent names.
- The JSON form is ``{"kind": "<TypeName>", <camelCase field>: value, ..., "signature"}``:
  integers are JSON numbers (never strings, never with a fraction), bytes and addresses are
  0x-hex of exact width, and parsing refuses unknown, missing or mistyped fields. uint64
  values can exceed 2^53, so JavaScript clients need a BigInt-aware JSON parser.

Why ``clientId`` is ``bytes16`` rather than ``uint128``: it is an opaque label, never
arithmetic; it maps one-to-one onto Hyperliquid's ``cloid`` (a 16-byte hex string); msgpack
has no 128-bit integer, so a uint128 would need a second encoding anyway; and JSON clients
get a fixed-width hex string instead of a number JavaScript cannot hold. All zeros means "no
client id".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any, NamedTuple, TypeAlias

import msgpack

from asyncdex.signing.eip712 import (
    Domain,
    EIP712EncodingError,
    LocalSigner,
    SignatureError,
    StructType,
    checksum_address,
    domain_separator,
    parse_address,
    recover_address,
)
from asyncdex.types.hashing import keccak256
from asyncdex.types.numeric import MAX_COLLATERAL

DOMAIN_NAME = "asyncdex"
DOMAIN_VERSION = "1"

ALL_MARKETS = 0xFFFF_FFFF
"""``CancelAll.market`` sentinel: cancel in every market (the largest uint32)."""

NO_CLIENT_ID = bytes(16)
MAX_AGENT_NAME_BYTES = 64
MAX_ENCODED_INTENT_BYTES = 512
"""Binary payload limit; the largest legal intent (ApproveAgent, 64-byte name) is 206 bytes."""

SIGNATURE_BYTES = 65


class OrderType(IntEnum):
    LIMIT = 0
    MARKET = 1


class TimeInForce(IntEnum):
    GTC = 0  # good til cancelled (or til PlaceOrder.expiry when that is non-zero)
    IOC = 1  # immediate or cancel
    FOK = 2  # fill or kill
    ALO = 3  # add liquidity only (post only)


class TriggerKind(IntEnum):
    NONE = 0
    STOP = 1
    TAKE_PROFIT = 2


# ---------------------------------------------------------------------------------------------
# Errors


class MalformedIntent(ValueError):
    """The intent or its encoding is not well formed; ``field`` names the culprit if known."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class SignerNotAccount(SignatureError):
    """An intent that only the account key may sign was signed by another key."""

    def __init__(self, message: str, *, signer: bytes, account: bytes):
        super().__init__(message)
        self.signer = signer
        self.account = account


# ---------------------------------------------------------------------------------------------
# Intent kinds


class PlaceOrder(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int
    is_buy: bool
    price: int  # ticks; for a market order, the worst acceptable price
    size: int  # lots
    order_type: int  # OrderType
    tif: int  # TimeInForce
    reduce_only: bool
    client_id: bytes  # 16 bytes, NO_CLIENT_ID for none
    expiry: int  # good-til-time in ms, 0 = none
    trigger_price: int  # ticks, 0 = none
    trigger_kind: int  # TriggerKind


class Cancel(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int
    order_id: int


class CancelByClientId(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int
    client_id: bytes


class CancelAll(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int  # ALL_MARKETS for every market


class Modify(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int
    order_id: int
    price: int
    size: int


class ScheduleCancel(NamedTuple):
    """Dead-man switch: cancel all orders at ``time`` (ms) unless renewed; 0 clears it."""

    account: bytes
    nonce: int
    expires_after: int
    time: int


class SetLeverage(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int
    leverage: int
    isolated: bool


class UpdateIsolatedMargin(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    market: int
    delta: int  # USDC 10^-6; positive adds margin to the isolated position, negative removes


class Withdraw(NamedTuple):
    account: bytes
    nonce: int
    expires_after: int
    amount: int  # USDC 10^-6
    destination: bytes  # address on the base chain


class ApproveAgent(NamedTuple):
    """Let ``agent`` sign for ``account`` until ``valid_until`` (ms, 0 = no expiry)."""

    account: bytes
    nonce: int
    expires_after: int
    agent: bytes
    name: str
    valid_until: int


Intent: TypeAlias = (
    PlaceOrder
    | Cancel
    | CancelByClientId
    | CancelAll
    | Modify
    | ScheduleCancel
    | SetLeverage
    | UpdateIsolatedMargin
    | Withdraw
    | ApproveAgent
)

KIND_PLACE_ORDER = 1
KIND_CANCEL = 2
KIND_CANCEL_BY_CLIENT_ID = 3
KIND_CANCEL_ALL = 4
KIND_MODIFY = 5
KIND_SCHEDULE_CANCEL = 6
KIND_SET_LEVERAGE = 7
KIND_UPDATE_ISOLATED_MARGIN = 8
KIND_WITHDRAW = 9
KIND_APPROVE_AGENT = 10

FIELD_TYPES: Mapping[str, str] = {
    "account": "address",
    "nonce": "uint64",
    "expires_after": "uint64",
    "market": "uint32",
    "is_buy": "bool",
    "price": "uint64",
    "size": "uint64",
    "order_type": "uint8",
    "tif": "uint8",
    "reduce_only": "bool",
    "client_id": "bytes16",
    "expiry": "uint64",
    "trigger_price": "uint64",
    "trigger_kind": "uint8",
    "order_id": "uint64",
    "time": "uint64",
    "leverage": "uint16",
    "isolated": "bool",
    "delta": "int64",
    "amount": "uint64",
    "destination": "address",
    "agent": "address",
    "name": "string",
    "valid_until": "uint64",
}


class SignedIntent(NamedTuple):
    intent: Intent
    signature: bytes  # 65 bytes r‖s‖v
    signer: bytes  # 20-byte address recovered from the signature


# ---------------------------------------------------------------------------------------------
# Per-kind specification, computed once


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


Checker = Callable[[Any], Any]
"""Returns the value unchanged when it fits the field, else raises MalformedIntent."""


# Amounts the engine could never hold (``asyncdex.types.numeric.MAX_COLLATERAL``) are refused
# here, with the field named, rather than sequenced to be rejected.
_MAGNITUDE_LIMITS: Mapping[str, int] = {"amount": MAX_COLLATERAL, "delta": MAX_COLLATERAL}


def _checker(field: str, abi_type: str) -> Checker:
    limit = _MAGNITUDE_LIMITS.get(field)
    if limit is not None:
        check_type = _type_checker(field, abi_type)

        def check_limited(value: Any) -> Any:
            check_type(value)
            if abs(value) > limit:
                raise MalformedIntent(
                    f"{field}: {value} beyond the venue's bound of {limit}", field=field
                )
            return value

        return check_limited
    return _type_checker(field, abi_type)


def _type_checker(field: str, abi_type: str) -> Checker:
    if abi_type.startswith("uint"):
        bound = 1 << int(abi_type[4:])

        def check_uint(value: Any) -> Any:
            if type(value) is not int:
                raise MalformedIntent(
                    f"{field}: expected integer, got {_kind_of_value(value)}", field=field
                )
            if not 0 <= value < bound:
                raise MalformedIntent(f"{field}: {value} out of range for {abi_type}", field=field)
            return value

        return check_uint
    if abi_type.startswith("int"):
        half = 1 << (int(abi_type[3:]) - 1)

        def check_int(value: Any) -> Any:
            if type(value) is not int:
                raise MalformedIntent(
                    f"{field}: expected integer, got {_kind_of_value(value)}", field=field
                )
            if not -half <= value < half:
                raise MalformedIntent(f"{field}: {value} out of range for {abi_type}", field=field)
            return value

        return check_int
    if abi_type == "bool":

        def check_bool(value: Any) -> Any:
            if type(value) is not bool:
                raise MalformedIntent(
                    f"{field}: expected bool, got {_kind_of_value(value)}", field=field
                )
            return value

        return check_bool
    if abi_type == "address" or abi_type.startswith("bytes"):
        size = 20 if abi_type == "address" else int(abi_type[5:])

        def check_bytes(value: Any) -> Any:
            if type(value) is not bytes:
                raise MalformedIntent(
                    f"{field}: expected bytes, got {_kind_of_value(value)}", field=field
                )
            if len(value) != size:
                raise MalformedIntent(
                    f"{field}: expected {size} bytes, got {len(value)}", field=field
                )
            return value

        return check_bytes
    if abi_type == "string":

        def check_string(value: Any) -> Any:
            if type(value) is not str:
                raise MalformedIntent(
                    f"{field}: expected string, got {_kind_of_value(value)}", field=field
                )
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedIntent(f"{field}: not valid Unicode text", field=field) from None
            return value

        return check_string
    raise AssertionError(f"no checker for {abi_type}")


def _kind_of_value(value: object) -> str:
    return type(value).__name__


_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _json_parser(field: str, abi_type: str, check: Checker) -> Checker:
    """Turn the JSON value of a field into its checked Python value."""
    if abi_type == "address":

        def parse_address_field(value: Any) -> Any:
            if type(value) is not str:
                raise MalformedIntent(
                    f"{field}: expected hex address string, got {_kind_of_value(value)}",
                    field=field,
                )
            try:
                return parse_address(value)
            except ValueError as exc:
                raise MalformedIntent(f"{field}: {exc}", field=field) from None

        return parse_address_field
    if abi_type.startswith("bytes"):
        size = int(abi_type[5:])

        def parse_bytes_field(value: Any) -> Any:
            return _parse_hex_bytes(field, value, size)

        return parse_bytes_field
    return check  # ints, bools and strings are the same in JSON as in Python


def _parse_hex_bytes(field: str, value: Any, size: int) -> bytes:
    if type(value) is not str:
        raise MalformedIntent(
            f"{field}: expected 0x-prefixed hex string, got {_kind_of_value(value)}", field=field
        )
    if not _HEX.fullmatch(value) or len(value) != 2 + 2 * size:
        raise MalformedIntent(
            f"{field}: expected 0x followed by {2 * size} hex digits", field=field
        )
    return bytes.fromhex(value[2:])


def _json_formatter(abi_type: str) -> Callable[[Any], Any]:
    if abi_type == "address" or abi_type.startswith("bytes"):
        return lambda value: "0x" + value.hex()
    return int if abi_type.startswith(("uint", "int")) else (lambda value: value)


class _IntentSpec:
    __slots__ = (
        "checkers",
        "cls",
        "field_names",
        "json_formatters",
        "json_keys",
        "json_parsers",
        "kind",
        "struct",
        "type_name",
    )

    def __init__(self, kind: int, cls: type[Any]):
        fields: tuple[str, ...] = cls._fields
        self.kind = kind
        self.cls = cls
        self.type_name: str = cls.__name__
        self.field_names = fields
        self.json_keys = tuple(_camel(name) for name in fields)
        abi_types = tuple(FIELD_TYPES[name] for name in fields)
        self.struct = StructType(cls.__name__, zip(self.json_keys, abi_types, strict=True))
        self.checkers = tuple(
            _checker(key, abi_type) for key, abi_type in zip(self.json_keys, abi_types, strict=True)
        )
        self.json_parsers = tuple(
            _json_parser(key, abi_type, check)
            for key, abi_type, check in zip(self.json_keys, abi_types, self.checkers, strict=True)
        )
        self.json_formatters = tuple(_json_formatter(abi_type) for abi_type in abi_types)


_SPECS: tuple[_IntentSpec, ...] = (
    _IntentSpec(KIND_PLACE_ORDER, PlaceOrder),
    _IntentSpec(KIND_CANCEL, Cancel),
    _IntentSpec(KIND_CANCEL_BY_CLIENT_ID, CancelByClientId),
    _IntentSpec(KIND_CANCEL_ALL, CancelAll),
    _IntentSpec(KIND_MODIFY, Modify),
    _IntentSpec(KIND_SCHEDULE_CANCEL, ScheduleCancel),
    _IntentSpec(KIND_SET_LEVERAGE, SetLeverage),
    _IntentSpec(KIND_UPDATE_ISOLATED_MARGIN, UpdateIsolatedMargin),
    _IntentSpec(KIND_WITHDRAW, Withdraw),
    _IntentSpec(KIND_APPROVE_AGENT, ApproveAgent),
)
_SPEC_BY_CLASS: dict[type[Any], _IntentSpec] = {spec.cls: spec for spec in _SPECS}
_SPEC_BY_KIND: dict[int, _IntentSpec] = {spec.kind: spec for spec in _SPECS}
_SPEC_BY_NAME: dict[str, _IntentSpec] = {spec.type_name: spec for spec in _SPECS}

INTENT_KINDS: Mapping[int, type[Any]] = {spec.kind: spec.cls for spec in _SPECS}
"""Kind tag -> intent class."""


def _spec_of(intent: object) -> _IntentSpec:
    spec = _SPEC_BY_CLASS.get(type(intent))
    if spec is None:
        raise MalformedIntent(f"not an intent: {type(intent).__name__}")
    return spec


def kind_of(intent: Intent) -> int:
    """Return the stable numeric kind tag of ``intent``."""
    return _spec_of(intent).kind


def intent_struct_type(intent_class: type[Any]) -> StructType:
    """Return the EIP-712 struct type of an intent class (its type string is the wire spec)."""
    return _SPEC_BY_CLASS[intent_class].struct


# ---------------------------------------------------------------------------------------------
# Domain, digest, signing, verification


def asyncdex_domain(chain_id: int, settlement_contract: bytes) -> Domain:
    """Return the asyncdex signing domain for one settlement contract on one chain."""
    return Domain(DOMAIN_NAME, DOMAIN_VERSION, chain_id, settlement_contract)


def intent_digest(domain: Domain, intent: Intent) -> bytes:
    """Return the 32-byte EIP-712 digest that the signer of ``intent`` signs."""
    spec = _spec_of(intent)
    try:
        struct_hash = spec.struct.hash(intent)
    except EIP712EncodingError as exc:
        field = exc.field and _snake_field(spec, exc.field)
        raise MalformedIntent(str(exc), field=field) from None
    return keccak256(b"\x19\x01" + domain_separator(domain) + struct_hash)


def _snake_field(spec: _IntentSpec, json_key: str) -> str:
    return dict(zip(spec.json_keys, spec.field_names, strict=True)).get(json_key, json_key)


def sign_intent(private_key: bytes | LocalSigner, domain: Domain, intent: Intent) -> SignedIntent:
    """Sign ``intent`` under ``domain``; the result's signer is the key's address.

    Pass a :class:`LocalSigner` to sign many intents with one key without re-deriving it.
    Refuses (``SignerNotAccount``) to sign an ``ApproveAgent`` with a key other than the
    account's, since no verifier would accept it.
    """
    signer = private_key if isinstance(private_key, LocalSigner) else LocalSigner(private_key)
    if type(intent) is ApproveAgent and signer.address != intent.account:
        raise SignerNotAccount(
            "ApproveAgent must be signed by the account key itself, not by an agent",
            signer=signer.address,
            account=intent.account,
        )
    signature = signer.sign(intent_digest(domain, intent))
    return SignedIntent(intent, signature, signer.address)


def verify_intent(domain: Domain, intent: Intent, signature: bytes) -> bytes:
    """Return the 20-byte address that signed ``intent`` under ``domain``.

    Raises a :class:`SignatureError` subclass for a malformed or non-canonical signature,
    :class:`SignerNotAccount` when an ``ApproveAgent`` is not signed by its account, and
    :class:`MalformedIntent` when a field value does not fit its type. A well-formed signature
    over other data (another domain, a tampered field) recovers to some other address: the
    caller compares the signer with the account or its agents.
    """
    signer = recover_address(intent_digest(domain, intent), signature)
    if type(intent) is ApproveAgent and signer != intent.account:
        raise SignerNotAccount(
            "ApproveAgent must be signed by the account key itself, not by an agent",
            signer=signer,
            account=intent.account,
        )
    return signer


def typed_data(domain: Domain, intent: Intent) -> dict[str, Any]:
    """Return the ``eth_signTypedData_v4`` JSON message for ``intent`` (for wallets)."""
    spec = _spec_of(intent)
    values: tuple[Any, ...] = tuple(intent)
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            spec.type_name: [
                {"name": key, "type": FIELD_TYPES[name]}
                for key, name in zip(spec.json_keys, spec.field_names, strict=True)
            ],
        },
        "primaryType": spec.type_name,
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": checksum_address(domain.verifying_contract),
        },
        "message": {
            key: checksum_address(value) if FIELD_TYPES[name] == "address" else fmt(value)
            for key, name, fmt, value in zip(
                spec.json_keys, spec.field_names, spec.json_formatters, values, strict=True
            )
        },
    }


# ---------------------------------------------------------------------------------------------
# Semantic validation (stateless)


def validate_intent(intent: Intent) -> None:
    """Refuse field values that are well typed but can never be meaningful."""
    if type(intent) is PlaceOrder:
        if intent.order_type not in _ORDER_TYPES:
            raise MalformedIntent(
                f"orderType: unknown value {intent.order_type}", field="order_type"
            )
        if intent.tif not in _TIFS:
            raise MalformedIntent(f"tif: unknown value {intent.tif}", field="tif")
        if intent.trigger_kind not in _TRIGGER_KINDS:
            raise MalformedIntent(
                f"triggerKind: unknown value {intent.trigger_kind}", field="trigger_kind"
            )
        if (intent.trigger_kind == TriggerKind.NONE) != (intent.trigger_price == 0):
            raise MalformedIntent(
                "triggerPrice must be non-zero exactly when triggerKind is not none",
                field="trigger_price",
            )
    elif type(intent) is SetLeverage:
        if intent.leverage == 0:
            raise MalformedIntent("leverage: must be at least 1", field="leverage")
    elif type(intent) is ApproveAgent and len(intent.name.encode("utf-8")) > MAX_AGENT_NAME_BYTES:
        raise MalformedIntent(f"name: longer than {MAX_AGENT_NAME_BYTES} bytes", field="name")


_ORDER_TYPES = frozenset(int(v) for v in OrderType)
_TIFS = frozenset(int(v) for v in TimeInForce)
_TRIGGER_KINDS = frozenset(int(v) for v in TriggerKind)


# ---------------------------------------------------------------------------------------------
# Binary codec: msgpack [kind, field..., signature]


def encode_signed_intent(signed: SignedIntent) -> bytes:
    """Return the canonical binary form ``msgpack([kind, field..., signature])``."""
    spec = _spec_of(signed.intent)
    return _pack([spec.kind, *signed.intent, signed.signature])


def _pack(items: list[Any]) -> bytes:
    try:
        packed = msgpack.packb(items, use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:
        raise MalformedIntent(f"intent cannot be encoded: {exc}") from None
    assert isinstance(packed, bytes)
    return packed


def decode_intent_payload(data: bytes) -> tuple[Intent, bytes]:
    """Decode a binary signed intent into (intent, signature) without verifying it."""
    if len(data) > MAX_ENCODED_INTENT_BYTES:
        raise MalformedIntent(f"payload of {len(data)} bytes exceeds {MAX_ENCODED_INTENT_BYTES}")
    try:
        items = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=MAX_ENCODED_INTENT_BYTES,
            max_bin_len=MAX_ENCODED_INTENT_BYTES,
            max_array_len=64,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedIntent(f"not a valid msgpack document: {exc}") from None
    if type(items) is not list:
        raise MalformedIntent(f"expected a msgpack array, got {_kind_of_value(items)}")
    if not items or type(items[0]) is not int:
        raise MalformedIntent("missing integer kind tag")
    spec = _SPEC_BY_KIND.get(items[0])
    if spec is None:
        raise MalformedIntent(f"unknown intent kind {items[0]}")
    expected = len(spec.checkers) + 2
    if len(items) != expected:
        raise MalformedIntent(
            f"{spec.type_name} takes {expected} array items (kind, {expected - 2} fields, "
            f"signature), got {len(items)}"
        )
    values = [check(value) for check, value in zip(spec.checkers, items[1:-1], strict=True)]
    signature = items[-1]
    if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
        raise MalformedIntent(f"signature: expected {SIGNATURE_BYTES} bytes", field="signature")
    intent: Intent = spec.cls(*values)
    validate_intent(intent)
    # Values and types are now exact, so re-packing gives the canonical bytes; any other
    # byte string for the same intent (e.g. a 5 written as uint64) is refused.
    if _pack(items) != data:
        raise MalformedIntent("non-canonical msgpack encoding")
    return intent, signature


def decode_signed_intent(domain: Domain, data: bytes) -> SignedIntent:
    """Decode a binary signed intent and verify its signature under ``domain``."""
    intent, signature = decode_intent_payload(data)
    return SignedIntent(intent, signature, verify_intent(domain, intent, signature))


# ---------------------------------------------------------------------------------------------
# JSON form


def intent_to_json(intent: Intent) -> dict[str, Any]:
    """Return ``{"kind": TypeName, camelCaseField: value...}``; bytes and addresses as 0x-hex."""
    spec = _spec_of(intent)
    out: dict[str, Any] = {"kind": spec.type_name}
    for key, fmt, value in zip(spec.json_keys, spec.json_formatters, intent, strict=True):
        out[key] = fmt(value)
    return out


def signed_intent_to_json(signed: SignedIntent) -> dict[str, Any]:
    """Return the intent's JSON form plus ``"signature": "0x" + 130 hex digits``."""
    out = intent_to_json(signed.intent)
    out["signature"] = "0x" + signed.signature.hex()
    return out


def intent_from_json(obj: Any) -> Intent:
    """Strictly parse the JSON form of an unsigned intent."""
    return _intent_from_json(obj, allowed_extra=frozenset())


def parse_signed_intent_json(obj: Any) -> tuple[Intent, bytes]:
    """Strictly parse the JSON form of a signed intent into (intent, signature), unverified."""
    intent = _intent_from_json(obj, allowed_extra=_SIGNATURE_KEY)
    if "signature" not in obj:
        raise MalformedIntent("missing field: signature", field="signature")
    return intent, _parse_hex_bytes("signature", obj["signature"], SIGNATURE_BYTES)


def signed_intent_from_json(domain: Domain, obj: Any) -> SignedIntent:
    """Strictly parse the JSON form of a signed intent and verify it under ``domain``."""
    intent, signature = parse_signed_intent_json(obj)
    return SignedIntent(intent, signature, verify_intent(domain, intent, signature))


_SIGNATURE_KEY = frozenset({"signature"})


def _intent_from_json(obj: Any, *, allowed_extra: frozenset[str]) -> Intent:
    if not isinstance(obj, dict):
        raise MalformedIntent(f"expected a JSON object, got {_kind_of_value(obj)}")
    kind = obj.get("kind")
    if type(kind) is not str:
        raise MalformedIntent("missing or non-string field: kind", field="kind")
    spec = _SPEC_BY_NAME.get(kind)
    if spec is None:
        raise MalformedIntent(f"unknown intent kind {kind!r}", field="kind")
    expected = {"kind", *spec.json_keys, *allowed_extra}
    unknown = sorted(key for key in obj if key not in expected)
    if unknown:
        raise MalformedIntent(
            f"{kind}: unknown field(s): {', '.join(map(str, unknown))}", field=str(unknown[0])
        )
    missing = [key for key in spec.json_keys if key not in obj]
    if missing:
        raise MalformedIntent(f"{kind}: missing field(s): {', '.join(missing)}", field=missing[0])
    values = [parse(obj[key]) for key, parse in zip(spec.json_keys, spec.json_parsers, strict=True)]
    intent: Intent = spec.cls(*values)
    validate_intent(intent)
    return intent
