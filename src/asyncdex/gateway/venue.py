"""What a client needs to trade on a node, answered at ``GET /v1/venue``.

Invariants:

- The document is everything the SDK needs to sign intents the node will take and to build
  them in human units: the EIP-712 domain the node verifies intents against (so a client
  signs exactly what the node checks, whatever the config file did or did not say: the
  embedded chain's contract is only known once the node has deployed it), and each market's
  id, symbol, decimals, tick and lot. ``Client.connect(url)`` builds a client from it.
- Each market says how it matches: ``ordering`` (``"continuous"`` or ``"batch_auction"``)
  and ``auctionIntervalMs`` (0 exactly for a continuous market).
- It describes the venue, not its state: it is the same for every request of one node
  process (live prices are at ``GET /v1/markets``). Pure: built from the node's settings.
- ``settlementContract`` is the contract batches are posted to, or null when the node does
  not settle; the domain's ``verifyingContract`` is always given (it is what signatures
  bind to, and without settlement it is only a name the operator chose).
- Numbers follow the rest of the API: ids and parts-per-million as integers, tick, lot and
  money as decimal strings (tick in USDC, lot in the base asset).
"""

from __future__ import annotations

from typing import Any

from asyncdex.signing.eip712 import Domain
from asyncdex.types.market import EngineConfig, MarketSpec
from asyncdex.types.numeric import format_scaled, format_usdc

SETTLEMENT_CHAINS = ("embedded", "rpc")


def domain_json(domain: Domain) -> dict[str, Any]:
    """The EIP712Domain as signers write it (``eth_signTypedData_v4``'s ``domain``)."""
    return {
        "name": domain.name,
        "version": domain.version,
        "chainId": domain.chain_id,
        "verifyingContract": "0x" + domain.verifying_contract.hex(),
    }


def market_spec_json(spec: MarketSpec) -> dict[str, Any]:
    """A market's fixed terms (``GET /v1/markets`` adds the live prices and funding)."""
    return {
        "marketId": spec.market_id,
        "symbol": spec.symbol,
        "szDecimals": spec.sz_decimals,
        "priceDecimals": spec.price_decimals,
        "tick": format_scaled(spec.tick, spec.price_decimals),
        "lot": format_scaled(spec.lot, spec.sz_decimals),
        "minOrderValue": format_usdc(spec.min_order_value),
        "maxLeverage": spec.max_leverage,
        "initialMarginPpm": spec.initial_margin_ppm,
        "maintenanceMarginPpm": spec.maintenance_margin_ppm,
        "makerFeePpm": spec.maker_fee_ppm,
        "takerFeePpm": spec.taker_fee_ppm,
        "fundingIntervalMs": spec.funding_interval_ms,
        "oracleStalenessMs": spec.oracle_staleness_ms,
        "marketSlippagePpm": spec.market_slippage_ppm,
        # how the market matches: a batch-auction market's book may be crossed between its
        # auctions, so a client must know it to tell a waiting order from a stale book
        "ordering": spec.ordering,
        "auctionIntervalMs": spec.auction_interval_ms,
    }


def venue_json(
    domain: Domain,
    config: EngineConfig,
    *,
    settlement_contract: bytes | None,
    settlement_chain: str | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The ``GET /v1/venue`` document. ``extras`` are what the node's extensions add (the
    Hyperliquid API's network); every key of the document is present, null when unknown."""
    if settlement_chain is not None and settlement_chain not in SETTLEMENT_CHAINS:
        raise ValueError(f"settlement chain {settlement_chain!r}")
    return {
        "chainId": domain.chain_id,
        "domain": domain_json(domain),
        "settlementContract": (
            None if settlement_contract is None else "0x" + settlement_contract.hex()
        ),
        "settlementChain": settlement_chain,
        "maxOpenOrdersPerAccount": config.max_open_orders_per_account,
        "markets": [market_spec_json(spec) for spec in config.markets],
        "hyperliquid": None,
        "sealing": None,  # committee venues with sealed intents: docs/fairness.md
        **extras,
    }
