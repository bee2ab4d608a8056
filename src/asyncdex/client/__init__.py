"""asyncdex.client: the Python SDK (see ``docs/client.md``).

``Client.connect(url, wallet)`` (or ``await AsyncClient.connect(...)``) asks the node for its
signing domain and markets. ``AsyncClient`` / ``Client`` sign intents with a ``Wallet`` (or
an ``AgentWallet`` trading for a master account), send them to a node and follow them by
intent id to execution, commitment and finality. On a committee venue, ``seal=True`` (or
``submit_sealed``) encrypts them to the committee first (``docs/fairness.md``).
"""

from asyncdex.client.builder import IntentBuilder, Trigger
from asyncdex.client.client import AsyncClient, Client, RetryPolicy
from asyncdex.client.errors import (
    AgentNotAllowed,
    AmountError,
    ClientError,
    DomainMismatch,
    IntakeRefused,
    InvalidKey,
    NodeError,
    NodeUnavailable,
    StatusTimeout,
    UnknownIntent,
    UnknownMarket,
)
from asyncdex.client.keys import AgentWallet, Wallet
from asyncdex.client.markets import MarketInfo, Markets
from asyncdex.client.nonces import NonceSource
from asyncdex.client.sealing import SealingInfo, seal_signed_intent
from asyncdex.client.status import Fill, IntentStatus, Receipt, Rejection
from asyncdex.client.streams import BookMirror, StaleBook, Stream, StreamClosed, StreamError
from asyncdex.client.venue import Venue

__all__ = [
    "AgentNotAllowed",
    "AgentWallet",
    "AmountError",
    "AsyncClient",
    "BookMirror",
    "Client",
    "ClientError",
    "DomainMismatch",
    "Fill",
    "IntakeRefused",
    "IntentBuilder",
    "IntentStatus",
    "InvalidKey",
    "MarketInfo",
    "Markets",
    "NodeError",
    "NodeUnavailable",
    "NonceSource",
    "Receipt",
    "Rejection",
    "RetryPolicy",
    "SealingInfo",
    "StaleBook",
    "StatusTimeout",
    "Stream",
    "StreamClosed",
    "StreamError",
    "Trigger",
    "UnknownIntent",
    "UnknownMarket",
    "Venue",
    "Wallet",
    "seal_signed_intent",
]
