"""Stateless intake: a request body in, verified ``Submission``s for the sequencer out.

Invariants:

- All or nothing: a request is refused as a whole if any of its intents is bad, and a refused
  request yields no ``Submission`` at all. Bad input never reaches the sequencer, so it never
  takes a seq, never enters the journal and never costs the engine anything.
- Every refusal is an :class:`IntakeError` subclass with a stable machine-readable ``code``,
  an HTTP ``status``, a human message, and where known the ``index`` of the culprit in the
  batch and its ``field`` (camelCase, as on the wire).
- Whatever passes can be journaled: each command is test-encoded as a journal record, so a
  value the wire allows but the record could not hold would be refused here as
  ``unsupported_intent`` rather than fail inside the sequencer (128-bit client ids fit: the
  record packing carries big integers).
- Limits are checked before the work they bound: body size before parsing, intent count
  before any signature recovery.
- Stateless: no clock, no account state, no nonce memory. What needs state (the signer may
  act for the account, nonce freshness, expiry, margin) is the engine's, applied when the
  sequenced record executes, and shows as a deterministic rejection event there.
- A signature made under another domain (another chain id or settlement contract) is *not*
  detectable here: EIP-712 recovery over our domain's digest yields a well-formed but
  different address. That intent is sequenced and the engine rejects it with
  ``UNKNOWN_AGENT`` (the recovered signer is neither the account nor one of its agents).
  The same holds for any field tampered after signing.
- The intent id in a receipt is the EIP-712 digest the trader signed, so a client can
  compute it before sending.

Accepted bodies (``content_type`` picks the decoder):

- ``application/json`` (the default): one signed intent object ``{"kind": ..., ...,
  "signature": "0x..."}`` or ``{"intents": [<signed intent object>, ...]}``. Duplicate keys,
  ``NaN``/``Infinity`` and non-UTF-8 bytes are refused.
- ``application/msgpack`` (or ``application/x-msgpack``): one binary signed intent as
  :func:`~asyncdex.signing.intents.encode_signed_intent` writes it, or a msgpack array of
  such encodings, each a ``bin`` item.

Cost: parsing is cheap (~20 us per intent); public-key recovery (~60 us) dominates. The
work is split so the expensive half can move to worker processes unchanged:
:func:`decode_body` parses (cheap, in the event loop) and :func:`verify_batch` recovers and
maps; both are plain functions of picklable values, and :class:`IntakeError`\\ s pickle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import msgpack

from asyncdex.messages.commands import Command
from asyncdex.sequencer.records import encode_record
from asyncdex.sequencer.sequencer import Submission
from asyncdex.signing import eip712, jsonbody
from asyncdex.signing import intents as wire
from asyncdex.signing.eip712 import Domain, SignatureError, recover_address
from asyncdex.signing.mapping import UnsupportedIntent, envelope

DEFAULT_MAX_BODY_BYTES = 128 * 1024
"""The largest JSON intent is under 1 KiB, so this fits the default batch with room to spare."""
DEFAULT_MAX_INTENTS = 100

JSON_CONTENT_TYPES = frozenset({"application/json", ""})
MSGPACK_CONTENT_TYPES = frozenset({"application/msgpack", "application/x-msgpack"})


class IntakeLimits(NamedTuple):
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_intents: int = DEFAULT_MAX_INTENTS


DEFAULT_LIMITS = IntakeLimits()


# ---------------------------------------------------------------------------------------------
# Errors


class IntakeError(ValueError):
    """A request refused at the edge. Subclasses fix ``code`` and ``status``."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.index = index
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments are not in ``args``; without this the error could not cross
        # a process boundary (verification in a process pool).
        return (_rebuild_error, (type(self), self.message, self.index, self.field))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.index is not None:
            out["index"] = self.index
        if self.field is not None:
            out["field"] = self.field
        return out


def _rebuild_error(
    cls: type[IntakeError], message: str, index: int | None, field: str | None
) -> IntakeError:
    return cls(message, index=index, field=field)


class UnsupportedMediaType(IntakeError):
    code = "unsupported_media_type"
    status = 415


class BodyTooLarge(IntakeError):
    code = "body_too_large"
    status = 413


class MalformedBody(IntakeError):
    """Not JSON / not msgpack / not UTF-8 / not the expected top-level shape."""

    code = "malformed_body"


class TooManyIntents(IntakeError):
    code = "too_many_intents"


class EmptyBatch(IntakeError):
    code = "empty_batch"


class UnknownKind(IntakeError):
    code = "unknown_kind"


class UnknownField(IntakeError):
    code = "unknown_field"


class MissingField(IntakeError):
    code = "missing_field"


class InvalidField(IntakeError):
    """A field of the right name whose value is mistyped, out of range or meaningless."""

    code = "invalid_field"


class BadSignature(IntakeError):
    """The signature is malformed or non-canonical; ``code`` names which rule it broke."""

    code = "bad_signature"


class SignatureLength(BadSignature):
    code = "signature_length"


class InvalidRecoveryId(BadSignature):
    code = "invalid_recovery_id"


