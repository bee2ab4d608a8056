"""Settlement.sol on a real EVM (py-evm): the custody life cycle and every guard's misuse."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data

from asyncdex.commitment.leaves import exit_leaf, withdrawal_leaf
from asyncdex.commitment.merkle import ZERO_HASH, merkle_proof, merkle_root
from asyncdex.settlement.chain import (
    ContractReverted,
    EthTesterChain,
    MessageKind,
    SettlementClient,
    batch_digest,
    sign_digest,
)
from asyncdex.types.hashing import keccak256

from .conftest import FINALITY_BLOCKS, FORCED_DEADLINE_BLOCKS, GENESIS_ROOT, Venue, reverts

ROOT_1 = b"\x11" * 32
ROOT_2 = b"\x22" * 32
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def high_s_twin(signature: bytes) -> bytes:
    """The malleable twin (r, n - s, flipped v) that ecrecover maps to the same signer."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - v])


def mine_until_next_block_is(venue: Venue, block: int) -> None:
    venue.chain.mine(block - venue.chain.block_number - 1)


def withdrawal_tree(entries: Sequence[tuple[int, str, int]]) -> tuple[bytes, list[bytes]]:
    leaves = [withdrawal_leaf(*entry) for entry in entries]
    return merkle_root(leaves), leaves


# ---------------------------------------------------------------- happy path


def test_deposit_commit_finality_claim_round_trip(venue: Venue) -> None:
    settlement, alice = venue.settlement, venue.alice
    venue.fund(alice, 1_000_000)
    settlement.deposit(alice.key, 700_000)

    (message,) = settlement.l1_messages()
    assert (message.index, message.kind, message.account, message.amount, message.deadline) == (
        0,
        MessageKind.DEPOSIT,
        alice.address,
        700_000,
        0,
    )

    entries = [(1, alice.address, 250_000), (2, venue.bob.address, 5)]
    withdrawals_root, leaves = withdrawal_tree(entries)
    venue.commit(1, GENESIS_ROOT, ROOT_1, withdrawals_root, l1_consumed=1)
    assert settlement.last_batch_number() == 1
    assert not settlement.is_final(1)

    venue.chain.mine(FINALITY_BLOCKS)
    assert settlement.is_final(1)
    assert settlement.last_final_batch() == 1

    # Anyone submits the claim; the money goes to the account in the leaf.
    settlement.claim_withdrawal(
        venue.outsider.key, 1, 1, alice.address, 250_000, merkle_proof(leaves, 0), 0
    )
    assert settlement.token_balance(alice.address) == 300_000 + 250_000
    assert settlement.token_balance(venue.outsider.address) == 0
    assert settlement.available_funds() == 450_000

    with reverts("WithdrawalAlreadyClaimed"):
        settlement.claim_withdrawal(
            alice.key, 1, 1, alice.address, 250_000, merkle_proof(leaves, 0), 0
        )


def test_deposit_for_credits_the_named_account(venue: Venue) -> None:
    venue.fund(venue.alice, 10)
    venue.settlement.deposit(venue.alice.key, 10, account=venue.bob.address)
    (message,) = venue.settlement.l1_messages()
    assert message.account == venue.bob.address
    assert venue.settlement.available_funds() == 10


def test_invalid_deposits(venue: Venue) -> None:
    venue.fund(venue.alice, 10)
    with reverts("ZeroAmount"):
        venue.settlement.deposit(venue.alice.key, 0)
    with reverts("ZeroAddress"):
        venue.settlement.deposit(venue.alice.key, 5, account="0x" + "00" * 20)
    with reverts("TokenTransferFailed"):  # the token refuses; nothing is queued
        venue.settlement.deposit(venue.alice.key, 11)
    assert venue.settlement.l1_messages() == []


def test_l1_message_hashes_commit_to_the_event_fields(venue: Venue) -> None:
    venue.fund(venue.alice, 10)
    venue.settlement.deposit(venue.alice.key, 10)
    venue.settlement.force_request(venue.bob.key, MessageKind.FORCED_WITHDRAWAL, 3)
    functions = venue.settlement.contract.functions
    for message in venue.settlement.l1_messages():
        encoded = (
            message.index.to_bytes(32, "big")
            + int(message.kind).to_bytes(32, "big")
            + bytes.fromhex(message.account[2:]).rjust(32, b"\x00")
            + message.amount.to_bytes(32, "big")
            + message.block_number.to_bytes(32, "big")
            + message.deadline.to_bytes(32, "big")
        )
        assert functions.l1MessageHashes(message.index).call() == keccak256(encoded)
    assert functions.l1MessageCount().call() == 2


