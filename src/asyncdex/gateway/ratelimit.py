"""Request-weight budgets per client IP and per address, as Hyperliquid documents them, for
every door (native and Hyperliquid, HTTP and WebSocket), so one client cannot flood the
sequencer.

Invariants:

- Time is the node's clock (``NodeSettings.clock``, milliseconds), never the engine's; the
  limiter is outside the engine and nothing it decides is journaled.
- Per IP: a bucket of ``ip_weight_per_minute`` weight that refills continuously at that rate
  (so a client may burst the whole minute's budget, then goes at the refill rate). A request
  whose weight the bucket cannot pay is refused whole with ``429`` and the milliseconds after
  which it would pass (``Retry-After`` in whole seconds, rounded up, and ``retryAfterMs`` in
  the body); a refused request costs nothing. Weights: an exchange action or a native
  intents body 1 + floor(batch length / 40) (a native body's batch length is estimated from
  its size, see :func:`native_weight`, so the body is not parsed twice; a ``/v1/sealed``
  body likewise, :func:`sealed_weight`); ``/info`` 2 for
  ``l2Book``, ``allMids``, ``clearinghouseState``, ``orderStatus``,
  ``spotClearinghouseState`` and ``exchangeStatus``, 60 for ``userRole``, 20 for the rest;
  a native read 2. Health, readiness, metrics, the operator's ``/v1/system`` and the oracle
  door (signed by its publishers) are not charged.
- Per address (the account an intent acts for: an agent's intents count for its account):
  every intent is one request, a batch of n is n; a sealed envelope is one request for the
  account its header names, never counted as a cancel (what it holds is sealed). The cap is
  ``address_initial_requests`` plus ``address_requests_per_usdc`` per whole USDC the address
  traded (maker or taker) since the node started; past it, one request per
  ``address_throttle_ms`` still passes. Cancels may go on to min(cap + 100,000, 2 x cap), so
  a throttled market maker can still pull its quotes. A refused batch counts nothing and
  sequences nothing. ``userRateLimit`` reports these very counters.
- Memory is bounded: idle (full) IP buckets are forgotten when more than ``max_tracked``
  are held, and so are the request counts of addresses that never traded (anyone can sign
  for fresh addresses). Traded volume is kept per address that traded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from asyncdex.gateway.fanout import client_address
from asyncdex.messages.commands import Batch, CancelAll, CancelByClientId, CancelOrder, Signed
from asyncdex.messages.events import Event, TradeExecuted
from asyncdex.signing import jsonbody

MINUTE_MS = 60_000
USDC = 10**6  # micro-USDC in one USDC
BATCH_PER_WEIGHT = 40  # batch items per extra unit of weight (Hyperliquid's rule)
NATIVE_INTENT_BYTES = 400  # a signed native intent's JSON, roughly: 40 of them per weight
SEALED_ENVELOPE_BYTES = 700  # a sealed envelope in a /v1/sealed body (hex), roughly
CANCEL_EXTRA = 100_000
CANCELS = (CancelOrder, CancelByClientId, CancelAll)
INFO_LIGHT = frozenset(
    {
        "l2Book",
        "allMids",
        "clearinghouseState",
        "orderStatus",
        "spotClearinghouseState",
        "exchangeStatus",
    }
)
INFO_HEAVY = frozenset({"userRole"})
# not charged: liveness and monitoring, the operator's door, the oracle publishers' door
EXEMPT_PATHS = frozenset(
    {"/v1/health", "/v1/ready", "/metrics", "/v1/system", "/v1/dev/deposit", "/v1/oracle"}
)
SOCKET_PATHS = frozenset({"/ws", "/v1/ws"})  # capped as sockets; their ops are charged


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The budgets (Hyperliquid's numbers by default)."""

    ip_weight_per_minute: int = 1_200
    address_initial_requests: int = 10_000
    address_requests_per_usdc: int = 1
    address_throttle_ms: int = 10_000
    max_tracked: int = 100_000


DEFAULT_RATE_LIMITS = RateLimits()


