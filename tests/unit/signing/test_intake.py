"""Intake: every bad request is refused with its own error and yields no submission; good
batches map to the right ``Signed`` commands with the signed digest as intent id."""

from __future__ import annotations

import json
import pickle
from typing import Any

import msgpack
import pytest

from asyncdex.messages import commands as engine
from asyncdex.sequencer.records import decode_record, encode_record
from asyncdex.sequencer.sequencer import Submission
from asyncdex.signing import intake
from asyncdex.signing.eip712 import SECP256K1_N, LocalSigner
from asyncdex.signing.intake import (
    DEFAULT_MAX_BODY_BYTES,
    Intake,
    IntakeError,
    IntakeLimits,
    verify_batch,
)
from asyncdex.signing.intents import (
    ALL_MARKETS,
    ApproveAgent,
    Cancel,
    CancelAll,
    CancelByClientId,
    Intent,
    Modify,
    OrderType,
    PlaceOrder,
    SignedIntent,
    TimeInForce,
    TriggerKind,
    Withdraw,
    asyncdex_domain,
    encode_signed_intent,
    intent_digest,
    sign_intent,
    signed_intent_to_json,
)

ALICE = LocalSigner(
    bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
)
BOB_AGENT = LocalSigner(bytes(range(1, 33)))
SETTLEMENT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(31337, SETTLEMENT)
NONCE = 1_767_225_600_000
CLIENT_ID = bytes.fromhex("000000000000000089abcdef01234567")

ORDER = PlaceOrder(
    account=ALICE.address,
    nonce=NONCE,
    expires_after=NONCE + 60_000,
    market=0,
    is_buy=True,
    price=1_000_000,
    size=20,
    order_type=OrderType.LIMIT,
    tif=TimeInForce.GTC,
    reduce_only=False,
    client_id=CLIENT_ID,
    expiry=0,
    trigger_price=0,
    trigger_kind=TriggerKind.NONE,
)
CANCEL = Cancel(ALICE.address, NONCE + 1, 0, 0, 7)
MODIFY = Modify(ALICE.address, NONCE + 2, 0, 0, 7, 1_000_010, 10)
CANCEL_BY_CLIENT_ID = CancelByClientId(ALICE.address, NONCE + 3, 0, 0, CLIENT_ID)
CANCEL_ALL = CancelAll(ALICE.address, NONCE + 4, 0, ALL_MARKETS)
WITHDRAW = Withdraw(ALICE.address, NONCE + 5, 0, 5_000_000, ALICE.address)
APPROVE = ApproveAgent(ALICE.address, NONCE + 6, 0, BOB_AGENT.address, "bot", 0)


def signed(intent: Intent, signer: LocalSigner = ALICE) -> SignedIntent:
    return sign_intent(signer, DOMAIN, intent)


def as_json(intent: Intent, signer: LocalSigner = ALICE) -> dict[str, Any]:
    return signed_intent_to_json(signed(intent, signer))


def body_of(document: Any) -> bytes:
    return json.dumps(document).encode()


INTAKE = Intake(DOMAIN)


def refused(body: bytes, content_type: str = "application/json", **limits: int) -> IntakeError:
    """Run the intake; it must refuse the body and hand nothing on to a sequencer."""
    sequencer_inbox: list[Submission] = []
    gate = Intake(DOMAIN, IntakeLimits(**limits)) if limits else INTAKE
    with pytest.raises(IntakeError) as caught:
        sequencer_inbox.extend(gate.process(body, content_type))
    assert sequencer_inbox == []
    return caught.value


# ---------------------------------------------------------------------------------------------
# Good input


