"""The verifier pool gives exactly the in-loop intake's answers, request by request, from real
worker processes; a request's bad signature refuses that request only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from asyncdex.gateway.eip712 import LocalSigner
from asyncdex.gateway.intake import BadSignature, Intake, ParsedIntent, verify_batch
from asyncdex.gateway.intents import (
    NO_CLIENT_ID,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.gateway.verify_pool import VerifierPool
from asyncdex.types.hashing import keccak256

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
INTAKE = Intake(DOMAIN)
NONCE = 1_767_225_600_000
SIGNERS = [LocalSigner(keccak256(f"pool {i}".encode())) for i in range(4)]


def request(signer: LocalSigner, first_nonce: int, count: int) -> list[ParsedIntent]:
    intents = []
    for k in range(count):
        intent = PlaceOrder(
            signer.address, first_nonce + k, 0, 0, True, 1_000_000 + k, 10, OrderType.LIMIT,
            TimeInForce.GTC, False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
        )  # fmt: skip
        intents.append(signed_intent_to_json(sign_intent(signer, DOMAIN, intent)))
    return INTAKE.decode(json.dumps({"intents": intents}).encode())


def with_bad_signature(parsed: list[ParsedIntent], index: int) -> list[ParsedIntent]:
    intent, signature = parsed[index]
    tampered = signature[:64] + bytes([30])  # v must be 27 or 28
    return [*parsed[:index], ParsedIntent(intent, tampered), *parsed[index + 1 :]]


@pytest.fixture(scope="module")
def pool() -> Iterator[VerifierPool]:
    verifier = VerifierPool(DOMAIN, workers=2)
    asyncio.run(verifier.start())
    yield verifier
    verifier.close()


def test_concurrent_requests_get_the_in_loop_answers(pool: VerifierPool) -> None:
    requests = [request(SIGNERS[i % 4], NONCE + 100 * i, 1 + i % 5) for i in range(24)]

    async def run() -> list[object]:
        return await asyncio.gather(*(pool.verify(parsed) for parsed in requests))

    chunks_before = pool.chunks
    answers = asyncio.run(run())
    assert answers == [verify_batch(DOMAIN, parsed) for parsed in requests]
    # requests of one loop turn travel together: far fewer tasks than requests
    assert pool.chunks - chunks_before <= 2


def test_a_bad_signature_refuses_its_request_only(pool: VerifierPool) -> None:
    good = request(SIGNERS[0], NONCE, 3)
    bad = with_bad_signature(request(SIGNERS[1], NONCE, 3), 1)

    async def run() -> list[object]:
        return await asyncio.gather(pool.verify(good), pool.verify(bad), return_exceptions=True)

    good_answer, bad_answer = asyncio.run(run())
    assert good_answer == verify_batch(DOMAIN, good)
    with pytest.raises(BadSignature) as in_loop:
        verify_batch(DOMAIN, bad)
    assert isinstance(bad_answer, BadSignature)
    assert type(bad_answer) is type(in_loop.value)
    assert bad_answer.to_json() == in_loop.value.to_json()
