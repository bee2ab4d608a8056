"""``POST /exchange``: Hyperliquid's signed actions mapped onto the node's engine commands.

Invariants: to be written with the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node


class ExchangeApi:
    def __init__(self, node: Node, mainnet: bool = False) -> None:
        self.node = node
        self.mainnet = mainnet

    def install(self, app: web.Application) -> None:
        pass

    async def handle(self, body: Any) -> Any:
        """The answer to one parsed exchange request (also used by ``/ws`` ``post``)."""
        raise NotImplementedError
