"""A deposit the engine could not represent can no longer brick a node.

Two operator deposits of 2^255 used to be acknowledged; then ``/v1/status`` answered 500,
SIGTERM exited 1 and every restart failed (``exit value must fit uint256``). Now the operator
door refuses an amount past the venue's collateral cap before sequencing (400, the field
named), and deposits that pass the door but together exceed the cap are rejected by the
engine with a numbered reason, as an L1 deposit would be. Status, shutdown and restart work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncdex.messages.reasons import Reject
from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256
from asyncdex.types.numeric import MAX_COLLATERAL

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"bounds publisher")[-20:]
TOKEN = "bounds operator"
ALICE = "0x" + "a1" * 20


def deposit(amount: int, l1_index: int) -> dict[str, Any]:
    return {"type": "deposit", "account": ALICE, "amount": amount, "l1Index": l1_index}


def executed_events(node: RunningNode, seq: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        record = node.get(f"/v1/seq/{seq}").json()
        if record["status"] != "sequenced" or time.monotonic() > deadline:
            events: list[dict[str, Any]] = record["events"]
            return events
        time.sleep(0.05)


def test_deposits_past_the_cap_are_refused_and_the_node_keeps_working(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> None:
    config = venue_config(tmp_path / "venue.toml", DOMAIN, [("BTC", 5, 10, 10)], [PUBLISHER])
    launcher = node_launcher(tmp_path / "data", config, operator_token=TOKEN)
    node = launcher.start()

    refused = node.post_json("/v1/system", {"commands": [deposit(2**255, 0)] * 2}, TOKEN)
    assert refused.status == 400, refused.body
    assert refused.json()["field"] == "amount"
    assert str(MAX_COLLATERAL) in refused.json()["error"]

    # each within the cap, together past it: the second is the engine's deterministic refusal
    first, second = node.system(TOKEN, deposit(MAX_COLLATERAL // 2 + 1, 0),
                                deposit(MAX_COLLATERAL // 2, 1))  # fmt: skip
    assert not any(e["type"] == "Rejected" for e in executed_events(node, first["seq"]))
    rejected = [e for e in executed_events(node, second["seq"]) if e["type"] == "Rejected"]
    assert [e["reason"] for e in rejected] == [int(Reject.COLLATERAL_CAP_EXCEEDED)]
    account = node.get(f"/v1/accounts/{ALICE}")
    assert account.status == 200, account.body
    status = node.status()  # the state root builds

    assert launcher.terminate() == 0
    restarted = launcher.start()
    again = restarted.status()
    assert again["stateRoot"] == status["stateRoot"]
    assert again["appliedSeq"] == status["appliedSeq"]


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node.toml"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_chain_deposit_past_the_cap_is_consumed_rejected_and_settled(
    tmp_path: Path, node_launcher: Callable[..., NodeLauncher]
) -> None:
    """Deposits on the (embedded) chain come in through the L1 watcher as sequenced Deposit
    commands: the one past the cap is consumed and rejected, and batches keep committing
    (the state root, the batch data and the exit leaves all build)."""
    launcher = node_launcher(tmp_path / "data", EXAMPLE, operator_token=TOKEN)
    node = launcher.start()

    def settlement() -> dict[str, Any]:
        result: dict[str, Any] = node.status()["settlement"]
        return result

    for index, amount in enumerate((MAX_COLLATERAL // 2 + 1, MAX_COLLATERAL // 2)):
        document = {"account": ALICE, "amount": amount}
        result = node.post_json("/v1/dev/deposit", document, TOKEN)
        assert result.status == 200, result.body
        assert result.json()["l1Index"] == index
    wait_for(lambda: settlement()["l1Consumed"] == 2, "both deposits consumed")
    balance = node.get(f"/v1/accounts/{ALICE}").json()
    assert balance["collateral"] == f"{(MAX_COLLATERAL // 2 + 1) // 10**6}.000001", balance
    applied = node.status()["appliedSeq"]
    wait_for(
        lambda: (settlement()["lastCommitted"] or {}).get("lastSeq", 0) >= applied,
        "a batch holding the rejected deposit committed",
    )
    assert settlement()["posterHalted"] is None and settlement()["fatalError"] is None
    refused = node.post_json("/v1/dev/deposit", {"account": ALICE, "amount": 2**255}, TOKEN)
    assert refused.status == 400 and refused.json()["field"] == "amount", refused.body
    assert launcher.terminate() == 0
    assert launcher.start().status()["settlement"]["l1Consumed"] == 2