# ---------------------------------------------------------------- digest and encodings


def test_batch_digest_matches_contract_and_eip712(venue: Venue) -> None:
    settlement, chain = venue.settlement, venue.chain
    fields = (7, ROOT_1, ROOT_2, b"\x33" * 32, 42, keccak256(b"data"))
    python_digest = batch_digest(chain.chain_id, settlement.address, *fields)
    assert settlement.contract.functions.batchDigest(*fields).call() == python_digest

    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Batch": [
                {"name": "batchNumber", "type": "uint256"},
                {"name": "prevStateRoot", "type": "bytes32"},
                {"name": "newStateRoot", "type": "bytes32"},
                {"name": "withdrawalsRoot", "type": "bytes32"},
                {"name": "l1MessagesConsumed", "type": "uint256"},
                {"name": "batchDataHash", "type": "bytes32"},
            ],
        },
        "primaryType": "Batch",
        "domain": {
            "name": "asyncdex Settlement",
            "version": "1",
            "chainId": chain.chain_id,
            "verifyingContract": settlement.address,
        },
        "message": dict(
            zip(
                [
                    "batchNumber",
                    "prevStateRoot",
                    "newStateRoot",
                    "withdrawalsRoot",
                    "l1MessagesConsumed",
                    "batchDataHash",
                ],
                fields,
                strict=True,
            )
        ),
    }
    # RFC 6979 signatures are deterministic: equal signatures mean equal digests.
    standard = Account.sign_message(encode_typed_data(full_message=typed), venue.sequencer.key)
    assert bytes(standard.signature) == sign_digest(venue.sequencer.key, python_digest)


def test_leaf_encodings_match_contract(venue: Venue) -> None:
    functions = venue.settlement.contract.functions
    account, state_hash = venue.alice.address, b"\x44" * 32
    assert functions.exitLeaf(account, 123, state_hash).call() == exit_leaf(
        account, 123, state_hash
    )
    assert functions.withdrawalLeaf(9, account, 77).call() == withdrawal_leaf(9, account, 77)


def test_exit_leaf_matches_abi_encoding() -> None:
    address, state_hash = bytes(range(20)), b"\x55" * 32
    expected = keccak256(encode(["address", "uint256", "bytes32"], [address, 10**12, state_hash]))
    assert exit_leaf(address, 10**12, state_hash) == expected


# ---------------------------------------------------------------- commitBatch guards


def test_invalid_commit_wrong_signer(venue: Venue) -> None:
    with reverts("InvalidSignature"):
        venue.settlement.commit_batch(
            venue.operator.key, venue.outsider.key, 1, GENESIS_ROOT, ROOT_1, ZERO_HASH, 0, b"x"
        )


def test_invalid_commit_signature_over_other_fields(venue: Venue) -> None:
    settlement = venue.settlement
    digest = settlement.batch_digest(1, GENESIS_ROOT, ROOT_2, ZERO_HASH, 0, keccak256(b"x"))
    signature = sign_digest(venue.sequencer.key, digest)
    with reverts("InvalidSignature"):
        venue.commit(1, GENESIS_ROOT, ROOT_1, batch_data=b"x", signature=signature)


def test_invalid_commit_malleable_or_malformed_signature(venue: Venue) -> None:
    digest = venue.settlement.batch_digest(1, GENESIS_ROOT, ROOT_1, ZERO_HASH, 0, keccak256(b"x"))
    signature = sign_digest(venue.sequencer.key, digest)
    twin = high_s_twin(signature)
    assert Account._recover_hash(digest, signature=twin) == venue.sequencer.address
    for bad in (twin, signature[:64] + bytes([signature[64] - 27]), signature[:64], b""):
        with reverts("InvalidSignature"):
            venue.commit(1, GENESIS_ROOT, ROOT_1, batch_data=b"x", signature=bad)
    venue.commit(1, GENESIS_ROOT, ROOT_1, batch_data=b"x", signature=signature)


def test_invalid_commit_signature_replayed_on_another_deployment(venue: Venue) -> None:
    other = SettlementClient.deploy(
        venue.chain, venue.deployer.key, venue.sequencer.address, 5, 10, GENESIS_ROOT
    )
    digest = other.batch_digest(1, GENESIS_ROOT, ROOT_1, ZERO_HASH, 0, keccak256(b"x"))
    signature = sign_digest(venue.sequencer.key, digest)
    with reverts("InvalidSignature"):
        venue.commit(1, GENESIS_ROOT, ROOT_1, batch_data=b"x", signature=signature)


