"""Receipts and the life of an intent as the client reads it from the node.

Invariants:

- A :class:`Receipt` is the node's word that the intent is durably sequenced: its
  ``intent_id`` is the EIP-712 digest the client signed (``0x`` + 64 hex digits), its
  ``seq`` the journal position, its ``timestamp`` the sequencer's time (ms).
- Statuses only move forward, in the order of :data:`STATUSES`: ``sequenced`` (durable,
  not yet applied) → ``ordered`` (on a sequencer committee only: in a block with a commit
  certificate, ``ordered`` says which; no seq until executed) → ``revealed`` (a sealed
  intent only, asked for by its sealed id: opened, its intent id known, not yet applied; it
  lasts until the journal write that executes it) → ``executed`` (the engine
  applied it: filled, resting, cancelled or rejected, the events say which) →
  ``committed`` (in a batch posted on-chain, ``tx_hash`` set) → ``finalized`` (that batch
  is final on the base chain). Asking to wait for a status is satisfied by it or any later
  one. On a committee member a receipt's ``seq`` is 0: the seq is known once executed.
- A rejection is an outcome, not an error: :attr:`IntentStatus.rejection` names the
  numbered reason (``asyncdex.messages.reasons.Reject``).
- Events are kept as the node sent them (JSON objects). The readers here accept the event
  name under ``type``/``event``/``kind`` and fields in camelCase or snake_case, so they do
  not break on the spelling of a field the client does not read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from asyncdex.messages.reasons import CancelReason, Reject

SEQUENCED: Final = "sequenced"
ORDERED: Final = "ordered"
REVEALED: Final = "revealed"
EXECUTED: Final = "executed"
COMMITTED: Final = "committed"
FINALIZED: Final = "finalized"
STATUSES: Final = (SEQUENCED, ORDERED, REVEALED, EXECUTED, COMMITTED, FINALIZED)
_RANK: Final = {name: rank for rank, name in enumerate(STATUSES)}
_CANCEL_REASONS: Final = frozenset(int(reason) for reason in CancelReason)


def status_rank(status: str) -> int:
    """Position of ``status`` in the life of an intent; ``ValueError`` for an unknown one."""
    try:
        return _RANK[status]
    except KeyError:
        raise ValueError(f"unknown status {status!r}: one of {', '.join(STATUSES)}") from None


class Receipt(NamedTuple):
    """The node's acknowledgement: the intent is durable at ``seq``.

    For a sealed intent ``sealed_id`` is the envelope's id (what the node knows until the
    epoch key is released) and ``intent_id`` the id the intent will have once revealed,
    computed by the client that signed it.
    """

    intent_id: str
    seq: int
    timestamp: int
    sealed_id: str | None = None


class Rejection(NamedTuple):
    """Why the engine rejected an intent: the numbered reason and its name."""

    reason: int
    name: str

    @property
    def reject(self) -> Reject | None:
        """The reason as the engine's enum (``None`` for a number this client predates)."""
        try:
            return Reject(self.reason)
        except ValueError:
            return None


class Fill(NamedTuple):
    """One trade the intent took part in, in engine units."""

    market: int
    price: int
    size: int
    taker_is_buy: bool
    maker_order: int
    taker_order: int
    maker: str
    taker: str
    maker_fee: int
    taker_fee: int


def _normal(name: str) -> str:
    """``OrderAccepted``, ``orderAccepted``, ``order_accepted`` -> ``orderaccepted``."""
    return name.replace("_", "").lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def event_type(event: Mapping[str, Any]) -> str:
    """The event's name as the node gave it (``""`` when it names none)."""
    for key in ("type", "event", "kind"):
        value = event.get(key)
        if isinstance(value, str):
            return value
    return ""


