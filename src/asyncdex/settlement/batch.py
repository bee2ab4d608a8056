"""Batch data: the compressed state diff posted with every batch, and the two sides of it.

Invariants:
- Batch data is ``VERSION || zlib(pack([batch_number, first_seq, last_seq, l1_consumed,
  marks, global_leaf, accounts, withdrawals]))`` with ``VERSION`` = 1 (one byte, outside the
  compressed stream so a future version may change the compression too). ``marks`` is the mark
  price of every market at the cut, by market id; ``global_leaf`` the 32-byte global leaf of
  the state root; ``accounts`` is ``[address, account_preimage]`` for every account whose state
  hash changed since the previous batch (new accounts included), sorted by address, no repeats;
  ``withdrawals`` is ``[withdrawal_id, account, amount]`` for the batch's ``Withdrawn`` events,
  in id order. ``pack`` is ``asyncdex.types.packing``: msgpack with integers beyond 64 bits
  as one canonical ext type, the same packing the account state hash uses.
- Decoding is strict: one version, exactly the fields above with their types (``bool`` is not
  an ``int`` here), sorted unique addresses and ids, a canonical encoding (re-encoding
  the decoded value gives the same bytes), no bytes after the zlib stream, and a cap on the
  decompressed size. Anything else raises ``BatchDataError``; nothing is guessed or repaired.
- Replaying decoded batches from batch 1 in order rebuilds every exit leaf: an account's leaf
  is ``exit_leaf(address, preimage_exit_value(preimage, marks), preimage_hash(preimage))``
  with its newest preimage and the batch's marks; the state root is the Merkle root of those
  leaves sorted by address, followed by the global leaf. ``BatchBuilder`` (the sequencer's
  side) and ``LeafSet`` (anyone's side, from chain data only) compute it with the same
  functions of ``asyncdex.engine.state_root``, and ``LeafSet`` refuses a batch whose rebuilt
  root differs from the committed one, so a proof it builds is a proof the contract accepts.
- The withdrawals root is ``merkle_root`` of ``withdrawal_leaf(id, account, amount)`` over the
  batch's withdrawals in id order (``ZERO_HASH`` when there are none).
- Accounts are never removed from the engine state; ``BatchBuilder`` refuses a state that lost
  one, because the format has no deletion entry and the rebuilt root would silently differ.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from asyncdex.commitment.leaves import exit_leaf, withdrawal_leaf
from asyncdex.commitment.merkle import merkle_proof, merkle_root
from asyncdex.engine.state import State
from asyncdex.engine.state_root import (
    Commitment,
    commitment,
    preimage_exit_value,
    preimage_hash,
)
from asyncdex.messages.events import Withdrawn
from asyncdex.types.hashing import keccak256
from asyncdex.types.packing import pack, unpack

BATCH_DATA_VERSION = 1
# Far above any real batch (10,000 intents make well under 1 MiB), far below memory trouble:
# a few kilobytes of deflate can expand a thousandfold, so the decoder stops here.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024
_FIELDS = 8
_POSITION_FIELDS = 10
_PREIMAGE_FIELDS = 4

Preimage = list[Any]


class BatchDataError(ValueError):
    """Batch data that is not exactly the versioned format (see the module invariants)."""


class RootMismatch(ValueError):
    """The state root rebuilt from batch data differs from the root committed on chain."""

    def __init__(self, batch_number: int, rebuilt: bytes, committed: bytes) -> None:
        super().__init__(
            f"batch {batch_number}: rebuilt root 0x{rebuilt.hex()} != committed 0x{committed.hex()}"
        )
        self.batch_number = batch_number
        self.rebuilt = rebuilt
        self.committed = committed


@dataclass(frozen=True, slots=True)
class BatchData:
    """The decoded content of one batch's data (field order is the wire order)."""

    batch_number: int
    first_seq: int
    last_seq: int
    l1_consumed: int
    marks: tuple[int, ...]
    global_leaf: bytes
    accounts: tuple[tuple[bytes, Preimage], ...]  # (address, account preimage), by address
    withdrawals: tuple[tuple[int, bytes, int], ...]  # (withdrawal id, account, amount), by id

    def withdrawals_root(self) -> bytes:
        return withdrawals_root(self.withdrawals)


def withdrawals_root(withdrawals: Sequence[tuple[int, bytes, int]]) -> bytes:
    return merkle_root([withdrawal_leaf(*entry) for entry in withdrawals])


