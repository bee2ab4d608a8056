"""One scripted session against a node on each engine: every read API answers byte for byte
the same.

Two real nodes run in this process, one on the reference engine and one on the native core,
on one fixed clock (so times agree), with every extension a venue serves (native streams,
the Hyperliquid-compatible API, the oracle door, metrics). The same intents and operator
commands go to both: deposits, prices, resting and crossing orders, a modify, a trigger, a
cancel by client id, leverage, a funding hour, a withdrawal, an agent. After the session
(and once in its middle) every read endpoint of the native API and every ``/info`` request
type, for every trader and a stranger, is fetched from both and the bodies are compared as
bytes; ``/v1/status`` differs only in its ``engine`` field, and the two state roots agree.
Both nodes' WebSocket streams (``/v1/ws``: books, trades, accounts; ``/ws``: Hyperliquid's
books, trades, mids, fills, order updates, fundings and user events), subscribed before the
session, carry the same messages in the same order. A restart of each node from its own
snapshot and journal answers the same again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asyncdex.cli.node_cmd import default_extensions
from asyncdex.engine.native import native_available
from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    ApproveAgent,
    CancelByClientId,
    Intent,
    Modify,
    OrderType,
    PlaceOrder,
    SetLeverage,
    TimeInForce,
    TriggerKind,
    Withdraw,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.types.config_file import parse_engine_config
from asyncdex.types.hashing import keccak256

pytestmark = pytest.mark.skipif(
    not native_available(), reason="the native engine core is not built (no C++ compiler)"
)

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"parity publisher")[-20:]
TOKEN = "parity operator"
MAKER, TAKER, HEDGER = (LocalSigner(keccak256(f"parity trader {i}".encode())) for i in range(3))
AGENT = keccak256(b"parity agent")[-20:]
STRANGER = keccak256(b"parity stranger")[-20:]
START_MS = 1_750_000_000_000
HOUR_MS = 3_600_000
CLIENT_ID = bytes(range(1, 17))


class Clock:
    """The nodes' shared clock: moves only when the session moves it."""

    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


def settings(data_dir: Path, clock: Clock, engine: str) -> NodeSettings:
    config = parse_engine_config(
        {
            "oracle_publishers": ["0x" + PUBLISHER.hex()],
            "markets": [
                {"symbol": "BTC", "sz_decimals": 5, "tick": 10, "lot": 10},
                {"symbol": "ETH", "sz_decimals": 4, "tick": 1, "lot": 10},
            ],
        }
    )
    return NodeSettings(
        data_dir,
        config,
        DOMAIN,
        operator_token=TOKEN,
        clock=clock,
        extensions=default_extensions(),
        engine=engine,
    )


def order(
    trader: LocalSigner, nonce: int, market: int, is_buy: bool, price: int, size: int,
    tif: TimeInForce = TimeInForce.GTC, client_id: bytes = NO_CLIENT_ID,
    trigger: tuple[int, TriggerKind] = (0, TriggerKind.NONE),
    order_type: OrderType = OrderType.LIMIT,
) -> Intent:  # fmt: skip
    return PlaceOrder(
        trader.address, nonce, 0, market, is_buy, price, size, order_type, tif, False,
        client_id, 0, trigger[0], trigger[1],
    )  # fmt: skip


