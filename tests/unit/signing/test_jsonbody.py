"""The shared JSON loader: the nesting bound is exact, strings and escapes never fool it, and
a document too deep for the parser is refused as too deep (a ``ValueError``), never a
``RecursionError``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asyncdex.signing.jsonbody import MAX_JSON_DEPTH, JsonTooDeep, exceeds_depth, loads

# strings full of what could fool a bracket count: brackets, quotes and backslashes
tricky = st.text(alphabet='[]{}"\\ab', max_size=6)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), tricky)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(tricky, inner, max_size=3)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def nest(value: Any, levels: int) -> Any:
    for level in range(levels):
        value = [value] if level % 2 else {'"[': value}
    return value


@settings(max_examples=300)
@given(document=documents, extra=st.integers(0, 70), limit=st.sampled_from((0, 1, 3, 8, 64)))
@example(document='a[{"', extra=0, limit=0)  # brackets in strings only: depth 0
@example(document=["[[[[", {"]]]]": []}], extra=0, limit=2)
@example(document=[[]] * 3_000, extra=0, limit=64)  # many brackets: the running-sum path
@example(document=[[]] * 3_000, extra=70, limit=64)
def test_the_bound_is_exact(document: Any, extra: int, limit: int) -> None:
    document = nest(document, extra)
    text = json.dumps(document)
    assert exceeds_depth(text, limit) == (depth(document) > limit)
    assert exceeds_depth(text.encode(), limit) == (depth(document) > limit)


def test_loads_is_json_loads_up_to_the_bound() -> None:
    at_bound = nest(1, MAX_JSON_DEPTH)
    assert loads(json.dumps(at_bound)) == at_bound
    assert loads(json.dumps(at_bound).encode()) == at_bound
    with pytest.raises(JsonTooDeep, match=f"deeper than {MAX_JSON_DEPTH}"):
        loads(json.dumps(nest(1, MAX_JSON_DEPTH + 1)))
    pairs: list[Any] = []
    assert loads('{"a": 1}', object_pairs_hook=pairs.append) is None
    assert pairs == [[("a", 1)]]


@pytest.mark.parametrize(
    "document",
    [
        "[" * 100_000,  # what broke /info (500) and /ws (1006)
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '["]",' * 50_000,  # strings that would cancel every level in a plain bracket count
        "[" * 5_000 + "}" * 5_000,  # deep and not even JSON: still "too deep", never a crash
    ],
)
def test_deep_documents_are_refused_as_too_deep(document: str) -> None:
    for form in (document, document.encode()):
        with pytest.raises(JsonTooDeep):
            loads(form)


def test_too_deep_is_a_value_error_every_door_already_answers() -> None:
    assert issubclass(JsonTooDeep, ValueError)
    with pytest.raises(ValueError):
        loads("[1,]")
