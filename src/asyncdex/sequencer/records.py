"""Journal records: one sequenced command with its timestamp and the trader's signature.

Invariants:
- A record's payload is ``pack([timestamp_ms, command_items, signature])`` (msgpack with
  big integers as one canonical ext type, ``asyncdex.types.packing``); the journal
  frames it with its seq and a checksum. The command is the engine command exactly as it
  was applied (a ``Signed`` envelope for a trader's intent, with the signer recovered before
  sequencing); ``signature`` is the 65-byte EIP-712 signature, or empty for system commands
  (oracle prices, L1 deposits, time ticks).
- Replaying the records in seq order through a fresh engine reproduces the venue's state:
  the record holds everything ``Engine.apply`` needs, and nothing is read from elsewhere.
- ``encode_record`` gives exactly the bytes of ``packing.pack([timestamp,
  command_items(command), signature])``: one canonical encoding, whichever path wrote it.
- Two decoders, one result. ``decode_record`` checks every field's type and count and is
  the one for bytes of unknown origin (``journal verify``, a follower's network input).
  ``decode_trusted_record`` skips the per-field checks and is only for payloads that passed
  the journal's checksum in a journal this venue wrote with ``encode_record``: the checksum
  says the bytes are the encoder's, and the encoder only writes well-typed commands. On the
  same bytes both return equal records; a malformed payload may still raise ``CodecError``
  from the trusted path but is not guaranteed to.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import msgpack

from asyncdex.messages.codec import COMMAND_TAG, CodecError, command_from_items, command_items
from asyncdex.messages.commands import COMMAND_TYPES, Batch, Command, Signed
from asyncdex.types.packing import EXT_BIG_INT, new_packer, unpack

__all__ = ["Record", "decode_record", "decode_trusted_record", "encode_record"]


class Record(NamedTuple):
    timestamp: int
    command: Command
    signature: bytes


_SIGNED_TAG = COMMAND_TAG[Signed]
_BATCH_TAG = COMMAND_TAG[Batch]
_TAGS = COMMAND_TAG
_TYPES = COMMAND_TYPES
_unpackb = msgpack.unpackb
# NamedTuple.__new__ is Python code that re-binds every field by name; the tuple constructor
# builds the identical object from an already ordered tuple at C speed.
_new_tuple = tuple.__new__


# ``packing.pack`` builds a new Packer per call, which costs about as much as the packing
# itself. A Packer keeps a buffer between calls, so each thread gets its own.
_packers = threading.local()


def _thread_packer() -> Any:
    pack = _packers.pack = new_packer().pack
    return pack


def _trusted_ext_hook(code: int, data: bytes) -> Any:
    # ``packing.unpack`` also proves the big integer canonical; a checksum-verified record
    # was packed canonically by ``encode_record``, and the keyword call of ``unpack`` would
    # cost a third of the decoding.
    if code != EXT_BIG_INT:
        raise CodecError(f"unknown ext type {code}")
    return int.from_bytes(data, "big", signed=True)


def encode_record(timestamp: int, command: Command, signature: bytes = b"") -> bytes:
    # Inlines ``codec.command_items`` (a sequencer hot path, once per intent); the tests
    # compare both encodings byte for byte.
    try:
        pack = _packers.pack
    except AttributeError:
        pack = _thread_packer()
    if type(command) is Signed:
        signer, nonce, expires_after, inner = command
        # a Batch is rare: not worth inlining
        batch = type(inner) is Batch
        inner_items = command_items(inner) if batch else [_TAGS[type(inner)], *inner]
        items: list[Any] = [_SIGNED_TAG, signer, nonce, expires_after, inner_items]
    elif type(command) is Batch:
        items = command_items(command)
    else:
        items = [_TAGS[type(command)], *command]
    result: bytes = pack([timestamp, items, signature])
    return result


def decode_record(payload: bytes) -> Record:
    try:
        timestamp, items, signature = unpack(payload)
    except Exception as exc:
        raise CodecError(f"not a journal record: {exc}") from exc
    if type(timestamp) is not int or type(signature) is not bytes:
        raise CodecError("a record is [timestamp int, command, signature bytes]")
    return Record(timestamp, command_from_items(items), signature)


def decode_trusted_record(payload: bytes) -> Record:
    """``decode_record`` without per-field checks, for checksum-verified journal payloads.

    Arrays come back as tuples (``use_list=False``), which are cheaper to build and already
    the shape a command's constructor wants.
    """
    try:
        timestamp, items, signature = _unpackb(payload, use_list=False, ext_hook=_trusted_ext_hook)
        tag = items[0]
        command: Any
        if tag == _SIGNED_TAG:
            inner = items[4]
            if inner[0] == _BATCH_TAG:
                inner_command: Any = _trusted_batch(inner)
            else:
                inner_command = _new_tuple(_TYPES[inner[0]], inner[1:])
            command = _new_tuple(Signed, (items[1], items[2], items[3], inner_command))
        elif tag == _BATCH_TAG:
            command = _trusted_batch(items)
        else:
            command = _new_tuple(_TYPES[tag], items[1:])
    except Exception as exc:
        raise CodecError(f"not a journal record: {exc}") from exc
    return _new_tuple(Record, (timestamp, command, signature))


def _trusted_batch(items: Any) -> Batch:
    commands = tuple(_new_tuple(_TYPES[inner[0]], inner[1:]) for inner in items[2])
    batch: Batch = _new_tuple(Batch, (items[1], commands))
    return batch
