"""``POST /v1/sealed`` intake: the body and every envelope checked before anything is
sequenced, refusals named by code and index."""

from __future__ import annotations

import dataclasses
import json

import pytest

from asyncdex.fairness.intake import (
    MAX_SEALED_PER_REQUEST,
    SealedIntakeError,
    check_sealed_submissions,
    parse_sealed_body,
)
from asyncdex.fairness.sealing import SealingKey, seal_intent, sealed_intent_id
from asyncdex.signing.eip712 import Domain, LocalSigner

from .conftest import place_order

EPOCH = 500


def _wire(
    sealing_key: SealingKey, domain: Domain, trader: LocalSigner, epoch: int = EPOCH, nonce: int = 1
) -> bytes:
    return seal_intent(
        sealing_key, trader, place_order(trader, domain, nonce=nonce), epoch
    ).encode()


def _body(*envelopes: bytes) -> bytes:
    return json.dumps({"sealed": ["0x" + e.hex() for e in envelopes]}).encode()


def test_accepts_current_and_next_epoch_with_signers_and_ids(
    domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    now, soon = _wire(sealing_key, domain, trader), _wire(sealing_key, domain, trader, EPOCH + 1, 2)
    accepted = check_sealed_submissions(domain, parse_sealed_body(_body(now, soon)), EPOCH)
    assert [a.data for a in accepted] == [now, soon]
    assert [a.signer for a in accepted] == [trader.address] * 2
    assert [a.sealed_id for a in accepted] == [sealed_intent_id(now), sealed_intent_id(soon)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "malformed_json"),
        (b'{"sealed": []}', "malformed_body"),
        (b'{"sealed": ["0xab"], "x": 1}', "malformed_body"),
        (b'["0xab"]', "malformed_body"),
        (b'{"sealed": ["ab"]}', "malformed_sealed_intent"),
        (b'{"sealed": ["0xabc"]}', "malformed_sealed_intent"),
        (
            json.dumps({"sealed": ["0x00"] * (MAX_SEALED_PER_REQUEST + 1)}).encode(),
            "malformed_body",
        ),
        (b" " * 200_000, "too_large"),
    ],
)
def test_refuses_bodies_of_another_shape(body: bytes, code: str) -> None:
    with pytest.raises(SealedIntakeError) as refused:
        parse_sealed_body(body)
    assert refused.value.code == code
    assert refused.value.to_json()["code"] == code


def test_refuses_the_whole_request_naming_the_envelope(
    domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    good = _wire(sealing_key, domain, trader)
    cases = {
        "malformed_sealed_intent": good + b"\x00",
        "epoch_closed": _wire(sealing_key, domain, trader, EPOCH - 1),
        "epoch_not_open": _wire(sealing_key, domain, trader, EPOCH + 2),
    }
    for code, bad in cases.items():
        with pytest.raises(SealedIntakeError) as refused:
            check_sealed_submissions(domain, [good, bad], EPOCH)
        assert (refused.value.code, refused.value.index) == (code, 1)
        assert refused.value.to_json()["index"] == 1


def test_refuses_an_envelope_signature_that_does_not_recover(
    domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    envelope = seal_intent(sealing_key, trader, place_order(trader, domain), EPOCH)
    broken = dataclasses.replace(envelope, signature=envelope.signature[:64] + b"\x07")
    with pytest.raises(SealedIntakeError) as refused:
        check_sealed_submissions(domain, [broken.encode()], EPOCH)
    assert (refused.value.code, refused.value.field) == ("bad_envelope_signature", "signature")
