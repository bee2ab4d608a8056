"""The native engine core: ``NativeEngine.apply(command, timestamp) -> events``, in C++.

Invariants:
- The interpreted engine (``asyncdex.engine.transition``) is the specification. The native
  core (``_native/core.cpp``, built by ``pip install`` when a C++17 compiler is present)
  produces the same events, as the same event classes, and the same state root for every
  command it implements; the differential tests compare both after every command.
- What the native core does not implement is refused loudly with ``NativeUnsupported``
  before anything changes (``NATIVE_LIMITS``): values beyond its integer widths. Every
  command type is implemented (``NATIVE_COMMANDS``). Nothing falls back to the reference
  silently.
- The state root is computed by exporting the native state and committing the export with
  ``asyncdex.engine.state_root`` (``state_root_of_export``: the same values, in the same
  order, as ``state_root`` takes from a reference ``State``; the differential tests compare
  the two after every command). It costs a full export, so it is for tests, batches,
  snapshots and recovery, not for every command.
- The read side reads the native state through ``NativeEngine.state``, a
  ``NativeStateView`` (``asyncdex.engine.reader.StateReader``): the reference's own classes,
  built from the core's point queries (an account, an order, a market, a signer's nonces)
  when first read after a change, so both engines serve the same responses.
- Without the built extension, ``native_available()`` is false and
  ``native_unavailable_reason()`` says why; callers run the reference and warn.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast, overload

from asyncdex.engine.margin import initial_fraction_ppm
from asyncdex.engine.orderbook import Book, Order
from asyncdex.engine.snapshot import restore_export, snapshot_of_export
from asyncdex.engine.state import Account, MarketState, Position, State
from asyncdex.engine.state_root import Commitment, commitment_of_export, state_root_of_export
from asyncdex.engine.transition import check_authorization
from asyncdex.messages.commands import (
    COMMAND_TYPES,
    AdvanceTime,
    ApproveAgent,
    ApproveBuilderFee,
    Batch,
    CancelAll,
    CancelByClientId,
    CancelOrder,
    Command,
    CommitteeBlock,
    Deposit,
    ForceCancelAll,
    ForceWithdraw,
    ModifyOrder,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    SetProtectiveMode,
    Signed,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.messages.events import EVENT_TYPES, Event
from asyncdex.messages.reasons import Reject
from asyncdex.types.market import EngineConfig, MarketSpec

try:
    from asyncdex.engine import _native_core  # type: ignore[attr-defined]
except ImportError as error:  # no compiler at install time: the reference runs instead
    _native_core = None
    _UNAVAILABLE = f"the native engine core is not built ({error})"
else:
    _UNAVAILABLE = ""


if _native_core is not None:
    NativeUnsupported: type[NotImplementedError] = _native_core.NativeUnsupported
else:

    class NativeUnsupported(NotImplementedError):  # type: ignore[no-redef]
        """A command or state the native core does not implement (yet)."""


# The commands the native core runs, each fully (every reject reason and event).
NATIVE_COMMANDS: frozenset[type] = frozenset(
    {
        Deposit,
        Withdraw,
        PlaceOrder,
        CancelOrder,
        CancelByClientId,
        CancelAll,
        ModifyOrder,
        SetLeverage,
        UpdateIsolatedMargin,
        ScheduleCancel,
        ForceWithdraw,
        ForceCancelAll,
        PublishOraclePrice,
        AdvanceTime,
        CommitteeBlock,
        SetProtectiveMode,
        Signed,
        Batch,
        ApproveAgent,
        ApproveBuilderFee,
        PlaceBuilderOrder,
    }
)
# What it refuses within those commands (NativeUnsupported), and what it never runs.
NATIVE_LIMITS: tuple[str, ...] = (
    "committee members that are not 20-byte addresses (refused at construction)",
    "client ids outside 0..2^128 (cloids are 128-bit; the reference keeps any int), and "
    "expiries and dead-man times beyond int64",
    "an isolated flag that is not a bool (the reference commits the value as given)",
)


def native_available() -> bool:
    return _native_core is not None


def scan_journal_records(data: bytes, pos: int, expected: int) -> tuple[int, int] | None:
    """The journal's record check in C++ (framing, CRC-32, seqs from ``expected``) over a
    segment image from ``pos``: (pos, expected) after the last clean record; None without
    the extension (the journal then checks every record itself)."""
    if _native_core is None:
        return None
    result: tuple[int, int] = _native_core.scan_records(data, pos, expected)
    return result


def native_unavailable_reason() -> str:
    return _UNAVAILABLE


def _spec_fields(spec: MarketSpec) -> tuple[int, ...]:
    """The spec in the native core's field order (``MarketSpecN`` in core.cpp)."""
    return (
        spec.market_id,
        spec.tick,
        spec.lot,
        spec.min_order_value,
        spec.initial_margin_ppm,
        spec.maintenance_margin_ppm,
        spec.max_leverage,
        spec.maker_fee_ppm,
        spec.taker_fee_ppm,
        spec.funding_interval_ms,
        spec.premium_sample_ms,
        spec.funding_cap_ppb,
        spec.interest_ppb,
        spec.oracle_staleness_ms,
        spec.mark_band_ppm,
        spec.market_slippage_ppm,
        spec.max_order_size,
        spec.max_price,
        spec.liquidation_fee_ppm,
        spec.auction_interval_ms,
    )