def test_good_batch_maps_to_signed_commands_with_digest_ids() -> None:
    batch = [ORDER, CANCEL, MODIFY, CANCEL_BY_CLIENT_ID, CANCEL_ALL, WITHDRAW, APPROVE]
    body = body_of({"intents": [as_json(intent) for intent in batch]})
    submissions = INTAKE.process(body)

    a = ALICE.address
    expected_commands = [
        engine.PlaceOrder(a, 0, True, 1_000_000, 20, TimeInForce.GTC, OrderType.LIMIT, False,
                          int.from_bytes(CLIENT_ID, "big"), 0, 0, TriggerKind.NONE),
        engine.CancelOrder(a, 0, 7),
        engine.ModifyOrder(a, 0, 7, 1_000_010, 10),
        engine.CancelByClientId(a, 0, int.from_bytes(CLIENT_ID, "big")),
        engine.CancelAll(a, engine.ALL_MARKETS),
        engine.Withdraw(a, 5_000_000),
        engine.ApproveAgent(a, BOB_AGENT.address, 0),
    ]  # fmt: skip
    assert [s.command for s in submissions] == [
        engine.Signed(a, intent.nonce, intent.expires_after, command)
        for intent, command in zip(batch, expected_commands, strict=True)
    ]
    assert [s.signature for s in submissions] == [signed(intent).signature for intent in batch]
    assert [s.intent_id for s in submissions] == [intent_digest(DOMAIN, i) for i in batch]


def test_single_object_form_equals_batch_of_one() -> None:
    single = INTAKE.process(body_of(as_json(ORDER)))
    batch = INTAKE.process(body_of({"intents": [as_json(ORDER)]}))
    assert single == batch and len(single) == 1


def test_agent_signature_maps_to_agent_signer() -> None:
    (submission,) = INTAKE.process(body_of(as_json(CANCEL, BOB_AGENT)))
    assert isinstance(submission.command, engine.Signed)
    assert submission.command.signer == BOB_AGENT.address
    assert submission.command.command.account == ALICE.address  # type: ignore[union-attr]


@pytest.mark.parametrize("content_type", ["application/msgpack", "application/x-msgpack"])
def test_msgpack_single_and_batch_forms(content_type: str) -> None:
    expected = INTAKE.process(body_of({"intents": [as_json(ORDER), as_json(CANCEL)]}))
    one = INTAKE.process(encode_signed_intent(signed(ORDER)), content_type)
    batch_body = msgpack.packb([encode_signed_intent(signed(i)) for i in (ORDER, CANCEL)])
    assert one == expected[:1]
    assert INTAKE.process(batch_body, content_type) == expected


def test_content_type_parameters_and_missing_header_mean_json() -> None:
    body = body_of(as_json(ORDER))
    expected = INTAKE.process(body)
    assert INTAKE.process(body, "application/json; charset=utf-8") == expected
    assert INTAKE.process(body, "") == expected


def test_signature_over_another_domain_is_not_detectable_statelessly() -> None:
    # Documented limit: recovery under our domain yields a stranger, which the engine later
    # rejects with UNKNOWN_AGENT. The intake must not claim otherwise.
    other_chain = asyncdex_domain(1, SETTLEMENT)
    other_contract = asyncdex_domain(31337, bytes(20))
    for domain in (other_chain, other_contract):
        foreign = signed_intent_to_json(sign_intent(ALICE, domain, CANCEL))
        (submission,) = INTAKE.process(body_of(foreign))
        assert isinstance(submission.command, engine.Signed)
        assert submission.command.signer != ALICE.address


def test_verification_runs_on_picklable_values() -> None:
    # The node may move verify_batch to a process pool: inputs, outputs and errors all pickle.
    parsed = INTAKE.decode(body_of({"intents": [as_json(ORDER), as_json(CANCEL)]}))
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    result = verify_batch(DOMAIN, parsed)
    assert pickle.loads(pickle.dumps(result)) == result
    error = refused(body_of({"intents": [as_json(ORDER), {"kind": "Cancel"}]}))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.index, copy.field) == (error.message, error.index, error.field)


# ---------------------------------------------------------------------------------------------
# Bad input: each refused with its own error class and code


