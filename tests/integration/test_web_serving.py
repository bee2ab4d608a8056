"""What the node serves for the trading page, without a browser: the page and its assets
with a same-origin Content-Security-Policy, 404 for anything else under ``/assets/``, and
the faucet's refusals (no embedded chain, malformed bodies, amounts out of range), and the
claim relay's refusal without an embedded chain.

The success paths of both (a token-free deposit credited on the embedded chain; a claim paid
once, a second refused) run in ``test_web.py``, where the page's buttons use them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asyncdex.cli.node_cmd import default_extensions, load_config
from asyncdex.gateway.node import Node, NodeSettings
from asyncdex.settlement.chain import ContractReverted
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256
from asyncdex.web import FAUCET_MAX_AMOUNT, claim_refusal_words, load_page, parse_faucet_request

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"web serving publisher")[-20:]
ACCOUNT = "0x" + "ab" * 20


def served(
    tmp_path: Path, venue_config: Callable[..., Path], requests: list[tuple[str, str, Any]]
) -> list[tuple[int, dict[str, str], bytes]]:
    """Run a node without settlement and answer ``(method, path, json body)`` requests."""
    config, _ = load_config(
        venue_config(tmp_path / "venue.toml", DOMAIN, [("BTC", 5, 10, 10)], [PUBLISHER])
    )

    async def scenario() -> list[tuple[int, dict[str, str], bytes]]:
        node = Node(
            NodeSettings(tmp_path / "data", config, DOMAIN, extensions=default_extensions())
        )
        await node.start()
        answers = []
        try:
            async with aiohttp.ClientSession() as http:
                for method, path, body in requests:
                    data = body if isinstance(body, bytes) else json.dumps(body).encode()
                    async with http.request(
                        method, node.url + path, data=None if body is None else data
                    ) as response:
                        answers.append(
                            (response.status, dict(response.headers), await response.read())
                        )
        finally:
            await node.stop()
        return answers

    return asyncio.run(scenario())


def test_the_node_serves_the_page_and_its_assets_only(
    tmp_path: Path, venue_config: Callable[..., Path]
) -> None:
    files = load_page()
    assets = sorted(path for path in files if path.startswith("/assets/"))
    requests: list[tuple[str, str, Any]] = [("GET", "/", None)]
    requests += [("GET", path, None) for path in assets]
    requests += [("GET", "/assets/nothing.js", None), ("GET", "/assets/..%2Fvenue.toml", None)]
    answers = served(tmp_path, venue_config, requests)
    page, *rest = answers
    assert page[0] == 200 and page[2] == files["/"][0]
    assert page[1]["Content-Type"].startswith("text/html")
    assert page[1]["Cache-Control"] == "no-cache"
    for status, headers, _ in answers[: 1 + len(assets)]:
        assert status == 200
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "connect-src 'self'" in headers["Content-Security-Policy"]
    for path, (_, headers, body) in zip(assets, rest, strict=False):
        assert body == files[path][0]
        assert "immutable" in headers["Cache-Control"]
    assert [status for status, _, _ in rest[len(assets) :]] == [404, 404]


def test_the_faucet_and_the_claim_relay_refuse_without_an_embedded_chain(
    tmp_path: Path, venue_config: Callable[..., Path]
) -> None:
    answers = served(
        tmp_path,
        venue_config,
        [
            ("POST", "/v1/dev/faucet", {"account": ACCOUNT, "amount": 10**6}),
            ("POST", "/v1/dev/claim/1", None),
        ],
    )
    for status, _, body in answers:
        assert status == 404
        assert json.loads(body)["code"] == "no_embedded_chain"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "invalid JSON"),
        (b"[]", "expected"),
        (json.dumps({"account": ACCOUNT}).encode(), "expected"),
        (json.dumps({"account": ACCOUNT, "amount": 1, "x": 1}).encode(), "expected"),
        (json.dumps({"account": 5, "amount": 1}).encode(), "account"),
        (json.dumps({"account": "0x12", "amount": 1}).encode(), "account"),
        (json.dumps({"account": ACCOUNT, "amount": 0}).encode(), "amount"),
        (json.dumps({"account": ACCOUNT, "amount": 1.5}).encode(), "amount"),
        (json.dumps({"account": ACCOUNT, "amount": True}).encode(), "amount"),
        (json.dumps({"account": ACCOUNT, "amount": FAUCET_MAX_AMOUNT + 1}).encode(), "amount"),
    ],
)
def test_faucet_bodies_are_parsed_strictly(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faucet_request(body)


def test_a_faucet_body_names_an_account_and_an_amount() -> None:
    body = json.dumps({"account": ACCOUNT, "amount": FAUCET_MAX_AMOUNT}).encode()
    assert parse_faucet_request(body) == (bytes.fromhex("ab" * 20), FAUCET_MAX_AMOUNT)


@pytest.mark.parametrize(
    ("error", "arguments", "words"),
    [
        ("BatchNotFinal", (4,), "batch 4 is not final on chain yet: claim once it is finalized"),
        ("WithdrawalAlreadyClaimed", (9,), "withdrawal 9 is already claimed"),
        ("InvalidProof", (), "the proof does not match the batch's withdrawals root"),
        ("InsufficientFunds", (5, 3), "the contract holds 3 micro-USDC, less than the 5 claimed"),
        ("ContractFrozen", (), "the contract refused the claim: ContractFrozen"),
    ],
)
def test_the_claim_relay_words_the_contracts_refusals(
    error: str, arguments: tuple[int, ...], words: str
) -> None:
    assert claim_refusal_words(ContractReverted(error, arguments)) == words
