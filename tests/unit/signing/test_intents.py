"""Signed intents: digests and signatures against eth_account, codecs, strict parsing."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.signing.eip712 import (
    SECP256K1_N,
    Domain,
    LocalSigner,
    MalleableSignature,
    SignatureLengthError,
    address_of_private_key,
)
from asyncdex.signing.intents import (
    ALL_MARKETS,
    FIELD_TYPES,
    INTENT_KINDS,
    MAX_AGENT_NAME_BYTES,
    MAX_ENCODED_INTENT_BYTES,
    NO_CLIENT_ID,
    ApproveAgent,
    Cancel,
    CancelAll,
    CancelByClientId,
    Intent,
    MalformedIntent,
    Modify,
    OrderType,
    PlaceOrder,
    ScheduleCancel,
    SetLeverage,
    SignedIntent,
    SignerNotAccount,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
    asyncdex_domain,
    decode_intent_payload,
    decode_signed_intent,
    encode_signed_intent,
    intent_digest,
    intent_from_json,
    intent_struct_type,
    intent_to_json,
    kind_of,
    parse_signed_intent_json,
    sign_intent,
    signed_intent_from_json,
    signed_intent_to_json,
    typed_data,
    validate_intent,
    verify_intent,
)
from asyncdex.types.hashing import keccak256
from asyncdex.types.numeric import MAX_COLLATERAL

ACCOUNT_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT_KEY = bytes(range(1, 33))
ACCOUNT = address_of_private_key(ACCOUNT_KEY)
AGENT = address_of_private_key(AGENT_KEY)
SETTLEMENT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(31337, SETTLEMENT)

ORDER = PlaceOrder(
    account=ACCOUNT,
    nonce=1_700_000_000_000,
    expires_after=0,
    market=3,
    is_buy=True,
    price=6_000_000,
    size=15,
    order_type=OrderType.LIMIT,
    tif=TimeInForce.GTC,
    reduce_only=False,
    client_id=bytes.fromhex("00112233445566778899aabbccddeeff"),
    expiry=0,
    trigger_price=0,
    trigger_kind=TriggerKind.NONE,
)

# The wire spec: changing any of these breaks every signature made by clients.
EXPECTED_TYPE_STRINGS = {
    1: "PlaceOrder(address account,uint64 nonce,uint64 expiresAfter,uint32 market,bool isBuy,"
    "uint64 price,uint64 size,uint8 orderType,uint8 tif,bool reduceOnly,bytes16 clientId,"
    "uint64 expiry,uint64 triggerPrice,uint8 triggerKind)",
    2: "Cancel(address account,uint64 nonce,uint64 expiresAfter,uint32 market,uint64 orderId)",
    3: "CancelByClientId(address account,uint64 nonce,uint64 expiresAfter,uint32 market,"
    "bytes16 clientId)",
    4: "CancelAll(address account,uint64 nonce,uint64 expiresAfter,uint32 market)",
    5: "Modify(address account,uint64 nonce,uint64 expiresAfter,uint32 market,uint64 orderId,"
    "uint64 price,uint64 size)",
    6: "ScheduleCancel(address account,uint64 nonce,uint64 expiresAfter,uint64 time)",
    7: "SetLeverage(address account,uint64 nonce,uint64 expiresAfter,uint32 market,"
    "uint16 leverage,bool isolated)",
    8: "UpdateIsolatedMargin(address account,uint64 nonce,uint64 expiresAfter,uint32 market,"
    "int64 delta)",
    9: "Withdraw(address account,uint64 nonce,uint64 expiresAfter,uint64 amount,"
    "address destination)",
    10: "ApproveAgent(address account,uint64 nonce,uint64 expiresAfter,address agent,string name,"
    "uint64 validUntil)",
}


# ---------------------------------------------------------------------------------------------
# Strategies: valid intents of every kind


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, 2**bits - 1)


addresses = st.binary(min_size=20, max_size=20)
client_ids = st.binary(min_size=16, max_size=16)
accounts = st.one_of(st.just(ACCOUNT), addresses)
common = {"account": accounts, "nonce": uint(64), "expires_after": uint(64)}
agent_names = st.text(max_size=MAX_AGENT_NAME_BYTES).filter(
    lambda name: len(name.encode()) <= MAX_AGENT_NAME_BYTES
)


@st.composite
def place_orders(draw: st.DrawFn) -> PlaceOrder:
    trigger_kind = draw(st.sampled_from(TriggerKind))
    trigger_price = 0 if trigger_kind == TriggerKind.NONE else draw(st.integers(1, 2**64 - 1))
    return PlaceOrder(
        account=draw(accounts),
        nonce=draw(uint(64)),
        expires_after=draw(uint(64)),
        market=draw(uint(32)),
        is_buy=draw(st.booleans()),
        price=draw(uint(64)),
        size=draw(uint(64)),
        order_type=draw(st.sampled_from([int(v) for v in OrderType])),
        tif=draw(st.sampled_from([int(v) for v in TimeInForce])),
        reduce_only=draw(st.booleans()),
        client_id=draw(client_ids),
        expiry=draw(uint(64)),
        trigger_price=trigger_price,
        trigger_kind=int(trigger_kind),
    )


INTENT_STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    PlaceOrder: place_orders(),
    Cancel: st.builds(Cancel, **common, market=uint(32), order_id=uint(64)),
    CancelByClientId: st.builds(CancelByClientId, **common, market=uint(32), client_id=client_ids),
    CancelAll: st.builds(CancelAll, **common, market=st.one_of(st.just(ALL_MARKETS), uint(32))),
    Modify: st.builds(
        Modify, **common, market=uint(32), order_id=uint(64), price=uint(64), size=uint(64)
    ),
    ScheduleCancel: st.builds(ScheduleCancel, **common, time=uint(64)),
    SetLeverage: st.builds(
        SetLeverage,
        **common,
        market=uint(32),
        leverage=st.integers(1, 2**16 - 1),
        isolated=st.booleans(),
    ),
    UpdateIsolatedMargin: st.builds(
        UpdateIsolatedMargin,
        **common,
        market=uint(32),
        delta=st.integers(-MAX_COLLATERAL, MAX_COLLATERAL),
    ),
    Withdraw: st.builds(
        Withdraw, **common, amount=st.integers(0, MAX_COLLATERAL), destination=addresses
    ),
    ApproveAgent: st.builds(
        ApproveAgent, **common, agent=addresses, name=agent_names, valid_until=uint(64)
    ),
}
intents = st.one_of(*INTENT_STRATEGIES.values())
domains = st.builds(
    asyncdex_domain, chain_id=st.integers(0, 2**256 - 1), settlement_contract=addresses
)


def fixed_account(intent: Any) -> Any:
    return intent._replace(account=ACCOUNT)


def eth_message(domain: Domain, intent: Intent) -> Any:
    return encode_typed_data(full_message=typed_data(domain, intent))


def independent_eth_message(domain: Domain, intent: Intent) -> Any:
    """The same message built from the published type strings, not from intents.py's tables."""
    type_string = EXPECTED_TYPE_STRINGS[kind_of(intent)]
    name, members = type_string[:-1].split("(")
    fields = [member.split(" ") for member in members.split(",")]
    message: dict[str, Any] = {}
    values: tuple[Any, ...] = tuple(intent)
    for (field_type, field_name), value in zip(fields, values, strict=True):
        message[field_name] = to_checksum_address(value) if field_type == "address" else value
    return encode_typed_data(
        domain_data={
            "name": "asyncdex",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": to_checksum_address(domain.verifying_contract),
        },
        message_types={name: [{"name": n, "type": t} for t, n in fields]},
        message_data=message,
    )