def test_invalid_commit_wrong_previous_root(venue: Venue) -> None:
    with reverts("PrevStateRootMismatch"):
        venue.commit(1, ROOT_2, ROOT_1)
    venue.commit(1, GENESIS_ROOT, ROOT_1)
    with reverts("PrevStateRootMismatch"):
        venue.commit(2, GENESIS_ROOT, ROOT_2)


def test_invalid_commit_reused_or_skipped_batch_number(venue: Venue) -> None:
    with reverts("UnexpectedBatchNumber"):
        venue.commit(2, GENESIS_ROOT, ROOT_1)
    with reverts("UnexpectedBatchNumber"):
        venue.commit(0, GENESIS_ROOT, ROOT_1)
    venue.commit(1, GENESIS_ROOT, ROOT_1)
    with pytest.raises(ContractReverted) as refused:
        venue.commit(1, GENESIS_ROOT, ROOT_1)
    assert (refused.value.error, refused.value.arguments) == ("UnexpectedBatchNumber", (2, 1))


def test_invalid_commit_bad_data_hash(venue: Venue) -> None:
    with reverts("BatchDataHashMismatch"):
        venue.commit(1, GENESIS_ROOT, ROOT_1, batch_data=b"x", batch_data_hash=keccak256(b"y"))


def test_invalid_commit_l1_messages_out_of_range(venue: Venue) -> None:
    venue.fund(venue.alice, 10)
    venue.settlement.deposit(venue.alice.key, 4)
    venue.settlement.deposit(venue.alice.key, 6)
    with reverts("L1MessagesConsumedOutOfRange"):
        venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=3)
    venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=2)
    with reverts("L1MessagesConsumedOutOfRange"):
        venue.commit(2, ROOT_1, ROOT_2, l1_consumed=1)
    venue.commit(2, ROOT_1, ROOT_2, l1_consumed=2)


# ---------------------------------------------------------------- forced requests


def test_invalid_force_requests(venue: Venue) -> None:
    settlement, bob = venue.settlement, venue.bob
    with reverts("InvalidRequest"):
        settlement.force_request(bob.key, MessageKind.FORCED_WITHDRAWAL, 0)
    with reverts("InvalidRequest"):
        settlement.force_request(bob.key, MessageKind.FORCED_CANCEL_ALL, 1)
    with reverts("InvalidRequest"):
        settlement.force_request(bob.key, MessageKind.DEPOSIT, 1)


def test_forced_request_sets_its_deadline(venue: Venue) -> None:
    index = venue.settlement.force_request(venue.bob.key, MessageKind.FORCED_CANCEL_ALL)
    (message,) = venue.settlement.l1_messages()
    assert message.index == index == 0
    assert message.kind == MessageKind.FORCED_CANCEL_ALL
    assert message.deadline == message.block_number + FORCED_DEADLINE_BLOCKS


def test_forced_request_past_deadline_blocks_commit(venue: Venue) -> None:
    venue.fund(venue.alice, 10)
    venue.settlement.deposit(venue.alice.key, 10)  # message 0
    venue.settlement.force_request(venue.bob.key, MessageKind.FORCED_WITHDRAWAL, 5)  # 1
    deadline = venue.settlement.l1_messages()[1].deadline

    # Up to and including the deadline block the sequencer may still leave it for later.
    mine_until_next_block_is(venue, deadline)
    venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=1)  # mined in the deadline block
    assert venue.chain.block_number == deadline

    with pytest.raises(ContractReverted) as refused:
        venue.commit(2, ROOT_1, ROOT_2, l1_consumed=1)
    assert (refused.value.error, refused.value.arguments) == ("ForcedRequestOverdue", (1, deadline))
    # Processing it late is still allowed as long as nobody froze the contract.
    venue.commit(2, ROOT_1, ROOT_2, l1_consumed=2)


def test_forced_requests_checked_in_queue_order(venue: Venue) -> None:
    settlement = venue.settlement
    first = settlement.force_request(venue.alice.key, MessageKind.FORCED_CANCEL_ALL)
    settlement.force_request(venue.bob.key, MessageKind.FORCED_CANCEL_ALL)
    venue.chain.mine(FORCED_DEADLINE_BLOCKS + 1)
    with reverts("ForcedRequestOverdue"):
        venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=first + 1)  # leaves the second
    venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=2)


