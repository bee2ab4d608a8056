"""The state root: one keccak256 commitment to the whole engine state.

Invariants:
- The root is the Merkle root (``asyncdex.commitment.merkle``) over one leaf per account,
  accounts sorted by address, followed by one global leaf (markets, books, protocol funds).
- An account leaf is ``leaves.exit_leaf(address, exitValue, accountStateHash)``: the
  settlement contract pays ``exitValue`` on an escape-hatch exit against a proof of this leaf.
  ``exitValue`` is the account's equity at the committed mark prices, floored at zero.
- Everything hashed is a canonical msgpack encoding of integers and bytes, in an order fixed
  by sorting or by book priority, never by hashing: identical histories give identical roots
  on any machine. Internal scheduling structures (expiry and dead-man heaps, which may hold
  stale entries) are not committed; the live orders' expiries are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncdex.commitment.leaves import exit_leaf
from asyncdex.commitment.merkle import merkle_root
from asyncdex.engine.state import Account, MarketState, State
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig
from asyncdex.types.packing import pack


def exit_value(state: State, account: Account) -> int:
    """Equity over cross and isolated balances at the current marks, floored at zero."""
    value = account.collateral
    for market_id, position in account.positions.items():
        value += position.iso_margin + position.size * state.markets[market_id].mark_price
    return max(value, 0)


def account_preimage(account: Account) -> list[object]:
    """What an account's state hash commits to (batch data carries exactly this).

    ``[collateral, scheduled_cancel, positions, agents]``, then the approved builders
    (``[builder, max_fee]`` sorted) only when there are any: an account that never approved
    a builder commits to what it did before builder fees existed.
    """
    positions = [
        [market_id, *p.scalars(), sorted(p.orders)]
        for market_id, p in sorted(account.positions.items())
    ]
    agents = sorted(account.agents.items())
    preimage: list[object] = [account.collateral, account.scheduled_cancel, positions, agents]
    if account.builders:
        preimage.append(sorted(account.builders.items()))
    return preimage


def account_hash(account: Account) -> bytes:
    return preimage_hash(account_preimage(account))


def preimage_hash(preimage: list[object]) -> bytes:
    return keccak256(pack(preimage))


def preimage_exit_value(preimage: list[Any], marks: list[int]) -> int:
    """The exit value from an account preimage and the markets' mark prices (see exit_value)."""
    collateral, _, positions, *_ = preimage
    value: int = collateral
    for market_id, size, _, iso_margin, *_ in positions:
        value += iso_margin + size * marks[market_id]
    return max(value, 0)


def _market_commitment(market: MarketState) -> list[object]:
    return [
        *market.scalars(),
        [[p, price, at] for p, (price, at) in sorted(market.oracle.items())],
        [o.to_list() for o in market.triggers.values()],
        [o.to_list() for o in market.book.orders_in_priority()],
    ]


def global_leaf(state: State) -> bytes:
    values = [
        state.time,
        state.next_order_id,
        state.next_withdrawal_id,
        state.l1_consumed,
        state.insurance_fund,
        state.fee_pool,
        state.total_deposited,
        state.total_withdrawn,
        state.protective,
        [_market_commitment(m) for m in state.markets],
        sorted(state.nonces.items()),
    ]
    if state.config.committee_fee_share_ppm:
        # only a venue that pays its committee commits to it: every other root is unchanged
        values.append([state.committee_pool, state.committee_fee_mark, state.committee_proposer])
    return keccak256(pack(values))


@dataclass(frozen=True, slots=True)
class Commitment:
    """What the root commits to, as settlement batches carry it: the marks, each account's
    preimage (``account_preimage``) in address order, the global leaf, the L1 index."""

    marks: tuple[int, ...]
    accounts: list[tuple[bytes, list[object]]]
    global_leaf: bytes
    l1_consumed: int

    def root(self) -> bytes:
        marks = list(self.marks)
        leaves = [
            exit_leaf(address, preimage_exit_value(preimage, marks), preimage_hash(preimage))
            for address, preimage in self.accounts
        ]
        leaves.append(self.global_leaf)
        return merkle_root(leaves)


def commitment(state: State) -> Commitment:
    return Commitment(
        tuple(market.mark_price for market in state.markets),
        [
            (address, account_preimage(account))
            for address, account in sorted(state.accounts.items())
        ],
        global_leaf(state),
        state.l1_consumed,
    )


def state_root_of_export(config: EngineConfig, exported: dict[str, Any]) -> bytes:
    """``state_root`` of the state the native core exports (see ``commitment_of_export``)."""
    return commitment_of_export(config, exported).root()


def commitment_of_export(config: EngineConfig, exported: dict[str, Any]) -> Commitment:
    """``commitment`` of the state the native core exports (``export_state``: the form
    ``asyncdex.engine.native.build_reference_state`` turns into a ``State``), taken from
    those plain lists without building the ``State``: the same values in the same order as
    the functions above take them from a ``State`` (an order's list is its ``to_list``, a
    position's its ``scalars``). The differential tests compare its root with ``state_root``
    of the reference after every command."""
    markets = exported["markets"]
    accounts: list[tuple[bytes, list[object]]] = []
    for address, collateral, scheduled_cancel, positions, agents, builders in sorted(
        exported["accounts"]
    ):
        preimage: list[object] = [
            collateral,
            scheduled_cancel,
            [[market_id, *scalars, sorted(ids)] for market_id, scalars, ids in sorted(positions)],
            sorted(agents),
        ]
        if builders:
            preimage.append(sorted(builders))
        accounts.append((address, preimage))
    values = [
        exported["time"],
        exported["next_order_id"],
        exported["next_withdrawal_id"],
        exported["l1_consumed"],
        exported["insurance_fund"],
        exported["fee_pool"],
        exported["total_deposited"],
        exported["total_withdrawn"],
        exported["protective"],
        [
            [
                *market["scalars"],
                sorted([p, price, at] for p, price, at in market["oracle"]),
                market["triggers"],
                market["book"],
            ]
            for market in markets
        ],
        sorted(exported["nonces"]),
    ]
    if config.committee_fee_share_ppm:
        values.append(list(exported["committee"]))
    marks = tuple(market["scalars"][1] for market in markets)
    return Commitment(marks, accounts, keccak256(pack(values)), exported["l1_consumed"])


def account_leaves(state: State) -> list[tuple[bytes, int, bytes]]:
    """(address, exit value, account hash) for every account, sorted by address."""
    return [
        (address, exit_value(state, account), account_hash(account))
        for address, account in sorted(state.accounts.items())
    ]


def state_leaves(state: State) -> list[bytes]:
    leaves = [exit_leaf(*item) for item in account_leaves(state)]
    leaves.append(global_leaf(state))
    return leaves


def state_root(state: State) -> bytes:
    return merkle_root(state_leaves(state))
