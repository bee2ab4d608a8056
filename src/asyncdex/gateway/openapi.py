"""The node's HTTP API as an OpenAPI 3.0 document, served at ``GET /v1/openapi.json``.

Invariants:

- Every route :class:`asyncdex.gateway.node.Node` registers is described here, with each
  status it can answer; a test compares the two lists.
- Signed intent schemas are generated from the wire tables of
  :mod:`asyncdex.signing.intents` (``INTENT_KINDS``, ``FIELD_TYPES``), so a new field or kind
  appears here without editing this module. Request bodies and query parameters the node
  parses strictly are ``additionalProperties: false``; responses are described as they are
  built, and are not closed, so adding a response field is not a breaking change.
- Prices, sizes and money are decimal strings (``Decimal``); ids, seqs, times (ms since the
  epoch) and parts-per-million/billion figures are integers.
- Pure: building the document reads no state; it is the same for every node.
"""

from __future__ import annotations

from typing import Any

from asyncdex.gateway.market_data import INTERVALS_MS
from asyncdex.gateway.ratelimit import EXEMPT_PATHS
from asyncdex.signing import intents as wire
from asyncdex.types.numeric import MAX_COLLATERAL, MAX_MARKET_BOUND
from asyncdex.web import FAUCET_MAX_AMOUNT

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1"