# ---------------------------------------------------------------------------------------------
# Kinds, types, digests


def test_kind_tags_are_stable() -> None:
    assert {kind: cls.__name__ for kind, cls in INTENT_KINDS.items()} == {
        1: "PlaceOrder",
        2: "Cancel",
        3: "CancelByClientId",
        4: "CancelAll",
        5: "Modify",
        6: "ScheduleCancel",
        7: "SetLeverage",
        8: "UpdateIsolatedMargin",
        9: "Withdraw",
        10: "ApproveAgent",
    }


@pytest.mark.parametrize("kind", sorted(EXPECTED_TYPE_STRINGS))
def test_eip712_type_strings(kind: int) -> None:
    struct = intent_struct_type(INTENT_KINDS[kind])
    assert struct.encode_type == EXPECTED_TYPE_STRINGS[kind]
    assert INTENT_KINDS[kind]._fields[:3] == ("account", "nonce", "expires_after")
    assert set(INTENT_KINDS[kind]._fields) <= set(FIELD_TYPES)


def test_domain() -> None:
    assert Domain("asyncdex", "1", 31337, SETTLEMENT) == DOMAIN


@pytest.mark.parametrize("intent_class", list(INTENT_STRATEGIES))
@settings(max_examples=25, deadline=None)
@given(data=st.data(), domain=domains)
def test_digest_matches_eth_account(intent_class: type[Any], data: Any, domain: Domain) -> None:
    intent = data.draw(INTENT_STRATEGIES[intent_class])
    ours = intent_digest(domain, intent)
    for message in (eth_message(domain, intent), independent_eth_message(domain, intent)):
        assert keccak256(b"\x19" + message.version + message.header + message.body) == ours


