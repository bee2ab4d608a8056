"""The README's venue, ``asyncdex node --config examples/node.toml``, restarts on its data
directory: its embedded chain is kept there, so SIGTERM and SIGKILL restarts find the same
contract with the deposits, batches and withdrawals on it, and settlement goes on.

One real node process from the example config, unchanged (only ``--port 0``): deposits on
the embedded chain, a trade, a withdrawal claimed on chain with the node's proof; SIGTERM and
restart; more deposits, trades and a second claim; SIGKILL and restart. After each restart the
node answers 200 with the same chain id and contract, balances are what they were, the L1
queue goes on from where it was (the next deposit is index 2, then 3), the poster finds the
chain's batches consistent with the journal (not halted) and commits and finalizes new ones,
and the contract holds the deposits less the claims.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account

from asyncdex.settlement.chain import ContractReverted, RpcChain, SettlementClient
from asyncdex.settlement.devchain import DEV_KEYS
from asyncdex.signing.eip712 import Domain, LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    Intent,
    OrderType,
    PlaceOrder,
    TimeInForce,
    TriggerKind,
    Withdraw,
    asyncdex_domain,
    sign_intent,
    signed_intent_to_json,
)
from asyncdex.types.hashing import keccak256

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "node.toml"
TOKEN = "restart test operator"
PUBLISHER = "0xc377c94d857b217ac94de730b94d5ce0a302f765"  # the example's first
USDC = 1_000_000
DEPOSIT = 100_000 * USDC
BTC, PRICE, SIZE = 0, 600_000, 1_000  # $60,000.0 in $0.1; 0.01 BTC
WITHDRAWAL = 1_000 * USDC
CLAIMER = DEV_KEYS[5]  # pays the gas of claims (anyone may claim for an account)
WAIT_S = 120.0


class Trader:
    def __init__(self, name: bytes, domain: Domain) -> None:
        self.key = keccak256(name)
        self.address = bytes.fromhex(Account.from_key(self.key).address[2:])
        self.signer = LocalSigner(self.key)
        self.domain = domain
        self.nonce = time.time_ns() // 1_000_000

    def signed(self, intent: Intent) -> dict[str, Any]:
        return signed_intent_to_json(sign_intent(self.signer, self.domain, intent))

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def order(self, is_buy: bool, tif: TimeInForce) -> dict[str, Any]:
        intent = PlaceOrder(
            self.address, self.next_nonce(), 0, BTC, is_buy, PRICE, SIZE, OrderType.LIMIT, tif,
            False, NO_CLIENT_ID, 0, 0, TriggerKind.NONE,
        )  # fmt: skip
        return self.signed(intent)

    def withdraw(self, amount: int) -> dict[str, Any]:
        return self.signed(Withdraw(self.address, self.next_nonce(), 0, amount, self.address))


def wait_until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_example_venue_restarts_on_its_embedded_chain(
    tmp_path: Path, node_launcher: Callable[..., Any]
) -> None:
    launcher = node_launcher(tmp_path / "data", EXAMPLE, operator_token=TOKEN)
    node = launcher.start()
    chain_id, contract = node.ready["chainId"], node.ready["contract"]
    domain = asyncdex_domain(chain_id, bytes.fromhex(contract[2:]))
    alice, bob, carol = (Trader(name, domain) for name in (b"alice", b"bob", b"carol"))
    claimed = 0
    withdrawal_ids: list[int] = []

    def settlement() -> dict[str, Any]:
        result: dict[str, Any] = node.status()["settlement"]
        return result

    def deposit(trader: Trader, index: int) -> None:
        document = {"account": "0x" + trader.address.hex(), "amount": DEPOSIT}
        result = node.post_json("/v1/dev/deposit", document, TOKEN)
        assert result.status == 200, result.body
        assert result.json()["l1Index"] == index  # the chain's queue goes on where it was
        wait_until(lambda: settlement()["l1Consumed"] == index + 1, f"deposit {index}")

    def trade(maker: Trader, taker: Trader) -> int:
        # a fresh price first: the example's oracle goes stale after 10 s
        price = {"type": "oraclePrice", "publisher": PUBLISHER, "market": BTC, "price": PRICE}
        node.system(TOKEN, price)
        submit(maker.order(False, TimeInForce.GTC))
        (receipt,) = submit(taker.order(True, TimeInForce.IOC))
        status = wait_until(lambda: executed(receipt["intentId"]), "the trade")
        assert any(event["type"] == "TradeExecuted" for event in status["events"]), status
        seq: int = receipt["seq"]
        return seq

    def submit(signed: dict[str, Any]) -> list[dict[str, Any]]:
        result = node.post_json("/v1/intents", signed)
        assert result.status == 200, result.body
        receipts: list[dict[str, Any]] = result.json()["receipts"]
        return receipts

    def executed(intent_id: str) -> dict[str, Any] | None:
        status: dict[str, Any] = node.get(f"/v1/intents/{intent_id}").json()
        return status if status["status"] != "sequenced" else None

    def finalized(seq: int) -> bool:
        return bool(node.get(f"/v1/seq/{seq}").json()["status"] == "finalized")

    def withdraw_and_claim(trader: Trader) -> None:
        nonlocal claimed
        (receipt,) = submit(trader.withdraw(WITHDRAWAL))
        withdrawal = wait_until(lambda: executed(receipt["intentId"]), "the withdrawal")
        (event,) = [e for e in withdrawal["events"] if e["type"] == "Withdrawn"]
        withdrawal_ids.append(event["withdrawalId"])
        path = f"/v1/withdrawals/{event['withdrawalId']}/proof"
        proof = wait_until(lambda: (p := node.get(path).json()).get("claimable") and p, "final")
        chain().claim_withdrawal(
            CLAIMER, proof["batch"], proof["withdrawalId"], proof["account"], proof["amount"],
            [bytes.fromhex(node[2:]) for node in proof["proof"]], proof["index"],
        )  # fmt: skip
        claimed += WITHDRAWAL

    def chain() -> SettlementClient:
        return SettlementClient.at(RpcChain(settlement()["embeddedRpc"], DEV_KEYS), contract)

    def accounts() -> list[tuple[str, list[tuple[str, str]]]]:
        views = [node.get(f"/v1/accounts/0x{t.address.hex()}").json() for t in (alice, bob)]
        return [
            (v["collateral"], [(p["size"], p["entryPrice"]) for p in v["positions"]]) for v in views
        ]

    def check_after_restart(before: dict[str, Any], balances: Any, deposits: int) -> None:
        assert node.ready["chainId"] == chain_id and node.ready["contract"] == contract
        assert node.get("/v1/status").status == 200
        assert accounts() == balances
        # the poster read the chain's batches and found them its own, then settles on
        wait_until(
            lambda: (s := settlement())["lastFinalizedBatch"] > before["lastCommittedBatch"] and s,
            "new batches final after the restart",
        )
        now = settlement()
        assert now["fatalError"] is None and now["posterHalted"] is None, now
        assert now["l1Consumed"] == deposits
        on_chain = chain()
        assert on_chain.last_batch_number() >= before["lastCommittedBatch"]
        assert on_chain.token_balance(on_chain.address) == deposits * DEPOSIT - claimed

    # first life: deposits, a trade, a withdrawal claimed on chain
    deposit(alice, 0)
    deposit(bob, 1)
    seq = trade(bob, alice)
    wait_until(lambda: finalized(seq), "the trade's batch final")
    withdraw_and_claim(alice)
    before, balances = settlement(), accounts()
    assert launcher.terminate() == 0

    # SIGTERM restart: everything there, more activity
    node = launcher.start()
    check_after_restart(before, balances, deposits=2)
    deposit(carol, 2)
    seq = trade(alice, bob)
    withdraw_and_claim(bob)
    wait_until(lambda: finalized(seq), "the second trade's batch final")
    with_claims = chain()
    assert with_claims.token_balance("0x" + alice.address.hex()) == WITHDRAWAL
    before, balances = settlement(), accounts()
    launcher.kill()

    # SIGKILL restart: the same
    node = launcher.start()
    check_after_restart(before, balances, deposits=3)
    assert chain().token_balance("0x" + bob.address.hex()) == WITHDRAWAL
    deposit(alice, 3)
    seq = trade(bob, alice)
    wait_until(lambda: finalized(seq), "a trade after the SIGKILL final")
    # a claim already paid stays paid
    first = node.get(f"/v1/withdrawals/{withdrawal_ids[0]}/proof").json()
    try:
        chain().claim_withdrawal(
            CLAIMER, first["batch"], first["withdrawalId"], first["account"], first["amount"],
            [bytes.fromhex(n[2:]) for n in first["proof"]], first["index"],
        )  # fmt: skip
    except ContractReverted as refused:
        assert refused.error == "WithdrawalAlreadyClaimed"
    else:
        raise AssertionError("a withdrawal was paid twice")
    assert launcher.terminate() == 0
