"""A simulated oracle: a random walk with jumps per market, signed as each of several
publishers and posted to a node's ``POST /v1/oracle``.

Invariants:

- Each tick steps every market's walk once, then signs one update per (publisher key, market):
  the walk's price with that publisher's own small noise (:meth:`RandomWalk.quote`), so the
  node's index (the median of fresh publishers) tracks the walk while no single publisher
  sets it. The walks are seeded: the same seed gives the same price path.
- A publisher's timestamps strictly increase per market (``max(clock, last + 1)``), as the
  node requires; a tick the node refuses or cannot be reached for is counted and the next
  tick signs afresh (never resends), so the publisher never fights the node's replay check.
- It runs outside the engine and the node: it reads the wall clock and a seeded RNG, and
  talks to the node over HTTP only. What it needs to sign (the domain, market ids and
  ticks, current index prices) comes from ``GET /v1/oracle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from asyncdex.oracle import OraclePrice, sign_price, signed_price_to_json
from asyncdex.oracle.random_walk import RandomWalk
from asyncdex.signing.eip712 import Domain, LocalSigner, parse_address

_log = logging.getLogger(__name__)

DEFAULT_INTERVAL_MS = 500


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class FeedMarket:
    """A market as the node's ``GET /v1/oracle`` describes it (prices in engine units)."""

    market: int
    symbol: str
    sz_decimals: int
    tick: int
    index_price: int  # 0: no fresh price yet


@dataclass(frozen=True, slots=True)
class FeedInfo:
    domain: Domain
    publishers: tuple[bytes, ...]
    markets: tuple[FeedMarket, ...]


class PublisherError(RuntimeError):
    """The node cannot be used as an oracle target (unreachable, or no oracle door)."""


async def fetch_feed_info(session: aiohttp.ClientSession, node_url: str) -> FeedInfo:
    """Read ``GET /v1/oracle``: the signing domain, the publishers and the markets."""
    url = node_url.rstrip("/") + "/v1/oracle"
    try:
        async with session.get(url) as response:
            if response.status != 200:
                raise PublisherError(f"{url}: HTTP {response.status} (no oracle feed?)")
            document: dict[str, Any] = await response.json()
    except aiohttp.ClientError as exc:
        raise PublisherError(f"{url}: {exc}") from None
    domain = document["domain"]
    return FeedInfo(
        Domain(
            domain["name"],
            domain["version"],
            domain["chainId"],
            parse_address(domain["verifyingContract"]),
        ),
        tuple(parse_address(p) for p in document["publishers"]),
        tuple(
            FeedMarket(m["market"], m["symbol"], m["szDecimals"], m["tick"], m["indexPrice"])
            for m in document["markets"]
        ),
    )


@dataclass
class PublisherStats:
    ticks: int = 0
    accepted: int = 0  # updates the node acknowledged (durable)
    refused: int = 0  # updates in requests the node refused
    unreachable: int = 0  # ticks the node could not be reached for
    last_error: str = ""
    prices: dict[int, int] = field(default_factory=dict)  # market -> the walk's last price


class OraclePublisher:
    """Signs and posts one tick per ``interval_ms`` for every key and market.

    ``starts`` gives each market's first price in engine units. ``walk_options`` go to every
    :class:`RandomWalk` (volatility, jump probability and size, in ppm).
    """

    def __init__(
        self,
        node_url: str,
        keys: Sequence[bytes],
        domain: Domain,
        starts: dict[int, tuple[int, int]],  # market -> (start price, tick)
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        seed: int = 1,
        clock: Callable[[], int] = wall_clock_ms,
        session: aiohttp.ClientSession | None = None,
        **walk_options: int,
    ) -> None:
        if not keys:
            raise ValueError("an oracle publisher needs at least one key")
        if interval_ms < 1:
            raise ValueError("the interval must be positive")
        self.url = node_url.rstrip("/") + "/v1/oracle"
        self.signers = [LocalSigner(key) for key in keys]
        self.domain = domain
        self.walks = {
            market: RandomWalk(start, tick, seed * 1_000 + market, **walk_options)
            for market, (start, tick) in sorted(starts.items())
        }
        self.interval_ms = interval_ms
        self.clock = clock
        self.stats = PublisherStats()
        self._session = session
        self._owns_session = session is None
        self._last_timestamp: dict[tuple[int, int], int] = {}  # (signer, market) -> ms

    @property
    def addresses(self) -> list[bytes]:
        return [signer.address for signer in self.signers]

    def jump(self, market: int, ppm: int) -> int:
        """Move a market's walk by ``ppm`` now (a scripted shock); the new price."""
        return self.walks[market].move_by(ppm)

    def sign_tick(self) -> list[dict[str, Any]]:
        """Step every walk and sign each publisher's view of it: the updates of one tick."""
        updates = []
        now = self.clock()
        for market, walk in self.walks.items():
            self.stats.prices[market] = walk.step()
            for index, signer in enumerate(self.signers):
                key = (index, market)
                timestamp = max(now, self._last_timestamp.get(key, 0) + 1)
                self._last_timestamp[key] = timestamp
                price = OraclePrice(market, walk.quote(index), timestamp)
                updates.append(signed_price_to_json(sign_price(signer, self.domain, price)))
        return updates

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            self._owns_session = True
        return self._session

    async def publish_once(self) -> bool:
        """One tick: sign and post it; True when the node acknowledged every update."""
        updates = self.sign_tick()
        stats = self.stats
        stats.ticks += 1
        try:
            async with self._http().post(self.url, json={"updates": updates}) as response:
                status = response.status
                body = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.unreachable += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            return False
        if status == 200:
            stats.accepted += len(updates)
            return True
        stats.refused += len(updates)
        stats.last_error = f"HTTP {status}: {body[:300]}"
        _log.warning("oracle tick refused: %s", stats.last_error)
        return False

    async def run(self, stop: asyncio.Event, ticks: int | None = None) -> PublisherStats:
        """Publish every ``interval_ms`` until ``stop`` is set (or ``ticks`` were sent)."""
        interval = self.interval_ms / 1000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set() and (ticks is None or self.stats.ticks < ticks):
            await self.publish_once()
            # a late tick (a slow node) moves the schedule instead of bunching the next ones
            next_at = max(next_at + interval, loop.time())
            delay = next_at - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return self.stats

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None
