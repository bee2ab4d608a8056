"""The Hyperliquid-compatible API (``POST /info``, ``POST /exchange``, WebSocket ``/ws``) on
the node's own sequencer and engine: no second engine, no second book.

Invariants:
- Every state change goes through :meth:`asyncdex.gateway.node.Node.submit_intents`: the
  same precheck, journal, receipts and settlement as the native API.
- The network flag (mainnet: source ``"a"`` / ``"Mainnet"``; else ``"b"`` / ``"Testnet"``)
  is the venue's configuration, never the client's choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from asyncdex.gateway.hyperliquid.exchange import ExchangeApi
from asyncdex.gateway.hyperliquid.info import InfoApi
from asyncdex.gateway.hyperliquid.ws import HyperliquidStreams

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node


class HyperliquidApi:
    """``/info``, ``/exchange`` and ``/ws`` of one node."""

    def __init__(self, node: Node, mainnet: bool = False) -> None:
        self.node = node
        self.info = InfoApi(node)
        self.exchange = ExchangeApi(node, mainnet=mainnet)
        self.streams = HyperliquidStreams(node, self.info, self.exchange)
        # what Hyperliquid clients must sign for (ccxt: sandbox mode on testnet)
        node.add_venue_info("hyperliquid", {"network": "mainnet" if mainnet else "testnet"})

    def install(self, app: web.Application) -> None:
        self.info.install(app)
        self.exchange.install(app)
        self.streams.install(app)

    async def close(self) -> None:
        await self.streams.close()


def hyperliquid_extension(mainnet: bool = False) -> Callable[[Node], HyperliquidApi]:
    """A node extension factory for the venue's network flag."""

    def factory(node: Node) -> HyperliquidApi:
        return HyperliquidApi(node, mainnet=mainnet)

    return factory
