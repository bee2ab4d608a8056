"""The oracle door against an in-process node on a free loopback port: signed prices from
configured publishers reach the engine (the index is their median); every refusal is
specific and sequences nothing.

The node's clock is a value the test sets, so staleness and future bounds are checked
exactly at their edges.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.gateway.oracle_feed import MAX_BODY_BYTES, MAX_UPDATES, OracleFeed
from asyncdex.oracle import OraclePrice, sign_price, signed_price_to_json
from asyncdex.signing.eip712 import SECP256K1_N, LocalSigner
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig, MarketSpec

DOMAIN = asyncdex_domain(31337, keccak256(b"oracle feed contract")[-20:])
OTHER_DOMAIN = asyncdex_domain(31337, keccak256(b"another venue")[-20:])
PUBLISHERS = tuple(LocalSigner(keccak256(f"oracle feed publisher {i}".encode())) for i in range(3))
STRANGER = LocalSigner(keccak256(b"oracle feed stranger"))
CONFIG = EngineConfig(
    markets=(
        MarketSpec(0, "BTC", sz_decimals=5, tick=10, lot=10),
        MarketSpec(1, "ETH", sz_decimals=4, tick=1, lot=10, oracle_staleness_ms=5_000),
    ),
    oracle_publishers=tuple(p.address for p in PUBLISHERS),
)
START_MS = 1_767_225_600_000
BTC, ETH = 0, 1


@dataclass
class Venue:
    node: Node
    http: aiohttp.ClientSession
    now: list[int]  # the node's clock, in ms

    async def post(self, document: Any) -> tuple[int, dict[str, Any]]:
        return await self.post_raw(json.dumps(document).encode())

    async def post_raw(self, body: bytes, chunked: bool = False) -> tuple[int, dict[str, Any]]:
        data: Any = body
        if chunked:  # no Content-Length: the body arrives in pieces

            async def pieces() -> AsyncIterator[bytes]:
                for start in range(0, len(body), 1000):
                    yield body[start : start + 1000]
                    await asyncio.sleep(0)

            data = pieces()
        async with self.http.post(self.node.url + "/v1/oracle", data=data) as response:
            return response.status, await response.json()

    async def publish(self, *updates: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return await self.post({"updates": list(updates)})

    async def refused(self, document: Any, status: int, code: str) -> dict[str, Any]:
        """Post ``document``; it must be refused so, and nothing sequenced."""
        before = self.node.last_seq
        got, body = await self.post(document)
        assert (got, body["code"]) == (status, code), body
        assert self.node.last_seq == before
        return body


def update(
    signer: LocalSigner, market: int, price: int, timestamp: int, domain: Any = DOMAIN
) -> dict[str, Any]:
    return signed_price_to_json(sign_price(signer, domain, OraclePrice(market, price, timestamp)))


def run(tmp_path: Path, scenario: Callable[[Venue], Awaitable[None]]) -> None:
    async def main() -> None:
        now = [START_MS]
        settings = NodeSettings(
            tmp_path / "data", CONFIG, DOMAIN, clock=lambda: now[0], extensions=(OracleFeed,)
        )
        node = Node(settings)
        await node.start()
        try:
            async with aiohttp.ClientSession() as http:
                await scenario(Venue(node, http, now))
        finally:
            await node.stop()

    asyncio.run(main())


def test_configured_publishers_set_the_index_to_their_median(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        prices = (600_010, 600_500, 599_000)
        pairs = zip(PUBLISHERS, prices, strict=True)
        updates = [update(publisher, BTC, price, START_MS) for publisher, price in pairs]
        status, body = await venue.publish(*updates, update(PUBLISHERS[0], ETH, 300_000, START_MS))
        assert status == 200, body
        seqs = [receipt["seq"] for receipt in body["receipts"]]
        assert seqs == list(range(seqs[0], seqs[0] + 4))
        events = await venue.node.wait_applied(seqs[-1])
        assert events is not None and events[0].__class__.__name__ == "OraclePriceAccepted"
        markets = venue.node.state.markets
        assert (markets[BTC].index_price, markets[ETH].index_price) == (600_010, 300_000)
        assert markets[BTC].oracle[PUBLISHERS[1].address][0] == 600_500

        async with venue.http.get(venue.node.url + "/v1/oracle") as response:
            view = await response.json()
        assert view["domain"]["verifyingContract"] == "0x" + DOMAIN.verifying_contract.hex()
        assert view["type"] == "OraclePrice(uint32 market,uint64 price,uint64 timestamp)"
        assert sorted(view["publishers"]) == sorted("0x" + p.address.hex() for p in PUBLISHERS)
        btc = view["markets"][BTC]
        assert btc["indexPrice"] == 600_010
        assert set(btc["lastTimestamps"].values()) == {START_MS}

    run(tmp_path, scenario)


def test_unknown_publisher_and_foreign_domain_are_forbidden(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        body = await venue.refused(
            {"updates": [update(STRANGER, BTC, 600_000, START_MS)]}, 403, "unknown_publisher"
        )
        assert STRANGER.address.hex() in body["error"] and body["index"] == 0
        # a configured publisher's signature for another venue recovers to a stranger
        foreign = update(PUBLISHERS[0], BTC, 600_000, START_MS, OTHER_DOMAIN)
        await venue.refused({"updates": [foreign]}, 403, "unknown_publisher")
        # a signed update whose price was changed afterwards: another signer, refused
        tampered = update(PUBLISHERS[0], BTC, 600_000, START_MS) | {"price": 700_000}
        await venue.refused({"updates": [tampered]}, 403, "unknown_publisher")
        assert venue.node.state.markets[BTC].index_price == 0

    run(tmp_path, scenario)


def test_bad_signatures_are_refused(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        good = update(PUBLISHERS[0], BTC, 600_000, START_MS)
        signature = bytes.fromhex(good["signature"][2:])
        r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
        high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((v ^ 1,))
        for bad in (
            high_s,  # the malleable twin of a valid signature
            signature[:64] + b"\x1d",  # v = 29
            bytes(32) + signature[32:],  # r = 0
        ):
            body = await venue.refused(
                {"updates": [good | {"signature": "0x" + bad.hex()}]}, 400, "invalid_signature"
            )
            assert body["field"] == "signature"
        for text in ("0x" + signature.hex()[:-2], "0x" + "zz" * 65, signature.hex() + "00"):
            await venue.refused({"updates": [good | {"signature": text}]}, 400, "invalid_update")
        status, _ = await venue.publish(good)  # the genuine one still passes
        assert status == 200

    run(tmp_path, scenario)


def test_replays_and_older_updates_are_refused(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        first = update(PUBLISHERS[0], BTC, 600_000, START_MS)
        assert (await venue.publish(first))[0] == 200
        body = await venue.refused({"updates": [first]}, 409, "replayed_update")
        assert body["field"] == "timestamp"
        older = update(PUBLISHERS[0], BTC, 600_100, START_MS - 1)
        await venue.refused({"updates": [older]}, 409, "replayed_update")
        # the same timestamp twice in one request: refused as a whole
        venue.now[0] += 10
        twice = [
            update(PUBLISHERS[0], BTC, 600_200, START_MS + 5),
            update(PUBLISHERS[0], BTC, 600_300, START_MS + 5),
        ]
        body = await venue.refused({"updates": twice}, 409, "replayed_update")
        assert body["index"] == 1
        # timestamps are per publisher and market: these are all new
        status, _ = await venue.publish(
            twice[0],
            update(PUBLISHERS[0], ETH, 300_000, START_MS),
            update(PUBLISHERS[1], BTC, 600_000, START_MS),
        )
        assert status == 200

    run(tmp_path, scenario)


def test_a_refused_request_spends_no_timestamp(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        good = update(PUBLISHERS[0], BTC, 600_000, START_MS)
        body = await venue.refused(
            {"updates": [good, update(STRANGER, BTC, 600_000, START_MS)]}, 403, "unknown_publisher"
        )
        assert body["index"] == 1
        status, _ = await venue.publish(good)
        assert status == 200

    run(tmp_path, scenario)


def test_stale_and_future_timestamps_are_refused_at_their_edges(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        now = START_MS + 60_000
        venue.now[0] = now
        staleness = CONFIG.markets[ETH].oracle_staleness_ms
        publisher = PUBLISHERS[0]
        body = await venue.refused(
            {"updates": [update(publisher, ETH, 300_000, now - staleness - 1)]}, 400, "stale_update"
        )
        assert body["field"] == "timestamp"
        assert (await venue.publish(update(publisher, ETH, 300_000, now - staleness)))[0] == 200
        future = now + OracleFeed.max_future_ms
        await venue.refused(
            {"updates": [update(publisher, ETH, 300_000, future + 1)]}, 400, "future_update"
        )
        assert (await venue.publish(update(publisher, ETH, 300_100, future)))[0] == 200
        # BTC keeps its own (default, longer) staleness bound
        btc_staleness = CONFIG.markets[BTC].oracle_staleness_ms
        assert btc_staleness > staleness
        old = now - btc_staleness
        assert (await venue.publish(update(publisher, BTC, 600_000, old)))[0] == 200

    run(tmp_path, scenario)


def test_unknown_markets_and_malformed_bodies_are_refused(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        publisher = PUBLISHERS[0]
        good = update(publisher, BTC, 600_000, START_MS)
        body = await venue.refused(
            {"updates": [update(publisher, 2, 600_000, START_MS)]}, 400, "unknown_market"
        )
        assert body["field"] == "market"
        shapes: list[Any] = [[good], {"updates": []}, {"updates": good}]
        shapes.append({"updates": [good], "extra": 0})
        for document in shapes:
            await venue.refused(document, 400, "malformed_body")
        await venue.refused({"updates": [good] * (MAX_UPDATES + 1)}, 400, "malformed_body")
        invalid: list[tuple[dict[str, Any], str | None]] = [
            ({k: v for k, v in good.items() if k != "price"}, None),
            (good | {"publisher": "0x" + publisher.address.hex()}, None),
            (good | {"price": "600000"}, "price"),
            (good | {"price": 600_000.0}, "price"),
            (good | {"market": True}, "market"),
            (good | {"timestamp": -1}, "timestamp"),
            (good | {"timestamp": 2**64}, "timestamp"),
            (good | {"price": 0}, "price"),
            (good | {"price": CONFIG.markets[BTC].max_price + 1}, "price"),
        ]
        for item, field in invalid:
            body = await venue.refused({"updates": [item]}, 400, "invalid_update")
            assert body.get("field") == field, body
        before = venue.node.last_seq
        for raw, status, code in (
            (b"{not json", 400, "malformed_body"),
            (b" " * (MAX_BODY_BYTES + 1), 413, "body_too_large"),
        ):
            got, body = await venue.post_raw(raw)
            assert (got, body["code"]) == (status, code)
        assert venue.node.last_seq == before
        assert (await venue.publish(good))[0] == 200

    run(tmp_path, scenario)


def test_bodies_arriving_in_pieces_are_read_whole_and_bounded(tmp_path: Path) -> None:
    async def scenario(venue: Venue) -> None:
        updates = [
            update(PUBLISHERS[i % 3], i // 3 % 2, 600_000, START_MS - 6 * 100 + i)
            for i in range(6 * 20)
        ]
        body = json.dumps({"updates": updates}).encode()
        assert len(body) > 10_000  # many pieces
        status, answer = await venue.post_raw(body, chunked=True)
        assert status == 200, answer
        assert len(answer["receipts"]) == len(updates)
        before = venue.node.last_seq
        status, answer = await venue.post_raw(b" " * (MAX_BODY_BYTES + 1), chunked=True)
        assert (status, answer["code"]) == (413, "body_too_large")
        assert venue.node.last_seq == before

    run(tmp_path, scenario)


def test_timestamps_stay_spent_across_a_restart(tmp_path: Path) -> None:
    first = update(PUBLISHERS[0], BTC, 600_000, START_MS)

    async def before(venue: Venue) -> None:
        assert (await venue.publish(first))[0] == 200

    async def after(venue: Venue) -> None:
        await venue.refused({"updates": [first]}, 409, "replayed_update")
        venue.now[0] += 1
        assert (await venue.publish(update(PUBLISHERS[0], BTC, 600_000, START_MS + 1)))[0] == 200

    run(tmp_path, before)
    run(tmp_path, after)
