"""Snapshots: the whole engine state to bytes and back.

Invariants:
- ``restore(config, snapshot(state))`` gives a state that behaves identically from then on:
  same state root, same events for any further commands. Every dict is written in its
  iteration order and the heaps as they are, because later behaviour may depend on both.
- A snapshot names the config it was taken under (a hash of the market specs and
  publishers); restoring under another config is refused.
- The encoding is msgpack of integers, bools and bytes only, versioned. Version 3 added each
  account's approved builders; a version 2 snapshot (from before builder fees) still
  restores, with none. A batch-auction market writes its next auction time after its
  other scalars (the pending orders of the interval are in its book, with their time in
  force); a continuous market writes exactly what it did before batch auctions.
  Version 4 added the committee incentive counters (pool, fee mark, last proposer) after the
  other counters; versions 2 and 3 restore with their initial values (nothing accrued).
- The config fingerprint covers the committee's fee share and members only when the share
  is non-zero, so every other venue's fingerprint is what it was before incentives existed.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Any

from asyncdex.engine.margin import initial_fraction_ppm
from asyncdex.engine.orderbook import Order
from asyncdex.engine.state import Account, Position, State
from asyncdex.types.hashing import keccak256
from asyncdex.types.market import EngineConfig
from asyncdex.types.packing import pack, unpack

SNAPSHOT_VERSION = 4
_READABLE_VERSIONS = (2, 3, 4)
_COUNTERS = 13
_COMMITTEE_COUNTERS = 3  # written from version 4 on


class SnapshotError(ValueError):
    """Bytes that are not a snapshot of this engine under this config."""


def config_hash(config: EngineConfig) -> bytes:
    specs = []
    for spec in config.markets:
        fields = list(dataclasses.astuple(spec))
        if spec.auction_interval_ms == 0:
            # a continuous market hashes as before batch auctions existed: its snapshots and
            # their fingerprints are unchanged
            del fields[-2:]
        specs.append(fields)
    identity: list[object] = [
        specs,
        list(config.oracle_publishers),
        config.max_open_orders_per_account,
    ]
    if config.committee_fee_share_ppm:
        identity.append([config.committee_fee_share_ppm, list(config.committee_members)])
    return keccak256(pack(identity))


def snapshot(state: State) -> bytes:
    accounts = []
    for account in state.accounts.values():
        # dict order, not sorted: later behaviour may depend on it
        positions = [
            [market_id, *p.scalars(), list(p.orders)] for market_id, p in account.positions.items()
        ]
        accounts.append(
            [
                account.address,
                account.collateral,
                account.scheduled_cancel,
                positions,
                list(account.client_ids.items()),
                list(account.agents.items()),
                list(account.builders.items()),
            ]
        )
    markets = [
        [
            *m.scalars(),
            [[p, price, at] for p, (price, at) in m.oracle.items()],
            list(m.triggers),
            list(m.holders),
            [order.order_id for order in m.book.orders_in_priority()],
        ]
        for m in state.markets
    ]
    body = [
        SNAPSHOT_VERSION,
        config_hash(state.config),
        [
            state.time,
            state.next_order_id,
            state.next_withdrawal_id,
            state.l1_consumed,
            state.insurance_fund,
            state.fee_pool,
            state.total_deposited,
            state.total_withdrawn,
            state.next_due,
            state.protective,
            state.committee_pool,
            state.committee_fee_mark,
            state.committee_proposer,
        ],
        [order.to_list() for order in state.orders.values()],
        accounts,
        markets,
        [list(item) for item in state.expiries],
        [list(item) for item in state.scheduled],
        list(state.nonces.items()),
    ]
    return pack(body)


def snapshot_of_export(config: EngineConfig, exported: dict[str, Any]) -> bytes:
    """``snapshot`` of the state the native core exports (``export_state``), byte for byte
    what ``snapshot`` writes of the ``State`` that export builds
    (``asyncdex.engine.native.build_reference_state``: orders by id, each position's orders
    by id, client ids by market then order id, holders in account order), without building
    it. The differential tests compare the two bytes."""
    orders: list[list[object]] = []
    markets = []
    holders: list[dict[bytes, None]] = [{} for _ in exported["markets"]]
    for address, _collateral, _cancel, positions, _agents, _builders in exported["accounts"]:
        for market_id, scalars, _ids in positions:
            if scalars[0]:
                holders[market_id][address] = None
    client_of: dict[int, object] = {}
    for market, held in zip(exported["markets"], holders, strict=True):
        for items in market["book"]:
            orders.append(items)
        for items in market["triggers"]:
            orders.append(items)
        markets.append(
            [
                *market["scalars"],
                [[p, price, at] for p, price, at in market["oracle"]],
                [items[0] for items in market["triggers"]],
                list(held),
                [items[0] for items in market["book"]],
            ]
        )
    orders.sort(key=_order_id)
    for items in orders:
        if items[9]:  # the client id (``ORDER_FIELDS``)
            client_of[items[0]] = items[9]  # type: ignore[index]
    accounts = []
    for address, collateral, scheduled_cancel, positions, agents, builders in exported["accounts"]:
        client_ids: list[tuple[object, int]] = []
        rows = []
        for market_id, scalars, ids in positions:
            ids = sorted(ids)
            rows.append([market_id, *scalars, ids])
            client_ids.extend((client_of[i], i) for i in ids if i in client_of)
        accounts.append(
            [address, collateral, scheduled_cancel, rows, client_ids, list(agents), list(builders)]
        )
    body = [
        SNAPSHOT_VERSION,
        config_hash(config),
        [
            exported["time"],
            exported["next_order_id"],
            exported["next_withdrawal_id"],
            exported["l1_consumed"],
            exported["insurance_fund"],
            exported["fee_pool"],
            exported["total_deposited"],
            exported["total_withdrawn"],
            exported["next_due"],
            exported["protective"],
            *exported["committee"],
        ],
        orders,
        accounts,
        markets,
        [list(item) for item in exported["expiries"]],
        [list(item) for item in exported["scheduled"]],
        list(exported["nonces"]),
    ]
    return pack(body)


def _order_id(items: list[object]) -> int:
    order_id = items[0]
    assert isinstance(order_id, int)
    return order_id


def restore(config: EngineConfig, data: bytes) -> State:
    counters, orders, accounts, markets, expiries, scheduled, nonces = _body(config, data)
    try:
        return _rebuild(config, counters, orders, accounts, markets, expiries, scheduled, nonces)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"snapshot body is malformed: {exc!r}") from exc


def restore_export(config: EngineConfig, data: bytes) -> dict[str, Any]:
    """The snapshot in the form the native core exports and imports (``export_state``; the
    form ``asyncdex.engine.native.export_reference_state`` makes of ``restore``'s state),
    without building a ``State``: a native engine loads it directly
    (``NativeEngine.from_snapshot``). Refuses what ``restore`` refuses."""
    counters, orders, accounts, markets, expiries, scheduled, nonces = _body(config, data)
    try:
        (
            time,
            next_order_id,
            next_withdrawal_id,
            l1_consumed,
            insurance_fund,
            fee_pool,
            total_deposited,
            total_withdrawn,
            next_due,
            protective,
            *committee,
        ) = counters
        by_id = {items[0]: items for items in orders}
        exported: dict[str, Any] = {
            "time": time,
            "next_due": next_due,
            "next_order_id": next_order_id,
            "next_withdrawal_id": next_withdrawal_id,
            "l1_consumed": l1_consumed,
            "insurance_fund": insurance_fund,
            "fee_pool": fee_pool,
            "total_deposited": total_deposited,
            "total_withdrawn": total_withdrawn,
            "protective": protective,
            "committee": tuple(committee) if committee else (0, 0, -1),
        }
        exported["markets"] = [
            {
                "scalars": scalars,
                "oracle": [(p, price, at) for p, price, at in oracle],
                "book": [by_id[order_id] for order_id in resting],
                "triggers": [by_id[order_id] for order_id in triggers],
            }
            for *scalars, oracle, triggers, _holders, resting in markets
        ]
        if len(exported["markets"]) != len(config.markets):
            raise ValueError(f"{len(exported['markets'])} markets, the config has others")
        exported["accounts"] = [
            (
                address,
                collateral,
                scheduled_cancel,
                [(market_id, fields, order_ids) for market_id, *fields, order_ids in positions],
                [tuple(item) for item in agents],
                [tuple(item) for item in builders[0]] if builders else [],
            )
            for address, collateral, scheduled_cancel, positions, _ids, agents, *builders in (
                accounts
            )
        ]
        exported["expiries"] = [(e, o) for e, o in expiries]
        exported["scheduled"] = [(t, a) for t, a in scheduled]
        exported["nonces"] = [(signer, list(kept)) for signer, kept in nonces]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"snapshot body is malformed: {exc!r}") from exc
    return exported


def _body(config: EngineConfig, data: bytes) -> tuple[Any, ...]:
    """The snapshot's parts after its version, config and counters are checked."""
    try:
        body = unpack(data)
        (
            version,
            fingerprint,
            counters,
            orders,
            accounts,
            markets,
            expiries,
            scheduled,
            nonces,
        ) = body
    except Exception as exc:
        raise SnapshotError(f"not a snapshot: {exc}") from exc
    if version not in _READABLE_VERSIONS:
        raise SnapshotError(f"snapshot version {version}, expected {SNAPSHOT_VERSION}")
    if fingerprint != config_hash(config):
        raise SnapshotError("snapshot was taken under a different config")
    try:
        if len(counters) != (_COUNTERS if version >= 4 else _COUNTERS - _COMMITTEE_COUNTERS):
            raise ValueError(f"{len(counters)} counters in a version {version} snapshot")
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot body is malformed: {exc!r}") from exc
    return counters, orders, accounts, markets, expiries, scheduled, nonces


def _rebuild(
    config: EngineConfig,
    counters: Any,
    orders: Any,
    accounts: Any,
    markets: Any,
    expiries: Any,
    scheduled: Any,
    nonces: Any,
) -> State:
    state = State(config)
    (
        state.time,
        state.next_order_id,
        state.next_withdrawal_id,
        state.l1_consumed,
        state.insurance_fund,
        state.fee_pool,
        state.total_deposited,
        state.total_withdrawn,
        state.next_due,
        state.protective,
        *committee,
    ) = counters
    if committee:  # version 4 on
        (state.committee_pool, state.committee_fee_mark, state.committee_proposer) = committee
    for items in orders:
        order = Order.from_list(items)
        state.orders[order.order_id] = order
    for address, collateral, scheduled_cancel, positions, client_ids, agents, *builders in accounts:
        account = Account(address)
        account.agents = dict(agents)
        if builders:  # version 2 snapshots have none
            (approved,) = builders
            account.builders = dict(approved)
        for agent in account.agents:
            state.agent_master[agent] = address
        account.collateral = collateral
        account.scheduled_cancel = scheduled_cancel
        account.client_ids = dict(client_ids)
        for market_id, *fields, order_ids in positions:
            position = Position(0, 0)
            position.set_scalars(fields)
            spec = config.markets[market_id]
            position.imf = initial_fraction_ppm(spec.initial_margin_ppm, position.leverage)
            position.orders = {oid: state.orders[oid] for oid in order_ids}
            account.positions[market_id] = position
        state.accounts[address] = account
    for market, items in zip(state.markets, markets, strict=True):
        *scalars, oracle, triggers, holders, resting = items
        market.set_scalars(scalars)
        market.oracle = {p: (price, at) for p, price, at in oracle}
        market.triggers = {oid: state.orders[oid] for oid in triggers}
        market.holders = dict.fromkeys(holders)
        for order_id in resting:
            market.book.add(state.orders[order_id])
    state.expiries = [(e, o) for e, o in expiries]
    state.scheduled = [(t, a) for t, a in scheduled]
    heapq.heapify(state.expiries)
    heapq.heapify(state.scheduled)
    state.nonces = {signer: list(kept) for signer, kept in nonces}
    return state
