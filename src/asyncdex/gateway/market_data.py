"""Read-side market data: bounded in-memory stores fed from engine events, and account views.

Invariants:

- Pure and deterministic: :meth:`MarketData.add` folds one durable record's events (its seq
  and sequenced timestamp given) into the stores; the same records in the same order give
  the same stores. No clock, no I/O. Records must arrive in seq order; sequenced time never
  goes backwards, so every store is appended at its end and stays sorted by (time, seq).
- Every store is bounded, oldest dropped first: ``trade_capacity`` trades and
  ``funding_capacity`` funding payments per market, ``candle_capacity`` one-minute candles
  per market, ``fill_capacity`` fills per account for at most ``account_capacity`` accounts
  (the account whose latest fill is oldest is forgotten first).
- A trade (``TradeExecuted``, auto-deleveraging included) is one public trade and two fills,
  one per side; a candle counts it once. A ``BuilderFeePaid`` that follows it sets the
  payer's fill's ``builder_fee``. Candles exist only for minutes with trades; the 5m,
  15m and 1h candles are aggregated from the stored 1m candles on request, so they are as
  complete as the 1m store is.
- Values stay integers in engine units here (prices in 10^-(6-szDecimals) USDC, sizes in
  10^-szDecimals, money in micro-USDC); decimal strings are made at the API edge.
- :func:`account_view` reads engine state only; its liquidation price is an estimate (see
  there), the engine's margin check is what liquidates.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from asyncdex.engine.reader import StateReader
from asyncdex.engine.state import Account, MarketState
from asyncdex.messages.events import BuilderFeePaid, Event, FundingPaid, TradeExecuted
from asyncdex.types.numeric import PPM

MINUTE_MS = 60_000
INTERVALS_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
}

DEFAULT_TRADE_CAPACITY = 1_000
DEFAULT_CANDLE_CAPACITY = 7 * 24 * 60  # one week of minutes
DEFAULT_FUNDING_CAPACITY = 24 * 30  # a month of hourly payments
DEFAULT_FILL_CAPACITY = 1_000
DEFAULT_ACCOUNT_CAPACITY = 10_000


@dataclass(frozen=True, slots=True)
class Trade:
    seq: int
    time: int
    market: int
    price: int
    size: int
    taker_is_buy: bool
    maker_order: int
    taker_order: int  # 0 for a protocol trade (auto-deleveraging)


@dataclass(frozen=True, slots=True)
class Fill:
    seq: int
    time: int
    market: int
    price: int
    size: int
    is_buy: bool
    is_maker: bool
    order_id: int  # 0 for the protocol side of auto-deleveraging
    fee: int  # micro-USDC paid; negative for a rebate
    builder_fee: int = 0  # micro-USDC paid to the order's builder


@dataclass(frozen=True, slots=True)
class FundingRecord:
    seq: int
    time: int
    market: int
    rate_ppb: int
    index_price: int
    cumulative_index: int


@dataclass(slots=True)
class Candle:
    """One interval's trades: ``start`` is the interval's first ms; volume in size units."""

    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    trades: int

    def add(self, price: int, size: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.trades += 1


class MarketData:
    """Trades, candles and funding per market and fills per account, bounded (see module)."""

    def __init__(
        self,
        market_count: int,
        *,
        trade_capacity: int = DEFAULT_TRADE_CAPACITY,
        candle_capacity: int = DEFAULT_CANDLE_CAPACITY,
        funding_capacity: int = DEFAULT_FUNDING_CAPACITY,
        fill_capacity: int = DEFAULT_FILL_CAPACITY,
        account_capacity: int = DEFAULT_ACCOUNT_CAPACITY,
    ) -> None:
        capacities = (
            trade_capacity,
            candle_capacity,
            funding_capacity,
            fill_capacity,
            account_capacity,
        )
        if min(capacities) < 1:
            raise ValueError("every market data store holds at least one entry")
        self._trades: list[deque[Trade]] = [
            deque(maxlen=trade_capacity) for _ in range(market_count)
        ]
        self._candles: list[deque[Candle]] = [
            deque(maxlen=candle_capacity) for _ in range(market_count)
        ]
        self._funding: list[deque[FundingRecord]] = [
            deque(maxlen=funding_capacity) for _ in range(market_count)
        ]
        self._fill_capacity = fill_capacity
        self._account_capacity = account_capacity
        # Fills are kept as plain tuples of Fill's fields: the cycle collector does not track
        # those (it tracks every slotted object), and there may be millions of fills kept.
        self._fills: OrderedDict[bytes, deque[tuple[Any, ...]]] = OrderedDict()
        self.last_seq = 0

    # -- feeding

    def add(self, seq: int, time: int, events: Iterable[Event]) -> None:
        """Fold one record's events in; records come in seq order."""
        self.last_seq = seq
        for event in events:
            if isinstance(event, TradeExecuted):
                self._add_trade(seq, time, event)
            elif isinstance(event, BuilderFeePaid):
                # right after its trade: the payer's newest fill is the one that paid it
                fills = self._fills.get(event.account)
                if fills and fills[-1][7] == event.order_id:
                    fills[-1] = (*fills[-1][:9], event.amount)
            elif isinstance(event, FundingPaid):
                self._funding[event.market].append(
                    FundingRecord(
                        seq,
                        time,
                        event.market,
                        event.rate_ppb,
                        event.index_price,
                        event.cumulative_index,
                    )
                )

    def _add_trade(self, seq: int, time: int, event: TradeExecuted) -> None:
        market, price, size = event.market, event.price, event.size
        self._trades[market].append(
            Trade(
                seq,
                time,
                market,
                price,
                size,
                event.taker_is_buy,
                event.maker_order,
                event.taker_order,
            )
        )
        candles = self._candles[market]
        start = time - time % MINUTE_MS
        if candles and candles[-1].start == start:
            candles[-1].add(price, size)
        else:
            candles.append(Candle(start, price, price, price, price, size, 1))
        taker_buys = event.taker_is_buy
        self._add_fill(
            event.maker,
            (seq, time, market, price, size, not taker_buys, True, event.maker_order,
             event.maker_fee),
        )  # fmt: skip
        self._add_fill(
            event.taker,
            (seq, time, market, price, size, taker_buys, False, event.taker_order,
             event.taker_fee),
        )  # fmt: skip

    def _add_fill(self, account: bytes, fill: tuple[Any, ...]) -> None:
        fills = self._fills.get(account)
        if fills is None:
            fills = self._fills[account] = deque(maxlen=self._fill_capacity)
            if len(self._fills) > self._account_capacity:
                self._fills.popitem(last=False)
        else:
            self._fills.move_to_end(account)
        fills.append(fill)

    # -- queries

    def trades(self, market: int, limit: int) -> list[Trade]:
        """The newest ``limit`` trades of a market, newest first."""
        trades = self._trades[market]
        return [trades[-1 - i] for i in range(min(limit, len(trades)))]

    def candles(self, market: int, interval_ms: int, start: int, end: int) -> list[Candle]:
        """Candles of ``interval_ms`` (a multiple of a minute) whose start is in
        [``start``, ``end``], oldest first; an interval is built from its stored minutes."""
        if interval_ms <= 0 or interval_ms % MINUTE_MS:
            raise ValueError("a candle interval is a positive number of minutes")
        out: list[Candle] = []
        for minute in self._candles[market]:
            bucket = minute.start - minute.start % interval_ms
            if bucket < start:
                continue
            if bucket > end:
                break
            if out and out[-1].start == bucket:
                last = out[-1]
                last.high = max(last.high, minute.high)
                last.low = min(last.low, minute.low)
                last.close = minute.close
                last.volume += minute.volume
                last.trades += minute.trades
            else:
                out.append(
                    Candle(bucket, minute.open, minute.high, minute.low, minute.close,
                           minute.volume, minute.trades)
                )  # fmt: skip
        return out

    def funding(self, market: int, start: int, end: int) -> list[FundingRecord]:
        """Funding payments of a market at times in [``start``, ``end``], oldest first."""
        return [record for record in self._funding[market] if start <= record.time <= end]

    def fills(self, account: bytes, limit: int) -> list[Fill]:
        """The newest ``limit`` fills of an account, newest first."""
        fills = self._fills.get(account)
        if fills is None:
            return []
        return [Fill(*fills[-1 - i]) for i in range(min(limit, len(fills)))]

    def has_fills(self, account: bytes) -> bool:
        return account in self._fills