@pytest.mark.parametrize("intent_class", list(INTENT_STRATEGIES))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_signatures_interoperate_with_eth_account(intent_class: type[Any], data: Any) -> None:
    intent = fixed_account(data.draw(INTENT_STRATEGIES[intent_class]))
    wallet = Account.from_key(ACCOUNT_KEY)
    message = eth_message(DOMAIN, intent)

    theirs = bytes(wallet.sign_message(message).signature)
    assert verify_intent(DOMAIN, intent, theirs) == ACCOUNT

    signed = sign_intent(ACCOUNT_KEY, DOMAIN, intent)
    assert signed == SignedIntent(intent, signed.signature, ACCOUNT)
    assert Account.recover_message(message, signature=signed.signature) == wallet.address


def test_enum_members_and_plain_ints_sign_alike() -> None:
    plain = ORDER._replace(order_type=0, tif=0, trigger_kind=0)
    assert intent_digest(DOMAIN, plain) == intent_digest(DOMAIN, ORDER)


@pytest.mark.parametrize(
    "other_domain",
    [
        asyncdex_domain(1, SETTLEMENT),
        asyncdex_domain(31337, bytes(20)),
        Domain("asyncdex", "2", 31337, SETTLEMENT),
        Domain("other", "1", 31337, SETTLEMENT),
    ],
)
def test_wrong_domain_recovers_a_different_signer(other_domain: Domain) -> None:
    signed = sign_intent(ACCOUNT_KEY, DOMAIN, ORDER)
    assert verify_intent(other_domain, ORDER, signed.signature) != ACCOUNT


def tamper(value: Any, abi_type: str) -> Any:
    if abi_type == "bool":
        return not value
    if abi_type in ("address", "bytes16"):
        return bytes((value[0] ^ 1,)) + value[1:]
    if abi_type == "string":
        return value + "x"
    if abi_type == "int64":
        return value - 1 if value > -(2**63) else value + 1
    return value ^ 1  # every uint field: flip the low bit, stays in range


