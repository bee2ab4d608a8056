"""The canonical encoding of commands and events: every type round trips; bad bytes are refused.

Messages are generated from the types' own field annotations, so a kind added to
``COMMAND_TYPES`` or ``EVENT_TYPES`` is covered without touching this file.
"""

from __future__ import annotations

from typing import Any, get_type_hints

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.messages.codec import (
    COMMAND_TAG,
    EVENT_TAG,
    CodecError,
    command_from_items,
    command_items,
    decode_command,
    decode_event,
    encode_command,
    encode_event,
)
from asyncdex.messages.commands import (
    COMMAND_TYPES,
    AdvanceTime,
    Batch,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Signed,
    TimeInForce,
)
from asyncdex.messages.events import EVENT_TYPES, Rejected, TradeExecuted
from asyncdex.types.packing import pack

ALICE = b"\xa1" * 20

# integers of every size the packing must keep exact: beyond 64 bits too (128-bit client ids)
integers = st.one_of(
    st.integers(-(2**64), 2**64),
    st.integers(-(2**200), 2**200),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 2**127]),
)
SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    int: integers,
    bool: st.booleans(),
    bytes: st.binary(max_size=40),
}


def message_strategy(cls: type) -> st.SearchStrategy[Any]:
    """Instances of ``cls`` with arbitrary field values of the annotated types."""
    fields = []
    for name, kind in get_type_hints(cls).items():
        if cls is Signed and name == "command":
            fields.append(st.deferred(lambda: plain_commands))
        elif cls is Batch and name == "commands":
            fields.append(st.lists(st.deferred(lambda: simple_commands), max_size=4).map(tuple))
        else:
            fields.append(SCALARS[kind])
    return st.tuples(*fields).map(lambda values: cls(*values))


UNSIGNED_TYPES = [cls for cls in COMMAND_TYPES if cls is not Signed]
SIMPLE_TYPES = [cls for cls in UNSIGNED_TYPES if cls is not Batch]  # what a Batch may nest
simple_commands = st.one_of([message_strategy(cls) for cls in SIMPLE_TYPES])
plain_commands = st.one_of([message_strategy(cls) for cls in UNSIGNED_TYPES])
commands = st.one_of([message_strategy(cls) for cls in COMMAND_TYPES])
events = st.one_of([message_strategy(cls) for cls in EVENT_TYPES])


# ------------------------------------------------------------------ tags


def test_tags_are_positions_in_the_type_lists() -> None:
    assert [COMMAND_TAG[cls] for cls in COMMAND_TYPES] == list(range(len(COMMAND_TYPES)))
    assert [EVENT_TAG[cls] for cls in EVENT_TYPES] == list(range(len(EVENT_TYPES)))


def test_released_tags_never_move() -> None:
    # journaled and hashed: new kinds are appended, these numbers are fixed forever
    assert [cls.__name__ for cls in COMMAND_TYPES[:12]] == [
        "Deposit",
        "Withdraw",
        "PlaceOrder",
        "CancelOrder",
        "CancelByClientId",
        "CancelAll",
        "ModifyOrder",
        "ScheduleCancel",
        "SetLeverage",
        "UpdateIsolatedMargin",
        "PublishOraclePrice",
        "AdvanceTime",
    ]
    assert EVENT_TYPES[0] is Rejected and EVENT_TAG[TradeExecuted] == 2
    # builder fees (Hyperliquid's builder codes), journaled since their release
    assert [cls.__name__ for cls in COMMAND_TYPES[18:20]] == [
        "ApproveBuilderFee",
        "PlaceBuilderOrder",
    ]
    assert [cls.__name__ for cls in EVENT_TYPES[23:25]] == ["BuilderFeeApproved", "BuilderFeePaid"]