_INT64_MAX = (1 << 63) - 1
# the codec's tags as core.cpp numbers them (``enum Tag``) and the event classes it emits
# (``enum Ev``): a renumbering in messages/ must be mirrored there
_CORE_COMMAND_ORDER = [
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
    "ApproveAgent",
    "Signed",
    "ForceWithdraw",
    "ForceCancelAll",
    "SetProtectiveMode",
    "Batch",
    "ApproveBuilderFee",
    "PlaceBuilderOrder",
    "CommitteeBlock",
]
_CORE_EVENT_ORDER = [
    "Rejected",
    "OrderAccepted",
    "TradeExecuted",
    "OrderRested",
    "OrderCancelled",
    "OrderModified",
    "TriggerArmed",
    "OrderTriggered",
    "Deposited",
    "Withdrawn",
    "LeverageSet",
    "IsolatedMarginMoved",
    "ScheduledCancelSet",
    "OraclePriceAccepted",
    "MarkPriceUpdated",
    "FundingPaid",
    "LiquidationStarted",
    "LiquidationSettled",
    "PositionDeleveraged",
    "AgentApproved",
    "ProtectiveModeSet",
    "L1MessageConsumed",
    "BatchItem",
    "BuilderFeeApproved",
    "BuilderFeePaid",
    "AuctionCleared",
    "CommitteeFeesAccrued",
    "CommitteeRewardPaid",
]


