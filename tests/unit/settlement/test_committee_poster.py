"""Committee posting on the real CommitteeSettlement contract (py-evm): four member posters
in one process exchange signatures through plain callables, as the runtime's channel would.

Each member cuts the same batches (here built by hand), signs its header, and the batch lands
once a quorum (3 of 4) signed; with f + 1 members alive nothing lands; a forged signature is
refused; a dead designated poster only delays the batch by a grace period; a member never
signs two headers for one batch number, even after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hexbytes import HexBytes

from asyncdex.commitment.merkle import ZERO_HASH
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.consensus.messages import vote_digest
from asyncdex.settlement.batch import CutBatch
from asyncdex.settlement.certificate import (
    unpack_certificate,
    verify_certificate,
    vote_equivocation,
)
from asyncdex.settlement.chain import (
    BatchCommit,
    CommitteeSettlementClient,
    CommitteeStatus,
    EthTesterChain,
)
from asyncdex.settlement.committee_poster import (
    CommitteePoster,
    decode_signature,
    encode_signature,
    header_of,
)
from asyncdex.settlement.header_guard import ConflictingHeader, SignedHeaderLog
from asyncdex.settlement.poster import PosterHalted
from asyncdex.types.hashing import keccak256

GENESIS_ROOT = b"\x01" * 32
MIN_BOND = 1_000
GRACE_S = 5.0


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def root(label: int) -> bytes:
    return keccak256(b"root" + label.to_bytes(8, "big"))


def cut_batch(number: int, data: bytes = b"") -> CutBatch:
    """Batch ``number`` as every honest member cuts it (roots chain from the genesis root)."""
    return CutBatch(
        number=number,
        first_seq=10 * number - 9,
        last_seq=10 * number,
        first_timestamp=1_000 * number,
        last_timestamp=1_000 * number + 999,
        prev_state_root=GENESIS_ROOT if number == 1 else root(number - 1),
        state_root=root(number),
        withdrawals_root=ZERO_HASH,
        l1_consumed=0,
        data=data or f"batch {number}".encode(),
        withdrawals=(),
    )


@dataclass
class Network:
    """Four members; ``alive`` ones send and receive, the others are dead processes."""

    chain: EthTesterChain
    client: CommitteeSettlementClient
    signers: list[Secp256k1Signer]
    keys: list[bytes]
    data_dir: Path
    now: list[float] = field(default_factory=lambda: [1_000.0])
    posters: dict[int, CommitteePoster] = field(default_factory=dict)

    def start(self, index: int) -> CommitteePoster:
        poster = CommitteePoster(
            self.client,
            self.signers[index],
            self.client.members(),
            partial(self.deliver, index),
            SignedHeaderLog(self.data_dir / f"member-{index}" / "signed-headers"),
            self.keys[index],
            grace_s=GRACE_S,
            genesis_root=GENESIS_ROOT,
            clock=lambda: self.now[0],
        )
        self.posters[index] = poster
        return poster

    def deliver(self, sender: int, payload: bytes) -> None:
        for index, poster in self.posters.items():
            if index != sender:
                poster.on_signature(payload)

    def cut(self, batch: CutBatch) -> None:
        for poster in self.posters.values():
            poster.enqueue(batch)

    def run_all(self) -> None:
        for poster in self.posters.values():
            run(poster.run_once())

    def commits(self) -> list[BatchCommit]:
        """Batches committed after the genesis root (batch 0, set at deployment)."""
        return [c for c in self.client.batch_commits() if c.batch_number > 0]

    def sender_of(self, commit: BatchCommit) -> bytes:
        transaction = self.chain.w3.eth.get_transaction(HexBytes(commit.tx_hash))
        return bytes.fromhex(transaction["from"][2:])

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds


@pytest.fixture
def network(tmp_path: Path) -> Network:
    return make_network(tmp_path)


def make_network(data_dir: Path, bonded: range = range(4)) -> Network:
    """Four members of a fresh committee contract; those in ``bonded`` have bonded."""
    chain = EthTesterChain()
    keys = list(chain.funded_keys[5:9])
    signers = [Secp256k1Signer(key) for key in keys]
    client = CommitteeSettlementClient.deploy_committee(
        chain,
        chain.funded_keys[0],
        [signer.address for signer in signers],
        5,
        10,
        GENESIS_ROOT,
        min_bond=MIN_BOND,
        unbonding_period_s=3_600,
        reporter_share_bps=2_500,
        insurance_account="0x" + "ee" * 20,
        consensus_domain=b"asyncdex/consensus/test-committee",
    )
    for index in bonded:
        bond(client, keys[index])
    return Network(chain, client, signers, keys, data_dir)


def bond(client: CommitteeSettlementClient, key: bytes) -> None:
    address = Account.from_key(key).address
    client.mint(key, address, MIN_BOND)
    client.approve(key, MIN_BOND)
    client.bond(key, MIN_BOND)


def test_four_members_certify_and_the_designated_member_posts(network: Network) -> None:
    posters = [network.start(index) for index in range(4)]
    batch = cut_batch(1)
    network.cut(batch)
    members = network.client.members()
    for poster in posters:
        certificate = poster.certificate(1)
        assert certificate is not None
        assert len(unpack_certificate(certificate)) == 3
        digest = header_of(batch).digest(network.chain.chain_id, network.client.address)
        assert verify_certificate(digest, members, certificate)

    network.run_all()

    assert network.client.last_batch_number() == 1
    assert network.client.batch_state_root(1) == batch.state_root
    commits = network.commits()
    assert len(commits) == 1
    designated = 1 % 4
    assert network.sender_of(commits[0]) == network.signers[designated].address
    network.run_all()  # everyone reads the chain and sees it committed
    assert all(poster.committed_number == 1 for poster in posters)
    assert all(poster.halted is None for poster in posters)

    network.cut(cut_batch(2))  # the next batch follows, posted by member 2
    network.run_all()
    assert network.client.last_batch_number() == 2


def test_with_only_f_plus_one_members_alive_nothing_is_posted(network: Network) -> None:
    posters = [network.start(index) for index in (1, 2)]
    network.cut(cut_batch(1))
    for _ in range(3):
        network.run_all()
        network.advance(10 * GRACE_S)
    assert all(poster.certificate(1) is None for poster in posters)
    assert network.client.last_batch_number() == 0
    assert network.commits() == []


def test_a_dead_designated_poster_delays_the_batch_by_one_grace_period(network: Network) -> None:
    # batch 1's designated poster is member 1; members 0, 2 and 3 are a quorum without it
    posters = {index: network.start(index) for index in (0, 2, 3)}
    network.cut(cut_batch(1))
    assert all(poster.certificate(1) is not None for poster in posters.values())

    network.run_all()
    assert network.client.last_batch_number() == 0  # nobody's turn yet

    network.advance(GRACE_S)
    network.run_all()  # member 2 is next after member 1
    assert network.client.last_batch_number() == 1
    commits = network.commits()
    assert network.sender_of(commits[0]) == network.signers[2].address

    network.advance(3 * GRACE_S)  # member 3's and member 0's turns come, after the chain read
    network.run_all()
    assert len(network.commits()) == 1  # no duplicate was sent
    assert all(p.committed_number == 1 and p.halted is None for p in posters.values())


def test_invalid_signatures_are_refused_counted_and_never_stored(network: Network) -> None:
    poster = network.start(0)
    batch = cut_batch(1)
    header = header_of(batch)
    digest = header.digest(network.chain.chain_id, network.client.address)
    outsider = Secp256k1Signer.from_seed(b"outsider")
    member_2 = network.signers[2]

    # a non-member claiming member 2's slot, a member signing under another's index, a
    # signature past the member count, and bytes that are no payload at all
    assert not poster.on_signature(encode_signature(header, 2, outsider.sign(digest)))
    assert not poster.on_signature(encode_signature(header, 3, member_2.sign(digest)))
    assert not poster.on_signature(encode_signature(header, 7, member_2.sign(digest)))
    assert not poster.on_signature(b"\x93\x01\x02\x03")
    assert not poster.on_signature(b"")
    assert poster.refused == {"wrong signer": 2, "not a member": 1, "malformed": 2}

    poster.enqueue(batch)
    assert poster.certificate(1) is None  # only its own valid signature is held
    assert poster.on_signature(encode_signature(header, 2, member_2.sign(digest)))
    assert not poster.on_signature(encode_signature(header, 2, member_2.sign(digest)))  # again
    assert poster.certificate(1) is None
    assert poster.on_signature(encode_signature(header, 3, network.signers[3].sign(digest)))
    certificate = poster.certificate(1)
    assert certificate is not None and sorted(unpack_certificate(certificate)) == [0, 2, 3]


def test_a_member_signing_two_headers_becomes_slashing_evidence(network: Network) -> None:
    poster = network.start(0)
    header = header_of(cut_batch(1))
    forked = replace(header, new_state_root=b"\xbb" * 32)
    chain_id, address = network.chain.chain_id, network.client.address
    cheat = network.signers[3]
    assert poster.on_signature(
        encode_signature(header, 3, cheat.sign(header.digest(chain_id, address)))
    )
    assert not poster.on_signature(
        encode_signature(forked, 3, cheat.sign(forked.digest(chain_id, address)))
    )
    third = replace(header, new_state_root=b"\xcc" * 32)
    assert not poster.on_signature(
        encode_signature(third, 3, cheat.sign(third.digest(chain_id, address)))
    )
    assert poster.refused["equivocation"] == 2
    [evidence] = poster.evidence  # one piece per member is enough to take its bond
    network.client.slash_batch_equivocation(network.keys[0], evidence)
    assert network.client.stake(cheat.address).status is CommitteeStatus.SLASHED


def test_a_member_never_signs_two_headers_for_one_batch_across_restarts(
    network: Network,
) -> None:
    sent: list[bytes] = []
    first = network.start(0)
    first.broadcast = sent.append
    first.enqueue(cut_batch(1))
    assert len(sent) == 1
    first.signed_log.close()

    # restarted with a divergent execution: the same batch number, another root
    restarted = network.start(0)
    restarted.broadcast = sent.append
    restarted.enqueue(replace(cut_batch(1), state_root=b"\xcc" * 32))
    assert len(sent) == 1  # nothing signed
    assert restarted.halted is not None and "already signed" in restarted.halted.reason
    with pytest.raises(Exception, match="already signed"):
        run(restarted.run_once())

    # the same header again (a replay after a restart) is signed again, identically
    again = network.start(0)
    again.broadcast = sent.append
    again.enqueue(cut_batch(1))
    assert len(sent) == 2 and decode_signature(sent[1]) == decode_signature(sent[0])


def test_the_signed_header_log_survives_a_torn_tail_and_refuses_a_damaged_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "signed-headers"
    log = SignedHeaderLog(path)
    for number in (1, 2, 3):
        log.check_and_record(number, bytes([number]) * 32)
    log.close()
    data = bytearray(path.read_bytes())
    data[44 + 10] ^= 0xFF  # damage batch 2's record
    path.write_bytes(bytes(data) + b"\x00" * 17)  # and a torn write after batch 3

    reopened = SignedHeaderLog(path)
    assert reopened.damaged == 1 and path.stat().st_size == 3 * 44
    assert reopened.check(1, b"\x01" * 32) and reopened.check(3, b"\x03" * 32)
    with pytest.raises(ConflictingHeader):
        reopened.check(2, b"\x02" * 32)  # its record is unreadable: refused, not guessed
    with pytest.raises(ConflictingHeader):
        reopened.check_and_record(3, b"\x33" * 32)
    reopened.check_and_record(4, b"\x04" * 32)
    reopened.close()
    assert SignedHeaderLog(path).signed[4] == b"\x04" * 32


def test_a_member_that_missed_the_signatures_gets_them_again_and_posts(
    network: Network,
) -> None:
    # batch 1's designated poster, member 1, is down while the others sign
    others = {index: network.start(index) for index in (0, 2, 3)}
    network.cut(cut_batch(1))
    late = network.start(1)  # back up, after the broadcasts went out
    late.enqueue(cut_batch(1))
    assert late.certificate(1) is None

    network.advance(2.0)  # the others' re-broadcast period, before member 2's turn
    for index in (0, 2, 3):
        run(others[index].run_once())
    assert late.certificate(1) is not None and network.client.last_batch_number() == 0
    run(late.run_once())  # its turn as the designated poster
    assert network.client.last_batch_number() == 1
    [commit] = network.commits()
    assert network.sender_of(commit) == network.signers[1].address
    network.run_all()
    assert all(p.committed_number == 1 for p in [*others.values(), late])


def test_a_slash_before_posting_rebuilds_the_certificate_without_the_empty_slot(
    network: Network,
) -> None:
    posters = [network.start(index) for index in range(4)]
    batch = cut_batch(1)
    network.cut(batch)
    assert sorted(unpack_certificate(posters[1].certificate(1) or b"")) == [0, 1, 2]
    # member 2 is slashed for a double vote after the certificates formed
    culprit = network.signers[2]
    domain = network.client.consensus_domain()
    view, block_a, block_b = 5, b"\x0a" * 32, b"\x0b" * 32
    network.client.slash_vote_equivocation(
        network.keys[0],
        vote_equivocation(
            domain,
            culprit.address,
            view,
            block_a,
            culprit.sign(vote_digest(domain, view, block_a)),
            block_b,
            culprit.sign(vote_digest(domain, view, block_b)),
        ),
    )

    network.run_all()  # the designated poster's estimate reverts EmptySlot(2)
    assert network.client.last_batch_number() == 0
    network.run_all()  # it re-reads the set and posts a certificate of members 0, 1, 3
    assert network.client.last_batch_number() == 1
    assert posters[1].halted is None
    digest = header_of(batch).digest(network.chain.chain_id, network.client.address)
    [commit] = network.commits()
    certificate = network.client.commit_batch_call(commit.tx_hash).signature
    assert sorted(unpack_certificate(certificate)) == [0, 1, 3]
    assert verify_certificate(digest, network.client.members(), certificate)

    # the slashed member, once it re-reads the set, stops
    posters[2]._members_stale = True
    with pytest.raises(PosterHalted, match="left the committee"):
        run(posters[2].run_once())
    assert posters[2].halted is not None


def test_a_committee_not_yet_bonded_delays_posting_without_halting(tmp_path: Path) -> None:
    network = make_network(tmp_path, bonded=range(3))
    posters = [network.start(index) for index in range(4)]
    network.cut(cut_batch(1))
    with pytest.raises(Exception, match="CommitteeNotBonded"):
        run(posters[1].run_once())
    assert posters[1].halted is None and network.client.last_batch_number() == 0
    bond(network.client, network.keys[3])
    network.run_all()
    assert network.client.last_batch_number() == 1
