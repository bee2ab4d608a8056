"""WebSocket ``/ws``: Hyperliquid's subscriptions and ``post`` requests.

Invariants: to be written with the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from asyncdex.gateway.hyperliquid.exchange import ExchangeApi
    from asyncdex.gateway.hyperliquid.info import InfoApi
    from asyncdex.gateway.node import Node


class HyperliquidStreams:
    def __init__(self, node: Node, info: InfoApi, exchange: ExchangeApi) -> None:
        self.node = node
        self.info = info
        self.exchange = exchange

    def install(self, app: web.Application) -> None:
        pass

    async def close(self) -> None:
        pass
