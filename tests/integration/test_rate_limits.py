"""Request budgets on a real node process: per client IP (every HTTP door) and per address
(every intent, whatever door it came through), answered ``429`` with a retry hint, and the
counters ``userRateLimit`` reports.

The node is started with small budgets (flags); the wait before a retry is the one the
node hinted, never a guess."""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncdex.client import Client, Wallet
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import asyncdex_domain, signed_intent_to_json
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(CHAIN_ID, CONTRACT)
TOKEN = "rate-limit-test operator"
PUBLISHER = LocalSigner(keccak256(b"rate-limit-test publisher")).address
ALICE = Wallet(keccak256(b"rate-limit-test alice"))
BOB = Wallet(keccak256(b"rate-limit-test bob"))
BTC_PRICE = 600_000  # $60,000.0 in $0.1
DEPOSIT = 10_000 * 10**6


def call(
    node: RunningNode, method: str, path: str, document: Any = None
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one request; a 4xx is an answer, not an exception."""
    body = None if document is None else json.dumps(document).encode()
    request = urllib.request.Request(
        node.url + path, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode()
        return error.code, dict(error.headers), parsed


def start(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
    *flags: str,
) -> tuple[RunningNode, Path]:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, (("BTC", 5, 1, 1),), [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config, extra_args=flags, operator_token=TOKEN)
    node = launcher.start()
    l1_index = itertools.count()
    node.system(
        TOKEN,
        {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0,
         "price": BTC_PRICE},
        *({"type": "deposit", "account": "0x" + who.account.hex(), "amount": DEPOSIT,
           "l1Index": next(l1_index)} for who in (ALICE, BOB)),
    )  # fmt: skip
    return node, config


def assert_limited(status: int, headers: dict[str, str], body: Any, scope: str) -> int:
    """The retry hint (ms) of a 429 answer, checked to agree with its Retry-After header."""
    assert status == 429, body
    assert body["code"] == "rate_limited", body
    retry_ms = body["retryAfterMs"]
    assert type(retry_ms) is int and retry_ms > 0
    assert int(headers["Retry-After"]) == -(-retry_ms // 1000)
    if scope:
        assert body["scope"] == scope
    return int(retry_ms)


def test_an_ip_over_its_weight_budget_gets_429_on_every_door_then_recovers(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    # 60 weight a minute: a native read (2) refills in 2 s
    node, _ = start(tmp_path, venue_config, node_launcher, "--ip-weight-per-minute", "60")
    passed = 0
    for _ in range(31):
        status, headers, body = call(node, "GET", "/v1/markets")
        if status != 200:
            break
        passed += 1
    assert 0 < passed <= 30  # the bucket holds 60: at most 30 reads of weight 2
    retry_ms = assert_limited(status, headers, body, "ip")
    # every door draws on the same budget: Hyperliquid's /info and /exchange too
    info = call(node, "POST", "/info", {"type": "allMids"})
    assert_limited(*info, "ip")
    exchange = call(node, "POST", "/exchange", {"action": {"type": "noop"}, "nonce": 1})
    assert_limited(*exchange, "ip")
    # the operator's door and health are not charged
    assert call(node, "GET", "/v1/health")[0] == 200
    time.sleep(retry_ms / 1000)
    status, _, body = call(node, "GET", "/v1/markets")
    assert status == 200, body


def test_an_address_over_its_request_cap_gets_429_and_trading_raises_the_cap(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    node, config = start(tmp_path, venue_config, node_launcher, "--address-initial-requests", "3")
    alice_hex = "0x" + ALICE.account.hex()

    def user_rate_limit() -> dict[str, Any]:
        status, _, body = call(node, "POST", "/info", {"type": "userRateLimit", "user": alice_hex})
        assert status == 200, body
        return dict(body)

    assert user_rate_limit() == {
        "cumVlm": "0", "nRequestsUsed": 0, "nRequestsCap": 3, "nRequestsSurplus": 0,
    }  # fmt: skip
    with Client.from_venue_file(node.url, ALICE, config) as alice:
        for step in range(3):
            alice.wait_for(alice.place_order("BTC", "sell", "0.001", 600_100 + step), "executed")
        assert user_rate_limit()["nRequestsUsed"] == 3
        # past the cap one request per 10 s still passes (Hyperliquid's rule) ...
        alice.wait_for(alice.place_order("BTC", "sell", "0.001", 600_000), "executed")
        assert user_rate_limit()["nRequestsUsed"] == 4
        # ... and the next is refused whole, with a hint, through the same path for any door
        refused = alice.sign(alice.build.place_order("BTC", "sell", "0.001", 600_200))
        answer = call(node, "POST", "/v1/intents", {"intents": [signed_intent_to_json(refused)]})
        assert_limited(*answer, "")
        assert user_rate_limit()["nRequestsUsed"] == 4  # a refused request is not counted
        assert node.get("/v1/intents/" + alice.intent_id(refused)).status == 404

        # Bob takes Alice's 0.001 at 60,000: 60 USDC traded raise her cap by 60
        with Client.from_venue_file(node.url, BOB, config) as bob:
            bob.wait_for(bob.place_order("BTC", "buy", "0.001", 600_000, tif="IOC"), "executed")
        assert user_rate_limit() == {
            "cumVlm": "60", "nRequestsUsed": 4, "nRequestsCap": 63, "nRequestsSurplus": 0,
        }  # fmt: skip
        alice.wait_for(alice.submit_one(refused), "executed")
        assert user_rate_limit()["nRequestsUsed"] == 5


def hl_order(price: float) -> dict[str, Any]:
    """A Hyperliquid order action for Alice, signed as the SDK signs it (testnet)."""
    from eth_account import Account
    from hyperliquid.utils.signing import (
        get_timestamp_ms,
        order_request_to_order_wire,
        order_wires_to_order_action,
        sign_l1_action,
    )

    orders = [
        {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": price - step,
         "order_type": {"limit": {"tif": "Gtc"}}, "reduce_only": False}
        for step in range(3)
    ]  # fmt: skip
    action = order_wires_to_order_action([order_request_to_order_wire(o, 0) for o in orders])
    nonce = get_timestamp_ms()
    signature = sign_l1_action(
        Account.from_key(keccak256(b"rate-limit-test alice")), action, None, nonce, None, False
    )
    return {"action": action, "nonce": nonce, "signature": signature}


def test_hyperliquid_exchange_answers_429_past_the_address_cap(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    node, _ = start(tmp_path, venue_config, node_launcher, "--address-initial-requests", "1")
    # three orders count three requests: past the cap of one, the one request per 10 s passes
    status, _, answer = call(node, "POST", "/exchange", hl_order(59_000.0))
    assert status == 200 and answer["status"] == "ok", answer
    status, headers, answer = call(node, "POST", "/exchange", hl_order(58_000.0))
    assert_limited(status, headers, answer, "address")
    _, _, limits = call(
        node, "POST", "/info", {"type": "userRateLimit", "user": "0x" + ALICE.account.hex()}
    )
    assert (limits["nRequestsUsed"], limits["nRequestsCap"]) == (3, 1)