# ---------------------------------------------------------------- withdrawals guards


def test_invalid_claims(venue: Venue) -> None:
    settlement, alice = venue.settlement, venue.alice
    venue.fund(alice, 100)
    settlement.deposit(alice.key, 100)
    entries = [(1, alice.address, 40), (2, alice.address, 30), (3, venue.bob.address, 500)]
    root, leaves = withdrawal_tree(entries)
    venue.commit(1, GENESIS_ROOT, ROOT_1, root, l1_consumed=1)
    proof0 = merkle_proof(leaves, 0)

    with reverts("BatchNotFinal"):
        settlement.claim_withdrawal(alice.key, 1, 1, alice.address, 40, proof0, 0)
    venue.chain.mine(FINALITY_BLOCKS)
    with reverts("BatchNotFinal"):  # never committed
        settlement.claim_withdrawal(alice.key, 2, 1, alice.address, 40, proof0, 0)

    bad_claims = [
        (1, alice.address, 41, proof0, 0),  # amount
        (1, venue.bob.address, 40, proof0, 0),  # account
        (2, alice.address, 40, proof0, 0),  # withdrawal id
        (1, alice.address, 40, proof0, 1),  # index
        (1, alice.address, 40, proof0, 4),  # index beyond the proof's depth
        (1, alice.address, 40, proof0[:-1], 0),  # short proof
        (1, alice.address, 40, [b"\x00" * 32, *proof0[1:]], 0),  # tampered sibling
    ]
    for withdrawal_id, account, amount, proof, index in bad_claims:
        with reverts("InvalidProof"):
            settlement.claim_withdrawal(alice.key, 1, withdrawal_id, account, amount, proof, index)

    with reverts("InsufficientFunds"):  # a valid leaf still cannot pay beyond the deposits
        settlement.claim_withdrawal(
            alice.key, 1, 3, venue.bob.address, 500, merkle_proof(leaves, 2), 2
        )
    settlement.claim_withdrawal(alice.key, 1, 1, alice.address, 40, proof0, 0)
    settlement.claim_withdrawal(alice.key, 1, 2, alice.address, 30, merkle_proof(leaves, 1), 1)
    assert settlement.available_funds() == 30


def test_finality_follows_commit_blocks(venue: Venue) -> None:
    settlement = venue.settlement
    assert not settlement.is_final(0)
    venue.chain.mine(FINALITY_BLOCKS)
    assert settlement.is_final(0) and settlement.last_final_batch() == 0
    venue.commit(1, GENESIS_ROOT, ROOT_1)
    venue.chain.mine(2)
    venue.commit(2, ROOT_1, ROOT_2)
    assert settlement.last_final_batch() == 0
    venue.chain.mine(FINALITY_BLOCKS - 3)
    assert settlement.is_final(1) and not settlement.is_final(2)
    assert settlement.last_final_batch() == 1
    venue.chain.mine(3)
    assert settlement.last_final_batch() == 2
    assert not settlement.is_final(3)


# ---------------------------------------------------------------- freeze and exit


def overdue_forced_request(venue: Venue) -> int:
    """Post a forced request and let its deadline pass unprocessed; returns its index."""
    index = venue.settlement.force_request(venue.bob.key, MessageKind.FORCED_WITHDRAWAL, 1)
    venue.chain.mine(FORCED_DEADLINE_BLOCKS + 1)
    return index


def commit_then_freeze_at_deadline(
    venue: Venue, batch_number: int, prev_root: bytes, new_root: bytes, withdrawals_root: bytes
) -> None:
    """Commit a batch in a forced request's deadline block, leaving the request unprocessed,
    and freeze one block later: the batch is then still inside its finality window."""
    forced = venue.settlement.force_request(venue.bob.key, MessageKind.FORCED_CANCEL_ALL)
    message = venue.settlement.l1_messages()[forced]
    mine_until_next_block_is(venue, message.deadline)
    venue.commit(batch_number, prev_root, new_root, withdrawals_root, l1_consumed=forced)
    venue.settlement.freeze(venue.outsider.key, forced)


