"""The embedded chain process: JSON-RPC as real nodes speak it, and state kept across restarts.

- A chain killed with SIGKILL comes back with everything it answered: the contracts at the
  same addresses, balances, L1 messages (logs), block numbers; new blocks go on top.
- A torn record at the log's end (a crash in the middle of a write) is cut at open, and the
  records before it are kept.
- Reverts reach ``RpcChain`` as the contract's custom errors, decoded by name.
- One process per directory.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from asyncdex.settlement import devchain
from asyncdex.settlement.chain import ContractReverted, RpcChain, SettlementClient
from asyncdex.settlement.devchain import (
    DEV_KEYS,
    LOG_NAME,
    DevChainError,
    DevChainProcess,
    encode_record,
    read_log,
)

DEPLOYER, SEQUENCER, USER = DEV_KEYS[0], DEV_KEYS[1], DEV_KEYS[2]


@pytest.fixture
def chains() -> Iterator[list[DevChainProcess]]:
    started: list[DevChainProcess] = []
    yield started
    for chain in started:
        chain.close()


def start(directory: Path, chains: list[DevChainProcess], **options: int) -> DevChainProcess:
    chain = DevChainProcess.start(directory, block_time_ms=options.get("block_time_ms", 0))
    chains.append(chain)
    return chain


def test_a_killed_chain_comes_back_with_everything_it_answered(
    tmp_path: Path, chains: list[DevChainProcess]
) -> None:
    first = start(tmp_path / "chain", chains)
    assert not first.restored
    rpc = RpcChain(first.url, DEV_KEYS)
    client = SettlementClient.deploy(
        rpc, DEPLOYER, Account.from_key(SEQUENCER).address, 2, 100, b"\x01" * 32
    )
    user = Account.from_key(USER).address
    client.mint(USER, user, 5_000)
    client.approve(USER, 5_000)
    client.deposit(USER, 3_000)
    block = rpc.block_number
    # SIGKILL: nothing is flushed on the way out, so only what was durable comes back
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()

    second = start(tmp_path / "chain", chains)
    assert second.restored and second.block_at_start == block
    again = SettlementClient.at(RpcChain(second.url, DEV_KEYS), client.address)
    assert again.token.address == client.token.address
    assert again.token_balance(client.address) == 3_000
    assert again.token_balance(user) == 2_000
    assert [(m.index, m.account, m.amount) for m in again.l1_messages()] == [(0, user, 3_000)]
    assert again.sequencer_address() == Account.from_key(SEQUENCER).address
    # the chain goes on from its head: the user's nonce too
    again.deposit(USER, 1_000)
    assert again.chain.block_number == block + 1
    assert [m.index for m in again.l1_messages()] == [0, 1]


def test_reverts_are_the_contracts_custom_errors(
    tmp_path: Path, chains: list[DevChainProcess]
) -> None:
    chain = start(tmp_path / "chain", chains)
    rpc = RpcChain(chain.url, DEV_KEYS)
    client = SettlementClient.deploy(
        rpc, DEPLOYER, Account.from_key(SEQUENCER).address, 2, 100, b"\x01" * 32
    )
    with pytest.raises(ContractReverted) as refused:
        client.commit_batch(DEPLOYER, SEQUENCER, 7, b"\x01" * 32, b"\x02" * 32, b"\x00" * 32, 0,
                            b"")  # fmt: skip
    assert (refused.value.error, refused.value.arguments) == ("UnexpectedBatchNumber", (1, 7))


def test_blocks_are_mined_on_the_timer_and_kept(
    tmp_path: Path, chains: list[DevChainProcess]
) -> None:
    chain = start(tmp_path / "chain", chains, block_time_ms=50)
    rpc = RpcChain(chain.url, DEV_KEYS)
    first = rpc.block_number
    while rpc.block_number < first + 3:
        pass
    # timer blocks are appended at once (fsync'd later): a killed process keeps them
    os.kill(chain.process.pid, signal.SIGKILL)
    chain.process.wait()
    reopened = start(tmp_path / "chain", chains)
    assert reopened.block_at_start >= first + 3


def test_a_second_chain_on_the_same_directory_is_refused(
    tmp_path: Path, chains: list[DevChainProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    start(tmp_path / "chain", chains)
    monkeypatch.setattr(devchain, "LOCK_WAIT_S", 0.2)
    with pytest.raises(DevChainError, match="another embedded chain holds it"):
        devchain._acquire_lock(tmp_path / "chain")


def test_a_torn_tail_is_cut_and_the_records_before_it_kept(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    whole = encode_record([(b"a", b"1"), (b"b", b"2")]) + encode_record([(b"a", None)])
    torn = encode_record([(b"c", b"3")])[:-1]
    path.write_bytes(whole + torn)
    replay = read_log(path)
    assert replay.store == {b"b": b"2"}
    assert (replay.records, replay.valid_bytes, replay.cut_bytes) == (2, len(whole), len(torn))


def test_a_damaged_record_ends_the_replay(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    first, second = encode_record([(b"a", b"1")]), bytearray(encode_record([(b"b", b"2")]))
    second[-1] ^= 0xFF
    path.write_bytes(first + bytes(second))
    replay = read_log(path)
    assert replay.store == {b"a": b"1"} and replay.cut_bytes == len(second)
