"""``POST /info``: Hyperliquid's read-only requests answered from the node's state.

Invariants: to be written with the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node


class InfoApi:
    def __init__(self, node: Node) -> None:
        self.node = node

    def install(self, app: web.Application) -> None:
        pass

    async def handle(self, request: Any) -> Any:
        """The answer to one parsed info request (also used by ``/ws`` ``post``)."""
        raise NotImplementedError
