"""msgpack with integers of any size: the one binary packing of journaled and hashed data.

Invariants:
- Integers that fit msgpack's native range (-2^63 .. 2^64-1) are packed natively, in their
  shortest form; larger ones (128-bit client order ids, for instance) as ext type 1 holding
  the minimal big-endian two's-complement bytes. So every integer has exactly one encoding,
  and ``unpack`` refuses any other (a small integer in ext form, or a padded one).
- Everything else is plain msgpack (bin for bytes, arrays for lists and tuples).
"""

from __future__ import annotations

from typing import Any

import msgpack

EXT_BIG_INT = 1
_NATIVE_MIN = -(1 << 63)
_NATIVE_MAX = (1 << 64) - 1


class PackingError(ValueError):
    """Bytes that are not the canonical packing of a value."""


def _default(value: Any) -> Any:
    if type(value) is int or isinstance(value, int):
        size = (value.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIG_INT, int(value).to_bytes(size, "big", signed=True))
    raise TypeError(f"cannot pack {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != EXT_BIG_INT:
        raise PackingError(f"unknown ext type {code}")
    value = int.from_bytes(data, "big", signed=True)
    if _NATIVE_MIN <= value <= _NATIVE_MAX or len(data) != (value.bit_length() + 8) // 8:
        raise PackingError("integer not in its canonical packing")
    return value


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, default=_default)
    return packed


def unpack(data: bytes, **options: Any) -> Any:
    """Unpack canonical bytes; ``options`` go to ``msgpack.unpackb`` (e.g. ``use_list``)."""
    return msgpack.unpackb(data, ext_hook=_ext_hook, **options)


def new_packer() -> msgpack.Packer:
    """A reusable Packer with the same rules as ``pack`` (cheaper in loops)."""
    return msgpack.Packer(default=_default)