_HEX_ADDRESS = "^0x[0-9a-fA-F]{40}$"
_DECIMAL = "^-?[0-9]+(\\.[0-9]+)?$"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _integer(minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _open(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def abi_type_schema(abi_type: str) -> dict[str, Any]:
    """The JSON schema of one intent field, as :mod:`asyncdex.signing.intents` parses it."""
    if abi_type == "address":
        return {"type": "string", "pattern": _HEX_ADDRESS}
    if abi_type == "bool":
        return {"type": "boolean"}
    if abi_type == "string":
        # the limit is in UTF-8 bytes; characters are at least one byte each
        return {"type": "string", "maxLength": wire.MAX_AGENT_NAME_BYTES}
    if abi_type.startswith("bytes"):
        size = int(abi_type[5:])
        return {"type": "string", "pattern": f"^0x[0-9a-fA-F]{{{2 * size}}}$"}
    if abi_type.startswith("uint"):
        return _integer(0, 2 ** int(abi_type[4:]) - 1)
    if abi_type.startswith("int"):
        bits = int(abi_type[3:])
        return _integer(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    raise ValueError(f"no schema for ABI type {abi_type}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def signed_intent_schemas() -> dict[str, dict[str, Any]]:
    """``Signed<Kind>`` -> the strict JSON schema of that signed intent."""
    schemas = {}
    for kind in sorted(wire.INTENT_KINDS):
        cls = wire.INTENT_KINDS[kind]
        properties: dict[str, Any] = {"kind": {"type": "string", "enum": [cls.__name__]}}
        for field in cls._fields:
            properties[_camel(field)] = abi_type_schema(wire.FIELD_TYPES[field])
        properties["signature"] = {
            "type": "string",
            "pattern": f"^0x[0-9a-fA-F]{{{2 * wire.SIGNATURE_BYTES}}}$",
            "description": "65 bytes r || s || v over the EIP-712 digest (the intent id)",
        }
        schema = _closed(properties)
        schema["description"] = f"A signed {cls.__name__} intent (kind tag {kind})."
        schemas[f"Signed{cls.__name__}"] = schema
    return schemas


def _components() -> dict[str, Any]:
    intents = signed_intent_schemas()
    decimal = {"type": "string", "pattern": _DECIMAL}
    address = {"type": "string", "pattern": _HEX_ADDRESS}
    hash32 = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
    price = _nullable(_ref("Decimal"))
    schemas: dict[str, Any] = {
        "Decimal": {**decimal, "description": "an exact decimal number as a string"},
        "Address": address,
        "Error": {
            "type": "object",
            "properties": {
                "error": {"type": "string"},
                "code": {"type": "string"},
                "index": {"type": "integer", "nullable": True},
                "field": {"type": "string", "nullable": True},
                "scope": {"type": "string", "description": "rate_limited only: ip or address"},
                "retryAfterMs": {
                    "type": "integer",
                    "description": "rate_limited only: milliseconds until the request would pass",
                },
                "unknown": {
                    "type": "array",
                    "description": "outcome_unknown only: the intents that may be in the "
                    "journal; after the restart each is there with this seq, or absent",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "intentId": {"type": "string", "nullable": True},
                            "seq": {"type": "integer"},
                            "timestamp": {"type": "integer"},
                        },
                        "required": ["index", "intentId", "seq", "timestamp"],
                    },
                },
            },
            "required": ["error", "code"],
        },
        **intents,
        "SignedIntent": {
            "oneOf": [_ref(name) for name in intents],
            "discriminator": {"propertyName": "kind"},
        },
        "IntentBatch": _closed(
            {"intents": {"type": "array", "minItems": 1, "items": _ref("SignedIntent")}}
        ),
        "SystemCommand": {
            "oneOf": [
                _closed(
                    {
                        "type": {"type": "string", "enum": ["deposit"]},
                        "account": address,
                        "amount": _integer(0, MAX_COLLATERAL),
                        "l1Index": _integer(0, 2**64 - 1),
                    }
                ),
                _closed(
                    {
                        "type": {"type": "string", "enum": ["oraclePrice"]},
                        "publisher": address,
                        "market": _integer(0, 2**32 - 1),
                        "price": _integer(0, MAX_MARKET_BOUND),
                    }
                ),
                _closed({"type": {"type": "string", "enum": ["advanceTime"]}}),
            ]
        },
        "SystemRequest": _closed(
            {
                "commands": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1_000,
                    "items": _ref("SystemCommand"),
                }
            }
        ),
        "DevDepositRequest": _closed({"account": address, "amount": _integer(1, MAX_COLLATERAL)}),
        "FaucetRequest": _closed({"account": address, "amount": _integer(1, FAUCET_MAX_AMOUNT)}),
        "Receipts": _open(
            {
                "receipts": {
                    "type": "array",
                    "items": _open(
                        {
                            "intentId": _nullable(hash32),
                            "seq": _integer(1),
                            "timestamp": _integer(0),
                        }
                    ),
                }
            }
        ),
        "Record": _open(
            {
                "seq": _integer(1),
                "intentId": _nullable(hash32),
                "status": {
                    "type": "string",
                    "enum": ["sequenced", "executed", "committed", "finalized"],
                },
                "events": {
                    "type": "array",
                    "nullable": True,
                    "items": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}},
                        "required": ["type"],
                        "description": "an engine event: its fields in camelCase, bytes as hex",
                    },
                },
                "batch": {"type": "integer", "nullable": True},
                "txHash": _nullable(hash32),
            }
        ),
        "Status": _open(
            {
                "lastSeq": _integer(0),
                "durableSeq": _integer(0),
                "appliedSeq": _integer(0),
                "snapshotSeq": _integer(0),
                "stateRoot": hash32,
                "engineTime": _integer(0),
                "draining": {"type": "boolean"},
                "protectiveMode": {"type": "boolean"},
                "settlement": {"type": "object", "nullable": True},
                "engine": {"type": "string", "enum": ["native", "reference"]},
            }
        ),
        "Market": _open(
            {
                "marketId": _integer(0),
                "symbol": {"type": "string"},
                "szDecimals": _integer(0, 6),
                "tick": _ref("Decimal"),
                "lot": _ref("Decimal"),
                "minOrderValue": _ref("Decimal"),
                "maxLeverage": _integer(1),
                "initialMarginPpm": _integer(0),
                "maintenanceMarginPpm": _integer(0),
                "makerFeePpm": _integer(),
                "takerFeePpm": _integer(0),
                "fundingIntervalMs": _integer(1),
                "markPrice": price,
                "indexPrice": price,
                "bestBid": price,
                "bestAsk": price,
                "fundingRatePpb": _integer(),
                "cumulativeFunding": {
                    "type": "string",
                    "pattern": "^-?[0-9]+$",
                    "description": "cumulative funding per unit of size, price units x 10^9",
                },
                "nextFundingTime": _integer(0),
            }
        ),
        "MarketTerms": _open(
            {
                "marketId": _integer(0),
                "symbol": {"type": "string"},
                "szDecimals": _integer(0, 6),
                "priceDecimals": _integer(0, 6),
                "tick": {**decimal, "description": "price step, USDC"},
                "lot": {**decimal, "description": "size step, base asset"},
                "minOrderValue": _ref("Decimal"),
                "maxLeverage": _integer(1),
                "initialMarginPpm": _integer(0),
                "maintenanceMarginPpm": _integer(0),
                "makerFeePpm": _integer(),
                "takerFeePpm": _integer(0),
                "fundingIntervalMs": _integer(1),
                "oracleStalenessMs": _integer(0),
                "marketSlippagePpm": _integer(0),
                "ordering": {
                    "type": "string",
                    "enum": ["continuous", "batch_auction"],
                    "description": "batch_auction: orders wait and clear in auctions",
                },
                "auctionIntervalMs": {
                    **_integer(0),
                    "description": "one auction per interval of sequenced time; 0 if continuous",
                },
            }
        ),
        "Venue": _open(
            {
                "chainId": _integer(1),
                "domain": _open(
                    {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "chainId": _integer(1),
                        "verifyingContract": address,
                    }
                ),
                "settlementContract": {
                    **address,
                    "nullable": True,
                    "description": "where batches are posted; null when the node does not settle",
                },
                "settlementChain": {
                    "type": "string",
                    "enum": ["embedded", "rpc"],
                    "nullable": True,
                    "description": "embedded: the node's own py-evm chain (with the dev faucet)",
                },
                "maxOpenOrdersPerAccount": _integer(1),
                "markets": {"type": "array", "items": _ref("MarketTerms")},
                "hyperliquid": {
                    **_open({"network": {"type": "string", "enum": ["mainnet", "testnet"]}}),
                    "nullable": True,
                    "description": "what Hyperliquid clients sign for; null without that API",
                },
                "sealing": {
                    **_open(
                        {
                            "epoch": _integer(0),
                            "epoch_ms": _integer(1),
                            "public_key": {"type": "string", "pattern": "^0x[0-9a-fA-F]{96}$"},
                        }
                    ),
                    "nullable": True,
                    "description": "the committee key sealed intents are encrypted to and the "
                    "current sealing epoch (docs/fairness.md); null without sealed intents",
                },
            }
        ),
        "Level": _open({"price": _ref("Decimal"), "size": _ref("Decimal"), "orders": _integer(1)}),
        "Book": _open(
            {
                "symbol": {"type": "string"},
                "market": _integer(0),
                "seq": _integer(0),
                "time": _integer(0),
                "bids": {"type": "array", "items": _ref("Level")},
                "asks": {"type": "array", "items": _ref("Level")},
            }
        ),
        "Trade": _open(
            {
                "seq": _integer(1),
                "time": _integer(0),
                "price": _ref("Decimal"),
                "size": _ref("Decimal"),
                "side": {"type": "string", "enum": ["buy", "sell"], "description": "taker's"},
                "makerOrder": _integer(0),
                "takerOrder": _integer(0),
            }
        ),
        "Candle": _open(
            {
                "start": _integer(0),
                "open": _ref("Decimal"),
                "high": _ref("Decimal"),
                "low": _ref("Decimal"),
                "close": _ref("Decimal"),
                "volume": _ref("Decimal"),
                "trades": _integer(1),
            }
        ),
        "Funding": _open(
            {
                "seq": _integer(1),
                "time": _integer(0),
                "ratePpb": _integer(),
                "indexPrice": _ref("Decimal"),
                "cumulativeIndex": {"type": "string", "pattern": "^-?[0-9]+$"},
            }
        ),
        "Position": _open(
            {
                "market": _integer(0),
                "symbol": {"type": "string"},
                "size": _ref("Decimal"),
                "entryPrice": price,
                "markPrice": price,
                "unrealizedPnl": _ref("Decimal"),
                "marginUsed": _ref("Decimal"),
                "liquidationPrice": {
                    **price,
                    "description": (
                        "isolated: the mark at which the isolated equity meets maintenance; "
                        "cross (approximate): p = ((E - s*m)*PPM - (M*PPM - |s|*m*mm)) / "
                        "(|s|*mm - s*PPM), other marks held fixed (E cross equity, M cross "
                        "maintenance, s size, m mark, mm maintenance ppm); null if none"
                    ),
                },
                "leverage": _integer(1),
                "isolated": {"type": "boolean"},
                "isolatedMargin": _ref("Decimal"),
                "fundingPaid": _ref("Decimal"),
            }
        ),
        "Account": _open(
            {
                "address": address,
                "seq": _integer(0),
                "collateral": _ref("Decimal"),
                "equity": _ref("Decimal"),
                "crossEquity": _ref("Decimal"),
                "crossInitialMargin": _ref("Decimal"),
                "crossMaintenanceMargin": _ref("Decimal"),
                "positions": {"type": "array", "items": _ref("Position")},
            }
        ),
        "Order": _open(
            {
                "orderId": _integer(1),
                "market": _integer(0),
                "symbol": {"type": "string"},
                "side": {"type": "string", "enum": ["buy", "sell"]},
                "price": price,
                "size": _ref("Decimal"),
                "origSize": _ref("Decimal"),
                "orderType": _integer(0),
                "tif": _integer(0),
                "reduceOnly": {"type": "boolean"},
                "clientId": {"type": "string", "pattern": "^0x[0-9a-f]{32}$"},
                "expiry": _integer(0),
                "triggerKind": _integer(0),
                "triggerPrice": price,
                "timestamp": _integer(0),
                "waitingForAuction": {
                    "type": "boolean",
                    "description": "an IOC or market order on a batch-auction market: it "
                    "waits for the next auction and is cancelled after it if unfilled",
                },
            }
        ),
        "Fill": _open(
            {
                "seq": _integer(1),
                "time": _integer(0),
                "market": _integer(0),
                "symbol": {"type": "string"},
                "price": _ref("Decimal"),
                "size": _ref("Decimal"),
                "side": {"type": "string", "enum": ["buy", "sell"]},
                "liquidity": {"type": "string", "enum": ["maker", "taker"]},
                "orderId": _integer(0),
                "fee": _ref("Decimal"),
                "builderFee": _ref("Decimal"),
            }
        ),
    }
    return {
        "schemas": schemas,
        "securitySchemes": {"operatorToken": {"type": "http", "scheme": "bearer"}},
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return _json(schema, description)


def _path_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_SYMBOL = _path_parameter("symbol", {"type": "string"}, "the market's symbol, e.g. BTC")
_ADDRESS = _path_parameter(
    "address",
    {"type": "string", "pattern": _HEX_ADDRESS},
    "0x + 40 hex digits (EIP-55 or one case)",
)
_LIMIT = _query_parameter(
    "limit", _integer(1, 1_000), "how many, newest first (default 100)"
)  # fmt: skip
_START = _query_parameter(
    "start", _integer(0, 2**63 - 1), "first time included, ms (default 0)"
)  # fmt: skip
_END = _query_parameter("end", _integer(0, 2**63 - 1), "last time included, ms (default: no end)")
_BAD = _error("bad parameter (code names it: invalid_limit, invalid_time_range, ...)")


def _paths() -> dict[str, Any]:
    intake_errors = {
        "400": _error("malformed, mistyped or unsigned input; refused before sequencing"),
        "413": _error("body too large"),
        "415": _error("content type not accepted"),
        "500": _error("internal fault; nothing acknowledged, the node stops"),
        "503": _error(
            "shutting down or journal failure; nothing acknowledged (journal_failed: nothing "
            "sequenced; outcome_unknown: the intents listed in unknown may have been)"
        ),
    }
    operator_errors = {
        "401": _error("missing or wrong operator token"),
        "403": _error("no operator token configured"),
    }
    return {
        "/v1/intents": {
            "post": {
                "summary": "Sequence signed intents; answers once they are durable",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [_ref("SignedIntent"), _ref("IntentBatch")],
                            }
                        },
                        "application/msgpack": {
                            "schema": {"type": "string", "format": "binary"},
                        },
                    },
                },
                "responses": {"200": _ok(_ref("Receipts"), "receipts in request order")}
                | intake_errors,
            }
        },
        "/v1/sealed": {
            "post": {
                "summary": "Sealed intents (committee venues): ordered still encrypted, "
                "revealed once their epoch's key is in a block (docs/fairness.md)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _open(
                                {
                                    "sealed": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 64,
                                        "items": {
                                            "type": "string",
                                            "pattern": "^0x([0-9a-fA-F]{2})+$",
                                            "description": "a sealed-intent envelope",
                                        },
                                    }
                                }
                            )
                        }
                    },
                },
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "receipts": {
                                    "type": "array",
                                    "items": _open(
                                        {
                                            "sealedId": {"type": "string"},
                                            "seq": _integer(0),
                                            "timestamp": _integer(0),
                                        }
                                    ),
                                }
                            }
                        ),
                        "durable on this member, in request order (seq 0 until executed)",
                    ),
                    "400": _error(
                        "refused, nothing sequenced: malformed body or envelope, an envelope "
                        "signature that does not recover, an epoch not current or next"
                    ),
                    "404": _error("not a committee member with a sealing key"),
                    "413": _error("body too large"),
                    "503": _error("shutting down, or the member's intake failed"),
                },
            }
        },
        "/v1/intents/{intentId}": {
            "get": {
                "summary": "Status and events of a sequenced intent",
                "parameters": [
                    _path_parameter(
                        "intentId",
                        {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"},
                        "the intent's EIP-712 digest",
                    )
                ],
                "responses": {
                    "200": _ok(_ref("Record")),
                    "400": _error("not an intent id"),
                    "404": _error("unknown intent (or older than the index keeps)"),
                },
            }
        },
        "/v1/seq/{seq}": {
            "get": {
                "summary": "Status and events of a sequenced record",
                "parameters": [_path_parameter("seq", _integer(1, 2**63 - 1), "a record's seq")],
                "responses": {
                    "200": _ok(_ref("Record")),
                    "400": _error("not an integer in 1..2^63-1"),
                    "404": _error("not sequenced yet"),
                },
            }
        },
        "/v1/withdrawals/{withdrawalId}/proof": {
            "get": {
                "summary": "Merkle proof for claimWithdrawal once the withdrawal is in a batch",
                "parameters": [
                    _path_parameter("withdrawalId", _integer(1, 2**63 - 1), "withdrawal id")
                ],
                "responses": {
                    "200": _ok({"type": "object"}, "batch, leaf index, proof and status"),
                    "400": _error("not an integer in 1..2^63-1"),
                    "404": _error("in no batch yet, or the node does not settle"),
                },
            }
        },
        "/v1/system": {
            "post": {
                "summary": "Operator door: oracle prices, deposits, time ticks (sequenced)",
                "security": [{"operatorToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SystemRequest")}},
                },
                "responses": {"200": _ok(_ref("Receipts"))} | intake_errors | operator_errors,
            }
        },
        "/v1/dev/deposit": {
            "post": {
                "summary": "Embedded chain only: mint test tokens and deposit them on chain",
                "security": [{"operatorToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DevDepositRequest")}},
                },
                "responses": {
                    "200": _ok(
                        _open({"l1Index": _integer(0), "txHash": {"type": "string"}}),
                        "the deposit's L1 index and transaction",
                    ),
                    "400": _error("malformed body"),
                    "404": _error("no embedded chain"),
                    "502": _error("the chain refused the deposit"),
                    "503": _error("shutting down"),
                }
                | operator_errors,
            }
        },
        "/v1/dev/faucet": {
            "post": {
                "summary": "Embedded chain only, no token: mint test USDC and deposit it on "
                "chain for an account (at most 1,000,000 USDC a request; asyncdex.web)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("FaucetRequest")}},
                },
                "responses": {
                    "200": _ok(
                        _open({"l1Index": _integer(0), "txHash": {"type": "string"}}),
                        "the deposit's L1 index and transaction",
                    ),
                    "400": _error("malformed body or amount out of range"),
                    "404": _error("no embedded chain"),
                    "413": _error("body too large"),
                    "502": _error("the chain refused the deposit"),
                    "503": _error("shutting down"),
                },
            }
        },
        "/v1/dev/claim/{withdrawalId}": {
            "post": {
                "summary": "Embedded chain only, no token: send claimWithdrawal from the node's "
                "dev account; the contract pays the withdrawal's account (asyncdex.web)",
                "parameters": [
                    _path_parameter("withdrawalId", _integer(1, 2**63 - 1), "withdrawal id")
                ],
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "withdrawalId": _integer(1),
                                "account": {"type": "string"},
                                "amount": _integer(1),
                                "txHash": {"type": "string"},
                                "tokenBalanceBefore": _integer(0),
                                "tokenBalance": _integer(0),
                            }
                        ),
                        "the claim's transaction and the account's token balance around it",
                    ),
                    "400": _error("not an integer in 1..2^63-1"),
                    "404": _error("no embedded chain, or the withdrawal is in no batch yet"),
                    "409": _error(
                        "the contract refused (reason: BatchNotFinal, "
                        "WithdrawalAlreadyClaimed, ...), in words"
                    ),
                    "502": _error("the chain failed"),
                    "503": _error("shutting down"),
                },
            }
        },
        "/v1/status": {
            "get": {
                "summary": "Sequencer, journal, engine and settlement progress",
                "responses": {"200": _ok(_ref("Status"))},
            }
        },
        "/v1/health": {
            "get": {
                "summary": "Liveness",
                "responses": {
                    "200": _ok(_open({"status": {"type": "string", "enum": ["ok"]}})),
                    "503": _json(
                        _open({"status": {"type": "string", "enum": ["draining"]}}), "draining"
                    ),
                },
            }
        },
        "/v1/ready": {
            "get": {
                "summary": "Readiness: recovered, accepting, and (when settling) connected",
                "responses": {
                    "200": _ok(_open({"ready": {"type": "boolean", "enum": [True]}})),
                    "503": _json(
                        _open(
                            {
                                "ready": {"type": "boolean", "enum": [False]},
                                "reasons": {"type": "array", "items": {"type": "string"}},
                            }
                        ),
                        "not ready; the reasons say why",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/oracle": {
            "get": {
                "summary": "The oracle's signing domain and type, publishers, latest prices",
                "responses": {"200": _ok({"type": "object"})},
            },
            "post": {
                "summary": "Signed oracle price updates from the venue's publishers",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _closed(
                                {
                                    "updates": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 256,
                                        "items": _closed(
                                            {
                                                "market": _integer(0),
                                                "price": _integer(1),
                                                "timestamp": _integer(0),
                                                "signature": {"type": "string"},
                                            }
                                        ),
                                    }
                                }
                            )
                        }
                    },
                },
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "receipts": {
                                    "type": "array",
                                    "items": _open({"seq": _integer(1), "timestamp": _integer(0)}),
                                }
                            }
                        )
                    ),
                    "400": _error("malformed update, unknown market, bad signature, stale"),
                    "403": _error("the signer is not one of the venue's publishers"),
                    "409": _error("replayed update: timestamps rise per publisher and market"),
                    "413": _error("body too large"),
                    "503": _error("shutting down; nothing sequenced"),
                },
            },
        },
        "/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _ok({"type": "object"})},
            }
        },
        "/v1/venue": {
            "get": {
                "summary": "What a client needs to sign and build intents: chain id, the "
                "EIP-712 domain intents are verified against, settlement contract, markets",
                "responses": {"200": _ok(_ref("Venue")), "400": _BAD},
            }
        },
        "/v1/markets": {
            "get": {
                "summary": "Every market: spec, mark, index, best prices, funding",
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "seq": _integer(0),
                                "markets": {"type": "array", "items": _ref("Market")},
                            }
                        )
                    ),
                    "400": _BAD,
                },
            }
        },
        "/v1/markets/{symbol}/book": {
            "get": {
                "summary": "L2 book: aggregated levels, best first, as of seq",
                "parameters": [
                    _SYMBOL,
                    _query_parameter("depth", _integer(1, 100), "levels per side (default 20)"),
                ],
                "responses": {
                    "200": _ok(_ref("Book")),
                    "400": _BAD,
                    "404": _error("unknown market"),
                },
            }
        },
        "/v1/markets/{symbol}/trades": {
            "get": {
                "summary": "Recent trades, newest first",
                "parameters": [_SYMBOL, _LIMIT],
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "symbol": {"type": "string"},
                                "trades": {"type": "array", "items": _ref("Trade")},
                            }
                        )
                    ),
                    "400": _BAD,
                    "404": _error("unknown market"),
                },
            }
        },
        "/v1/markets/{symbol}/candles": {
            "get": {
                "summary": "OHLCV candles whose start is in [start, end], oldest first",
                "parameters": [
                    _SYMBOL,
                    _query_parameter(
                        "interval",
                        {"type": "string", "enum": list(INTERVALS_MS)},
                        "candle length (default 1m)",
                    ),
                    _START,
                    _END,
                ],
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "symbol": {"type": "string"},
                                "interval": {"type": "string"},
                                "candles": {"type": "array", "items": _ref("Candle")},
                            }
                        )
                    ),
                    "400": _BAD,
                    "404": _error("unknown market"),
                },
            }
        },
        "/v1/markets/{symbol}/funding": {
            "get": {
                "summary": "Funding payments in [start, end], oldest first",
                "parameters": [_SYMBOL, _START, _END],
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "symbol": {"type": "string"},
                                "funding": {"type": "array", "items": _ref("Funding")},
                            }
                        )
                    ),
                    "400": _BAD,
                    "404": _error("unknown market"),
                },
            }
        },
        "/v1/accounts/{address}": {
            "get": {
                "summary": "Balances, margin and positions at the current marks",
                "parameters": [_ADDRESS],
                "responses": {
                    "200": _ok(_ref("Account")),
                    "400": _BAD,
                    "404": _error("unknown account"),
                },
            }
        },
        "/v1/accounts/{address}/orders": {
            "get": {
                "summary": "Open orders (resting and armed triggers), by order id",
                "parameters": [_ADDRESS],
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "address": {"type": "string"},
                                "orders": {"type": "array", "items": _ref("Order")},
                            }
                        )
                    ),
                    "400": _BAD,
                    "404": _error("unknown account"),
                },
            }
        },
        "/v1/accounts/{address}/fills": {
            "get": {
                "summary": "The account's fills, newest first",
                "parameters": [_ADDRESS, _LIMIT],
                "responses": {
                    "200": _ok(
                        _open(
                            {
                                "address": {"type": "string"},
                                "fills": {"type": "array", "items": _ref("Fill")},
                            }
                        )
                    ),
                    "400": _BAD,
                    "404": _error("unknown account"),
                },
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    """The whole document (a fresh dict each call)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "asyncdex node",
            "version": API_VERSION,
            "description": (
                "A venue node: signed intents in, durable receipts out, read-only market "
                "data. Prices, sizes and money are decimal strings; ids and times integers. "
                "Errors are {error, code}."
            ),
        },
        "servers": [{"url": "http://127.0.0.1"}],
        "paths": _with_rate_limits(_paths()),
        "components": _components(),
    }


def _with_rate_limits(paths: dict[str, Any]) -> dict[str, Any]:
    """Every door the request-weight budget covers may answer 429 (see
    :mod:`asyncdex.gateway.ratelimit`); the exempt ones are the limiter's own list."""
    limited = _error(
        "request-weight budget spent (code rate_limited); retry after retryAfterMs "
        "(also Retry-After, in seconds); nothing was sequenced"
    )
    for path, operations in paths.items():
        if path in EXEMPT_PATHS:
            continue
        for operation in operations.values():
            operation["responses"].setdefault("429", limited)
    return paths
