"""A scripted stand-in for a node on loopback, for the client's transport tests.

``fake_node`` is a :class:`FakeNode`: an aiohttp server on ``127.0.0.1`` (any free port) in
its own thread. ``POST /v1/intents`` runs the real intake (so receipts carry the real intent
ids, and bad intents get the node's 4xx) unless ``post_script`` says otherwise for the next
request; ``GET /v1/intents/{id}`` answers from ``statuses[id]``, one entry per request (the
last repeats). Every request body and path is recorded. ``GET /v1/venue`` answers ``venue``
when one is set; ``POST /v1/sealed`` decodes each envelope strictly, records it in
``sealed`` and answers its sealed id, as a committee node does before the epoch key exists.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from asyncdex.fairness.sealing import (
    MalformedSealedIntent,
    SealedIntent,
    decode_sealed_intent,
    sealed_intent_id,
)
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intake import Intake, IntakeError
from asyncdex.signing.intents import asyncdex_domain

CHAIN_ID = 31337
CONTRACT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
DOMAIN = asyncdex_domain(CHAIN_ID, bytes.fromhex(CONTRACT[2:]))

DROP = "drop"  # close the connection without answering (after reading the request)
NO_ROUTE = "no-route"  # aiohttp's plain-text 404, as from a node without the endpoint
SLOW = "slow"  # answer only after SLOW_SECONDS: longer than the client's test timeout
SLOW_SECONDS = 2.0


@dataclass
class FakeNode:
    domain: Domain = DOMAIN
    post_script: list[Any] = field(default_factory=list)  # (status, json) | DROP | SLOW
    statuses: dict[str, list[Any]] = field(default_factory=dict)  # id -> [json | None | ...]
    posts: list[bytes] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    next_seq: int = 1
    url: str = ""
    venue: dict[str, Any] | None = None
    sealed: list[SealedIntent] = field(default_factory=list)

    async def handle_venue(self, request: web.Request) -> web.StreamResponse:
        if self.venue is None:
            return web.Response(status=404, text="404: Not Found")
        return web.json_response(self.venue)

    async def handle_sealed(self, request: web.Request) -> web.StreamResponse:
        document = await request.json()
        self.posts.append(await request.read())
        receipts = []
        for text in document["sealed"]:
            data = bytes.fromhex(text.removeprefix("0x"))
            try:
                self.sealed.append(decode_sealed_intent(data))
            except MalformedSealedIntent as exc:
                return web.json_response({"error": str(exc), "code": "malformed"}, status=400)
            receipts.append(
                {
                    "sealedId": "0x" + sealed_intent_id(data).hex(),
                    "seq": self.next_seq,
                    "timestamp": 1_767_225_600_000 + self.next_seq,
                }
            )
            self.next_seq += 1
        return web.json_response({"receipts": receipts})

    async def handle_post(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.posts.append(body)
        if self.post_script:
            step = self.post_script.pop(0)
            if step == DROP:
                assert request.transport is not None
                request.transport.abort()
                return web.Response()
            if step == SLOW:
                await asyncio.sleep(SLOW_SECONDS)
                return web.json_response({"receipts": []})
            status, document = step
            return web.json_response(document, status=status)
        try:
            submissions = Intake(self.domain).process(body, request.content_type)
        except IntakeError as error:
            return web.json_response(error.to_json(), status=error.status)
        receipts = []
        for submission in submissions:
            receipts.append(
                {
                    "intentId": "0x" + submission.intent_id.hex(),
                    "seq": self.next_seq,
                    "timestamp": 1_767_225_600_000 + self.next_seq,
                }
            )
            self.next_seq += 1
        return web.json_response({"receipts": receipts})

    async def handle_status(self, request: web.Request) -> web.StreamResponse:
        intent_id = request.match_info["intent_id"]
        self.gets.append(intent_id)
        script = self.statuses.get(intent_id, [None])
        step = script.pop(0) if len(script) > 1 else script[0]
        if step == NO_ROUTE:
            return web.Response(status=404, text="404: Not Found")
        if step is None:
            return web.json_response(
                {"error": "unknown intent", "code": "unknown_intent"}, status=404
            )
        if isinstance(step, tuple):
            status, document = step
            return web.json_response(document, status=status)
        return web.json_response(step)


@pytest.fixture
def fake_node() -> Iterator[FakeNode]:
    node = FakeNode()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_post("/v1/intents", node.handle_post)
    app.router.add_get("/v1/intents/{intent_id}", node.handle_status)
    app.router.add_get("/v1/venue", node.handle_venue)
    app.router.add_post("/v1/sealed", node.handle_sealed)
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        node.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    asyncio.run_coroutine_threadsafe(start(), loop).result()
    try:
        yield node
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
