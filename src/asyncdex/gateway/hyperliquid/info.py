"""``POST /info``: Hyperliquid's read-only requests answered from the node's state.

Invariants:
- Read only: nothing here changes the engine state or sequences anything. Every answer is
  built from ``node.state`` (the state after ``node.applied_seq``) and ``node.market_data``
  on the event loop, so one answer never mixes two seqs.
- Hyperliquid's shapes: decimals are strings without trailing zeros (``"60000.5"``,
  ``"0.001"``); ids, millisecond times, ``szDecimals`` and leverages are JSON numbers;
  addresses are lowercase ``0x`` hex. Times are the engine clock's (the sequenced
  timestamps of the records), never this process's wall clock.
- Asset id = market id = position in ``meta.universe``; the coin is the market's symbol.
  Markets are never reordered. Spot has no markets: ``spotMeta`` is empty.
- A request this module cannot read (not JSON, no or unknown ``type``, a bad field) is
  answered 422 with a plain-text reason, as Hyperliquid does for a body it cannot
  deserialize; nothing else happens. An unknown user is not an error: it reads as an
  empty account, as on Hyperliquid.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asyncdex.engine.state import MarketState
from asyncdex.types.market import MarketSpec
from asyncdex.types.numeric import format_scaled

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node

MAX_BODY_BYTES = 64 * 1024


class InfoRequestError(ValueError):
    """A request that cannot be answered: answered 422 with ``str(error)`` as a text body."""


# ---------------------------------------------------------------------------------------------
# Formatting: engine units -> Hyperliquid decimal strings


def format_px(spec: MarketSpec, price: int) -> str:
    """A price in 10^-(6-szDecimals) USDC."""
    return format_scaled(price, spec.price_decimals)


def format_sz(spec: MarketSpec, size: int) -> str:
    """A size in 10^-szDecimals of the base asset."""
    return format_scaled(size, spec.sz_decimals)


def format_ppb(value: int) -> str:
    """A rate in parts per billion as a decimal fraction (``12500`` -> ``"0.0000125"``)."""
    return format_scaled(value, 9)


def format_address(address: bytes) -> str:
    return "0x" + address.hex()


def format_cloid(client_id: int) -> str | None:
    """A client id as Hyperliquid's 16-byte hex cloid; None when the order has none."""
    return "0x" + client_id.to_bytes(16, "big").hex() if client_id else None


def side_code(is_buy: bool) -> str:
    """Hyperliquid's side letters: ``"B"`` bid (buy), ``"A"`` ask (sell)."""
    return "B" if is_buy else "A"


# ---------------------------------------------------------------------------------------------
# Request fields


def parse_user(request: dict[str, Any], key: str = "user") -> bytes:
    value = request.get(key)
    if not isinstance(value, str):
        raise InfoRequestError(f"missing field `{key}`: a 0x address")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) != 40:
        raise InfoRequestError(f"invalid `{key}`: expected 20 bytes of hex, got {value!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InfoRequestError(f"invalid `{key}`: not hex: {value!r}") from None


def parse_ms(request: dict[str, Any], key: str, default: int | None = None) -> int:
    value = request.get(key, default)
    if value is None and default is not None:
        return default
    if value is None:
        raise InfoRequestError(f"missing field `{key}`: a time in ms")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InfoRequestError(f"invalid `{key}`: expected a non-negative integer of ms")
    return value


# ---------------------------------------------------------------------------------------------
# The API


Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class InfoApi:
    """Answers ``{"type": ...}`` requests; see the module docstring."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._handlers: dict[str, Handler] = {
            "meta": self._meta,
            "spotMeta": self._spot_meta,
            "perpDexs": self._perp_dexs,
        }

    def install(self, app: web.Application) -> None:
        app.router.add_post("/info", self.handle_http)

    async def handle_http(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return web.Response(status=413, text="request body too large")
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return web.Response(
                status=422, text=f"Failed to deserialize the JSON body into the target type: {exc}"
            )
        try:
            answer = await self.handle(document)
        except InfoRequestError as error:
            return web.Response(
                status=422,
                text=f"Failed to deserialize the JSON body into the target type: {error}",
            )
        return web.json_response(answer)

    async def handle(self, request: Any) -> Any:
        """The answer to one parsed info request (also used by ``/ws`` ``post``).

        Raises :class:`InfoRequestError` for a request it cannot answer."""
        if not isinstance(request, dict):
            raise InfoRequestError("expected a JSON object with a `type`")
        kind = request.get("type")
        if not isinstance(kind, str):
            raise InfoRequestError("missing field `type`")
        handler = self._handlers.get(kind)
        if handler is None:
            raise InfoRequestError(f"unknown variant `{kind}`")
        return await handler(request)

    # -- helpers

    @property
    def _markets(self) -> list[MarketState]:
        return self.node.state.markets

    # -- metadata

    def meta_json(self) -> dict[str, Any]:
        universe = []
        tables: dict[int, dict[str, Any]] = {}
        for market in self._markets:
            spec = market.spec
            # one margin table per maximum leverage, as Hyperliquid numbers its simple
            # single-tier tables by their leverage
            universe.append(
                {
                    "name": spec.symbol,
                    "szDecimals": spec.sz_decimals,
                    "maxLeverage": spec.max_leverage,
                    "marginTableId": spec.max_leverage,
                }
            )
            tables[spec.max_leverage] = {
                "description": "",
                "marginTiers": [{"lowerBound": "0.0", "maxLeverage": spec.max_leverage}],
            }
        return {
            "universe": universe,
            "marginTables": [[table_id, table] for table_id, table in sorted(tables.items())],
        }

    async def _meta(self, request: dict[str, Any]) -> Any:
        dex = request.get("dex", "")
        if dex not in ("", None):
            raise InfoRequestError(f"unknown perp dex {dex!r}: only the default dex exists")
        return self.meta_json()

    async def _spot_meta(self, request: dict[str, Any]) -> Any:
        return {"universe": [], "tokens": []}

    async def _perp_dexs(self, request: dict[str, Any]) -> Any:
        return [None]