class NativeEngine:
    """The native core behind the reference's entry points (``apply``, ``state``,
    ``check_authorization``, ``full_state``, ``state_root``: ``reader.EngineLike``)."""

    def __init__(self, config: EngineConfig) -> None:
        if _native_core is None:
            raise NativeUnsupported(_UNAVAILABLE)
        config.validate()
        for spec in config.markets:
            if spec.market_id != config.markets.index(spec):
                raise NativeUnsupported("market ids must be their positions in the config")
            if spec.max_price > 10**15 or spec.max_order_size > 10**15:
                raise NativeUnsupported("market bounds beyond 10^15")
        if config.max_open_orders_per_account > _INT64_MAX:
            raise NativeUnsupported("max_open_orders_per_account beyond int64")
        if [c.__name__ for c in COMMAND_TYPES] != _CORE_COMMAND_ORDER or [
            e.__name__ for e in EVENT_TYPES[: len(_CORE_EVENT_ORDER)]
        ] != _CORE_EVENT_ORDER:
            raise NativeUnsupported("the codec's numbering moved: update core.cpp to match")
        self.config = config
        self._core = _native_core.Core(
            [_spec_fields(spec) for spec in config.markets],
            list(config.oracle_publishers),
            config.max_open_orders_per_account,
            EVENT_TYPES,
            COMMAND_TYPES,
        )
        if config.committee_fee_share_ppm:
            self._core.set_committee(config.committee_fee_share_ppm, list(config.committee_members))
        self.state = NativeStateView(config, self._core)

    kind = "native"

    def apply(self, command: Command, timestamp: int) -> list[Event]:
        """Apply one sequenced command at ``timestamp`` (ms) and return what happened."""
        self.state.stale()
        events: list[Event] = self._core.apply(command, timestamp)
        return events

    def check_authorization(
        self, signer: bytes, nonce: int, expires_after: int, inner: Command, now: int
    ) -> Reject | None:
        """May ``signer`` act for the command's account, with this nonce, now? (The
        reference's own check, over this engine's state.)"""
        return check_authorization(self.state, signer, nonce, expires_after, inner, now)

    def full_state(self) -> State:
        """The whole state as a reference ``State`` (a copy: costs a full export)."""
        return self.to_reference_state()

    def run_stream(
        self, commands: list[Command], clock_start: int, latency: bool = False
    ) -> tuple[int, int, list[int], int]:
        """Apply ``commands`` at ``clock >> 6`` (the engine benchmark's timestamps) without
        building event objects: (events emitted, elapsed ns, sorted per-command ns when
        ``latency``, this thread's CPU ns). The batch entry point: one call for the stream."""
        self.state.stale()
        result: tuple[int, int, list[int], int] = self._core.run_stream(
            commands, clock_start, latency
        )
        return result

    def apply_records(self, payloads: list[bytes]) -> int:
        """Apply trusted journal payloads (``asyncdex.sequencer.records``: checksummed, written
        by ``encode_record``) decoded in C++, with no Python object per record and no events;
        returns how many were applied. For replay, which discards the events."""
        self.state.stale()
        applied: int = self._core.apply_records(payloads)
        return applied

    def replay_segment(
        self, data: bytes, pos: int, expected: int, from_seq: int, last: int
    ) -> tuple[int, int, int, int]:
        """Replay's fast path over one journal segment's bytes (framing, checksums and seqs
        checked, records decoded and applied in C++): (pos, expected seq, applied, status),
        status 0 segment done, 1 ``last`` reached, 2 torn or damaged (use the exact reader)."""
        self.state.stale()
        result: tuple[int, int, int, int] = self._core.replay_segment(
            data, pos, expected, from_seq, last
        )
        return result

    def memory(self) -> dict[str, int]:
        """Bytes the native core holds for orders and books (capacities, not just sizes)."""
        figures: dict[str, int] = self._core.memory()
        return figures

    @classmethod
    def from_reference_state(cls, config: EngineConfig, state: State) -> NativeEngine:
        """A native engine holding ``state`` (a reference ``State``, e.g. a restored
        snapshot): snapshots are interchangeable both ways."""
        engine = cls(config)
        engine._core.import_state(export_reference_state(state))
        return engine

    @classmethod
    def from_snapshot(cls, config: EngineConfig, payload: bytes) -> tuple[NativeEngine, bytes]:
        """A native engine holding a snapshot's state (``asyncdex.engine.snapshot``), loaded
        without building a reference ``State`` (``restore_export``), and that state's root
        (for the caller to check against the one saved with it). ``SnapshotError`` for what
        ``restore`` refuses."""
        exported = restore_export(config, payload)
        root = state_root_of_export(config, exported)
        engine = cls(config)
        engine._core.import_state(exported)
        return engine, root

    def to_reference_state(self) -> State:
        """The native state as the reference's ``State`` (for roots and snapshots)."""
        return build_reference_state(self.config, self._core.export_state())

    def snapshot(self) -> tuple[bytes, bytes]:
        """(the snapshot of the state, its root), both from one export of the core, no
        reference ``State`` built: the bytes ``snapshot`` writes of ``to_reference_state``."""
        exported = self._core.export_state()
        return (
            snapshot_of_export(self.config, exported),
            state_root_of_export(self.config, exported),
        )

    def commitment(self) -> Commitment:
        """What the root commits to (settlement batches), from the core's export."""
        return commitment_of_export(self.config, self._core.export_state())

    def state_root(self) -> bytes:
        """The reference's commitment of the exported state, taken from the export's plain
        lists (``state_root_of_export``) rather than a ``State`` built from them."""
        return state_root_of_export(self.config, self._core.export_state())


def export_reference_state(state: State) -> dict[str, Any]:
    """A reference ``State`` in the form ``export_state`` gives (the inverse of
    ``build_reference_state``), for loading into the native core."""
    names = (
        "time",
        "next_due",
        "next_order_id",
        "next_withdrawal_id",
        "l1_consumed",
        "insurance_fund",
        "fee_pool",
        "total_deposited",
        "total_withdrawn",
        "protective",
    )
    exported: dict[str, Any] = {name: getattr(state, name) for name in names}
    exported["committee"] = (
        state.committee_pool,
        state.committee_fee_mark,
        state.committee_proposer,
    )
    exported["markets"] = [
        {
            "scalars": market.scalars(),
            "oracle": [(p, price, at) for p, (price, at) in market.oracle.items()],
            "book": [order.to_list() for order in market.book.orders_in_priority()],
            "triggers": [order.to_list() for order in market.triggers.values()],
        }
        for market in state.markets
    ]
    exported["accounts"] = [
        (
            address,
            account.collateral,
            account.scheduled_cancel,
            [
                (market_id, position.scalars(), list(position.orders))
                for market_id, position in account.positions.items()
            ],
            list(account.agents.items()),
            list(account.builders.items()),
        )
        for address, account in state.accounts.items()
    ]
    exported["expiries"] = list(state.expiries)
    exported["scheduled"] = list(state.scheduled)
    exported["nonces"] = list(state.nonces.items())
    return exported