def test_invalid_freezes(venue: Venue) -> None:
    settlement, outsider = venue.settlement, venue.outsider
    venue.fund(venue.alice, 10)
    settlement.deposit(venue.alice.key, 10)  # message 0, a deposit
    forced = settlement.force_request(venue.bob.key, MessageKind.FORCED_CANCEL_ALL)  # 1
    deadline = settlement.l1_messages()[forced].deadline

    with reverts("NotForcedRequest"):
        settlement.freeze(outsider.key, 0)
    with reverts("NotForcedRequest"):
        settlement.freeze(outsider.key, 5)
    with reverts("DeadlineNotPassed"):
        settlement.freeze(outsider.key, forced)
    mine_until_next_block_is(venue, deadline)
    with reverts("DeadlineNotPassed"):  # mined in the deadline block itself
        settlement.freeze(outsider.key, forced)

    venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=2)  # processed in time
    with reverts("ForcedRequestProcessed"):
        settlement.freeze(outsider.key, forced)
    with reverts("NotFrozen"):
        settlement.exit(outsider.key, venue.alice.address, 1, ZERO_HASH, [], 0)


def test_freeze_stops_the_operator_and_new_messages(venue: Venue) -> None:
    settlement = venue.settlement
    venue.fund(venue.alice, 10)
    forced = overdue_forced_request(venue)
    settlement.freeze(venue.outsider.key, forced)
    assert settlement.contract.functions.frozen().call()

    with reverts("ContractFrozen"):
        venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=1)  # even one that processes it
    with reverts("ContractFrozen"):
        settlement.deposit(venue.alice.key, 1)
    with reverts("ContractFrozen"):
        settlement.force_request(venue.bob.key, MessageKind.FORCED_CANCEL_ALL)
    with reverts("ContractFrozen"):
        settlement.freeze(venue.outsider.key, forced)


def exit_tree(entries: Sequence[tuple[str, int, bytes]]) -> tuple[bytes, list[bytes]]:
    """A state tree: exit leaves sorted by address, then a global leaf."""
    ordered = sorted(entries, key=lambda entry: bytes.fromhex(entry[0][2:]))
    leaves = [exit_leaf(*entry) for entry in ordered]
    leaves.append(keccak256(b"\x93global"))
    return merkle_root(leaves), leaves


def test_exit_after_freeze_pays_once_from_the_last_final_batch(venue: Venue) -> None:
    settlement, alice, bob = venue.settlement, venue.alice, venue.bob
    venue.fund(alice, 1_000)
    venue.fund(bob, 1_000)
    settlement.deposit(alice.key, 600)
    settlement.deposit(bob.key, 400)
    entries = [(alice.address, 550, b"\xaa" * 32), (bob.address, 450, b"\xbb" * 32)]
    state_root, leaves = exit_tree(entries)
    position = {address: i for i, (address, _, _) in enumerate(sorted(entries))}
    venue.commit(1, GENESIS_ROOT, state_root, l1_consumed=2)
    venue.chain.mine(FINALITY_BLOCKS)
    # Batch 2 is still inside its finality window when the contract freezes: it is abandoned.
    commit_then_freeze_at_deadline(venue, 2, state_root, ROOT_2, ZERO_HASH)
    assert settlement.contract.functions.exitBatchNumber().call() == 1
    venue.chain.mine(FINALITY_BLOCKS)
    assert settlement.last_final_batch() == 1 and not settlement.is_final(2)

    alice_index = position[alice.address]
    alice_proof = merkle_proof(leaves, alice_index)
    with reverts("InvalidProof"):
        settlement.exit(venue.outsider.key, alice.address, 551, b"\xaa" * 32, alice_proof, 0)
    with reverts("InvalidProof"):
        settlement.exit(
            venue.outsider.key, alice.address, 550, b"\xab" * 32, alice_proof, alice_index
        )
    with reverts("InvalidProof"):
        settlement.exit(
            venue.outsider.key, alice.address, 550, b"\xaa" * 32, alice_proof, alice_index ^ 1
        )

    settlement.exit(venue.outsider.key, alice.address, 550, b"\xaa" * 32, alice_proof, alice_index)
    assert settlement.token_balance(alice.address) == 400 + 550
    with reverts("AlreadyExited"):
        settlement.exit(alice.key, alice.address, 550, b"\xaa" * 32, alice_proof, alice_index)

    bob_index = position[bob.address]
    settlement.exit(
        bob.key, bob.address, 450, b"\xbb" * 32, merkle_proof(leaves, bob_index), bob_index
    )
    assert settlement.token_balance(bob.address) == 600 + 450
    assert settlement.available_funds() == 0


