"""Journal records: one sequenced command with its timestamp and the trader's signature.

Invariants:
- A record's payload is ``msgpack([timestamp_ms, command_items, signature])``; the journal
  frames it with its seq and a checksum. The command is the engine command exactly as it
  was applied (a ``Signed`` envelope for a trader's intent, with the signer recovered before
  sequencing); ``signature`` is the 65-byte EIP-712 signature, or empty for system commands
  (oracle prices, L1 deposits, time ticks).
- Replaying the records in seq order through a fresh engine reproduces the venue's state:
  the record holds everything ``Engine.apply`` needs, and nothing is read from elsewhere.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

from asyncdex.messages.codec import CodecError, command_from_items, command_items
from asyncdex.messages.commands import Command


class Record(NamedTuple):
    timestamp: int
    command: Command
    signature: bytes


def encode_record(timestamp: int, command: Command, signature: bytes = b"") -> bytes:
    return msgpack.packb([timestamp, command_items(command), signature])


def decode_record(payload: bytes) -> Record:
    try:
        timestamp, items, signature = msgpack.unpackb(payload)
    except Exception as exc:
        raise CodecError(f"not a journal record: {exc}") from exc
    if type(timestamp) is not int or type(signature) is not bytes:
        raise CodecError("a record is [timestamp int, command, signature bytes]")
    return Record(timestamp, command_from_items(items), signature)