def withdrawal_proof(
    withdrawals: Sequence[tuple[int, bytes, int]], withdrawal_id: int
) -> tuple[int, list[bytes]]:
    """(index, proof) of withdrawal ``withdrawal_id`` in a batch's withdrawals tree."""
    for index, entry in enumerate(withdrawals):
        if entry[0] == withdrawal_id:
            leaves = [withdrawal_leaf(*item) for item in withdrawals]
            return index, merkle_proof(leaves, index)
    raise KeyError(f"withdrawal {withdrawal_id} is not in this batch")


# ---------------------------------------------------------------- encoding


def encode_batch_data(batch: BatchData) -> bytes:
    payload = pack(
        [
            batch.batch_number,
            batch.first_seq,
            batch.last_seq,
            batch.l1_consumed,
            list(batch.marks),
            batch.global_leaf,
            [[address, preimage] for address, preimage in batch.accounts],
            [list(entry) for entry in batch.withdrawals],
        ]
    )
    # Level 9: the batch is compressed once and its bytes are paid for on chain (40 gas each
    # under EIP-7623's floor); the extra CPU is a few milliseconds per batch.
    return bytes([BATCH_DATA_VERSION]) + zlib.compress(payload, 9)


def decode_batch_data(data: bytes) -> BatchData:
    """The batch in ``data``, or ``BatchDataError`` if it is not exactly the format."""
    if not data or data[0] != BATCH_DATA_VERSION:
        version = data[0] if data else None
        raise BatchDataError(f"unknown batch data version {version!r}")
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(data[1:], MAX_DECOMPRESSED_BYTES)
    except zlib.error as exc:
        raise BatchDataError(f"not a zlib stream: {exc}") from exc
    if inflater.unconsumed_tail:
        raise BatchDataError(f"decompressed data exceeds {MAX_DECOMPRESSED_BYTES} bytes")
    if not inflater.eof:
        raise BatchDataError("truncated zlib stream")
    if inflater.unused_data:
        raise BatchDataError("bytes after the zlib stream")
    try:
        value = unpack(payload, raw=False, strict_map_key=True)
    except Exception as exc:
        raise BatchDataError(f"not a canonical msgpack value: {exc}") from exc
    batch = _batch_from_value(value)
    # Canonical encoding: one batch, one byte string (re-encoding cannot make a second one).
    if pack(value) != payload:
        raise BatchDataError("msgpack encoding is not canonical")
    return batch


def _fail(message: str) -> BatchDataError:
    return BatchDataError(message)


def _is_int(value: object) -> bool:
    return type(value) is int


