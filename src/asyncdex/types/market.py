"""Market specifications and engine configuration.

Invariants:
- A ``MarketSpec`` is immutable; ``validate()`` refuses inconsistent parameters, so the
  engine can rely on them: tick and lot positive, ``0 < maintenance < initial <= 10^6`` ppm,
  ``initial * max_leverage >= 10^6``, ``taker_fee >= |maker_fee|`` when the maker fee is a
  rebate (so the fee pool never goes negative on a fill).
- ``max_price`` and ``max_order_size`` are at most ``MAX_MARKET_BOUND`` (10^15), so every
  notional ``price * size`` of one order fits in 10^30 (see the engine's number bounds).
- Prices are in units of 10^-(6 - sz_decimals) USDC, sizes in 10^-sz_decimals of the base
  asset (see ``asyncdex.types.numeric``).
- Market ids are small integers, stable for the life of the venue (API asset ids are
  positions in the market list).
- ``ordering`` is ``"continuous"`` (the default: orders match on arrival) or
  ``"batch_auction"`` (frequent batch auctions every ``auction_interval_ms``, a positive
  interval; see docs/engine.md). ``auction_interval_ms`` is 0 exactly for continuous markets.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncdex.types.numeric import MAX_MARKET_BOUND, PPM, USDC_DECIMALS

CONTINUOUS = "continuous"
BATCH_AUCTION = "batch_auction"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    market_id: int
    symbol: str
    sz_decimals: int
    tick: int
    lot: int
    min_order_value: int = 10_000_000  # micro-USDC: $10, as Hyperliquid
    initial_margin_ppm: int = 50_000  # 5% (20x)
    maintenance_margin_ppm: int = 25_000  # 2.5%
    max_leverage: int = 20
    maker_fee_ppm: int = 150  # 1.5 bps
    taker_fee_ppm: int = 450  # 4.5 bps
    liquidation_fee_ppm: int = 10_000  # 1% of the closed notional, to the insurance fund
    funding_interval_ms: int = 3_600_000
    premium_sample_ms: int = 5_000
    funding_cap_ppb: int = 4_000_000  # 0.4% per interval, either way
    interest_ppb: int = 12_500  # 0.00125% per interval, paid by longs when premium is 0
    oracle_staleness_ms: int = 10_000
    mark_band_ppm: int = 50_000  # mark stays within index +-5%
    market_slippage_ppm: int = 50_000  # market orders fill at most 5% from mark
    max_order_size: int = 10**15  # in lots' units: refuses absurd sizes before any arithmetic
    max_price: int = 10**15
    ordering: str = CONTINUOUS
    auction_interval_ms: int = 0  # batch-auction markets only: one auction per interval

    @property
    def price_decimals(self) -> int:
        return USDC_DECIMALS - self.sz_decimals

    def validate(self) -> None:
        problems = []
        if not 0 <= self.sz_decimals <= USDC_DECIMALS:
            problems.append("sz_decimals must be in 0..6")
        if self.tick <= 0 or self.lot <= 0:
            problems.append("tick and lot must be positive")
        if not 0 < self.maintenance_margin_ppm < self.initial_margin_ppm <= PPM:
            problems.append("need 0 < maintenance margin < initial margin <= 100%")
        if self.max_leverage < 1 or self.initial_margin_ppm * self.max_leverage < PPM:
            problems.append("max leverage must be >= 1 and at most 1 / initial margin")
        if self.taker_fee_ppm < 0 or self.taker_fee_ppm < -self.maker_fee_ppm:
            problems.append("taker fee must cover any maker rebate")
        if self.funding_interval_ms <= 0 or self.premium_sample_ms <= 0:
            problems.append("funding interval and premium sample period must be positive")
        if self.oracle_staleness_ms <= 0 or self.min_order_value < 0:
            problems.append("oracle staleness must be positive, minimum value non-negative")
        if not 0 <= self.liquidation_fee_ppm < PPM:
            problems.append("liquidation fee must be in [0, 100%)")
        if not 0 < self.max_price <= MAX_MARKET_BOUND:
            problems.append(f"max_price must be in 1..{MAX_MARKET_BOUND}")
        if not 0 < self.max_order_size <= MAX_MARKET_BOUND:
            problems.append(f"max_order_size must be in 1..{MAX_MARKET_BOUND}")
        if self.ordering == CONTINUOUS:
            if self.auction_interval_ms != 0:
                problems.append("auction_interval_ms is for batch_auction markets only")
        elif self.ordering == BATCH_AUCTION:
            if type(self.auction_interval_ms) is not int or self.auction_interval_ms <= 0:
                problems.append("a batch_auction market needs auction_interval_ms > 0")
        else:
            problems.append(f"ordering must be {CONTINUOUS!r} or {BATCH_AUCTION!r}")
        if problems:
            raise ValueError(f"market {self.symbol}: " + "; ".join(problems))


MAX_COMMITTEE_MEMBERS = 256  # a signer bitmap is one 256-bit word, as on chain


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the engine needs that is not a command: markets, oracle publishers and the
    committee's fee share."""

    markets: tuple[MarketSpec, ...]
    oracle_publishers: tuple[bytes, ...] = ()
    max_open_orders_per_account: int = 1_000
    # Committee incentives (docs/engine.md, "Committee incentives"): this share of every
    # trading fee, in ppm, goes to the committee members, by member index in
    # ``committee_members`` (the consensus committee's order). 0: a single-node venue, and a
    # committee that pays nothing; the state then commits nothing about it.
    committee_fee_share_ppm: int = 0
    committee_members: tuple[bytes, ...] = ()

    def validate(self) -> None:
        for index, spec in enumerate(self.markets):
            spec.validate()
            if spec.market_id != index:
                raise ValueError(f"market {spec.symbol}: id {spec.market_id} != position {index}")
        if len({m.symbol for m in self.markets}) != len(self.markets):
            raise ValueError("market symbols must be unique")
        share = self.committee_fee_share_ppm
        if type(share) is not int or not 0 <= share <= 1_000_000:
            raise ValueError("committee_fee_share_ppm must be an integer in 0..1000000")
        members = self.committee_members
        if len(members) > MAX_COMMITTEE_MEMBERS:
            raise ValueError(f"at most {MAX_COMMITTEE_MEMBERS} committee members")
        if any(type(member) is not bytes or len(member) != 20 for member in members):
            raise ValueError("committee members must be 20-byte addresses")
        if len(set(members)) != len(members):
            raise ValueError("committee members must be distinct")
        if share and not members:
            raise ValueError("committee_fee_share_ppm needs committee_members to pay")