@settings(max_examples=40, deadline=None)
@given(data=st.data(), intent=intents)
def test_tampered_field_recovers_a_different_signer(data: Any, intent: Any) -> None:
    intent = fixed_account(intent)
    signed = sign_intent(ACCOUNT_KEY, DOMAIN, intent)
    index = data.draw(st.integers(0, len(intent) - 1))
    name = intent._fields[index]
    altered = intent._replace(**{name: tamper(intent[index], FIELD_TYPES[name])})
    try:
        signer = verify_intent(DOMAIN, altered, signed.signature)
    except SignerNotAccount:
        return  # an ApproveAgent with a tampered field: refused outright, also fine
    assert signer != ACCOUNT


def test_intent_kind_is_part_of_the_signed_message() -> None:
    cancel = Cancel(ACCOUNT, 5, 0, 1, 2)
    modify_like = CancelByClientId(ACCOUNT, 5, 0, 1, bytes(16))
    assert intent_digest(DOMAIN, cancel) != intent_digest(DOMAIN, modify_like)


def test_invalid_malleable_signature_rejected() -> None:
    signed = sign_intent(ACCOUNT_KEY, DOMAIN, ORDER)
    s = int.from_bytes(signed.signature[32:64], "big")
    mirrored = (
        signed.signature[:32]
        + (SECP256K1_N - s).to_bytes(32, "big")
        + bytes((55 - signed.signature[64],))
    )
    with pytest.raises(MalleableSignature):
        verify_intent(DOMAIN, ORDER, mirrored)


def test_invalid_signature_length_rejected() -> None:
    with pytest.raises(SignatureLengthError):
        verify_intent(DOMAIN, ORDER, bytes(64))


def test_agent_may_sign_trading_intents() -> None:
    signed = sign_intent(AGENT_KEY, DOMAIN, ORDER)
    assert signed.signer == AGENT
    assert signed.intent.account == ACCOUNT


def test_approve_agent_signed_by_account() -> None:
    approve = ApproveAgent(ACCOUNT, 7, 0, AGENT, "bot", 0)
    assert sign_intent(ACCOUNT_KEY, DOMAIN, approve).signer == ACCOUNT


def test_invalid_approve_agent_signed_by_agent() -> None:
    approve = ApproveAgent(ACCOUNT, 7, 0, address_of_private_key(b"\x07" * 32), "bot2", 0)
    with pytest.raises(SignerNotAccount, match="signed by the account key itself") as caught:
        sign_intent(AGENT_KEY, DOMAIN, approve)
    assert caught.value.signer == AGENT
    assert caught.value.account == ACCOUNT


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("market", 2**32, "PlaceOrder.market: expected uint32"),
        ("nonce", -1, "PlaceOrder.nonce: expected uint64"),
        ("is_buy", 1, "PlaceOrder.isBuy: expected bool"),
        ("client_id", bytes(15), "PlaceOrder.clientId: expected bytes16"),
        ("account", "0x" + "00" * 20, "PlaceOrder.account: expected address"),
    ],
)
def test_invalid_python_values_refused_before_hashing(field: str, value: Any, message: str) -> None:
    with pytest.raises(MalformedIntent, match=message) as caught:
        intent_digest(DOMAIN, ORDER._replace(**{field: value}))
    assert caught.value.field == field


def test_invalid_not_an_intent() -> None:
    with pytest.raises(MalformedIntent, match="not an intent: tuple"):
        intent_digest(DOMAIN, tuple(ORDER))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Semantic validation


