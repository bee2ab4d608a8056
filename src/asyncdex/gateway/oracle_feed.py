"""Signed oracle prices from the venue's configured publishers (``POST /v1/oracle``).

Invariants:

- A price reaches the engine only as a sequenced ``PublishOraclePrice`` whose publisher is the
  address recovered from an EIP-712 ``OraclePrice`` signature in the node's signing domain
  (:mod:`asyncdex.oracle`), and only if that address is one of the engine config's
  ``oracle_publishers``. The engine keeps each publisher's latest price per market and takes
  the median of the fresh ones as the index.
- A request is accepted or refused as a whole, and a refused one sequences nothing: every
  update is decoded, verified and checked before any is submitted. Refusals are specific:
  400 ``malformed_body`` / ``invalid_update`` (with ``index`` and ``field``) /
  ``unknown_market`` / ``invalid_signature`` / ``stale_update`` / ``future_update``, 403
  ``unknown_publisher``, 409 ``replayed_update``, 413 ``body_too_large``, 503 while the node
  shuts down.
- Timestamps only move forward: per (publisher, market) an update's timestamp must be above
  the last one accepted, so a signed update can be sequenced at most once (a replay, or an
  older update arriving late, is refused). It must also lie within the market's
  ``oracle_staleness_ms`` before the node's clock (an old price must not look fresh: the
  engine dates a price by its sequenced time) and at most ``max_future_ms`` after it.
- A timestamp is spent once its update passes the checks, even if sequencing then fails
  (shutdown, journal failure): the publisher's next tick carries a later one. After a restart
  the last timestamps start from the sequenced time of each publisher's last accepted price
  in the recovered state, which bounds a replay across restarts to updates a publisher
  signed ahead of the node's clock.

Endpoints:

- ``POST /v1/oracle``: ``{"updates": [{"market", "price", "timestamp", "signature"}, ...]}``
  (1 to ``MAX_UPDATES``); 200 ``{"receipts": [{"seq", "timestamp"}, ...]}`` in order, each
  record durable.
- ``GET /v1/oracle``: what a publisher needs to sign (the domain, the struct's type string)
  and what the feed holds: the publishers, and per market the index price, each publisher's
  last accepted timestamp and the engine's latest price from each (with its sequenced time),
  all read from one engine state, in engine units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from asyncdex.gateway.node import SubmitRefused, read_body
from asyncdex.messages.commands import PublishOraclePrice
from asyncdex.oracle import ORACLE_PRICE, OraclePrice, oracle_price_digest
from asyncdex.signing import jsonbody
from asyncdex.signing.eip712 import EIP712EncodingError, SignatureError, recover_address
from asyncdex.signing.intake import BodyTooLarge

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node

MAX_UPDATES = 256
MAX_BODY_BYTES = 64 * 1024
DEFAULT_MAX_FUTURE_MS = 2_000
UPDATE_FIELDS = frozenset({"market", "price", "timestamp", "signature"})


class OracleRefused(Exception):
    """An update the feed refuses; nothing of its request is sequenced."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.index = index
        self.field = field

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": str(self), "code": self.code}
        if self.index is not None:
            body["index"] = self.index
        if self.field is not None:
            body["field"] = self.field
        return web.json_response(body, status=self.status)


def _malformed(message: str) -> OracleRefused:
    return OracleRefused(400, "malformed_body", message)


def _uint_field(update: dict[str, Any], name: str, index: int) -> int:
    value = update[name]
    if type(value) is not int or value < 0:
        raise OracleRefused(
            400,
            "invalid_update",
            f"update {index}: {name} must be a non-negative integer",
            index,
            name,
        )
    return value


def _signature_field(update: dict[str, Any], index: int) -> bytes:
    text = update["signature"]
    if type(text) is not str or len(text) != 132 or not text.startswith("0x"):
        raise OracleRefused(
            400,
            "invalid_update",
            f"update {index}: signature must be 0x and 130 hex digits (r‖s‖v)",
            index,
            "signature",
        )
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise OracleRefused(
            400,
            "invalid_update",
            f"update {index}: signature holds a non-hex character",
            index,
            "signature",
        ) from None


def parse_updates(document: Any) -> list[tuple[OraclePrice, bytes]]:
    """``{"updates": [...]}`` -> [(price, signature)]; refuses any other shape."""
    if not isinstance(document, dict) or set(document) != {"updates"}:
        raise _malformed('expected {"updates": [...]}')
    items = document["updates"]
    if not isinstance(items, list) or not items:
        raise _malformed('"updates" must be a non-empty list')
    if len(items) > MAX_UPDATES:
        raise _malformed(f"at most {MAX_UPDATES} updates per request")
    updates = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != UPDATE_FIELDS:
            raise OracleRefused(
                400,
                "invalid_update",
                f"update {index}: takes exactly {', '.join(sorted(UPDATE_FIELDS))}",
                index,
            )
        price = OraclePrice(
            _uint_field(item, "market", index),
            _uint_field(item, "price", index),
            _uint_field(item, "timestamp", index),
        )
        updates.append((price, _signature_field(item, index)))
    return updates