# ---------------------------------------------------------------------------------------------
# Account views (state reads, no events)


@dataclass(frozen=True, slots=True)
class PositionView:
    market: int
    size: int
    entry_price: int  # |entry notional| / |size|, rounded toward zero; 0 without a position
    mark_price: int
    unrealized_pnl: int  # size * mark - entry notional
    margin_used: (
        int  # isolated: the position's equity at mark; cross: |size| * mark * imf, rounded up
    )
    liquidation_price: int | None  # None: no price liquidates it (or no position)
    leverage: int
    isolated: bool
    isolated_margin: int
    funding_paid: int  # since the position opened; negative: received


@dataclass(frozen=True, slots=True)
class AccountView:
    collateral: int
    equity: int  # cross equity plus every isolated position's equity
    cross_equity: int
    cross_initial: int
    cross_maintenance: int
    positions: tuple[PositionView, ...]


def calculate_isolated_liquidation_price(
    size: int, iso_margin: int, maintenance_ppm: int
) -> int | None:
    """The mark ``p`` at which ``iso_margin + size * p == |size| * p * maintenance``.

    ``p = -iso_margin * PPM / (size * PPM - |size| * maintenance_ppm)``, rounded toward the
    current side's danger (up for a long, down for a short) so the figure is never late.
    """
    if size == 0:
        return None
    denominator = size * PPM - abs(size) * maintenance_ppm
    numerator = -iso_margin * PPM
    price = -(-numerator // denominator) if size > 0 else numerator // denominator
    return price if price > 0 else None


def calculate_cross_liquidation_price(
    size: int,
    mark: int,
    maintenance_ppm: int,
    cross_equity: int,
    cross_maintenance_ppm_sum: int,
) -> int | None:
    """Approximate: the mark ``p`` of this market at which the cross account's equity meets
    its maintenance requirement, every other market's mark held where it is.

    With E and M·PPM the account's cross equity and unrounded maintenance sum at the current
    mark ``m``: ``E - s*m + s*p = (M·PPM - |s|*m*mm + |s|*p*mm) / PPM``, so
    ``p = ((E - s*m) * PPM - (M·PPM - |s|*m*mm)) / (|s|*mm - s*PPM)``. It is approximate
    because the other marks move too, funding changes the balance, and the engine rounds the
    requirement up.
    """
    if size == 0:
        return None
    held = abs(size)
    numerator = (cross_equity - size * mark) * PPM - (
        cross_maintenance_ppm_sum - held * mark * maintenance_ppm
    )
    denominator = held * maintenance_ppm - size * PPM
    price = -(-numerator // denominator) if size > 0 else numerator // denominator
    return price if price > 0 else None


def account_view(state: StateReader, account: Account) -> AccountView:
    """An account's balances, margin and positions at the current marks."""
    markets: Sequence[MarketState] = state.markets
    cross_equity = account.collateral
    isolated_equity = 0
    initial_ppm = 0
    maintenance_ppm_sum = 0
    for market_id, position in account.positions.items():
        market = markets[market_id]
        mark = market.mark_price
        size = position.size
        exposure = max(abs(size + position.open_buy), abs(position.open_sell - size))
        if position.isolated:
            isolated_equity += position.iso_margin + size * mark
            # as the engine's cross check: an isolated position's resting orders are margined
            # from the cross balance until they fill
            initial_ppm += (exposure - abs(size)) * mark * position.imf
            continue
        cross_equity += size * mark
        initial_ppm += exposure * mark * position.imf
        maintenance_ppm_sum += abs(size) * mark * market.maintenance_margin_ppm
    views = []
    for market_id, position in account.positions.items():
        market = markets[market_id]
        mark = market.mark_price
        size = position.size
        mm = market.maintenance_margin_ppm
        if position.isolated:
            # the isolated balance is a quote balance (a long's holds minus its entry
            # notional); the margin the position holds is its equity at the mark
            margin_used = position.iso_margin + size * mark
            liquidation = calculate_isolated_liquidation_price(size, position.iso_margin, mm)
        else:
            margin_used = -(-(abs(size) * mark * position.imf) // PPM)
            liquidation = calculate_cross_liquidation_price(
                size, mark, mm, cross_equity, maintenance_ppm_sum
            )
        views.append(
            PositionView(
                market=market_id,
                size=size,
                entry_price=abs(position.entry_notional) // abs(size) if size else 0,
                mark_price=mark,
                unrealized_pnl=size * mark - position.entry_notional,
                margin_used=margin_used,
                liquidation_price=liquidation if mark else None,
                leverage=position.leverage,
                isolated=position.isolated,
                isolated_margin=position.iso_margin,
                funding_paid=position.cum_funding,
            )
        )
    return AccountView(
        collateral=account.collateral,
        equity=cross_equity + isolated_equity,
        cross_equity=cross_equity,
        cross_initial=-(-initial_ppm // PPM),
        cross_maintenance=-(-maintenance_ppm_sum // PPM),
        positions=tuple(views),
    )