def with_signature(obj: dict[str, Any], signature: bytes) -> dict[str, Any]:
    return {**obj, "signature": "0x" + signature.hex()}


GOOD = signed(ORDER)
R, S, V = GOOD.signature[:32], GOOD.signature[32:64], GOOD.signature[64]
P = 2**256 - 2**32 - 977
R_OFF_CURVE = next(x for x in range(1, 1000) if pow(x**3 + 7, (P - 1) // 2, P) != 1)


def high_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:64], "big")
    # The mirrored s pairs with the other parity: a valid but malleable twin.
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - signature[64],))


BAD_SIGNATURES: list[tuple[str, bytes, type[IntakeError]]] = [
    ("malleable_high_s", high_s(GOOD.signature), intake.MalleableSignature),
    ("recovery_id_29", R + S + bytes((29,)), intake.InvalidRecoveryId),
    ("r_zero", bytes(32) + S + bytes((V,)), intake.SignatureOutOfRange),
    ("s_zero", R + bytes(32) + bytes((V,)), intake.SignatureOutOfRange),
    ("r_at_n", SECP256K1_N.to_bytes(32, "big") + S + bytes((V,)), intake.SignatureOutOfRange),
    (
        "r_off_curve",
        R_OFF_CURVE.to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b",
        intake.UnrecoverableSignature,
    ),
]


@pytest.mark.parametrize(
    ("signature", "error"),
    [pytest.param(sig, err, id=name) for name, sig, err in BAD_SIGNATURES],
)
def test_invalid_signature_json(signature: bytes, error: type[IntakeError]) -> None:
    good = as_json(CANCEL)
    caught = refused(body_of({"intents": [good, with_signature(as_json(ORDER), signature)]}))
    assert type(caught) is error
    assert isinstance(caught, intake.BadSignature)
    assert (caught.index, caught.field, caught.status) == (1, "signature", 400)


@pytest.mark.parametrize(
    ("signature", "error"),
    [pytest.param(sig, err, id=name) for name, sig, err in BAD_SIGNATURES],
)
def test_invalid_signature_msgpack(signature: bytes, error: type[IntakeError]) -> None:
    body = encode_signed_intent(SignedIntent(ORDER, signature, b""))
    assert type(refused(body, "application/msgpack")) is error


@pytest.mark.parametrize("length", [0, 64, 66])
def test_invalid_signature_length(length: int) -> None:
    signature = (GOOD.signature * 2)[:length]
    caught = refused(body_of(with_signature(as_json(ORDER), signature)))
    assert type(caught) is intake.SignatureLength and caught.code == "signature_length"
    binary = encode_signed_intent(SignedIntent(ORDER, signature, b""))
    assert type(refused(binary, "application/msgpack")) is intake.SignatureLength


def test_invalid_signature_not_hex_is_an_invalid_field() -> None:
    caught = refused(body_of({**as_json(ORDER), "signature": "0x" + "zz" * 65}))
    assert type(caught) is intake.InvalidField and caught.field == "signature"


def test_invalid_approve_agent_signed_by_agent() -> None:
    # sign_intent refuses to make this signature, so sign the digest directly.
    forged = BOB_AGENT.sign(intent_digest(DOMAIN, APPROVE))
    body = body_of(with_signature(signed_intent_to_json(signed(APPROVE)), forged))
    caught = refused(body)
    assert type(caught) is intake.SignerNotAccount and caught.code == "signer_not_account"


def test_full_128_bit_client_ids_reach_the_engine_exactly() -> None:
    # Hyperliquid-style cloids use all 16 bytes; the journal's packing carries them whole.
    wide = bytes.fromhex("f0112233445566778899aabbccddeeff")
    submissions = INTAKE.process(
        body_of({"intents": [as_json(ORDER._replace(client_id=wide)),
                             as_json(CANCEL_BY_CLIENT_ID._replace(client_id=wide))]})
    )  # fmt: skip
    expected = int.from_bytes(wide, "big")
    assert [s.command.command.client_id for s in submissions] == [expected, expected]
    for submission in submissions:
        record = decode_record(encode_record(1, submission.command, submission.signature))
        assert record.command == submission.command