class OracleFeed:
    """The oracle door of one node: verifies publishers' signed prices and sequences them."""

    max_future_ms = DEFAULT_MAX_FUTURE_MS

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        self.publishers = frozenset(settings.engine_config.oracle_publishers)
        self.markets = settings.engine_config.markets
        # (publisher, market) -> the last timestamp accepted; seeded from the recovered state
        self.last_timestamp: dict[tuple[bytes, int], int] = {}
        for market in node.state.markets:
            for publisher, (_, at) in market.oracle.items():
                self.last_timestamp[(publisher, market.spec.market_id)] = at

    def install(self, app: web.Application) -> None:
        app.router.add_post("/v1/oracle", self.handle_post)
        app.router.add_get("/v1/oracle", self.handle_get)

    async def close(self) -> None:
        pass

    # ------------------------------------------------------------------ checks

    def check_updates(
        self, updates: list[tuple[OraclePrice, bytes]], now: int
    ) -> list[PublishOraclePrice]:
        """Verify and check every update against the node's clock ``now``; the commands to
        sequence, or :class:`OracleRefused` for the first update that fails."""
        domain = self.node.settings.domain
        seen: dict[tuple[bytes, int], int] = {}
        commands = []
        for index, (price, signature) in enumerate(updates):
            if price.market >= len(self.markets):
                raise OracleRefused(
                    400, "unknown_market", f"update {index}: no market {price.market}", index,
                    "market",
                )  # fmt: skip
            spec = self.markets[price.market]
            if not 0 < price.price <= spec.max_price:
                raise OracleRefused(
                    400, "invalid_update",
                    f"update {index}: price must be in 1..{spec.max_price} engine units",
                    index, "price",
                )  # fmt: skip
            try:
                digest = oracle_price_digest(domain, price)
            except EIP712EncodingError as exc:  # a timestamp beyond uint64, say
                raise OracleRefused(
                    400, "invalid_update", f"update {index}: {exc}", index, exc.field
                ) from None
            try:
                publisher = recover_address(digest, signature)
            except SignatureError as exc:
                raise OracleRefused(
                    400, "invalid_signature", f"update {index}: {exc}", index, "signature"
                ) from None
            if publisher not in self.publishers:
                raise OracleRefused(
                    403, "unknown_publisher",
                    f"update {index}: signed by 0x{publisher.hex()}, not a configured publisher"
                    " (or signed for another venue's domain)",
                    index,
                )  # fmt: skip
            key = (publisher, price.market)
            last = seen.get(key, self.last_timestamp.get(key, -1))
            if price.timestamp <= last:
                raise OracleRefused(
                    409, "replayed_update",
                    f"update {index}: timestamp {price.timestamp} is not after this publisher's"
                    f" last for market {price.market} ({last})",
                    index, "timestamp",
                )  # fmt: skip
            if price.timestamp < now - spec.oracle_staleness_ms:
                raise OracleRefused(
                    400, "stale_update",
                    f"update {index}: timestamp {price.timestamp} is more than "
                    f"{spec.oracle_staleness_ms} ms before the node's clock ({now})",
                    index, "timestamp",
                )  # fmt: skip
            if price.timestamp > now + self.max_future_ms:
                raise OracleRefused(
                    400, "future_update",
                    f"update {index}: timestamp {price.timestamp} is more than "
                    f"{self.max_future_ms} ms after the node's clock ({now})",
                    index, "timestamp",
                )  # fmt: skip
            seen[key] = price.timestamp
            commands.append(PublishOraclePrice(publisher, price.market, price.price))
        # Spent before the await: a concurrent request with the same update is then refused.
        self.last_timestamp.update(seen)
        return commands

    # ------------------------------------------------------------------ HTTP

    async def _read_json(self, request: web.Request) -> Any:
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            raise OracleRefused(
                413, "body_too_large", f"body exceeds {MAX_BODY_BYTES} bytes"
            ) from None
        try:
            return jsonbody.loads(body)
        except (ValueError, RecursionError) as exc:
            raise _malformed(f"invalid JSON: {exc}") from None

    async def handle_post(self, request: web.Request) -> web.Response:
        node = self.node
        if node.draining:
            return web.json_response(
                {"error": "node is shutting down", "code": "shutting_down"}, status=503
            )
        try:
            updates = parse_updates(await self._read_json(request))
            commands = self.check_updates(updates, node.settings.clock())
        except OracleRefused as refusal:
            return refusal.response()
        try:
            receipts = await node.submit_commands(commands)
        except SubmitRefused as refusal:
            return web.json_response(refusal.to_json(), status=refusal.status)
        return web.json_response(
            {"receipts": [{"seq": r.seq, "timestamp": r.timestamp} for r in receipts]}
        )

    async def handle_get(self, request: web.Request) -> web.Response:
        domain = self.node.settings.domain
        markets = []
        for market in self.node.state.markets:
            spec = market.spec
            last = {
                "0x" + publisher.hex(): self.last_timestamp.get((publisher, spec.market_id))
                for publisher in sorted(self.publishers)
            }
            accepted = {
                "0x" + publisher.hex(): {"price": price, "sequencedAt": at}
                for publisher, (price, at) in sorted(market.oracle.items())
            }
            markets.append(
                {
                    "market": spec.market_id,
                    "symbol": spec.symbol,
                    "szDecimals": spec.sz_decimals,
                    "tick": spec.tick,
                    "indexPrice": market.index_price,
                    "engineTime": self.node.state.time,
                    "stalenessMs": spec.oracle_staleness_ms,
                    "lastTimestamps": last,
                    "prices": accepted,
                }
            )
        return web.json_response(
            {
                "domain": {
                    "name": domain.name,
                    "version": domain.version,
                    "chainId": domain.chain_id,
                    "verifyingContract": "0x" + domain.verifying_contract.hex(),
                },
                "type": ORACLE_PRICE.encode_type,
                "publishers": ["0x" + p.hex() for p in sorted(self.publishers)],
                "maxFutureMs": self.max_future_ms,
                "markets": markets,
            }
        )
