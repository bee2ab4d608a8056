"""Intake of sealed intents at a node's edge: ``POST /v1/sealed`` bodies, checked statelessly.

Invariants:

- The body is ``{"sealed": ["0x<envelope hex>", ...]}`` with 1 to ``MAX_SEALED_PER_REQUEST``
  envelopes and no other key; each envelope is decoded strictly and its envelope signature
  recovered, so the node knows every signer before sequencing anything and can rate-limit
  per signer. Any flaw refuses the whole request with :class:`SealedIntakeError`, whose
  ``code`` is machine-readable and ``index`` names the envelope: nothing of it is sequenced.
- The target epoch must be the node's current epoch or the next (a client whose clock is a
  little ahead, or that seals at an epoch's end): an earlier epoch may already have its key
  out, and a later one would wait for long in the node's memory. Whether a block includes it
  in time is decided later, deterministically (:class:`~asyncdex.fairness.reveal.SealedLog`).
- A leader holds an envelope for the next epoch back until it proposes a block of that epoch
  (:func:`sealed_item_ready`, the consensus core's ``item_ready``): in an earlier block it
  would only be refused ``epoch_not_open``. It holds back nothing else: an envelope for a
  past epoch, an unreadable one and every other item are ready, so each reaches a block
  and its verdict (and leaves the pending set) as before.
- A sealed envelope's deadline (:func:`sealed_item_deadline`, the consensus core's
  ``item_deadline``) is the last millisecond of its epoch: a leader whose clock has left the
  epoch while its parent block is still in it stamps its block then, so the envelope counts
  instead of being refused ``epoch_closed``. Other items, and unreadable envelopes, have none.
- Pure: the current epoch and the block time are the caller's arguments. No clock, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncdex.fairness.sealing import (
    MAX_ENVELOPE_BYTES,
    MalformedSealedIntent,
    SealedIntent,
    decode_sealed_intent,
    envelope_signer,
    header_epoch_at,
    sealed_intent_id,
    venue_id,
)
from asyncdex.signing.eip712 import Domain, SignatureError

MAX_SEALED_PER_REQUEST = 64
# The committee item kind of a sealed envelope (``asyncdex.committee.sealed.KIND_SEALED``,
# which this layer cannot import; a test keeps the two equal).
SEALED_ITEM_KIND = 4
MAX_BODY_BYTES = MAX_SEALED_PER_REQUEST * (2 * MAX_ENVELOPE_BYTES + 8) + 64
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})+")


class SealedIntakeError(ValueError):
    """A refused ``POST /v1/sealed``: ``code`` for programs, ``index`` of the envelope."""

    status = 400

    def __init__(
        self, code: str, message: str, *, index: int | None = None, field: str | None = None
    ):
        super().__init__(message if index is None else f"sealed[{index}]: {message}")
        self.code = code
        self.index = index
        self.field = field

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": str(self), "code": self.code}
        if self.index is not None:
            out["index"] = self.index
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class SealedSubmission:
    """One accepted envelope: its bytes (what blocks carry), id, decoded form and signer."""

    data: bytes
    sealed_id: bytes
    envelope: SealedIntent
    signer: bytes


def parse_sealed_body(body: bytes) -> list[bytes]:
    """The envelopes of a ``POST /v1/sealed`` body, as bytes; refuses any other shape."""
    if len(body) > MAX_BODY_BYTES:
        raise SealedIntakeError("too_large", f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SealedIntakeError("malformed_json", f"not JSON: {exc}") from None
    if not isinstance(document, dict) or set(document) != {"sealed"}:
        raise SealedIntakeError("malformed_body", 'expected {"sealed": ["0x...", ...]}')
    items = document["sealed"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_SEALED_PER_REQUEST:
        raise SealedIntakeError(
            "malformed_body", f"sealed: expected a list of 1 to {MAX_SEALED_PER_REQUEST} envelopes"
        )
    envelopes = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not _HEX.fullmatch(item):
            raise SealedIntakeError(
                "malformed_sealed_intent", "expected 0x followed by hex digits", index=index
            )
        envelopes.append(bytes.fromhex(item[2:]))
    return envelopes


def check_sealed_submissions(
    domain: Domain, envelopes: list[bytes], current_epoch: int
) -> list[SealedSubmission]:
    """Decode, authenticate and epoch-check each envelope; all or nothing."""
    venue = venue_id(domain)
    accepted = []
    for index, data in enumerate(envelopes):
        try:
            envelope = decode_sealed_intent(data)
        except MalformedSealedIntent as exc:
            raise SealedIntakeError(
                "malformed_sealed_intent", str(exc), index=index, field=exc.field
            ) from None
        try:
            signer = envelope_signer(venue, envelope)
        except SignatureError as exc:
            raise SealedIntakeError(
                "bad_envelope_signature", str(exc), index=index, field="signature"
            ) from None
        epoch = envelope.header.epoch
        if epoch < current_epoch:
            raise SealedIntakeError(
                "epoch_closed",
                f"sealed for epoch {epoch}; the current epoch is {current_epoch}",
                index=index,
                field="epoch",
            )
        if epoch > current_epoch + 1:
            raise SealedIntakeError(
                "epoch_not_open",
                f"sealed for epoch {epoch}; the node takes {current_epoch} and {current_epoch + 1}",
                index=index,
                field="epoch",
            )
        accepted.append(SealedSubmission(data, sealed_intent_id(data), envelope, signer))
    return accepted


def sealed_item_ready(epoch_ms: int) -> Callable[[bytes, int], bool]:
    """The leader's ``item_ready`` for a venue of ``epoch_ms``-long epochs: False only for a
    sealed item (kind :data:`SEALED_ITEM_KIND`, then the envelope) whose epoch is later than
    the block's, ``floor(timestamp_ms / epoch_ms)``; True for everything else.

    Called for every pending item at every proposal, so it reads the epoch straight from
    the header bytes (:func:`~asyncdex.fairness.sealing.envelope_epoch`) and decodes nothing.
    """
    if type(epoch_ms) is not int or epoch_ms <= 0:
        raise ValueError(f"epoch_ms must be a positive integer, got {epoch_ms!r}")

    def ready(item: bytes, timestamp_ms: int) -> bool:
        if not item or item[0] != SEALED_ITEM_KIND:
            return True
        epoch = header_epoch_at(item, 1)
        return epoch is None or epoch <= timestamp_ms // epoch_ms

    return ready


def sealed_item_deadline(epoch_ms: int) -> Callable[[bytes], int | None]:
    """The leader's ``item_deadline`` for a venue of ``epoch_ms``-long epochs: for a sealed
    item (kind :data:`SEALED_ITEM_KIND`, then the envelope) the last block time at which it
    still counts, the last millisecond of its epoch, ``(epoch + 1) * epoch_ms - 1``; ``None``
    for every other item and for an envelope whose epoch cannot be read.

    Asked once per item as it becomes pending; reads the epoch straight from the header
    bytes, as :func:`sealed_item_ready` does.
    """
    if type(epoch_ms) is not int or epoch_ms <= 0:
        raise ValueError(f"epoch_ms must be a positive integer, got {epoch_ms!r}")

    def deadline(item: bytes) -> int | None:
        if not item or item[0] != SEALED_ITEM_KIND:
            return None
        epoch = header_epoch_at(item, 1)
        return None if epoch is None else (epoch + 1) * epoch_ms - 1

    return deadline