def test_invalid_withdrawal_to_another_address() -> None:
    elsewhere = WITHDRAW._replace(destination=BOB_AGENT.address)
    caught = refused(body_of({"intents": [as_json(CANCEL), as_json(elsewhere)]}))
    assert type(caught) is intake.Unsupported
    assert (caught.code, caught.index) == ("unsupported_intent", 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b'{"kind": "Cancel"', "invalid JSON", id="truncated"),
        pytest.param(b"", "invalid JSON", id="empty"),
        pytest.param(b'{"kind": "Cancel", "kind": "Cancel"}', "duplicate key", id="dup_key"),
        pytest.param(b'{"intents": [NaN]}', "not a JSON number", id="nan"),
        pytest.param(b"\xff\xfe{}", "UTF-8", id="not_utf8"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, "", id="deeply_nested"),
        pytest.param(b"[]", "expected a signed intent object", id="top_level_list"),
        pytest.param(b'{"foo": 1}', "expected a signed intent object", id="no_kind"),
        pytest.param(b'{"intents": {}}', '"intents" must be a list', id="intents_not_list"),
        pytest.param(b'{"intents": [1]}', "expected a JSON object", id="intent_not_object"),
        pytest.param(b'{"intents": [' + b"9" * 5000 + b"]}", "invalid JSON", id="huge_int"),
    ],
)
def test_invalid_json(body: bytes, message: str) -> None:
    caught = refused(body)
    assert type(caught) is intake.MalformedBody and caught.code == "malformed_body"
    assert message in caught.message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xc1", id="reserved_byte"),
        pytest.param(msgpack.packb({"kind": 1}), id="map"),
        pytest.param(msgpack.packb([]), id="empty_array"),
        pytest.param(msgpack.packb(["Cancel"]), id="string_items"),
        pytest.param(msgpack.packb([99, 1, 2]), id="unknown_kind"),
        pytest.param(encode_signed_intent(GOOD) + b"\x00", id="trailing_bytes"),
    ],
)
def test_invalid_msgpack(body: bytes) -> None:
    caught = refused(body, "application/msgpack")
    assert type(caught) is intake.MalformedBody


def test_invalid_msgpack_non_canonical_integer() -> None:
    items: list[Any] = [1, *ORDER, GOOD.signature]
    parts = [msgpack.packb(item) for item in items]
    assert parts[1 + ORDER._fields.index("market")] == b"\x00"
    # The market (0) as a uint64: the same value in other bytes.
    parts[1 + ORDER._fields.index("market")] = b"\xcf" + bytes(8)
    widened = msgpack.Packer().pack_array_header(len(items)) + b"".join(parts)
    assert msgpack.unpackb(widened) == msgpack.unpackb(msgpack.packb(items))
    caught = refused(widened, "application/msgpack")
    assert type(caught) is intake.MalformedBody and "non-canonical" in caught.message


def test_invalid_unknown_field() -> None:
    caught = refused(body_of({"intents": [as_json(CANCEL), {**as_json(ORDER), "leverage": 5}]}))
    assert type(caught) is intake.UnknownField
    assert (caught.code, caught.index, caught.field) == ("unknown_field", 1, "leverage")


def test_invalid_unknown_top_level_field() -> None:
    caught = refused(body_of({"intents": [as_json(CANCEL)], "priority": 1}))
    assert type(caught) is intake.UnknownField and caught.field == "priority"


@pytest.mark.parametrize("field", ["price", "signature", "clientId"])
def test_invalid_missing_field(field: str) -> None:
    obj = as_json(ORDER)
    del obj[field]
    caught = refused(body_of(obj))
    assert type(caught) is intake.MissingField
    assert (caught.code, caught.field, caught.index) == ("missing_field", field, 0)