def build_reference_state(config: EngineConfig, exported: dict[str, Any]) -> State:
    state = State(config)
    for name in (
        "time",
        "next_due",
        "next_order_id",
        "next_withdrawal_id",
        "l1_consumed",
        "insurance_fund",
        "fee_pool",
        "total_deposited",
        "total_withdrawn",
        "protective",
    ):
        setattr(state, name, exported[name])
    orders: dict[int, Order] = {}
    for market, data in zip(state.markets, exported["markets"], strict=True):
        _fill_market(market, data, orders)
    for item in exported["accounts"]:
        account = _build_account(config, item, orders)
        for agent in account.agents:
            state.agent_master[agent] = account.address
        for market_id, position in account.positions.items():
            if position.size:
                state.markets[market_id].holders[account.address] = None
        state.accounts[account.address] = account
    state.orders = dict(sorted(orders.items()))
    state.nonces = {signer: list(kept) for signer, kept in exported["nonces"]}
    state.committee_pool, state.committee_fee_mark, state.committee_proposer = exported["committee"]
    state.expiries = list(exported["expiries"])
    heapq.heapify(state.expiries)
    state.scheduled = list(exported["scheduled"])
    heapq.heapify(state.scheduled)
    return state


def _fill_market(market: MarketState, data: dict[str, Any], orders: dict[int, Order]) -> None:
    """Load one exported market (``export_market``'s form) into a fresh ``market``. Its
    orders are taken from ``orders`` when there (one object per order, as in the reference's
    state, where the book and the order index hold the same object), else put there."""
    market.set_scalars(list(data["scalars"]))
    market.oracle = {publisher: (price, at) for publisher, price, at in data["oracle"]}
    for items in data["book"]:
        market.book.add(_order_of(items, orders))
    for items in data["triggers"]:
        order = _order_of(items, orders)
        market.triggers[order.order_id] = order


def _order_of(items: Any, orders: dict[int, Order]) -> Order:
    order = orders.get(items[0])
    if order is None:
        order = orders[items[0]] = Order.from_list(list(items))
    return order


def _build_account(
    config: EngineConfig, exported: Any, orders: Mapping[int, Order], by_id: bool = True
) -> Account:
    """One exported account (``export_state``'s form), its positions holding the orders of
    ``orders`` they name: in order id order (``by_id``, as snapshots restore them), or in the
    order the core keeps them, newest first, given back oldest first (as the live reference
    engine's dicts hold them: a modified order moves to the end)."""
    address, collateral, scheduled_cancel, positions, agents, builders = exported
    account = Account(address)
    account.collateral = collateral
    account.scheduled_cancel = scheduled_cancel
    account.agents = dict(agents)
    account.builders = dict(builders)
    for market_id, scalars, order_ids in positions:
        spec = config.markets[market_id]
        position = Position(spec.max_leverage, spec.initial_margin_ppm)
        position.set_scalars(list(scalars))
        position.imf = initial_fraction_ppm(spec.initial_margin_ppm, position.leverage)
        for order_id in sorted(order_ids) if by_id else reversed(order_ids):
            order = orders[order_id]
            position.orders[order_id] = order
            if order.client_id:
                account.client_ids[order.client_id] = order_id
        account.positions[market_id] = position
    return account