def test_exit_never_pays_more_than_the_contract_holds(venue: Venue) -> None:
    settlement, alice, bob = venue.settlement, venue.alice, venue.bob
    venue.fund(alice, 100)
    settlement.deposit(alice.key, 100)
    # A (faulty or malicious) root promising more than was ever deposited.
    entries = [(alice.address, 80, ZERO_HASH), (bob.address, 70, ZERO_HASH)]
    state_root, leaves = exit_tree(entries)
    position = {address: i for i, (address, _, _) in enumerate(sorted(entries))}
    venue.commit(1, GENESIS_ROOT, state_root, l1_consumed=1)
    venue.chain.mine(FINALITY_BLOCKS)
    settlement.freeze(venue.outsider.key, overdue_forced_request(venue))

    for account, value in ((alice.address, 80), (bob.address, 70)):
        index = position[account]
        settlement.exit(
            venue.outsider.key, account, value, ZERO_HASH, merkle_proof(leaves, index), index
        )
    assert settlement.token_balance(alice.address) == 80
    assert settlement.token_balance(bob.address) == 20
    assert settlement.available_funds() == 0
    assert settlement.token_balance(settlement.address) == 0
    functions = settlement.contract.functions
    assert functions.totalPaid().call() == functions.totalDeposited().call() == 100


def test_claims_after_freeze_only_up_to_the_exit_batch(venue: Venue) -> None:
    settlement, alice = venue.settlement, venue.alice
    venue.fund(alice, 100)
    settlement.deposit(alice.key, 100)
    root_1, leaves_1 = withdrawal_tree([(1, alice.address, 10)])
    root_2, leaves_2 = withdrawal_tree([(2, alice.address, 20)])
    venue.commit(1, GENESIS_ROOT, ROOT_1, root_1, l1_consumed=1)
    venue.chain.mine(FINALITY_BLOCKS)
    commit_then_freeze_at_deadline(venue, 2, ROOT_1, ROOT_2, root_2)
    venue.chain.mine(FINALITY_BLOCKS)

    settlement.claim_withdrawal(alice.key, 1, 1, alice.address, 10, merkle_proof(leaves_1, 0), 0)
    with reverts("BatchNotFinal"):
        settlement.claim_withdrawal(
            alice.key, 2, 2, alice.address, 20, merkle_proof(leaves_2, 0), 0
        )


def test_reclaim_deposits_the_exit_batch_never_saw(venue: Venue) -> None:
    settlement, alice, bob = venue.settlement, venue.alice, venue.bob
    venue.fund(alice, 100)
    settlement.deposit(alice.key, 30)  # message 0: in the exit batch
    venue.commit(1, GENESIS_ROOT, ROOT_1, l1_consumed=1)
    venue.chain.mine(FINALITY_BLOCKS)
    settlement.deposit(alice.key, 50, account=bob.address)  # message 1: never in a final batch
    consumed, late = settlement.l1_messages()
    with reverts("NotFrozen"):
        settlement.reclaim_deposit(venue.outsider.key, late)
    settlement.freeze(venue.outsider.key, overdue_forced_request(venue))

    with reverts("NotReclaimable"):
        settlement.reclaim_deposit(venue.outsider.key, consumed)
    forged = type(late)(late.index, late.kind, alice.address, late.amount, late.block_number, 0)
    with reverts("MessageMismatch"):
        settlement.reclaim_deposit(venue.outsider.key, forged)
    settlement.reclaim_deposit(venue.outsider.key, late)
    assert settlement.token_balance(bob.address) == 50
    with reverts("NotReclaimable"):
        settlement.reclaim_deposit(venue.outsider.key, late)
    assert settlement.available_funds() == 30


def test_forced_request_cannot_be_frozen_on_when_processed_by_a_later_batch() -> None:
    """A forced request consumed by any committed batch blocks freeze, final or not."""
    chain = EthTesterChain()
    deployer, sequencer, bob = (Account.from_key(key) for key in chain.funded_keys[:3])
    settlement = SettlementClient.deploy(chain, deployer.key, sequencer.address, 100, 3, ROOT_1)
    forced = settlement.force_request(bob.key, MessageKind.FORCED_CANCEL_ALL)
    settlement.commit_batch(deployer.key, sequencer.key, 1, ROOT_1, ROOT_2, ZERO_HASH, 1, b"")
    chain.mine(5)
    with reverts("ForcedRequestProcessed"):
        settlement.freeze(bob.key, forced)
