"""Native WebSocket streams (``GET /v1/ws``): book deltas, trades, account events, intent
status, and intent submission over the socket.

Invariants: to be written with the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node


class NativeStreams:
    """The ``/v1/ws`` endpoint of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def install(self, app: web.Application) -> None:
        pass

    async def close(self) -> None:
        pass
