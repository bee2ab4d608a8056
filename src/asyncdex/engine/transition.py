"""The state transition: ``Engine.apply(command, timestamp) -> list[Event]``.

Invariants:
- Pure and deterministic: reads no clock, no randomness, no float, no I/O. The same commands
  with the same timestamps give the same events and the same state root on any machine.
- Time only moves forward: a timestamp older than the engine's time is treated as "now".
- Each command first runs what became due by its timestamp (expiries, scheduled cancels,
  premium samples and funding), then the command itself.
- A rejected command emits one ``Rejected`` event and changes nothing else (checks come
  before any change: ``validate_*`` reads nothing, ``check_*`` reads state, ``process_*``
  changes it).
- Price-time priority; the taker trades at the resting order's price. Self-trade
  prevention cancels the resting order of the same account. Fills never cross the taker's
  limit. After every command no book of a continuous market is crossed.
- Batch-auction markets (``ordering = "batch_auction"``, docs/engine.md "Batch auctions"):
  orders do not match on arrival; they wait in the book, which may be crossed between
  auctions. At each multiple of ``auction_interval_ms`` of sequenced time (run by the first
  command at or after it, after that command's due expiries and dead-man switches, before
  funding) every crossing order trades at one uniform price maximizing executed volume, ties
  to the smallest imbalance, then nearest the mark, then the lower price, on the tick grid;
  the side's last level is shared pro rata by size in whole lots (``engine.auction``), so an
  order's arrival inside the interval changes nobody's fills. Every auction fill pays the
  taker fee. IOC and market orders are cancelled after the auction if unfilled; FOK is
  refused; orders are margin-checked as if filled whole at their limit. Right after an
  auction the book is not crossed. A liquidation cannot wait: its protocol order joins the
  waiting orders and the market's auction runs at once, out of schedule; that order pays no
  fee.
- An order is accepted only if the account could carry it fully filled at its limit price
  while still meeting initial margin (or, for an order that does not increase exposure,
  maintenance margin): see ``check_order_margin``.
- Builder fees (Hyperliquid's builder codes): each fill of an order placed with a builder
  pays it ``builder_fee`` tenths of a basis point of the fill's notional, rounded up, from
  the order owner's balance (the isolated one for an isolated position, as the trading fee)
  to the builder's collateral, never through the fee pool: trading still moves no money in
  aggregate. The account must have approved the builder for at least that fee
  (``ApproveBuilderFee``); the order's margin check counts the fee as it counts the taker fee.
- Marks are recomputed on oracle updates and time ticks only; margin checks, triggers and
  liquidations use the stored mark, so an order's own book effect never moves its margin.
- Number bounds: every value the state root commits fits its encoding with room, whatever
  the commands. Collateral held (deposited - withdrawn) is at most ``MAX_COLLATERAL``
  (10^18 micro-USDC, $10^12): a deposit past it is rejected (``COLLATERAL_CAP_EXCEEDED``;
  its L1 message is still consumed), and no withdrawal or isolated-margin move exceeds it
  (``INVALID_AMOUNT``). Prices and order sizes are at most the market's bounds, themselves
  at most ``MAX_MARKET_BOUND`` (10^15), so one fill moves at most 10^30 between balances
  (quote-balance model: a trade moves ``price * size``) and a position by at most 10^15;
  funding moves ``size * rate * index`` (rate capped at 0.4%) per interval. Balances, the
  insurance fund, the fee pool and exit values (``collateral + iso + size * mark``) thus
  grow at most quadratically in the number of fills and funding intervals: after 2^64 of
  them every magnitude is below 2^225, far inside the exit leaf's uint256, the contract's
  uint256 amounts and the packing (any size). Times and ids are unbounded ints in the
  packing; the edges refuse what the APIs cannot carry.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any, Final

from asyncdex.engine import auction, liquidation
from asyncdex.engine.incentives import (
    calculate_block_weights,
    calculate_fee_share,
    calculate_rewards,
)
from asyncdex.engine.margin import (
    MAX_BUILDER_APPROVAL,
    MAX_BUILDER_FEE,
    MIN_BUILDER_ACCOUNT_VALUE,
    builder_fee_charged,
    fee_charged,
    funding_payment,
    initial_fraction_ppm,
    worst_exposure,
)
from asyncdex.engine.orderbook import Order
from asyncdex.engine.reader import StateReader
from asyncdex.engine.snapshot import snapshot
from asyncdex.engine.state import Account, MarketState, Position, State
from asyncdex.engine.state_root import Commitment, commitment, state_root
from asyncdex.messages.codec import COMMAND_TAG
from asyncdex.messages.commands import (
    ALL_MARKETS,
    BATCHABLE,
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
    OrderType,
    PlaceBuilderOrder,
    PlaceOrder,
    PublishOraclePrice,
    ScheduleCancel,
    SetLeverage,
    SetProtectiveMode,
    Signed,
    TimeInForce,
    TriggerKind,
    UpdateIsolatedMargin,
    Withdraw,
)
from asyncdex.messages.events import (
    AgentApproved,
    AuctionCleared,
    BatchItem,
    BuilderFeeApproved,
    BuilderFeePaid,
    CommitteeFeesAccrued,
    CommitteeRewardPaid,
    Deposited,
    Event,
    FundingPaid,
    IsolatedMarginMoved,
    L1MessageConsumed,
    LeverageSet,
    MarkPriceUpdated,
    OraclePriceAccepted,
    OrderAccepted,
    OrderCancelled,
    OrderModified,
    OrderRested,
    OrderTriggered,
    ProtectiveModeSet,
    Rejected,
    ScheduledCancelSet,
    TradeExecuted,
    TriggerArmed,
    Withdrawn,
    new_event,
)
from asyncdex.messages.reasons import CancelReason, Reject
from asyncdex.types.market import EngineConfig
from asyncdex.types.numeric import MAX_COLLATERAL, PPB, PPM, median_low

_NO_TIME: Final = 1 << 62
# Nonces, as Hyperliquid keeps them: per signer the highest NONCES_KEPT; a new one must be
# unused, above the smallest kept, and within (time - 2 days, time + 1 day) of the sequencer.
NONCES_KEPT: Final = 100
NONCE_PAST_MS: Final = 2 * 86_400_000
NONCE_FUTURE_MS: Final = 86_400_000

# Plain int constants (``Final``, never rebound): enum attribute lookups
# cost several times a local comparison on the hot path. The codec's tags never change.
_PLACE_TAG: Final = 2
_MODIFY_TAG: Final = 6
_GTC: Final = 0
_IOC: Final = 1
_FOK: Final = 2
_ALO: Final = 3
_LIMIT: Final = 0
_MARKET: Final = 1
_STOP: Final = 1
_TAKE_PROFIT: Final = 2
_ORDER_TYPES: Final = (_LIMIT, _MARKET)
_TIFS: Final = (_GTC, _IOC, _FOK, _ALO)
assert COMMAND_TAG[PlaceOrder] == _PLACE_TAG and COMMAND_TAG[ModifyOrder] == _MODIFY_TAG
assert [int(t) for t in TimeInForce] == [_GTC, _IOC, _FOK, _ALO]
assert [int(t) for t in OrderType] == [_LIMIT, _MARKET]
assert (int(TriggerKind.STOP), int(TriggerKind.TAKE_PROFIT)) == (_STOP, _TAKE_PROFIT)


class Engine:
    """The deterministic state machine of one venue. Entry points: ``apply`` and ``state``."""

    def __init__(self, config: EngineConfig | None = None, state: State | None = None) -> None:
        if state is None:
            if config is None:
                raise ValueError("an Engine needs a config or a state")
            state = State(config)
        self.state = state
        # the liquidation order of the auction running now (a batch-auction market's
        # liquidation clears at once): it pays no fee. 0 otherwise; never outlives a command.
        self._protocol_order = 0
        self._handlers: dict[type, Callable[[Any, int, list[Event]], None]] = {
            PlaceOrder: self.process_place_order,
            CancelOrder: self.process_cancel_order,
            CancelByClientId: self.process_cancel_by_client_id,
            CancelAll: self.process_cancel_all,
            ModifyOrder: self.process_modify_order,
            Deposit: self.process_deposit,
            Withdraw: self.process_withdraw,
            ScheduleCancel: self.process_schedule_cancel,
            SetLeverage: self.process_set_leverage,
            UpdateIsolatedMargin: self.process_update_isolated_margin,
            PublishOraclePrice: self.process_oracle_price,
            AdvanceTime: self.process_advance_time,
            CommitteeBlock: self.process_committee_block,
            ApproveAgent: self.process_approve_agent,
            Signed: self.process_signed,
            ForceWithdraw: self.process_force_withdraw,
            ForceCancelAll: self.process_force_cancel_all,
            SetProtectiveMode: self.process_set_protective_mode,
            Batch: self.process_batch,
            ApproveBuilderFee: self.process_approve_builder_fee,
            PlaceBuilderOrder: self.process_place_builder_order,
        }

    # ------------------------------------------------------------------ entry point

    def apply(self, command: Command, timestamp: int) -> list[Event]:
        """Apply one sequenced command at ``timestamp`` (ms) and return what happened."""
        state = self.state
        events: list[Event] = []
        if timestamp > state.time:
            state.time = timestamp
        if state.time >= state.next_due:
            self.process_due(events)
        self._handlers[type(command)](command, state.time, events)
        return events

    # ------------------------------------------------------------------ what a node reads
    # (``asyncdex.engine.reader.EngineLike``: the native core offers the same)

    kind = "reference"

    def full_state(self) -> State:
        """The whole state (the live one: read it, never change it)."""
        return self.state

    def state_root(self) -> bytes:
        return state_root(self.state)

    def commitment(self) -> Commitment:
        return commitment(self.state)

    def snapshot(self) -> tuple[bytes, bytes]:
        """(the snapshot of the state, its root): what a snapshot file holds."""
        return snapshot(self.state), state_root(self.state)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _reject(
        events: list[Event], account: bytes, tag: int, market: int, ref: int, reason: Reject
    ) -> None:
        # plain ints in events, never the enum members: a tuple holding only atomic values is
        # one the cycle collector stops tracking (the node keeps many events)
        events.append(new_event(Rejected, (account, tag, market, ref, int(reason))))

    def _market(self, market: int) -> MarketState | None:
        markets = self.state.markets
        if type(market) is int and 0 <= market < len(markets):
            return markets[market]
        return None

    def _position(self, account: Account, market: MarketState) -> Position:
        position = account.positions.get(market.spec.market_id)
        if position is None:
            spec = market.spec
            position = Position(
                spec.max_leverage,
                initial_fraction_ppm(spec.initial_margin_ppm, spec.max_leverage),
            )
            account.positions[market.spec.market_id] = position
        return position

    def _maybe_drop_position(self, account: Account, market: int, position: Position) -> None:
        """Forget a position that carries nothing (keeps state and root minimal)."""
        if (
            position.size == 0
            and not position.orders
            and position.iso_margin == 0
            and not position.isolated
            and position.leverage == self.state.markets[market].spec.max_leverage
        ):
            del account.positions[market]

    # ------------------------------------------------------------------ risk reads

    def cross_risk(
        self,
        account: Account,
        changed: Position | None = None,
        open_buy: int = 0,
        open_sell: int = 0,
    ) -> tuple[int, int, int]:
        """(equity, initial requirement, maintenance requirement) of the cross account.

        Isolated positions add only the initial margin of their resting orders (which moves
        from the cross balance into the isolated one when they fill). ``changed`` names a
        position whose resting totals are taken as ``open_buy``/``open_sell`` instead: the
        account as it would be with one more (or one less) order. Hot path: kept inline.
        """
        markets = self.state.markets
        equity = account.collateral
        initial = 0
        maintenance = 0
        for market_id, position in account.positions.items():
            market = markets[market_id]
            mark = market.mark_price
            size = position.size
            if position is changed:
                long_case = size + open_buy
                short_case = open_sell - size
            else:
                long_case = size + position.open_buy
                short_case = position.open_sell - size
            if long_case < 0:
                long_case = -long_case
            if short_case < 0:
                short_case = -short_case
            exposure = long_case if long_case > short_case else short_case
            held = size if size >= 0 else -size
            if position.isolated:
                initial += (exposure - held) * mark * position.imf
                continue
            equity += size * mark
            initial += exposure * mark * position.imf
            maintenance += held * mark * market.maintenance_margin_ppm
        return equity, -(-initial // PPM), -(-maintenance // PPM)

    def isolated_risk(self, market: MarketState, position: Position) -> tuple[int, int, int]:
        """(equity, initial, maintenance) of one isolated position."""
        mark = market.mark_price
        size = abs(position.size)
        imf = position.imf
        return (
            position.iso_margin + position.size * mark,
            -(-(size * mark * imf) // PPM),
            -(-(size * mark * market.spec.maintenance_margin_ppm) // PPM),
        )

    def check_order_margin(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        is_buy: bool,
        price: int,
        size: int,
        reduce_only: bool,
        tif: int,
        released: int = 0,
        builder_fee: int = 0,
    ) -> bool:
        """Could the account carry this order once it has done what it would do now?

        The part that would fill at once is priced at the book's actual levels; the rest
        rests at ``price`` (GTC, ALO) or is cancelled (IOC, FOK, market). ``released`` is
        resting size of the same side that the order replaces (modify). The account is then
        valued at the mark, less the loss of filling worse than the mark, the taker fee and
        the order's builder fee (``builder_fee``, tenths of a basis point).
        An order that increases the worst exposure must leave equity above initial margin;
        one that does not must still leave it above maintenance margin.
        """
        mark = market.mark_price
        book = market.book
        best = (
            (book.ask_prices[0] if book.ask_prices else None)
            if is_buy
            else (book.bid_prices[-1] if book.bid_prices else None)
        )
        if market.auction_interval:
            # a batch auction fills at one price no worse than the limit: the worst case is
            # the whole order filled at its limit, whatever its time in force
            filled, notional = 0, 0
        elif best is not None and (price >= best if is_buy else price <= best):
            filled, notional = self.calculate_sweep(market, account.address, is_buy, price, size)
        else:
            filled, notional = 0, 0
        if tif in (_IOC, _FOK) and not market.auction_interval:
            size = filled
        resting = size - filled
        cost = fee_charged(notional + price * resting, market.taker_fee_ppm)
        if builder_fee:
            cost += builder_fee_charged(notional + price * resting, builder_fee)
        loss = (notional - mark * filled) if is_buy else (mark * filled - notional)
        diff = price - mark if is_buy else mark - price
        if diff > 0:
            loss += diff * resting
        if loss > 0:
            cost += loss
        held = position.size
        open_buy = position.open_buy
        open_sell = position.open_sell
        before = worst_exposure(held, open_buy, open_sell)
        if not reduce_only:
            if is_buy:
                open_buy += size - released
            else:
                open_sell += size - released
        increases = worst_exposure(held, open_buy, open_sell) > before
        equity, initial, maintenance = self.cross_risk(account, position, open_buy, open_sell)
        if position.isolated and not increases:
            iso_equity, _, iso_maintenance = self.isolated_risk(market, position)
            return iso_equity - cost >= iso_maintenance
        if increases:
            # protective mode (settlement lagging): new exposure needs twice the margin
            return equity - cost >= (initial * 2 if self.state.protective else initial)
        return equity - cost >= maintenance

    @staticmethod
    def calculate_sweep(
        market: MarketState, account: bytes, is_buy: bool, limit: int, size: int
    ) -> tuple[int, int]:
        """(size, notional) an order would take from the book now, others' orders only."""
        book = market.book
        levels = book.asks if is_buy else book.bids
        prices = book.ask_prices if is_buy else reversed(book.bid_prices)
        filled = 0
        notional = 0
        for level_price in prices:
            if (level_price > limit) if is_buy else (level_price < limit):
                break
            for order in levels[level_price].values():
                if order.account != account:
                    take = min(order.size, size - filled)
                    filled += take
                    notional += take * level_price
                    if filled == size:
                        return filled, notional
        return filled, notional

    # ------------------------------------------------------------------ orders

    @staticmethod
    def validate_order_numbers(market: MarketState, price: int, size: int) -> Reject | None:
        if type(size) is not int or size <= 0:
            return Reject.INVALID_SIZE
        if size > market.max_order_size:
            return Reject.SIZE_TOO_LARGE
        if size % market.lot:
            return Reject.SIZE_OFF_LOT
        if type(price) is not int or price <= 0:
            return Reject.INVALID_PRICE
        if price > market.max_price:
            return Reject.PRICE_TOO_LARGE
        if price % market.tick:
            return Reject.PRICE_OFF_TICK
        return None

    def market_order_bound(self, market: MarketState, is_buy: bool) -> int:
        """Worst price a market order may fill at: mark +- slippage, on tick, towards mark."""
        spec = market.spec
        mark = market.mark_price
        band = mark * spec.market_slippage_ppm // PPM
        if is_buy:
            return (mark + band) // spec.tick * spec.tick
        return -(-(mark - band) // spec.tick) * spec.tick

    def process_place_order(
        self,
        cmd: PlaceOrder,
        now: int,
        events: list[Event],
        builder: bytes = b"",
        builder_fee: int = 0,
        tag: int = _PLACE_TAG,
    ) -> None:
        """Place an order; ``builder`` (b"" for none) is paid ``builder_fee`` on each fill
        (``process_place_builder_order`` checked both; ``tag`` is the placing command's)."""
        # fields unpacked once: attribute access on a NamedTuple is a descriptor call each time
        (
            address,
            market_id,
            is_buy,
            price,
            size,
            tif,
            order_type,
            reduce_only,
            client_id,
            expiry,
            trigger_price,
            trigger_kind,
        ) = cmd
        state = self.state
        market = self._market(market_id)
        if market is None:
            return self._reject(events, address, tag, market_id, client_id, Reject.UNKNOWN_MARKET)
        spec = market.spec
        reason = None
        is_market = order_type == _MARKET
        if (
            order_type not in _ORDER_TYPES
            or tif not in _TIFS
            or (is_market and tif == _ALO)
            or (tif == _FOK and market.auction_interval)
        ):
            # fill-or-kill needs an immediate fill: a batch-auction market has none to offer
            reason = Reject.INVALID_ORDER_TYPE
        else:
            reason = self.validate_order_numbers(
                market, price or spec.tick if is_market else price, size
            )
        if reason is None and trigger_kind:
            bad_price = self.validate_order_numbers(market, trigger_price, size) is not None
            if bad_price or trigger_kind not in (_STOP, _TAKE_PROFIT):
                reason = Reject.INVALID_TRIGGER
        elif reason is None and trigger_price:
            reason = Reject.INVALID_TRIGGER
        if reason is None and expiry and expiry <= now:
            reason = Reject.ALREADY_EXPIRED
        if reason is not None:
            return self._reject(events, address, tag, market_id, client_id, reason)
        account = state.accounts.get(address)
        if account is None:
            reason = Reject.UNKNOWN_ACCOUNT
        elif client_id and client_id in account.client_ids:
            reason = Reject.DUPLICATE_CLIENT_ID
        elif builder and builder not in account.builders:
            reason = Reject.BUILDER_NOT_APPROVED
        elif builder and builder_fee > account.builders[builder]:
            reason = Reject.BUILDER_FEE_ABOVE_APPROVED
        elif market.mark_price == 0:
            reason = Reject.NO_MARK_PRICE
        else:
            open_orders = 0
            for held_position in account.positions.values():
                open_orders += len(held_position.orders)
            if open_orders >= state.config.max_open_orders_per_account:
                reason = Reject.TOO_MANY_ORDERS
        if reason is not None:
            return self._reject(events, address, tag, market_id, client_id, reason)
        assert account is not None
        if is_market:
            if tif != _FOK:
                tif = _IOC
            if not trigger_kind:
                bound = self.market_order_bound(market, is_buy)
                if price == 0 or (price > bound if is_buy else price < bound):
                    price = bound
        position = account.positions.get(market_id)
        if reduce_only:
            held = position.size if position is not None else 0
            if held == 0 or (held > 0) == is_buy:
                return self._reject(
                    events, address, tag, market_id, client_id, Reject.REDUCE_ONLY_WOULD_INCREASE
                )
            size = min(size, abs(held))
        elif (price or trigger_price) * size < spec.min_order_value:
            return self._reject(events, address, tag, market_id, client_id, Reject.BELOW_MIN_VALUE)
        created = position is None
        if position is None:
            position = self._position(account, market)
        if not trigger_kind:
            reason = self.check_matching(market, account, is_buy, price, size, tif)
            if reason is None and not self.check_order_margin(
                account, market, position, is_buy, price, size, reduce_only, tif, 0, builder_fee
            ):
                reason = Reject.INSUFFICIENT_MARGIN
            if reason is not None:
                if created:
                    del account.positions[market_id]
                return self._reject(events, address, tag, market_id, client_id, reason)
        order_id = state.next_order_id
        state.next_order_id = order_id + 1
        order = Order(
            order_id,
            address,
            market_id,
            is_buy,
            price,
            size,
            tif,
            reduce_only,
            client_id,
            expiry,
            now,
            trigger_kind,
            trigger_price,
            order_type,
            builder,
            builder_fee,
        )
        events.append(
            new_event(OrderAccepted, (order_id, address, market_id, is_buy, price, size, client_id))
        )
        if trigger_kind:
            self.process_arm_trigger(account, market, position, order, events)
        else:
            self.process_execute(account, market, position, order, events)
        return None

    def process_place_builder_order(
        self, cmd: PlaceBuilderOrder, now: int, events: list[Event]
    ) -> None:
        """A ``PlaceOrder`` paying a builder: the builder and its fee are checked here (a
        20-byte address, a fee within the perp cap) and against the account's approval with
        the order's other state checks."""
        builder, builder_fee = cmd.builder, cmd.builder_fee
        tag = COMMAND_TAG[PlaceBuilderOrder]
        if (
            type(builder) is not bytes
            or len(builder) != 20
            or type(builder_fee) is not int
            or not 0 <= builder_fee <= MAX_BUILDER_FEE
        ):
            return self._reject(
                events, cmd.account, tag, cmd.market, cmd.client_id, Reject.INVALID_BUILDER_FEE
            )
        order = PlaceOrder(
            cmd.account, cmd.market, cmd.is_buy, cmd.price, cmd.size, cmd.tif, cmd.order_type,
            cmd.reduce_only, cmd.client_id, cmd.expiry, cmd.trigger_price, cmd.trigger_kind,
        )  # fmt: skip
        self.process_place_order(order, now, events, builder, builder_fee, tag)
        return None

    def check_matching(
        self, market: MarketState, account: Account, is_buy: bool, price: int, size: int, tif: int
    ) -> Reject | None:
        """Post-only must not cross; fill-or-kill must be fully fillable against others."""
        book = market.book
        if tif == _ALO:
            best = book.best_ask() if is_buy else book.best_bid()
            if best is not None and (price >= best if is_buy else price <= best):
                return Reject.POST_ONLY_WOULD_CROSS
        elif tif == _FOK:
            levels = book.asks if is_buy else book.bids
            prices = book.ask_prices if is_buy else reversed(book.bid_prices)
            available = 0
            for level_price in prices:
                if price < level_price if is_buy else price > level_price:
                    break
                for order in levels[level_price].values():
                    if order.account != account.address:
                        available += order.size
                if available >= size:
                    return None
            return Reject.FOK_NOT_FILLED
        return None

    def process_execute(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        order: Order,
        events: list[Event],
        taker_fee_ppm: int | None = None,
    ) -> None:
        """Match ``order`` against the book, then rest or cancel what is left.

        In a batch-auction market an order does not match on arrival: it waits in the book
        for the next auction whatever its time in force (``process_queue_for_auction``). A
        protocol order (a liquidation's, ``taker_fee_ppm`` given) cannot wait: it enters the
        book and an auction of the market runs at once (``process_liquidation_auction``).
        """
        if market.auction_interval:
            if taker_fee_ppm is None:
                self.process_queue_for_auction(account, market, position, order, events)
            else:
                self.process_liquidation_auction(account, market, position, order, events)
            return
        book = market.book
        is_buy = order.is_buy
        prices = book.ask_prices if is_buy else book.bid_prices
        if prices and (order.price >= prices[0] if is_buy else order.price <= prices[-1]):
            self.process_match(account, position, market, order, events, taker_fee_ppm)
            # a self-trade cancel may have dropped the (then empty) position: put it back
            account.positions[market.spec.market_id] = position
        if order.size == 0:
            self._maybe_drop_position(account, market.spec.market_id, position)
            return
        if order.tif == _GTC or order.tif == _ALO:
            self.process_rest(account, market, position, order, events)
        else:
            events.append(
                new_event(
                    OrderCancelled,
                    (
                        order.order_id,
                        order.account,
                        order.market,
                        order.size,
                        int(CancelReason.IOC_REMAINDER),
                    ),
                )
            )
            self._maybe_drop_position(account, market.spec.market_id, position)

    def process_rest(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        order: Order,
        events: list[Event],
    ) -> None:
        """Put what is left of ``order`` in the book (a reduce-only order that can no
        longer reduce is cancelled instead)."""
        book = market.book
        is_buy = order.is_buy
        state = self.state
        if order.reduce_only:
            held = position.size
            if held == 0 or (held > 0) == is_buy:
                events.append(
                    new_event(
                        OrderCancelled,
                        (
                            order.order_id,
                            order.account,
                            order.market,
                            order.size,
                            int(CancelReason.REDUCE_ONLY),
                        ),
                    )
                )
                self._maybe_drop_position(account, market.spec.market_id, position)
                return
        elif is_buy:
            position.open_buy += order.size
        else:
            position.open_sell += order.size
        book.add(order)
        position.orders[order.order_id] = order
        state.orders[order.order_id] = order
        if order.client_id:
            account.client_ids[order.client_id] = order.order_id
        if order.expiry:
            heapq.heappush(state.expiries, (order.expiry, order.order_id))
            if order.expiry < state.next_due:
                state.next_due = order.expiry
        events.append(new_event(OrderRested, (order.order_id, order.price, order.size)))

    # ------------------------------------------------------------------ batch auctions

    def process_queue_for_auction(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        order: Order,
        events: list[Event],
    ) -> None:
        """Rest an order of a batch-auction market until the next auction, any time in force.

        Self-trade prevention happens here, as continuous matching does it: the account's
        own orders on the other side that the new one crosses are cancelled. So no account
        ever has a buy and a sell in one auction that could both fill.
        """
        is_buy = order.is_buy
        limit = order.price
        triggers = market.triggers
        # the account's own orders in this market, not the crossing part of the book: a
        # crossed book between auctions can be deep, an account's orders are bounded
        own = [
            resting
            for resting in position.orders.values()
            if resting.is_buy != is_buy
            and resting.order_id not in triggers
            and (resting.price <= limit if is_buy else resting.price >= limit)
        ]
        for resting in sorted(own, key=_order_id):
            self.process_remove_order(resting, CancelReason.SELF_TRADE, events)
        # a self-trade cancel may have dropped the (then empty) position: put it back
        account.positions[market.spec.market_id] = position
        self.process_rest(account, market, position, order, events)

    def process_liquidation_auction(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        order: Order,
        events: list[Event],
    ) -> None:
        """A liquidation in a batch-auction market: its protocol IOC order joins the orders
        waiting in the book and the market's auction runs now, out of schedule (the account
        is below maintenance now; the scheduled auction still runs at its time). It clears
        with the others at one uniform price, never beyond its limit, and pays no fee; what
        it could not sell is cancelled with the other IOC remainders, and the liquidation
        goes on (insurance, deleveraging) as in a continuous market."""
        self.process_rest(account, market, position, order, events)
        self._protocol_order = order.order_id
        try:
            self.process_auction(market, events)
        finally:
            self._protocol_order = 0

    def process_auction(self, market: MarketState, events: list[Event]) -> None:
        """Clear a batch-auction market at one uniform price (``auction.calculate_clearing``).

        1. Reduce-only orders are brought within their positions (oldest first; one that can
           no longer reduce is cancelled, one too large shrinks in place).
        2. Each side's crossing orders fill best price first; the level where the side's
           volume runs out is shared pro rata by size (``auction.allocate_pro_rata``).
        3. The fills are paired into trades at the clearing price, both sides in (owner,
           size, order id) order, so the pairing ignores arrival; every fill pays the taker
           fee (there is no resting liquidity taken in a batch: all its orders trade at once).
        4. IOC (and market) orders left over are cancelled.
        """
        state = self.state
        spec = market.spec
        market_id = spec.market_id
        book = market.book
        accounts = state.accounts
        budgets: dict[bytes, int] = {}
        pending = sorted(
            (order for order in book.orders_in_priority() if order.reduce_only), key=_order_id
        )
        for order in pending:
            held = accounts[order.account].positions[market_id].size
            left = budgets.get(order.account, abs(held))
            if held == 0 or (held > 0) == order.is_buy or left == 0:
                self.process_remove_order(order, CancelReason.REDUCE_ONLY, events)
                continue
            if order.size > left:
                order.size = left
                events.append(new_event(OrderModified, (order.order_id, order.price, left, True)))
            budgets[order.account] = left - order.size
        bids = [
            (price, order.size) for price, level in book.bids.items() for order in level.values()
        ]
        asks = [
            (price, order.size) for price, level in book.asks.items() for order in level.values()
        ]
        clearing = auction.calculate_clearing(bids, asks, market.tick, market.mark_price)
        if clearing is not None:
            price = clearing.price
            events.append(
                new_event(
                    AuctionCleared,
                    (market_id, price, clearing.volume, clearing.demand, clearing.supply),
                )
            )
            buys = self.calculate_auction_fills(market, True, price, clearing.volume)
            sells = self.calculate_auction_fills(market, False, price, clearing.volume)
            self.process_auction_trades(market, buys, sells, price, events)
        leftovers = [order for order in book.orders_in_priority() if order.tif == _IOC]
        for order in sorted(leftovers, key=_order_id):
            self.process_remove_order(order, CancelReason.IOC_REMAINDER, events)

    def calculate_auction_fills(
        self, market: MarketState, is_buy: bool, price: int, volume: int
    ) -> list[tuple[Order, int]]:
        """(order, size) for one side's fills: whole levels best first, the level where
        ``volume`` runs out shared pro rata."""
        book = market.book
        levels = book.bids if is_buy else book.asks
        prices = reversed(book.bid_prices) if is_buy else iter(book.ask_prices)
        fills: list[tuple[Order, int]] = []
        left = volume
        for level_price in prices:
            if left == 0 or ((level_price < price) if is_buy else (level_price > price)):
                break
            level = list(levels[level_price].values())
            total = 0
            for order in level:
                total += order.size
            if total <= left:
                fills.extend((order, order.size) for order in level)
                left -= total
                continue
            shares = auction.allocate_pro_rata(
                [order.size for order in level],
                [order.account for order in level],
                left,
                market.lot,
            )
            fills.extend(
                (order, share) for order, share in zip(level, shares, strict=True) if share
            )
            left = 0
        return fills

    def process_auction_trades(
        self,
        market: MarketState,
        buys: list[tuple[Order, int]],
        sells: list[tuple[Order, int]],
        price: int,
        events: list[Event],
    ) -> None:
        """Pair the buy and sell fills into trades at ``price`` (the older order of a pair is
        named the maker; both pay the taker fee, except a liquidation's order: none)."""
        fee_ppm = market.taker_fee_ppm
        market_id = market.spec.market_id
        accounts = self.state.accounts
        buys = sorted(buys, key=_fill_key)
        sells = sorted(sells, key=_fill_key)
        buy_left = [size for _, size in buys]
        sell_left = [size for _, size in sells]
        i = j = 0
        while i < len(buys) and j < len(sells):
            buy, sell = buys[i][0], sells[j][0]
            quantity = min(buy_left[i], sell_left[j])
            maker, taker = (buy, sell) if buy.order_id < sell.order_id else (sell, buy)
            protocol = self._protocol_order
            maker_fee_ppm = 0 if maker.order_id == protocol else fee_ppm
            taker_fee_ppm = 0 if taker.order_id == protocol else fee_ppm
            maker_account = accounts[maker.account]
            taker_account = accounts[taker.account]
            taker_position = taker_account.positions[market_id]
            if not taker.reduce_only:
                # both sides rest in the book: the taker's open total shrinks too
                if taker.is_buy:
                    taker_position.open_buy -= quantity
                else:
                    taker_position.open_sell -= quantity
            self.process_fill(
                market,
                maker_account,
                maker,
                taker_account,
                taker_position,
                taker,
                quantity,
                price,
                events,
                taker_fee_ppm,
                maker_fee_ppm,
            )
            buy_left[i] -= quantity
            sell_left[j] -= quantity
            for order in (maker, taker):
                if order.size == 0:
                    self.process_retire_order(accounts[order.account], order)
            if buy_left[i] == 0:
                i += 1
            if sell_left[j] == 0:
                j += 1

    def process_match(
        self,
        taker_account: Account,
        taker_position: Position,
        market: MarketState,
        taker: Order,
        events: list[Event],
        taker_fee_ppm: int | None = None,
    ) -> None:
        book = market.book
        is_buy = taker.is_buy
        levels = book.asks if is_buy else book.bids
        prices = book.ask_prices if is_buy else book.bid_prices
        accounts = self.state.accounts
        limit = taker.price
        while taker.size and prices:
            best = prices[0] if is_buy else prices[-1]
            if (best > limit) if is_buy else (best < limit):
                break
            level = levels[best]
            while taker.size and level:
                maker = next(iter(level.values()))
                if maker.account == taker.account:
                    self.process_remove_order(maker, CancelReason.SELF_TRADE, events)
                    continue
                quantity = taker.size if taker.size < maker.size else maker.size
                maker_account = accounts[maker.account]
                if maker.reduce_only:
                    held = maker_account.positions[market.spec.market_id].size
                    if held == 0 or (held > 0) == maker.is_buy:
                        self.process_remove_order(maker, CancelReason.REDUCE_ONLY, events)
                        continue
                    if abs(held) < quantity:
                        quantity = abs(held)
                self.process_fill(
                    market,
                    maker_account,
                    maker,
                    taker_account,
                    taker_position,
                    taker,
                    quantity,
                    best,
                    events,
                    taker_fee_ppm,
                )
                if maker.size == 0:
                    self.process_retire_order(maker_account, maker)
                elif maker.reduce_only:
                    held = maker_account.positions[market.spec.market_id].size
                    if held == 0 or (held > 0) == maker.is_buy:
                        # the maker's position is flat now: its reduce-only remainder must go
                        self.process_remove_order(maker, CancelReason.REDUCE_ONLY, events)

    def process_fill(
        self,
        market: MarketState,
        maker_account: Account,
        maker: Order,
        taker_account: Account,
        taker_position: Position,
        taker: Order,
        quantity: int,
        price: int,
        events: list[Event],
        taker_fee_ppm: int | None,
        maker_fee_ppm: int | None = None,
    ) -> None:
        spec = market.spec
        notional = price * quantity
        maker_fee = fee_charged(
            notional, spec.maker_fee_ppm if maker_fee_ppm is None else maker_fee_ppm
        )
        if taker_fee_ppm is not None and maker_fee < 0:
            # a protocol order (liquidation) pays no taker fee, so there is nothing to fund a
            # maker rebate from: the fee pool never pays out what it did not collect
            maker_fee = 0
        taker_fee = fee_charged(
            notional, spec.taker_fee_ppm if taker_fee_ppm is None else taker_fee_ppm
        )
        # builder fees round up like every charge; the builder gets exactly what is paid
        maker_builder_fee = builder_fee_charged(notional, maker.builder_fee) if maker.builder else 0
        taker_builder_fee = builder_fee_charged(notional, taker.builder_fee) if taker.builder else 0
        maker_position = maker_account.positions[spec.market_id]
        if not maker.reduce_only:
            if maker.is_buy:
                maker_position.open_buy -= quantity
            else:
                maker_position.open_sell -= quantity
        self.process_trade(
            maker_account,
            market,
            maker_position,
            maker.is_buy,
            quantity,
            price,
            maker_fee + maker_builder_fee,
        )
        self.process_trade(
            taker_account,
            market,
            taker_position,
            taker.is_buy,
            quantity,
            price,
            taker_fee + taker_builder_fee,
        )
        self.state.fee_pool += maker_fee + taker_fee
        maker.size -= quantity
        taker.size -= quantity
        events.append(
            new_event(
                TradeExecuted,
                (
                    spec.market_id,
                    price,
                    quantity,
                    taker.is_buy,
                    maker.order_id,
                    taker.order_id,
                    maker.account,
                    taker.account,
                    maker_fee,
                    taker_fee,
                ),
            )
        )
        if maker_builder_fee:
            self.process_pay_builder(spec.market_id, maker, maker_builder_fee, events)
        if taker_builder_fee:
            self.process_pay_builder(spec.market_id, taker, taker_builder_fee, events)

    def process_pay_builder(
        self, market_id: int, order: Order, amount: int, events: list[Event]
    ) -> None:
        """Credit the builder what the order's owner was just charged with its fill."""
        accounts = self.state.accounts
        builder = accounts.get(order.builder)
        if builder is None:
            # approval needed the builder's account; kept here so a credit never has nowhere
            # to go (accounts are never removed)
            builder = accounts[order.builder] = Account(order.builder)
        builder.collateral += amount
        events.append(
            new_event(
                BuilderFeePaid, (market_id, order.order_id, order.account, order.builder, amount)
            )
        )

    def process_trade(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        is_buy: bool,
        quantity: int,
        price: int,
        fee: int,
    ) -> None:
        """Move one side of a trade into an account: position, quote flow, fee.

        The quote flow is ``-price * delta``: a buyer's balance goes down by the notional,
        the seller's up by the same amount, so trading moves no money in aggregate.
        """
        old = position.size
        delta = quantity if is_buy else -quantity
        new = old + delta
        flow = -price * delta - fee
        if position.isolated:
            position.iso_margin += flow
            added = abs(new) - abs(old)
            if added > 0:
                # the isolated position takes its initial margin from the cross balance
                moved = -(-(price * added * position.imf) // PPM)
                account.collateral -= moved
                position.iso_margin += moved
        else:
            account.collateral += flow
        if old == 0 or (old > 0) == (delta > 0):
            position.entry_notional += price * delta
        elif abs(delta) <= abs(old):
            position.entry_notional = position.entry_notional * new // old if new else 0
        else:
            position.entry_notional = price * new
        position.size = new
        if new == 0:
            del market.holders[account.address]
            position.cum_funding = 0
            if position.isolated and position.iso_margin >= 0:
                # a flat isolated position hands its margin back; a negative one (only a
                # liquidation can leave it) stays for the insurance fund to cover
                account.collateral += position.iso_margin
                position.iso_margin = 0
        elif old == 0:
            market.holders[account.address] = None

    def process_take_off(
        self, account: Account, market: MarketState, position: Position, order: Order
    ) -> None:
        """Take a live order off its book (or out of the armed triggers) and out of every
        index; its resting size leaves the position's open totals."""
        if order.order_id in market.triggers:
            del market.triggers[order.order_id]
        else:
            market.book.remove(order)
            if not order.reduce_only:
                if order.is_buy:
                    position.open_buy -= order.size
                else:
                    position.open_sell -= order.size
        del position.orders[order.order_id]
        del self.state.orders[order.order_id]
        if order.client_id:
            del account.client_ids[order.client_id]

    def process_retire_order(self, account: Account, order: Order) -> None:
        """Drop a fully filled order (size 0) from the book and every index."""
        position = account.positions[order.market]
        self.process_take_off(account, self.state.markets[order.market], position, order)
        self._maybe_drop_position(account, order.market, position)

    def process_remove_order(self, order: Order, reason: CancelReason, events: list[Event]) -> None:
        """Take a live order (resting or armed) out of the market and every index."""
        state = self.state
        account = state.accounts[order.account]
        position = account.positions[order.market]
        self.process_take_off(account, state.markets[order.market], position, order)
        events.append(
            new_event(
                OrderCancelled,
                (order.order_id, order.account, order.market, order.size, int(reason)),
            )
        )
        self._maybe_drop_position(account, order.market, position)

    def _owned_order(
        self, account: bytes, market: int, order_id: int, tag: int, events: list[Event]
    ) -> Order | None:
        order = self.state.orders.get(order_id)
        if order is None or order.market != market:
            self._reject(events, account, tag, market, order_id, Reject.UNKNOWN_ORDER)
            return None
        if order.account != account:
            self._reject(events, account, tag, market, order_id, Reject.NOT_ORDER_OWNER)
            return None
        return order

    def process_cancel_order(self, cmd: CancelOrder, now: int, events: list[Event]) -> None:
        order = self._owned_order(
            cmd.account, cmd.market, cmd.order_id, COMMAND_TAG[CancelOrder], events
        )
        if order is not None:
            self.process_remove_order(order, CancelReason.USER, events)

    def process_cancel_by_client_id(
        self, cmd: CancelByClientId, now: int, events: list[Event]
    ) -> None:
        account = self.state.accounts.get(cmd.account)
        order_id = account.client_ids.get(cmd.client_id) if account and cmd.client_id else None
        order = self.state.orders.get(order_id) if order_id else None
        if order is None or order.market != cmd.market:
            return self._reject(
                events,
                cmd.account,
                COMMAND_TAG[CancelByClientId],
                cmd.market,
                cmd.client_id,
                Reject.UNKNOWN_CLIENT_ID,
            )
        self.process_remove_order(order, CancelReason.USER, events)
        return None

    def process_cancel_all(self, cmd: CancelAll, now: int, events: list[Event]) -> None:
        if cmd.market != ALL_MARKETS and self._market(cmd.market) is None:
            return self._reject(
                events, cmd.account, COMMAND_TAG[CancelAll], cmd.market, 0, Reject.UNKNOWN_MARKET
            )
        account = self.state.accounts.get(cmd.account)
        if account is None:
            return self._reject(
                events, cmd.account, COMMAND_TAG[CancelAll], cmd.market, 0, Reject.UNKNOWN_ACCOUNT
            )
        self.process_cancel_account_orders(account, cmd.market, CancelReason.USER, events)
        return None

    def process_cancel_account_orders(
        self, account: Account, market: int, reason: CancelReason, events: list[Event]
    ) -> None:
        for market_id in sorted(account.positions):
            if market in (ALL_MARKETS, market_id):
                position = account.positions.get(market_id)
                if position is not None:
                    for order in sorted(position.orders.values(), key=_order_id):
                        self.process_remove_order(order, reason, events)

    def process_modify_order(self, cmd: ModifyOrder, now: int, events: list[Event]) -> None:
        # The hot path of market makers (most of a venue's traffic): checks are inlined and the
        # command unpacked once.
        address, market_id, order_id, price, size = cmd
        state = self.state
        order = state.orders.get(order_id)
        reason = None
        if order is None or order.market != market_id:
            unknown_market = self._market(market_id) is None
            reason = Reject.UNKNOWN_MARKET if unknown_market else Reject.UNKNOWN_ORDER
        elif order.account != address:
            reason = Reject.NOT_ORDER_OWNER
        else:
            market = state.markets[market_id]
            reason = self.validate_order_numbers(market, price, size)
            if reason is None and not order.reduce_only and price * size < market.min_order_value:
                reason = Reject.BELOW_MIN_VALUE
        if reason is not None:
            return self._reject(events, address, _MODIFY_TAG, market_id, order_id, reason)
        assert order is not None
        account = state.accounts[address]
        position = account.positions[market_id]
        armed = order.order_id in market.triggers
        if armed or (price == order.price and size <= order.size):
            # shrinking in place keeps time priority; an armed trigger has no priority yet
            if not armed and not order.reduce_only:
                if order.is_buy:
                    position.open_buy -= order.size - size
                else:
                    position.open_sell -= order.size - size
            order.price = price
            order.size = size
            events.append(new_event(OrderModified, (order.order_id, price, size, not armed)))
            return None
        if order.tif == _ALO or order.tif == _FOK:
            reason = self.check_matching(market, account, order.is_buy, price, size, order.tif)
        if reason is None and not self.check_order_margin(
            account,
            market,
            position,
            order.is_buy,
            price,
            size,
            order.reduce_only,
            order.tif,
            0 if order.reduce_only else order.size,
            order.builder_fee,
        ):
            reason = Reject.INSUFFICIENT_MARGIN
        if reason is not None:
            return self._reject(events, address, _MODIFY_TAG, market_id, order_id, reason)
        self.process_take_off(account, market, position, order)
        order.price = price
        order.size = size
        order.orig_size = size
        order.timestamp = now
        events.append(new_event(OrderModified, (order.order_id, price, size, False)))
        self.process_execute(account, market, position, order, events)
        return None

    # ------------------------------------------------------------------ triggers

    @staticmethod
    def trigger_fires(order: Order, mark: int) -> bool:
        """Stops fire when the mark moves against a position the order would close; take-profits
        when it moves in favour: a sell stop below, a sell take-profit above, buys mirrored."""
        above = mark >= order.trigger_price
        below = mark <= order.trigger_price
        if order.trigger_kind == _STOP:
            return above if order.is_buy else below
        return below if order.is_buy else above

    def process_arm_trigger(
        self,
        account: Account,
        market: MarketState,
        position: Position,
        order: Order,
        events: list[Event],
    ) -> None:
        state = self.state
        market.triggers[order.order_id] = order
        position.orders[order.order_id] = order
        state.orders[order.order_id] = order
        if order.client_id:
            account.client_ids[order.client_id] = order.order_id
        if order.expiry:
            # an armed trigger expires like a resting order (a second heap entry for it once
            # it rests is harmless: the expiry pass skips orders already gone)
            heapq.heappush(state.expiries, (order.expiry, order.order_id))
            state.next_due = min(state.next_due, order.expiry)
        events.append(TriggerArmed(order.order_id, order.trigger_price))
        if self.trigger_fires(order, market.mark_price):
            self.process_fire_triggers(market, events)

    def process_fire_triggers(self, market: MarketState, events: list[Event]) -> None:
        mark = market.mark_price
        fired = [o for o in market.triggers.values() if self.trigger_fires(o, mark)]
        state = self.state
        for order in fired:
            account = state.accounts[order.account]
            position = account.positions[order.market]
            self.process_take_off(account, market, position, order)
            events.append(OrderTriggered(order.order_id, mark))
            order.trigger_kind = 0
            if order.order_type == _MARKET:
                # mark +- slippage, unless the trader named a tighter worst price
                bound = self.market_order_bound(market, order.is_buy)
                if order.price == 0 or (
                    order.price > bound if order.is_buy else order.price < bound
                ):
                    order.price = bound
                order.tif = _IOC
            reason = None
            if order.reduce_only:
                held = position.size
                if held == 0 or (held > 0) == order.is_buy:
                    reason = CancelReason.REDUCE_ONLY
                else:
                    order.size = min(order.size, abs(held))
            if reason is None and not self.check_order_margin(
                account,
                market,
                position,
                order.is_buy,
                order.price,
                order.size,
                order.reduce_only,
                order.tif,
                0,
                order.builder_fee,
            ):
                reason = CancelReason.MARGIN
            if (
                reason is None
                and order.tif == _ALO
                and self.check_matching(
                    market, account, order.is_buy, order.price, order.size, order.tif
                )
            ):
                # a post-only trigger that would cross now takes liquidity as a plain limit
                order.tif = _GTC
            if reason is not None:
                events.append(
                    new_event(
                        OrderCancelled,
                        (order.order_id, order.account, order.market, order.size, int(reason)),
                    )
                )
                self._maybe_drop_position(account, order.market, position)
                continue
            self.process_execute(account, market, position, order, events)

    # ------------------------------------------------------------------ authorization

    def check_authorization(
        self, signer: bytes, nonce: int, expires_after: int, inner: Command, now: int
    ) -> Reject | None:
        """May ``signer`` act for the command's account, with this nonce, now?"""
        return check_authorization(self.state, signer, nonce, expires_after, inner, now)

    def process_signed(self, cmd: Signed, now: int, events: list[Event]) -> None:
        signer, nonce, expires_after, inner = cmd
        reason = self.check_authorization(signer, nonce, expires_after, inner, now)
        if reason is not None:
            market = getattr(inner, "market", -1)
            return self._reject(events, signer, COMMAND_TAG[type(inner)], market, nonce, reason)
        kept = self.state.nonces.get(signer)
        if kept is None:
            self.state.nonces[signer] = [nonce]
        else:
            # the common case, a nonce above all kept ones, is an append
            if nonce > kept[-1]:
                kept.append(nonce)
            else:
                insort(kept, nonce)
            if len(kept) > NONCES_KEPT:
                del kept[0]
        self._handlers[type(inner)](inner, now, events)
        return None

    def process_batch(self, cmd: Batch, now: int, events: list[Event]) -> None:
        """Each inner command in order, as if each were signed alone; one may fail alone."""
        handlers = self._handlers
        account = cmd.account
        for index, inner in enumerate(cmd.commands):
            events.append(new_event(BatchItem, (index,)))
            kind = type(inner)
            if kind not in BATCHABLE or inner.account != account:  # type: ignore[union-attr]
                market = getattr(inner, "market", -1)
                self._reject(events, account, COMMAND_TAG[kind], market, 0, Reject.NOT_BATCHABLE)
                continue
            handlers[kind](inner, now, events)

    def process_approve_agent(self, cmd: ApproveAgent, now: int, events: list[Event]) -> None:
        state = self.state
        tag = COMMAND_TAG[ApproveAgent]
        account = state.accounts.get(cmd.account)
        if account is None:
            return self._reject(events, cmd.account, tag, -1, 0, Reject.UNKNOWN_ACCOUNT)
        master = state.agent_master.get(cmd.agent)
        if (
            len(cmd.agent) != 20
            or cmd.agent == cmd.account
            or (master is not None and master != cmd.account)
        ):
            return self._reject(events, cmd.account, tag, -1, 0, Reject.AGENT_TAKEN)
        if cmd.valid_until and cmd.valid_until <= now:
            if master is not None:
                del state.agent_master[cmd.agent]
                del account.agents[cmd.agent]
        else:
            state.agent_master[cmd.agent] = cmd.account
            account.agents[cmd.agent] = cmd.valid_until
        events.append(AgentApproved(cmd.account, cmd.agent, cmd.valid_until))
        return None

    def process_approve_builder_fee(
        self, cmd: ApproveBuilderFee, now: int, events: list[Event]
    ) -> None:
        """Record the most ``builder`` may charge the account's orders (replacing any earlier
        approval). As on Hyperliquid, a builder must hold ``MIN_BUILDER_ACCOUNT_VALUE`` of
        account value (equity at the marks) when it is approved."""
        state = self.state
        tag = COMMAND_TAG[ApproveBuilderFee]
        address, builder, max_fee = cmd
        if (
            type(builder) is not bytes
            or len(builder) != 20
            or type(max_fee) is not int
            or not 0 <= max_fee <= MAX_BUILDER_APPROVAL
        ):
            return self._reject(events, address, tag, -1, 0, Reject.INVALID_BUILDER_FEE)
        account = state.accounts.get(address)
        if account is None:
            return self._reject(events, address, tag, -1, 0, Reject.UNKNOWN_ACCOUNT)
        builder_account = state.accounts.get(builder)
        value = 0
        if builder_account is not None:
            value = builder_account.collateral
            for market_id, position in builder_account.positions.items():
                value += position.iso_margin + position.size * state.markets[market_id].mark_price
        if value < MIN_BUILDER_ACCOUNT_VALUE:
            return self._reject(events, address, tag, -1, 0, Reject.BUILDER_BALANCE_TOO_LOW)
        account.builders[builder] = max_fee
        events.append(new_event(BuilderFeeApproved, (address, builder, max_fee)))
        return None

    # ------------------------------------------------------------------ collateral

    def process_deposit(self, cmd: Deposit, now: int, events: list[Event]) -> None:
        state = self.state
        tag = COMMAND_TAG[Deposit]
        if not self.check_l1_index(cmd.l1_index):
            return self._reject(
                events, cmd.account, tag, -1, cmd.l1_index, Reject.OUT_OF_ORDER_L1_MESSAGE
            )
        amount = cmd.amount
        reason = None
        if type(amount) is not int or amount <= 0 or len(cmd.account) != 20:
            reason = Reject.INVALID_AMOUNT
        elif amount > MAX_COLLATERAL - (state.total_deposited - state.total_withdrawn):
            # the one bound every other number's headroom rests on (module docstring)
            reason = Reject.COLLATERAL_CAP_EXCEEDED
        if reason is not None:
            # the message is still consumed: a bad L1 message must not block the ones after it
            state.l1_consumed += 1
            events.append(L1MessageConsumed(cmd.l1_index, cmd.account, tag))
            return self._reject(events, cmd.account, tag, -1, cmd.l1_index, reason)
        account = state.accounts.get(cmd.account)
        if account is None:
            account = state.accounts[cmd.account] = Account(cmd.account)
        account.collateral += cmd.amount
        state.total_deposited += cmd.amount
        state.l1_consumed += 1
        events.append(Deposited(cmd.account, cmd.amount, cmd.l1_index))
        return None

    def process_withdraw(self, cmd: Withdraw, now: int, events: list[Event]) -> None:
        if self.state.protective:
            return self._reject(
                events, cmd.account, COMMAND_TAG[Withdraw], -1, 0, Reject.WITHDRAWALS_PAUSED
            )
        self.process_withdrawal(cmd.account, cmd.amount, COMMAND_TAG[Withdraw], 0, events)
        return None

    def process_withdrawal(
        self, address: bytes, amount: int, tag: int, ref: int, events: list[Event]
    ) -> None:
        state = self.state
        if type(amount) is not int or not 0 < amount <= MAX_COLLATERAL:
            return self._reject(events, address, tag, -1, ref, Reject.INVALID_AMOUNT)
        account = state.accounts.get(address)
        if account is None:
            return self._reject(events, address, tag, -1, ref, Reject.UNKNOWN_ACCOUNT)
        equity, initial, _ = self.cross_risk(account)
        # as dYdX v4 and Hyperliquid: free collateral counts unrealized PnL; the account must
        # keep its initial margin after the withdrawal
        if equity - amount < initial:
            return self._reject(events, address, tag, -1, ref, Reject.INSUFFICIENT_COLLATERAL)
        account.collateral -= amount
        state.total_withdrawn += amount
        withdrawal_id = state.next_withdrawal_id
        state.next_withdrawal_id += 1
        events.append(Withdrawn(address, amount, withdrawal_id))
        return None

    def check_l1_index(self, l1_index: int) -> bool:
        return l1_index == self.state.l1_consumed

    def process_force_withdraw(self, cmd: ForceWithdraw, now: int, events: list[Event]) -> None:
        tag = COMMAND_TAG[ForceWithdraw]
        if not self.check_l1_index(cmd.l1_index):
            return self._reject(
                events, cmd.account, tag, -1, cmd.l1_index, Reject.OUT_OF_ORDER_L1_MESSAGE
            )
        self.state.l1_consumed += 1
        events.append(L1MessageConsumed(cmd.l1_index, cmd.account, tag))
        self.process_withdrawal(cmd.account, cmd.amount, tag, cmd.l1_index, events)
        return None

    def process_force_cancel_all(self, cmd: ForceCancelAll, now: int, events: list[Event]) -> None:
        tag = COMMAND_TAG[ForceCancelAll]
        if not self.check_l1_index(cmd.l1_index):
            return self._reject(
                events, cmd.account, tag, -1, cmd.l1_index, Reject.OUT_OF_ORDER_L1_MESSAGE
            )
        self.state.l1_consumed += 1
        events.append(L1MessageConsumed(cmd.l1_index, cmd.account, tag))
        account = self.state.accounts.get(cmd.account)
        if account is not None:
            self.process_cancel_account_orders(account, ALL_MARKETS, CancelReason.USER, events)
        return None

    def process_set_protective_mode(
        self, cmd: SetProtectiveMode, now: int, events: list[Event]
    ) -> None:
        if type(cmd.enabled) is bool and cmd.enabled != self.state.protective:
            self.state.protective = cmd.enabled
            events.append(ProtectiveModeSet(cmd.enabled))

    def process_set_leverage(self, cmd: SetLeverage, now: int, events: list[Event]) -> None:
        tag = COMMAND_TAG[SetLeverage]
        market = self._market(cmd.market)
        if market is None:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.UNKNOWN_MARKET)
        if type(cmd.leverage) is not int or not 1 <= cmd.leverage <= market.spec.max_leverage:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.INVALID_LEVERAGE)
        account = self.state.accounts.get(cmd.account)
        if account is None:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.UNKNOWN_ACCOUNT)
        existing = account.positions.get(cmd.market)
        if (
            existing is not None
            and existing.isolated != cmd.isolated
            and (existing.size or existing.orders)
        ):
            return self._reject(
                events, cmd.account, tag, cmd.market, 0, Reject.MODE_CHANGE_WITH_POSITION
            )
        position = self._position(account, market)
        old_leverage, old_isolated = position.leverage, position.isolated
        position.leverage, position.isolated = cmd.leverage, cmd.isolated
        position.imf = initial_fraction_ppm(market.spec.initial_margin_ppm, cmd.leverage)
        equity, initial, _ = self.cross_risk(account)
        ok = equity >= initial
        if ok and position.isolated and position.size:
            iso_equity, iso_initial, _ = self.isolated_risk(market, position)
            ok = iso_equity >= iso_initial
        if not ok and cmd.leverage < old_leverage:
            position.leverage, position.isolated = old_leverage, old_isolated
            position.imf = initial_fraction_ppm(market.spec.initial_margin_ppm, old_leverage)
            self._maybe_drop_position(account, cmd.market, position)
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.INSUFFICIENT_MARGIN)
        self._maybe_drop_position(account, cmd.market, position)
        events.append(LeverageSet(cmd.account, cmd.market, cmd.leverage, cmd.isolated))
        return None

    def process_update_isolated_margin(
        self, cmd: UpdateIsolatedMargin, now: int, events: list[Event]
    ) -> None:
        tag = COMMAND_TAG[UpdateIsolatedMargin]
        market = self._market(cmd.market)
        if market is None:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.UNKNOWN_MARKET)
        if type(cmd.delta) is not int or cmd.delta == 0 or abs(cmd.delta) > MAX_COLLATERAL:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.INVALID_AMOUNT)
        account = self.state.accounts.get(cmd.account)
        position = account.positions.get(cmd.market) if account else None
        if account is None or position is None or not position.isolated or not position.size:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.NOT_ISOLATED)
        if cmd.delta > 0:
            equity, initial, _ = self.cross_risk(account)
            ok = equity - cmd.delta >= initial and account.collateral >= cmd.delta
        else:
            iso_equity, iso_initial, _ = self.isolated_risk(market, position)
            ok = iso_equity + cmd.delta >= iso_initial
        if not ok:
            return self._reject(events, cmd.account, tag, cmd.market, 0, Reject.INSUFFICIENT_MARGIN)
        account.collateral -= cmd.delta
        position.iso_margin += cmd.delta
        events.append(IsolatedMarginMoved(cmd.account, cmd.market, cmd.delta))
        return None

    def process_schedule_cancel(self, cmd: ScheduleCancel, now: int, events: list[Event]) -> None:
        tag = COMMAND_TAG[ScheduleCancel]
        state = self.state
        account = state.accounts.get(cmd.account)
        if account is None:
            return self._reject(events, cmd.account, tag, -1, 0, Reject.UNKNOWN_ACCOUNT)
        if type(cmd.at_time) is not int or cmd.at_time < 0 or 0 < cmd.at_time <= now:
            return self._reject(events, cmd.account, tag, -1, 0, Reject.INVALID_TIME)
        account.scheduled_cancel = cmd.at_time
        if cmd.at_time:
            heapq.heappush(state.scheduled, (cmd.at_time, cmd.account))
            if cmd.at_time < state.next_due:
                state.next_due = cmd.at_time
        events.append(ScheduledCancelSet(cmd.account, cmd.at_time))
        return None

    # ------------------------------------------------------------------ prices and time

    def process_oracle_price(self, cmd: PublishOraclePrice, now: int, events: list[Event]) -> None:
        tag = COMMAND_TAG[PublishOraclePrice]
        market = self._market(cmd.market)
        if market is None:
            return self._reject(events, cmd.publisher, tag, cmd.market, 0, Reject.UNKNOWN_MARKET)
        if cmd.publisher not in self.state.publishers:
            return self._reject(events, cmd.publisher, tag, cmd.market, 0, Reject.UNKNOWN_PUBLISHER)
        if type(cmd.price) is not int or not 0 < cmd.price <= market.spec.max_price:
            return self._reject(events, cmd.publisher, tag, cmd.market, 0, Reject.INVALID_PRICE)
        market.oracle[cmd.publisher] = (cmd.price, now)
        events.append(OraclePriceAccepted(cmd.publisher, cmd.market, cmd.price))
        self.process_refresh_prices([market], now, events)
        return None

    def process_advance_time(self, cmd: AdvanceTime, now: int, events: list[Event]) -> None:
        self.process_refresh_prices(self.state.markets, now, events)

    def process_committee_block(self, cmd: CommitteeBlock, now: int, events: list[Event]) -> None:
        if self.state.config.committee_fee_share_ppm:
            # before the tick: this pays for the fees of the block that just ended
            self.process_committee_rewards(cmd, events)
        # a block's start is a time tick at the block's timestamp, like AdvanceTime
        self.process_refresh_prices(self.state.markets, now, events)

    def process_committee_rewards(self, cmd: CommitteeBlock, events: list[Event]) -> None:
        """Move the committee's share of the fees collected since the previous marker (the
        previous block's) into the committee pool, then pay the pool to that block's proposer
        and to the signers of its certificate, which this block carries (engine.incentives)."""
        state = self.state
        config = state.config
        share = calculate_fee_share(
            state.fee_pool - state.committee_fee_mark, config.committee_fee_share_ppm
        )
        if share:
            state.fee_pool -= share
            state.committee_pool += share
            events.append(CommitteeFeesAccrued(cmd.height, share))
        members = config.committee_members
        weights = calculate_block_weights(state.committee_proposer, cmd.signers, len(members))
        accounts = state.accounts
        for index, amount in calculate_rewards(state.committee_pool, weights):
            address = members[index]
            account = accounts.get(address)
            if account is None:
                account = accounts[address] = Account(address)
            account.collateral += amount
            state.committee_pool -= amount
            events.append(CommitteeRewardPaid(cmd.height, address, amount))
        state.committee_fee_mark = state.fee_pool
        proposer = cmd.proposer
        state.committee_proposer = proposer if 0 <= proposer < len(members) else -1

    def calculate_index(self, market: MarketState, now: int) -> int:
        """Median of the fresh publishers' prices; 0 when none is fresh."""
        oldest = now - market.spec.oracle_staleness_ms
        fresh = [price for price, at in market.oracle.values() if at >= oldest]
        return median_low(fresh) if fresh else 0

    @staticmethod
    def calculate_mark(market: MarketState, index: int) -> int:
        """Mark = median(index, best bid, best ask), clamped to index +- the mark band.

        A missing side counts as the index. With no index there is no mark (0): no new
        orders, no liquidations, until an oracle price is fresh again.
        """
        if index == 0:
            return 0
        book = market.book
        bid = book.best_bid()
        ask = book.best_ask()
        mark = sorted((index, index if bid is None else bid, index if ask is None else ask))[1]
        band = index * market.spec.mark_band_ppm // PPM
        return min(max(mark, index - band), index + band)

    def process_refresh_prices(
        self, markets: list[MarketState], now: int, events: list[Event]
    ) -> None:
        changed = []
        for market in markets:
            index = self.calculate_index(market, now)
            mark = self.calculate_mark(market, index)
            if index != market.index_price or mark != market.mark_price:
                market.index_price = index
                market.mark_price = mark
                events.append(MarkPriceUpdated(market.spec.market_id, index, mark))
                changed.append(market)
        for market in changed:
            if market.mark_price and market.triggers:
                self.process_fire_triggers(market, events)
        if changed:
            liquidation.process_liquidations(self, [m for m in changed if m.mark_price], events)

    def process_due(self, events: list[Event]) -> None:
        """Everything that became due by ``state.time``: expiries, dead-man switches, funding."""
        state = self.state
        now = state.time
        expiries = state.expiries
        while expiries and expiries[0][0] <= now:
            expiry, order_id = heapq.heappop(expiries)
            order = state.orders.get(order_id)
            if order is not None and order.expiry == expiry:
                self.process_remove_order(order, CancelReason.EXPIRED, events)
        scheduled = state.scheduled
        while scheduled and scheduled[0][0] <= now:
            at_time, address = heapq.heappop(scheduled)
            account = state.accounts.get(address)
            if account is not None and account.scheduled_cancel == at_time:
                account.scheduled_cancel = 0
                self.process_cancel_account_orders(
                    account, ALL_MARKETS, CancelReason.SCHEDULED, events
                )
        funded = []
        for market in state.markets:
            if market.next_sample == 0:
                spec = market.spec
                market.next_sample = (now // spec.premium_sample_ms + 1) * spec.premium_sample_ms
                market.next_funding = (
                    now // spec.funding_interval_ms + 1
                ) * spec.funding_interval_ms
            if market.auction_interval:
                # cancels, expiries and dead-man switches due by now came first; the auction
                # then clears what arrived before ``now``, and funding follows
                interval = market.auction_interval
                if market.next_auction == 0:
                    market.next_auction = (now // interval + 1) * interval
                elif now >= market.next_auction:
                    self.process_auction(market, events)
                    market.next_auction = (now // interval + 1) * interval
            if now >= market.next_sample:
                self.process_premium_sample(market, now)
            if now >= market.next_funding:
                self.process_funding(market, now, events)
                funded.append(market)
        if funded:
            liquidation.process_liquidations(self, [m for m in funded if m.mark_price], events)
        due = _NO_TIME
        if expiries:
            due = expiries[0][0]
        if scheduled and scheduled[0][0] < due:
            due = scheduled[0][0]
        for market in state.markets:
            due = min(due, market.next_sample, market.next_funding)
            if market.auction_interval:
                due = min(due, market.next_auction)
        state.next_due = due

    def process_premium_sample(self, market: MarketState, now: int) -> None:
        """Sample (book mid - index) / index, clamped to the funding cap, once per period."""
        spec = market.spec
        book = market.book
        bid, ask = book.best_bid(), book.best_ask()
        index = market.index_price
        if index and bid is not None and ask is not None:
            premium = ((bid + ask) // 2 - index) * PPB // index
            cap = spec.funding_cap_ppb
            market.premium_sum += min(max(premium, -cap), cap)
            market.premium_count += 1
        market.next_sample = (now // spec.premium_sample_ms + 1) * spec.premium_sample_ms

    def process_funding(self, market: MarketState, now: int, events: list[Event]) -> None:
        """Pay funding for the interval that ended: longs pay shorts when the rate is positive.

        The rate is the interval's average premium plus the interest rate, clamped to the cap.
        Payments are settled into balances at once (every holder, each interval), through the
        cumulative index; payers round up and receivers down, the dust goes to insurance.
        """
        spec = market.spec
        state = self.state
        average = market.premium_sum // market.premium_count if market.premium_count else 0
        cap = spec.funding_cap_ppb
        rate = min(max(average + spec.interest_ppb, -cap), cap)
        market.premium_sum = 0
        market.premium_count = 0
        market.next_funding = (now // spec.funding_interval_ms + 1) * spec.funding_interval_ms
        index = market.index_price
        if index == 0:
            return
        market.funding_rate_ppb = rate
        market.cumulative_funding += rate * index
        dust = 0
        for address in market.holders:
            account = state.accounts[address]
            position = account.positions[spec.market_id]
            payment = funding_payment(position.size, rate, index)
            dust += payment
            position.cum_funding += payment
            if position.isolated:
                position.iso_margin -= payment
            else:
                account.collateral -= payment
        state.insurance_fund += dust
        events.append(FundingPaid(spec.market_id, rate, index, market.cumulative_funding, dust))


_SYSTEM_COMMANDS = frozenset(
    {
        Deposit,
        PublishOraclePrice,
        AdvanceTime,
        CommitteeBlock,
        Signed,
        ForceWithdraw,
        ForceCancelAll,
        SetProtectiveMode,
    }
)


def _order_id(order: Order) -> int:
    return order.order_id


def _fill_key(fill: tuple[Order, int]) -> tuple[bytes, int, int]:
    """Auction fills are paired in (owner, size, order id) order: arrival plays no part."""
    return fill[0].account, fill[1], fill[0].order_id


def check_authorization(
    state: StateReader, signer: bytes, nonce: int, expires_after: int, inner: Command, now: int
) -> Reject | None:
    """May ``signer`` act for the command's account, with this nonce, now? (Reads only what
    ``StateReader`` offers: the precheck asks it of either engine's state.)"""
    kind = type(inner)
    if kind in _SYSTEM_COMMANDS:
        return Reject.NOT_SIGNABLE
    account: bytes = inner.account  # type: ignore[union-attr]  # system kinds excluded above
    if signer != account:
        if state.agent_master.get(signer) != account:
            return Reject.UNKNOWN_AGENT
        if kind is Withdraw or kind is ApproveAgent or kind is ApproveBuilderFee:
            return Reject.AGENT_NOT_ALLOWED
        valid_until = state.accounts[account].agents[signer]
        if valid_until and valid_until <= now:
            return Reject.AGENT_EXPIRED
    if expires_after and expires_after < now:
        return Reject.INTENT_EXPIRED
    if not now - NONCE_PAST_MS < nonce < now + NONCE_FUTURE_MS:
        return Reject.NONCE_OUT_OF_WINDOW
    kept = state.nonces.get(signer)
    if kept and nonce <= kept[-1]:
        at = bisect_left(kept, nonce)
        if kept[at] == nonce:
            return Reject.NONCE_ALREADY_USED
        if len(kept) >= NONCES_KEPT and at == 0:
            return Reject.NONCE_TOO_LOW
    return None