def event_field(event: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A field of an event by its snake_case name, whichever spelling the node used."""
    for key in (name, _camel(name)):
        if key in event:
            return event[key]
    return default


class IntentStatus(NamedTuple):
    """What the node knows of one intent (``GET /v1/intents/{id}`` or ``/v1/seq/{seq}``)."""

    intent_id: str | None
    seq: int | None  # None until executed on a committee member (its seq comes with execution)
    status: str
    events: tuple[Mapping[str, Any], ...]
    batch: int | None
    tx_hash: str | None
    events_known: bool = True
    """False when the node no longer holds this record's events (older than its index)."""
    ordered: Mapping[str, Any] | None = None
    """On a committee member: the block (height, view, hash) and the certificate that
    committed it (view, block hash, signers)."""
    sealed_id: str | None = None
    """For a sealed intent: the envelope's id (the intent id is known once revealed)."""
    sealed_rejection: str | None = None
    """For a sealed intent refused unopened or unexecutable (``epoch_closed``,
    ``epoch_not_open``, ``decryption_failed``, ...): final, it is never executed."""

    @classmethod
    def from_json(cls, document: Any) -> IntentStatus:
        """Parse the node's answer; ``ValueError`` when it is not the documented shape."""
        if not isinstance(document, dict):
            raise ValueError(f"expected a JSON object, got {type(document).__name__}")
        seq = document.get("seq")
        status = document.get("status")
        if not isinstance(status, str) or not (
            type(seq) is int or (seq is None and status_rank(status) < status_rank(EXECUTED))
        ):
            raise ValueError("a status needs an integer seq (once executed) and a string status")
        status_rank(status)
        ordered = document.get("ordered")
        events = document.get("events")
        events_known = events is not None
        events = [] if events is None else events
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("events must be a list of objects")
        intent_id = document.get("intentId", document.get("intent_id"))
        batch = document.get("batch")
        tx_hash = document.get("txHash", document.get("tx_hash"))
        sealed_id = document.get("sealedId")
        sealed_rejection = document.get("sealedRejection")
        return cls(
            intent_id if isinstance(intent_id, str) else None,
            seq,
            status,
            tuple(events),
            batch if type(batch) is int else None,
            tx_hash if isinstance(tx_hash, str) else None,
            events_known,
            ordered if isinstance(ordered, dict) else None,
            sealed_id if isinstance(sealed_id, str) else None,
            sealed_rejection if isinstance(sealed_rejection, str) else None,
        )

    def reached(self, status: str) -> bool:
        """Has the intent reached ``status`` (or a later one)?"""
        return status_rank(self.status) >= status_rank(status)

    def events_of(self, name: str) -> list[Mapping[str, Any]]:
        """The events named ``name`` (``"TradeExecuted"``; any case or underscores)."""
        wanted = _normal(name)
        return [event for event in self.events if _normal(event_type(event)) == wanted]

    @property
    def rejection(self) -> Rejection | None:
        """The engine's rejection of this intent, if it was rejected (``None`` also while not
        executed, or when ``events_known`` is false)."""
        rejected = self.events_of("Rejected")
        if not rejected:
            return None
        rejection = _reason_of(event_field(rejected[0], "reason"))
        name = event_field(rejected[0], "reason_name")
        if rejection.reject is None and isinstance(name, str):
            # A reason newer than this client: the node's name for it is the best there is.
            return Rejection(rejection.reason, name)
        return rejection

    @property
    def order_id(self) -> int | None:
        """The id the engine gave the order this intent placed (``OrderAccepted``)."""
        accepted = self.events_of("OrderAccepted")
        if not accepted:
            return None
        value = event_field(accepted[0], "order_id")
        return value if type(value) is int else None

    @property
    def fills(self) -> list[Fill]:
        """The trades this intent caused, in the order the engine made them."""
        fills = []
        for event in self.events_of("TradeExecuted"):
            values = [event_field(event, name) for name in Fill._fields]
            fills.append(Fill(*values))
        return fills

    @property
    def cancelled(self) -> list[tuple[int, CancelReason | int]]:
        """Orders this intent took off the book: ``(order_id, reason)``."""
        out: list[tuple[int, CancelReason | int]] = []
        for event in self.events_of("OrderCancelled"):
            reason = event_field(event, "reason")
            known = type(reason) is int and reason in _CANCEL_REASONS
            out.append((event_field(event, "order_id"), CancelReason(reason) if known else reason))
        return out


def _reason_of(value: Any) -> Rejection:
    if type(value) is int:
        try:
            return Rejection(value, Reject(value).name)
        except ValueError:
            return Rejection(value, str(value))
    if isinstance(value, str):
        try:
            return Rejection(int(Reject[value]), value)
        except KeyError:
            return Rejection(-1, value)
    if isinstance(value, dict):  # {"code": 300, "name": "INSUFFICIENT_MARGIN"}
        code = value.get("code", value.get("reason"))
        name = value.get("name")
        if type(code) is int:
            return Rejection(code, name if isinstance(name, str) else _reason_of(code).name)
    return Rejection(-1, repr(value))


def _receipt_objects(document: Any, expected: int) -> list[dict[str, Any]]:
    """The ``expected`` receipt objects of a ``{"receipts": [...]}`` answer, checked."""
    if not isinstance(document, dict) or not isinstance(document.get("receipts"), list):
        raise ValueError('expected {"receipts": [...]}')
    items: Sequence[Any] = document["receipts"]
    if len(items) != expected:
        raise ValueError(f"expected {expected} receipts, got {len(items)}")
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("a receipt is a JSON object")
    return list(items)


def parse_receipts(document: Any, expected: int) -> list[Receipt]:
    """The receipts of a ``POST /v1/intents`` answer; ``ValueError`` if not that shape."""
    receipts = []
    for item in _receipt_objects(document, expected):
        intent_id, seq, timestamp = item.get("intentId"), item.get("seq"), item.get("timestamp")
        if not isinstance(intent_id, str) or type(seq) is not int or type(timestamp) is not int:
            raise ValueError(f"malformed receipt {item!r}")
        receipts.append(Receipt(intent_id.lower(), seq, timestamp))
    return receipts


def parse_sealed_receipts(document: Any, expected: int) -> list[tuple[str, int, int]]:
    """``(sealedId, seq, timestamp)`` of a ``POST /v1/sealed`` answer; ``ValueError`` if not
    that shape."""
    receipts = []
    for item in _receipt_objects(document, expected):
        sealed_id, seq, timestamp = item.get("sealedId"), item.get("seq"), item.get("timestamp")
        if not isinstance(sealed_id, str) or type(seq) is not int or type(timestamp) is not int:
            raise ValueError(f"malformed receipt {item!r}")
        receipts.append((sealed_id.lower(), seq, timestamp))
    return receipts
