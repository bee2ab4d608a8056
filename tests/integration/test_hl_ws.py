"""Hyperliquid's WebSocket ``/ws`` on a real node process, through the published
``hyperliquid-python-sdk`` (``Info(..., skip_ws=False).subscribe``) and a raw socket.

Orders go in through the native client; each subscription's callback must receive the
message the trade causes, with the values the trade implies.
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import websocket
from eth_account import Account
from hyperliquid.info import Info
from hyperliquid.utils.signing import (
    get_timestamp_ms,
    order_request_to_order_wire,
    order_wires_to_order_action,
    sign_l1_action,
)

from asyncdex.client import Client, Wallet
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(CHAIN_ID, CONTRACT)
OPERATOR_TOKEN = "hl-ws-test operator"
PUBLISHER = LocalSigner(keccak256(b"hl-ws-test publisher")).address
BTC_PRICE = 600_000  # $60,000.0 in $0.1
ETH_PRICE = 300_000
DEPOSIT = 10_000 * 10**6
DEADLINE = 30.0  # seconds to wait for a message the node sends asynchronously


def key_of(name: str) -> bytes:
    return keccak256(f"hl-ws-test {name}".encode())


def wallet(name: str) -> Wallet:
    return Wallet(key_of(name))


ALICE = wallet("alice")
BOB = wallet("bob")


def hex_of(account: bytes) -> str:
    return "0x" + account.hex()


@dataclass
class Venue:
    node: RunningNode
    config: Path
    l1_index: Iterator[int]

    def system(self, *commands: dict[str, Any]) -> None:
        self.node.system(OPERATOR_TOKEN, *commands)

    def deposit(self, account: bytes) -> None:
        self.system(
            {"type": "deposit", "account": hex_of(account), "amount": DEPOSIT,
             "l1Index": next(self.l1_index)}
        )  # fmt: skip

    def client(self, who: Wallet) -> Client:
        return Client.from_venue_file(self.node.url, who, self.config)


@pytest.fixture
def launcher(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> NodeLauncher:
    markets = (("BTC", 5, 1, 1), ("ETH", 4, 1, 1))
    config = venue_config(tmp_path / "venue.toml", DOMAIN, markets, [PUBLISHER])
    return node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)


@pytest.fixture
def venue(launcher: NodeLauncher) -> Venue:
    result = Venue(launcher.start(), launcher.config_path, itertools.count())
    publisher = hex_of(PUBLISHER)
    result.system(
        {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": BTC_PRICE},
        {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": ETH_PRICE},
    )
    result.deposit(ALICE.account)
    result.deposit(BOB.account)
    return result


def executed(client: Client, receipt: Any) -> None:
    status = client.wait_for(receipt, "executed")
    assert status.rejection is None, status.events


def placed(client: Client, receipt: Any) -> int:
    """The id of the order ``receipt``'s intent placed."""
    status = client.wait_for(receipt, "executed")
    assert status.rejection is None and status.order_id is not None, status.events
    order_id: int = status.order_id
    return order_id


