"""The trading page, served by the node at ``/``, and the local venue's faucet and claims.

Invariants:

- The page is the committed build in ``dist/`` (built from ``src/`` by the pinned npm
  toolchain of this folder; ``tests/unit/web/test_build.py`` rebuilds it and compares). The
  node reads those files once, when the extension is made, and serves them from memory:
  ``GET /`` the page, ``GET /assets/{name}`` its scripts and styles (content-hashed names,
  cached for good); any other asset name is 404. A node installed without the built files
  serves a 404 at ``/`` saying so, and everything else as usual.
- Every answer carries a Content-Security-Policy allowing only the node's own origin (the
  page loads nothing from elsewhere, and a browser enforces it).
- ``POST /v1/dev/faucet`` ``{"account", "amount"}`` mints test USDC and deposits it on the
  embedded chain, without the operator token, at most ``FAUCET_MAX_AMOUNT`` a request. It
  exists only when the node runs the embedded chain (404 ``no_embedded_chain`` otherwise):
  that chain is a private development chain inside the node's data directory whose tokens
  are worth nothing, and the node listens on loopback only, so a local page may fund a
  fresh key without holding the operator's secret. The deposit is sequenced by the chain
  watcher like every other; nothing is credited by a side door.
- ``POST /v1/dev/claim/{withdrawalId}`` sends ``claimWithdrawal`` for that withdrawal from
  the embedded chain's funded dev account, for a page whose local key holds no gas; it exists
  under the same conditions as the faucet. The contract pays the withdrawal's own account
  whoever calls, so the relay can pay nobody else; the contract alone decides, and its
  refusal (batch not final, already claimed, ...) is answered 409 in words, with the error's
  name as ``reason``. Claims are sent one at a time (the chain's one worker thread), so of
  two claims of one withdrawal exactly one is paid.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asyncdex.settlement.chain import ContractReverted
from asyncdex.signing.eip712 import parse_address

if TYPE_CHECKING:
    from asyncdex.gateway.node import Node

_log = logging.getLogger(__name__)

DIST = Path(__file__).parent / "dist"
FAUCET_MAX_AMOUNT = 1_000_000 * 10**6  # micro-USDC: one million test USDC a request
FAUCET_MAX_BODY = 1_024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_ASSET_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def load_page(dist: Path = DIST) -> dict[str, tuple[bytes, str]]:
    """Return ``{url path: (body, content type)}`` for the built page (empty when unbuilt)."""
    files: dict[str, tuple[bytes, str]] = {}
    index = dist / "index.html"
    if not index.is_file():
        return files
    files["/"] = (index.read_bytes(), "text/html")
    assets = dist / "assets"
    if assets.is_dir():
        for path in sorted(assets.iterdir()):
            content_type = _CONTENT_TYPES.get(path.suffix)
            if path.is_file() and content_type is not None:
                files[f"/assets/{path.name}"] = (path.read_bytes(), content_type)
    return files


class WebPage:
    """A node extension: the page at ``/`` and the embedded chain's faucet and claim relay."""

    def __init__(self, node: Node, dist: Path = DIST) -> None:
        self.node = node
        self.files = load_page(dist)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/", self.handle_page)
        app.router.add_get("/assets/{name}", self.handle_asset)
        app.router.add_post("/v1/dev/faucet", self.handle_faucet)
        app.router.add_post("/v1/dev/claim/{withdrawal_id}", self.handle_claim)

    async def close(self) -> None:
        return None

    def _file(self, path: str, cache: str) -> web.Response:
        found = self.files.get(path)
        if found is None:
            text = "not found" if path != "/" else "the trading page is not built in this install"
            return web.Response(status=404, text=text)
        body, content_type = found
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8" if content_type.startswith("text/") else None,
            headers={
                "Cache-Control": cache,
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def handle_page(self, request: web.Request) -> web.Response:
        # the page names its assets by content hash: it must be fetched again, they need not
        return self._file("/", "no-cache")

    async def handle_asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _ASSET_NAME.fullmatch(name):
            return web.Response(status=404, text="not found")
        return self._file(f"/assets/{name}", "public, max-age=31536000, immutable")

    async def handle_faucet(self, request: web.Request) -> web.Response:
        """Embedded chain only, no token: mint and deposit test USDC for an account."""
        if self.node.draining:
            return _error(503, "node is shutting down", "shutting_down")
        settlement = self.node.settlement
        if settlement is None or settlement.settings.embedded is None:
            return _error(404, "no embedded chain: deposit on the base chain", "no_embedded_chain")
        body = await request.content.read(FAUCET_MAX_BODY + 1)
        if len(body) > FAUCET_MAX_BODY:
            return _error(413, f"body larger than {FAUCET_MAX_BODY} bytes", "body_too_large")
        try:
            account, amount = parse_faucet_request(body)
        except ValueError as exc:
            return _error(400, str(exc), "invalid_body")
        try:
            l1_index, tx_hash = await settlement.dev_deposit(account, amount)
        except Exception as exc:
            _log.exception("faucet deposit failed")
            return _error(502, f"the chain refused: {exc}", "chain_error")
        return web.json_response({"l1Index": l1_index, "txHash": "0x" + tx_hash.hex()})

    async def handle_claim(self, request: web.Request) -> web.Response:
        """Embedded chain only, no token: relay ``claimWithdrawal`` for a withdrawal."""
        if self.node.draining:
            return _error(503, "node is shutting down", "shutting_down")
        settlement = self.node.settlement
        if settlement is None or settlement.settings.embedded is None:
            return _error(
                404, "no embedded chain: claim on the base chain with a wallet", "no_embedded_chain"
            )
        text = request.match_info["withdrawal_id"]
        if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) < 1:
            return _error(400, "a withdrawal id is an integer in 1..2^63-1", "invalid_withdrawal")
        try:
            claim = await settlement.dev_claim(int(text))
        except LookupError as exc:
            return _error(404, str(exc), "unknown_withdrawal")
        except ContractReverted as exc:
            body = {"error": claim_refusal_words(exc), "code": "claim_refused"}
            return web.json_response(body | {"reason": exc.error}, status=409)
        except Exception as exc:
            _log.exception("claim relay failed")
            return _error(502, f"the chain refused: {exc}", "chain_error")
        return web.json_response(
            {
                "withdrawalId": claim.withdrawal_id,
                "account": claim.account,
                "amount": claim.amount,
                "txHash": "0x" + claim.tx_hash.hex(),
                "tokenBalanceBefore": claim.balance_before,
                "tokenBalance": claim.balance_after,
            }
        )


