"""Sealed intents: the envelope opens to the exact signed bytes with the epoch key, and every
flaw is rejected the same way on every member."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest

from asyncdex.fairness.bls import encode_g1, g1_generator
from asyncdex.fairness.sealing import (
    MAX_ENVELOPE_BYTES,
    MalformedSealedIntent,
    Opened,
    Rejected,
    Rejection,
    SealedHeader,
    SealedIntent,
    SealingKey,
    Sessions,
    decode_sealed_intent,
    envelope_digest,
    envelope_epoch,
    envelope_signer,
    header_epoch_at,
    header_for,
    open_sealed_intent,
    seal_body,
    seal_intent,
    sealed_intent_id,
)
from asyncdex.fairness.threshold import (
    EpochKey,
    combine_decryption_shares,
    create_decryption_share,
)
from asyncdex.signing.eip712 import Domain, LocalSigner
from asyncdex.signing.intents import (
    ALL_MARKETS,
    Withdraw,
    asyncdex_domain,
    encode_signed_intent,
    sign_intent,
)

from .conftest import Committee, place_order

EPOCH = 1_765_000_000


def _key(
    committee: Committee, venue: bytes, epoch: int = EPOCH, members: tuple[int, ...] = (1, 2)
) -> EpochKey:
    shares = [create_decryption_share(committee.shares[m - 1], venue, epoch) for m in members]
    key = combine_decryption_shares(committee.key, venue, epoch, shares).key
    assert key is not None
    return key


def _rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


def test_round_trip_yields_the_exact_signed_intent_bytes(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    signed = place_order(trader, domain)
    envelope = seal_intent(sealing_key, trader, signed, EPOCH, fee_cap=250, rng=_rng().getrandbits)
    wire = envelope.encode()
    assert decode_sealed_intent(wire) == envelope
    assert envelope_signer(venue, envelope) == trader.address
    opened = open_sealed_intent(domain, _key(committee, venue), decode_sealed_intent(wire))
    assert isinstance(opened, Opened)
    assert opened.body == encode_signed_intent(signed)
    assert opened.signed == signed
    assert envelope.header == SealedHeader(trader.address, signed.intent.nonce, 0, 1, EPOCH, 250)


def test_the_body_is_hidden_and_each_envelope_has_its_own_nonce(
    domain: Domain, committee: Committee, trader: LocalSigner
) -> None:
    sealing_key = SealingKey(domain, committee.key.public_key)
    signed = place_order(trader, domain)
    first = seal_intent(sealing_key, trader, signed, EPOCH)
    second = seal_intent(sealing_key, trader, signed, EPOCH)
    body = encode_signed_intent(signed)
    # one client session per epoch: the same U, but never the same AEAD nonce
    assert first.ephemeral == second.ephemeral
    assert first.aead_nonce != second.aead_nonce and first.ciphertext != second.ciphertext
    assert body not in first.encode() and signed.signature not in first.encode()
    assert sealed_intent_id(first.encode()) != sealed_intent_id(second.encode())
    later = seal_intent(sealing_key, trader, signed, EPOCH + 1)
    assert later.ephemeral != first.ephemeral


def test_sessions_can_be_fresh_per_intent(
    committee: Committee, domain: Domain, venue: bytes, trader: LocalSigner
) -> None:
    unlinkable = SealingKey(domain, committee.key.public_key, reuse_sessions=False)
    envelopes = [
        seal_intent(unlinkable, trader, place_order(trader, domain, nonce=n), EPOCH) for n in (1, 2)
    ]
    assert envelopes[0].ephemeral != envelopes[1].ephemeral
    key = _key(committee, venue)
    assert all(isinstance(open_sealed_intent(domain, key, e), Opened) for e in envelopes)


def test_the_session_cache_changes_no_outcome(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    key = _key(committee, venue)
    good = [
        seal_intent(sealing_key, trader, place_order(trader, domain, nonce=n), EPOCH)
        for n in range(3)
    ]
    bad_point = _resign(dataclasses.replace(good[0], ephemeral=b"\xff" * 48), trader, venue)
    flipped = _resign(
        dataclasses.replace(good[1], ciphertext=bytes(len(good[1].ciphertext))), trader, venue
    )
    block = [good[0], bad_point, flipped, good[2], bad_point]
    sessions: Sessions = {}
    cached = [open_sealed_intent(domain, key, e, sessions) for e in block]
    plain = [open_sealed_intent(domain, key, e) for e in block]
    assert cached == plain
    assert len(sessions) == 2  # the client's session and the bad point, one entry each
    assert [type(r).__name__ for r in plain] == [
        "Opened",
        "Rejected",
        "Rejected",
        "Opened",
        "Rejected",
    ]


def test_an_intent_without_a_market_seals_with_all_markets(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    withdraw = sign_intent(
        trader, domain, Withdraw(trader.address, 9, 0, 1_000_000, trader.address)
    )
    envelope = seal_intent(sealing_key, trader, withdraw, EPOCH)
    assert envelope.header.market == ALL_MARKETS
    assert isinstance(open_sealed_intent(domain, _key(committee, venue), envelope), Opened)


def test_any_t_members_open_it_and_the_wrong_epoch_key_does_not(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    for members in ((1, 2), (3, 4), (2, 4)):
        assert isinstance(
            open_sealed_intent(domain, _key(committee, venue, members=members), envelope), Opened
        )
    later = _key(committee, venue, epoch=EPOCH + 1)
    result = open_sealed_intent(domain, later, envelope)
    assert isinstance(result, Rejected) and result.reason is Rejection.WRONG_EPOCH
    # the next epoch's key relabelled as this epoch's: the pairing gives another secret
    relabelled = EpochKey(EPOCH, later.key)
    result = open_sealed_intent(domain, relabelled, envelope)
    assert isinstance(result, Rejected) and result.reason is Rejection.DECRYPTION_FAILED


def test_another_venue_cannot_open_it(
    committee: Committee, domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    other = asyncdex_domain(domain.chain_id + 1, domain.verifying_contract)
    other_venue = SealingKey(other, committee.key.public_key).venue
    result = open_sealed_intent(other, _key(committee, other_venue), envelope)
    assert isinstance(result, Rejected)
    assert (
        result.reason is Rejection.BAD_ENVELOPE_SIGNATURE
        or result.reason is Rejection.DECRYPTION_FAILED
    )


def _resign(envelope: SealedIntent, signer: LocalSigner, venue: bytes) -> SealedIntent:
    digest = envelope_digest(
        venue, envelope.header, envelope.ephemeral, envelope.aead_nonce, envelope.ciphertext
    )
    return dataclasses.replace(envelope, signature=signer.sign(digest))


def test_a_tampered_header_fails_authentication_even_when_re_signed(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    key = _key(committee, venue)
    for change in ({"fee_cap": 1}, {"nonce": 2}, {"market": 2}, {"expires_after": 5}):
        header = dataclasses.replace(envelope.header, **change)
        tampered = dataclasses.replace(envelope, header=header)
        unsigned = open_sealed_intent(domain, key, tampered)
        assert isinstance(unsigned, Rejected)
        # the old signature recovers to some stranger, never to the trader
        assert (
            unsigned.reason is Rejection.DECRYPTION_FAILED
            or unsigned.reason is Rejection.BAD_ENVELOPE_SIGNATURE
        )
        resigned = open_sealed_intent(domain, key, _resign(tampered, trader, venue))
        assert resigned == Rejected(
            Rejection.DECRYPTION_FAILED, "the ciphertext or its header fails authentication"
        )


def test_a_tampered_ciphertext_is_rejected_identically_by_every_key_holder(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    flipped = bytearray(envelope.ciphertext)
    flipped[3] ^= 0x40
    tampered = _resign(dataclasses.replace(envelope, ciphertext=bytes(flipped)), trader, venue)
    results = {
        open_sealed_intent(domain, _key(committee, venue, members=members), tampered)
        for members in ((1, 2), (1, 3), (2, 3), (3, 4))
    }
    assert len(results) == 1
    (result,) = results
    assert isinstance(result, Rejected) and result.reason is Rejection.DECRYPTION_FAILED


def test_a_stranger_cannot_sign_a_traders_envelope(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    stranger = LocalSigner(b"\x42" * 32)
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    hijacked = _resign(envelope, stranger, venue)
    assert envelope_signer(venue, hijacked) == stranger.address
    result = open_sealed_intent(domain, _key(committee, venue), hijacked)
    assert isinstance(result, Rejected) and result.reason is Rejection.SIGNER_MISMATCH


def test_bad_envelope_signature_and_bad_ephemeral(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    key = _key(committee, venue)
    unsignable = dataclasses.replace(envelope, signature=envelope.signature[:64] + b"\x05")
    result = open_sealed_intent(domain, key, unsignable)
    assert isinstance(result, Rejected) and result.reason is Rejection.BAD_ENVELOPE_SIGNATURE
    for ephemeral in (bytes([0xC0]) + bytes(47), b"\xff" * 48):
        bad = _resign(dataclasses.replace(envelope, ephemeral=ephemeral), trader, venue)
        result = open_sealed_intent(domain, key, bad)
        assert isinstance(result, Rejected) and result.reason is Rejection.BAD_EPHEMERAL
    # a valid point that is not the one the body was sealed with
    other = _resign(
        dataclasses.replace(envelope, ephemeral=encode_g1(g1_generator())), trader, venue
    )
    result = open_sealed_intent(domain, key, other)
    assert isinstance(result, Rejected) and result.reason is Rejection.DECRYPTION_FAILED


def _body_case(
    sealing_key: SealingKey, envelope_signer_key: LocalSigner, header: SealedHeader, body: bytes
) -> SealedIntent:
    return seal_body(sealing_key, envelope_signer_key, header, body, _rng(3).getrandbits)


def test_bodies_that_are_not_validly_signed_intents_are_rejected(
    committee: Committee, domain: Domain, venue: bytes, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    key = _key(committee, venue)
    signed = place_order(trader, domain)
    header = header_for(signed, EPOCH)
    body = encode_signed_intent(signed)

    def reason(envelope: SealedIntent) -> Rejection:
        result = open_sealed_intent(domain, key, envelope)
        assert isinstance(result, Rejected), result
        return result.reason

    assert (
        reason(_body_case(sealing_key, trader, header, b"not msgpack \xc1"))
        is Rejection.MALFORMED_BODY
    )
    assert (
        reason(_body_case(sealing_key, trader, header, body + b"\x00")) is Rejection.MALFORMED_BODY
    )
    broken_v = body[:-1] + b"\x05"  # the signature's v byte: no key recovers from it
    assert reason(_body_case(sealing_key, trader, header, broken_v)) is Rejection.BAD_BODY_SIGNATURE
    # signed for another deployment: recovers to a stranger, not the envelope's signer
    elsewhere = asyncdex_domain(1, b"\x99" * 20)
    foreign = encode_signed_intent(sign_intent(trader, elsewhere, signed.intent))
    assert reason(_body_case(sealing_key, trader, header, foreign)) is Rejection.SIGNER_MISMATCH
    # the header of one intent around the body of another
    other = encode_signed_intent(place_order(trader, domain, nonce=signed.intent.nonce + 1))
    assert reason(_body_case(sealing_key, trader, header, other)) is Rejection.HEADER_MISMATCH
    moved = dataclasses.replace(header, market=7)
    assert reason(_body_case(sealing_key, trader, moved, body)) is Rejection.HEADER_MISMATCH
    assert isinstance(
        open_sealed_intent(domain, key, _body_case(sealing_key, trader, header, body)), Opened
    )


def test_seal_intent_refuses_an_intent_signed_by_another_key(
    domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    with pytest.raises(ValueError, match="signed by the key"):
        seal_intent(sealing_key, LocalSigner(b"\x07" * 32), place_order(trader, domain), EPOCH)


# ---------------------------------------------------------------------------------------------
# Strict decoding


@pytest.fixture
def wire(domain: Domain, sealing_key: SealingKey, trader: LocalSigner) -> bytes:
    return seal_intent(
        sealing_key, trader, place_order(trader, domain), EPOCH, rng=_rng().getrandbits
    ).encode()


def _items(wire: bytes) -> list[object]:
    items = msgpack.unpackb(wire, raw=False)
    assert isinstance(items, list)
    return items


def _with(wire: bytes, index: int, value: object) -> bytes:
    items = _items(wire)
    items[index] = value
    packed = msgpack.packb(items, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


@pytest.mark.parametrize(
    ("index", "value", "field"),
    [
        (0, 2, "version"),
        (1, b"\x01" * 19, "account"),
        (1, "0x" + "11" * 20, "account"),
        (2, -1, "nonce"),
        (5, -1, "epoch"),
        (3, True, "expires_after"),
        (4, 2**32, "market"),
        (5, "1", "epoch"),
        (6, 1.5, "fee_cap"),
        (7, b"\x01" * 47, "ephemeral"),
        (8, b"\x01" * 11, "aead_nonce"),
        (9, b"\x01" * 16, "ciphertext"),
        (9, None, "ciphertext"),
        (10, b"\x01" * 64, "signature"),
    ],
)
def test_invalid_fields_are_named(wire: bytes, index: int, value: object, field: str) -> None:
    bad = _with(wire, index, value)
    with pytest.raises(MalformedSealedIntent) as refused:
        decode_sealed_intent(bad)
    assert refused.value.field == field or (field == "version" and "version" in str(refused.value))


def test_invalid_shapes_are_refused(wire: bytes) -> None:
    items = _items(wire)
    cases = {
        "trailing bytes": wire + b"\x00",
        "an array of 10": msgpack.packb(items[:-1], use_bin_type=True),
        "a map": msgpack.packb({"a": 1}),
        "oversize": wire + bytes(MAX_ENVELOPE_BYTES),
        "empty": b"",
    }
    for data in cases.values():
        with pytest.raises(MalformedSealedIntent):
            decode_sealed_intent(data)


def test_a_non_minimal_integer_is_refused(wire: bytes) -> None:
    items = _items(wire)
    parts = [msgpack.packb(item, use_bin_type=True) for item in items]
    market = items[4]
    assert market == 1 and parts[4] == b"\x01"
    parts[4] = b"\xcf" + bytes(7) + b"\x01"  # the same 1 as a uint64
    forged = b"\x9b" + b"".join(parts)
    assert b"\x9b" + b"".join(msgpack.packb(i, use_bin_type=True) for i in items) == wire
    assert msgpack.unpackb(forged, raw=False) == items
    with pytest.raises(MalformedSealedIntent, match="non-canonical"):
        decode_sealed_intent(forged)


# ---------------------------------------------------------------------------------------------
# The fast header read


@pytest.mark.parametrize(
    ("nonce", "expires_after", "market", "epoch"),
    [
        (0, 0, 0, 0),
        (1_700_000_000_000, 0, 1, EPOCH),
        (127, 128, 255, 127),
        (256, 65_535, 65_536, 128),
        (2**32 - 1, 2**32, ALL_MARKETS, 65_535),
        (2**64 - 1, 2**64 - 1, 2**32 - 1, 2**32),
        (5, 5, 5, 2**64 - 1),
    ],
)
def test_envelope_epoch_reads_the_epoch_strict_decoding_reads(
    sealing_key: SealingKey,
    trader: LocalSigner,
    nonce: int,
    expires_after: int,
    market: int,
    epoch: int,
) -> None:
    header = SealedHeader(trader.address, nonce, expires_after, market, epoch, 0)
    wire = seal_body(sealing_key, trader, header, b"any body", _rng().getrandbits).encode()
    assert decode_sealed_intent(wire).header.epoch == epoch
    assert envelope_epoch(wire) == epoch
    assert header_epoch_at(b"\x04" + wire, 1) == epoch  # inside an item, after its kind


def test_envelope_epoch_is_none_for_what_does_not_start_like_an_envelope(wire: bytes) -> None:
    epoch_at = 1 + 1 + 22 + 9 + 1 + 1  # array, version, account, nonce (u64), expiry, market
    assert wire[epoch_at] == 0xCE and envelope_epoch(wire) == EPOCH  # EPOCH is a uint32
    cases = {
        "empty": b"",
        "a map": msgpack.packb({"a": 1}),
        "an array of 10": msgpack.packb(_items(wire)[:-1], use_bin_type=True),
        "version 2": _with(wire, 0, 2),
        "a short account": _with(wire, 1, b"\x01" * 19),
        "a negative epoch": _with(wire, 5, -1),
        "a string epoch": _with(wire, 5, "1"),
        "a negative nonce": _with(wire, 2, -1),
        "cut in the nonce": wire[: epoch_at - 5],
        "cut in the epoch": wire[: epoch_at + 3],
        "cut before the epoch": wire[:epoch_at],
        "oversize": wire + bytes(MAX_ENVELOPE_BYTES),
    }
    for name, data in cases.items():
        assert isinstance(data, bytes)
        assert envelope_epoch(data) is None, name
        with pytest.raises(MalformedSealedIntent):
            decode_sealed_intent(data)  # strict decoding refuses them all too
    assert header_epoch_at(b"\x04" + wire, 0) is None  # the kind byte is not an envelope