@pytest.mark.parametrize(
    ("intent", "message", "field"),
    [
        (ORDER._replace(order_type=2), "orderType: unknown value 2", "order_type"),
        (ORDER._replace(tif=4), "tif: unknown value 4", "tif"),
        (ORDER._replace(trigger_kind=3, trigger_price=5), "triggerKind: unknown", "trigger_kind"),
        (
            ORDER._replace(trigger_kind=TriggerKind.STOP),
            "triggerPrice must be non-zero",
            "trigger_price",
        ),
        (ORDER._replace(trigger_price=5), "triggerPrice must be non-zero", "trigger_price"),
        (SetLeverage(ACCOUNT, 1, 0, 0, 0, False), "leverage: must be at least 1", "leverage"),
        (ApproveAgent(ACCOUNT, 1, 0, AGENT, "é" * 33, 0), "name: longer than 64 bytes", "name"),
    ],
)
def test_invalid_semantics(intent: Any, message: str, field: str) -> None:
    with pytest.raises(MalformedIntent, match=message) as caught:
        validate_intent(intent)
    assert caught.value.field == field
    signed = SignedIntent(intent, bytes(65), ACCOUNT)
    with pytest.raises(MalformedIntent, match=message):
        decode_intent_payload(encode_signed_intent(signed))
    with pytest.raises(MalformedIntent, match=message):
        intent_from_json(intent_to_json(intent))


def test_valid_trigger_order() -> None:
    validate_intent(ORDER._replace(trigger_kind=TriggerKind.TAKE_PROFIT, trigger_price=7))


# ---------------------------------------------------------------------------------------------
# Binary codec


@settings(max_examples=150, deadline=None)
@given(intent=intents, signature=st.binary(min_size=65, max_size=65))
def test_binary_round_trip(intent: Any, signature: bytes) -> None:
    signed = SignedIntent(intent, signature, bytes(20))
    data = encode_signed_intent(signed)
    assert len(data) <= MAX_ENCODED_INTENT_BYTES
    assert msgpack.unpackb(data)[0] == kind_of(intent)
    decoded, decoded_signature = decode_intent_payload(data)
    assert type(decoded) is type(intent)
    assert decoded == intent
    assert decoded_signature == signature
    assert encode_signed_intent(SignedIntent(decoded, signature, bytes(20))) == data


def test_decode_signed_intent_verifies() -> None:
    signed = sign_intent(AGENT_KEY, DOMAIN, ORDER)
    data = encode_signed_intent(signed)
    assert decode_signed_intent(DOMAIN, data) == signed
    assert decode_signed_intent(asyncdex_domain(1, SETTLEMENT), data).signer != AGENT


def order_items(**changes: Any) -> list[Any]:
    values = ORDER._replace(**changes)
    return [1, *values, bytes(65)]


def packed(items: Any) -> bytes:
    return msgpack.packb(items, use_bin_type=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a valid msgpack document"),
        (b"\xc1", "not a valid msgpack document"),
        (packed(order_items())[:-3], "not a valid msgpack document"),
        (packed(order_items()) + b"\x00", "not a valid msgpack document"),
        (packed({"kind": 1}), "not a valid msgpack document"),
        (packed(7), "expected a msgpack array, got int"),
        (packed([]), "missing integer kind tag"),
        (packed(["PlaceOrder"]), "missing integer kind tag"),
        (packed([11, bytes(65)]), "unknown intent kind 11"),
        (packed([0]), "unknown intent kind 0"),
        (packed([*order_items()[:-2], bytes(65)]), "PlaceOrder takes 16 array items"),
        (packed([*order_items(), 0]), "PlaceOrder takes 16 array items"),
        (packed(order_items(market=2**32)), "market: 4294967296 out of range for uint32"),
        (packed(order_items(nonce=-1)), "nonce: -1 out of range for uint64"),
        (packed(order_items(price=1.5)), "price: expected integer, got float"),
        (packed(order_items(size=True)), "size: expected integer, got bool"),
        (packed(order_items(is_buy=1)), "isBuy: expected bool, got int"),
        (packed(order_items(account="0x" + "00" * 20)), "account: expected bytes, got str"),
        (packed(order_items(account=bytes(21))), "account: expected 20 bytes, got 21"),
        (packed(order_items(client_id=bytes(32))), "clientId: expected 16 bytes, got 32"),
        (packed([*order_items()[:-1], bytes(64)]), "signature: expected 65 bytes"),
        (packed([*order_items()[:-1], "00" * 65]), "signature: expected 65 bytes"),
        (
            packed([8, ACCOUNT, 1, 0, 1, 2**63, bytes(65)]),
            "delta: 9223372036854775808 out of range",
        ),
        (packed([8, ACCOUNT, 1, 0, 1, 2**64 - 1, bytes(65)]), "delta: 18446744073709551615 out"),
        (packed([9, ACCOUNT, 1, 0, -5, AGENT, bytes(65)]), "amount: -5 out of range for uint64"),
        # within the wire types, beyond what the venue can hold (types.numeric.MAX_COLLATERAL)
        (
            packed([9, ACCOUNT, 1, 0, 10**18 + 1, AGENT, bytes(65)]),
            "amount: 1000000000000000001 beyond the venue's bound",
        ),
        (
            packed([8, ACCOUNT, 1, 0, 1, -(10**18) - 1, bytes(65)]),
            "delta: -1000000000000000001 beyond the venue's bound",
        ),
        (
            packed([10, ACCOUNT, 1, 0, AGENT, b"bot", 0, bytes(65)]),
            "name: expected string, got bytes",
        ),
        (bytes(MAX_ENCODED_INTENT_BYTES + 1), "exceeds 512"),
    ],
)
def test_invalid_binary(data: bytes, message: str) -> None:
    with pytest.raises(MalformedIntent, match=message):
        decode_intent_payload(data)


