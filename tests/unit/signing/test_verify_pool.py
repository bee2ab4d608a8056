"""The verifier pool gives exactly the in-loop intake's answers, request by request, from real
worker processes; a request's bad body or signature refuses that request only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import pytest

from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intake import DEFAULT_MAX_BODY_BYTES, Intake, IntakeError
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.signing.verify_pool import VerifierPool
from asyncdex.types.hashing import keccak256

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
INTAKE = Intake(DOMAIN)
JSON = "application/json"
T = TypeVar("T")
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


def with_pool(use: Callable[[VerifierPool], Awaitable[T]]) -> T:
    """Run ``use`` with a pool of two real worker processes, on one event loop."""

    async def main() -> T:
        pool = VerifierPool(DOMAIN, workers=2)
        await pool.start()
        try:
            return await use(pool)
        finally:
            pool.close()

    return asyncio.run(main())


def test_concurrent_requests_get_the_in_loop_answers() -> None:
    requests = [request(SIGNERS[i % 4], NONCE + 100 * i, 1 + i % 5) for i in range(24)]

    async def use(pool: VerifierPool) -> tuple[list[object], int]:
        answers = await asyncio.gather(*(pool.process(body, JSON) for body in requests))
        return answers, pool.chunks

    answers, chunks = with_pool(use)
    assert answers == [INTAKE.process(body, JSON) for body in requests]
    # requests of one loop turn travel together: one chunk per worker
    assert chunks == 2


def test_a_killed_worker_fails_its_requests_and_is_replaced() -> None:
    body = request(SIGNERS[2], NONCE, 2)

    async def use(pool: VerifierPool) -> tuple[list[object], object]:
        for worker in pool._workers:
            worker.process.kill()
            await asyncio.to_thread(worker.process.join)
        failed = await asyncio.gather(pool.process(body, JSON), return_exceptions=True)
        for _ in range(200):  # the replacements spawn in the background
            if all(worker.writer is not None for worker in pool._workers):
                break
            await asyncio.sleep(0.05)
        return failed, await pool.process(body, JSON)

    failed, answer = with_pool(use)
    assert isinstance(failed[0], BrokenProcessPool)
    assert answer == INTAKE.process(body, JSON)


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
def test_a_bad_request_is_refused_alone_as_in_the_loop(bad: bytes) -> None:
    good = request(SIGNERS[0], NONCE, 3)

    async def use(pool: VerifierPool) -> list[object]:
        return await asyncio.gather(
            pool.process(good, JSON), pool.process(bad, JSON), return_exceptions=True
        )

    good_answer, bad_answer = with_pool(use)
    assert good_answer == INTAKE.process(good, JSON)
    with pytest.raises(IntakeError) as in_loop:
        INTAKE.process(bad, JSON)
    assert isinstance(bad_answer, IntakeError)
    assert type(bad_answer) is type(in_loop.value)
    assert bad_answer.code == in_loop.value.code
    if bad[:1] != b"[":
        # (how deep JSON may nest before it is refused follows each process's recursion
        # limit, which test tools raise: the deep body is refused either way, for a reason
        # worded differently)
        assert bad_answer.to_json() == in_loop.value.to_json()
