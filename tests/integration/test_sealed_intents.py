"""Sealed intents on a committee of 4 member processes on loopback, through the SDK.

The members get their sealing key from ``asyncdex committee``'s local DKG; each announces it
on ``GET /v1/venue``. A trader connected with ``seal=True`` sends an order that no member can
read while it is ordered; right before the committed block that closes its epoch, once each
member holds the epoch's key, every member executes it, at the same seq, and the trader's
``wait_for`` follows it by its intent id to ``executed``. A plain intent still goes the plain
way beside it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import committee_support
import pytest
from committee_support import PUBLISHER, get, has_account, local_committee, wait_for

from asyncdex.cli.committee_cmd import CommitteeProcesses
from asyncdex.client import Client, Wallet

# committees are several processes each: one at a time, on one test worker (--dist loadgroup)
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("committee")]

TOKEN = "sealed-test-token"
EPOCH_MS = 500


def operator(url: str, commands: list[dict[str, Any]]) -> Any:
    return committee_support.operator(url, TOKEN, commands)


@pytest.fixture
def committee(tmp_path: Path, free_port_base: int) -> Iterator[CommitteeProcesses]:
    with local_committee(tmp_path, free_port_base, TOKEN, sealing_epoch_ms=EPOCH_MS) as processes:
        yield processes


def test_a_sealed_order_is_ordered_unread_then_executed_on_every_member(
    committee: CommitteeProcesses,
) -> None:
    urls = [committee.url(index) for index in range(4)]
    keys = {get(url + "/v1/venue")["sealing"]["public_key"] for url in urls}
    assert len(keys) == 1  # one committee key, from one DKG
    wallet = Wallet(secrets.token_bytes(32))
    account = "0x" + wallet.address.hex()
    operator(urls[0], [{"type": "deposit", "account": account, "amount": 10**11, "l1Index": 0}])
    operator(
        urls[0],
        [{"type": "oraclePrice", "publisher": PUBLISHER, "market": 0, "price": 600_000}],
    )
    wait_for(lambda: all(has_account(url, account) for url in urls), 60, "the deposit")

    with Client.connect(urls[1], wallet, seal=True) as client:
        assert client.sealing is not None and client.sealing.epoch_ms == EPOCH_MS
        receipt = client.place_order("BTC", "buy", "0.001", "59000")
        assert receipt.sealed_id is not None
        executed = client.wait_for(receipt, "executed", timeout=60)
    with Client.connect(urls[2], wallet) as plain:
        plain_receipt = plain.place_order("BTC", "buy", "0.001", "58000")
        assert plain_receipt.sealed_id is None
        plain.wait_for(plain_receipt, "executed", timeout=60)

    assert executed.status in ("executed", "committed", "finalized")
    seqs = set()
    for url in urls:
        wait_for(lambda url=url: _executed(url, receipt.intent_id), 60, f"the order on {url}")
        seqs.add(get(f"{url}/v1/intents/{receipt.intent_id}")["seq"])
    assert len(seqs) == 1  # the same place in every member's log


def _executed(url: str, intent_id: str) -> bool:
    try:
        return get(f"{url}/v1/intents/{intent_id}").get("status") in (
            "executed",
            "committed",
            "finalized",
        )
    except (OSError, ValueError):
        return False


def test_the_sealed_id_answers_with_the_revealed_intent(
    tmp_path: Path, free_port_base: int
) -> None:
    """One member (t = 1): the sealed id's status is the revealed intent's, named by both ids."""
    with local_committee(
        tmp_path, free_port_base, TOKEN, nodes=1, sealing_epoch_ms=EPOCH_MS
    ) as processes:
        url = processes.url(0)
        wallet = Wallet(secrets.token_bytes(32))
        with Client.connect(url, wallet, seal=True) as client:
            receipt = client.place_order("BTC", "buy", "0.001", "59000")
            followed = client.wait_for(receipt, "executed", timeout=60)
        assert receipt.sealed_id is not None
        document = get(f"{url}/v1/intents/{receipt.sealed_id}")
        assert document["sealedId"] == receipt.sealed_id
        assert document["intentId"] == receipt.intent_id
        assert type(document["seq"]) is int and document["seq"] == followed.seq
        assert document["seq"] == get(f"{url}/v1/intents/{receipt.intent_id}")["seq"]
        # certified where its envelope was, still sealed
        assert document["ordered"] is not None and document["ordered"]["height"] >= 1
        sealing = get(f"{url}/v1/status")["committee"]["sealing"]
        assert sealing["epochMs"] == EPOCH_MS and sealing["keysStored"] >= 1
        assert sealing["waitingForKeys"] == [] and sealing["shareFaults"] == 0
        # without a deposit the engine rejects the order: an outcome, reached through the seal
        assert followed.rejection is not None and followed.sealed_rejection is None

        # the WebSocket takes sealed envelopes too, with the same checks and receipts
        with Client.connect(url, wallet, seal=True) as client:
            envelope = client.seal(client.build.place_order("BTC", "buy", "0.001", "58000"))
        frames = asyncio.run(
            _ws_ops(
                url,
                [
                    {"op": "submit", "id": 1, "sealed": ["0x" + envelope.encode().hex()]},
                    {"op": "submit", "id": 2, "sealed": ["0x00"]},
                    {"op": "submit", "id": 3, "sealed": ["0x00"], "follow": True},
                ],
            )
        )
        [receipt_frame] = [f for f in frames if f.get("id") == 1]
        assert receipt_frame["op"] == "receipts"
        [ws_receipt] = receipt_frame["receipts"]
        assert ws_receipt["seq"] == 0 and ws_receipt["sealedId"].startswith("0x")
        errors = {f["id"]: (f["op"], f["code"]) for f in frames if f.get("id") in (2, 3)}
        assert errors == {
            2: ("error", "malformed_sealed_intent"),
            3: ("error", "invalid_field"),
        }
        wait_for(lambda: _executed(url, ws_receipt["sealedId"]), 60, "the order sealed over /v1/ws")


async def _ws_ops(url: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send ``ops`` on one ``/v1/ws`` socket; every frame answering one of them (by id)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url.replace("http", "ws", 1) + "/v1/ws") as ws,
    ):
        for op in ops:
            await ws.send_json(op)
        answers: list[dict[str, Any]] = []
        while len(answers) < len(ops):
            frame = json.loads((await ws.receive(timeout=30)).data)
            if frame.get("id") is not None:
                answers.append(frame)
        return answers