class Pair:
    """The two nodes, driven together."""

    def __init__(self, session: aiohttp.ClientSession, nodes: dict[str, Node]) -> None:
        self.session = session
        self.nodes = nodes
        self.nonce = START_MS

    async def raw(self, node: Node, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {TOKEN}"} if path == "/v1/system" else {}
        async with self.session.request(
            method, node.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.read()

    async def both(self, method: str, path: str, body: Any = None) -> dict[str, tuple[int, bytes]]:
        return {name: await self.raw(node, method, path, body) for name, node in self.nodes.items()}

    async def send(self, path: str, body: Any) -> None:
        answers = await self.both("POST", path, body)
        for status, text in answers.values():
            assert status == 200, (path, text)
        await self.settle()

    async def intent(self, signer: LocalSigner, build: Any) -> None:
        self.nonce += 1
        intent = build(self.nonce)
        await self.send("/v1/intents", signed_intent_to_json(sign_intent(signer, DOMAIN, intent)))

    async def settle(self) -> None:
        for node in self.nodes.values():
            for _ in range(400):
                if node.applied_seq == node.last_seq:
                    break
                await asyncio.sleep(0.01)
            assert node.applied_seq == node.last_seq

    def reads(self) -> list[tuple[str, str, Any]]:
        """Every read request: the native API's GETs and each /info type."""
        users = [MAKER.address, TAKER.address, HEDGER.address, STRANGER]
        gets = ["/v1/venue", "/v1/markets", "/v1/oracle"]
        for symbol in ("BTC", "ETH", "DOGE"):
            gets += [
                f"/v1/markets/{symbol}/book",
                f"/v1/markets/{symbol}/book?depth=1",
                f"/v1/markets/{symbol}/trades",
                f"/v1/markets/{symbol}/candles?interval=1m",
                f"/v1/markets/{symbol}/candles?interval=1h",
                f"/v1/markets/{symbol}/funding",
            ]
        for user in users:
            address = "0x" + user.hex()
            gets += [
                f"/v1/accounts/{address}",
                f"/v1/accounts/{address}/orders",
                f"/v1/accounts/{address}/fills",
            ]
        last = next(iter(self.nodes.values())).applied_seq
        gets += [f"/v1/seq/{seq}" for seq in range(1, last + 2)]
        reads: list[tuple[str, str, Any]] = [("GET", path, None) for path in gets]
        infos: list[dict[str, Any]] = [
            {"type": kind}
            for kind in ("meta", "metaAndAssetCtxs", "spotMeta", "spotMetaAndAssetCtxs",
                         "perpDexs", "allMids", "exchangeStatus")
        ]  # fmt: skip
        for coin in ("BTC", "ETH"):
            infos += [
                {"type": "l2Book", "coin": coin},
                {"type": "fundingHistory", "coin": coin, "startTime": 0},
                {
                    "type": "candleSnapshot",
                    "req": {
                        "coin": coin,
                        "interval": "1m",
                        "startTime": 0,
                        "endTime": START_MS + 3 * HOUR_MS,
                    },
                },
            ]
        for user in users:
            address = "0x" + user.hex()
            for kind in ("clearinghouseState", "spotClearinghouseState", "openOrders",
                         "frontendOpenOrders", "userFills", "historicalOrders",
                         "userRateLimit", "userRole", "userAbstraction", "referral",
                         "userFees"):  # fmt: skip
                infos.append({"type": kind, "user": address})
            infos += [
                {"type": "userFillsByTime", "user": address, "startTime": 0},
                {"type": "userFunding", "user": address, "startTime": 0},
                {"type": "maxBuilderFee", "user": address, "builder": "0x" + AGENT.hex()},
                {"type": "orderStatus", "user": address, "oid": "0x" + CLIENT_ID.hex()},
            ]
            infos += [{"type": "orderStatus", "user": address, "oid": oid} for oid in range(1, 9)]
        reads += [("POST", "/info", body) for body in infos]
        return reads

    async def open_streams(self) -> dict[str, list[aiohttp.ClientWebSocketResponse]]:
        """On each node: one /v1/ws socket and one /ws socket with every subscription."""
        native_ops: list[dict[str, Any]] = [
            {"op": "subscribe", "channel": channel, "market": symbol}
            for channel in ("book", "trades")
            for symbol in ("BTC", "ETH")
        ]
        hl_subscriptions: list[dict[str, Any]] = [{"type": "allMids"}]
        hl_subscriptions += [{"type": kind, "coin": "BTC"} for kind in ("l2Book", "trades", "bbo")]
        for trader in (MAKER, TAKER, HEDGER):
            address = "0x" + trader.address.hex()
            native_ops.append({"op": "subscribe", "channel": "account", "address": address})
            hl_subscriptions += [
                {"type": kind, "user": address}
                for kind in ("userFills", "orderUpdates", "userFundings", "userEvents")
            ]
        sockets: dict[str, list[aiohttp.ClientWebSocketResponse]] = {}
        for name, node in self.nodes.items():
            native = await self.session.ws_connect(node.url + "/v1/ws")
            for op in native_ops:
                await native.send_str(json.dumps(op))
            hyperliquid = await self.session.ws_connect(node.url + "/ws")
            for subscription in hl_subscriptions:
                request = {"method": "subscribe", "subscription": subscription}
                await hyperliquid.send_str(json.dumps(request))
            sockets[name] = [native, hyperliquid]
        return sockets

    @staticmethod
    async def drain(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
        """Every message until the socket stays quiet for a while."""
        messages: list[str] = []
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), 1.0)
            except TimeoutError:
                return messages
            assert message.type == aiohttp.WSMsgType.TEXT, message
            messages.append(message.data)

    async def compare_reads(self) -> int:
        """Fetch every read from both nodes; the bodies must be equal bytes. Returns how many
        answered 200 (most must: a read of nothing proves little)."""
        ok = 0
        for method, path, body in self.reads():
            answers = await self.both(method, path, body)
            reference, native = answers["reference"], answers["native"]
            assert native == reference, (method, path, body)
            ok += reference[0] == 200
        status = {}
        for name, (code, text) in (await self.both("GET", "/v1/status")).items():
            assert code == 200
            status[name] = json.loads(text)
        assert status["reference"].pop("engine") == "reference"
        assert status["native"].pop("engine") == "native"
        assert status["native"] == status["reference"]
        metrics = {}
        for name, (code, text) in (await self.both("GET", "/metrics")).items():
            assert code == 200
            metrics[name] = [
                line
                for line in text.decode().splitlines()
                if line.startswith(("asyncdex_open_orders", "asyncdex_accounts",
                                    "asyncdex_applied_seq", "asyncdex_protective_mode"))
            ]  # fmt: skip
        assert len(metrics["native"]) == 4 and metrics["native"] == metrics["reference"]
        return ok


async def session(tmp_path: Path) -> None:
    clock = Clock()
    nodes = {kind: Node(settings(tmp_path / kind, clock, kind)) for kind in ("reference", "native")}
    for node in nodes.values():
        await node.start()
    async with aiohttp.ClientSession() as http:
        pair = Pair(http, nodes)
        try:
            sockets = await pair.open_streams()
            await run_session(pair, clock)
            streamed = {
                name: [await pair.drain(ws) for ws in pair_sockets]
                for name, pair_sockets in sockets.items()
            }
            for ws in [ws for pair_sockets in sockets.values() for ws in pair_sockets]:
                await ws.close()
            native_ws, hyperliquid_ws = streamed["native"]
            assert len(native_ws) > 20 and len(hyperliquid_ws) > 20
            assert any('"delta"' in message for message in native_ws)
            assert any('"userFundings"' in message for message in hyperliquid_ws)
            assert streamed["native"] == streamed["reference"]
        finally:
            for node in nodes.values():
                await node.stop()
        # each restarts from its own snapshot and journal and answers the same
        nodes = {kind: Node(settings(tmp_path / kind, clock, kind)) for kind in nodes}
        for node in nodes.values():
            await node.start()
        pair.nodes = nodes
        try:
            assert await pair.compare_reads() > 40
        finally:
            for node in nodes.values():
                await node.stop()


async def run_session(pair: Pair, clock: Clock) -> None:
    deposits = [
        {"type": "deposit", "account": "0x" + t.address.hex(), "amount": 10**11, "l1Index": i}
        for i, t in enumerate((MAKER, TAKER, HEDGER))
    ]
    prices = [
        {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": market,
         "price": price}
        for market, price in ((0, 600_000), (1, 30_000))
    ]  # fmt: skip
    await pair.send("/v1/system", {"commands": deposits + prices})
    await pair.intent(MAKER, lambda n: order(MAKER, n, 0, True, 599_990, 20, client_id=CLIENT_ID))
    await pair.intent(MAKER, lambda n: order(MAKER, n, 0, True, 599_900, 30))
    await pair.intent(MAKER, lambda n: order(MAKER, n, 0, False, 600_100, 40))
    await pair.intent(MAKER, lambda n: order(MAKER, n, 1, True, 29_990, 500))
    await pair.intent(MAKER, lambda n: order(MAKER, n, 1, False, 30_010, 500))
    await pair.intent(TAKER, lambda n: SetLeverage(TAKER.address, n, 0, 0, 10, False))
    await pair.intent(TAKER, lambda n: order(TAKER, n, 0, False, 599_900, 30, tif=TimeInForce.IOC))
    await pair.intent(MAKER, lambda n: Modify(MAKER.address, n, 0, 0, 2, 599_950, 40))
    await pair.intent(
        HEDGER,
        lambda n: order(
            HEDGER, n, 0, False, 590_000, 10, trigger=(595_000, TriggerKind.STOP),
            order_type=OrderType.MARKET, tif=TimeInForce.IOC,
        ),
    )  # fmt: skip
    await pair.intent(HEDGER, lambda n: order(HEDGER, n, 1, True, 30_010, 200))
    await pair.intent(HEDGER, lambda n: ApproveAgent(HEDGER.address, n, 0, AGENT, "desk", 0))
    assert await pair.compare_reads() > 40
    # an hour on: funding is paid, then more trading and a withdrawal
    clock.now += HOUR_MS + 1_000
    await pair.send("/v1/system", {"commands": [{"type": "advanceTime"}]})
    pair.nonce = clock.now
    await pair.intent(TAKER, lambda n: order(TAKER, n, 0, True, 600_100, 30, tif=TimeInForce.IOC))
    await pair.intent(MAKER, lambda n: CancelByClientId(MAKER.address, n, 0, 0, CLIENT_ID))
    await pair.intent(HEDGER, lambda n: Withdraw(HEDGER.address, n, 0, 10**6, HEDGER.address))
    clock.now += 61_000
    await pair.send("/v1/system", {"commands": [{"type": "advanceTime"}]})
    assert await pair.compare_reads() > 40


def test_every_read_api_answers_the_same_on_both_engines(tmp_path: Path) -> None:
    asyncio.run(session(tmp_path))
