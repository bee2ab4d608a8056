"""Integers beyond what the node keeps are refused with the field named, on every door.

``candleSnapshot`` with ``startTime`` 10^30 used to answer ``[]`` and ``orderStatus`` with
``oid`` 2^70 ``unknownOid``, as if the requests were valid; ``GET /v1/seq/²`` answered 500
(``"²".isdigit()`` is true, ``int("²")`` raises). Times are int64 milliseconds and order ids
uint64: the shared field parsers (``info.parse_uint`` for the Hyperliquid doors, the native
API's one digit parser for queries and paths) refuse anything else like any malformed field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websocket

from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"range publisher")[-20:]
USER = "0x" + "a1" * 20
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


@pytest.fixture
def node(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> RunningNode:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, [("BTC", 5, 10, 10)], [PUBLISHER])
    return node_launcher(tmp_path / "data", config).start()


def candles(start: Any, end: Any = None) -> dict[str, Any]:
    req = {"coin": "BTC", "interval": "1m", "startTime": start}
    if end is not None:
        req["endTime"] = end
    return {"type": "candleSnapshot", "req": req}


OUT_OF_RANGE = [
    (candles(10**30), "startTime"),
    (candles(INT64_MAX + 1), "startTime"),
    (candles(0, 10**30), "endTime"),
    (candles(-1), "startTime"),
    ({"type": "fundingHistory", "coin": "BTC", "startTime": 2**64}, "startTime"),
    ({"type": "userFillsByTime", "user": USER, "startTime": 0, "endTime": 10**20}, "endTime"),
    ({"type": "userFunding", "user": USER, "startTime": -5}, "startTime"),
    ({"type": "orderStatus", "user": USER, "oid": 2**70}, "oid"),
    ({"type": "orderStatus", "user": USER, "oid": UINT64_MAX + 1}, "oid"),
    ({"type": "orderStatus", "user": USER, "oid": -1}, "oid"),
]


def test_info_refuses_integers_out_of_range_naming_the_field(node: RunningNode) -> None:
    for request_body, field in OUT_OF_RANGE:
        answer = node.post_json("/info", request_body)
        assert answer.status == 422, (request_body, answer.body)
        assert answer.body.startswith(b"Failed to deserialize the JSON body into the target")
        assert f"`{field}`".encode() in answer.body, (request_body, answer.body)
    # the bounds themselves are valid
    assert node.post_json("/info", candles(INT64_MAX)).json() == []
    status = node.post_json("/info", {"type": "orderStatus", "user": USER, "oid": UINT64_MAX})
    assert status.json() == {"status": "unknownOid"}


def ws_post(socket: websocket.WebSocket, post_id: Any, payload: dict[str, Any]) -> Any:
    socket.send(
        json.dumps(
            {"method": "post", "id": post_id, "request": {"type": "info", "payload": payload}}
        )
    )
    return json.loads(socket.recv())


def test_ws_posts_refuse_out_of_range_ids_and_fields(node: RunningNode) -> None:
    socket = websocket.create_connection(node.url.replace("http", "ws") + "/ws", timeout=30)
    try:
        assert socket.recv() == "Websocket connection established."
        refused = ws_post(socket, 2**70, {"type": "meta"})
        assert refused["channel"] == "error" and "`id`" in refused["data"], refused
        answer = ws_post(socket, 7, {"type": "orderStatus", "user": USER, "oid": 2**70})
        assert answer["channel"] == "post" and answer["data"]["id"] == 7, answer
        response = answer["data"]["response"]
        assert response["type"] == "error" and "`oid`" in response["payload"], response
        answer = ws_post(socket, UINT64_MAX, candles(10**30))
        assert answer["data"]["id"] == UINT64_MAX
        assert "`startTime`" in answer["data"]["response"]["payload"]
    finally:
        socket.close()


NATIVE_OUT_OF_RANGE = [
    ("/v1/seq/%C2%B2", "invalid_seq"),  # "²": a digit to str.isdigit, not to int()
    ("/v1/seq/%D9%A1%D9%A2", "invalid_seq"),  # Arabic-Indic "12": int() would take it
    (f"/v1/seq/{INT64_MAX + 1}", "invalid_seq"),
    ("/v1/seq/99999999999999999999", "invalid_seq"),
    ("/v1/withdrawals/%C2%B2/proof", "invalid_withdrawal"),
    (f"/v1/withdrawals/{INT64_MAX + 1}/proof", "invalid_withdrawal"),
    (f"/v1/markets/BTC/candles?start={INT64_MAX + 1}", "invalid_start"),
    ("/v1/markets/BTC/trades?limit=%C2%B2", "invalid_limit"),
]


def test_native_paths_and_queries_refuse_integers_out_of_range(node: RunningNode) -> None:
    for path, code in NATIVE_OUT_OF_RANGE:
        answer = node.get(path)
        assert answer.status == 400, (path, answer.body)
        assert answer.json()["code"] == code, (path, answer.body)
