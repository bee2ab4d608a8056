"""EIP-712 hashing and signature recovery, cross-checked against eth_account."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.signing.eip712 import (
    SECP256K1_N,
    Domain,
    EIP712EncodingError,
    InvalidRecoveryId,
    LocalSigner,
    MalleableSignature,
    SignatureError,
    SignatureLengthError,
    SignatureOutOfRange,
    StructType,
    UnrecoverableSignature,
    address_of_private_key,
    checksum_address,
    domain_separator,
    encode_struct,
    hash_struct,
    parse_address,
    recover_address,
    sign_digest,
    type_hash,
    typed_data_digest,
)
from asyncdex.types.hashing import keccak256

DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

PERSON = StructType("Person", [("name", "string"), ("wallet", "address")])
EVERYTHING_FIELDS: list[tuple[str, Any]] = [
    ("from", PERSON),
    ("flag", "bool"),
    ("u8", "uint8"),
    ("u64", "uint64"),
    ("u256", "uint256"),
    ("i8", "int8"),
    ("i64", "int64"),
    ("i256", "int256"),
    ("b1", "bytes1"),
    ("b16", "bytes16"),
    ("b32", "bytes32"),
    ("blob", "bytes"),
    ("text", "string"),
    ("ids", "uint64[]"),
    ("pair", "bytes32[2]"),
    ("addr", "address"),
]
EVERYTHING = StructType("Everything", EVERYTHING_FIELDS)

KEY = bytes(range(1, 33))


def signable(domain: Domain, primary: str, types: dict[str, Any], message: Any) -> SignableMessage:
    return encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, **types},
            "primaryType": primary,
            "domain": {
                "name": domain.name,
                "version": domain.version,
                "chainId": domain.chain_id,
                "verifyingContract": to_checksum_address(domain.verifying_contract),
            },
            "message": message,
        }
    )


def eth_digest(message: SignableMessage) -> bytes:
    return keccak256(b"\x19" + message.version + message.header + message.body)


def json_value(value: Any) -> Any:
    """eth_account wants addresses as hex strings; other values pass through."""
    if isinstance(value, bytes) and len(value) == 20:
        return to_checksum_address(value)
    return value


domains = st.builds(
    Domain,
    name=st.text(max_size=20),
    version=st.text(max_size=5),
    chain_id=st.integers(0, 2**256 - 1),
    verifying_contract=st.binary(min_size=20, max_size=20),
)
addresses = st.binary(min_size=20, max_size=20)
everything_values = st.tuples(
    st.tuples(st.text(max_size=10), addresses),
    st.booleans(),
    st.integers(0, 2**8 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**256 - 1),
    st.integers(-(2**7), 2**7 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**255), 2**255 - 1),
    st.binary(min_size=1, max_size=1),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=80),
    st.text(max_size=30),
    st.lists(st.integers(0, 2**64 - 1), max_size=4),
    st.lists(st.binary(min_size=32, max_size=32), min_size=2, max_size=2),
    addresses,
)


def everything_message(values: tuple[Any, ...]) -> dict[str, Any]:
    (person_name, wallet), *rest = values
    message = {"from": {"name": person_name, "wallet": to_checksum_address(wallet)}}
    for (field_name, _), value in zip(EVERYTHING_FIELDS[1:], rest, strict=True):
        message[field_name] = json_value(value)
    return message


EVERYTHING_TYPES = {
    "Everything": [
        {"name": n, "type": t.name if isinstance(t, StructType) else t}
        for n, t in EVERYTHING_FIELDS
    ],
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
}


def test_encode_type_lists_referenced_structs_after_primary() -> None:
    assert EVERYTHING.encode_type.startswith("Everything(Person from,bool flag,uint8 u8,")
    assert EVERYTHING.encode_type.endswith(",address addr)Person(string name,address wallet)")
    assert type_hash(EVERYTHING) == keccak256(EVERYTHING.encode_type.encode())


def test_mail_example_from_eip712() -> None:
    mail = StructType("Mail", [("from", PERSON), ("to", PERSON), ("contents", "string")])
    domain = Domain(
        "Ether Mail", "1", 1, bytes.fromhex("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC".lower())
    )
    cow = bytes.fromhex("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826".lower())
    bob = bytes.fromhex("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB".lower())
    digest = typed_data_digest(
        domain_separator(domain), hash_struct(mail, (("Cow", cow), ("Bob", bob), "Hello, Bob!"))
    )
    # The digest published in EIP-712's reference example.
    assert digest.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"


@settings(max_examples=60, deadline=None)
@given(domains, everything_values)
def test_digest_matches_eth_account(domain: Domain, values: tuple[Any, ...]) -> None:
    message = signable(domain, "Everything", EVERYTHING_TYPES, everything_message(values))
    assert domain_separator(domain) == message.header
    assert hash_struct(EVERYTHING, values) == message.body
    assert encode_struct(EVERYTHING, values) == EVERYTHING.encode_reference(values)
    assert typed_data_digest(domain_separator(domain), message.body) == eth_digest(message)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_signatures_interoperate_with_eth_account(key_seed: bytes, word: bytes) -> None:
    key = (int.from_bytes(key_seed, "big") % (SECP256K1_N - 1) + 1).to_bytes(32, "big")
    wallet = Account.from_key(key)
    domain = Domain("asyncdex", "1", 1, bytes(20))
    probe = StructType("Probe", [("word", "bytes32")])
    message = signable(
        domain, "Probe", {"Probe": [{"name": "word", "type": "bytes32"}]}, {"word": word}
    )
    digest = typed_data_digest(domain_separator(domain), hash_struct(probe, (word,)))
    assert address_of_private_key(key) == bytes.fromhex(wallet.address[2:])

    theirs = wallet.sign_message(message).signature
    assert recover_address(digest, bytes(theirs)) == address_of_private_key(key)

    ours = sign_digest(key, digest)
    assert ours[64] in (27, 28)
    assert Account.recover_message(message, signature=ours) == wallet.address


def signed_probe() -> tuple[bytes, bytes, bytes]:
    digest = keccak256(b"probe")
    signature = sign_digest(KEY, digest)
    return digest, signature, address_of_private_key(KEY)


def test_raw_recovery_id_accepted() -> None:
    digest, signature, address = signed_probe()
    assert recover_address(digest, signature[:64] + bytes((signature[64] - 27,))) == address


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_invalid_signature_length(length: int) -> None:
    with pytest.raises(SignatureLengthError, match="65 bytes"):
        recover_address(keccak256(b"x"), bytes(length))


@pytest.mark.parametrize("v", [2, 26, 29, 35, 37, 255])
def test_invalid_recovery_id(v: int) -> None:
    digest, signature, _ = signed_probe()
    with pytest.raises(InvalidRecoveryId, match="v must be 27 or 28"):
        recover_address(digest, signature[:64] + bytes((v,)))


@pytest.mark.parametrize(
    ("r", "s", "message"),
    [
        (0, 1, "0 < r"),
        (SECP256K1_N, 1, "0 < r"),
        (2**256 - 1, 1, "0 < r"),
        (1, 0, "0 < s"),
        (1, SECP256K1_N, "0 < s"),
    ],
)
def test_invalid_r_s_out_of_range(r: int, s: int, message: str) -> None:
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b"
    with pytest.raises(SignatureOutOfRange, match=message):
        recover_address(keccak256(b"x"), signature)


def test_invalid_high_s_is_malleable() -> None:
    digest, signature, _ = signed_probe()
    s = int.from_bytes(signature[32:64], "big")
    flipped_v = 55 - signature[64]  # 27 <-> 28: the mirrored s pairs with the other parity
    mirrored = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((flipped_v,))
    with pytest.raises(MalleableSignature, match="upper half"):
        recover_address(digest, mirrored)
    assert issubclass(MalleableSignature, SignatureError)


def test_invalid_r_not_on_curve_is_unrecoverable() -> None:
    p = 2**256 - 2**32 - 977
    r = next(x for x in range(1, 1000) if pow(x**3 + 7, (p - 1) // 2, p) != 1)
    signature = r.to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(UnrecoverableSignature):
        recover_address(keccak256(b"x"), signature)


def test_different_digest_recovers_different_address() -> None:
    _digest, signature, address = signed_probe()
    assert recover_address(keccak256(b"other"), signature) != address


@pytest.mark.parametrize(
    ("field_index", "value", "message"),
    [
        (1, 1, "Everything.flag: expected bool"),
        (2, 256, "Everything.u8: expected uint8"),
        (3, -1, "Everything.u64: expected uint64"),
        (3, True, "Everything.u64: expected uint64"),
        (3, 1.0, "Everything.u64: expected uint64"),
        (5, 128, "Everything.i8: expected int8"),
        (5, -129, "Everything.i8: expected int8"),
        (9, bytes(15), r"Everything.b16: expected bytes16 \(16 bytes\)"),
        (9, "0x" + "00" * 16, "Everything.b16: expected bytes16"),
        (11, "text", "Everything.blob: expected bytes"),
        (12, b"bytes", "Everything.text: expected string"),
        (12, "\ud800", "Everything.text: string is not valid UTF-8"),
        (13, (1, -1), "Everything.ids: expected uint64"),
        (14, [bytes(32)], r"Everything.pair: expected bytes32\[2\] with 2 items"),
        (15, bytes(19), r"Everything.addr: expected address \(20 bytes\)"),
        (0, ("name", bytes(21)), "Everything.from: Person.wallet: expected address"),
    ],
)
def test_invalid_values_name_struct_and_field(field_index: int, value: Any, message: str) -> None:
    values = list(
        (
            ("n", bytes(20)),
            True,
            1,
            2,
            3,
            -4,
            -5,
            -6,
            b"\x07",
            bytes(16),
            bytes(32),
            b"",
            "",
            [],
            [bytes(32), bytes(32)],
            bytes(20),
        )
    )
    EVERYTHING.hash(values)
    values[field_index] = value
    with pytest.raises(EIP712EncodingError, match=message) as caught:
        EVERYTHING.hash(values)
    assert caught.value.field == EVERYTHING_FIELDS[field_index][0]
    with pytest.raises(EIP712EncodingError, match=message):
        EVERYTHING.encode_reference(values)


def test_invalid_value_count() -> None:
    with pytest.raises(EIP712EncodingError, match="Person takes 2 values, got 1"):
        PERSON.hash(("only name",))


def test_struct_from_mapping() -> None:
    wallet = bytes(range(20))
    assert PERSON.hash(PERSON.values_from_mapping({"wallet": wallet, "name": "a", "x": 1})) == (
        PERSON.hash(("a", wallet))
    )
    with pytest.raises(EIP712EncodingError, match="missing field 'wallet'"):
        PERSON.values_from_mapping({"name": "a"})


@pytest.mark.parametrize(
    "type_string",
    [
        "uint7",
        "uint264",
        "uint08",
        "int0",
        "bytes0",
        "bytes33",
        "float",
        "Person",
        "uint64\n",
        "uint64[][]",
        "uint\u0666\u0664",
    ],
)
def test_invalid_type_strings(type_string: str) -> None:
    with pytest.raises(EIP712EncodingError, match="unsupported EIP-712 type"):
        StructType("Bad", [("x", type_string)])


def test_invalid_struct_definitions() -> None:
    with pytest.raises(EIP712EncodingError, match="duplicate field names"):
        StructType("Bad", [("x", "bool"), ("x", "bool")])
    with pytest.raises(EIP712EncodingError, match="invalid struct name"):
        StructType("Bad Name", [("x", "bool")])
    with pytest.raises(EIP712EncodingError, match="invalid field name 'a,b'"):
        StructType("Bad", [("a,b", "bool")])


@settings(max_examples=50)
@given(addresses)
def test_checksum_address_matches_eth_utils(address: bytes) -> None:
    text = checksum_address(address)
    assert text == to_checksum_address(address)
    assert parse_address(text) == address
    assert parse_address(text.lower()) == address
    assert parse_address("0x" + text[2:].upper()) == address


def test_invalid_address_text() -> None:
    good = checksum_address(bytes.fromhex("52908400098527886e0f7030069857d2e4169ee7"))
    assert good == "0x52908400098527886E0F7030069857D2E4169EE7"
    bad_checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".replace("aA", "Aa", 1)
    with pytest.raises(ValueError, match="invalid EIP-55 checksum"):
        parse_address(bad_checksum)
    for text in [
        "52908400098527886e0f7030069857d2e4169ee7",
        "0x1234",
        "0x" + "g" * 40,
        "0x" + "00" * 20 + "\n",
    ]:
        with pytest.raises(ValueError, match="40 hex digits"):
            parse_address(text)


def test_local_signer() -> None:
    signer = LocalSigner(KEY)
    assert signer.address == bytes.fromhex(Account.from_key(KEY).address[2:])
    assert KEY.hex() not in repr(signer)
    digest = keccak256(b"many")
    assert recover_address(digest, signer.sign(digest)) == signer.address
    assert signer.sign(digest) == sign_digest(KEY, digest)


@pytest.mark.parametrize(
    "key", [bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\xff" * 32, bytes(31), "00" * 32]
)
def test_invalid_private_keys(key: Any) -> None:
    with pytest.raises(ValueError):
        LocalSigner(key)
