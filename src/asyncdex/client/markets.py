"""Markets as the client sees them, and exact conversion of prices, sizes and amounts.

Invariants:

- Conversion never rounds. A value is either an ``int`` already in engine units, taken as
  is, or a decimal (``str`` or :class:`~decimal.Decimal`) in human units, converted with
  :func:`asyncdex.types.numeric.parse_scaled`; a decimal with more places than the unit
  holds is refused (:class:`AmountError`), never rounded.
- Engine units (``docs/engine.md``): in a market with ``sz_decimals = d`` a size counts
  10^-d of the base asset and a price 10^-(6-d) USDC; collateral counts micro-USDC. So
  ``size=1`` and ``size="1"`` differ by 10^d: ints are units, decimals are whole assets.
- ``float`` is refused everywhere: 0.1 has no exact binary form, and a client that rounds
  silently would send an order the trader did not mean. ``bool`` is refused where a number
  is expected (Python counts it as an int).
- Tick and lot multiples are the engine's rule (``PRICE_OFF_TICK``/``SIZE_OFF_LOT``
  rejections), not checked here: one rule, one place.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple, TypeAlias

from asyncdex.signing.eip712 import parse_address
from asyncdex.types.config_file import ConfigFileError, parse_engine_config
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import USDC_DECIMALS, DecimalFormatError, format_scaled, parse_scaled

Number: TypeAlias = int | str | Decimal
"""An ``int`` in engine units, or a decimal string / ``Decimal`` in human units."""


class AmountError(ValueError):
    """A price, size or amount that cannot be sent exactly (or is not a number at all)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownMarket(KeyError):
    """A market symbol or id the client was not told about."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown market"


class MarketInfo(NamedTuple):
    """What the client needs of a market: its id, symbol and size decimals."""

    market_id: int
    symbol: str
    sz_decimals: int

    @property
    def price_decimals(self) -> int:
        return USDC_DECIMALS - self.sz_decimals


class Markets(Mapping[str, MarketInfo]):
    """The venue's markets by symbol, and by id through :meth:`resolve`."""

    def __init__(self, markets: Iterable[MarketInfo | MarketSpec]) -> None:
        by_symbol: dict[str, MarketInfo] = {}
        by_id: dict[int, MarketInfo] = {}
        for market in markets:
            info = MarketInfo(market.market_id, market.symbol, market.sz_decimals)
            if not 0 <= info.sz_decimals <= USDC_DECIMALS:
                raise ValueError(f"market {info.symbol}: sz_decimals must be in 0..6")
            if info.symbol in by_symbol or info.market_id in by_id:
                raise ValueError(f"market {info.symbol} (id {info.market_id}) given twice")
            by_symbol[info.symbol] = info
            by_id[info.market_id] = info
        self._by_symbol = by_symbol
        self._by_id = by_id

    @classmethod
    def from_config(cls, config: EngineConfig) -> Markets:
        return cls(config.markets)

    @classmethod
    def from_config_file(cls, path: str | os.PathLike[str]) -> Markets:
        """The markets of a venue TOML file (the one ``asyncdex node --config`` reads)."""
        config, _chain_id, _contract = load_venue_file(path)
        return cls.from_config(config)

    def __getitem__(self, symbol: str) -> MarketInfo:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise UnknownMarket(f"unknown market {symbol!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_symbol)

    def __len__(self) -> int:
        return len(self._by_symbol)

    def resolve(self, market: int | str) -> MarketInfo | None:
        """The market named by symbol or id; ``None`` for an id the client was not told of
        (an id still works for integer prices and sizes)."""
        if isinstance(market, str):
            return self[market]
        if type(market) is not int or market < 0:
            raise UnknownMarket(f"a market is a symbol or a non-negative id, got {market!r}")
        return self._by_id.get(market)

    def __repr__(self) -> str:
        return f"Markets({', '.join(self._by_symbol)})"


def load_venue_file(
    path: str | os.PathLike[str],
) -> tuple[EngineConfig, int | None, bytes | None]:
    """The engine config, chain id and settlement contract of a venue TOML file.

    The file is the one ``asyncdex node --config`` reads: the engine config, parsed strictly
    by :func:`~asyncdex.types.config_file.parse_engine_config`, beside the node's own tables
    (``[venue]`` with ``chain_id`` and ``settlement_contract``, ``[settlement]``...). Chain id
    and contract are ``None`` when ``[venue]`` does not give them (an embedded chain deployed
    at start has its contract address announced by the node instead).
    """
    source = Path(path)
    try:
        with source.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigFileError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{source}: not valid TOML: {exc}") from None
    venue = document.get("venue", {})
    # The engine config has no plain tables at the top level (markets is an array of
    # tables), so every plain table is the node's; taking them all out, rather than the
    # ones known today, keeps the client off the node's CLI module and its imports (web3).
    for key in [key for key, value in document.items() if isinstance(value, dict)]:
        del document[key]
    config = parse_engine_config(document, str(source))
    chain_id = venue.get("chain_id") if isinstance(venue, dict) else None
    contract = venue.get("settlement_contract") if isinstance(venue, dict) else None
    try:
        contract_address = parse_address(contract) if isinstance(contract, str) else None
    except ValueError as exc:
        raise ConfigFileError(f"{source}: [venue] settlement_contract: {exc}") from None
    return config, chain_id if type(chain_id) is int else None, contract_address


# ---------------------------------------------------------------------------------------------
# Conversions


def to_units(value: Number, decimals: int, *, field: str, signed: bool = False) -> int:
    """``value`` in units of 10^-decimals: an int as is, a decimal scaled exactly."""
    if type(value) is int:
        units = value
    elif isinstance(value, str | Decimal):
        try:
            units = parse_scaled(str(value), decimals)
        except DecimalFormatError as exc:
            raise AmountError(str(exc), field=field) from None
    else:
        why = " (a float cannot be converted exactly)" if isinstance(value, float) else ""
        raise AmountError(
            f"expected an int in engine units or a decimal str/Decimal, got "
            f"{type(value).__name__}{why}",
            field=field,
        )
    if units < 0 and not signed:
        raise AmountError(f"must not be negative, got {value}", field=field)
    return units


def size_units(market: MarketInfo | None, value: Number, *, field: str = "size") -> int:
    return to_units(value, _decimals(market, value, field, price=False), field=field)


def price_units(market: MarketInfo | None, value: Number, *, field: str = "price") -> int:
    return to_units(value, _decimals(market, value, field, price=True), field=field)


def usdc_units(value: Number, *, field: str = "amount", signed: bool = False) -> int:
    """Collateral in micro-USDC: an int as is, or a decimal string of USDC."""
    return to_units(value, USDC_DECIMALS, field=field, signed=signed)


def _decimals(market: MarketInfo | None, value: Number, field: str, *, price: bool) -> int:
    if market is None:
        if type(value) is int:
            return 0  # unused: ints are not scaled
        raise AmountError(
            "a decimal needs the market's sz_decimals: pass the client its markets, "
            "or give an int in engine units",
            field=field,
        )
    return market.price_decimals if price else market.sz_decimals


def format_price(market: MarketInfo, units: int) -> str:
    """Engine price units as a decimal string of USDC per base unit."""
    return format_scaled(units, market.price_decimals)


def format_size(market: MarketInfo, units: int) -> str:
    """Engine size units as a decimal string of the base asset."""
    return format_scaled(units, market.sz_decimals)
