"""``Venue.from_json`` reads what the node's ``GET /v1/venue`` builds, and nothing less."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from asyncdex.client import AsyncClient, Client, Markets, Wallet
from asyncdex.client.venue import Venue, check_domain
from asyncdex.gateway.openapi import openapi_document
from asyncdex.gateway.venue import venue_json
from asyncdex.signing.eip712 import Domain
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.market import EngineConfig, MarketSpec

CONTRACT = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
DOMAIN = asyncdex_domain(31337, CONTRACT)
CONFIG = EngineConfig((MarketSpec(0, "BTC", 5, 10, 10), MarketSpec(1, "ETH", 4, 1, 10)))


def document(**overrides: Any) -> dict[str, Any]:
    built = venue_json(
        DOMAIN,
        CONFIG,
        settlement_contract=CONTRACT,
        settlement_chain="embedded",
        extras={"hyperliquid": {"network": "testnet"}},
    )
    return {**built, **overrides}


def test_reads_the_document_the_node_builds() -> None:
    venue = Venue.from_json(document())
    assert venue.domain == DOMAIN
    assert (venue.chain_id, venue.contract, venue.settlement_contract) == (
        31337,
        CONTRACT,
        CONTRACT,
    )
    assert venue.settlement_chain == "embedded"
    assert venue.hyperliquid_network == "testnet"
    assert [(m.market_id, m.symbol, m.sz_decimals) for m in venue.markets.values()] == [
        (0, "BTC", 5),
        (1, "ETH", 4),
    ]


def test_a_node_without_settlement_or_hyperliquid_api() -> None:
    built = venue_json(DOMAIN, CONFIG, settlement_contract=None, settlement_chain=None, extras={})
    venue = Venue.from_json(built)
    assert (venue.settlement_contract, venue.settlement_chain, venue.hyperliquid_network) == (
        None,
        None,
        None,
    )
    assert venue.contract == CONTRACT  # intents are still signed for the domain's contract


def _without_domain_contract() -> dict[str, Any]:
    broken = copy.deepcopy(document())
    del broken["domain"]["verifyingContract"]
    return broken


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (document(chainId=1), "chainId differs from domain.chainId"),
        (document(domain=None), "domain: expected an object"),
        (_without_domain_contract(), "domain.verifyingContract"),
        (document(markets={"BTC": 5}), "markets: expected a list"),
        (document(markets=[{"marketId": 0, "symbol": "BTC"}]), "markets[0].szDecimals"),
        (document(settlementContract="0x12"), "settlementContract"),
        (document(hyperliquid={"net": "testnet"}), "hyperliquid.network"),
        ([], "venue: expected an object"),
    ],
)
def test_refuses_a_document_missing_what_signing_needs(broken: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        Venue.from_json(broken)
    assert message in str(refused.value)


def test_refuses_a_domain_this_sdk_does_not_sign_for() -> None:
    check_domain(DOMAIN)
    with pytest.raises(ValueError, match="version '2'"):
        check_domain(Domain("asyncdex", "2", 31337, CONTRACT))


def test_connect_refuses_what_it_takes_from_the_node() -> None:
    wallet = Wallet.generate()
    with pytest.raises(TypeError, match="markets from the node"):
        Client.connect("http://127.0.0.1:9", wallet, markets=Markets(()))

    async def connect() -> None:
        await AsyncClient.connect("http://127.0.0.1:9", wallet, chain_id=1, contract=CONTRACT)

    with pytest.raises(TypeError, match="chain_id, contract from the node"):
        asyncio.run(connect())


def test_each_market_says_how_it_matches() -> None:
    """A client must know a batch-auction market (its book may be crossed between auctions)
    from a continuous one: ``GET /v1/venue`` says so, and the OpenAPI document requires it."""
    auction = MarketSpec(2, "SOL", 2, 1, 1, ordering="batch_auction", auction_interval_ms=200)
    config = EngineConfig((*CONFIG.markets, auction))
    built = venue_json(DOMAIN, config, settlement_contract=None, settlement_chain=None, extras={})
    assert [(m["ordering"], m["auctionIntervalMs"]) for m in built["markets"]] == [
        ("continuous", 0),
        ("continuous", 0),
        ("batch_auction", 200),
    ]
    terms = openapi_document()["components"]["schemas"]["MarketTerms"]
    assert {"ordering", "auctionIntervalMs"} <= set(terms["required"])
    assert terms["properties"]["ordering"]["enum"] == ["continuous", "batch_auction"]
    assert set(built["markets"][0]) == set(terms["properties"])