def claim_refusal_words(exc: ContractReverted) -> str:
    """The settlement contract's ``claimWithdrawal`` errors, in words."""
    arguments = exc.arguments
    if exc.error == "BatchNotFinal":
        return f"batch {arguments[0]} is not final on chain yet: claim once it is finalized"
    if exc.error == "WithdrawalAlreadyClaimed":
        return f"withdrawal {arguments[0]} is already claimed"
    if exc.error == "InvalidProof":
        return "the proof does not match the batch's withdrawals root"
    if exc.error == "InsufficientFunds":
        return f"the contract holds {arguments[1]} micro-USDC, less than the {arguments[0]} claimed"
    return f"the contract refused the claim: {exc}"


def parse_faucet_request(body: bytes) -> tuple[bytes, int]:
    """``{"account": "0x..", "amount": micro-USDC}`` -> (address, amount), strictly."""
    try:
        document: Any = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(document, dict) or set(document) != {"account", "amount"}:
        raise ValueError('expected {"account": "0x..", "amount": n}')
    account = document["account"]
    if not isinstance(account, str):
        raise ValueError("account: expected a 0x address string")
    try:
        address = parse_address(account)
    except ValueError as exc:
        raise ValueError(f"account: {exc}") from None
    amount = document["amount"]
    if type(amount) is not int or not 0 < amount <= FAUCET_MAX_AMOUNT:
        raise ValueError(f"amount: an integer of micro-USDC from 1 to {FAUCET_MAX_AMOUNT}")
    return address, amount


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)