class Inbox:
    """Messages one subscription's callback received, waited on with a deadline."""

    def __init__(self) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.put(message)

    def next(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first message (skipping others) that satisfies ``predicate``."""
        deadline = time.monotonic() + DEADLINE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} message in time")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if predicate(message):
                return message


def test_sdk_subscriptions_receive_the_events_of_a_trade(venue: Venue) -> None:
    alice_hex, bob_hex = hex_of(ALICE.account), hex_of(BOB.account)
    info = Info(venue.node.url, skip_ws=False)
    try:
        inboxes = {name: Inbox() for name in (
            "allMids", "l2Book", "trades", "userEvents", "orderUpdates", "userFills",
            "candle", "bbo",
        )}  # fmt: skip
        info.subscribe({"type": "allMids"}, inboxes["allMids"])
        info.subscribe({"type": "l2Book", "coin": "BTC"}, inboxes["l2Book"])
        info.subscribe({"type": "trades", "coin": "BTC"}, inboxes["trades"])
        info.subscribe({"type": "userEvents", "user": alice_hex}, inboxes["userEvents"])
        info.subscribe({"type": "orderUpdates", "user": alice_hex}, inboxes["orderUpdates"])
        info.subscribe({"type": "userFills", "user": alice_hex}, inboxes["userFills"])
        info.subscribe({"type": "candle", "coin": "BTC", "interval": "1m"}, inboxes["candle"])
        info.subscribe({"type": "bbo", "coin": "BTC"}, inboxes["bbo"])

        # snapshots first
        mids = inboxes["allMids"].next(lambda m: True, "allMids snapshot")
        assert mids == {"channel": "allMids", "data": {"mids": {"BTC": "60000", "ETH": "3000"}}}
        book = inboxes["l2Book"].next(lambda m: True, "l2Book snapshot")
        assert book["data"]["coin"] == "BTC" and book["data"]["levels"] == [[], []]
        fills = inboxes["userFills"].next(lambda m: True, "userFills snapshot")
        assert fills["data"] == {"isSnapshot": True, "user": alice_hex, "fills": []}
        bbo = inboxes["bbo"].next(lambda m: True, "bbo snapshot")
        assert bbo["data"]["bbo"] == [None, None]

        with venue.client(ALICE) as alice, venue.client(BOB) as bob:
            ask = placed(bob, bob.place_order("BTC", "sell", "0.01", "60010", tif="ALO"))
            resting = inboxes["l2Book"].next(lambda m: m["data"]["levels"][1] != [], "book")
            assert resting["data"]["levels"] == [[], [{"px": "60010", "sz": "0.01", "n": 1}]]
            bbo = inboxes["bbo"].next(lambda m: m["data"]["bbo"][1] is not None, "bbo")
            assert bbo["data"]["bbo"] == [None, {"px": "60010", "sz": "0.01", "n": 1}]

            taker = placed(alice, alice.place_order("BTC", "buy", "0.004", "60010", tif="IOC"))

            trades = inboxes["trades"].next(lambda m: True, "trades")
            (trade,) = trades["data"]
            assert (trade["coin"], trade["side"], trade["px"], trade["sz"]) == (
                "BTC", "B", "60010", "0.004",
            )  # fmt: skip
            assert trade["users"] == [alice_hex, bob_hex]

            event = inboxes["userEvents"].next(lambda m: "fills" in m["data"], "user fills")
            assert event["channel"] == "user"
            (fill,) = event["data"]["fills"]
            assert (fill["oid"], fill["side"], fill["px"], fill["sz"], fill["dir"]) == (
                taker, "B", "60010", "0.004", "Open Long",
            )  # fmt: skip
            assert fill["crossed"] and fill["fee"] == "0.108018"  # 4.5 bps of $240.04, rounded up
            assert fill["tid"] == trade["tid"] and fill["hash"] == trade["hash"]

            live = inboxes["userFills"].next(lambda m: m["data"]["fills"] != [], "userFills")
            assert "isSnapshot" not in live["data"] and live["data"]["user"] == alice_hex
            assert live["data"]["fills"] == event["data"]["fills"]

            update = inboxes["orderUpdates"].next(lambda m: True, "orderUpdates")
            (filled,) = update["data"]
            assert (filled["status"], filled["order"]["oid"], filled["order"]["coin"]) == (
                "filled", taker, "BTC",
            )  # fmt: skip
            assert filled["order"]["origSz"] == "0.004" and filled["order"]["sz"] == "0"

            candle = inboxes["candle"].next(lambda m: True, "candle")
            data = candle["data"]
            assert (data["s"], data["i"], data["o"], data["c"], data["v"], data["n"]) == (
                "BTC", "1m", "60010", "60010", "0.004", 1,
            )  # fmt: skip
            assert data["T"] == data["t"] + 59_999

            after = inboxes["l2Book"].next(
                lambda m: m["data"]["levels"][1][:1] == [{"px": "60010", "sz": "0.006", "n": 1}],
                "book after the trade",
            )
            assert after["data"]["levels"][0] == []

            bid = placed(alice, alice.place_order("BTC", "buy", "0.001", "59980"))
            opened = inboxes["orderUpdates"].next(lambda m: True, "orderUpdates open")
            assert [(u["status"], u["order"]["oid"], u["order"]["limitPx"]) for u in
                    opened["data"]] == [("open", bid, "59980")]  # fmt: skip
            # the mid of 59980 and 60010; sent only when it changes
            mid = inboxes["allMids"].next(lambda m: True, "allMids after the bid")
            assert mid["data"]["mids"] == {"BTC": "59995", "ETH": "3000"}
            executed(bob, bob.cancel("BTC", ask))
            gone = inboxes["bbo"].next(lambda m: m["data"]["bbo"][1] is None, "bbo after cancel")
            assert gone["data"]["bbo"][0] == {"px": "59980", "sz": "0.001", "n": 1}
            # no ask: the mid falls back to the mark, median(index, bid, index) = 60000
            mid = inboxes["allMids"].next(lambda m: True, "allMids after the cancel")
            assert mid["data"]["mids"] == {"BTC": "60000", "ETH": "3000"}
    finally:
        info.disconnect_websocket()


class RawSocket:
    def __init__(self, url: str) -> None:
        self.socket = websocket.create_connection("ws" + url[len("http") :] + "/ws", timeout=30)
        assert self.socket.recv() == "Websocket connection established."

    def send(self, document: Any) -> None:
        self.socket.send(json.dumps(document))

    def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.socket.recv())
        return message

    def close(self) -> None:
        self.socket.close()


def test_ping_post_unsubscribe_and_errors(venue: Venue) -> None:
    raw = RawSocket(venue.node.url)
    try:
        raw.send({"method": "ping"})
        assert raw.receive() == {"channel": "pong", "data": None}

        raw.send({"method": "post", "id": 7, "request": {"type": "info",
                  "payload": {"type": "l2Book", "coin": "ETH"}}})  # fmt: skip
        answer = raw.receive()
        assert answer["channel"] == "post" and answer["data"]["id"] == 7
        response = answer["data"]["response"]
        assert response["type"] == "info" and response["payload"]["type"] == "l2Book"
        assert response["payload"]["data"]["coin"] == "ETH"
        assert response["payload"]["data"]["levels"] == [[], []]

        raw.send({"method": "post", "id": 8, "request": {"type": "info",
                  "payload": {"type": "allMids"}}})  # fmt: skip
        mids = raw.receive()["data"]["response"]["payload"]["data"]
        assert mids == {"BTC": "60000", "ETH": "3000"}

        raw.send({"method": "post", "id": 9, "request": {"type": "info",
                  "payload": {"type": "nope"}}})  # fmt: skip
        refused = raw.receive()["data"]
        assert refused["id"] == 9 and refused["response"]["type"] == "error"
        assert "nope" in refused["response"]["payload"]

        # an unsigned action is refused whole, as POST /exchange refuses it
        raw.send({"method": "post", "id": 10, "request": {"type": "action", "payload": {}}})
        action = raw.receive()["data"]
        assert action["id"] == 10 and action["response"]["type"] == "action"
        assert action["response"]["payload"]["status"] == "err"
        direct = venue.node.post_json("/exchange", {})
        assert direct.status == 200 and direct.json() == action["response"]["payload"]

        raw.send({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "DOGE"}})
        error = raw.receive()
        assert error["channel"] == "error" and "DOGE" in error["data"]
        raw.send({"method": "dance"})
        assert raw.receive()["channel"] == "error"
        raw.socket.send("not json")
        assert raw.receive()["channel"] == "error"

        subscription = {"type": "trades", "coin": "BTC"}
        raw.send({"method": "subscribe", "subscription": subscription})
        assert raw.receive() == {
            "channel": "subscriptionResponse",
            "data": {"method": "subscribe", "subscription": subscription},
        }
        raw.send({"method": "unsubscribe", "subscription": subscription})
        assert raw.receive() == {
            "channel": "subscriptionResponse",
            "data": {"method": "unsubscribe", "subscription": subscription},
        }
        # unsubscribed: a trade now sends nothing; the ping's pong is the next message
        with venue.client(ALICE) as alice, venue.client(BOB) as bob:
            executed(bob, bob.place_order("BTC", "sell", "0.001", "60000"))
            executed(alice, alice.place_order("BTC", "buy", "0.001", "60000", tif="IOC"))
        raw.send({"method": "ping"})
        assert raw.receive() == {"channel": "pong", "data": None}
    finally:
        raw.close()


def test_l2book_and_bbo_are_sent_only_when_their_levels_change(venue: Venue) -> None:
    """Records that leave BTC's levels alone (oracle prices, an ETH order, a time tick) move
    the state's time but send no BTC ``l2Book`` or ``bbo``: the next of each is the one the
    BTC order causes."""
    raw = RawSocket(venue.node.url)
    publisher = hex_of(PUBLISHER)
    try:
        for subscription in ({"type": "l2Book", "coin": "BTC"}, {"type": "bbo", "coin": "BTC"}):
            raw.send({"method": "subscribe", "subscription": subscription})
            assert raw.receive()["channel"] == "subscriptionResponse"
            snapshot = raw.receive()
            assert snapshot["channel"] == subscription["type"]
        start_time = snapshot["data"]["time"]
        with venue.client(ALICE) as alice:
            for step in range(3):
                venue.system(
                    {"type": "oraclePrice", "publisher": publisher, "market": 0,
                     "price": BTC_PRICE + step + 1},
                    {"type": "advanceTime"},
                )  # fmt: skip
                placed(alice, alice.place_order("ETH", "buy", "0.01", "2900"))
            placed(alice, alice.place_order("BTC", "buy", "0.001", "59000"))
        book = raw.receive()
        assert book["channel"] == "l2Book"
        assert book["data"]["levels"][0] == [{"px": "59000", "sz": "0.001", "n": 1}]
        assert book["data"]["time"] > start_time  # the ticks did move the time
        bbo = raw.receive()
        assert bbo["channel"] == "bbo"
        assert bbo["data"]["bbo"] == [{"px": "59000", "sz": "0.001", "n": 1}, None]
        raw.send({"method": "ping"})
        assert raw.receive() == {"channel": "pong", "data": None}
    finally:
        raw.close()


def test_post_action_places_an_order_and_streams_its_update(venue: Venue) -> None:
    """An order signed as the SDK's ``Exchange`` signs it, posted over the socket: the post
    answer carries the resting oid and ``orderUpdates`` shows the order open."""
    alice_hex = hex_of(ALICE.account)
    raw = RawSocket(venue.node.url)
    try:
        subscription = {"type": "orderUpdates", "user": alice_hex}
        raw.send({"method": "subscribe", "subscription": subscription})
        assert raw.receive()["channel"] == "subscriptionResponse"

        order = {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": 59_000.0,
                 "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False}  # fmt: skip
        action = order_wires_to_order_action([order_request_to_order_wire(order, 0)])
        nonce = get_timestamp_ms()
        signer = Account.from_key(key_of("alice"))
        signature = sign_l1_action(signer, action, None, nonce, None, False)
        payload = {"action": action, "nonce": nonce, "signature": signature}
        raw.send({"method": "post", "id": 1, "request": {"type": "action", "payload": payload}})

        messages = [raw.receive(), raw.receive()]
        by_channel = {message["channel"]: message["data"] for message in messages}
        assert set(by_channel) == {"post", "orderUpdates"}
        answer = by_channel["post"]
        assert answer["id"] == 1 and answer["response"]["type"] == "action"
        result = answer["response"]["payload"]
        assert result["status"] == "ok", result
        (status,) = result["response"]["data"]["statuses"]
        oid = status["resting"]["oid"]
        (update,) = by_channel["orderUpdates"]
        assert (update["status"], update["order"]["oid"], update["order"]["limitPx"]) == (
            "open", oid, "59000",
        )  # fmt: skip
        assert (update["order"]["side"], update["order"]["sz"]) == ("B", "0.001")
    finally:
        raw.close()


def test_shutdown_closes_open_sockets(launcher: NodeLauncher) -> None:
    node = launcher.start()
    raw = RawSocket(node.url)
    try:
        raw.send({"method": "subscribe", "subscription": {"type": "allMids"}})
        assert raw.receive()["channel"] == "subscriptionResponse"
        assert launcher.terminate() == 0
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:  # whatever was in flight, then the close
                raw.socket.recv()
    finally:
        raw.close()


def test_user_events_funding_and_non_user_cancel(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    """Funding every second: ``userEvents`` and ``userFundings`` receive alice's payments;
    an order that expires is a cancel she did not ask for (``nonUserCancel``)."""
    markets = ""
    for symbol, sz_decimals in (("BTC", 5), ("ETH", 4)):
        markets += (
            f'\n[[markets]]\nsymbol = "{symbol}"\nsz_decimals = {sz_decimals}\ntick = 1\n'
            "lot = 1\noracle_staleness_ms = 3600000\nfunding_interval_ms = 1000\n"
            "premium_sample_ms = 200\n"
        )
    config = tmp_path / "venue.toml"
    config.write_text(
        f'oracle_publishers = ["{hex_of(PUBLISHER)}"]\n\n[venue]\nchain_id = {CHAIN_ID}\n'
        f'settlement_contract = "{hex_of(CONTRACT)}"\n{markets}'
    )
    launcher = node_launcher(tmp_path / "data", config, operator_token=OPERATOR_TOKEN)
    venue = Venue(launcher.start(), config, itertools.count())
    publisher = hex_of(PUBLISHER)
    venue.system(
        {"type": "oraclePrice", "publisher": publisher, "market": 0, "price": BTC_PRICE},
        {"type": "oraclePrice", "publisher": publisher, "market": 1, "price": ETH_PRICE},
    )
    venue.deposit(ALICE.account)
    venue.deposit(BOB.account)
    alice_hex = hex_of(ALICE.account)
    info = Info(venue.node.url, skip_ws=False)
    try:
        events, fundings = Inbox(), Inbox()
        info.subscribe({"type": "userEvents", "user": alice_hex}, events)
        info.subscribe({"type": "userFundings", "user": alice_hex}, fundings)
        with venue.client(ALICE) as alice, venue.client(BOB) as bob:
            executed(bob, bob.place_order("BTC", "sell", "0.002", "60000"))
            executed(alice, alice.place_order("BTC", "buy", "0.002", "60000", tif="IOC"))
            soon = int(time.time() * 1000) + 1_500
            expiring = placed(alice, alice.place_order("ETH", "buy", "0.01", "2900", expiry=soon))

        def advance() -> None:
            venue.system({"type": "advanceTime"})

        deadline = time.monotonic() + DEADLINE
        paid = cancelled = None
        while (paid is None or cancelled is None) and time.monotonic() < deadline:
            advance()
            time.sleep(0.2)
            while not events.messages.empty():
                data = events.messages.get()["data"]
                if "funding" in data and paid is None:
                    paid = data["funding"]
                if "nonUserCancel" in data:
                    cancelled = data["nonUserCancel"]
        assert paid is not None and cancelled is not None
        assert cancelled == [{"coin": "ETH", "oid": expiring}]
        assert (paid["coin"], paid["szi"]) == ("BTC", "0.002")
        # a long pays when the rate is positive: 0.002 BTC x $60,000 x the rate, rounded up
        rate = Decimal(paid["fundingRate"])
        owed = (Decimal("0.002") * 60_000 * rate).quantize(Decimal("1e-6"), rounding=ROUND_CEILING)
        assert rate > 0 and Decimal(paid["usdc"]) == -owed
        batch = fundings.next(lambda m: True, "userFundings")
        assert batch["data"]["user"] == alice_hex
        assert all(f["coin"] == "BTC" and f["szi"] == "0.002" for f in batch["data"]["fundings"])
    finally:
        info.disconnect_websocket()


def test_a_reader_that_falls_behind_is_disconnected(venue: Venue) -> None:
    """A socket that subscribes to a lot and never reads: the node closes it (1008) once its
    backlog is full, and goes on serving everyone else meanwhile. The close frame waits
    behind what the socket already holds; a peer that still does not read is then cut off."""
    url = "ws" + venue.node.url[len("http") :] + "/ws"
    stalled = websocket.create_connection(
        url, timeout=30, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
    )
    try:
        for figures, mantissa in ((None, None), (2, None), (3, None), (4, None), (5, None),
                                  (5, 2), (5, 5)):  # fmt: skip
            book = {"type": "l2Book", "coin": "BTC", "nSigFigs": figures, "mantissa": mantissa}
            stalled.send(json.dumps({"method": "subscribe", "subscription": book}))
        bbo = {"type": "bbo", "coin": "BTC"}
        stalled.send(json.dumps({"method": "subscribe", "subscription": bbo}))
        healthy = RawSocket(venue.node.url)
        # each bid tops the book: eight messages of up to 800 bytes per record, 12,800 in all:
        # far more than the queue (4096) and what the sockets buffer (the node's send buffer
        # is bounded; the reader's receive buffer is small)
        with venue.client(ALICE) as alice, venue.client(BOB) as bob:
            for round_ in range(16):
                trader = alice if round_ % 2 else bob
                prices = range(500_000 + round_ * 1_000, 500_000 + (round_ + 1) * 1_000, 10)
                receipts = trader.batch(
                    [trader.build.place_order("BTC", "buy", "0.001", price)
                     for price in prices]
                )  # fmt: skip
                trader.wait_for(receipts[-1], "executed")
                healthy.send({"method": "ping"})
                assert healthy.receive() == {"channel": "pong", "data": None}
        assert close_code_of(stalled) in (1008, CUT_OFF)
        healthy.send({"method": "post", "id": 1, "request": {"type": "info",
                      "payload": {"type": "l2Book", "coin": "BTC"}}})  # fmt: skip
        book = healthy.receive()["data"]["response"]["payload"]["data"]
        assert book["levels"][0][0] == {"px": "51599", "sz": "0.001", "n": 1}
        healthy.close()
    finally:
        stalled.close()


CUT_OFF = -1  # the node closed the connection without a close frame reaching the reader


def close_code_of(connection: websocket.WebSocket) -> int | None:
    """Read everything queued; the close frame's status code, ``CUT_OFF`` if the node
    aborted the connection, or None if the socket went quiet without either."""
    connection.settimeout(15)
    try:
        while True:
            opcode, frame = connection.recv_data_frame(True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code: int = struct.unpack("!H", frame.data[:2])[0]
                return code
    except (websocket.WebSocketTimeoutException, TimeoutError):
        return None
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return CUT_OFF


def test_each_door_caps_its_sockets_in_all_and_per_address(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    """Three sockets a door, two per address: the third from one address is refused, and so
    is a second from another address once the door is full; a socket closed makes room."""
    config = venue_config(tmp_path / "venue.toml", DOMAIN, (("BTC", 5, 1, 1),), [PUBLISHER])
    node = node_launcher(
        tmp_path / "data",
        config,
        extra_args=("--max-sockets", "3", "--max-sockets-per-address", "2"),
    ).start()
    host_port = ("127.0.0.1", node.port)

    def connect(path: str, source: str) -> websocket.WebSocket:
        raw = socket.create_connection(host_port, timeout=30, source_address=(source, 0))
        return websocket.create_connection(
            "ws" + node.url[len("http") :] + path, timeout=30, socket=raw
        )

    def refused(path: str, source: str) -> str:
        with pytest.raises(websocket.WebSocketBadStatusException) as refusal:
            connect(path, source)
        assert refusal.value.status_code == 503
        code: str = json.loads(refusal.value.resp_body)["code"]
        return code

    for path in ("/ws", "/v1/ws"):
        first, second = connect(path, "127.0.0.1"), connect(path, "127.0.0.1")
        assert refused(path, "127.0.0.1") == "too_many_connections_from_address"
        other = connect(path, "127.0.0.2")
        assert refused(path, "127.0.0.2") == "too_many_connections"
        first.close()
        deadline = time.monotonic() + DEADLINE
        while True:  # room again once the node has closed it
            try:
                replacement = connect(path, "127.0.0.2")
                break
            except websocket.WebSocketBadStatusException:
                assert time.monotonic() < deadline, "the closed socket was never released"
                time.sleep(0.05)
        for connection in (second, other, replacement):
            connection.close()
