"""The engine's state: accounts, positions, markets, books, and the protocol's own funds.

Invariants:
- Plain mutable containers with ``__slots__``; only ``asyncdex.engine.transition`` changes
  them, one command at a time.
- Iteration order never depends on hashing: every container that is iterated is a ``dict``
  (insertion-ordered, preserved by snapshots) or sorted before use. No ``set`` of bytes.
- A ``Position`` exists for an (account, market) pair only while it carries something: a
  non-zero size, resting orders, isolated margin, or a non-default leverage or mode.
- Money lives in exactly five places: ``Account.collateral`` (cross balance),
  ``Position.iso_margin`` (isolated balances), ``State.insurance_fund``, ``State.fee_pool``
  and ``State.committee_pool`` (fees owed to committee members, 0 unless the venue pays a
  committee share). Their sum changes only with deposits and withdrawals.
"""

from __future__ import annotations

from asyncdex.engine.orderbook import Book, Order
from asyncdex.types.market import EngineConfig, MarketSpec


class Position:
    """One account's stake in one market: its position, its resting orders, its settings."""

    __slots__ = (
        "cum_funding",
        "entry_notional",
        "imf",
        "iso_margin",
        "isolated",
        "leverage",
        "open_buy",
        "open_sell",
        "orders",
        "size",
    )

    def __init__(self, leverage: int, imf: int) -> None:
        self.size = 0  # signed, in the market's size units
        self.entry_notional = 0  # price * size of the open part; for display and PnL only
        self.iso_margin = 0  # isolated balance (quote), 0 in cross mode
        self.open_buy = 0  # resting non reduce-only buy size
        self.open_sell = 0
        self.leverage = leverage
        self.imf = imf  # initial margin fraction (ppm) in force: max(market's, 1 / leverage)
        self.isolated = False
        self.cum_funding = 0  # funding paid since the position opened (negative: received)
        self.orders: dict[int, Order] = {}

    def scalars(self) -> list[int | bool]:
        """The position's own values, in the order snapshots and commitments write them."""
        return [
            self.size,
            self.entry_notional,
            self.iso_margin,
            self.open_buy,
            self.open_sell,
            self.leverage,
            self.isolated,
            self.cum_funding,
        ]

    def set_scalars(self, values: list[int | bool]) -> None:
        """Inverse of ``scalars`` (``imf`` is derived from the leverage by the caller)."""
        (
            self.size,
            self.entry_notional,
            self.iso_margin,
            self.open_buy,
            self.open_sell,
            self.leverage,
            self.isolated,
            self.cum_funding,
        ) = values  # type: ignore[assignment]


class Account:
    __slots__ = (
        "address",
        "agents",
        "builders",
        "client_ids",
        "collateral",
        "positions",
        "scheduled_cancel",
    )

    def __init__(self, address: bytes) -> None:
        self.address = address
        self.collateral = 0  # the cross-margin quote balance, micro-USDC; may go negative
        self.positions: dict[int, Position] = {}
        self.client_ids: dict[int, int] = {}  # client id -> order id, open orders only
        self.scheduled_cancel = 0  # dead-man switch time, 0 when not set
        self.agents: dict[bytes, int] = {}  # approved agent -> valid until (ms, 0 = no end)
        # approved builder -> the most its orders may pay it, tenths of a basis point
        self.builders: dict[bytes, int] = {}


