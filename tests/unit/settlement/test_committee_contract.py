"""CommitteeSettlement.sol on a real EVM (py-evm): quorum certificates, bonds, epochs, slashing.

Every guarded function is driven with the honest input once and with each kind of misuse; the
off-chain encodings (certificate.py, consensus vote digests) are checked against the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from asyncdex.commitment.leaves import exit_leaf, withdrawal_leaf
from asyncdex.commitment.merkle import ZERO_HASH, merkle_proof, merkle_root
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.consensus.messages import proposal_digest, vote_digest
from asyncdex.settlement.certificate import (
    EMPTY_SLOT,
    BatchHeader,
    batch_equivocation,
    certify,
    epoch_digest,
    pack_certificate,
    proposal_equivocation,
    quorum,
    unpack_certificate,
    verify_certificate,
    vote_equivocation,
)
from asyncdex.settlement.chain import (
    CommitteeSettlementClient,
    CommitteeStatus,
    EthTesterChain,
    MessageKind,
    SettlementClient,
)
from asyncdex.types.hashing import keccak256

from .conftest import reverts

FINALITY_BLOCKS = 5
FORCED_DEADLINE_BLOCKS = 10
GENESIS_ROOT = b"\x01" * 32
ROOT_1 = b"\x11" * 32
ROOT_2 = b"\x22" * 32
MIN_BOND = 1_000
UNBONDING_S = 3_600
REPORTER_BPS = 2_500
DOMAIN = b"asyncdex/consensus/test-committee"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class Committee:
    chain: EthTesterChain
    settlement: CommitteeSettlementClient
    deployer: LocalAccount
    operator: LocalAccount
    alice: LocalAccount
    reporter: LocalAccount
    insurance: LocalAccount
    signers: list[Secp256k1Signer]  # genesis members, index order
    candidate: Secp256k1Signer  # bonded later, joins by an epoch change
    keys: dict[bytes, bytes]  # member address -> private key (to send its transactions)

    @property
    def addresses(self) -> list[bytes]:
        return [signer.address for signer in self.signers]

    def fund(self, key: bytes, amount: int) -> None:
        address = Account.from_key(key).address
        self.settlement.mint(key, address, amount)
        self.settlement.approve(key, 2**256 - 1)

    def bond_all(self) -> None:
        for signer in self.signers:
            key = self.keys[signer.address]
            self.fund(key, MIN_BOND)
            self.settlement.bond(key, MIN_BOND)

    def header(
        self,
        batch_number: int,
        prev_root: bytes,
        new_root: bytes,
        withdrawals_root: bytes = ZERO_HASH,
        l1_consumed: int = 0,
        batch_data: bytes = b"intents",
    ) -> BatchHeader:
        return BatchHeader(
            batch_number, prev_root, new_root, withdrawals_root, l1_consumed, keccak256(batch_data)
        )

    def digest(self, header: BatchHeader) -> bytes:
        return header.digest(self.chain.chain_id, self.settlement.address)

    def commit(
        self,
        header: BatchHeader,
        certificate: bytes | None = None,
        batch_data: bytes = b"intents",
    ) -> TxReceipt:
        if certificate is None:
            certificate = certify(self.digest(header), self.addresses, self.signers)
        return self.settlement.commit_certified(
            self.operator.key,
            header.batch_number,
            header.prev_state_root,
            header.new_state_root,
            header.withdrawals_root,
            header.l1_messages_consumed,
            batch_data,
            certificate,
        )


def _deploy(chain: EthTesterChain, deployer: LocalAccount, **overrides: object) -> object:
    arguments: dict[str, object] = {
        "min_bond": MIN_BOND,
        "unbonding_period_s": UNBONDING_S,
        "reporter_share_bps": REPORTER_BPS,
        "insurance_account": deployer.address,
        "consensus_domain": DOMAIN,
    }
    arguments.update(overrides)
    members = arguments.pop("members", [deployer.address])
    return CommitteeSettlementClient.deploy_committee(
        chain,
        deployer.key,
        members,  # type: ignore[arg-type]
        FINALITY_BLOCKS,
        FORCED_DEADLINE_BLOCKS,
        GENESIS_ROOT,
        **arguments,  # type: ignore[arg-type]
    )


@pytest.fixture
def committee() -> Committee:
    chain = EthTesterChain()
    accounts = [Account.from_key(key) for key in chain.funded_keys]
    deployer, operator, alice, reporter, insurance = accounts[:5]
    member_keys = chain.funded_keys[5:10]
    signers = [Secp256k1Signer(key) for key in member_keys]
    settlement = CommitteeSettlementClient.deploy_committee(
        chain,
        deployer.key,
        [signer.address for signer in signers[:4]],
        FINALITY_BLOCKS,
        FORCED_DEADLINE_BLOCKS,
        GENESIS_ROOT,
        min_bond=MIN_BOND,
        unbonding_period_s=UNBONDING_S,
        reporter_share_bps=REPORTER_BPS,
        insurance_account=insurance.address,
        consensus_domain=DOMAIN,
    )
    keys = {signer.address: key for signer, key in zip(signers, member_keys, strict=True)}
    return Committee(
        chain,
        settlement,
        deployer,
        operator,
        alice,
        reporter,
        insurance,
        signers[:4],
        signers[4],
        keys,
    )


@pytest.fixture
def bonded(committee: Committee) -> Committee:
    committee.bond_all()
    return committee


def high_s_twin(signature: bytes) -> bytes:
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([55 - v])


# ---------------------------------------------------------------- deployment


def test_deployment_records_the_genesis_committee(committee: Committee) -> None:
    settlement = committee.settlement
    assert settlement.members() == committee.addresses
    assert settlement.quorum() == 3 and settlement.epoch() == 0
    assert settlement.consensus_domain() == DOMAIN
    # no single key: the sequencer slot names the contract itself
    assert settlement.sequencer_address() == settlement.address
    for address in committee.addresses:
        assert settlement.stake(address).status is CommitteeStatus.ACTIVE


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"members": []}, "InvalidCommittee"),
        ({"min_bond": 0}, "InvalidConfiguration"),
        ({"reporter_share_bps": 10_001}, "InvalidConfiguration"),
        ({"consensus_domain": b"x" * 256}, "InvalidConfiguration"),
        ({"insurance_account": "0x" + "00" * 20}, "ZeroAddress"),
        ({"members": ["0x" + "00" * 20]}, "ZeroAddress"),
        ({"members": [(i + 1).to_bytes(20, "big") for i in range(257)]}, "InvalidCommittee"),
    ],
)
def test_invalid_deployments(overrides: dict[str, object], error: str) -> None:
    chain = EthTesterChain()
    deployer = Account.from_key(chain.funded_keys[0])
    with reverts(error):
        _deploy(chain, deployer, **overrides)


def test_duplicate_genesis_member_is_refused() -> None:
    chain = EthTesterChain()
    deployer = Account.from_key(chain.funded_keys[0])
    with reverts("DuplicateMember"):
        _deploy(chain, deployer, members=[deployer.address, deployer.address])


# ---------------------------------------------------------------- certificates


def test_quorum_follows_n_minus_f() -> None:
    assert [quorum(n) for n in (1, 2, 3, 4, 5, 7, 10)] == [1, 2, 3, 3, 4, 5, 7]
    with pytest.raises(ValueError):
        quorum(0)


def test_certificate_packing_round_trips() -> None:
    signatures = {3: b"\x03" * 65, 0: b"\x00" * 65, 7: b"\x07" * 65}
    certificate = pack_certificate(signatures)
    assert certificate[:32] == (0b10001001).to_bytes(32, "big")
    assert certificate[32:] == b"\x00" * 65 + b"\x03" * 65 + b"\x07" * 65
    assert unpack_certificate(certificate) == signatures
    with pytest.raises(ValueError):
        unpack_certificate(certificate[:-1])
    with pytest.raises(ValueError):
        pack_certificate({256: b"\x00" * 65})


def test_off_chain_certificate_checks_agree_with_the_rules() -> None:
    signers = [Secp256k1Signer.from_seed(bytes([i])) for i in range(5)]
    members = [signer.address for signer in signers[:4]]
    digest = keccak256(b"header")
    certificate = certify(digest, members, signers[:4])
    assert verify_certificate(digest, members, certificate)
    assert not verify_certificate(keccak256(b"other"), members, certificate)
    assert not verify_certificate(digest, members, certify(digest, members, signers[:4], 2))
    assert not verify_certificate(digest, members[:2], certificate)  # index past the set
    assert not verify_certificate(digest, members, certificate[:-1])
    with pytest.raises(ValueError, match="not a member"):
        certify(digest, members, signers)
    with pytest.raises(ValueError, match="cannot make"):
        certify(digest, members, signers[:2])


def test_batches_wait_for_every_genesis_bond(committee: Committee) -> None:
    header = committee.header(1, GENESIS_ROOT, ROOT_1)
    for signer in committee.signers[:3]:
        key = committee.keys[signer.address]
        committee.fund(key, MIN_BOND)
        committee.settlement.bond(key, MIN_BOND)
    with reverts("CommitteeNotBonded"):
        committee.commit(header)
    last = committee.keys[committee.signers[3].address]
    committee.fund(last, MIN_BOND)
    committee.settlement.bond(last, MIN_BOND)
    committee.commit(header)
    assert committee.settlement.last_batch_number() == 1


def test_quorum_certified_batches_are_accepted(bonded: Committee) -> None:
    settlement = bonded.settlement
    first = bonded.header(1, GENESIS_ROOT, ROOT_1)
    certificate = certify(bonded.digest(first), bonded.addresses, bonded.signers)
    assert len(unpack_certificate(certificate)) == 3
    assert verify_certificate(bonded.digest(first), bonded.addresses, certificate)
    bonded.commit(first, certificate)
    # any quorum will do, and more than a quorum too
    second = bonded.header(2, ROOT_1, ROOT_2)
    digest = bonded.digest(second)
    bonded.commit(second, certify(digest, bonded.addresses, bonded.signers[1:]))
    third = bonded.header(3, ROOT_2, ROOT_1)
    bonded.commit(third, certify(bonded.digest(third), bonded.addresses, bonded.signers, 4))
    assert settlement.last_batch_number() == 3
    assert settlement.batch_state_root(2) == ROOT_2


def _signatures(bonded: Committee, header: BatchHeader, indexes: list[int]) -> dict[int, bytes]:
    digest = bonded.digest(header)
    return {index: bonded.signers[index].sign(digest) for index in indexes}


def test_too_few_signatures_are_refused(bonded: Committee) -> None:
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    with reverts("TooFewSignatures"):
        bonded.commit(header, pack_certificate(_signatures(bonded, header, [0, 3])))
    with reverts("TooFewSignatures"):
        bonded.commit(header, pack_certificate({}))
    assert bonded.settlement.last_batch_number() == 0


def test_duplicate_signer_is_refused(bonded: Committee) -> None:
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    signatures = _signatures(bonded, header, [0, 1])
    # member 0 signs again in member 2's slot
    signatures[2] = signatures[0]
    with reverts("DuplicateSigner"):
        bonded.commit(header, pack_certificate(signatures))


def test_non_member_signatures_are_refused(bonded: Committee) -> None:
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    signatures = _signatures(bonded, header, [0, 1])
    signatures[2] = bonded.candidate.sign(bonded.digest(header))  # bonded, but not a member
    with reverts("WrongSigner"):
        bonded.commit(header, pack_certificate(signatures))
    # a bit past the member count names no member at all
    signatures = _signatures(bonded, header, [0, 1, 2])
    signatures[4] = bonded.candidate.sign(bonded.digest(header))
    with reverts("SignerNotMember"):
        bonded.commit(header, pack_certificate(signatures))


def test_signatures_over_another_header_are_refused(bonded: Committee) -> None:
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    other = bonded.header(1, GENESIS_ROOT, ROOT_2)
    certificate = certify(bonded.digest(other), bonded.addresses, bonded.signers)
    with reverts("WrongSigner"):
        bonded.commit(header, certificate)


def test_wrong_previous_root_is_refused_even_when_certified(bonded: Committee) -> None:
    header = bonded.header(1, ROOT_2, ROOT_1)
    with reverts("PrevStateRootMismatch"):
        bonded.commit(header)
    with reverts("UnexpectedBatchNumber"):
        bonded.commit(bonded.header(2, GENESIS_ROOT, ROOT_1))


def test_malformed_certificates_are_refused(bonded: Committee) -> None:
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    signatures = _signatures(bonded, header, [0, 1, 2])
    good = pack_certificate(signatures)
    with reverts("MalformedCertificate"):
        bonded.commit(header, good[:31])
    with reverts("MalformedCertificate"):
        bonded.commit(header, good[:-1])  # one byte short of the bitmap's signatures
    with reverts("MalformedCertificate"):
        bonded.commit(header, good + b"\x00")  # trailing bytes
    with reverts("MalformedSignature"):
        bonded.commit(header, pack_certificate({**signatures, 1: high_s_twin(signatures[1])}))
    bad_v = signatures[2][:64] + b"\x01"
    with reverts("MalformedSignature"):
        bonded.commit(header, pack_certificate({**signatures, 2: bad_v}))
    unrecoverable = b"\x00" * 64 + b"\x1b"
    with reverts("MalformedSignature"):
        bonded.commit(header, pack_certificate({**signatures, 0: unrecoverable}))
    bonded.commit(header, good)
    assert bonded.settlement.last_batch_number() == 1


def test_certificate_check_costs_at_most_30k_gas_for_four_members(bonded: Committee) -> None:
    digest = bonded.digest(bonded.header(1, GENESIS_ROOT, ROOT_1))
    certificate = certify(digest, bonded.addresses, bonded.signers)
    function = bonded.settlement.contract.functions.verifyCertificate(digest, certificate)
    receipt = bonded.chain.transact(bonded.operator.key, function)
    data = bytes(bonded.chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    calldata_gas = 16 * (len(data) - data.count(0)) + 4 * data.count(0)
    assert int(receipt["gasUsed"]) - 21_000 - calldata_gas <= 30_000


def test_single_operator_signature_is_not_a_certificate(bonded: Committee) -> None:
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    with reverts("MalformedCertificate"):
        bonded.commit(header, bonded.signers[0].sign(bonded.digest(header)))


def test_certified_roots_pay_withdrawals_and_exits(bonded: Committee) -> None:
    settlement, alice = bonded.settlement, bonded.alice
    bonded.fund(alice.key, 1_000)
    settlement.deposit(alice.key, 1_000)
    withdrawal_leaves = [withdrawal_leaf(1, alice.address, 300)]
    state_leaves = [exit_leaf(alice.address, 700, b"\xaa" * 32)]
    bonded.commit(
        bonded.header(1, GENESIS_ROOT, merkle_root(state_leaves), merkle_root(withdrawal_leaves), 1)
    )
    bonded.chain.mine(FINALITY_BLOCKS)
    settlement.claim_withdrawal(
        bonded.reporter.key, 1, 1, alice.address, 300, merkle_proof(withdrawal_leaves, 0), 0
    )
    assert settlement.token_balance(alice.address) == 300

    # the committee ignores a forced request: anyone freezes, alice exits from the certified root
    index = settlement.force_request(alice.key, MessageKind.FORCED_WITHDRAWAL, 700)
    bonded.chain.mine(FORCED_DEADLINE_BLOCKS + 1)
    settlement.freeze(bonded.reporter.key, index)
    assert settlement.exit_batch_number() == 1
    settlement.exit(
        bonded.reporter.key, alice.address, 700, b"\xaa" * 32, merkle_proof(state_leaves, 0), 0
    )
    assert settlement.token_balance(alice.address) == 1_000
    # the bonds were never user collateral
    assert settlement.available_funds() == 0
    assert settlement.token_balance(settlement.address) == 4 * MIN_BOND


# ---------------------------------------------------------------- bonds and epochs


def test_bond_guards(committee: Committee) -> None:
    key = committee.keys[committee.candidate.address]
    committee.fund(key, 10 * MIN_BOND)
    with reverts("ZeroAmount"):
        committee.settlement.bond(key, 0)
    with reverts("BondTooSmall"):
        committee.settlement.bond(key, MIN_BOND - 1)
    committee.settlement.bond(key, MIN_BOND)
    committee.settlement.bond(key, 1)  # topping up above the minimum is fine
    stake = committee.settlement.stake(committee.candidate.address)
    assert (stake.bond, stake.status) == (MIN_BOND + 1, CommitteeStatus.BONDED)
    committee.settlement.unbond(key)
    with reverts("BondUnavailable"):
        committee.settlement.bond(key, MIN_BOND)


def test_unbond_and_withdraw_guards(bonded: Committee) -> None:
    settlement = bonded.settlement
    member_key = bonded.keys[bonded.addresses[0]]
    with reverts("StillActive"):
        settlement.unbond(member_key)
    with reverts("BondUnavailable"):
        settlement.withdraw_bond(member_key)
    with reverts("NotBonded"):
        settlement.unbond(bonded.alice.key)
    candidate_key = bonded.keys[bonded.candidate.address]
    bonded.fund(candidate_key, MIN_BOND)
    settlement.bond(candidate_key, MIN_BOND)
    settlement.unbond(candidate_key)
    with reverts("UnbondingNotOver"):
        settlement.withdraw_bond(candidate_key)
    bonded.chain.advance_time(UNBONDING_S)
    settlement.withdraw_bond(candidate_key)
    assert settlement.token_balance(Web3.to_checksum_address(bonded.candidate.address)) == MIN_BOND
    assert settlement.stake(bonded.candidate.address).status is CommitteeStatus.NONE


def _epoch_certificate(
    bonded: Committee, epoch: int, members: list[bytes], signers: list[Secp256k1Signer]
) -> bytes:
    digest = epoch_digest(bonded.chain.chain_id, bonded.settlement.address, epoch, members)
    return certify(digest, bonded.settlement.members(), signers)


def test_epoch_change_swaps_a_member_and_unbonds_the_leaver(bonded: Committee) -> None:
    settlement = bonded.settlement
    candidate_key = bonded.keys[bonded.candidate.address]
    bonded.fund(candidate_key, MIN_BOND)
    settlement.bond(candidate_key, MIN_BOND)
    leaver = bonded.signers[1]
    new_members = [bonded.addresses[0], bonded.candidate.address, *bonded.addresses[2:]]
    certificate = _epoch_certificate(bonded, 1, new_members, bonded.signers)
    settlement.change_epoch(bonded.operator.key, 1, new_members, certificate)
    assert settlement.epoch() == 1 and settlement.members() == new_members
    leaver_stake = settlement.stake(leaver.address)
    assert leaver_stake.status is CommitteeStatus.UNBONDING

    # the old set no longer certifies; the new one does
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    old = certify(bonded.digest(header), bonded.addresses, bonded.signers)
    with reverts("WrongSigner"):
        bonded.commit(header, old)
    new_signers = [bonded.signers[0], bonded.candidate, *bonded.signers[2:]]
    bonded.commit(header, certify(bonded.digest(header), new_members, new_signers))

    leaver_key = bonded.keys[leaver.address]
    with reverts("UnbondingNotOver"):
        settlement.withdraw_bond(leaver_key)
    bonded.chain.advance_time(UNBONDING_S)
    settlement.withdraw_bond(leaver_key)
    assert settlement.token_balance(Web3.to_checksum_address(leaver.address)) == MIN_BOND


def test_epoch_change_guards(bonded: Committee) -> None:
    settlement = bonded.settlement
    send = bonded.operator.key
    members = bonded.addresses[:3]
    with reverts("UnexpectedEpoch"):
        settlement.change_epoch(
            send, 2, members, _epoch_certificate(bonded, 2, members, bonded.signers)
        )
    with reverts("InvalidCommittee"):
        settlement.change_epoch(send, 1, [], _epoch_certificate(bonded, 1, [], bonded.signers))
    # certified by too few current members
    digest = epoch_digest(bonded.chain.chain_id, settlement.address, 1, members)
    two = certify(digest, bonded.addresses, bonded.signers, 2)
    with reverts("TooFewSignatures"):
        settlement.change_epoch(send, 1, members, two)
    # a certificate over another member list
    other = _epoch_certificate(bonded, 1, bonded.addresses[1:], bonded.signers)
    with reverts("WrongSigner"):
        settlement.change_epoch(send, 1, members, other)
    unbonded = [*members, bonded.candidate.address]
    with reverts("NotBonded"):
        settlement.change_epoch(
            send, 1, unbonded, _epoch_certificate(bonded, 1, unbonded, bonded.signers)
        )
    twice = [*members, members[0]]
    with reverts("DuplicateMember"):
        settlement.change_epoch(
            send, 1, twice, _epoch_certificate(bonded, 1, twice, bonded.signers)
        )
    assert settlement.epoch() == 0 and settlement.members() == bonded.addresses


def test_epoch_change_waits_for_genesis_bonds(committee: Committee) -> None:
    members = committee.addresses
    with reverts("CommitteeNotBonded"):
        committee.settlement.change_epoch(committee.operator.key, 1, members, pack_certificate({}))


# ---------------------------------------------------------------- slashing


def test_batch_equivocation_slashes_and_pays_the_reporter(bonded: Committee) -> None:
    settlement, chain = bonded.settlement, bonded.chain
    culprit = bonded.signers[2]
    header_a = bonded.header(1, GENESIS_ROOT, ROOT_1)
    header_b = replace(header_a, new_state_root=ROOT_2)
    # the honest members certified header_a by index before the slash
    honest = [s for s in bonded.signers if s is not culprit]
    signed_before = certify(bonded.digest(header_a), bonded.addresses, honest)
    with_culprit = certify(bonded.digest(header_a), bonded.addresses, bonded.signers[1:])
    evidence = batch_equivocation(
        chain.chain_id,
        settlement.address,
        culprit.address,
        header_a,
        culprit.sign(bonded.digest(header_a)),
        header_b,
        culprit.sign(bonded.digest(header_b)),
    )
    settlement.slash_batch_equivocation(bonded.reporter.key, evidence)

    reward = MIN_BOND * REPORTER_BPS // 10_000
    assert settlement.token_balance(bonded.reporter.address) == reward
    stake = settlement.stake(culprit.address)
    assert (stake.bond, stake.status) == (0, CommitteeStatus.SLASHED)
    # the rest is a deposit to the insurance account, which the engine will credit
    (message,) = settlement.l1_messages()
    assert (message.kind, message.account, message.amount) == (
        MessageKind.DEPOSIT,
        bonded.insurance.address,
        MIN_BOND - reward,
    )
    assert settlement.available_funds() == MIN_BOND - reward
    # its slot is emptied in place: nobody else's index moves, and the quorum counts the
    # three members still seated
    remaining = [EMPTY_SLOT if a == culprit.address else a for a in bonded.addresses]
    assert settlement.members() == remaining
    assert settlement.quorum() == 3
    assert settlement.contract.functions.activeMemberCount().call() == 3
    assert settlement.contract.functions.memberCount().call() == 4
    with reverts("NotSlashable"):
        settlement.slash_batch_equivocation(bonded.reporter.key, evidence)
    culprit_key = bonded.keys[culprit.address]
    bonded.fund(culprit_key, MIN_BOND)
    with reverts("BondUnavailable"):
        settlement.bond(culprit_key, MIN_BOND)
    # a certificate with the slashed member's bit is refused, even with a quorum besides it
    with reverts("EmptySlot") as refused:
        bonded.commit(header_a, with_culprit)
    assert refused.value.arguments == (2,)
    assert not verify_certificate(bonded.digest(header_a), remaining, with_culprit)
    with pytest.raises(ValueError, match="not a member"):
        certify(bonded.digest(header_a), remaining, bonded.signers)
    # the certificate signed before the slash still verifies and lands
    assert verify_certificate(bonded.digest(header_a), remaining, signed_before)
    assert certify(bonded.digest(header_a), remaining, honest) == signed_before
    bonded.commit(header_a, signed_before)
    assert settlement.last_batch_number() == 1


def test_a_slashed_slot_stays_empty_until_the_next_epoch(bonded: Committee) -> None:
    settlement, chain = bonded.settlement, bonded.chain
    culprit = bonded.signers[0]
    view, block_a, block_b = 9, b"\x0a" * 32, b"\x0b" * 32
    settlement.slash_vote_equivocation(
        bonded.reporter.key,
        vote_equivocation(
            DOMAIN,
            culprit.address,
            view,
            block_a,
            culprit.sign(vote_digest(DOMAIN, view, block_a)),
            block_b,
            culprit.sign(vote_digest(DOMAIN, view, block_b)),
        ),
    )
    slotted = [EMPTY_SLOT, *bonded.addresses[1:]]
    assert settlement.members() == slotted
    # a second slash leaves two seated of four slots: quorum(2) = 2
    second = bonded.signers[3]
    settlement.slash_vote_equivocation(
        bonded.reporter.key,
        vote_equivocation(
            DOMAIN,
            second.address,
            view,
            block_a,
            second.sign(vote_digest(DOMAIN, view, block_a)),
            block_b,
            second.sign(vote_digest(DOMAIN, view, block_b)),
        ),
    )
    slotted[3] = EMPTY_SLOT
    assert settlement.members() == slotted and settlement.quorum() == 2
    # the next epoch replaces the set; the slashed members stay slashed, none unbonds
    candidate_key = bonded.keys[bonded.candidate.address]
    bonded.fund(candidate_key, MIN_BOND)
    settlement.bond(candidate_key, MIN_BOND)
    new_members = [*bonded.addresses[1:3], bonded.candidate.address]
    digest = epoch_digest(chain.chain_id, settlement.address, 1, new_members)
    certificate = certify(digest, slotted, bonded.signers[1:3])
    settlement.change_epoch(bonded.operator.key, 1, new_members, certificate)
    assert settlement.members() == new_members and settlement.quorum() == 3
    for slashed in (culprit, second):
        assert settlement.stake(slashed.address).status is CommitteeStatus.SLASHED
    for kept in bonded.signers[1:3]:
        assert settlement.stake(kept.address).status is CommitteeStatus.ACTIVE


def test_batch_evidence_guards(bonded: Committee) -> None:
    settlement, chain = bonded.settlement, bonded.chain
    culprit, other = bonded.signers[0], bonded.signers[1]
    header_a = bonded.header(1, GENESIS_ROOT, ROOT_1)
    header_b = replace(header_a, new_state_root=ROOT_2)
    header_c = replace(header_a, batch_number=2)
    sign = culprit.sign

    def submit(a: BatchHeader, sig_a: bytes, b: BatchHeader, sig_b: bytes) -> None:
        function = settlement.contract.functions.slashBatchEquivocation(
            Web3.to_checksum_address(culprit.address), a.as_tuple(), sig_a, b.as_tuple(), sig_b
        )
        chain.transact(bonded.reporter.key, function)

    digest_a, digest_b = bonded.digest(header_a), bonded.digest(header_b)
    with reverts("NotEquivocation"):
        submit(header_a, sign(digest_a), header_a, sign(digest_a))
    with reverts("NotEquivocation"):
        submit(header_a, sign(digest_a), header_c, sign(bonded.digest(header_c)))
    with reverts("EvidenceSignatureInvalid"):
        submit(header_a, sign(digest_a), header_b, other.sign(digest_b))
    with reverts("EvidenceSignatureInvalid"):
        submit(header_a, sign(digest_a), header_b, high_s_twin(sign(digest_b)))
    with pytest.raises(ValueError):
        batch_equivocation(
            chain.chain_id, settlement.address, culprit.address,
            header_a, sign(digest_a), header_b, other.sign(digest_b),
        )  # fmt: skip
    assert settlement.stake(culprit.address).status is CommitteeStatus.ACTIVE


@pytest.mark.parametrize("view", [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32, 2**64 - 1])
def test_contract_vote_digest_is_the_consensus_encoding(committee: Committee, view: int) -> None:
    block_hash = keccak256(view.to_bytes(8, "big"))
    on_chain = committee.settlement.contract.functions.voteDigest(view, block_hash).call()
    assert bytes(on_chain) == vote_digest(DOMAIN, view, block_hash)


@pytest.mark.parametrize("view", [0, 200, 2**40])
def test_contract_proposal_digest_is_the_consensus_encoding(
    committee: Committee, view: int
) -> None:
    block_hash = keccak256(b"proposal" + view.to_bytes(8, "big"))
    on_chain = committee.settlement.contract.functions.proposalDigest(view, block_hash).call()
    assert bytes(on_chain) == proposal_digest(DOMAIN, view, block_hash)


def test_proposal_equivocation_slashes_the_leader(bonded: Committee) -> None:
    settlement = bonded.settlement
    leader = bonded.signers[1]
    view, block_a, block_b = 5, b"\xa1" * 32, b"\xb2" * 32
    proposal_a = leader.sign(proposal_digest(DOMAIN, view, block_a))
    proposal_b = leader.sign(proposal_digest(DOMAIN, view, block_b))
    functions = settlement.contract.functions
    member = Web3.to_checksum_address(leader.address)
    key = bonded.reporter.key
    with reverts("NotEquivocation"):
        bonded.chain.transact(
            key,
            functions.slashProposalEquivocation(
                member, view, block_a, proposal_a, block_a, proposal_a
            ),
        )
    # a vote is not a proposal: the kinds never stand in for each other
    vote_b = leader.sign(vote_digest(DOMAIN, view, block_b))
    with reverts("EvidenceSignatureInvalid"):
        bonded.chain.transact(
            key,
            functions.slashProposalEquivocation(member, view, block_a, proposal_a, block_b, vote_b),
        )
    with pytest.raises(ValueError):
        proposal_equivocation(DOMAIN, leader.address, view, block_a, proposal_a, block_b, vote_b)
    evidence = proposal_equivocation(
        DOMAIN, leader.address, view, block_a, proposal_a, block_b, proposal_b
    )
    settlement.slash_proposal_equivocation(key, evidence)
    assert settlement.stake(leader.address).status is CommitteeStatus.SLASHED
    assert settlement.members() == [
        EMPTY_SLOT if a == leader.address else a for a in bonded.addresses
    ]
    assert settlement.token_balance(bonded.reporter.address) == MIN_BOND * REPORTER_BPS // 10_000


def test_vote_equivocation_slashes_an_unbonding_member(bonded: Committee) -> None:
    settlement = bonded.settlement
    culprit = bonded.signers[3]
    # the culprit leaves by an epoch change; its bond stays slashable while it unbonds
    members = bonded.addresses[:3]
    settlement.change_epoch(
        bonded.operator.key, 1, members, _epoch_certificate(bonded, 1, members, bonded.signers)
    )
    assert settlement.stake(culprit.address).status is CommitteeStatus.UNBONDING
    view, block_a, block_b = 41, b"\xa1" * 32, b"\xb2" * 32
    evidence = vote_equivocation(
        DOMAIN,
        culprit.address,
        view,
        block_a,
        culprit.sign(vote_digest(DOMAIN, view, block_a)),
        block_b,
        culprit.sign(vote_digest(DOMAIN, view, block_b)),
    )
    settlement.slash_vote_equivocation(bonded.reporter.key, evidence)
    assert settlement.stake(culprit.address).status is CommitteeStatus.SLASHED
    assert settlement.token_balance(bonded.reporter.address) == MIN_BOND * REPORTER_BPS // 10_000
    assert settlement.members() == members  # it had already left the set
    bonded.chain.advance_time(UNBONDING_S)
    with reverts("BondUnavailable"):
        settlement.withdraw_bond(bonded.keys[culprit.address])


def test_vote_evidence_guards(bonded: Committee) -> None:
    settlement = bonded.settlement
    culprit = bonded.signers[0]
    view, block_a, block_b = 7, b"\xa1" * 32, b"\xb2" * 32
    vote_a = culprit.sign(vote_digest(DOMAIN, view, block_a))
    vote_b = culprit.sign(vote_digest(DOMAIN, view, block_b))
    functions = settlement.contract.functions
    member = Web3.to_checksum_address(culprit.address)
    key = bonded.reporter.key
    with reverts("NotEquivocation"):
        bonded.chain.transact(
            key, functions.slashVoteEquivocation(member, view, block_a, vote_a, block_a, vote_a)
        )
    # a vote of another view is no evidence for this one
    later = culprit.sign(vote_digest(DOMAIN, view + 1, block_b))
    with reverts("EvidenceSignatureInvalid"):
        bonded.chain.transact(
            key, functions.slashVoteEquivocation(member, view, block_a, vote_a, block_b, later)
        )
    # votes signed in another committee's domain
    foreign = culprit.sign(vote_digest(b"another-committee", view, block_b))
    with reverts("EvidenceSignatureInvalid"):
        bonded.chain.transact(
            key, functions.slashVoteEquivocation(member, view, block_a, vote_a, block_b, foreign)
        )
    # a bonded outsider is not slashable for votes it had no standing to cast
    outsider = bonded.candidate
    outsider_key = bonded.keys[outsider.address]
    bonded.fund(outsider_key, MIN_BOND)
    settlement.bond(outsider_key, MIN_BOND)
    with reverts("NotSlashable"):
        settlement.slash_vote_equivocation(
            key,
            vote_equivocation(
                DOMAIN,
                outsider.address,
                view,
                block_a,
                outsider.sign(vote_digest(DOMAIN, view, block_a)),
                block_b,
                outsider.sign(vote_digest(DOMAIN, view, block_b)),
            ),
        )
    with pytest.raises(ValueError):
        vote_equivocation(DOMAIN, culprit.address, view, block_a, vote_a, block_b, later)
    settlement.slash_vote_equivocation(
        key, vote_equivocation(DOMAIN, culprit.address, view, block_a, vote_a, block_b, vote_b)
    )
    assert settlement.members() == [EMPTY_SLOT, *bonded.addresses[1:]]


def test_slashing_down_to_an_empty_committee_certifies_nothing() -> None:
    chain = EthTesterChain()
    deployer, operator, reporter = (Account.from_key(k) for k in chain.funded_keys[:3])
    solo = Secp256k1Signer(chain.funded_keys[3])
    settlement = _deploy(chain, deployer, members=["0x" + solo.address.hex()])
    assert isinstance(settlement, CommitteeSettlementClient)
    solo_key = chain.funded_keys[3]
    settlement.mint(solo_key, "0x" + solo.address.hex(), MIN_BOND)
    settlement.approve(solo_key, MIN_BOND)
    settlement.bond(solo_key, MIN_BOND)
    view, block_a, block_b = 3, b"\x0a" * 32, b"\x0b" * 32
    settlement.slash_vote_equivocation(
        reporter.key,
        vote_equivocation(
            DOMAIN,
            solo.address,
            view,
            block_a,
            solo.sign(vote_digest(DOMAIN, view, block_a)),
            block_b,
            solo.sign(vote_digest(DOMAIN, view, block_b)),
        ),
    )
    assert settlement.members() == [EMPTY_SLOT] and settlement.quorum() == 0
    with reverts("InvalidCommittee"):
        settlement.commit_certified(
            operator.key, 1, GENESIS_ROOT, ROOT_1, ZERO_HASH, 0, b"", pack_certificate({})
        )


def test_single_operator_contract_is_unchanged(committee: Committee) -> None:
    # the base contract still trusts exactly one key and knows nothing of certificates
    chain = committee.chain
    sequencer = committee.signers[0]
    single = SettlementClient.deploy(
        chain,
        committee.deployer.key,
        "0x" + sequencer.address.hex(),
        FINALITY_BLOCKS,
        FORCED_DEADLINE_BLOCKS,
        GENESIS_ROOT,
    )
    single.commit_batch(
        committee.operator.key, committee.keys[sequencer.address], 1, GENESIS_ROOT, ROOT_1,
        ZERO_HASH, 0, b"intents",
    )  # fmt: skip
    assert single.last_batch_number() == 1
    assert "bond" not in {item.get("name") for item in single.contract.abi}


def test_no_epoch_change_after_a_freeze(bonded: Committee) -> None:
    settlement = bonded.settlement
    bonded.fund(bonded.alice.key, 10)
    index = settlement.force_request(bonded.alice.key, MessageKind.FORCED_CANCEL_ALL)
    bonded.chain.mine(FORCED_DEADLINE_BLOCKS + 1)
    settlement.freeze(bonded.reporter.key, index)
    members = bonded.addresses[:3]
    with reverts("ContractFrozen"):
        settlement.change_epoch(
            bonded.operator.key, 1, members, _epoch_certificate(bonded, 1, members, bonded.signers)
        )
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    with reverts("ContractFrozen"):
        bonded.commit(header)


def test_exit_tool_reads_certified_batches_with_the_base_client(bonded: Committee) -> None:
    # the exit tool decodes commitBatch calldata through SettlementClient; the committee
    # contract keeps that ABI, so a certified batch's data is found the same way
    header = bonded.header(1, GENESIS_ROOT, ROOT_1)
    certificate = certify(bonded.digest(header), bonded.addresses, bonded.signers)
    receipt = bonded.commit(header, certificate)
    base = SettlementClient.at(bonded.chain, bonded.settlement.address)
    (event,) = base.batch_commits()[1:]
    call = base.commit_batch_call(event.tx_hash)
    assert (call.batch_number, call.new_state_root, call.batch_data) == (1, ROOT_1, b"intents")
    assert call.signature == certificate
    assert event.tx_hash == bytes(receipt["transactionHash"])