def test_invalid_missing_kind_and_unknown_kind() -> None:
    obj = as_json(ORDER)
    assert type(refused(body_of({"intents": [{**obj, "kind": 5}]}))) is intake.MissingField
    caught = refused(body_of({**obj, "kind": "Liquidate"}))
    assert type(caught) is intake.UnknownKind and caught.code == "unknown_kind"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        pytest.param("market", 2**32, "out of range for uint32", id="market_too_big"),
        pytest.param("price", -1, "out of range for uint64", id="negative_price"),
        pytest.param("nonce", 2**64, "out of range for uint64", id="nonce_too_big"),
        pytest.param("size", 1.0, "expected integer", id="float"),
        pytest.param("size", "20", "expected integer", id="string_number"),
        pytest.param("isBuy", 1, "expected bool", id="int_as_bool"),
        pytest.param("price", True, "expected integer", id="bool_as_int"),
        pytest.param("tif", 9, "unknown value", id="unknown_enum"),
        pytest.param("account", "0x1234", "40 hex digits", id="short_address"),
        pytest.param("clientId", "0x00", "32 hex digits", id="short_client_id"),
    ],
)
def test_invalid_field_value(field: str, value: Any, message: str) -> None:
    caught = refused(body_of({**as_json(ORDER), field: value}))
    assert type(caught) is intake.InvalidField and caught.code == "invalid_field"
    assert caught.field == field
    assert message in caught.message


def test_invalid_field_value_msgpack_out_of_range() -> None:
    body = msgpack.packb([1, *ORDER._replace(market=2**32), GOOD.signature])
    caught = refused(body, "application/msgpack")
    assert type(caught) is intake.InvalidField and caught.field == "market"


def test_invalid_oversize_body() -> None:
    obj = as_json(ORDER)
    body = body_of({"intents": [obj] * 10})
    caught = refused(body, max_body_bytes=len(body) - 1)
    assert type(caught) is intake.BodyTooLarge and caught.status == 413
    padded = body_of(obj) + b" " * DEFAULT_MAX_BODY_BYTES
    assert type(refused(padded)) is intake.BodyTooLarge
    assert INTAKE.process(body_of(obj))  # the same intent without padding is fine


def test_invalid_too_many_intents() -> None:
    obj = as_json(CANCEL)
    caught = refused(body_of({"intents": [obj] * 4}), max_intents=3)
    assert type(caught) is intake.TooManyIntents and caught.code == "too_many_intents"
    binary = msgpack.packb([encode_signed_intent(signed(CANCEL))] * 4)
    assert type(refused(binary, "application/msgpack", max_intents=3)) is intake.TooManyIntents
    assert len(Intake(DOMAIN, IntakeLimits(max_intents=3)).process(body_of({"intents": [obj] * 3})))


def test_invalid_empty_batch() -> None:
    assert type(refused(body_of({"intents": []}))) is intake.EmptyBatch


def test_invalid_media_type() -> None:
    caught = refused(body_of(as_json(ORDER)), "text/plain")
    assert type(caught) is intake.UnsupportedMediaType and caught.status == 415


def test_invalid_tampered_field_recovers_a_stranger() -> None:
    # Not refusable statelessly either; shown so the limit stays visible.
    tampered = {**as_json(ORDER), "size": ORDER.size + 1}
    (submission,) = INTAKE.process(body_of(tampered))
    assert isinstance(submission.command, engine.Signed)
    assert submission.command.signer != ALICE.address


def test_error_json_shape() -> None:
    caught = refused(body_of({"intents": [as_json(CANCEL), {**as_json(ORDER), "x": 1}]}))
    assert caught.to_json() == {
        "error": caught.message,
        "code": "unknown_field",
        "index": 1,
        "field": "x",
    }
