"""The rate limiter on a clock the test moves: the IP bucket, the address cap with its
throttle and cancel allowance, the weights, and the bound on what it keeps."""

from __future__ import annotations

import pytest

from asyncdex.gateway.ratelimit import (
    RateLimited,
    RateLimiter,
    RateLimits,
    action_weight,
    address_requests,
    info_weight,
    native_weight,
    sealed_address_requests,
    sealed_weight,
)
from asyncdex.messages.commands import Batch, CancelOrder, PlaceOrder, Signed
from asyncdex.messages.events import TradeExecuted

ALICE = b"\xaa" * 20
BOB = b"\xbb" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def test_an_ip_spends_its_minute_at_once_then_waits_the_hinted_time() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(ip_weight_per_minute=60), clock)
    for _ in range(30):
        limiter.charge_ip("10.0.0.1", 2)
    with pytest.raises(RateLimited) as refused:
        limiter.charge_ip("10.0.0.1", 2)
    # 2 weight at 60 a minute: 2 s; a refusal costs nothing
    assert (refused.value.scope, refused.value.retry_after_ms) == ("ip", 2_000)
    assert refused.value.retry_after_seconds == 2
    limiter.charge_ip("10.0.0.2", 2)  # another address has its own bucket
    clock.now += 1_999
    with pytest.raises(RateLimited) as again:
        limiter.charge_ip("10.0.0.1", 2)
    assert again.value.retry_after_ms == 1
    clock.now += 1
    limiter.charge_ip("10.0.0.1", 2)
    assert limiter.ip_weight_left("10.0.0.1") == 0


def signed(account: bytes, command: object) -> Signed:
    return Signed(account, 1, 0, command)  # type: ignore[arg-type]


def test_an_address_is_capped_then_throttled_and_cancels_go_further() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(address_initial_requests=2), clock)
    order = PlaceOrder(ALICE, 0, True, 100, 10)
    batch = Batch(ALICE, (order, order, order))
    bobs = PlaceOrder(BOB, 0, False, 100, 10)
    assert address_requests([signed(ALICE, batch), signed(BOB, bobs)]) == {
        ALICE: (3, False),
        BOB: (1, False),
    }
    limiter.charge_addresses(address_requests([signed(ALICE, order), signed(ALICE, order)]))
    # past the cap: one request per 10 s
    limiter.charge_addresses(address_requests([signed(ALICE, order)]))
    with pytest.raises(RateLimited) as refused:
        limiter.charge_addresses(address_requests([signed(ALICE, order)]))
    assert (refused.value.scope, refused.value.retry_after_ms) == ("address", 10_000)
    assert limiter.user_rate_limit(ALICE) == (0, 3, 2)
    # cancels: up to min(cap + 100,000, 2 x cap) = 4
    limiter.charge_addresses(address_requests([signed(ALICE, CancelOrder(ALICE, 0, 1))]))
    clock.now += 10_000
    limiter.charge_addresses(address_requests([signed(ALICE, order)]))
    # trading raises the cap: 1 request per whole USDC, maker and taker alike
    trade = TradeExecuted(0, 600_000, 2_000_000, True, 7, 8, ALICE, BOB, 0, 0)
    limiter.on_record(None, [trade])
    assert limiter.user_rate_limit(BOB)[2] == 2 + 600_000 * 2_000_000 // 10**6


def test_weights_follow_hyperliquids_table() -> None:
    assert info_weight({"type": "l2Book"}) == 2
    assert info_weight({"type": "userRole"}) == 60
    assert info_weight({"type": "meta"}) == 20
    assert action_weight({"action": {"type": "order", "orders": [{}] * 79}}) == 2
    assert action_weight({"action": {"type": "order", "orders": [{}] * 80}}) == 3
    assert action_weight({"action": {"type": "noop"}}) == 1
    assert native_weight(None) == 1
    assert native_weight(40 * 400) == 2
    assert sealed_weight(None) == 1
    assert sealed_weight(40 * 700 - 1) == 1
    assert sealed_weight(40 * 700) == 2


def test_sealed_envelopes_count_one_request_each_never_as_cancels() -> None:
    counted = sealed_address_requests([ALICE, BOB, ALICE])
    assert counted == {ALICE: (2, False), BOB: (1, False)}
    clock = Clock()
    limiter = RateLimiter(RateLimits(address_initial_requests=2), clock)
    limiter.charge_addresses(counted)  # ALICE at her cap
    limiter.charge_addresses(sealed_address_requests([ALICE]))  # the throttle's one request
    with pytest.raises(RateLimited):
        limiter.charge_addresses(sealed_address_requests([ALICE]))


def test_what_it_keeps_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(max_tracked=10), clock)
    for index in range(25):
        limiter.charge_ip(f"10.0.0.{index}", 1)
        clock.now += 60_000  # every bucket full again: idle
        account = index.to_bytes(20, "big")
        limiter.charge_addresses({account: (1, False)})
    assert len(limiter._buckets) <= 10
    assert len(limiter.used) <= 10


def test_the_openapi_document_names_429_wherever_the_budget_applies() -> None:
    from asyncdex.gateway.openapi import openapi_document
    from asyncdex.gateway.ratelimit import EXEMPT_PATHS

    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            documented = "429" in operation["responses"]
            assert documented == (path not in EXEMPT_PATHS), (method, path)
