"""The venue as a node describes it (``GET /v1/venue``): signing domain and markets.

Invariants:

- Read strictly: a document that lacks a field the client needs, or gives it in another
  type, raises ``ValueError`` naming the field, never a venue with a guessed value. A wrong
  chain id or contract would make every signature recover to a stranger.
- The domain is the node's, taken whole; :func:`check_domain` refuses one this SDK cannot
  sign for (another domain name or version) instead of signing what the node will reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncdex.client.markets import MarketInfo, Markets
from asyncdex.client.sealing import SealingInfo
from asyncdex.signing.eip712 import Domain, parse_address
from asyncdex.signing.intents import DOMAIN_NAME, DOMAIN_VERSION


@dataclass(frozen=True, slots=True)
class Venue:
    """What a client needs to sign intents the node takes and to build them in human units."""

    domain: Domain
    markets: Markets
    settlement_contract: bytes | None  # None: the node does not settle
    settlement_chain: str | None  # "embedded", "rpc" or None
    hyperliquid_network: str | None  # "mainnet", "testnet" or None (no Hyperliquid API)
    sealing: SealingInfo | None = None  # committee mode: the key sealed intents go to

    @property
    def chain_id(self) -> int:
        return self.domain.chain_id

    @property
    def contract(self) -> bytes:
        """The contract intents are signed for (the domain's ``verifyingContract``)."""
        return self.domain.verifying_contract

    @classmethod
    def from_json(cls, document: Any) -> Venue:
        venue = _object(document, "venue")
        raw_domain = _object(venue.get("domain"), "domain")
        domain = Domain(
            _text(raw_domain, "name", "domain."),
            _text(raw_domain, "version", "domain."),
            _uint(raw_domain, "chainId", "domain."),
            _address(raw_domain.get("verifyingContract"), "domain.verifyingContract"),
        )
        if _uint(venue, "chainId") != domain.chain_id:
            raise ValueError("chainId differs from domain.chainId")
        raw_markets = venue.get("markets")
        if not isinstance(raw_markets, list):
            raise ValueError("markets: expected a list")
        markets = []
        for index, raw in enumerate(raw_markets):
            where = f"markets[{index}]."
            market = _object(raw, where[:-1])
            markets.append(
                MarketInfo(
                    _uint(market, "marketId", where),
                    _text(market, "symbol", where),
                    _uint(market, "szDecimals", where),
                )
            )
        contract = venue.get("settlementContract")
        hyperliquid = venue.get("hyperliquid")
        network = None
        if hyperliquid is not None:
            network = _text(_object(hyperliquid, "hyperliquid"), "network", "hyperliquid.")
        chain = venue.get("settlementChain")
        if chain is not None and not isinstance(chain, str):
            raise ValueError("settlementChain: expected a string or null")
        sealing = venue.get("sealing")
        return cls(
            sealing=None if sealing is None else SealingInfo.from_json(sealing),
            domain=domain,
            markets=Markets(markets),
            settlement_contract=(
                None if contract is None else _address(contract, "settlementContract")
            ),
            settlement_chain=chain,
            hyperliquid_network=network,
        )


def check_domain(domain: Domain) -> None:
    """Refuse a domain this SDK's intent types are not defined for."""
    if (domain.name, domain.version) != (DOMAIN_NAME, DOMAIN_VERSION):
        raise ValueError(
            f"the node verifies intents under domain {domain.name!r} version "
            f"{domain.version!r}; this SDK signs {DOMAIN_NAME!r} version {DOMAIN_VERSION!r}"
        )


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    return value


def _text(obj: dict[str, Any], key: str, where: str = "") -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}{key}: expected a string")
    return value


def _uint(obj: dict[str, Any], key: str, where: str = "") -> int:
    value = obj.get(key)
    if type(value) is not int or value < 0:
        raise ValueError(f"{where}{key}: expected a non-negative integer")
    return value


def _address(value: Any, where: str) -> bytes:
    try:
        return parse_address(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
