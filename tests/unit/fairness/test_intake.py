"""``POST /v1/sealed`` intake: the body and every envelope checked before anything is
sequenced, refusals named by code and index."""

from __future__ import annotations

import dataclasses
import json

import pytest

from asyncdex.committee.items import KIND_INTENT, KIND_SYSTEM
from asyncdex.committee.sealed import KIND_SEALED
from asyncdex.fairness.intake import (
    MAX_SEALED_PER_REQUEST,
    SEALED_ITEM_KIND,
    SealedIntakeError,
    check_sealed_submissions,
    parse_sealed_body,
    sealed_item_deadline,
    sealed_item_ready,
)
from asyncdex.fairness.sealing import SealingKey, seal_intent, sealed_intent_id
from asyncdex.fairness.threshold import epoch_of
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


def test_a_leader_holds_back_only_sealed_items_for_a_later_epoch(
    domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    assert SEALED_ITEM_KIND == KIND_SEALED
    epoch_ms = 40
    ready = sealed_item_ready(epoch_ms)
    item = bytes((KIND_SEALED,)) + _wire(sealing_key, domain, trader, EPOCH)
    start = EPOCH * epoch_ms  # the epoch's first ms
    assert not ready(item, 0)
    assert not ready(item, start - 1)  # the last ms of the epoch before
    assert ready(item, start)
    assert ready(item, start + epoch_ms - 1)
    assert ready(item, start + 10 * epoch_ms)  # past: proposed, to be refused epoch_closed
    # everything else is ready at any time: other kinds, an unreadable envelope
    for other in (
        bytes((KIND_INTENT,)) + item[1:],
        bytes((KIND_SYSTEM,)) + item[1:],
        bytes((KIND_SEALED,)) + b"not an envelope",
        bytes((KIND_SEALED,)),
    ):
        assert ready(other, 0) and ready(other, start - 1)


def test_a_sealed_items_deadline_is_the_last_millisecond_of_its_epoch(
    domain: Domain, sealing_key: SealingKey, trader: LocalSigner
) -> None:
    epoch_ms = 40
    deadline = sealed_item_deadline(epoch_ms)
    ready = sealed_item_ready(epoch_ms)
    for epoch in (0, 7, EPOCH, 70_000):  # one-byte to multi-byte epochs in the header
        item = bytes((KIND_SEALED,)) + _wire(sealing_key, domain, trader, epoch)
        last = deadline(item)
        assert last == (epoch + 1) * epoch_ms - 1
        # a block stamped then is still in the epoch (and may hold the item); one later is not
        assert epoch_of(last, epoch_ms) == epoch and ready(item, last)
        assert epoch_of(last + 1, epoch_ms) == epoch + 1
    sealed = bytes((KIND_SEALED,)) + _wire(sealing_key, domain, trader)
    for other in (
        bytes((KIND_INTENT,)) + sealed[1:],
        bytes((KIND_SYSTEM,)) + sealed[1:],
        bytes((KIND_SEALED,)) + b"not an envelope",
        sealed[:12],  # the header cut short
        bytes((KIND_SEALED,)),
        b"",
    ):
        assert deadline(other) is None


@pytest.mark.parametrize("epoch_ms", [0, -5])
def test_the_sealed_item_hooks_need_a_positive_epoch_length(epoch_ms: int) -> None:
    with pytest.raises(ValueError, match="epoch_ms"):
        sealed_item_ready(epoch_ms)
    with pytest.raises(ValueError, match="epoch_ms"):
        sealed_item_deadline(epoch_ms)
