"""One replica's handlers and a hand-driven committee: each rule, each refusal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from asyncdex.consensus import (
    Block,
    Broadcast,
    ForwardItem,
    Proposal,
    QuorumCertificate,
    Replica,
    ReplicaConfig,
    SafetyState,
    Send,
    TimeoutCertificate,
    Vote,
)
from asyncdex.consensus.messages import GENESIS_QC, timeout_digest, vote_digest
from asyncdex.consensus.replica import Commit, ReportEquivocation

from .harness import CONFIG, VERIFIER, Network, signers

SIGNERS = signers(4)
NET = Network(4)
COMMITTEE = NET.committee
DOMAIN = COMMITTEE.domain
ME = 0  # leads views 4, 8, ...: the tests below mostly speak to it as a follower


def fresh() -> Replica:
    return Replica(COMMITTEE, ME, SIGNERS[ME], VERIFIER, CONFIG)


def qc_for(block: Block, voters: tuple[int, ...] = (0, 1, 2)) -> QuorumCertificate:
    digest = vote_digest(DOMAIN, block.view, block.hash)
    return QuorumCertificate(
        block.view, block.hash, tuple((i, SIGNERS[i].sign(digest)) for i in voters)
    )


def tc_for(view: int, voters: tuple[int, ...] = (0, 1, 2)) -> TimeoutCertificate:
    digest = timeout_digest(DOMAIN, view)
    return TimeoutCertificate(view, tuple((i, SIGNERS[i].sign(digest)) for i in voters))


def propose(block: Block, tc: TimeoutCertificate | None = None) -> Proposal:
    proposal = Proposal(block, tc, block.proposer)
    return replace(
        proposal, signature=SIGNERS[block.proposer].sign(proposal.signing_digest(DOMAIN))
    )


def make_block(
    view: int, justify: QuorumCertificate, parent: Block | None, item: bytes = b""
) -> Block:
    height = parent.height + 1 if parent is not None else 1
    return Block(view, height, justify, COMMITTEE.leader(view), (item,) if item else ())


def votes_in(actions: list[object]) -> list[Vote]:
    return [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Vote)]


# --- Vote -----------------------------------------------------------------------------------


def test_votes_for_a_valid_proposal_and_sends_the_vote_to_the_next_leader() -> None:
    replica = fresh()
    b1 = make_block(1, GENESIS_QC, None, b"x")
    actions = replica.on_message(propose(b1))
    [vote] = votes_in(actions)
    assert (vote.view, vote.block_hash, vote.sender) == (1, b1.hash, ME)
    assert [a.to for a in actions if isinstance(a, Send)] == [COMMITTEE.leader(2)]


def test_refuses_to_vote_twice_in_a_view_and_reports_the_equivocating_leader() -> None:
    replica = fresh()
    first = make_block(1, GENESIS_QC, None, b"first")
    second = make_block(1, GENESIS_QC, None, b"second")
    assert votes_in(replica.on_message(propose(first)))
    actions = replica.on_message(propose(second))
    assert votes_in(actions) == []
    [evidence] = [a for a in actions if isinstance(a, ReportEquivocation)]
    assert {evidence.first.block.hash, evidence.second.block.hash} == {first.hash, second.hash}


def voted_in(replica: Replica) -> int:
    return replica.safety.state.last_voted_view


def _replica_locked_on_view_2() -> tuple[Replica, Block, Block]:
    replica = fresh()
    b1 = make_block(1, GENESIS_QC, None, b"one")
    b2 = make_block(2, qc_for(b1), b1, b"two")
    b3 = make_block(3, qc_for(b2), b2, b"three")
    for block in (b1, b2, b3):
        replica.on_message(propose(block))
        assert voted_in(replica) == block.view
    assert replica.high_qc == qc_for(b2) or replica.high_qc.view == 2
    return replica, b1, b2


def test_refuses_a_proposal_that_conflicts_with_its_lock_without_a_higher_certificate() -> None:
    replica, b1, _ = _replica_locked_on_view_2()
    # view 5's leader extends b1 (certified in view 1), skipping b2: a fork below the lock
    fork = make_block(5, qc_for(b1), b1, b"fork")
    replica.on_message(propose(fork, tc_for(4)))
    assert voted_in(replica) == 3
    assert replica.view == 5  # the timeout certificate still moved it on
    assert any("below the lock" in reason for reason in replica.stats.rejected)


def test_votes_for_a_proposal_with_a_certificate_at_least_as_high_as_its_lock() -> None:
    replica, _, b2 = _replica_locked_on_view_2()
    block = make_block(5, qc_for(b2), b2, b"extends the lock")
    assert votes_in(replica.on_message(propose(block, tc_for(4))))
    assert voted_in(replica) == 5


def test_refuses_a_proposal_from_a_member_that_does_not_lead_the_view() -> None:
    replica = fresh()
    block = Block(1, 1, GENESIS_QC, 2, ())  # member 2 does not lead view 1
    proposal = replace(Proposal(block, None, 2), signature=b"")
    proposal = replace(proposal, signature=SIGNERS[2].sign(proposal.signing_digest(DOMAIN)))
    assert replica.on_message(proposal) == []


def test_refuses_a_proposal_that_skips_a_view_without_a_timeout_certificate() -> None:
    replica = fresh()
    b1 = make_block(1, GENESIS_QC, None)
    replica.on_message(propose(b1))
    jump = make_block(5, qc_for(b1), b1)
    assert votes_in(replica.on_message(propose(jump))) == []
    assert replica.view == 1 and voted_in(replica) == 1


# --- certificates ---------------------------------------------------------------------------


def _proposal_with_certificate(signatures: tuple[tuple[int, bytes], ...]) -> Proposal:
    b1 = make_block(1, GENESIS_QC, None)
    forged = QuorumCertificate(1, b1.hash, signatures)
    return propose(make_block(2, forged, b1))


def _sig(member: int, view: int = 1) -> bytes:
    b1 = make_block(1, GENESIS_QC, None)
    return SIGNERS[member].sign(vote_digest(DOMAIN, view, b1.hash))


def _refused(signatures: tuple[tuple[int, bytes], ...], reason: str) -> None:
    replica = fresh()
    assert replica.on_message(_proposal_with_certificate(signatures)) == []
    assert replica.view == 1 and replica.high_qc == GENESIS_QC
    assert replica.stats.rejected == {reason: 1}


def test_a_certificate_with_a_duplicate_signer_is_refused() -> None:
    _refused(((0, _sig(0)), (0, _sig(0)), (1, _sig(1))), "signers not distinct and sorted")


def test_a_certificate_with_a_non_member_signer_is_refused() -> None:
    _refused(((0, _sig(0)), (1, _sig(1)), (9, _sig(2))), "signer not a member")


def test_a_certificate_with_a_forged_signature_is_refused() -> None:
    # member 3's signature presented as member 2's: it recovers to the wrong address
    _refused(((0, _sig(0)), (1, _sig(1)), (2, _sig(3))), "bad signature in certificate")


def test_a_certificate_with_a_signature_for_another_view_is_refused() -> None:
    _refused(((0, _sig(0)), (1, _sig(1)), (2, _sig(2, view=7))), "bad signature in certificate")


def test_a_certificate_with_too_few_signers_is_refused() -> None:
    _refused(((0, _sig(0)), (1, _sig(1))), "too few signatures for a quorum")


def test_a_message_with_a_forged_sender_signature_is_refused() -> None:
    replica = Replica(COMMITTEE, 2, SIGNERS[2], VERIFIER, CONFIG)  # leads view 2
    b1 = make_block(1, GENESIS_QC, None)
    vote = Vote(1, b1.hash, 0)
    forged = replace(vote, signature=SIGNERS[1].sign(vote.signing_digest(DOMAIN)))
    assert replica.on_message(forged) == []
    assert replica.stats.rejected == {"signature": 1}


def test_votes_from_a_quorum_form_a_certificate_and_the_leader_proposes() -> None:
    replica = Replica(COMMITTEE, 2, SIGNERS[2], VERIFIER, CONFIG)  # leads view 2
    b1 = make_block(1, GENESIS_QC, None, b"x")
    actions = replica.on_message(propose(b1))  # its own vote goes to itself
    for voter in (0, 3):
        vote = Vote(1, b1.hash, voter)
        signed = replace(vote, signature=SIGNERS[voter].sign(vote.signing_digest(DOMAIN)))
        actions += replica.on_message(signed)
    [proposal] = [a.message for a in actions if isinstance(getattr(a, "message", None), Proposal)]
    assert proposal.block.view == 2 and proposal.block.parent == b1.hash
    assert proposal.block.justify.signers == (0, 2, 3)


# --- Commit ---------------------------------------------------------------------------------


def commits_in(actions: list[object]) -> list[Block]:
    return [block for a in actions if isinstance(a, Commit) for block in a.blocks]


def test_commits_a_block_when_its_child_in_the_next_view_is_certified() -> None:
    replica = fresh()
    b1 = make_block(1, GENESIS_QC, None, b"one")
    b2 = make_block(2, qc_for(b1), b1, b"two")
    b3 = make_block(3, qc_for(b2), b2)
    assert commits_in(replica.on_message(propose(b1))) == []
    assert commits_in(replica.on_message(propose(b2))) == []  # b1 certified: locked, no commit
    assert commits_in(replica.on_message(propose(b3))) == [b1]  # b2, b1's child, certified
    assert replica.committed_height == 1


def test_commit_needs_consecutive_views() -> None:
    replica = fresh()
    b1 = make_block(1, GENESIS_QC, None, b"one")
    b2 = make_block(2, qc_for(b1), b1, b"two")
    replica.on_message(propose(b1))
    replica.on_message(propose(b2))
    # b2's child comes in view 5, after a timeout: certifying it must not commit b2
    b5 = make_block(5, qc_for(b2), b2, b"five")
    assert commits_in(replica.on_message(propose(b5, tc_for(4)))) == [b1]
    b6 = make_block(6, qc_for(b5), b5)
    assert commits_in(replica.on_message(propose(b6))) == []
    assert replica.committed_height == 1
    b7 = make_block(7, qc_for(b6), b6)
    assert commits_in(replica.on_message(propose(b7))) == [b2, b5]


def test_commit_names_the_certificate_of_the_child_that_committed_it() -> None:
    replica = fresh()
    b1 = make_block(1, GENESIS_QC, None, b"one")
    b2 = make_block(2, qc_for(b1), b1, b"two")
    certificate = qc_for(b2)
    replica.on_message(propose(b1))
    replica.on_message(propose(b2))
    actions = replica.on_message(propose(make_block(3, certificate, b2)))
    [commit] = [a for a in actions if isinstance(a, Commit)]
    assert commit.blocks == (b1,) and commit.certificate == certificate


# --- Block time -----------------------------------------------------------------------------


def slow_timer_replica() -> Replica:
    config = ReplicaConfig(max_clock_drift_ms=50)  # view timers far longer than the test
    return Replica(COMMITTEE, ME, SIGNERS[ME], VERIFIER, config)


def stamped(view: int, justify: QuorumCertificate, parent: Block | None, ms: int) -> Block:
    return replace(make_block(view, justify, parent, b"t%d" % view), timestamp=ms)


def test_a_leader_stamps_its_block_with_its_clock_never_below_the_parent() -> None:
    net = Network(4)
    net.tick(200)
    net.submit(1, b"x")
    submitted_ms = net.now_ms
    net.tick(200)
    times = [block.timestamp for block in net.logs[1]]
    assert times == sorted(times) and times[-1] <= net.now_ms
    [carrier] = [block for block in net.logs[1] if b"x" in block.payload]
    assert carrier.timestamp >= submitted_ms


def test_refuses_a_block_stamped_before_its_parent() -> None:
    replica = slow_timer_replica()
    b1 = stamped(1, GENESIS_QC, None, 500)
    replica.on_tick(600)
    assert votes_in(replica.on_message(propose(b1)))
    b2 = stamped(2, qc_for(b1), b1, 499)
    assert votes_in(replica.on_message(propose(b2))) == []
    assert replica.stats.rejected["block time before its parent's"] == 1


def test_a_block_ahead_of_the_clock_is_voted_on_once_the_clock_is_there() -> None:
    replica = slow_timer_replica()
    replica.on_tick(100)
    b1 = stamped(1, GENESIS_QC, None, 100 + 50 + 1)
    assert votes_in(replica.on_message(propose(b1))) == []
    assert votes_in(replica.on_tick(100)) == []
    [vote] = votes_in(replica.on_tick(101))
    assert vote.block_hash == b1.hash


def test_a_block_too_far_ahead_is_never_voted_on_after_the_view_ends() -> None:
    replica = slow_timer_replica()
    timer = replica.config.base_timeout_ms
    b1 = stamped(1, GENESIS_QC, None, 2 * timer)
    assert votes_in(replica.on_message(propose(b1))) == []
    for now in range(0, 2 * timer + 1, 100):
        assert votes_in(replica.on_tick(now)) == []


# --- a whole committee ----------------------------------------------------------------------


def test_a_single_member_commits_alone() -> None:
    net = Network(1)
    net.submit(0, b"only intent")
    net.tick(50)
    assert net.committed_items(0) == [b"only intent"]
    net.tick(200)  # idle: a few empty blocks at the idle pace, nothing more
    assert net.replicas[0].committed_height < 20


def test_every_member_learns_a_commit_of_items_without_waiting_for_the_idle_timer() -> None:
    net = Network(4)
    net.submit(0, b"an intent")
    net.tick(5)  # well inside one idle interval (30 ms)
    # the leader that formed the committing certificate proposed at once, so the others got it
    assert [net.committed_items(i) for i in range(4)] == [[b"an intent"]] * 4
    height = net.replicas[0].committed_height
    net.tick(25)
    assert net.replicas[0].committed_height == height  # then idle again: no empty blocks


def test_hurry_has_a_block_from_the_given_time_committed_everywhere_then_idles() -> None:
    net = Network(4)
    net.tick(60)
    wanted = net.now_ms + 20
    for replica in net.replicas:
        net.perform(replica.index, replica.hurry(wanted))
    net.tick(15)
    assert all(block.timestamp < wanted for log in net.logs for block in log)
    net.tick(10)  # the idle pace (30 ms a view) would take three views, 90 ms, to get there
    for log in net.logs:
        assert any(block.timestamp >= wanted for block in log)
    heights = [replica.committed_height for replica in net.replicas]
    net.tick(25)  # done: back to the idle pace by itself, though still set
    assert all(
        replica.committed_height <= height + 1
        for replica, height in zip(net.replicas, heights, strict=True)
    )


def test_four_members_commit_the_same_log_with_every_item() -> None:
    net = Network(4)
    items = [f"intent-{i}".encode() for i in range(8)]
    for i, item in enumerate(items):
        net.submit(i % 4, item)
    net.tick(200)
    for log in net.logs:
        shorter = min(len(log), len(net.logs[0]))
        assert log[:shorter] == net.logs[0][:shorter]
        assert sorted(item for block in log for item in block.payload) == sorted(items)


def test_a_crashed_leader_is_replaced_and_items_commit() -> None:
    net = Network(4)
    net.tick(20)
    leader = net.committee.leader(net.replicas[0].view)
    net.down.add(leader)
    survivor = (leader + 1) % 4
    net.submit(survivor, b"after the crash")
    net.tick(1_000)
    for i in range(4):
        if i != leader:
            assert b"after the crash" in net.committed_items(i)


def test_a_member_that_missed_blocks_fetches_them_and_commits_the_same_log() -> None:
    net = Network(4)
    net.down.add(3)
    for i in range(6):
        net.submit(i % 3, f"while 3 was away {i}".encode())
        net.tick(30)
    net.tick(1_000)  # views led by member 3, or whose votes go to it, time out
    assert net.replicas[0].committed_height >= 4 and net.logs[3] == []
    net.down.clear()
    net.tick(300)
    assert net.logs[3][: len(net.logs[0])] == net.logs[0][: len(net.logs[3])]
    assert len(net.logs[3]) >= 6 and set(net.committed_items(3)) >= {
        f"while 3 was away {i}".encode() for i in range(6)
    }


def test_a_restarted_member_keeps_its_vote() -> None:
    net = Network(4)
    b1 = make_block(1, GENESIS_QC, None, b"seen before the crash")
    net.perform(ME, net.replicas[ME].on_message(propose(b1)))
    restarted = Replica(
        COMMITTEE,
        ME,
        SIGNERS[ME],
        VERIFIER,
        CONFIG,
        safety_state=SafetyState.from_bytes(net.persisted[ME]),
    )
    other = make_block(1, GENESIS_QC, None, b"offered after the restart")
    assert votes_in(restarted.on_message(propose(other))) == []


def test_items_left_out_by_a_leader_are_proposed_by_their_member() -> None:
    net = Network(4)
    # member 1 never hears of the item (its messages are lost), so as leader it leaves it out
    net.submit(0, b"censored")
    net.queue = type(net.queue)((to, m) for to, m in net.queue if to == 0)
    net.tick(400)
    assert all(b"censored" in net.committed_items(i) for i in range(4))


def test_many_items_are_shared_in_one_signed_message_and_all_commit() -> None:
    net = Network(4)
    items = [b"batch-%d" % i for i in range(30)]
    actions = net.replicas[2].submit_many(items)
    forwards = [
        a.message
        for a in actions
        if isinstance(a, Broadcast) and isinstance(a.message, ForwardItem)
    ]
    assert len(forwards) == 1 and forwards[0].items == tuple(items)
    net.perform(2, actions)
    net.tick(400)
    for index in range(4):
        assert sorted(net.committed_items(index)) == sorted(items)


def test_submit_many_takes_all_or_none() -> None:
    replica = fresh()
    with pytest.raises(ValueError, match="an item is"):
        replica.submit_many([b"fine", b""])
    assert replica.pending_items == 0


def test_a_crashed_leader_costs_two_base_timers_not_a_doubled_one() -> None:
    net = Network(4)
    net.down = {1}  # leads views 1, 5, 9, ...
    entered: dict[int, int] = {}
    for _ in range(400):
        net.tick(5)
        entered.setdefault(net.replicas[0].view, net.now_ms)
        if 10 in entered:
            break
    base = CONFIG.base_timeout_ms
    # view 8's votes go to the dead leader of view 9: views 8 and 9 both time out, each on
    # the base timer (doubling would make it base + 2 * base)
    assert entered[10] - entered[8] <= 2 * base + 4 * CONFIG.proposal_wait_ms
    assert net.replicas[0].committed_height >= 3
