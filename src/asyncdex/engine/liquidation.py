"""Liquidation: closing accounts below maintenance margin without leaving bad debt.

Invariants:
- Runs only after a mark price changed (oracle update, time tick) or funding was paid, on the
  holders of the affected markets, in address order: deterministic. Passes repeat until one
  liquidates nobody, so the makers of liquidation fills are checked too. (The maker of an
  ordinary fill is checked at the next mark update, as on other venues: between marks, every
  margin check uses the last mark.)
- A cross account is liquidated as a whole (all its cross positions); an isolated position
  alone. All the account's orders in scope are cancelled first.
- Each position is closed against the book by a protocol IOC order whose limit is the price
  at which the account's equity plus the whole insurance fund would be spent: it never fills
  at a price the insurance fund could not make good. The protocol order pays no taker fee,
  and its fills pay no maker rebate (the fee pool only pays out what it collected). In a
  batch-auction market it joins the waiting orders in an auction run at once
  (``Engine.process_liquidation_auction``): one uniform price for all, no fee for it.
- What the book cannot absorb is auto-deleveraged: closed at the bankruptcy price against the
  opposite positions ranked by unrealized profit (highest first, then address).
- Afterwards a positive equity pays the liquidation fee (at most all of it) to the insurance
  fund; a negative one is covered by the insurance fund as far as it goes; anything left is
  reported as bad debt, never hidden.
- Money only moves between accounts, the insurance fund and the fee pool: the conserved sum
  is unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncdex.engine.margin import bankruptcy_price
from asyncdex.engine.orderbook import Order
from asyncdex.messages.commands import ALL_MARKETS, TimeInForce
from asyncdex.messages.events import (
    Event,
    LiquidationSettled,
    LiquidationStarted,
    OrderAccepted,
    PositionDeleveraged,
)
from asyncdex.messages.reasons import CancelReason
from asyncdex.types.numeric import mul_ppm_up

if TYPE_CHECKING:
    from asyncdex.engine.state import Account, MarketState, Position
    from asyncdex.engine.transition import Engine


def process_liquidations(engine: Engine, markets: list[MarketState], events: list[Event]) -> None:
    """Liquidate every holder of ``markets`` that is below maintenance margin.

    Liquidation fills can push their makers under water (a stale resting order lifted at the
    new mark), so the pass repeats until one liquidates nobody. It ends: a liquidated account
    holds no position in scope afterwards and cannot trade again within the command.
    """
    while _liquidation_pass(engine, markets, events):
        pass


def _liquidation_pass(engine: Engine, markets: list[MarketState], events: list[Event]) -> bool:
    state = engine.state
    candidates = sorted({address for market in markets for address in market.holders})
    scope = sorted(market.spec.market_id for market in markets)
    liquidated = False
    for address in candidates:
        account = state.accounts[address]
        for market_id in scope:
            position = account.positions.get(market_id)
            if position is not None and position.isolated and position.size:
                market = state.markets[market_id]
                equity, _, maintenance = engine.isolated_risk(market, position)
                if equity < maintenance:
                    liquidate(engine, account, market_id, equity, maintenance, events)
                    liquidated = True
        cross = [
            (market_id, position)
            for market_id, position in account.positions.items()
            if position.size and not position.isolated
        ]
        if not cross or any(state.markets[m].mark_price == 0 for m, _ in cross):
            continue
        equity, _, maintenance = engine.cross_risk(account)
        if equity < maintenance:
            liquidate(engine, account, ALL_MARKETS, equity, maintenance, events)
            liquidated = True
    return liquidated


class _Balance:
    """Where a liquidation reads equity and moves money: the cross account or one position."""

    def __init__(self, engine: Engine, account: Account, market: int) -> None:
        self.engine = engine
        self.account = account
        self.market = market
        self.base_collateral = account.collateral

    def positions(self) -> list[tuple[int, Position]]:
        items = sorted(self.account.positions.items())
        if self.market == ALL_MARKETS:
            return [(m, p) for m, p in items if p.size and not p.isolated]
        return [(m, p) for m, p in items if m == self.market and p.size]

    def equity(self) -> int:
        if self.market == ALL_MARKETS:
            return self.engine.cross_risk(self.account)[0]
        position = self.account.positions.get(self.market)
        mark = self.engine.state.markets[self.market].mark_price
        held = position.iso_margin + position.size * mark if position is not None else 0
        # a flat isolated position has already handed its margin to the cross balance
        return held + self.account.collateral - self.base_collateral

    def credit(self, amount: int) -> None:
        if self.market == ALL_MARKETS:
            self.account.collateral += amount
            return
        position = self.account.positions.get(self.market)
        if position is None or (position.size == 0 and position.iso_margin == 0):
            self.account.collateral += amount
            return
        position.iso_margin += amount
        if position.size == 0 and position.iso_margin >= 0:
            self.account.collateral += position.iso_margin
            position.iso_margin = 0


def liquidate(
    engine: Engine,
    account: Account,
    market_scope: int,
    equity: int,
    maintenance: int,
    events: list[Event],
) -> None:
    state = engine.state
    events.append(LiquidationStarted(account.address, market_scope, equity, maintenance))
    engine.process_cancel_account_orders(account, market_scope, CancelReason.LIQUIDATION, events)
    balance = _Balance(engine, account, market_scope)
    closed_notional = 0
    for market_id, position in balance.positions():
        market = state.markets[market_id]
        spec = market.spec
        size = position.size
        mark = market.mark_price
        limit = bankruptcy_price(size, mark, balance.equity() + state.insurance_fund)
        if size > 0:
            limit = max(-(-limit // spec.tick) * spec.tick, spec.tick)
        else:
            limit = limit // spec.tick * spec.tick
            if limit <= 0:
                continue
        order_id = state.next_order_id
        state.next_order_id += 1
        order = Order(
            order_id,
            account.address,
            market_id,
            size < 0,
            limit,
            abs(size),
            TimeInForce.IOC,
            True,
            0,
            0,
            state.time,
        )
        events.append(
            OrderAccepted(order_id, account.address, market_id, size < 0, limit, abs(size), 0)
        )
        engine.process_execute(account, market, position, order, events, taker_fee_ppm=0)
        closed_notional += (abs(size) - abs(position.size)) * mark
    insurance_paid = _cover_from_insurance(engine, balance)
    remaining = balance.positions()
    if remaining:
        total = sum(abs(p.size) * state.markets[m].mark_price for m, p in remaining)
        equity_left = balance.equity()
        for market_id, position in remaining:
            market = state.markets[market_id]
            share = equity_left * abs(position.size) * market.mark_price // total
            price = bankruptcy_price(position.size, market.mark_price, share)
            closed_notional += abs(position.size) * market.mark_price
            _deleverage(engine, account, market, position, price, events)
    fee = 0
    equity_after = balance.equity()
    if equity_after > 0:
        fee = min(equity_after, mul_ppm_up(closed_notional, _fee_ppm(engine, market_scope)))
        balance.credit(-fee)
        state.insurance_fund += fee
    insurance_paid += _cover_from_insurance(engine, balance)
    bad_debt = max(0, -balance.equity())
    for market_id, position in list(account.positions.items()):
        if market_scope in (ALL_MARKETS, market_id):
            engine._maybe_drop_position(account, market_id, position)
    events.append(LiquidationSettled(account.address, market_scope, fee, insurance_paid, bad_debt))


def _fee_ppm(engine: Engine, market_scope: int) -> int:
    markets = engine.state.markets
    if market_scope == ALL_MARKETS:
        return max(m.spec.liquidation_fee_ppm for m in markets)
    return markets[market_scope].spec.liquidation_fee_ppm


def _cover_from_insurance(engine: Engine, balance: _Balance) -> int:
    shortfall = -balance.equity()
    if shortfall <= 0:
        return 0
    cover = min(shortfall, engine.state.insurance_fund)
    if cover > 0:
        engine.state.insurance_fund -= cover
        balance.credit(cover)
    return cover


def _deleverage(
    engine: Engine,
    account: Account,
    market: MarketState,
    position: Position,
    price: int,
    events: list[Event],
) -> None:
    """Close ``position`` at ``price`` against the most profitable opposite positions."""
    state = engine.state
    market_id = market.spec.market_id
    mark = market.mark_price
    long = position.size > 0
    ranked = []
    for address in market.holders:
        if address == account.address:
            continue
        other = state.accounts[address].positions[market_id]
        if (other.size > 0) != long:
            profit = other.size * mark - other.entry_notional
            ranked.append((-profit, address))
    ranked.sort()
    for _, address in ranked:
        if position.size == 0:
            break
        counterparty = state.accounts[address]
        other = counterparty.positions[market_id]
        quantity = min(abs(position.size), abs(other.size))
        engine.process_trade(account, market, position, not long, quantity, price, 0)
        engine.process_trade(counterparty, market, other, long, quantity, price, 0)
        events.append(
            PositionDeleveraged(market_id, account.address, address, quantity, price, not long)
        )
        if other.size == 0:
            # resting reduce-only orders of a now flat position can never fill
            for order in sorted(other.orders.values(), key=lambda o: o.order_id):
                if order.reduce_only:
                    engine.process_remove_order(order, CancelReason.REDUCE_ONLY, events)
            if market_id in counterparty.positions:
                engine._maybe_drop_position(counterparty, market_id, other)
