"""Signed oracle prices from the venue's configured publishers (``POST /v1/oracle``).

Invariants: to be written with the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node


class OracleFeed:
    """The oracle door of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def install(self, app: web.Application) -> None:
        pass

    async def close(self) -> None:
        pass