def test_invalid_binary_non_canonical() -> None:
    canonical = packed([2, ACCOUNT, 5, 0, 1, 2, bytes(65)])
    # Same values, but the nonce 5 written as a uint64 (0xcf + 8 bytes) instead of a fixint.
    stretched = canonical.replace(b"\x05", b"\xcf" + (5).to_bytes(8, "big"), 1)
    assert msgpack.unpackb(stretched) == msgpack.unpackb(canonical)
    decode_intent_payload(canonical)
    with pytest.raises(MalformedIntent, match="non-canonical msgpack encoding"):
        decode_intent_payload(stretched)


def test_invalid_binary_utf8() -> None:
    items = packed([10, ACCOUNT, 1, 0, AGENT, "ab", 0, bytes(65)])
    broken = items.replace(b"\xa2ab", b"\xa2\xff\xfe")
    with pytest.raises(MalformedIntent, match="not a valid msgpack document"):
        decode_intent_payload(broken)


# ---------------------------------------------------------------------------------------------
# JSON form


@settings(max_examples=150, deadline=None)
@given(intent=intents, signature=st.binary(min_size=65, max_size=65))
def test_json_round_trip(intent: Any, signature: bytes) -> None:
    text = json.dumps(signed_intent_to_json(SignedIntent(intent, signature, bytes(20))))
    parsed, parsed_signature = parse_signed_intent_json(json.loads(text))
    assert type(parsed) is type(intent)
    assert parsed == intent
    assert parsed_signature == signature
    assert intent_from_json(json.loads(json.dumps(intent_to_json(intent)))) == intent


def test_json_shape() -> None:
    signed = sign_intent(ACCOUNT_KEY, DOMAIN, ORDER)
    obj = signed_intent_to_json(signed)
    assert obj == {
        "kind": "PlaceOrder",
        "account": "0x" + ACCOUNT.hex(),
        "nonce": 1_700_000_000_000,
        "expiresAfter": 0,
        "market": 3,
        "isBuy": True,
        "price": 6_000_000,
        "size": 15,
        "orderType": 0,
        "tif": 0,
        "reduceOnly": False,
        "clientId": "0x00112233445566778899aabbccddeeff",
        "expiry": 0,
        "triggerPrice": 0,
        "triggerKind": 0,
        "signature": "0x" + signed.signature.hex(),
    }
    assert all(type(value) is not type(OrderType.LIMIT) for value in obj.values())
    assert signed_intent_from_json(DOMAIN, json.loads(json.dumps(obj))) == signed