class SignatureOutOfRange(BadSignature):
    code = "signature_out_of_range"


class MalleableSignature(BadSignature):
    code = "malleable_signature"


class UnrecoverableSignature(BadSignature):
    code = "unrecoverable_signature"


class SignerNotAccount(BadSignature):
    code = "signer_not_account"


class Unsupported(IntakeError):
    """A well-formed, well-signed intent the venue cannot carry out as asked."""

    code = "unsupported_intent"


_SIGNATURE_ERRORS: tuple[tuple[type[SignatureError], type[BadSignature]], ...] = (
    # SignerNotAccount first: it is a subclass of SignatureError too.
    (wire.SignerNotAccount, SignerNotAccount),
    (eip712.SignatureLengthError, SignatureLength),
    (eip712.InvalidRecoveryId, InvalidRecoveryId),
    (eip712.SignatureOutOfRange, SignatureOutOfRange),
    (eip712.MalleableSignature, MalleableSignature),
    (eip712.UnrecoverableSignature, UnrecoverableSignature),
)


def _signature_error(exc: SignatureError, index: int) -> BadSignature:
    for source, target in _SIGNATURE_ERRORS:
        if isinstance(exc, source):
            return target(f"intent {index}: {exc}", index=index, field="signature")
    return BadSignature(f"intent {index}: {exc}", index=index, field="signature")


# ---------------------------------------------------------------------------------------------
# Decoding (cheap; runs in the event loop)


class ParsedIntent(NamedTuple):
    """An intent and its signature, well formed but not yet verified."""

    intent: wire.Intent
    signature: bytes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# JSON key sets per kind name, to tell unknown and missing fields apart with their own codes
# before the strict parser runs (it would refuse the same input, with a generic error).
_JSON_KEYS: Mapping[str, frozenset[str]] = {
    cls.__name__: frozenset({"kind", "signature", *(_camel(f) for f in cls._fields)})
    for cls in wire.INTENT_KINDS.values()
}
_BATCH_KEY = "intents"


