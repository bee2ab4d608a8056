"""Hyperliquid-compatible signatures: sign with hyperliquid-python-sdk, recover with ours."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.utils import signing as sdk
from hyperliquid.utils.types import Cloid

from asyncdex.signing.eip712 import MalleableSignature, SignatureError
from asyncdex.signing.hl_signing import (
    AGENT_DOMAIN,
    USER_SIGNED_TYPES,
    MalformedAction,
    action_hash,
    l1_action_digest,
    parse_signature,
    recover_l1_action_signer,
    recover_user_signed_signer,
    user_signed_digest,
)

ACCOUNT = Account.from_key("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
AGENT = Account.from_key("0x" + bytes(range(1, 33)).hex())
VAULT = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"
NONCE = 1_717_000_000_123


def address(account: Any) -> bytes:
    return bytes.fromhex(account.address[2:])


def as_received(obj: Any) -> Any:
    """What the server sees: the JSON body parsed back, key order kept."""
    return json.loads(json.dumps(obj))


def order_action() -> dict[str, Any]:
    limit = sdk.order_request_to_order_wire(
        {
            "coin": "BTC",
            "is_buy": True,
            "sz": 0.0123,
            "limit_px": 60123.5,
            "order_type": {"limit": {"tif": "Gtc"}},
            "reduce_only": False,
            "cloid": Cloid.from_int(0xABC),
        },
        0,
    )
    trigger = sdk.order_request_to_order_wire(
        {
            "coin": "ETH",
            "is_buy": False,
            "sz": 1.5,
            "limit_px": 3000,
            "order_type": {"trigger": {"triggerPx": 2950.5, "isMarket": True, "tpsl": "sl"}},
            "reduce_only": True,
        },
        1,
    )
    return sdk.order_wires_to_order_action([limit, trigger])


def cancel_action() -> dict[str, Any]:
    return {"type": "cancel", "cancels": [{"a": 0, "o": 123456}, {"a": 1, "o": 7}]}


L1_CASES = [
    pytest.param(order_action, None, None, id="order"),
    pytest.param(order_action, VAULT, None, id="order-vault"),
    pytest.param(order_action, None, NONCE + 60_000, id="order-expires"),
    pytest.param(cancel_action, VAULT, NONCE + 1, id="cancel-vault-expires"),
    pytest.param(cancel_action, None, None, id="cancel"),
]


@pytest.mark.parametrize(("make_action", "vault", "expires_after"), L1_CASES)
@pytest.mark.parametrize("is_mainnet", [False, True])
def test_action_hash_matches_sdk(
    make_action: Any, vault: str | None, expires_after: int | None, is_mainnet: bool
) -> None:
    action = make_action()
    expected = sdk.action_hash(action, vault, NONCE, expires_after)
    assert action_hash(as_received(action), NONCE, vault, expires_after) == expected
    if vault is not None:
        assert action_hash(action, NONCE, bytes.fromhex(vault[2:]), expires_after) == expected


@pytest.mark.parametrize(("make_action", "vault", "expires_after"), L1_CASES)
@pytest.mark.parametrize("is_mainnet", [False, True])
@pytest.mark.parametrize("wallet", [ACCOUNT, AGENT], ids=["account", "agent"])
def test_l1_action_signed_by_sdk_recovers(
    make_action: Any, vault: str | None, expires_after: int | None, is_mainnet: bool, wallet: Any
) -> None:
    action = make_action()
    signature = sdk.sign_l1_action(wallet, action, vault, NONCE, expires_after, is_mainnet)
    body = as_received({"action": action, "nonce": NONCE, "signature": signature})
    signer = recover_l1_action_signer(
        body["action"], body["signature"], NONCE, vault, expires_after, is_mainnet=is_mainnet
    )
    assert signer == address(wallet)
    # The other network flag yields some other address, never the signer.
    other = recover_l1_action_signer(
        body["action"], body["signature"], NONCE, vault, expires_after, is_mainnet=not is_mainnet
    )
    assert other != address(wallet)


def test_agent_domain() -> None:
    assert AGENT_DOMAIN.name == "Exchange"
    assert AGENT_DOMAIN.chain_id == 1337
    assert AGENT_DOMAIN.verifying_contract == bytes(20)


def test_l1_tampering_changes_signer() -> None:
    action = order_action()
    signature = sdk.sign_l1_action(ACCOUNT, action, None, NONCE, None, False)
    tampered = as_received(action)
    tampered["orders"][0]["p"] = "60123.6"
    assert recover_l1_action_signer(tampered, signature, NONCE, None, None) != address(ACCOUNT)
    assert recover_l1_action_signer(action, signature, NONCE + 1, None, None) != address(ACCOUNT)
    assert recover_l1_action_signer(action, signature, NONCE, VAULT, None) != address(ACCOUNT)
    assert recover_l1_action_signer(action, signature, NONCE, None, 0) != address(ACCOUNT)


def test_l1_key_order_is_part_of_the_hash() -> None:
    action = cancel_action()
    signature = sdk.sign_l1_action(ACCOUNT, action, None, NONCE, None, False)
    reordered = {"cancels": action["cancels"], "type": action["type"]}
    assert recover_l1_action_signer(action, signature, NONCE, None, None) == address(ACCOUNT)
    assert recover_l1_action_signer(reordered, signature, NONCE, None, None) != address(ACCOUNT)


USER_CASES = [
    pytest.param(
        {"destination": VAULT, "amount": "12.5", "time": NONCE, "type": "withdraw3"},
        sdk.sign_withdraw_from_bridge_action,
        id="withdraw3",
    ),
    pytest.param(
        {"type": "usdClassTransfer", "amount": "100.0", "toPerp": True, "nonce": NONCE},
        sdk.sign_usd_class_transfer_action,
        id="usdClassTransfer",
    ),
    pytest.param(
        {
            "type": "usdClassTransfer",
            "amount": f"1.0 subaccount:{VAULT}",
            "toPerp": False,
            "nonce": NONCE,
        },
        sdk.sign_usd_class_transfer_action,
        id="usdClassTransfer-subaccount",
    ),
    pytest.param(
        {"type": "approveAgent", "agentAddress": AGENT.address, "agentName": "bot", "nonce": NONCE},
        sdk.sign_agent,
        id="approveAgent",
    ),
    pytest.param(
        {"destination": VAULT, "amount": "3", "time": NONCE, "type": "usdSend"},
        sdk.sign_usd_transfer_action,
        id="usdSend",
    ),
    pytest.param(
        {"maxFeeRate": "0.001%", "builder": VAULT, "nonce": NONCE, "type": "approveBuilderFee"},
        sdk.sign_approve_builder_fee,
        id="approveBuilderFee",
    ),
]


@pytest.mark.parametrize(("action", "sign"), USER_CASES)
@pytest.mark.parametrize("is_mainnet", [False, True])
def test_user_signed_action_signed_by_sdk_recovers(
    action: dict[str, Any], sign: Any, is_mainnet: bool
) -> None:
    action = dict(action)
    signature = sign(ACCOUNT, action, is_mainnet)  # adds signatureChainId, hyperliquidChain
    body = as_received({"action": action, "nonce": NONCE, "signature": signature})
    assert recover_user_signed_signer(
        body["action"], body["signature"], is_mainnet=is_mainnet
    ) == address(ACCOUNT)
    tampered = {**body["action"], "nonce": NONCE + 1, "time": NONCE + 1}
    assert recover_user_signed_signer(
        tampered, body["signature"], is_mainnet=is_mainnet
    ) != address(ACCOUNT)


def test_approve_agent_without_name_as_the_sdk_posts_it() -> None:
    action = {
        "type": "approveAgent",
        "agentAddress": AGENT.address,
        "agentName": "",
        "nonce": NONCE,
    }
    signature = sdk.sign_agent(ACCOUNT, action, False)
    del action["agentName"]  # Exchange.approve_agent(name=None) drops the key after signing
    assert recover_user_signed_signer(as_received(action), signature) == address(ACCOUNT)


def test_user_signed_types_match_sdk() -> None:
    expected = {
        "usdSend": sdk.USD_SEND_SIGN_TYPES,
        "spotSend": sdk.SPOT_TRANSFER_SIGN_TYPES,
        "withdraw3": sdk.WITHDRAW_SIGN_TYPES,
        "usdClassTransfer": sdk.USD_CLASS_TRANSFER_SIGN_TYPES,
        "sendAsset": sdk.SEND_ASSET_SIGN_TYPES,
    }
    for action_type, fields in expected.items():
        struct = USER_SIGNED_TYPES[action_type]
        assert [
            {"name": n, "type": t}
            for n, t in zip(struct.field_names, struct.field_types, strict=True)
        ] == fields


def test_invalid_user_signed_network_mismatch() -> None:
    action = {"destination": VAULT, "amount": "1", "time": NONCE, "type": "withdraw3"}
    signature = sdk.sign_withdraw_from_bridge_action(ACCOUNT, action, True)
    with pytest.raises(MalformedAction, match="hyperliquidChain must be 'Testnet', got 'Mainnet'"):
        recover_user_signed_signer(action, signature, is_mainnet=False)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"type": "order"}, "not a user-signed action type: 'order'"),
        ({"amount": "1"}, "not a user-signed action type: None"),
        ({"type": "withdraw3", "signatureChainId": "0x66eee"}, "hyperliquidChain must be"),
        ({"type": "withdraw3", "hyperliquidChain": "Testnet"}, "signatureChainId must be"),
        (
            {
                "type": "withdraw3",
                "hyperliquidChain": "Testnet",
                "signatureChainId": "0x1",
                "amount": "1",
                "time": 1,
            },
            "withdraw3: missing field 'destination'",
        ),
        (
            {
                "type": "withdraw3",
                "hyperliquidChain": "Testnet",
                "signatureChainId": "0x1",
                "destination": VAULT,
                "amount": 1,
                "time": 1,
            },
            "amount must be a string",
        ),
        (
            {
                "type": "withdraw3",
                "hyperliquidChain": "Testnet",
                "signatureChainId": "0x1",
                "destination": VAULT,
                "amount": "1",
                "time": -1,
            },
            "time must be an unsigned 64-bit integer",
        ),
        (
            {
                "type": "approveAgent",
                "hyperliquidChain": "Testnet",
                "signatureChainId": "0x1",
                "agentAddress": "0x12",
                "nonce": 1,
            },
            "agentAddress must be a 0x-prefixed 20-byte hex address",
        ),
        (
            {
                "type": "usdClassTransfer",
                "hyperliquidChain": "Testnet",
                "signatureChainId": "0x1",
                "amount": "1",
                "toPerp": 1,
                "nonce": 1,
            },
            "toPerp must be a boolean",
        ),
    ],
)
def test_invalid_user_signed_action(action: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedAction, match=message):
        user_signed_digest(action)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("0x00", "signature must be an object"),
        ({"s": "0x1", "v": 27}, "signature.r must be"),
        ({"r": "1", "s": "0x1", "v": 27}, "signature.r must be"),
        ({"r": "0x" + "1" * 65, "s": "0x1", "v": 27}, "signature.r must be"),
        ({"r": "0x1", "s": 1, "v": 27}, "signature.s must be"),
        ({"r": "0x1", "s": "0x1", "v": "27"}, "signature.v must be an integer"),
        ({"r": "0x1", "s": "0x1", "v": 300}, "signature.v must be an integer"),
    ],
)
def test_invalid_signature_object(signature: Any, message: str) -> None:
    with pytest.raises(MalformedAction, match=message):
        parse_signature(signature)


def test_unpadded_signature_components() -> None:
    assert parse_signature({"r": "0x1", "s": "0xff", "v": 28}) == (
        (1).to_bytes(32, "big") + (255).to_bytes(32, "big") + b"\x1c"
    )


def test_invalid_malleable_hl_signature() -> None:
    action = cancel_action()
    signature = sdk.sign_l1_action(ACCOUNT, action, None, NONCE, None, False)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    mirrored = {
        "r": signature["r"],
        "s": hex(n - int(signature["s"], 16)),
        "v": 55 - signature["v"],
    }
    with pytest.raises(MalleableSignature):
        recover_l1_action_signer(action, mirrored, NONCE, None, None)
    assert issubclass(MalleableSignature, SignatureError)


@pytest.mark.parametrize(
    ("nonce", "vault", "expires_after", "message"),
    [
        (-1, None, None, "nonce must be an unsigned 64-bit integer"),
        (2**64, None, None, "nonce must be"),
        (1, "0x12", None, "vaultAddress must be a 0x-prefixed 20-byte hex address"),
        (1, bytes(19), None, "vaultAddress must be"),
        (1, None, -5, "expiresAfter must be"),
    ],
)
def test_invalid_action_hash_inputs(
    nonce: int, vault: Any, expires_after: Any, message: str
) -> None:
    with pytest.raises(MalformedAction, match=message):
        action_hash({"type": "noop"}, nonce, vault, expires_after)


def test_invalid_unpackable_action() -> None:
    with pytest.raises(MalformedAction, match="cannot be msgpack-encoded"):
        l1_action_digest({"type": object()}, NONCE, None, None)