class RateLimited(Exception):
    """A request over a budget: nothing of it was done."""

    def __init__(self, scope: str, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.scope = scope  # "ip" or "address"
        self.retry_after_ms = max(1, retry_after_ms)

    @property
    def retry_after_seconds(self) -> int:
        return -(-self.retry_after_ms // 1000)

    def to_json(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "code": "rate_limited",
            "scope": self.scope,
            "retryAfterMs": self.retry_after_ms,
        }

    def response(self) -> web.Response:
        return web.json_response(
            self.to_json(),
            status=429,
            headers={"Retry-After": str(self.retry_after_seconds)},
        )


def info_weight(request: Any) -> int:
    kind = request.get("type") if isinstance(request, dict) else None
    if kind in INFO_LIGHT:
        return 2
    if kind in INFO_HEAVY:
        return 60
    return 20


def action_weight(body: Any) -> int:
    """1 + floor(batch length / 40) for an exchange action (orders, cancels, modifies)."""
    action = body.get("action") if isinstance(body, dict) else None
    batch = 1
    if isinstance(action, dict):
        for key in ("orders", "cancels", "modifies"):
            items = action.get(key)
            if isinstance(items, list):
                batch = len(items)
                break
    return 1 + batch // BATCH_PER_WEIGHT


def native_weight(body_bytes: int | None) -> int:
    """A native intents body: 1 + floor(batch length / 40), the batch length estimated from
    the body's size (a chunked body without a length: 1; the intake bounds its size)."""
    return 1 + (body_bytes or 0) // (NATIVE_INTENT_BYTES * BATCH_PER_WEIGHT)


def sealed_weight(body_bytes: int | None) -> int:
    """A ``/v1/sealed`` body: 1 + floor(envelopes / 40), estimated from the body's size."""
    return 1 + (body_bytes or 0) // (SEALED_ENVELOPE_BYTES * BATCH_PER_WEIGHT)


def sealed_address_requests(accounts: Iterable[bytes]) -> dict[bytes, tuple[int, bool]]:
    """What sealed envelopes count per address: one request each for the account its
    header names, never as cancels (a cancel cannot be told apart while sealed)."""
    out: dict[bytes, tuple[int, bool]] = {}
    for account in accounts:
        out[account] = (out.get(account, (0, False))[0] + 1, False)
    return out


def address_requests(commands: Iterable[Any]) -> dict[bytes, tuple[int, bool]]:
    """What a list of commands counts per address: account -> (requests, all cancels). A
    signed intent is one request for the account it acts for, a batch of n is n; commands
    that are not a trader's signed intent count nothing."""
    out: dict[bytes, tuple[int, bool]] = {}
    for command in commands:
        if type(command) is not Signed:
            continue
        inner = command.command
        account = getattr(inner, "account", None)
        if not isinstance(account, bytes):
            continue
        if type(inner) is Batch:
            items: tuple[Any, ...] = inner.commands
        else:
            items = (inner,)
        count, cancels = out.get(account, (0, True))
        out[account] = (
            count + max(1, len(items)),
            cancels and all(type(item) in CANCELS for item in items),
        )
    return out


class _Bucket:
    __slots__ = ("level", "updated")

    def __init__(self, level: int, updated: int) -> None:
        self.level = level  # weight x MINUTE_MS
        self.updated = updated


class RateLimiter:
    """The node's budgets. ``clock`` is the node's (milliseconds)."""

    def __init__(self, limits: RateLimits, clock: Callable[[], int]) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self.volume: dict[bytes, int] = {}  # micro-USDC traded since the node started
        self.used: dict[bytes, int] = {}  # requests counted
        self._throttled_at: dict[bytes, int] = {}  # last request let through past the cap

    # -- per IP

    def charge_ip(self, address: str, weight: int) -> None:
        """Take ``weight`` from ``address``'s bucket, or raise :class:`RateLimited`."""
        rate = self.limits.ip_weight_per_minute
        capacity = rate * MINUTE_MS
        cost = min(weight * MINUTE_MS, capacity)  # a request heavier than the budget: a full one
        now = self.clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.limits.max_tracked:
                self._forget_idle(now)
            bucket = self._buckets[address] = _Bucket(capacity, now)
        elapsed = max(0, now - bucket.updated)
        level = min(capacity, bucket.level + elapsed * rate)
        bucket.updated = max(bucket.updated, now)
        if level < cost:
            bucket.level = level
            wait = -(-(cost - level) // rate)
            raise RateLimited(
                "ip",
                f"too many requests from {address}: {rate} weight per minute (this one weighs "
                f"{weight})",
                wait,
            )
        bucket.level = level - cost

    def ip_weight_left(self, address: str) -> int:
        bucket = self._buckets.get(address)
        rate = self.limits.ip_weight_per_minute
        if bucket is None:
            return rate
        elapsed = max(0, self.clock() - bucket.updated)
        return min(rate * MINUTE_MS, bucket.level + elapsed * rate) // MINUTE_MS

    def _forget_idle(self, now: int) -> None:
        rate = self.limits.ip_weight_per_minute
        capacity = rate * MINUTE_MS
        idle = [
            key
            for key, bucket in self._buckets.items()
            if bucket.level + max(0, now - bucket.updated) * rate >= capacity
        ]
        for key in idle:
            del self._buckets[key]

    # -- per address

    def cap(self, account: bytes) -> int:
        limits = self.limits
        traded = self.volume.get(account, 0) // USDC
        return limits.address_initial_requests + traded * limits.address_requests_per_usdc

    def charge_addresses(self, requests: dict[bytes, tuple[int, bool]]) -> None:
        """Count ``requests`` (account -> (how many, all of them cancels)), all or nothing;
        raises :class:`RateLimited` for the first account over its cap."""
        now = self.clock()
        passing: list[bytes] = []
        for account, (count, cancels) in requests.items():
            cap = self.cap(account)
            if cancels:
                cap = min(cap + CANCEL_EXTRA, 2 * cap)
            if self.used.get(account, 0) + count <= cap:
                continue
            last = self._throttled_at.get(account)
            throttle = self.limits.address_throttle_ms
            if last is None or now - last >= throttle:
                passing.append(account)  # the one request per interval a capped address gets
                continue
            raise RateLimited(
                "address",
                f"too many requests for 0x{account.hex()}: {self.used.get(account, 0)} used of "
                f"{cap} (10,000 plus 1 per USDC traded); one request per "
                f"{throttle // 1000} s past the cap",
                throttle - (now - last),
            )
        for account in passing:
            self._throttled_at[account] = now
        used = self.used
        if len(used) + len(requests) > self.limits.max_tracked:
            # bounded: anyone can sign for fresh addresses; those that never traded are
            # forgotten (they start again from nothing, never below their cap)
            for account in [a for a in used if a not in self.volume]:
                del used[account]
                self._throttled_at.pop(account, None)
        for account, (count, _) in requests.items():
            used[account] = used.get(account, 0) + count

    def on_record(self, record: Any, events: list[Event]) -> None:
        """A node listener: traded volume raises both sides' caps."""
        volume = self.volume
        for event in events:
            if type(event) is TradeExecuted:
                notional = event.price * event.size
                maker: bytes = event.maker
                taker: bytes = event.taker
                volume[maker] = volume.get(maker, 0) + notional
                if taker != maker:
                    volume[taker] = volume.get(taker, 0) + notional

    def user_rate_limit(self, account: bytes) -> tuple[int, int, int]:
        """(cumulative volume in micro-USDC, requests used, request cap)."""
        return self.volume.get(account, 0), self.used.get(account, 0), self.cap(account)

    # -- the HTTP doors

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        weight = await self._weight_of(request)
        if weight:
            try:
                self.charge_ip(client_address(request), weight)
            except RateLimited as limited:
                return limited.response()
        return await handler(request)

    async def _weight_of(self, request: web.Request) -> int:
        path = request.path
        if path in EXEMPT_PATHS or path in SOCKET_PATHS:
            return 0
        if request.method == "POST" and path in ("/info", "/exchange"):
            # aiohttp keeps the body read here for the handler; one over the app's limit
            # raises its 413 from here (the handler could not read it again)
            raw = await request.read()
            try:
                body = jsonbody.loads(raw)
            except (ValueError, RecursionError):
                return 20 if path == "/info" else 1  # the handler answers the bad body
            return info_weight(body) if path == "/info" else action_weight(body)
        if request.method == "POST" and path == "/v1/intents":
            return native_weight(request.content_length)
        if request.method == "POST" and path == "/v1/sealed":
            return sealed_weight(request.content_length)
        return 2