class NativeStateView:
    """The native core's state for the read side (``asyncdex.engine.reader.StateReader``):
    the reference's own classes, built from the core piece by piece when first read.

    Invariants:
    - Current: a piece is read from the core after the last command applied; the engine
      drops every cached piece (``stale``) before it applies the next.
    - Each read costs what it returns: an account its positions and orders, an order one
      order, a market its scalars, oracle prices, triggers and holders (its book is read
      through the core, ``NativeBook``); the scalars one small dict. Only iterating
      ``accounts`` or ``orders``, or a whole side of a book, visits them all.
    - Copies: changing what it hands out changes nothing in the engine.
    """

    def __init__(self, config: EngineConfig, core: Any) -> None:
        self.config = config
        self.publishers = frozenset(config.oracle_publishers)
        self._core = core
        self._header: dict[str, Any] | None = None
        self._markets: dict[int, MarketState] = {}
        self._accounts: dict[bytes, Account | None] = {}
        self._orders: dict[int, Order | None] = {}
        # every order object handed out since the last change, by id: an order read through
        # its account, its market's book and the order index is one object, as in a ``State``
        self._known: dict[int, Order] = {}
        self.markets = _MarketsView(self)
        self.accounts = _AccountsView(self)
        self.orders = _OrdersView(self)
        self.nonces = _NoncesView(core)
        self.agent_master = _AgentsView(core)

    def stale(self) -> None:
        """The core is about to change: forget every piece read so far."""
        if self._header is not None:
            self._header = None
        if self._markets:
            self._markets.clear()
        if self._accounts:
            self._accounts.clear()
        if self._orders:
            self._orders.clear()
        if self._known:
            self._known.clear()

    def _scalars(self) -> dict[str, Any]:
        header = self._header
        if header is None:
            header = self._header = self._core.export_header()
        return header

    @property
    def time(self) -> int:
        value: int = self._scalars()["time"]
        return value

    @property
    def protective(self) -> bool:
        value: bool = self._scalars()["protective"]
        return value

    @property
    def l1_consumed(self) -> int:
        value: int = self._scalars()["l1_consumed"]
        return value

    @property
    def next_order_id(self) -> int:
        value: int = self._scalars()["next_order_id"]
        return value

    @property
    def insurance_fund(self) -> int:
        value: int = self._scalars()["insurance_fund"]
        return value

    @property
    def fee_pool(self) -> int:
        value: int = self._scalars()["fee_pool"]
        return value

    def position_values(self, account: bytes, market: int) -> tuple[int, int] | None:
        """(size, entry notional) of a position, or None: one query, no account built."""
        if type(account) is not bytes or type(market) is not int or market < 0:
            return None
        values: tuple[int, int] | None = self._core.position_values(account, market)
        return values

    def _market(self, market_id: int) -> MarketState:
        market = self._markets.get(market_id)
        if market is None:
            data = self._core.export_market(market_id)
            market = MarketState(self.config.markets[market_id])
            market.set_scalars(list(data["scalars"]))
            market.oracle = {publisher: (price, at) for publisher, price, at in data["oracle"]}
            for items in data["triggers"]:
                order = _order_of(items, self._known)
                market.triggers[order.order_id] = order
            market.holders = dict.fromkeys(data["holders"])
            # the book is read through the core, not copied: a market may hold far more
            # orders than one read needs (see NativeBook)
            market.book = cast(Book, NativeBook(market_id, self))
            self._markets[market_id] = market
        return market

    def _account(self, address: bytes) -> Account | None:
        if address in self._accounts:
            return self._accounts[address]
        exported = self._core.export_account(address) if type(address) is bytes else None
        account = None
        if exported is not None:
            item, order_lists = exported
            known = self._known
            for items in order_lists:
                _order_of(items, known)
            account = _build_account(self.config, item, known, by_id=False)
        self._accounts[address] = account
        return account

    def _order(self, order_id: int) -> Order | None:
        if order_id in self._orders:
            return self._orders[order_id]
        order = self._known.get(order_id)
        if order is None:
            items = self._core.export_order(order_id) if type(order_id) is int else None
            order = None if items is None else _order_of(items, self._known)
        self._orders[order_id] = order
        return order


