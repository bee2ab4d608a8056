"""Deeply nested JSON gets each door's usual refusal, naming the nesting bound: never a 500,
never a dropped socket.

100,000 nested ``[`` once gave 500 on ``/info`` (a ``RecursionError``) and dropped the ``/ws``
socket with 1006; the other doors refused it only because the parser ran out of stack.
Every door now parses through one depth-bounded loader (``asyncdex.signing.jsonbody``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websocket

from asyncdex.signing.intents import asyncdex_domain
from asyncdex.signing.jsonbody import MAX_JSON_DEPTH
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"deep json publisher")[-20:]
TOKEN = "deep json operator"
DEEP = "[" * 100_000
DEEP_SMALL = "[" * 60_000  # for the doors that take at most 64 KiB (oracle, Hyperliquid /ws)
TOO_DEEP = f"deeper than {MAX_JSON_DEPTH}"


@pytest.fixture
def node(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> RunningNode:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, [("BTC", 5, 10, 10)], [PUBLISHER])
    return node_launcher(tmp_path / "data", config, operator_token=TOKEN).start()


def post(node: RunningNode, path: str, body: bytes, **headers: str) -> tuple[int, bytes]:
    result = node.request("POST", path, body, {"Content-Type": "application/json", **headers})
    return result.status, result.body


@pytest.mark.parametrize("path", ["/v1/intents", "/v1/system", "/v1/oracle"])
def test_native_doors_answer_400_with_their_json_error(node: RunningNode, path: str) -> None:
    deep = DEEP_SMALL if path == "/v1/oracle" else DEEP
    status, body = post(node, path, deep.encode(), Authorization=f"Bearer {TOKEN}")
    assert status == 400, body[:300]
    error = json.loads(body)
    assert error["code"] in ("malformed_body", "invalid_body"), error
    assert TOO_DEEP in error["error"], error


def test_native_msgpack_nesting_is_refused(node: RunningNode) -> None:
    nested = b"\x91" * 100_000 + b"\x01"  # a one-item array in a one-item array ...
    status, body = post(node, "/v1/intents", nested, **{"Content-Type": "application/msgpack"})
    assert status == 400, body[:300]


@pytest.mark.parametrize("path", ["/info", "/exchange"])
def test_hyperliquid_doors_answer_422_as_for_any_body_they_cannot_read(
    node: RunningNode, path: str
) -> None:
    status, body = post(node, path, DEEP.encode())
    assert status == 422, body[:300]
    assert body.startswith(b"Failed to deserialize the JSON body into the target type")
    assert TOO_DEEP.encode() in body
    assert node.get("/v1/health").status == 200


def receive_json(socket: websocket.WebSocket) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(socket.recv())
    return message


def test_hyperliquid_ws_answers_an_error_and_keeps_the_socket(node: RunningNode) -> None:
    socket = websocket.create_connection(node.url.replace("http", "ws") + "/ws", timeout=30)
    try:
        assert socket.recv() == "Websocket connection established."
        socket.send(DEEP_SMALL)
        error = receive_json(socket)
        assert error["channel"] == "error", error
        assert error["data"].startswith("Error parsing JSON into valid websocket request")
        socket.send(json.dumps({"method": "ping"}))
        assert receive_json(socket)["channel"] == "pong"
    finally:
        socket.close()


def test_native_ws_answers_invalid_json_and_keeps_the_socket(node: RunningNode) -> None:
    socket = websocket.create_connection(node.url.replace("http", "ws") + "/v1/ws", timeout=30)
    try:
        socket.send(DEEP)
        error = receive_json(socket)
        assert (error["op"], error["code"]) == ("error", "invalid_json"), error
        assert TOO_DEEP in error["error"]
        socket.send(json.dumps({"op": "ping", "id": 7}))
        assert receive_json(socket)["op"] == "pong"
    finally:
        socket.close()
