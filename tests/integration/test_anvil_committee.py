"""The committee settlement contract on anvil: certified roots, refusals, slashing, exits.

- A 4-member committee bonds, certifies batches with 3 signatures (2f + 1) and has them
  accepted; each malformed certificate (too few, duplicate signer, non-member, high-s twin,
  trailing bytes) and a certified batch on a wrong previous root are refused with their own
  error, on the real node's revert data.
- Withdrawals are paid against a committee-certified root; the escape hatch freezes the
  contract over an ignored forced request and pays an exit from the certified root.
- Equivocation evidence (two batch headers for one number) slashes the member, pays the
  reporter its share and the rest to the insurance account; the quorum follows.
- An epoch change removes a member whose bond comes back only after the unbonding period,
  measured in anvil's block time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eth_account import Account
from web3 import Web3

from asyncdex.commitment.leaves import exit_leaf, withdrawal_leaf
from asyncdex.commitment.merkle import ZERO_HASH, merkle_proof, merkle_root
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.settlement.certificate import (
    EMPTY_SLOT,
    BatchHeader,
    batch_equivocation,
    certify,
    epoch_digest,
    pack_certificate,
)
from asyncdex.settlement.chain import (
    CommitteeSettlementClient,
    CommitteeStatus,
    ContractReverted,
    MessageKind,
    RpcChain,
)
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import Anvil

pytestmark = pytest.mark.integration

GENESIS_ROOT = b"\x01" * 32
FINALITY_BLOCKS = 3
FORCED_DEADLINE_BLOCKS = 5
MIN_BOND = 5_000
UNBONDING_S = 600
REPORTER_BPS = 2_000
DOMAIN = b"asyncdex/consensus/anvil-test"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _checksum(address: bytes) -> str:
    return Web3.to_checksum_address(address)


def _refused(error: str, action: Callable[[], object]) -> None:
    with pytest.raises(ContractReverted) as raised:
        action()
    assert raised.value.error == error


def test_committee_settlement_on_anvil(
    tmp_path: Path, anvil_launcher: Callable[..., Anvil]
) -> None:
    anvil = anvil_launcher(tmp_path / "anvil")
    chain = RpcChain(anvil.url, anvil.keys)
    deployer, operator, alice, reporter, insurance = (
        Account.from_key(key) for key in anvil.keys[:5]
    )
    member_keys = anvil.keys[5:9]
    signers = [Secp256k1Signer(key) for key in member_keys]
    members = [signer.address for signer in signers]
    settlement = CommitteeSettlementClient.deploy_committee(
        chain,
        deployer.key,
        members,
        FINALITY_BLOCKS,
        FORCED_DEADLINE_BLOCKS,
        GENESIS_ROOT,
        min_bond=MIN_BOND,
        unbonding_period_s=UNBONDING_S,
        reporter_share_bps=REPORTER_BPS,
        insurance_account=insurance.address,
        consensus_domain=DOMAIN,
    )
    for key in member_keys:
        address = Account.from_key(key).address
        settlement.mint(key, address, MIN_BOND)
        settlement.approve(key, MIN_BOND)
        settlement.bond(key, MIN_BOND)
    assert settlement.quorum() == 3

    settlement.mint(alice.key, alice.address, 1_000)
    settlement.approve(alice.key, 1_000)
    settlement.deposit(alice.key, 1_000)

    def header(number: int, prev: bytes, new: bytes, withdrawals: bytes = ZERO_HASH) -> BatchHeader:
        return BatchHeader(number, prev, new, withdrawals, 1, keccak256(b"batch"))

    def commit(batch: BatchHeader, certificate: bytes) -> object:
        return settlement.commit_certified(
            operator.key,
            batch.batch_number,
            batch.prev_state_root,
            batch.new_state_root,
            batch.withdrawals_root,
            batch.l1_messages_consumed,
            b"batch",
            certificate,
        )

    withdrawal_leaves = [withdrawal_leaf(1, alice.address, 400)]
    state_leaves = [exit_leaf(alice.address, 600, b"\xaa" * 32)]
    first = header(1, GENESIS_ROOT, merkle_root(state_leaves), merkle_root(withdrawal_leaves))
    digest = first.digest(chain.chain_id, settlement.address)
    signatures = {index: signers[index].sign(digest) for index in range(4)}

    # ---- malformed certificates, each refused with its own error
    two = pack_certificate({0: signatures[0], 1: signatures[1]})
    _refused("TooFewSignatures", lambda: commit(first, two))
    duplicate = pack_certificate({0: signatures[0], 1: signatures[1], 2: signatures[0]})
    _refused("DuplicateSigner", lambda: commit(first, duplicate))
    stranger = Secp256k1Signer(keccak256(b"not a member")).sign(digest)
    _refused(
        "WrongSigner",
        lambda: commit(first, pack_certificate({0: signatures[0], 1: signatures[1], 2: stranger})),
    )
    s = int.from_bytes(signatures[2][32:64], "big")
    twin = signatures[2][:32] + (SECP256K1_ORDER - s).to_bytes(32, "big")
    twin += bytes([55 - signatures[2][64]])
    _refused(
        "MalformedSignature",
        lambda: commit(first, pack_certificate({0: signatures[0], 1: signatures[1], 2: twin})),
    )
    good = pack_certificate({0: signatures[0], 1: signatures[1], 2: signatures[2]})
    _refused("MalformedCertificate", lambda: commit(first, good + b"\x00"))
    wrong_prev = replace(first, prev_state_root=b"\x09" * 32)
    certified_wrong_prev = certify(
        wrong_prev.digest(chain.chain_id, settlement.address), members, signers
    )
    _refused("PrevStateRootMismatch", lambda: commit(wrong_prev, certified_wrong_prev))
    assert settlement.last_batch_number() == 0

    # ---- 2f + 1 signatures: accepted, and the certificate check stays within budget
    verify = settlement.contract.functions.verifyCertificate(digest, good)
    receipt = chain.transact(deployer.key, verify)
    data = bytes(chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    calldata_gas = 16 * (len(data) - data.count(0)) + 4 * data.count(0)
    assert int(receipt["gasUsed"]) - 21_000 - calldata_gas <= 30_000
    commit(first, good)
    assert settlement.last_batch_number() == 1
    assert settlement.batch_state_root(1) == merkle_root(state_leaves)

    # ---- a withdrawal against the committee-certified root
    chain.mine(FINALITY_BLOCKS)
    settlement.claim_withdrawal(
        reporter.key, 1, 1, alice.address, 400, merkle_proof(withdrawal_leaves, 0), 0
    )
    assert settlement.token_balance(alice.address) == 400

    # ---- equivocation: member 3 signs a second header for batch 2
    second = header(2, first.new_state_root, b"\x22" * 32)
    conflicting = replace(second, new_state_root=b"\x33" * 32)
    culprit = signers[3]
    evidence = batch_equivocation(
        chain.chain_id,
        settlement.address,
        culprit.address,
        second,
        culprit.sign(second.digest(chain.chain_id, settlement.address)),
        conflicting,
        culprit.sign(conflicting.digest(chain.chain_id, settlement.address)),
    )
    # the other members certify batch 2 by index before the slash
    second_digest = second.digest(chain.chain_id, settlement.address)
    signed_before = certify(second_digest, members, signers[:3])
    with_culprit = certify(second_digest, members, signers[1:])
    reporter_before = settlement.token_balance(reporter.address)
    settlement.slash_batch_equivocation(reporter.key, evidence)
    reward = MIN_BOND * REPORTER_BPS // 10_000
    assert settlement.token_balance(reporter.address) == reporter_before + reward
    assert settlement.stake(culprit.address).status is CommitteeStatus.SLASHED
    insurance_deposits = [m for m in settlement.l1_messages() if m.account == insurance.address]
    assert [(m.kind, m.amount) for m in insurance_deposits] == [
        (MessageKind.DEPOSIT, MIN_BOND - reward)
    ]
    _refused("NotSlashable", lambda: settlement.slash_batch_equivocation(reporter.key, evidence))
    # its slot is emptied, no index moves: the certificate signed before the slash still
    # verifies, one carrying the slashed member's bit is refused
    remaining = [*members[:3], EMPTY_SLOT]
    assert settlement.members() == remaining and settlement.quorum() == 3
    chain.call(settlement.contract.functions.verifyCertificate(second_digest, signed_before))
    _refused(
        "EmptySlot",
        lambda: chain.call(
            settlement.contract.functions.verifyCertificate(second_digest, with_culprit)
        ),
    )

    # ---- an epoch change drops member 2; its bond returns after the unbonding period
    new_set = members[:2]
    epoch_certificate = certify(
        epoch_digest(chain.chain_id, settlement.address, 1, new_set), remaining, signers[:3]
    )
    settlement.change_epoch(operator.key, 1, new_set, epoch_certificate)
    leaver_key = member_keys[2]
    assert settlement.stake(members[2]).status is CommitteeStatus.UNBONDING
    _refused("UnbondingNotOver", lambda: settlement.withdraw_bond(leaver_key))
    chain.advance_time(UNBONDING_S)
    settlement.withdraw_bond(leaver_key)
    assert settlement.token_balance(_checksum(members[2])) == MIN_BOND

    # ---- the escape hatch with a committee-certified root: the committee (now 2 of 2)
    # ignores alice's forced request; anyone freezes and alice exits from batch 1's root
    index = settlement.force_request(alice.key, MessageKind.FORCED_WITHDRAWAL, 600)
    chain.mine(FORCED_DEADLINE_BLOCKS + 1)
    settlement.freeze(reporter.key, index)
    assert settlement.exit_batch_number() == 1
    settlement.exit(
        reporter.key, alice.address, 600, b"\xaa" * 32, merkle_proof(state_leaves, 0), 0
    )
    assert settlement.token_balance(alice.address) == 1_000