def _check_uint(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _fail(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _check_address(value: object, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 20:
        raise _fail(f"{what} must be 20 bytes, got {value!r}")
    return value


def _check_list(value: object, what: str, length: int | None = None) -> list[Any]:
    if type(value) is not list or (length is not None and len(value) != length):
        wanted = "a list" if length is None else f"a list of {length}"
        raise _fail(f"{what} must be {wanted}, got {value!r}")
    return value


def _check_increasing(keys: Iterable[Any], what: str) -> None:
    previous: Any = None
    for key in keys:
        if previous is not None and not previous < key:
            raise _fail(f"{what} must be strictly increasing")
        previous = key


def _check_preimage(value: object, market_count: int, where: str) -> Preimage:
    """The account preimage of ``state_root.account_preimage``, field by field."""
    fields = _check_list(value, f"{where} preimage")
    if len(fields) not in (_PREIMAGE_FIELDS, _PREIMAGE_FIELDS + 1):
        raise _fail(f"{where} preimage must be a list of 4 or 5, got {value!r}")
    collateral, scheduled_cancel, positions, agents, *builders = fields
    if not _is_int(collateral):
        raise _fail(f"{where} collateral must be an integer")
    _check_uint(scheduled_cancel, f"{where} scheduled cancel")
    for position in _check_list(positions, f"{where} positions"):
        fields = _check_list(position, f"{where} position", _POSITION_FIELDS)
        market_id, *numbers, isolated, cum_funding, orders = fields
        if _check_uint(market_id, f"{where} market id") >= market_count:
            raise _fail(f"{where} names market {market_id}, but the batch has {market_count}")
        if not all(_is_int(number) for number in numbers) or not _is_int(cum_funding):
            raise _fail(f"{where} position fields must be integers")
        if type(isolated) is not bool:
            raise _fail(f"{where} isolated flag must be a boolean")
        for order_id in _check_list(orders, f"{where} order ids"):
            _check_uint(order_id, f"{where} order id")
        _check_increasing(orders, f"{where} order ids")
    _check_increasing((position[0] for position in positions), f"{where} position markets")
    for agent in _check_list(agents, f"{where} agents"):
        address, valid_until = _check_list(agent, f"{where} agent", 2)
        _check_address(address, f"{where} agent")
        _check_uint(valid_until, f"{where} agent expiry")
    _check_increasing((agent[0] for agent in agents), f"{where} agents")
    if builders:
        # present only when the account approved a builder: never an empty list
        (approved,) = builders
        if not _check_list(approved, f"{where} builders"):
            raise _fail(f"{where} builders are left out when there are none, not empty")
        for item in approved:
            address, max_fee = _check_list(item, f"{where} builder", 2)
            _check_address(address, f"{where} builder")
            _check_uint(max_fee, f"{where} builder fee")
        _check_increasing((item[0] for item in approved), f"{where} builders")
    return value  # type: ignore[return-value]  # checked above to be a preimage list


def _batch_from_value(value: object) -> BatchData:
    (
        batch_number,
        first_seq,
        last_seq,
        l1_consumed,
        marks,
        leaf,
        accounts,
        withdrawals,
    ) = _check_list(value, "batch", _FIELDS)
    if _check_uint(batch_number, "batch number") < 1:
        raise _fail("batch numbers start at 1 (0 is the genesis)")
    if not 1 <= _check_uint(first_seq, "first seq") <= _check_uint(last_seq, "last seq"):
        raise _fail(f"seq range [{first_seq}, {last_seq}] is empty or starts below 1")
    _check_uint(l1_consumed, "l1_consumed")
    for mark in _check_list(marks, "marks"):
        _check_uint(mark, "mark price")
    if type(leaf) is not bytes or len(leaf) != 32:
        raise _fail("global leaf must be 32 bytes")
    diffs: list[tuple[bytes, Preimage]] = []
    for entry in _check_list(accounts, "accounts"):
        address, preimage = _check_list(entry, "account entry", 2)
        where = f"account 0x{_check_address(address, 'account').hex()}"
        diffs.append((address, _check_preimage(preimage, len(marks), where)))
    _check_increasing((address for address, _ in diffs), "account addresses")
    paid: list[tuple[int, bytes, int]] = []
    for entry in _check_list(withdrawals, "withdrawals"):
        withdrawal_id, account, amount = _check_list(entry, "withdrawal", 3)
        if _check_uint(withdrawal_id, "withdrawal id") < 1 or _check_uint(amount, "amount") < 1:
            raise _fail("withdrawal ids and amounts are positive")
        paid.append((withdrawal_id, _check_address(account, "withdrawal account"), amount))
    _check_increasing((entry[0] for entry in paid), "withdrawal ids")
    return BatchData(
        batch_number, first_seq, last_seq, l1_consumed, tuple(marks), leaf, tuple(diffs),
        tuple(paid),
    )  # fmt: skip


# ---------------------------------------------------------------- the sequencer's side


@dataclass(frozen=True, slots=True)
class CutBatch:
    """One cut: what ``commitBatch`` takes, plus where the batch sits in the record stream."""

    number: int
    first_seq: int
    last_seq: int
    first_timestamp: int
    last_timestamp: int
    prev_state_root: bytes
    state_root: bytes
    withdrawals_root: bytes
    l1_consumed: int
    data: bytes  # encoded batch data
    withdrawals: tuple[tuple[int, bytes, int], ...]

    @property
    def records(self) -> int:
        return self.last_seq - self.first_seq + 1

    @property
    def data_hash(self) -> bytes:
        return keccak256(self.data)


class BatchBuilder:
    """Turns engine states at cut points into consecutive batches.

    It remembers each account's state hash as of the previous cut, so the next batch carries
    only the accounts that changed. Hashing every account at each cut costs O(accounts); the
    state root needs every leaf anyway, so the diff comes at no extra asymptotic cost.
    """

    def __init__(self, genesis_root: bytes, next_batch_number: int = 1) -> None:
        self.prev_state_root = genesis_root
        self.next_batch_number = next_batch_number
        self.account_hashes: dict[bytes, bytes] = {}

    def cut(
        self,
        state: State | Commitment,
        withdrawals: Iterable[Withdrawn],
        first_seq: int,
        last_seq: int,
        first_timestamp: int = 0,
        last_timestamp: int = 0,
    ) -> CutBatch:
        """The next batch: the state after record ``last_seq``, records from ``first_seq``
        (``state``: the engine's ``State``, or its ``Commitment``, which a native engine
        gives without building a ``State``)."""
        committed = state if isinstance(state, Commitment) else commitment(state)
        marks = committed.marks
        mark_list = list(marks)
        changed: list[tuple[bytes, Preimage]] = []
        leaves: list[bytes] = []
        hashes: dict[bytes, bytes] = {}
        previous = self.account_hashes
        for address, preimage in committed.accounts:
            account_hash = preimage_hash(preimage)
            hashes[address] = account_hash
            if previous.get(address) != account_hash:
                changed.append((address, preimage))
            value = preimage_exit_value(preimage, mark_list)
            leaves.append(exit_leaf(address, value, account_hash))
        if len(hashes) < len(previous) or any(address not in hashes for address in previous):
            raise ValueError("an account disappeared from the state; batch data cannot say so")
        leaf = committed.global_leaf
        leaves.append(leaf)
        paid = tuple(
            sorted((event.withdrawal_id, event.account, event.amount) for event in withdrawals)
        )
        data = BatchData(
            self.next_batch_number, first_seq, last_seq, committed.l1_consumed, marks, leaf,
            tuple(changed), paid,
        )  # fmt: skip
        batch = CutBatch(
            number=self.next_batch_number,
            first_seq=first_seq,
            last_seq=last_seq,
            first_timestamp=first_timestamp,
            last_timestamp=last_timestamp,
            prev_state_root=self.prev_state_root,
            state_root=merkle_root(leaves),
            withdrawals_root=withdrawals_root(paid),
            l1_consumed=committed.l1_consumed,
            data=encode_batch_data(data),
            withdrawals=paid,
        )
        self.account_hashes = hashes
        self.prev_state_root = batch.state_root
        self.next_batch_number += 1
        return batch


# ---------------------------------------------------------------- anyone's side


class LeafSet:
    """Every exit leaf as of the last applied batch, rebuilt from batch data alone.

    ``apply`` takes batches in order from batch 1 with the state root committed for each, and
    changes nothing unless the rebuilt root equals it.
    """

    def __init__(self) -> None:
        self.batch_number = 0
        self.l1_consumed = 0
        self.marks: tuple[int, ...] = ()
        self.global_leaf: bytes | None = None
        self._accounts: dict[bytes, tuple[Preimage, bytes]] = {}  # preimage, account hash
        self._addresses: list[bytes] = []
        self._leaves: list[bytes] = []

    def apply(self, batch: BatchData, committed_root: bytes) -> bytes:
        """Apply the next batch; returns the root, or raises ``RootMismatch`` (nothing applied)."""
        if batch.batch_number != self.batch_number + 1:
            raise ValueError(
                f"batch {batch.batch_number} given, batch {self.batch_number + 1} expected"
            )
        accounts = dict(self._accounts)
        for address, preimage in batch.accounts:
            accounts[address] = (preimage, preimage_hash(preimage))
        addresses = sorted(accounts)
        marks = list(batch.marks)
        leaves = []
        for address in addresses:
            preimage, account_hash = accounts[address]
            leaves.append(exit_leaf(address, preimage_exit_value(preimage, marks), account_hash))
        leaves.append(batch.global_leaf)
        root = merkle_root(leaves)
        if root != committed_root:
            raise RootMismatch(batch.batch_number, root, committed_root)
        self.batch_number = batch.batch_number
        self.l1_consumed = batch.l1_consumed
        self.marks = batch.marks
        self.global_leaf = batch.global_leaf
        self._accounts = accounts
        self._addresses = addresses
        self._leaves = leaves
        return root

    def root(self) -> bytes:
        if self.global_leaf is None:
            raise ValueError("no batch applied yet")
        return merkle_root(self._leaves)

    def leaves(self) -> list[bytes]:
        return list(self._leaves)

    def addresses(self) -> list[bytes]:
        return list(self._addresses)

    def exit_value(self, address: bytes) -> int:
        preimage, _ = self._account(address)
        return preimage_exit_value(preimage, list(self.marks))

    def proof_for(self, address: bytes) -> tuple[int, bytes, int, list[bytes]]:
        """(exit value, account state hash, leaf index, Merkle proof) for ``Settlement.exit``."""
        preimage, account_hash = self._account(address)
        index = self._index(address)
        value = preimage_exit_value(preimage, list(self.marks))
        return value, account_hash, index, merkle_proof(self._leaves, index)

    def _account(self, address: bytes) -> tuple[Preimage, bytes]:
        entry = self._accounts.get(address)
        if entry is None:
            raise KeyError(f"account 0x{address.hex()} has no leaf at batch {self.batch_number}")
        return entry

    def _index(self, address: bytes) -> int:
        index = bisect_left(self._addresses, address)
        if index == len(self._addresses) or self._addresses[index] != address:
            raise KeyError(f"account 0x{address.hex()} has no leaf at batch {self.batch_number}")
        return index