class NativeBook:
    """One market's book in the native core, with the reference ``Book``'s read side:
    ``best_bid``, ``best_ask`` and ``level_sizes`` ask the core for just that; ``bids``,
    ``asks``, ``bid_prices``, ``ask_prices`` and ``orders_in_priority`` build the side(s)
    from the core on first use (every resting order of the side: for a book subscription's
    snapshot, not for every record). Read only, current until the engine's next command (it
    belongs to the view's cached market)."""

    __slots__ = ("_sides", "_view", "market")

    def __init__(self, market: int, view: NativeStateView) -> None:
        self.market = market
        self._view = view
        self._sides: dict[bool, dict[int, dict[int, Order]]] = {}

    def best_bid(self) -> int | None:
        best: int | None = self._view._core.book_best(self.market)[0]
        return best

    def best_ask(self) -> int | None:
        best: int | None = self._view._core.book_best(self.market)[1]
        return best

    def level_sizes(self, is_buy: bool, depth: int) -> list[tuple[int, int, int]]:
        """The best ``depth`` levels of one side as (price, total size, order count)."""
        levels: list[tuple[int, int, int]] = self._view._core.book_levels(
            self.market, is_buy, depth
        )
        return levels

    def _side(self, is_buy: bool) -> dict[int, dict[int, Order]]:
        side = self._sides.get(is_buy)
        if side is None:
            side = self._sides[is_buy] = {}
            known = self._view._known
            for items in self._view._core.book_side(self.market, is_buy):
                order = _order_of(items, known)
                level = side.get(order.price)
                if level is None:
                    side[order.price] = {order.order_id: order}
                else:
                    level[order.order_id] = order
        return side

    @property
    def bids(self) -> dict[int, dict[int, Order]]:
        """Price -> (order id -> order), best price first (the reference's keeps no order)."""
        return self._side(True)

    @property
    def asks(self) -> dict[int, dict[int, Order]]:
        return self._side(False)

    @property
    def bid_prices(self) -> list[int]:
        return sorted(self._side(True))

    @property
    def ask_prices(self) -> list[int]:
        return sorted(self._side(False))

    def orders_in_priority(self) -> list[Order]:
        """All resting orders: bids best first then asks best first, time order within a level."""
        return [
            order
            for is_buy in (True, False)
            for level in self._side(is_buy).values()
            for order in level.values()
        ]


class _MarketsView(Sequence[MarketState]):
    __slots__ = ("_view",)

    def __init__(self, view: NativeStateView) -> None:
        self._view = view

    def __len__(self) -> int:
        return len(self._view.config.markets)

    @overload
    def __getitem__(self, index: int) -> MarketState: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MarketState]: ...
    def __getitem__(self, index: int | slice) -> MarketState | Sequence[MarketState]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        count = len(self)
        if not -count <= index < count:
            raise IndexError("market index out of range")
        return self._view._market(index % count)


class _AccountsView(Mapping[bytes, Account]):
    __slots__ = ("_view",)

    def __init__(self, view: NativeStateView) -> None:
        self._view = view

    def __getitem__(self, address: bytes) -> Account:
        account = self._view._account(address)
        if account is None:
            raise KeyError(address)
        return account

    def __contains__(self, address: object) -> bool:
        return type(address) is bytes and self._view._account(address) is not None

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._view._core.account_addresses())

    def __len__(self) -> int:
        count: int = self._view._scalars()["accounts"]
        return count


class _OrdersView(Mapping[int, Order]):
    __slots__ = ("_view",)

    def __init__(self, view: NativeStateView) -> None:
        self._view = view

    def __getitem__(self, order_id: int) -> Order:
        order = self._view._order(order_id)
        if order is None:
            raise KeyError(order_id)
        return order

    def __contains__(self, order_id: object) -> bool:
        return type(order_id) is int and self._view._order(order_id) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(self._view._core.order_ids())

    def __len__(self) -> int:
        count: int = self._view._scalars()["orders"]
        return count


class _NoncesView(Mapping[bytes, list[int]]):
    """A signer's kept nonces (a copy, read when asked: nonces change with every intent)."""

    __slots__ = ("_core",)

    def __init__(self, core: Any) -> None:
        self._core = core

    def __getitem__(self, signer: bytes) -> list[int]:
        kept: list[int] | None = self._core.nonces_of(signer) if type(signer) is bytes else None
        if kept is None:
            raise KeyError(signer)
        return kept

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._core.nonce_signers())

    def __len__(self) -> int:
        return len(self._core.nonce_signers())


class _AgentsView(Mapping[bytes, bytes]):
    """Approved agent -> the account it signs for."""

    __slots__ = ("_core",)

    def __init__(self, core: Any) -> None:
        self._core = core

    def __getitem__(self, agent: bytes) -> bytes:
        master: bytes | None = self._core.agent_master_of(agent) if type(agent) is bytes else None
        if master is None:
            raise KeyError(agent)
        return master

    def __iter__(self) -> Iterator[bytes]:
        return iter(dict(self._core.agents()))

    def __len__(self) -> int:
        return len(dict(self._core.agents()))
