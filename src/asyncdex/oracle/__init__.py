"""asyncdex.oracle: signed oracle prices (this module), simulated price sources and publishers.

Invariants of a signed price:

- A publisher signs the EIP-712 struct ``OraclePrice(uint32 market, uint64 price, uint64
  timestamp)`` in the venue's signing domain (:func:`asyncdex.signing.intents.asyncdex_domain`:
  one settlement contract on one chain), so a price signed for one venue is worthless on
  another. ``price`` is in the market's engine price units (10^-(6 - szDecimals) USDC),
  ``timestamp`` in ms since the epoch, as the publisher's clock read it.
- The publisher is not on the wire: the node recovers it from the signature (canonical
  low-s signatures only, see :func:`asyncdex.signing.eip712.recover_address`).
- The JSON form of one update is ``{"market": n, "price": n, "timestamp": n, "signature":
  "0x" + 130 hex digits}``; ``POST /v1/oracle`` takes ``{"updates": [...]}`` (see
  :mod:`asyncdex.gateway.oracle_feed`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from asyncdex.signing.eip712 import (
    Domain,
    LocalSigner,
    StructType,
    domain_separator,
    typed_data_digest,
)

ORACLE_PRICE = StructType(
    "OraclePrice", [("market", "uint32"), ("price", "uint64"), ("timestamp", "uint64")]
)


class OraclePrice(NamedTuple):
    """One price observation, the fields of the EIP-712 struct in order."""

    market: int
    price: int
    timestamp: int


class SignedPrice(NamedTuple):
    price: OraclePrice
    signature: bytes  # 65 bytes r‖s‖v


def oracle_price_digest(domain: Domain, price: OraclePrice) -> bytes:
    """The 32-byte EIP-712 digest a publisher signs for ``price`` (raises
    ``EIP712EncodingError`` for a value outside its field's type)."""
    return typed_data_digest(domain_separator(domain), ORACLE_PRICE.hash(price))


def sign_price(signer: LocalSigner, domain: Domain, price: OraclePrice) -> SignedPrice:
    return SignedPrice(price, signer.sign(oracle_price_digest(domain, price)))


def signed_price_to_json(signed: SignedPrice) -> dict[str, Any]:
    market, price, timestamp = signed.price
    return {
        "market": market,
        "price": price,
        "timestamp": timestamp,
        "signature": "0x" + signed.signature.hex(),
    }