def test_json_accepts_checksummed_addresses() -> None:
    obj = intent_to_json(ORDER)
    obj["account"] = to_checksum_address(ACCOUNT)
    assert intent_from_json(obj) == ORDER


def order_json(**changes: Any) -> dict[str, Any]:
    obj = signed_intent_to_json(SignedIntent(ORDER, bytes(65), ACCOUNT))
    obj.update(changes)
    return obj


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1, 2], "expected a JSON object, got list"),
        ({}, "missing or non-string field: kind"),
        (order_json(kind=1), "missing or non-string field: kind"),
        (order_json(kind="Order"), "unknown intent kind 'Order'"),
        (order_json(extra=1, another=2), "PlaceOrder: unknown field\\(s\\): another, extra"),
        (order_json(is_buy=True), "unknown field\\(s\\): is_buy"),
        (
            {"kind": "Cancel", "account": "0x" + "00" * 20, "signature": "0x" + "00" * 65},
            "Cancel: missing field\\(s\\): nonce, expiresAfter, market, orderId",
        ),
        (order_json(market="3"), "market: expected integer, got str"),
        (order_json(market=3.0), "market: expected integer, got float"),
        (order_json(market=True), "market: expected integer, got bool"),
        (order_json(market=None), "market: expected integer, got NoneType"),
        (order_json(market=-1), "market: -1 out of range for uint32"),
        (order_json(nonce=2**64), "nonce: 18446744073709551616 out of range for uint64"),
        (order_json(isBuy=1), "isBuy: expected bool, got int"),
        (order_json(isBuy="true"), "isBuy: expected bool, got str"),
        (order_json(account=ACCOUNT.hex()), "account: address must be 0x followed by 40"),
        (order_json(account=7), "account: expected hex address string, got int"),
        (order_json(account="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"), "invalid EIP-55"),
        (order_json(clientId="0x1234"), "clientId: expected 0x followed by 32 hex digits"),
        (order_json(clientId="0x" + "00" * 15 + "0\n"), "clientId: expected 0x followed by 32"),
        (order_json(clientId="0x" + "zz" * 16), "clientId: expected 0x followed by 32"),
        (order_json(clientId=list(range(16))), "clientId: expected 0x-prefixed hex string"),
        (order_json(tif=9), "tif: unknown value 9"),
        (order_json(signature="0x" + "00" * 64), "signature: expected 0x followed by 130"),
    ],
)
def test_invalid_json(obj: Any, message: str) -> None:
    with pytest.raises(MalformedIntent, match=message):
        parse_signed_intent_json(obj)


def test_invalid_json_missing_signature() -> None:
    obj = order_json()
    del obj["signature"]
    with pytest.raises(MalformedIntent, match="missing field: signature"):
        parse_signed_intent_json(obj)
    with pytest.raises(MalformedIntent, match="unknown field\\(s\\): signature"):
        intent_from_json(order_json())


def test_invalid_json_lone_surrogate_name() -> None:
    obj = intent_to_json(ApproveAgent(ACCOUNT, 1, 0, AGENT, "ok", 0))
    obj["name"] = json.loads('"\\ud800"')
    with pytest.raises(MalformedIntent, match="name: not valid Unicode text"):
        intent_from_json(obj)


def test_constants() -> None:
    assert ALL_MARKETS == 2**32 - 1
    assert bytes(16) == NO_CLIENT_ID


def test_invalid_unencodable_intent() -> None:
    with pytest.raises(MalformedIntent, match="intent cannot be encoded"):
        encode_signed_intent(SignedIntent(ORDER._replace(nonce=2**70), bytes(65), ACCOUNT))


def test_sign_with_reusable_signer() -> None:
    signer = LocalSigner(AGENT_KEY)
    signed = sign_intent(signer, DOMAIN, ORDER)
    assert signed == sign_intent(AGENT_KEY, DOMAIN, ORDER)
    assert verify_intent(DOMAIN, ORDER, signed.signature) == AGENT