def decode_body(
    body: bytes, content_type: str = "application/json", limits: IntakeLimits = DEFAULT_LIMITS
) -> list[ParsedIntent]:
    """Parse a request body into well-formed (unverified) intents, or raise IntakeError."""
    if len(body) > limits.max_body_bytes:
        raise BodyTooLarge(f"body of {len(body)} bytes exceeds {limits.max_body_bytes}")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in JSON_CONTENT_TYPES:
        return _decode_json_body(body, limits)
    if media in MSGPACK_CONTENT_TYPES:
        return _decode_msgpack_body(body, limits)
    raise UnsupportedMediaType(
        f"content type {media!r} not accepted: use application/json or application/msgpack"
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _decode_json_body(body: bytes, limits: IntakeLimits) -> list[ParsedIntent]:
    try:
        text = body.decode("utf-8")
        document = jsonbody.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except UnicodeDecodeError:
        raise MalformedBody("body is not valid UTF-8") from None
    except RecursionError:
        raise MalformedBody("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, duplicates, constants, over-long integers
        raise MalformedBody(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedBody(
            'expected a signed intent object or {"intents": [...]}, got ' + type(document).__name__
        )
    if "kind" in document:
        items: list[Any] = [document]
    elif _BATCH_KEY in document:
        extra = sorted(key for key in document if key != _BATCH_KEY)
        if extra:
            raise UnknownField(f"unknown top-level field(s): {', '.join(extra)}", field=extra[0])
        batch = document[_BATCH_KEY]
        if not isinstance(batch, list):
            raise MalformedBody('"intents" must be a list')
        items = batch
    else:
        raise MalformedBody('expected a signed intent object (with "kind") or {"intents": [...]}')
    _check_count(len(items), limits)
    return [_parse_json_intent(index, item) for index, item in enumerate(items)]


def _parse_json_intent(index: int, obj: Any) -> ParsedIntent:
    if not isinstance(obj, dict):
        raise MalformedBody(
            f"intent {index}: expected a JSON object, got {type(obj).__name__}", index=index
        )
    kind = obj.get("kind")
    if type(kind) is not str:
        raise MissingField(f"intent {index}: missing or non-string kind", index=index, field="kind")
    keys = _JSON_KEYS.get(kind)
    if keys is None:
        raise UnknownKind(
            f"intent {index}: unknown intent kind {kind!r}", index=index, field="kind"
        )
    unknown = sorted(key for key in obj if key not in keys)
    if unknown:
        raise UnknownField(
            f"intent {index}: {kind} has no field(s) {', '.join(unknown)}",
            index=index,
            field=unknown[0],
        )
    missing = sorted(key for key in keys if key not in obj)
    if missing:
        raise MissingField(
            f"intent {index}: {kind} is missing field(s) {', '.join(missing)}",
            index=index,
            field=missing[0],
        )
    try:
        intent, signature = wire.parse_signed_intent_json(obj)
    except wire.MalformedIntent as exc:
        if exc.field == "signature" and _is_hex_of_wrong_length(obj["signature"]):
            raise SignatureLength(
                f"intent {index}: signature must be {wire.SIGNATURE_BYTES} bytes (r‖s‖v)",
                index=index,
                field="signature",
            ) from None
        raise InvalidField(f"intent {index}: {exc}", index=index, field=_json_field(exc)) from None
    return ParsedIntent(intent, signature)


_HEX_STRING = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


def _is_hex_of_wrong_length(value: Any) -> bool:
    """Well-formed hex that is not 65 bytes: a signature of the wrong length, not a typo."""
    return isinstance(value, str) and _HEX_STRING.fullmatch(value) is not None


def _signature_length_of(payload: bytes) -> int | None:
    """The length of a binary intent's trailing signature if it is a byte string."""
    try:
        items = msgpack.unpackb(payload, raw=False, max_map_len=0, max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if type(items) is list and items and type(items[-1]) is bytes:
        return len(items[-1])
    return None


def _json_field(exc: wire.MalformedIntent) -> str | None:
    # The JSON parser names fields in camelCase already; validate_intent uses snake_case.
    return None if exc.field is None else _camel(exc.field)


def _decode_msgpack_body(body: bytes, limits: IntakeLimits) -> list[ParsedIntent]:
    try:
        outer = msgpack.unpackb(
            body,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=wire.MAX_ENCODED_INTENT_BYTES,
            max_str_len=wire.MAX_ENCODED_INTENT_BYTES,
            max_array_len=max(limits.max_intents + 1, 64),
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedBody(f"invalid msgpack: {exc}") from None
    if type(outer) is not list or not outer:
        raise MalformedBody("expected a msgpack array: one signed intent, or a batch of them")
    if type(outer[0]) is int:
        payloads = [body]  # one intent: [kind, field..., signature]
    elif all(type(item) is bytes for item in outer):
        payloads = outer
    else:
        raise MalformedBody("a msgpack batch is an array of bin items, one encoded intent each")
    _check_count(len(payloads), limits)
    parsed = []
    for index, payload in enumerate(payloads):
        try:
            intent, signature = wire.decode_intent_payload(payload)
        except wire.MalformedIntent as exc:
            field = _json_field(exc)
            if field == "signature" and _signature_length_of(payload) is not None:
                raise SignatureLength(
                    f"intent {index}: signature must be {wire.SIGNATURE_BYTES} bytes (r‖s‖v)",
                    index=index,
                    field="signature",
                ) from None
            error = InvalidField if field is not None else MalformedBody
            raise error(f"intent {index}: {exc}", index=index, field=field) from None
        parsed.append(ParsedIntent(intent, signature))
    return parsed


def _check_count(count: int, limits: IntakeLimits) -> None:
    if count == 0:
        raise EmptyBatch("no intents in the request")
    if count > limits.max_intents:
        raise TooManyIntents(f"{count} intents in one request, at most {limits.max_intents}")


# ---------------------------------------------------------------------------------------------
# Verification and mapping (the expensive half; pure, so it can run in a worker process)


def verify_batch(domain: Domain, parsed: Sequence[ParsedIntent]) -> list[Submission]:
    """Recover each signer under ``domain`` and map each intent to its ``Signed`` envelope."""
    submissions = []
    for index, (intent, signature) in enumerate(parsed):
        digest = wire.intent_digest(domain, intent)
        try:
            signer = recover_address(digest, signature)
            if type(intent) is wire.ApproveAgent and signer != intent.account:
                # The rule is verify_intent's; let it raise its own error for this rare kind
                # rather than restate it here.
                wire.verify_intent(domain, intent, signature)
        except SignatureError as exc:
            raise _signature_error(exc, index) from None
        try:
            command = envelope(wire.SignedIntent(intent, signature, signer))
        except UnsupportedIntent as exc:
            raise Unsupported(f"intent {index}: {exc}", index=index) from None
        _check_journalable(index, intent, command, signature)
        submissions.append(Submission(command, signature, digest))
    return submissions


def _check_journalable(index: int, intent: wire.Intent, command: Command, signature: bytes) -> None:
    """Refuse a command the journal record cannot encode, before it can take a seq.

    Checked generically, by encoding, so that any gap between what the wire carries and what
    the journal record holds is refused here instead of failing in the sequencer.
    """
    try:
        encode_record(0, command, signature)
    except (OverflowError, TypeError, ValueError) as exc:
        raise Unsupported(f"intent {index}: cannot be journaled: {exc}", index=index) from None


class Intake:
    """The intake of one venue: its signing domain and limits."""

    def __init__(self, domain: Domain, limits: IntakeLimits = DEFAULT_LIMITS) -> None:
        self.domain = domain
        self.limits = limits

    def decode(self, body: bytes, content_type: str = "application/json") -> list[ParsedIntent]:
        return decode_body(body, content_type, self.limits)

    def verify(self, parsed: Sequence[ParsedIntent]) -> list[Submission]:
        return verify_batch(self.domain, parsed)

    def process(self, body: bytes, content_type: str = "application/json") -> list[Submission]:
        """Decode and verify in the calling thread; the node may split the two instead."""
        return self.verify(self.decode(body, content_type))
