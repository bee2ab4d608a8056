"""The escape hatch from chain data alone: rebuild the exit leaves, prove one, call ``exit``.

Invariants:
- Nothing but the chain is read: the ``BatchCommitted`` events name each batch's transaction,
  the transaction's input carries the batch data, and the contract's storage holds the roots.
  No sequencer, journal, API or snapshot is consulted, so the tool works with the operator gone.
- Batches are applied from batch 1 up to the exit batch in order, each checked before use: its
  data hashes to the committed ``batchDataHash``, decodes strictly, names its own number, and
  its l1 count and withdrawals root match the event; the rebuilt state root must equal the
  committed one (``LeafSet.apply``), and the exit batch's root is compared once more with the
  contract's storage. Any difference stops the tool before a proof is built.
- The exit batch is the contract's ``exitBatchNumber`` once frozen (the only root ``exit``
  accepts); before a freeze a dry run shows the position at ``lastFinalBatch``.
- The payer key only pays gas; ``Settlement.exit`` sends the funds to the account in the leaf.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3
from web3.types import TxReceipt

from asyncdex.commitment.leaves import exit_leaf
from asyncdex.commitment.merkle import verify_proof
from asyncdex.settlement.batch import BatchDataError, LeafSet, decode_batch_data
from asyncdex.settlement.chain import BatchCommit, PrivateKey, SettlementClient
from asyncdex.types.hashing import keccak256


class ExitError(RuntimeError):
    """The chain data does not allow an exit (or not yet): the reason is the message."""


@dataclass(frozen=True, slots=True)
class ExitPlan:
    account: bytes
    batch_number: int
    state_root: bytes
    exit_value: int
    account_hash: bytes
    index: int
    proof: list[bytes]
    frozen: bool


def batch_commits(
    client: SettlementClient, from_block: int = 0, max_block_range: int = 10_000
) -> dict[int, BatchCommit]:
    """Every ``BatchCommitted`` event by batch number, read in block ranges that public RPC
    endpoints accept."""
    head = client.chain.block_number
    commits: dict[int, BatchCommit] = {}
    block = from_block
    while block <= head:
        last = min(head, block + max_block_range - 1)
        for commit in client.batch_commits(block, last):
            if commit.batch_number in commits:
                raise ExitError(f"batch {commit.batch_number} was committed twice")
            commits[commit.batch_number] = commit
        block = last + 1
    return commits


def rebuild_leaf_set(
    client: SettlementClient,
    upto_batch: int,
    *,
    from_block: int = 0,
    max_block_range: int = 10_000,
) -> LeafSet:
    """The exit leaves as of batch ``upto_batch``, rebuilt and checked batch by batch."""
    commits = batch_commits(client, from_block, max_block_range)
    leaf_set = LeafSet()
    for number in range(1, upto_batch + 1):
        commit = commits.get(number)
        if commit is None:
            raise ExitError(f"no BatchCommitted event for batch {number} from block {from_block}")
        try:
            call = client.commit_batch_call(commit.tx_hash)
        except ValueError as exc:
            raise ExitError(f"batch {number}: {exc}") from exc
        if call.batch_number != number or keccak256(call.batch_data) != commit.batch_data_hash:
            raise ExitError(f"batch {number}: transaction input does not match its event")
        try:
            data = decode_batch_data(call.batch_data)
        except BatchDataError as exc:
            raise ExitError(f"batch {number}: malformed batch data: {exc}") from exc
        if (
            data.batch_number != number
            or data.l1_consumed != commit.l1_messages_consumed
            or data.withdrawals_root() != commit.withdrawals_root
        ):
            raise ExitError(f"batch {number}: batch data disagrees with the committed batch")
        try:
            leaf_set.apply(data, commit.state_root)
        except ValueError as exc:
            raise ExitError(str(exc)) from exc
    return leaf_set


def plan_exit(
    client: SettlementClient,
    account: bytes,
    *,
    from_block: int = 0,
    max_block_range: int = 10_000,
) -> ExitPlan:
    """The exit value and proof of ``account`` at the exit batch (or the last final batch)."""
    frozen = client.is_frozen()
    batch_number = client.exit_batch_number() if frozen else client.last_final_batch()
    if batch_number == 0:
        raise ExitError("only the genesis batch is final: there is no balance to exit with")
    leaf_set = rebuild_leaf_set(
        client, batch_number, from_block=from_block, max_block_range=max_block_range
    )
    root = client.batch_state_root(batch_number)
    if leaf_set.root() != root:
        raise ExitError(f"batch {batch_number}: rebuilt root differs from the contract's")
    try:
        value, account_hash, index, proof = leaf_set.proof_for(account)
    except KeyError as exc:
        raise ExitError(str(exc.args[0])) from exc
    if not verify_proof(root, exit_leaf(account, value, account_hash), index, proof):
        raise ExitError("the proof does not verify against the committed root")
    return ExitPlan(account, batch_number, root, value, account_hash, index, proof, frozen)


def submit_exit(client: SettlementClient, payer_key: PrivateKey, plan: ExitPlan) -> TxReceipt:
    """Call ``Settlement.exit`` with ``plan``; the funds go to ``plan.account``."""
    address = Web3.to_checksum_address(plan.account)
    if not plan.frozen:
        raise ExitError("the contract is not frozen: exits open only after a freeze")
    if client.has_exited(address):
        raise ExitError(f"{address} has already exited")
    return client.exit(
        payer_key, address, plan.exit_value, plan.account_hash, plan.proof, plan.index
    )