class MarketState:
    """One market's live state. A batch-auction market (``auction_interval`` > 0) also keeps
    ``next_auction``, the time of its next auction; a continuous market's ``scalars`` are
    exactly what they were before batch auctions existed (roots and snapshots unchanged)."""

    __slots__ = (
        "auction_interval",
        "book",
        "cumulative_funding",
        "funding_rate_ppb",
        "holders",
        "index_price",
        "lot",
        "maintenance_margin_ppm",
        "mark_price",
        "max_order_size",
        "max_price",
        "min_order_value",
        "next_auction",
        "next_funding",
        "next_sample",
        "oracle",
        "premium_count",
        "premium_sum",
        "spec",
        "taker_fee_ppm",
        "tick",
        "triggers",
    )

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        # copies of the spec's hot fields: plain attributes of this class are the cheapest
        # reads on the matching path (the spec is a frozen dataclass from another module)
        self.tick = spec.tick
        self.lot = spec.lot
        self.min_order_value = spec.min_order_value
        self.max_order_size = spec.max_order_size
        self.max_price = spec.max_price
        self.taker_fee_ppm = spec.taker_fee_ppm
        self.maintenance_margin_ppm = spec.maintenance_margin_ppm
        self.book = Book(spec.market_id)
        self.triggers: dict[int, Order] = {}  # armed stop / take-profit orders, by order id
        self.oracle: dict[bytes, tuple[int, int]] = {}  # publisher -> (price, time)
        self.index_price = 0
        self.mark_price = 0
        self.premium_sum = 0
        self.premium_count = 0
        self.next_sample = 0  # set from the first timestamp the market sees
        self.next_funding = 0
        self.cumulative_funding = 0
        self.funding_rate_ppb = 0  # the last rate paid
        self.holders: dict[bytes, None] = {}  # accounts with a non-zero position
        self.auction_interval = spec.auction_interval_ms  # 0: continuous
        self.next_auction = 0  # batch auctions: set from the first timestamp, like next_sample

    def scalars(self) -> list[int]:
        """The market's own values, in the order snapshots and commitments write them
        (``next_auction`` last, for batch-auction markets only)."""
        values = [
            self.index_price,
            self.mark_price,
            self.premium_sum,
            self.premium_count,
            self.next_sample,
            self.next_funding,
            self.cumulative_funding,
            self.funding_rate_ppb,
        ]
        if self.auction_interval:
            values.append(self.next_auction)
        return values

    def set_scalars(self, values: list[int]) -> None:
        """Inverse of ``scalars``."""
        if self.auction_interval:
            self.next_auction = values[-1]
            values = values[:-1]
        (
            self.index_price,
            self.mark_price,
            self.premium_sum,
            self.premium_count,
            self.next_sample,
            self.next_funding,
            self.cumulative_funding,
            self.funding_rate_ppb,
        ) = values


class State:
    __slots__ = (
        "accounts",
        "agent_master",
        "committee_fee_mark",
        "committee_pool",
        "committee_proposer",
        "config",
        "expiries",
        "fee_pool",
        "insurance_fund",
        "l1_consumed",
        "markets",
        "next_due",
        "next_order_id",
        "next_withdrawal_id",
        "nonces",
        "orders",
        "protective",
        "publishers",
        "scheduled",
        "time",
        "total_deposited",
        "total_withdrawn",
    )

    def __init__(self, config: EngineConfig) -> None:
        config.validate()
        self.config = config
        self.markets = [MarketState(spec) for spec in config.markets]
        self.publishers = frozenset(config.oracle_publishers)
        self.accounts: dict[bytes, Account] = {}
        self.orders: dict[int, Order] = {}  # every live order (resting or armed trigger)
        self.next_order_id = 1
        self.next_withdrawal_id = 1
        self.l1_consumed = 0  # L1 messages (deposits, forced requests) applied so far
        self.time = 0
        self.insurance_fund = 0
        self.fee_pool = 0
        self.total_deposited = 0
        self.total_withdrawn = 0
        self.expiries: list[tuple[int, int]] = []  # heap of (expiry, order id)
        self.scheduled: list[tuple[int, bytes]] = []  # heap of (time, account)
        self.next_due = 0  # earliest time anything time-driven may happen
        self.nonces: dict[bytes, list[int]] = {}  # signer -> its highest nonces, ascending
        self.agent_master: dict[bytes, bytes] = {}  # agent -> the account it signs for
        self.protective = False  # settlement lags: withdrawals paused, stricter margin
        # committee incentives (engine.incentives), untouched while the share is 0
        self.committee_pool = 0  # the committee's share of fees, not yet paid out
        self.committee_fee_mark = 0  # fee_pool after the last block marker's payout
        self.committee_proposer = -1  # member index of the last block's proposer; -1: none

    def position_values(self, account: bytes, market: int) -> tuple[int, int] | None:
        """(size, entry notional) of ``account``'s position in ``market``, or None without
        one (``asyncdex.engine.reader.StateReader``: a read that needs no whole account)."""
        holder = self.accounts.get(account)
        position = None if holder is None else holder.positions.get(market)
        return None if position is None else (position.size, position.entry_notional)

    def total_money(self) -> int:
        """Collateral + isolated margins + insurance fund + fee pool + committee pool (the
        conserved sum)."""
        total = self.insurance_fund + self.fee_pool + self.committee_pool
        for account in self.accounts.values():
            total += account.collateral
            for position in account.positions.values():
                total += position.iso_margin
        return total
