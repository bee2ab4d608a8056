"""The one canonical binary encoding of commands and events.

Invariants:
- ``encode(message) = pack([tag, *fields])`` (``asyncdex.types.packing``: msgpack, with
  integers beyond 64 bits as one canonical ext type): each int in its shortest form and bytes
  as bin, so equal messages give equal bytes on every machine; this is what the journal
  stores and what batch hashes cover.
- Tags are positions in ``COMMAND_TYPES`` / ``EVENT_TYPES`` and never change once released;
  new kinds are appended.
- ``decode`` refuses unknown tags and wrong field counts or types with ``CodecError``: a
  journal record either decodes to exactly one message or is reported as bad.
"""

from __future__ import annotations

from typing import Any, get_type_hints

from asyncdex.messages.commands import COMMAND_TYPES, Batch, Command, Signed
from asyncdex.messages.events import EVENT_TYPES, Event
from asyncdex.types.packing import pack, unpack

COMMAND_TAG: dict[type, int] = {cls: tag for tag, cls in enumerate(COMMAND_TYPES)}
_SIGNED_TAG = COMMAND_TAG[Signed]
_BATCH_TAG = COMMAND_TAG[Batch]
EVENT_TAG: dict[type, int] = {cls: tag for tag, cls in enumerate(EVENT_TYPES)}

_FIELD_TYPES: dict[type, tuple[type, ...]] = {}


class CodecError(ValueError):
    """Bytes that are not a canonical encoding of a known message."""


def _field_types(cls: Any) -> tuple[type, ...]:
    kinds = _FIELD_TYPES.get(cls)
    if kinds is None:
        kinds = tuple(get_type_hints(cls).values())
        _FIELD_TYPES[cls] = kinds
    return kinds


def command_items(command: Command) -> list[Any]:
    """The list ``encode_command`` packs (for containers that nest a command)."""
    return _command_items(command)


def command_from_items(items: Any) -> Command:
    """Inverse of ``command_items``, with the same checks as ``decode_command``."""
    message: Command = _from_items(items, COMMAND_TYPES, nested=False)
    return message


def _command_items(command: Command) -> list[Any]:
    if isinstance(command, Signed):
        signer, nonce, expires_after, inner = command
        return [_SIGNED_TAG, signer, nonce, expires_after, _command_items(inner)]
    if isinstance(command, Batch):
        return [_BATCH_TAG, command.account, [_command_items(inner) for inner in command.commands]]
    return [COMMAND_TAG[type(command)], *command]


def encode_command(command: Command) -> bytes:
    """The canonical bytes of a command; a ``Signed`` envelope nests its command as a list."""
    return pack(_command_items(command))


def encode_event(event: Event) -> bytes:
    return pack([EVENT_TAG[type(event)], *event])


def _decode(data: bytes, types: tuple[type, ...]) -> Any:
    try:
        items = unpack(data)
    except Exception as exc:
        raise CodecError(f"not msgpack: {exc}") from exc
    return _from_items(items, types, nested=False)


def _from_items(items: Any, types: tuple[type, ...], nested: bool) -> Any:
    if not isinstance(items, list) or not items or type(items[0]) is not int:
        raise CodecError("a message is a list starting with its integer tag")
    tag = items[0]
    if not 0 <= tag < len(types):
        raise CodecError(f"unknown message tag {tag}")
    cls = types[tag]
    fields = items[1:]
    if cls is Signed and types is COMMAND_TYPES:
        if nested or len(fields) != 4:
            raise CodecError("a Signed envelope has 4 fields and is never nested")
        signer, nonce, expires_after, inner = fields
        if type(signer) is not bytes or type(nonce) is not int or type(expires_after) is not int:
            raise CodecError("Signed envelope fields must be bytes, int, int")
        return Signed(signer, nonce, expires_after, _from_items(inner, types, nested=True))
    if cls is Batch and types is COMMAND_TYPES:
        if len(fields) != 2:
            raise CodecError("a Batch has 2 fields")
        account, items = fields
        if type(account) is not bytes or not isinstance(items, list):
            raise CodecError("Batch fields must be bytes, list")
        commands = []
        for item in items:
            if isinstance(item, list) and item and item[0] in (_SIGNED_TAG, _BATCH_TAG):
                raise CodecError("a Batch holds no envelope and no Batch")
            commands.append(_from_items(item, types, nested=True))
        return Batch(account, tuple(commands))
    kinds = _field_types(cls)
    if len(fields) != len(kinds):
        raise CodecError(f"{cls.__name__} has {len(kinds)} fields, got {len(fields)}")
    for name, value, kind in zip(cls._fields, fields, kinds, strict=True):  # type: ignore[attr-defined]
        if type(value) is not kind:
            raise CodecError(f"{cls.__name__}.{name} must be {kind.__name__}")
    return cls(*fields)


def decode_command(data: bytes) -> Command:
    message: Command = _decode(data, COMMAND_TYPES)
    return message


def decode_event(data: bytes) -> Event:
    message: Event = _decode(data, EVENT_TYPES)
    return message
