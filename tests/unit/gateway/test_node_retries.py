"""A client's retry (the same signed bytes again) is answered with the first receipts, in the
same process and after a restart, also for intents older than the newest ``index_capacity``
while the engine still holds their nonces as used; a request mixing acknowledged and new
intents gets the first receipts of the former and sequences the latter. Real nodes, in
process, on one temporary data directory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.signing.eip712 import LocalSigner
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
from asyncdex.types.config_file import parse_engine_config
from asyncdex.types.hashing import keccak256

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"retry publisher")[-20:]
OPERATOR_TOKEN = "retry operator"
QUIET, BUSY = (LocalSigner(keccak256(f"retry trader {i}".encode())) for i in range(2))
INDEX_CAPACITY = 4  # far fewer records than the test sequences


def settings(data_dir: Path) -> NodeSettings:
    config = parse_engine_config(
        {
            "oracle_publishers": ["0x" + PUBLISHER.hex()],
            "markets": [{"symbol": "BTC", "sz_decimals": 5, "tick": 10, "lot": 10}],
        }
    )
    return NodeSettings(
        data_dir, config, DOMAIN, operator_token=OPERATOR_TOKEN, index_capacity=INDEX_CAPACITY
    )


def order(trader: LocalSigner, nonce: int, price: int = 590_000) -> dict[str, Any]:
    intent = PlaceOrder(
        trader.address, nonce, 0, 0, True, price, 20, OrderType.LIMIT, TimeInForce.GTC,
        False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
    )  # fmt: skip
    return signed_intent_to_json(sign_intent(trader, DOMAIN, intent))


async def post(url: str, path: str, document: Any, **headers: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path, json=document, headers=headers) as response,
    ):
        return response.status, await response.json()


def test_retries_after_a_restart_get_the_first_receipts_beyond_the_index(tmp_path: Path) -> None:
    asyncio.run(retries_after_a_restart(tmp_path))


async def retries_after_a_restart(tmp_path: Path) -> None:
    nonce = time.time_ns() // 1_000_000
    quiet = [order(QUIET, nonce + i) for i in range(2)]
    busy = [order(BUSY, nonce + i) for i in range(3 * INDEX_CAPACITY)]
    first: dict[int, Any] = {}
    node = Node(settings(tmp_path / "data"))
    await node.start()
    try:
        commands = [
            {"type": "deposit", "account": "0x" + t.address.hex(), "amount": 10**12,
             "l1Index": i}
            for i, t in enumerate((QUIET, BUSY))
        ]  # fmt: skip
        status, _ = await post(
            node.url, "/v1/system", {"commands": commands}, Authorization=f"Bearer {OPERATOR_TOKEN}"
        )
        assert status == 200
        # The quiet trader's intents come first, then enough of the busy one's to push them
        # out of the newest INDEX_CAPACITY records.
        for index, document in enumerate(quiet + busy):
            status, answer = await post(node.url, "/v1/intents", document)
            assert status == 200, answer
            first[index] = answer["receipts"]
        # the same process: the quiet trader's nonces are still held, so their receipts are kept
        status, answer = await post(node.url, "/v1/intents", quiet[0])
        assert (status, answer.get("receipts")) == (200, first[0]), answer
    finally:
        await node.stop()

    restarted = Node(settings(tmp_path / "data"))
    await restarted.start()
    try:
        for index, document in enumerate(quiet + busy):
            status, answer = await post(restarted.url, "/v1/intents", document)
            assert status == 200, (index, answer)
            assert answer["receipts"] == first[index], index
        last_seq = restarted.last_seq
        # a new intent of the quiet trader is sequenced as usual
        status, answer = await post(restarted.url, "/v1/intents", order(QUIET, nonce + 2))
        assert status == 200 and answer["receipts"][0]["seq"] == last_seq + 1
        # acknowledged and new intents in one request: the first receipts for the former, the
        # latter sequenced; a refusal names the request's own index
        mixed = {"intents": [quiet[0], order(QUIET, nonce + 3), busy[-1]]}
        status, answer = await post(restarted.url, "/v1/intents", mixed)
        assert status == 200, answer
        assert answer["receipts"][0] == first[0][0]
        assert answer["receipts"][2] == first[len(first) - 1][0]
        assert answer["receipts"][1]["seq"] == last_seq + 2
        reused = order(BUSY, nonce, price=580_000)  # another intent with a spent nonce
        refused = {"intents": [quiet[1], reused]}
        status, answer = await post(restarted.url, "/v1/intents", refused)
        assert (status, answer["code"], answer["index"]) == (400, "nonce_already_used", 1)
        assert answer["error"].startswith("intent 1:")
        assert restarted.last_seq == last_seq + 2
    finally:
        await restarted.stop()
