"""The client's exceptions: one small tree, each with the fields a caller acts on.

Invariants:

- A refusal at the node's edge (4xx) is :class:`IntakeRefused` with the node's ``code``,
  ``status``, ``field`` and batch ``index``: nothing of that request was sequenced, so
  nothing needs undoing, and sending the same bytes again gives the same refusal.
- :class:`NodeUnavailable` means no receipt came back after every safe retry. When
  ``maybe_sequenced`` is true the request may still have been sequenced (the connection
  broke after it was sent, or the node answered 503 ``outcome_unknown`` because its journal
  failed while writing it): resubmit ``signed`` unchanged (``client.submit(error.signed)``)
  once the node is back, which answers the first receipts of what was journaled and
  sequences the rest, or ask ``client.resolve(error.signed)`` — never sign the same action
  again with a new nonce, which could execute it twice. When it is false, nothing of the
  request was sequenced.
- A business rejection (margin, nonce, an agent withdrawing) is not an exception: it is an
  outcome, read from :meth:`IntentStatus.rejection
  <asyncdex.client.status.IntentStatus.rejection>` once the intent executed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asyncdex.client.keys import InvalidKey
from asyncdex.client.markets import AmountError, UnknownMarket

if TYPE_CHECKING:
    from asyncdex.client.status import IntentStatus, Receipt
    from asyncdex.signing.intents import SignedIntent

__all__ = [
    "AgentNotAllowed",
    "AmountError",
    "ClientError",
    "DomainMismatch",
    "IntakeRefused",
    "InvalidKey",
    "NodeError",
    "NodeUnavailable",
    "StatusTimeout",
    "UnknownIntent",
    "UnknownMarket",
]


class ClientError(Exception):
    """Base of the errors the client raises about the node's answers."""


class IntakeRefused(ClientError):
    """The node refused the request at intake (HTTP 4xx); nothing of it was sequenced."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        field: str | None = None,
        index: int | None = None,
        body: Any = None,
    ) -> None:
        # The node's message already names the intent index; the field is added when known
        # because a caller fixing its input looks for it first.
        suffix = f" [field {field}]" if field else ""
        super().__init__(f"{code} ({status}): {message}{suffix}")
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.index = index
        self.body = body


class NodeUnavailable(ClientError):
    """No receipt after every safe retry: connection failures, timeouts, 502/503/504."""

    def __init__(
        self, message: str, *, signed: Sequence[SignedIntent] = (), maybe_sequenced: bool
    ) -> None:
        super().__init__(message)
        self.signed = tuple(signed)
        self.maybe_sequenced = maybe_sequenced


class NodeError(ClientError):
    """The node failed (500) or answered something that is not the documented shape."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class DomainMismatch(ClientError):
    """The node's intent ids differ from the digests the client signed.

    The node computes the intent id under its own signing domain, so a different id means
    the client's ``chain_id`` or ``contract`` is wrong. The intents *were* sequenced, and
    the engine rejects each one (``UNKNOWN_AGENT``: the signature recovers to a stranger
    under the node's domain); fix the client's domain and sign again.
    """

    def __init__(self, message: str, *, receipts: Sequence[Receipt]) -> None:
        super().__init__(message)
        self.receipts = tuple(receipts)


class UnknownIntent(ClientError):
    """The node knows no intent with this id (or no record with this seq)."""


class StatusTimeout(ClientError, TimeoutError):
    """``wait_for`` gave up before the intent reached the status asked for."""

    def __init__(self, message: str, *, last: IntentStatus | None) -> None:
        super().__init__(message)
        self.last = last


class AgentNotAllowed(ClientError):
    """An agent wallet was asked to sign what only the account key may (``ApproveAgent``)."""
