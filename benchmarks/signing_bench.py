"""Signature benchmark: stateless intent verification and the intent codecs, one core.

Measures microseconds per operation for a PlaceOrder (the largest and commonest intent):
- ``verify_intent``: EIP-712 digest + secp256k1 recovery through coincurve (the gateway path),
  split into its digest and recovery parts;
- the same verification through eth_account (``encode_typed_data`` + ``recover_message``),
  the usual Python way, as the reference point;
- ``sign_intent``; binary encode / decode (decode with and without verification); JSON parse;
- a Hyperliquid-compatible order action: action hash + phantom agent + recovery.

Each figure is the best of several timed rounds (the least disturbed by other processes).
It prints figures and never asserts a duration.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from asyncdex.signing.eip712 import address_of_private_key, recover_address
from asyncdex.signing.hl_signing import l1_action_digest, recover_l1_action_signer
from asyncdex.signing.intents import (
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    asyncdex_domain,
    decode_intent_payload,
    decode_signed_intent,
    encode_signed_intent,
    intent_digest,
    parse_signed_intent_json,
    sign_intent,
    signed_intent_to_json,
    typed_data,
    verify_intent,
)

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
ORDER = PlaceOrder(
    account=address_of_private_key(KEY),
    nonce=1_717_000_000_123,
    expires_after=0,
    market=3,
    is_buy=True,
    price=6_012_350,
    size=1_230,
    order_type=OrderType.LIMIT,
    tif=TimeInForce.GTC,
    reduce_only=False,
    client_id=bytes.fromhex("00112233445566778899aabbccddeeff"),
    expiry=0,
    trigger_price=0,
    trigger_kind=TriggerKind.NONE,
)
HL_ORDER_ACTION: dict[str, Any] = {
    "type": "order",
    "orders": [
        {
            "a": 0,
            "b": True,
            "p": "60123.5",
            "s": "0.0123",
            "r": False,
            "t": {"limit": {"tif": "Gtc"}},
            "c": "0x00000000000000000000000000000abc",
        }
    ],
    "grouping": "na",
}


def _microseconds(operation: Callable[[], object], number: int, rounds: int) -> float:
    best = min(timeit.repeat(operation, number=number, repeat=rounds))
    return round(best / number * 1e6, 2)


def run(quick: bool = False) -> dict[str, Any]:
    """Time each operation; print a table and return {name: microseconds per operation}."""
    number, rounds = (300, 3) if quick else (3000, 5)
    slow_number = max(number // 20, 20)  # eth_account is ~10x slower; keep the run short

    signed = sign_intent(KEY, DOMAIN, ORDER)
    digest = intent_digest(DOMAIN, ORDER)
    data = encode_signed_intent(signed)
    json_obj = json.loads(json.dumps(signed_intent_to_json(signed)))
    full_message = typed_data(DOMAIN, ORDER)
    wallet = Account.from_key(KEY)
    hl_signature = wallet.unsafe_sign_hash(l1_action_digest(HL_ORDER_ACTION, 1, None, None))
    hl_sig = {"r": hex(hl_signature.r), "s": hex(hl_signature.s), "v": hl_signature.v}
    hl_action = json.loads(json.dumps(HL_ORDER_ACTION))

    def eth_account_verify() -> object:
        return Account.recover_message(
            encode_typed_data(full_message=full_message), signature=signed.signature
        )

    cases: list[tuple[str, Callable[[], object], int]] = [
        (
            "verify_intent (asyncdex, coincurve)",
            lambda: verify_intent(DOMAIN, ORDER, signed.signature),
            number,
        ),
        ("  of which intent_digest", lambda: intent_digest(DOMAIN, ORDER), number),
        ("  of which recover_address", lambda: recover_address(digest, signed.signature), number),
        ("verify via eth_account", eth_account_verify, slow_number),
        ("sign_intent", lambda: sign_intent(KEY, DOMAIN, ORDER), number),
        ("encode_signed_intent (msgpack)", lambda: encode_signed_intent(signed), number),
        ("decode_intent_payload (no verify)", lambda: decode_intent_payload(data), number),
        (
            "decode_signed_intent (decode+verify)",
            lambda: decode_signed_intent(DOMAIN, data),
            number,
        ),
        (
            "parse_signed_intent_json (no verify)",
            lambda: parse_signed_intent_json(json_obj),
            number,
        ),
        (
            "hyperliquid order recover (asyncdex)",
            lambda: recover_l1_action_signer(hl_action, hl_sig, 1, None, None),
            number,
        ),
    ]
    results: dict[str, Any] = {}
    print(f"{'operation':44s} {'µs/op':>10s}", flush=True)
    for name, operation, count in cases:
        results[name.strip()] = _microseconds(operation, count, rounds)
        print(f"{name:44s} {results[name.strip()]:10.2f}", flush=True)
    speedup = results["verify via eth_account"] / results["verify_intent (asyncdex, coincurve)"]
    results["verify speedup vs eth_account"] = round(speedup, 1)
    results["encoded PlaceOrder bytes"] = len(data)
    print(f"{'verify speedup vs eth_account':44s} {speedup:9.1f}x")
    print(f"{'encoded PlaceOrder bytes':44s} {len(data):10d}")
    return results


if __name__ == "__main__":
    run()
