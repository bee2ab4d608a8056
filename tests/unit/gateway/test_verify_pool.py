"""The verifier pool gives exactly the in-loop intake's answers, request by request, from real
worker processes; a request's bad body or signature refuses that request only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from asyncdex.gateway.eip712 import LocalSigner
from asyncdex.gateway.intake import DEFAULT_MAX_BODY_BYTES, Intake, IntakeError
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
JSON = "application/json"
NONCE = 1_767_225_600_000
SIGNERS = [LocalSigner(keccak256(f"pool {i}".encode())) for i in range(4)]


def request(signer: LocalSigner, first_nonce: int, count: int) -> bytes:
    intents = []
    for k in range(count):
        intent = PlaceOrder(
            signer.address, first_nonce + k, 0, 0, True, 1_000_000 + k, 10, OrderType.LIMIT,
            TimeInForce.GTC, False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
        )  # fmt: skip
        intents.append(signed_intent_to_json(sign_intent(signer, DOMAIN, intent)))
    return json.dumps({"intents": intents}).encode()


def with_bad_signature(body: bytes, index: int) -> bytes:
    document = json.loads(body)
    signature = document["intents"][index]["signature"]
    document["intents"][index]["signature"] = signature[:-2] + "1e"  # v must be 27 or 28
    return json.dumps(document).encode()


@pytest.fixture(scope="module")
def pool() -> Iterator[VerifierPool]:
    verifier = VerifierPool(DOMAIN, workers=2)
    asyncio.run(verifier.start())
    yield verifier
    verifier.close()


def test_concurrent_requests_get_the_in_loop_answers(pool: VerifierPool) -> None:
    requests = [request(SIGNERS[i % 4], NONCE + 100 * i, 1 + i % 5) for i in range(24)]

    async def run() -> list[object]:
        return await asyncio.gather(*(pool.process(body, JSON) for body in requests))

    chunks_before = pool.chunks
    answers = asyncio.run(run())
    assert answers == [INTAKE.process(body, JSON) for body in requests]
    # requests of one loop turn travel together: far fewer tasks than requests
    assert pool.chunks - chunks_before <= 2


@pytest.mark.parametrize(
    "bad",
    [
        with_bad_signature(request(SIGNERS[1], NONCE, 3), 1),
        b'{"intents": [}',
        b"[" * 50_000 + b"]" * 50_000,
        b"x" * (DEFAULT_MAX_BODY_BYTES + 1),
    ],
    ids=["signature", "json", "deep", "too large"],
)
def test_a_bad_request_is_refused_alone_as_in_the_loop(pool: VerifierPool, bad: bytes) -> None:
    good = request(SIGNERS[0], NONCE, 3)

    async def run() -> list[object]:
        return await asyncio.gather(
            pool.process(good, JSON), pool.process(bad, JSON), return_exceptions=True
        )

    good_answer, bad_answer = asyncio.run(run())
    assert good_answer == INTAKE.process(good, JSON)
    with pytest.raises(IntakeError) as in_loop:
        INTAKE.process(bad, JSON)
    assert isinstance(bad_answer, IntakeError)
    assert type(bad_answer) is type(in_loop.value)
    assert bad_answer.to_json() == in_loop.value.to_json()
