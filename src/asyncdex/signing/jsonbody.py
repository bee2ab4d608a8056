"""JSON parsing for every door: one loader that bounds the nesting depth before parsing.

Invariants:
- ``loads`` returns exactly what ``json.loads`` returns, except for a document whose arrays
  and objects nest deeper than ``MAX_JSON_DEPTH``: that raises ``JsonTooDeep``, a
  ``ValueError``, before the parser sees it (so neither the parser nor any handler walking
  the result can exhaust the interpreter's recursion limit). Every door already answers a
  ``ValueError`` from parsing with its usual "invalid JSON" error, so a deep document earns
  that answer: never a 500, never a dropped socket.
- A ``RecursionError`` from the parser itself (it cannot happen once the depth is checked,
  but the check must not be the only guard) is reported as ``JsonTooDeep`` too.
- Cost: two byte counts for a document with at most ``MAX_JSON_DEPTH`` brackets; otherwise
  a split removing strings (whose brackets do not nest), then byte replacements over the
  brackets that remain (each takes away the innermost level) when they are few, one running
  sum when they are many. Linear in the body, which the doors bound (128 KiB): a few
  milliseconds at worst, a fraction of a millisecond for real requests.

The bound, 64, is ten times the deepest request any API here takes (a Hyperliquid order
action with a trigger nests five deep) and far below the recursion limit.
"""

from __future__ import annotations

import json
from array import array
from itertools import accumulate
from typing import Any, Final

MAX_JSON_DEPTH: Final = 64

# objects and arrays nest alike: both kinds become "[" and "]", everything else goes
_AS_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")
_AS_STEPS: Final = bytes.maketrans(b"[]", b"\x01\xff")  # +1 / -1 as signed bytes
_PASSES_UP_TO: Final = 4096  # brackets; beyond, one running sum is cheaper than the passes


class JsonTooDeep(ValueError):
    """A JSON document nested deeper than the doors accept."""

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")


def exceeds_depth(document: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the arrays and objects of ``document`` nest deeper than ``limit``.

    Exact for valid JSON; for text that is not JSON it may answer either way (the parser
    refuses such text anyway)."""
    data = document if isinstance(document, bytes) else document.encode("utf-8", "surrogatepass")
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b'"' in data:
        # strings out (their brackets do not nest): escapes first, so every quote left
        # opens or closes a string; a backslash run pairs up from its start, as JSON reads it
        if b"\\" in data:
            data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        data = b"".join(data.split(b'"')[::2])
    brackets = data.translate(_AS_SQUARE, _NOT_BRACKET)
    if not brackets:
        return False
    if b"[" * (limit + 1) in brackets:
        return True  # a run of openers deeper than the limit
    if len(brackets) > _PASSES_UP_TO:
        # the running depth, once over, in C iterators
        return max(accumulate(array("b", brackets.translate(_AS_STEPS)))) > limit
    # In balanced brackets the deepest level is always an adjacent pair, and ``replace``
    # takes away only the pairs adjacent in its input: each pass lowers the depth by one
    # (a real request is settled in a few passes over a few hundred bytes).
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if not shorter or len(shorter) == len(brackets):
            return False  # settled, or unbalanced: not JSON, and the parser says so
        brackets = shorter
    return True


def loads(document: str | bytes, **options: Any) -> Any:
    """``json.loads(document, **options)`` with the nesting depth bounded (see above)."""
    if exceeds_depth(document):
        raise JsonTooDeep()
    try:
        return json.loads(document, **options)
    except RecursionError:
        raise JsonTooDeep() from None