def test_every_field_has_a_type_the_codec_checks() -> None:
    for cls in (*COMMAND_TYPES, *EVENT_TYPES):
        for name, kind in get_type_hints(cls).items():
            nested = (cls is Signed and name == "command") or (cls is Batch and name == "commands")
            assert kind in SCALARS or nested, (cls, name, kind)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("cls", COMMAND_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_every_command_type_round_trips(cls: type, data: st.DataObject) -> None:
    command = data.draw(message_strategy(cls))
    encoded = encode_command(command)
    decoded = decode_command(encoded)
    assert decoded == command and type(decoded) is cls
    assert encode_command(decoded) == encoded  # one encoding per message
    assert command_from_items(command_items(command)) == command


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_every_event_type_round_trips(cls: type, data: st.DataObject) -> None:
    event = data.draw(message_strategy(cls))
    encoded = encode_event(event)
    decoded = decode_event(encoded)
    assert decoded == event and type(decoded) is cls
    assert encode_event(decoded) == encoded


@given(commands, commands)
def test_different_commands_have_different_bytes(first: Any, second: Any) -> None:
    same_message = type(first) is type(second) and first == second
    assert (encode_command(first) == encode_command(second)) == same_message


def test_enum_fields_encode_as_their_numbers() -> None:
    with_enum = PlaceOrder(ALICE, 0, True, 100, 5, TimeInForce.IOC)
    assert encode_command(with_enum) == encode_command(with_enum._replace(tif=1))
    assert decode_command(encode_command(with_enum)).tif == 1


def test_a_fieldless_command_is_its_tag_alone() -> None:
    assert encode_command(AdvanceTime()) == pack([COMMAND_TAG[AdvanceTime]])
    assert decode_command(pack([COMMAND_TAG[AdvanceTime]])) == AdvanceTime()


def test_signed_envelope_nests_its_command_as_a_list() -> None:
    inner = CancelOrder(ALICE, 1, 7)
    envelope = Signed(ALICE, 1_700_000_000_000, 0, inner)
    assert encode_command(envelope) == pack(
        [COMMAND_TAG[Signed], ALICE, 1_700_000_000_000, 0, [COMMAND_TAG[CancelOrder], ALICE, 1, 7]]
    )


# ------------------------------------------------------------------ refusals

DEPOSIT_TAG = COMMAND_TAG[Deposit]


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([len(COMMAND_TYPES), ALICE, 1, 0], id="unknown_tag_just_past_the_end"),
        pytest.param([10_000, ALICE], id="unknown_large_tag"),
        pytest.param([-1, ALICE, 1, 0], id="negative_tag"),
        pytest.param([], id="empty_list"),
        pytest.param([True, ALICE, 1, 0], id="tag_is_a_bool"),
        pytest.param(["0", ALICE, 1, 0], id="tag_is_a_string"),
        pytest.param([DEPOSIT_TAG, ALICE, 1], id="too_few_fields"),
        pytest.param([DEPOSIT_TAG, ALICE, 1, 0, 0], id="too_many_fields"),
        pytest.param([DEPOSIT_TAG, "alice", 1, 0], id="text_for_bytes"),
        pytest.param([DEPOSIT_TAG, ALICE, b"1", 0], id="bytes_for_int"),
        pytest.param([DEPOSIT_TAG, ALICE, 1.0, 0], id="float_for_int"),
        pytest.param([DEPOSIT_TAG, ALICE, True, 0], id="bool_for_int"),
        pytest.param([DEPOSIT_TAG, ALICE, None, 0], id="nil_for_int"),
        pytest.param([DEPOSIT_TAG, ALICE, [1], 0], id="list_for_int"),
        pytest.param(
            [COMMAND_TAG[PlaceOrder], ALICE, 0, 1, 100, 5, 0, 0, False, 0, 0, 0, 0],
            id="int_for_bool",
        ),
        pytest.param([COMMAND_TAG[Signed], ALICE, 1, 0], id="signed_without_its_command"),
        pytest.param([COMMAND_TAG[Signed], ALICE, 1, 0, [DEPOSIT_TAG, ALICE, 1]], id="bad_inner"),
        pytest.param(
            [COMMAND_TAG[Signed], ALICE, 1, 0, [COMMAND_TAG[Signed], ALICE, 1, 0, [5, ALICE, -1]]],
            id="signed_nested_in_signed",
        ),
        pytest.param([COMMAND_TAG[Signed], ALICE, 1, 0, b"inner"], id="inner_not_a_list"),
        pytest.param([COMMAND_TAG[Signed], "x", 1, 0, [5, ALICE, -1]], id="signer_not_bytes"),
    ],
)
def test_decode_command_refuses(items: list[Any]) -> None:
    with pytest.raises(CodecError):
        decode_command(pack(items))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"tag": 0}, id="map"),
        pytest.param(0, id="bare_int"),
        pytest.param(b"\x00", id="bytes"),
        pytest.param(None, id="nil"),
    ],
)
def test_decode_refuses_what_is_not_a_list(value: Any) -> None:
    with pytest.raises(CodecError):
        decode_command(pack(value))
    with pytest.raises(CodecError):
        decode_event(pack(value))


