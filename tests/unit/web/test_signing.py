"""The page signs intents exactly as the SDK does: same digest, same signature bytes.

``src/asyncdex/web/src/signing.js`` (the module the page bundles) runs in node on one intent
of every kind, at the edges of each field's range, and its digests, signatures, JSON and
``eth_signTypedData_v4`` documents are compared with :mod:`asyncdex.signing.intents`.
Needs node and the page's npm packages, as ``test_build.py``.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from eth_account.messages import encode_typed_data

from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    ApproveAgent,
    Cancel,
    CancelAll,
    CancelByClientId,
    Intent,
    Modify,
    PlaceOrder,
    ScheduleCancel,
    SetLeverage,
    UpdateIsolatedMargin,
    Withdraw,
    asyncdex_domain,
    intent_digest,
    intent_to_json,
    parse_signed_intent_json,
    sign_intent,
    verify_intent,
)
from asyncdex.types.hashing import keccak256
from asyncdex.types.numeric import MAX_COLLATERAL

from .test_build import WEB, web_toolchain

KEYS = [keccak256(b"web signing %d" % i) for i in range(2)]
U64 = 2**64 - 1
DOMAINS = [
    asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")),
    asyncdex_domain(131277322940537, bytes.fromhex("2946259e0334f33a064106302415ad3391bed384")),
]


def intents_for(account: bytes) -> list[Intent]:
    other = bytes(range(20))
    # fmt: off
    return [
        PlaceOrder(account, 1796609855623, 0, 0, True, 599_900, 100, 0, 0, False, bytes(16), 0, 0,
                   0),
        PlaceOrder(account, U64, U64, 2**32 - 1, False, U64, U64, 1, 3, True, b"\xff" * 16, U64,
                   7, 2),
        Cancel(account, 5, 0, 1, U64),
        CancelByClientId(account, 6, 9, 0, bytes(range(16))),
        CancelAll(account, 7, 0, 2**32 - 1),
        Modify(account, 8, 0, 0, 42, 600_010, 1),
        ScheduleCancel(account, 9, 0, 1796609999999),
        SetLeverage(account, 10, 0, 1, 2**16 - 1, True),
        UpdateIsolatedMargin(account, 11, 0, 0, -MAX_COLLATERAL),
        UpdateIsolatedMargin(account, 12, 0, 0, MAX_COLLATERAL),
        Withdraw(account, 13, 0, 250 * 10**6, other),
        ApproveAgent(account, 14, 0, other, "web page \u00e9\U0001f680", 0),
    ]
    # fmt: on


SCRIPT = r"""
import * as sig from "./src/signing.js";
const cases = JSON.parse(process.argv[1]);
const out = [];
for (const c of cases) {
  const message = {};
  for (const [key, value] of Object.entries(c.message)) {
    message[key] = typeof value === "object" ? BigInt(value.int) : value;
  }
  const key = sig.hexToBytes(c.key, 32);
  const digest = sig.intentDigest(c.domain, c.kind, message);
  const signature = sig.signDigest(key, digest);
  out.push({
    address: sig.addressOfKey(key),
    digest: sig.bytesToHex(digest),
    signature: sig.bytesToHex(signature),
    json: sig.toJson(c.kind, message, signature),
    typed: sig.typedData(c.domain, c.kind, message),
  });
}
process.stdout.write(JSON.stringify(out));
"""


def js_message(intent: Intent) -> dict[str, Any]:
    """The intent's JSON form with integers tagged, so the script makes BigInts of them."""
    document = intent_to_json(intent)
    del document["kind"]
    return {
        key: {"int": str(value)} if type(value) is int else value for key, value in document.items()
    }


def test_the_page_signs_every_kind_to_the_sdks_bytes() -> None:
    node = web_toolchain()
    cases = []
    expected = []
    for domain in DOMAINS:
        for key in KEYS:
            signer = LocalSigner(key)
            for intent in intents_for(signer.address):
                cases.append(
                    {
                        "domain": {
                            "name": domain.name,
                            "version": domain.version,
                            "chainId": str(domain.chain_id),
                            "verifyingContract": "0x" + domain.verifying_contract.hex(),
                        },
                        "key": "0x" + key.hex(),
                        "kind": type(intent).__name__,
                        "message": js_message(intent),
                    }
                )
                expected.append((domain, signer, intent))
    result = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, json.dumps(cases)],
        cwd=WEB,
        check=True,
        capture_output=True,
        timeout=120,
    )
    signed_by_page = json.loads(result.stdout)
    assert len(signed_by_page) == len(expected)
    for page, (domain, signer, intent) in zip(signed_by_page, expected, strict=True):
        digest = intent_digest(domain, intent)
        assert page["address"] == "0x" + signer.address.hex()
        assert page["digest"] == "0x" + digest.hex(), intent
        assert page["signature"] == "0x" + sign_intent(signer, domain, intent).signature.hex()
        # the JSON the page posts parses to the same intent and verifies as its signer's
        parsed, signature = parse_signed_intent_json(json.loads(page["json"]))
        assert parsed == intent
        assert verify_intent(domain, parsed, signature) == signer.address
        # and what an injected wallet is asked to sign hashes to the same digest
        typed = encode_typed_data(full_message=page["typed"])
        assert keccak256(b"\x19" + typed.version + typed.header + typed.body) == digest
