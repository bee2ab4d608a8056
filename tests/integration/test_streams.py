"""The native WebSocket API (``/v1/ws``) and the SDK's streams against a real node process.

Collateral and oracle prices enter through the operator endpoint (``/v1/system``); orders go
through the SDK, over HTTP and over the socket. Checked here:

- a :class:`~asyncdex.client.BookMirror` fed over the socket equals the REST book after a
  burst of random places, cancels and fills from two accounts, and a mirror fed every book
  message in turn is never crossed at any step;
- a message dropped on the client side is detected (``prevSeq``) and the mirror resyncs from
  a fresh snapshot to the REST book again;
- a fill reaches the trades channel (as REST lists it) and both accounts' event streams,
  with the orders' other events and deposits;
- intent status streams ``sequenced`` then ``executed`` (with events), followed by id before
  it is submitted, by account, and for intents submitted over the socket;
- submit over the socket returns receipts for durable records (they survive a SIGKILL) and
  refuses bad intents with the HTTP API's codes, sequencing nothing;
- bad ops, unknown markets and oversize frames get specific errors and change nothing;
- a node shutting down closes its sockets with 1001.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
import pytest

from asyncdex.cli.node_cmd import load_config
from asyncdex.client import (
    AsyncClient,
    BookMirror,
    IntakeRefused,
    Stream,
    StreamClosed,
    StreamError,
    Wallet,
)
from asyncdex.client.markets import Markets
from asyncdex.signing.eip712 import SECP256K1_N, LocalSigner
from asyncdex.signing.intents import asyncdex_domain, signed_intent_to_json
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(CHAIN_ID, CONTRACT)
MARKETS = (("BTC", 5, 10, 10), ("ETH", 4, 1, 10))  # symbol, sz_decimals, tick, lot
OPERATOR_TOKEN = "streams-test operator"
PUBLISHER = LocalSigner(keccak256(b"streams-test publisher")).address
BTC_PRICE = 600_000  # $60,000.0 in $0.1
ETH_PRICE = 300_000
DEPOSIT = 1_000_000 * 10**6  # micro-USDC
HIGH_S = (SECP256K1_N - 1).to_bytes(32, "big")
WAIT = 30.0  # seconds: a deadline for what must arrive, never an expected duration

ALICE = Wallet(keccak256(b"streams-test alice"))
BOB = Wallet(keccak256(b"streams-test bob"))


@dataclass
class Venue:
    node: RunningNode
    launcher: NodeLauncher
    config: Path
    l1_index: Iterator[int]

    def system(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        return self.node.system(OPERATOR_TOKEN, *commands)

    def deposit(self, account: bytes, amount: int = DEPOSIT) -> int:
        (receipt,) = self.system(
            {
                "type": "deposit",
                "account": "0x" + account.hex(),
                "amount": amount,
                "l1Index": next(self.l1_index),
            }
        )
        return int(receipt["seq"])

    @staticmethod
    def markets_of(config: Path) -> Markets:
        return Markets.from_config(load_config(config)[0])

    def client(self, who: Wallet) -> AsyncClient:
        return AsyncClient.from_venue_file(self.node.url, who, self.config)

    def rest_book(self, symbol: str) -> dict[str, Any]:
        result = self.node.get(f"/v1/markets/{symbol}/book?depth=100")
        assert result.status == 200, result.body
        book: dict[str, Any] = result.json()
        return book


@pytest.fixture
def venue(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> Venue:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    result = Venue(launcher.start(), launcher, config, itertools.count())
    publisher = "0x" + PUBLISHER.hex()
    result.system(
        {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": BTC_PRICE},
        {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": ETH_PRICE},
    )
    result.deposit(ALICE.account)
    result.deposit(BOB.account)
    return result


def levels_of(rest_side: list[dict[str, Any]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(level["price"]), Decimal(level["size"])) for level in rest_side]


def assert_mirror_equals_rest(mirror: BookMirror, rest: dict[str, Any]) -> None:
    assert mirror.bids() == levels_of(rest["bids"])
    assert mirror.asks() == levels_of(rest["asks"])


async def message_where(
    stream: Stream, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT
) -> dict[str, Any]:
    """The next message matching ``predicate`` (others are skipped), within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await stream.next_message(max(0.0, deadline - loop.time()))
        if predicate(message):
            return message