def test_decode_event_refuses_an_unknown_tag_and_a_wrong_field_count() -> None:
    with pytest.raises(CodecError, match="tag"):
        decode_event(pack([len(EVENT_TYPES), ALICE]))
    rejected = Rejected(ALICE, 2, 0, 0, 101)
    with pytest.raises(CodecError, match="fields"):
        decode_event(pack([EVENT_TAG[Rejected], *rejected[:-1]]))
    with pytest.raises(CodecError):
        decode_event(pack([EVENT_TAG[Rejected], *rejected[:-1], "101"]))


def test_a_deposit_does_not_decode_as_the_event_with_its_tag() -> None:
    # tags are per list: tag 0 is Deposit among commands and Rejected among events
    deposit = encode_command(Deposit(ALICE, 5, 0))  # tag 0 = Rejected among events
    with pytest.raises(CodecError):
        decode_event(deposit)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xc1", id="reserved_byte"),
        pytest.param(encode_command(Deposit(ALICE, 5, 0))[:-1], id="truncated"),
        pytest.param(encode_command(Deposit(ALICE, 5, 0)) + b"\x00", id="trailing_byte"),
        pytest.param(msgpack.packb([0, msgpack.ExtType(9, b"x"), 1, 0]), id="unknown_ext"),
        pytest.param(msgpack.packb([0, ALICE, msgpack.ExtType(1, b"\x05"), 0]), id="small_ext_int"),
    ],
)
def test_decode_refuses_bytes_that_are_not_one_canonical_message(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_command(data)


@given(st.binary(max_size=64))
def test_garbage_either_decodes_to_a_message_or_raises_codec_error(data: bytes) -> None:
    for decode, encode in ((decode_command, encode_command), (decode_event, encode_event)):
        try:
            message = decode(data)
        except CodecError:
            continue
        # whatever decodes is a well-formed message that encodes again
        assert decode(encode(message)) == message


@given(commands, st.data())
def test_any_truncation_of_a_command_is_refused(command: Any, data: st.DataObject) -> None:
    encoded = encode_command(command)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(CodecError):
        decode_command(encoded[:cut])


@given(events)
def test_an_event_with_a_trailing_byte_is_refused(event: Any) -> None:
    encoded = encode_event(event)
    with pytest.raises(CodecError):
        decode_event(encoded + b"\xc0")


def test_a_batch_nests_neither_an_envelope_nor_a_batch() -> None:
    place = PlaceOrder(ALICE, 0, True, 100, 1, TimeInForce.GTC)
    batch = Batch(ALICE, (place, CancelOrder(ALICE, 0, 7)))
    signed = Signed(ALICE, 1, 0, batch)
    assert decode_command(encode_command(signed)) == signed
    inner_signed = [COMMAND_TAG[Batch], ALICE, [command_items(signed)]]
    with pytest.raises(CodecError, match="no envelope and no Batch"):
        command_from_items(inner_signed)
    inner_batch = [COMMAND_TAG[Batch], ALICE, [command_items(batch)]]
    with pytest.raises(CodecError, match="no envelope and no Batch"):
        command_from_items(inner_batch)
    with pytest.raises(CodecError, match="Batch fields"):
        command_from_items([COMMAND_TAG[Batch], ALICE, 5])
