"""``item_ready``: a leader leaves out items not ready for its block's time; they stay pending
and go into a later block once its time makes them ready, and pacing does not spin for them."""

from __future__ import annotations

from dataclasses import replace

from asyncdex.consensus import Block, Proposal, Replica, Vote
from asyncdex.consensus.messages import GENESIS_QC

from .harness import CONFIG, VERIFIER, Network, signers

SIGNERS = signers(4)
COMMITTEE = Network(4).committee
DOMAIN = COMMITTEE.domain


def ready_from(ms: int, prefix: bytes = b"later") -> tuple[list[int], object]:
    """A predicate holding back items starting with ``prefix`` until block time ``ms``, and
    the block times it was asked about."""
    asked: list[int] = []

    def ready(item: bytes, timestamp_ms: int) -> bool:
        asked.append(timestamp_ms)
        return not item.startswith(prefix) or timestamp_ms >= ms

    return asked, ready


def signed(message: Proposal | Vote) -> Proposal | Vote:
    signer = SIGNERS[message.sender]
    return replace(message, signature=signer.sign(message.signing_digest(DOMAIN)))


def carriers(net: Network, index: int, item: bytes) -> list[Block]:
    return [block for block in net.logs[index] if item in block.payload]


def test_the_predicate_judges_the_time_the_block_will_carry_not_the_leaders_clock() -> None:
    asked: list[int] = []

    def ready(item: bytes, timestamp_ms: int) -> bool:
        asked.append(timestamp_ms)
        return timestamp_ms >= {b"at 500": 500, b"at 501": 501}[item]

    # member 2 leads view 2; its clock (480) is behind view 1's block (500, within the drift)
    replica = Replica(COMMITTEE, 2, SIGNERS[2], VERIFIER, CONFIG, now_ms=480, item_ready=ready)
    actions = replica.submit_many([b"at 500", b"at 501"])
    b1 = Block(1, 1, GENESIS_QC, 1, (b"x",), timestamp=500)
    actions += replica.on_message(signed(Proposal(b1, None, 1)))
    for voter in (0, 3):
        actions += replica.on_message(signed(Vote(1, b1.hash, voter)))
    [proposal] = [a.message for a in actions if isinstance(getattr(a, "message", None), Proposal)]
    block = proposal.block
    assert block.view == 2 and block.timestamp == 500  # the parent's time, not the clock's
    assert block.payload == (b"at 500",)
    assert set(asked) == {500}
    assert replica.pending_items == 2  # the one left out is still pending (and so is the other)


def test_a_single_member_holds_an_item_back_until_a_block_time_makes_it_ready() -> None:
    asked, ready = ready_from(100)
    net = Network(1, item_ready=ready)  # type: ignore[arg-type]
    net.submit(0, b"later: sealed for the next epoch")
    net.submit(0, b"now")
    net.tick(50)
    assert net.committed_items(0) == [b"now"]
    assert net.replicas[0].pending_items == 1  # left out, not dropped
    net.tick(100)
    [carrier] = carriers(net, 0, b"later: sealed for the next epoch")
    assert carrier.timestamp >= 100
    assert all(block.timestamp < 100 for block in net.logs[0][: net.logs[0].index(carrier)])
    assert net.replicas[0].pending_items == 0
    assert asked and all(ms >= 0 for ms in asked)


def test_items_not_ready_do_not_make_an_idle_leader_spin() -> None:
    _, ready = ready_from(10_000)
    net = Network(4, item_ready=ready)  # type: ignore[arg-type]
    for i in range(5):
        net.submit(i % 4, b"later %d" % i)
    # (a spinning committee never goes quiet: ``deliver`` would raise)
    net.tick(300, step=1)
    # empty blocks at the idle pace (a view per 30 ms) only: ten or so, not one per message
    assert net.replicas[0].committed_height <= 300 // CONFIG.idle_block_ms + 2
    assert net.committed_items(0) == []
    assert [replica.pending_items for replica in net.replicas] == [5] * 4


def test_a_committee_commits_a_held_item_everywhere_once_ready() -> None:
    _, ready = ready_from(120)
    net = Network(4, item_ready=ready)  # type: ignore[arg-type]
    net.tick(20)
    net.submit(2, b"later: for epoch 1")
    net.submit(3, b"at once")
    net.tick(60)
    for index in range(4):
        assert net.committed_items(index) == [b"at once"]
        assert net.replicas[index].pending_items == 1  # every member holds it, none drops it
    net.tick(150)
    for index in range(4):
        [carrier] = carriers(net, index, b"later: for epoch 1")
        assert carrier.timestamp >= 120
        assert net.replicas[index].pending_items == 0
    for log in net.logs[1:]:  # one log, some members a commit behind
        shorter = min(len(log), len(net.logs[0]))
        assert log[:shorter] == net.logs[0][:shorter]


def test_a_predicate_that_is_always_true_changes_no_block() -> None:
    def run(item_ready: object) -> list[Block]:
        net = Network(4, item_ready=item_ready)  # type: ignore[arg-type]
        net.submit(1, b"a")
        net.tick(40)
        net.submit(2, b"b")
        net.tick(80)
        return net.logs[0]

    without = run(None)
    assert [item for block in without for item in block.payload] == [b"a", b"b"]
    assert [block.hash for block in run(lambda item, ms: True)] == [b.hash for b in without]