async def settle(venue: Venue, stream: Stream) -> int:
    """The node's applied seq once everything sequenced is applied and every message sent up
    to then has been read by ``stream``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        status = venue.node.status()
        if status["appliedSeq"] == status["lastSeq"]:
            seq = await stream.ping()
            if seq == status["lastSeq"]:
                return seq
        assert loop.time() < deadline, "the node did not apply what it sequenced"
        await asyncio.sleep(0.02)


def random_intents(
    rng: random.Random, client: AsyncClient, count: int, client_ids: Iterator[int]
) -> list[Any]:
    """Limit orders around the mark (crossing ones fill), IOC sweeps, cancels by client id
    of earlier orders and the occasional cancel-all."""
    build = client.build
    intents: list[Any] = []
    placed: list[int] = []
    for _ in range(count):
        roll = rng.random()
        side: Literal["buy", "sell"] = "buy" if rng.random() < 0.5 else "sell"
        if roll < 0.75:
            price = Decimal(BTC_PRICE + rng.randint(-15, 15) * 10) / 10
            size = Decimal(rng.randint(2, 6)) / 10_000  # whole lots of 0.0001
            client_id = next(client_ids)
            placed.append(client_id)
            intents.append(build.place_order("BTC", side, size, price, client_id=client_id))
        elif roll < 0.85:
            price = Decimal(BTC_PRICE + (40 if side == "buy" else -40) * 10) / 10
            size = Decimal(rng.randint(2, 12)) / 10_000
            intents.append(build.place_order("BTC", side, size, price, tif="IOC"))
        elif roll < 0.99 and placed:
            intents.append(build.cancel_by_client_id("BTC", rng.choice(placed)))
        else:
            intents.append(build.cancel_all("BTC"))
    return intents


def test_book_mirror_equals_rest_after_a_random_burst_and_is_never_crossed(venue: Venue) -> None:
    async def scenario() -> None:
        rng = random.Random(20261202)
        client_ids = itertools.count(1)
        async with (
            venue.client(ALICE) as alice,
            venue.client(BOB) as bob,
            alice.stream() as stream,
            bob.stream(keep_messages=False) as bob_stream,
        ):
            mirror = await stream.book("BTC")
            stepwise = BookMirror("BTC")  # fed each book message in turn, checked at each
            checked = 0

            def check_stepwise() -> None:
                nonlocal checked
                for message in stream.drain():
                    if message.get("channel") == "book":
                        assert not stepwise.apply(message), message
                        bid, ask = stepwise.best()
                        assert bid is None or ask is None or bid < ask
                        checked += 1

            for _ in range(12):
                # Alice over HTTP, Bob over his socket, interleaved
                alice_batch = random_intents(rng, alice, 6, client_ids)
                bob_batch = random_intents(rng, bob, 6, client_ids)
                await asyncio.gather(alice.submit(alice_batch), bob_stream.submit(bob_batch))
                check_stepwise()
            # and a level on each side away from the touch, whatever the burst left
            await alice.place_order("BTC", "buy", "0.0002", "59000")
            await bob_stream.submit([bob.build.place_order("BTC", "sell", "0.0003", "61000")])
            seq = await settle(venue, stream)
            check_stepwise()
            rest = venue.rest_book("BTC")
            assert rest["seq"] == seq
            assert mirror.synced and stepwise.synced and mirror.resyncs == 0
            assert_mirror_equals_rest(mirror, rest)
            assert_mirror_equals_rest(stepwise, rest)
            assert len(rest["bids"]) + len(rest["asks"]) > 2, rest
            assert checked > 20
            trades = venue.node.get("/v1/markets/BTC/trades?limit=1000").json()["trades"]
            assert len(trades) > 5

    asyncio.run(scenario())


def test_a_dropped_message_is_detected_and_the_mirror_resyncs(venue: Venue) -> None:
    async def scenario() -> None:
        rng = random.Random(7)
        client_ids = itertools.count(1)
        async with venue.client(ALICE) as alice, venue.client(BOB) as bob, alice.stream() as stream:
            mirror = BookMirror("BTC")
            await stream.subscribe("book", market="BTC")
            mirror.apply(await message_where(stream, lambda m: m.get("type") == "snapshot"))
            assert mirror.synced
            await bob.submit(random_intents(rng, bob, 8, client_ids))
            await alice.submit(random_intents(rng, alice, 8, client_ids))
            delta = await message_where(stream, lambda m: m.get("type") == "delta")
            assert delta["prevSeq"] == mirror.seq
            # this delta is "lost": the next one does not follow what the mirror has
            dropped_seq = delta["seq"]
            follow = await message_where(stream, lambda m: m.get("type") == "delta")
            assert follow["prevSeq"] == dropped_seq
            assert mirror.apply(follow), "the gap must be detected"
            assert not mirror.synced and mirror.resyncs == 1
            with pytest.raises(Exception, match="not in sync"):
                mirror.bids()
            await stream.resync("BTC")
            # deltas still queued before the fresh snapshot are ignored, then it is in sync
            while not mirror.synced:
                message = await message_where(stream, lambda m: m.get("channel") == "book")
                assert not mirror.apply(message)
            await alice.submit(random_intents(rng, alice, 8, client_ids))
            seq = await settle(venue, stream)
            for message in stream.drain():
                if message.get("channel") == "book":
                    assert not mirror.apply(message)
            rest = venue.rest_book("BTC")
            assert rest["seq"] == seq
            assert_mirror_equals_rest(mirror, rest)

    asyncio.run(scenario())


class LossyStream(Stream):
    """A stream that loses the first book delta it reads, as a buggy transport would."""

    lost: dict[str, Any] | None = None

    def _dispatch(self, message: dict[str, Any]) -> None:
        if self.lost is None and message.get("type") == "delta":
            self.lost = message
            return
        super()._dispatch(message)


def test_the_stream_resyncs_its_own_mirror_after_a_lost_message(venue: Venue) -> None:
    async def scenario() -> None:
        rng = random.Random(11)
        client_ids = itertools.count(1)
        async with (
            venue.client(ALICE) as alice,
            LossyStream(venue.node.url, keep_messages=False) as stream,
        ):
            mirror = await stream.book("BTC")
            assert mirror.synced
            for _ in range(4):
                await alice.submit(random_intents(rng, alice, 8, client_ids))
            await alice.place_order("BTC", "buy", "0.0002", "59000")
            seq = await settle(venue, stream)
            assert stream.lost is not None  # one delta never reached the mirror
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WAIT
            while not (mirror.synced and mirror.resyncs == 1):
                assert loop.time() < deadline, "the mirror never resynced"
                await stream.ping()
            assert await stream.ping() == seq
            assert_mirror_equals_rest(mirror, venue.rest_book("BTC"))

    asyncio.run(scenario())


def test_a_fill_reaches_the_trades_and_both_accounts_streams(venue: Venue) -> None:
    async def scenario() -> None:
        alice_hex, bob_hex = "0x" + ALICE.account.hex(), "0x" + BOB.account.hex()
        async with (
            venue.client(ALICE) as alice,
            venue.client(BOB) as bob,
            alice.stream() as stream,
        ):
            await stream.subscribe("trades", market="BTC")
            await stream.subscribe("account", address=alice_hex)
            await stream.subscribe("account", address=bob_hex)
            ask = await bob.place_order("BTC", "sell", "0.0005", "60010", tif="ALO")
            rested = await message_where(
                stream, lambda m: m.get("channel") == "account" and m["seq"] == ask.seq
            )
            assert rested["address"] == bob_hex
            kinds = [event["type"] for event in rested["events"]]
            assert kinds == ["OrderAccepted", "OrderRested"]  # the rest is Bob's too
            order_id = rested["events"][0]["orderId"]

            take = await alice.place_order("BTC", "buy", "0.0003", "60010", tif="IOC")
            trade_message = await message_where(stream, lambda m: m.get("channel") == "trades")
            assert (trade_message["market"], trade_message["seq"]) == ("BTC", take.seq)
            (trade,) = trade_message["trades"]
            rest_trades = venue.node.get("/v1/markets/BTC/trades?limit=1").json()["trades"]
            assert trade == rest_trades[0]
            assert (trade["price"], trade["size"], trade["side"]) == ("60010", "0.0003", "buy")
            assert trade["makerOrder"] == order_id

            seen: dict[str, list[str]] = {}
            while len(seen) < 2:
                message = await message_where(
                    stream, lambda m: m.get("channel") == "account" and m["seq"] == take.seq
                )
                seen[message["address"]] = [event["type"] for event in message["events"]]
            # the taker: its order accepted, the trade, its IOC remainder (none: filled)
            assert seen[alice_hex] == ["OrderAccepted", "TradeExecuted"]
            assert seen[bob_hex] == ["TradeExecuted"]

            deposit_seq = venue.deposit(ALICE.account, 5 * 10**6)
            deposited = await message_where(
                stream, lambda m: m.get("channel") == "account" and m["seq"] == deposit_seq
            )
            assert deposited["address"] == alice_hex
            assert [e["type"] for e in deposited["events"]] == ["Deposited"]
            assert deposited["events"][0]["amount"] == 5 * 10**6

            cancelled = await bob.cancel("BTC", order_id)
            message = await message_where(
                stream, lambda m: m.get("channel") == "account" and m["seq"] == cancelled.seq
            )
            assert (message["address"], message["events"][0]["type"]) == (
                bob_hex,
                "OrderCancelled",
            )
            assert message["events"][0]["remaining"] == 20

    asyncio.run(scenario())


def intent_messages(stream: Stream, intent_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("channel") == "intents" and m["intentId"] == intent_id


def test_intent_status_streams_sequenced_then_executed(venue: Venue) -> None:
    async def scenario() -> None:
        async with venue.client(ALICE) as alice, alice.stream() as stream:
            # followed by id before it is sent (the id is the digest the client signs)
            intent = alice.sign(alice.build.place_order("BTC", "buy", "0.001", "59000"))
            intent_id = alice.intent_id(intent)
            await stream.subscribe("intents", ids=[intent_id])
            (receipt,) = await alice.submit([intent])
            first = await message_where(stream, intent_messages(stream, intent_id))
            second = await message_where(stream, intent_messages(stream, intent_id))
            assert (first["status"], first["seq"], first["events"]) == (
                "sequenced",
                receipt.seq,
                None,
            )
            assert (second["status"], second["seq"]) == ("executed", receipt.seq)
            assert [e["type"] for e in second["events"]] == ["OrderAccepted", "OrderRested"]
            # the same as the HTTP status
            http = await alice.status(receipt)
            assert [dict(e) for e in http.events] == second["events"]

            # followed by account: every intent of Alice, including a rejected one
            await stream.subscribe("intents", account="0x" + ALICE.account.hex())
            too_big = await alice.place_order("BTC", "buy", "1000", "59000")
            statuses = [
                await message_where(stream, intent_messages(stream, too_big.intent_id))
                for _ in range(2)
            ]
            assert [s["status"] for s in statuses] == ["sequenced", "executed"]
            (rejected,) = [e for e in statuses[1]["events"] if e["type"] == "Rejected"]
            assert rejected["reasonName"] == "INSUFFICIENT_MARGIN"

            # submitted over the socket with follow: statuses, then the receipts
            await stream.unsubscribe("intents", account="0x" + ALICE.account.hex())
            cancel = alice.build.cancel_all("BTC")
            (socket_receipt,) = await stream.submit([cancel], follow=True)
            cancel_id = alice.intent_id(cancel)
            statuses = [
                await message_where(stream, intent_messages(stream, cancel_id)) for _ in range(2)
            ]
            assert [s["status"] for s in statuses] == ["sequenced", "executed"]
            assert statuses[1]["seq"] == socket_receipt.seq
            assert statuses[1]["events"][0]["type"] == "OrderCancelled"

            # an id already executed is answered with its status at once
            await stream.subscribe("intents", ids=[intent_id])
            again = await message_where(stream, intent_messages(stream, intent_id))
            assert again["status"] == "executed" and again["seq"] == receipt.seq

    asyncio.run(scenario())


def test_submit_over_the_socket_is_durable_and_refused_like_http(venue: Venue) -> None:
    async def scenario() -> list[Any]:
        async with venue.client(ALICE) as alice, alice.stream() as stream:
            intents = [
                alice.build.place_order("BTC", "buy", "0.001", "59000", client_id=1),
                alice.build.place_order("ETH", "sell", "0.01", "3100", client_id=2),
            ]
            receipts = await stream.submit(intents)
            assert [r.intent_id for r in receipts] == [alice.intent_id(i) for i in intents]
            assert receipts[1].seq == receipts[0].seq + 1
            assert venue.node.status()["durableSeq"] >= receipts[1].seq

            # refused exactly as POST /v1/intents refuses it, nothing sequenced
            last_seq = venue.node.status()["lastSeq"]
            good = alice.sign(alice.build.place_order("BTC", "buy", "0.001", "58000"))
            malleable = good._replace(signature=good.signature[:32] + HIGH_S + good.signature[64:])
            with pytest.raises(IntakeRefused) as caught:
                await stream.submit([good, malleable])
            refused = caught.value
            assert (refused.code, refused.status, refused.index, refused.field) == (
                "malleable_signature",
                400,
                1,
                "signature",
            )
            http = venue.node.post_json(
                "/v1/intents",
                {"intents": [signed_intent_to_json(good), signed_intent_to_json(malleable)]},
            )
            assert (http.status, http.json()["code"]) == (400, "malleable_signature")
            with pytest.raises(StreamError) as empty:
                await stream.request({"op": "submit", "intents": []})
            assert (empty.value.code, empty.value.body["status"]) == ("empty_batch", 400)
            http = venue.node.post_json("/v1/intents", {"intents": []})
            assert (http.status, http.json()["code"]) == (400, "empty_batch")
            # a retry of acknowledged intents gets the first receipts, sequences nothing
            signed = [alice.sign(i) for i in intents]
            assert await stream.submit(signed) == receipts
            assert venue.node.status()["lastSeq"] == last_seq
            return receipts

    receipts = asyncio.run(scenario())
    # durable: the records survive a SIGKILL right after the receipts
    venue.launcher.kill()
    node = venue.launcher.start()
    for receipt in receipts:
        status = node.get(f"/v1/intents/{receipt.intent_id}")
        assert status.status == 200, status.body
        assert status.json()["seq"] == receipt.seq


def test_bad_ops_get_specific_errors_and_change_nothing(venue: Venue) -> None:
    async def scenario() -> None:
        before = venue.node.status()["lastSeq"]
        async with Stream(venue.node.url) as stream:

            async def refused(op: dict[str, Any], code: str) -> dict[str, Any]:
                with pytest.raises(StreamError) as caught:
                    await stream.request(op)
                assert caught.value.code == code, caught.value
                body: dict[str, Any] = caught.value.body
                assert body["op"] == "error" and body["id"] is not None
                return body

            await refused({"op": "dance"}, "unknown_op")
            await refused({"op": "subscribe", "channel": "gossip"}, "unknown_channel")
            body = await refused({"op": "subscribe", "channel": "book", "market": "DOGE"},
                                 "unknown_market")  # fmt: skip
            assert body["field"] == "market"
            await refused({"op": "subscribe", "channel": "trades"}, "unknown_market")
            await refused({"op": "subscribe", "channel": "account", "address": "0x12"},
                          "invalid_address")  # fmt: skip
            await refused({"op": "subscribe", "channel": "book", "market": "BTC", "depth": 5},
                          "unknown_field")  # fmt: skip
            await refused({"op": "subscribe", "channel": "intents", "ids": ["0xabc"]},
                          "invalid_intent_id")  # fmt: skip
            await refused({"op": "subscribe", "channel": "intents"}, "missing_field")
            await refused({"op": "unsubscribe", "channel": "book", "market": "BTC"},
                          "not_subscribed")  # fmt: skip
            await refused({"op": "ping", "extra": 1}, "unknown_field")
            # sealed envelopes: only a committee member with a sealing key takes them
            await refused({"op": "submit", "sealed": ["0x00"]}, "no_sealing")
            await refused({"op": "submit", "sealed": "0x00"}, "malformed_body")
            await refused({"op": "submit", "sealed": ["0x00"], "intents": []}, "malformed_body")
            # too many subscriptions: the 65th account stream is refused, the rest kept
            for index in range(64):
                address = "0x" + index.to_bytes(20, "big").hex()
                await stream.subscribe("account", address=address)
            await refused({"op": "subscribe", "channel": "book", "market": "BTC"},
                          "too_many_subscriptions")  # fmt: skip
            await stream.unsubscribe("account", address="0x" + (0).to_bytes(20, "big").hex())
            await stream.subscribe("book", market="BTC")

            # frames that are not ops at all: answered with id null
            for frame, code in (("{not json", "invalid_json"), ("[1, 2]", "invalid_op"),
                                ('{"op": "ping", "op": "ping"}', "invalid_json"),
                                ('{"op": "ping", "id": NaN}', "invalid_json"),
                                ('{"op": "ping", "id": [1]}', "invalid_field")):  # fmt: skip
                await stream.send_raw(frame)
                error = await message_where(stream, lambda m: m.get("op") == "error")
                assert (error["code"], error["id"]) == (code, None), frame
            assert stream._ws is not None
            await stream._ws.send_bytes(b"\x00\x01")
            error = await message_where(stream, lambda m: m.get("op") == "error")
            assert error["code"] == "binary_frame"
            assert await stream.ping() == before  # still serving, nothing sequenced

        # a frame above the limit closes the socket with 1009 (message too big)
        async with Stream(venue.node.url) as stream:
            await stream.send_raw(json.dumps({"op": "ping", "pad": "x" * 200_000}))
            with pytest.raises(StreamClosed) as closed:
                await stream.next_message(WAIT)
            assert closed.value.close_code == 1009
        assert venue.node.status()["lastSeq"] == before

    asyncio.run(scenario())


def test_shutdown_closes_sockets_with_1001(venue: Venue) -> None:
    async def scenario() -> None:
        async with Stream(venue.node.url) as stream:
            await stream.book("BTC")
            loop = asyncio.get_running_loop()
            exit_code = loop.run_in_executor(None, venue.launcher.terminate)
            with pytest.raises(StreamClosed) as closed:
                while True:
                    await stream.next_message(WAIT)
            assert closed.value.close_code == 1001
            assert await exit_code == 0
        # and a stream that cannot connect says so
        with pytest.raises(aiohttp.ClientError):
            await Stream(venue.node.url).connect()

    asyncio.run(scenario())


def test_intent_status_reaches_committed_and_finalized_when_the_node_settles(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    config = tmp_path / "venue.toml"
    config.write_text(
        f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n'
        "[settlement]\ndeploy = true\nfinality_blocks = 2\nblock_time_ms = 200\n\n"
        '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
        "oracle_staleness_ms = 3600000\n"
    )
    launcher = node_launcher(
        tmp_path / "data",
        config,
        operator_token=OPERATOR_TOKEN,
        extra_args=["--batch-interval-ms", "500", "--tick-ms", "100"],
    )
    node = launcher.start()
    assert node.ready["settlement"] is True
    price = {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0,
             "price": BTC_PRICE}  # fmt: skip
    assert node.post_json("/v1/system", {"commands": [price]}, OPERATOR_TOKEN).status == 200
    deposit = {"account": "0x" + ALICE.account.hex(), "amount": 1_000 * 10**6}
    assert node.post_json("/v1/dev/deposit", deposit, OPERATOR_TOKEN).status == 200

    async def scenario() -> None:
        client = AsyncClient(node.url, ALICE, node.ready["chainId"], node.ready["contract"],
                             markets=Venue.markets_of(config))  # fmt: skip
        async with client, client.stream() as stream:
            # the deposit reaches Alice's account stream once the watcher sequences it
            await stream.subscribe("account", address="0x" + ALICE.account.hex())
            if node.get("/v1/accounts/0x" + ALICE.account.hex()).status != 200:
                deposited = await message_where(stream, lambda m: m.get("channel") == "account")
                assert deposited["events"][0]["type"] == "Deposited"
            await stream.subscribe("intents", account="0x" + ALICE.account.hex())
            receipt = await client.place_order("BTC", "buy", "0.001", "59000")
            statuses: list[dict[str, Any]] = []
            while not statuses or statuses[-1]["status"] != "finalized":
                statuses.append(
                    await message_where(stream, intent_messages(stream, receipt.intent_id), 60.0)
                )
            assert [s["status"] for s in statuses] == [
                "sequenced",
                "executed",
                "committed",
                "finalized",
            ]
            committed, finalized = statuses[2], statuses[3]
            assert committed["txHash"] is not None and len(committed["txHash"]) == 66
            assert (finalized["batch"], finalized["txHash"]) == (
                committed["batch"],
                committed["txHash"],
            )
            http = await client.status(receipt)
            assert (http.status, http.batch, http.tx_hash) == (
                "finalized",
                finalized["batch"],
                finalized["txHash"],
            )

    asyncio.run(scenario())
