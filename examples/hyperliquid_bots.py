"""A market maker and a taker trading with each other through the Hyperliquid API of a venue,
written only with the published ``hyperliquid-python-sdk`` (and ``eth-account`` for keys).

Nothing here knows it talks to asyncdex: the same code runs against Hyperliquid's testnet
by changing the URL. Point it at a node, for example::

    ASYNCDEX_OPERATOR_TOKEN=secret asyncdex node --data /tmp/venue \
        --config examples/venue.toml --chain-id 31337 --contract 0x<settlement contract>
    python examples/hyperliquid_bots.py --url http://127.0.0.1:8080 \
        --maker-key 0x<64 hex> --taker-key 0x<64 hex> --rounds 5

Both accounts need collateral and the market an oracle price first (on a local node,
through ``POST /v1/system`` with the operator token; on a settling node, by depositing on
the settlement contract).

Each round the maker cancels its quotes and posts a fresh bid and ask (post-only, with
cloids) around the mid, or around ``--price`` while the book is empty; the taker then crosses
the spread with a market order, buying and selling in turn, so its position stays small. At
the end each bot prints one JSON line: its fills as its own account sees them.
"""

from __future__ import annotations

import argparse
import json
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

POST_ONLY: Any = {"limit": {"tif": "Alo"}}


class MarketMaker:
    """Quotes one bid and one ask, ``spread_bps`` apart, ``size`` each."""

    def __init__(self, exchange: Exchange, coin: str, size: float, spread_bps: int) -> None:
        self.exchange = exchange
        self.coin = coin
        self.size = size
        self.spread = Decimal(spread_bps) / 10_000
        self.round = 0
        meta = exchange.info.meta()
        (asset,) = [a for a in meta["universe"] if a["name"] == coin]
        self.price_decimals = 6 - int(asset["szDecimals"])  # Hyperliquid's perp price rule

    def quote_prices(self, mid: Decimal) -> tuple[float, float]:
        """Bid below and ask above the mid, at 5 significant figures and the allowed decimals."""
        half = mid * self.spread / 2
        return self._round(mid - half, ROUND_DOWN), self._round(mid + half, ROUND_UP)

    def _round(self, price: Decimal, rounding: str) -> float:
        figures = price.adjusted() + 1  # digits before the point
        places = min(self.price_decimals, max(0, 5 - figures))
        return float(price.quantize(Decimal(1).scaleb(-places), rounding=rounding))

    def requote(self, fallback_mid: Decimal) -> list[Any]:
        """Cancel what is left of the last quotes, post new ones; returns their statuses."""
        address = self.exchange.wallet.address
        stale = [o for o in self.exchange.info.open_orders(address) if o["coin"] == self.coin]
        if stale:
            self.exchange.bulk_cancel([{"coin": self.coin, "oid": o["oid"]} for o in stale])
        mids = self.exchange.info.all_mids()
        mid = Decimal(mids[self.coin]) if self.coin in mids else fallback_mid
        bid, ask = self.quote_prices(mid)
        self.round += 1
        quotes: list[Any] = [
            {"coin": self.coin, "is_buy": True, "sz": self.size, "limit_px": bid,
             "order_type": POST_ONLY, "reduce_only": False,
             "cloid": Cloid.from_int(self.round * 2)},
            {"coin": self.coin, "is_buy": False, "sz": self.size, "limit_px": ask,
             "order_type": POST_ONLY, "reduce_only": False,
             "cloid": Cloid.from_int(self.round * 2 + 1)},
        ]  # fmt: skip
        answer = self.exchange.bulk_orders(quotes)
        if answer["status"] != "ok":
            raise RuntimeError(f"quotes refused: {answer['response']}")
        return list(answer["response"]["data"]["statuses"])


class Taker:
    """Crosses the spread with market orders, alternating sides."""

    def __init__(self, exchange: Exchange, coin: str, size: float) -> None:
        self.exchange = exchange
        self.coin = coin
        self.size = size
        self.buy = True

    def take(self) -> Any:
        answer = self.exchange.market_open(self.coin, self.buy, self.size)
        if answer["status"] != "ok":
            raise RuntimeError(f"market order refused: {answer['response']}")
        self.buy = not self.buy
        (status,) = answer["response"]["data"]["statuses"]
        return status


def fills_of(info: Info, address: str, coin: str) -> list[dict[str, Any]]:
    return [fill for fill in info.user_fills(address) if fill["coin"] == coin]


def run(
    url: str, maker_key: str, taker_key: str, coin: str, rounds: int, size: float, price: str
) -> dict[str, Any]:
    maker = MarketMaker(Exchange(Account.from_key(maker_key), base_url=url), coin, size, 20)
    taker = Taker(Exchange(Account.from_key(taker_key), base_url=url), coin, size)
    taken = []
    for _ in range(rounds):
        for status in maker.requote(Decimal(price)):
            if "resting" not in status:
                raise RuntimeError(f"a quote did not rest: {status}")
        result = taker.take()
        if "filled" not in result:
            raise RuntimeError(f"the taker was not filled: {result}")
        taken.append(result["filled"])
    info = Info(url, skip_ws=True)
    return {
        "taken": taken,
        "maker": {"address": maker.exchange.wallet.address.lower(),
                  "fills": fills_of(info, maker.exchange.wallet.address, coin)},
        "taker": {"address": taker.exchange.wallet.address.lower(),
                  "fills": fills_of(info, taker.exchange.wallet.address, coin)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the venue's base URL (http://host:port)")
    parser.add_argument("--maker-key", required=True, help="the market maker's private key")
    parser.add_argument("--taker-key", required=True, help="the taker's private key")
    parser.add_argument("--coin", default="BTC")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=float, default=0.001)
    parser.add_argument("--price", default="60000", help="the mid to quote around while empty")
    args = parser.parse_args()
    summary = run(
        args.url, args.maker_key, args.taker_key, args.coin, args.rounds, args.size, args.price
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
