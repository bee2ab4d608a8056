"""The trading page in a real browser (Debian's chromium, driven by Playwright) against a real
node process on the embedded chain, with a maker and a taker trading through the SDK.

Checked here:

- the market view: the book, trades and candles update live; a book message lost on the
  way (dropped by a WebSocket route between page and node) is detected by its prevSeq and
  the book resyncs from a snapshot to the node's book; a socket closed under the page
  reconnects and resyncs;
- a trader's day: a local key, a deposit from the faucet, an agent key approved, a limit
  order that rests, is modified and cancelled, a crossing order that fills and opens a
  position with its liquidation price, an oversized order refused with the engine's reason
  in words, a withdrawal followed to finalized and claimed on chain once (the node relays a
  local key's claim; a second is refused); the page's signed intent replayed is not
  executed twice, and a tampered copy is refused;
- an injected EIP-1193 wallet (``window.ethereum``, answered by eth_account in the test)
  signs the agent approval with ``eth_signTypedData_v4``, and the agent then trades; the
  page claims the wallet's finalized withdrawal with the wallet's own transaction
  (``eth_sendTransaction``, passed to the embedded chain), which pays the wallet.

Screenshots of the main states go to ``tmp_path``, or to the folder named by
``ASYNCDEX_WEB_SCREENSHOTS`` (docs/web.md shows some). Without /usr/bin/chromium or the
``playwright`` package the tests skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from eth_account import Account
from eth_typing import HexStr
from web3.types import RPCEndpoint

from asyncdex.client import Client, Wallet
from asyncdex.settlement.chain import Chain, RpcChain, SettlementClient
from asyncdex.settlement.devchain import DEV_KEYS
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

try:
    from playwright.sync_api import Page, WebSocketRoute, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OPERATOR_TOKEN = "web-test operator"
PUBLISHER = LocalSigner(keccak256(b"web-test publisher")).address
MAKER = Wallet.from_hex(keccak256(b"web-test maker").hex())
TAKER = Wallet.from_hex(keccak256(b"web-test taker").hex())
TIMEOUT_MS = 30_000

if sync_playwright is not None:
    expect.set_options(timeout=TIMEOUT_MS)
if not CHROMIUM.exists() or sync_playwright is None:
    if os.environ.get("CI"):
        pytest.fail("the browser tests need /usr/bin/chromium and playwright: ./run.sh test")
    pytest.skip("no /usr/bin/chromium or playwright", allow_module_level=True)


def write_config(path: Path) -> Path:
    path.write_text(
        f'oracle_publishers = ["0x{PUBLISHER.hex()}"]\n\n'
        "[settlement]\ndeploy = true\nfinality_blocks = 2\nblock_time_ms = 200\n\n"
        '[[markets]]\nsymbol = "BTC"\nsz_decimals = 5\ntick = 10\nlot = 10\n'
        "min_order_value = 10_000_000\noracle_staleness_ms = 3600000\n\n"
        '[[markets]]\nsymbol = "ETH"\nsz_decimals = 4\ntick = 1\nlot = 10\n'
        "oracle_staleness_ms = 3600000\n"
    )
    return path


def fund(node: RunningNode, wallet: Wallet, usdc: int) -> None:
    deposit = {"account": "0x" + wallet.address.hex(), "amount": usdc * 10**6}
    assert node.post_json("/v1/dev/deposit", deposit, OPERATOR_TOKEN).status == 200


@pytest.fixture
def venue(tmp_path: Path, node_launcher: Callable[..., NodeLauncher]) -> RunningNode:
    launcher = node_launcher(
        tmp_path / "data",
        write_config(tmp_path / "venue.toml"),
        operator_token=OPERATOR_TOKEN,
        extra_args=["--batch-interval-ms", "500", "--tick-ms", "200"],
    )
    node = launcher.start()
    prices = [
        {"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": market,
         "price": price}
        for market, price in ((0, 600_000), (1, 300_000))
    ]  # fmt: skip
    node.system(OPERATOR_TOKEN, *prices)
    fund(node, MAKER, 1_000_000)
    fund(node, TAKER, 1_000_000)
    for wallet in (MAKER, TAKER):
        wait_until(lambda w=wallet: node.get(f"/v1/accounts/0x{w.address.hex()}").status == 200)
    with Client.connect(node.url, MAKER) as maker:
        # depth on both sides: 1 BTC a level, 10 levels, $60,010 up and $59,990 down
        for level in range(10):
            maker.place_order("BTC", "sell", "1", str(60_010 + 10 * level))
            maker.place_order("BTC", "buy", "1", str(59_990 - 10 * level))
    return node


def settlement_client(node: RunningNode) -> SettlementClient:
    """The venue's contract on its embedded chain, read over that chain's JSON-RPC."""
    status = node.get("/v1/status").json()["settlement"]
    return SettlementClient.at(RpcChain(status["embeddedRpc"]), status["contract"])


def wait_until(condition: Callable[[], bool], attempts: int = 200) -> None:
    event = threading.Event()
    for _ in range(attempts):
        if condition():
            return
        event.wait(0.1)
    raise AssertionError("condition not reached")


class Traders:
    """A maker quoting around $60,000 and a taker hitting it, in a thread, until stopped."""

    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rng = random.Random(7)
        with (
            Client.connect(self.node.url, MAKER) as maker,
            Client.connect(self.node.url, TAKER) as taker,
        ):
            resting: list[int] = []
            while not self.stopping.is_set():
                side = rng.choice(["buy", "sell"])
                offset = rng.randint(1, 8) * 10
                price = 60_000 - offset if side == "buy" else 60_000 + offset
                placed = maker.wait_for(maker.place_order("BTC", side, "0.01", str(price)))
                if placed.order_id is not None:
                    resting.append(placed.order_id)
                if len(resting) > 20:
                    maker.cancel("BTC", resting.pop(0))
                taker.wait_for(taker.market_order("BTC", rng.choice(["buy", "sell"]), "0.002"))
                self.stopping.wait(0.15)

    def stop(self) -> None:
        """Stop trading; every intent sent before has executed when this returns."""
        self.stopping.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@contextmanager
def traders(node: RunningNode) -> Iterator[Traders]:
    trading = Traders(node)
    trading.thread.start()
    try:
        yield trading
    finally:
        trading.stop()


@contextmanager
def browser_page(width: int = 1440, height: int = 900) -> Iterator[Page]:
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == [], errors
        finally:
            browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ASYNCDEX_WEB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def page_book(page: Page) -> dict[str, Any]:
    book: dict[str, Any] = page.evaluate(
        """() => {
            const b = window.asyncdex.S.book;
            return {synced: b.synced, seq: b.seq, resyncs: b.resyncs,
                    bids: [...b.bids].sort((x, y) => y[0] - x[0]),
                    asks: [...b.asks].sort((x, y) => x[0] - y[0])};
        }"""
    )
    return book


def rest_book(node: RunningNode) -> tuple[list[list[str]], list[list[str]]]:
    book = node.get("/v1/markets/BTC/book?depth=100").json()
    return (
        [[level["price"], level["size"]] for level in book["bids"]],
        [[level["price"], level["size"]] for level in book["asks"]],
    )


def test_market_view_updates_live_and_resyncs_after_a_gap_and_a_dropped_socket(
    venue: RunningNode, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    sockets: list[tuple[WebSocketRoute, WebSocketRoute]] = []  # (page side, node side)
    closed: set[int] = set()
    drop_next_delta = threading.Event()
    dropped: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        """Stand between page and node: forward everything, except one delta when asked."""
        server = ws.connect_to_server()
        index = len(sockets)
        sockets.append((ws, server))

        def to_page(message: str | bytes) -> None:
            if index in closed:
                return  # what the node still sends on a socket the test closed
            if drop_next_delta.is_set() and isinstance(message, str) and '"delta"' in message:
                drop_next_delta.clear()
                dropped.append(message)
                return
            ws.send(message)

        server.on_message(to_page)
        ws.on_message(lambda message: server.send(message))

    with browser_page() as page, traders(venue) as trading:
        page.route_web_socket(re.compile(r".*/v1/ws$"), route)
        page.goto(venue.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        expect(page.locator("#conn")).to_have_text("live")
        expect(page.locator("#stat-mark")).to_have_text("60,000")
        # the book and the trades move while the traders trade
        first_seq = page_book(page)["seq"]
        page.wait_for_function("(seq) => window.asyncdex.S.book.seq > seq", arg=first_seq)
        first_trade = page.evaluate("window.asyncdex.S.trades[0]?.seq ?? 0")
        page.wait_for_function("(seq) => window.asyncdex.S.trades[0]?.seq > seq", arg=first_trade)
        expect(page.locator("#bids .level").first).to_be_visible()
        assert page.evaluate("window.asyncdex.S.candles.length") >= 1
        page.screenshot(path=str(shots / "market.png"))

        # a lost delta: the next one's prevSeq does not match, the page resubscribes
        drop_next_delta.set()
        page.wait_for_function("() => window.asyncdex.S.book.resyncs >= 1")
        page.wait_for_function("() => window.asyncdex.S.book.synced")
        assert dropped

        # the socket closes under the page: it reconnects and takes a fresh snapshot
        closed.add(len(sockets) - 1)
        page_side, node_side = sockets[-1]
        node_side.close()
        page_side.close()
        expect(page.locator("#conn")).to_have_text("live (reconnected)")
        page.wait_for_function(
            "() => window.asyncdex.S.book.synced && window.asyncdex.S.book.resyncs > 1"
        )
        trade = page.evaluate("window.asyncdex.S.trades[0].seq")
        page.wait_for_function("(seq) => window.asyncdex.S.trades[0].seq > seq", arg=trade)

        # once trading stops, the book the page shows is the node's, level by level
        trading.stop()

        def same_as_rest() -> bool:
            shown = page_book(page)
            bids, asks = rest_book(venue)
            return bool(shown["synced"]) and (shown["bids"], shown["asks"]) == (bids, asks)

        wait_until(same_as_rest)

        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(shots / "phone.png"), full_page=True)


def test_a_trader_deposits_trades_and_withdraws_from_the_page(
    venue: RunningNode, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    posted: list[str] = []
    with browser_page() as page:
        page.on(
            "request",
            lambda request: (
                posted.append(request.post_data or "")
                if request.url.endswith("/v1/intents")
                else None
            ),
        )
        page.goto(venue.url + "/")
        page.wait_for_selector("body[data-ready=true]")

        # a local key, clearly labelled, and test USDC from the local faucet
        page.click("#generate-key")
        expect(page.locator(".badge")).to_contain_text("LOCAL KEY")
        address = page.locator("#address").inner_text().lower()
        expect(page.locator("#no-account")).to_be_visible()
        page.click("#faucet")
        expect(page.locator("#equity")).to_have_text("10,000.00")

        # an agent key, approved once by the account key: orders then need no wallet
        page.click("#approve-agent")
        expect(page.locator("#wallet")).to_contain_text("Orders signed by agent")

        # a limit order inside the spread rests, and is the best bid
        page.fill("input[name=price]", "59995")
        page.fill("input[name=size]", "0.01")
        page.press("input[name=size]", "Enter")  # the ticket is a form: Enter sends it
        expect(page.locator("#ticket-msg")).to_contain_text("resting as #")
        page.locator("#tabs button[data-tab=orders]").click()
        row = page.locator("#orders tr[data-order]")
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(2)).to_have_text("59,995")
        expect(page.locator("#bids .level").first).to_have_attribute("data-price", "59995")
        page.screenshot(path=str(shots / "resting.png"))

        # modified in place, then cancelled
        row.get_by_role("button", name="Modify").click()
        page.fill("input[name=edit-price]", "59996")
        page.fill("input[name=edit-size]", "0.02")
        row.get_by_role("button", name="Save").click()
        expect(row.locator("td").nth(2)).to_have_text("59,996")
        expect(row.locator("td").nth(3)).to_have_text("0.0200")
        row.get_by_role("button", name="Cancel").click()
        expect(page.locator("#orders tr[data-order]")).to_have_count(0)

        # too large for 10,000 USDC at 20x: the engine's reason, in words
        page.fill("input[name=price]", "60100")
        page.fill("input[name=size]", "10")
        page.click("#submit-order")
        expect(page.locator("#ticket-msg")).to_contain_text("Not enough margin")
        page.locator("#tabs button[data-tab=positions]").click()
        page.screenshot(path=str(shots / "rejected.png"))

        # 15x cross, then a crossing order fills against the maker's asks: a leveraged long
        page.locator("#ticket details summary").click()
        page.fill("input[name=leverage]", "15")
        page.click("#set-leverage")
        expect(page.locator("#ticket-msg")).to_have_text("Leverage set to 15x cross")
        page.fill("input[name=price]", "60100")
        page.fill("input[name=size]", "2")
        page.click("#submit-order")
        expect(page.locator("#ticket-msg")).to_contain_text("filled 2.0000 @ 60,015")
        position = page.locator("#positions tr[data-market=BTC]")
        expect(position.locator("td").nth(1)).to_have_text("2.0000")
        expect(position.locator("td").nth(2)).to_have_text("60,015")
        expect(position.locator("td").nth(6)).to_have_text("15x cross")
        account = venue.get(f"/v1/accounts/{address}").json()
        liquidation = next(p for p in account["positions"] if p["symbol"] == "BTC")[
            "liquidationPrice"
        ]
        assert liquidation is not None
        # shown with the market's decimals (none for BTC), rounded half away from zero as
        # Intl.NumberFormat rounds
        shown = Decimal(liquidation).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        expect(position.locator("td.liq")).to_have_text(f"{shown:,}")
        # a stop-loss sized in USD: $1,000 at the $55,000 trigger is 0.0181 BTC (lot-rounded)
        page.locator("#ticket .seg button[data-value=sell]").click()
        page.locator("#ticket .seg button[data-value=stop]").click()
        page.click("#size-unit")
        page.fill("input[name=trigger]", "55000")
        page.fill("input[name=price]", "")
        page.fill("input[name=size]", "1000")
        page.check("input[name=reduceOnly]")
        page.click("#submit-order")
        expect(page.locator("#ticket-msg")).to_contain_text("trigger armed")
        page.locator("#tabs button[data-tab=orders]").click()
        stop = page.locator("#orders tr[data-order]")
        expect(stop).to_contain_text("stop @ 55,000")
        expect(stop.locator("td").nth(3)).to_have_text("0.0181")
        page.locator("#tabs button[data-tab=fills]").click()
        expect(page.locator("#fills tbody tr")).to_have_count(2)
        page.locator("#tabs button[data-tab=funding]").click()
        expect(page.locator("#funding-history")).to_contain_text("No funding in BTC")
        page.locator("#tabs button[data-tab=positions]").click()
        page.screenshot(path=str(shots / "position.png"))
        page.locator("#tabs button[data-tab=intents]").click()

        # a withdrawal, followed through committed to finalized
        page.fill("#withdraw-amount", "100")
        page.click("#withdraw")
        withdrawal = page.locator("#intents tr", has_text="Withdraw 100.00 USDC")
        expect(withdrawal).to_have_attribute("data-status", "finalized")
        expect(withdrawal).to_contain_text("withdrawal #")
        page.screenshot(path=str(shots / "withdrawal.png"))

        # claimed on chain: a local key holds no gas, so the local venue's node relays it;
        # the contract pays the withdrawal's account, and the page shows the tx and the change
        chain = settlement_client(venue)
        before = chain.token_balance(address)
        withdrawal.locator("button.claim").click()
        expect(withdrawal).to_have_attribute("data-claimed", "true")
        expect(withdrawal).to_contain_text("claimed in tx 0x")
        expect(withdrawal).to_contain_text("wallet USDC +100.00")
        page.screenshot(path=str(shots / "claimed.png"))
        withdrawal_id = page.evaluate(
            "window.asyncdex.S.intents.find((e) => e.withdrawalId !== undefined).withdrawalId"
        )
        order_seq = page.evaluate(
            "window.asyncdex.S.intents.find((e) => e.label.startsWith('Buy 2.0000')).seq"
        )

    # the claim landed once: the wallet's tokens rose by the amount, and a second claim is
    # refused with the contract's reason in words
    assert chain.token_balance(address) == before + 100 * 10**6
    again = venue.post_json(f"/v1/dev/claim/{withdrawal_id}", None)
    assert again.status == 409
    assert again.json()["reason"] == "WithdrawalAlreadyClaimed"
    assert again.json()["error"] == f"withdrawal {withdrawal_id} is already claimed"
    assert chain.token_balance(address) == before + 100 * 10**6

    # the page's intents are like any other's: a replay is answered with the first receipt
    # and executes nothing again; a tampered copy does not verify as the agent's
    order = next(
        body for body in posted if '"kind":"PlaceOrder"' in body and '"size":200000,' in body
    )
    first = json.loads(order)["intents"][0]
    replay = venue.request(
        "POST", "/v1/intents", order.encode(), {"Content-Type": "application/json"}
    )
    assert replay.status == 200
    assert replay.json()["receipts"][0]["seq"] == order_seq
    fills = venue.get(f"/v1/accounts/{address}/fills").json()["fills"]
    assert sum(float(fill["size"]) for fill in fills) == pytest.approx(2.0)
    tampered = dict(first, size=first["size"] + 10)
    forged = venue.post_json("/v1/intents", {"intents": [tampered]})
    if forged.status == 200:  # sequenced, then rejected: the signer is no agent of the account
        forged_seq = forged.json()["receipts"][0]["seq"]
        wait_until(lambda: venue.get(f"/v1/seq/{forged_seq}").json()["status"] != "sequenced")
        events = venue.get(f"/v1/seq/{forged_seq}").json()["events"]
        assert [event["type"] for event in events] == ["Rejected"]
    else:
        assert forged.status == 400
    after = venue.get(f"/v1/accounts/{address}/fills").json()["fills"]
    assert len(after) == len(fills)


WALLET_PROVIDER = """
window.ethereum = {
    isTestWallet: true,
    async request({method, params}) {
        if (method === "eth_requestAccounts" || method === "eth_accounts") {
            return [await window.walletAddress()];
        }
        if (method === "eth_signTypedData_v4") {
            return await window.walletSignTypedData(params[0], params[1]);
        }
        // the chain methods go to the venue's embedded chain, transactions signed in the test
        const answer = await window.walletRpc(method, params ?? []);
        if (answer.error) throw Object.assign(new Error(answer.error.message), answer.error);
        return answer.result;
    },
};
"""


class ChainWallet:
    """A wallet's chain side for the page: JSON-RPC calls passed to the embedded chain, and
    ``eth_sendTransaction`` signed with the wallet's key (nonce, gas and price filled in as a
    wallet does). Answers ``{"result"}`` or ``{"error": {"message", "data"}}``, as EIP-1193."""

    def __init__(self, chain: Chain, key: bytes) -> None:
        self.chain = chain
        self.account = Account.from_key(key)
        self.sent: list[str] = []

    def fund_gas(self, funder: bytes) -> None:
        w3, sender = self.chain.w3, Account.from_key(funder)
        transfer = {
            "to": self.account.address,
            "value": 10**18,
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": self.chain.chain_id,
        }
        signed = sender.sign_transaction(transfer)
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))

    def rpc(self, method: str, params: list[Any]) -> dict[str, Any]:
        w3 = self.chain.w3
        if method == "eth_sendTransaction":
            (request,) = params
            assert request["from"].lower() == self.account.address.lower()
            transaction = {
                "to": w3.to_checksum_address(request["to"]),
                "data": request["data"],
                "nonce": w3.eth.get_transaction_count(self.account.address, "pending"),
                "gasPrice": w3.eth.gas_price,
                "chainId": self.chain.chain_id,
            }
            call = {"from": self.account.address, "to": transaction["to"], "data": request["data"]}
            estimate = w3.provider.make_request(RPCEndpoint("eth_estimateGas"), [call])
            if "error" in estimate:
                return {"error": dict(estimate["error"])}
            signed = self.account.sign_transaction(
                transaction | {"gas": int(estimate["result"], 16)}
            )
            tx_hash = "0x" + bytes(w3.eth.send_raw_transaction(signed.raw_transaction)).hex()
            self.sent.append(tx_hash)
            return {"result": tx_hash}
        answer = w3.provider.make_request(RPCEndpoint(method), params)
        return (
            {"error": dict(answer["error"])} if "error" in answer else {"result": answer["result"]}
        )


def test_an_injected_wallet_signs_the_account_key_intents_and_claims_on_chain(
    venue: RunningNode, tmp_path: Path
) -> None:
    """An EIP-1193 wallet (here one whose signing is eth_account's, in the test) approves the
    page's agent key with eth_signTypedData_v4; the agent then trades without the wallet; a
    withdrawal, once finalized, is claimed by the page sending the transaction through the
    wallet, which pays the wallet's account on chain."""
    wallet = Account.from_key(keccak256(b"web-test injected wallet"))
    requests: list[dict[str, Any]] = []
    contract = settlement_client(venue)
    chain_wallet = ChainWallet(contract.chain, wallet.key)
    chain_wallet.fund_gas(DEV_KEYS[6])  # a dev key the node does not use

    def sign_typed_data(address: str, document: str) -> str:
        assert address.lower() == wallet.address.lower()
        typed = json.loads(document)
        requests.append(typed)
        signed = Account.sign_typed_data(wallet.key, full_message=typed)
        return "0x" + bytes(signed.signature).hex()

    with browser_page() as page:
        page.expose_function("walletAddress", lambda: wallet.address)
        page.expose_function("walletSignTypedData", sign_typed_data)
        page.expose_function("walletRpc", chain_wallet.rpc)
        page.add_init_script(WALLET_PROVIDER)
        page.goto(venue.url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.click("#connect-injected")
        expect(page.locator("#wallet")).to_contain_text("Browser wallet")
        expect(page.locator("#address")).to_have_text(wallet.address)
        page.click("#faucet")
        expect(page.locator("#equity")).to_have_text("10,000.00")
        page.click("#approve-agent")
        expect(page.locator("#wallet")).to_contain_text("Orders signed by agent")
        page.fill("input[name=price]", "59995")
        page.fill("input[name=size]", "0.01")
        page.click("#submit-order")
        expect(page.locator("#ticket-msg")).to_contain_text("resting as #")

        # a withdrawal, signed by the wallet, and its claim sent by the page from the wallet
        page.locator("#tabs button[data-tab=intents]").click()
        page.fill("#withdraw-amount", "50")
        page.click("#withdraw")
        withdrawal = page.locator("#intents tr", has_text="Withdraw 50.00 USDC")
        expect(withdrawal).to_have_attribute("data-status", "finalized")
        assert contract.token_balance(wallet.address) == 0
        withdrawal.locator("button.claim").click()
        expect(withdrawal).to_have_attribute("data-claimed", "true")
        expect(withdrawal).to_contain_text("wallet USDC +50.00 (now 50.00)")
    # the wallet was asked to sign the approval and the withdrawal; the order was the agent's
    assert [typed["primaryType"] for typed in requests] == ["ApproveAgent", "Withdraw"]
    # the claim was the wallet's own transaction, to the contract, and paid the wallet
    (claim,) = chain_wallet.sent
    transaction = contract.chain.w3.eth.get_transaction(HexStr(claim))
    assert transaction["from"] == wallet.address
    assert transaction["to"] == contract.address
    assert contract.token_balance(wallet.address) == 50 * 10**6
    orders = venue.get(f"/v1/accounts/{wallet.address}/orders").json()["orders"]
    assert [(order["price"], order["size"]) for order in orders] == [("59995", "0.01")]
