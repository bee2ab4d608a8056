"""``item_deadline``: a leader whose clock is past a pending item's deadline, while its parent's
time is not, stamps its block at that deadline (never before the parent's time), so the item
still counts; items of a later time wait for the next block; pacing and ``hurry`` still work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from asyncdex.consensus import Block, Proposal, Replica, Vote
from asyncdex.consensus.messages import GENESIS_QC, Message

from .harness import CONFIG, VERIFIER, Network, signers

SIGNERS = signers(4)
COMMITTEE = Network(4).committee
DOMAIN = COMMITTEE.domain
EPOCH_MS = 20
# items for epochs 2, 3 and 4: each ready in its epoch, counting until the epoch's last ms
E2, E3, E4 = b"epoch 2", b"epoch 3", b"epoch 4"


def epoch_of(item: bytes) -> int | None:
    return int(item.rsplit(b" ", 1)[1]) if item.startswith(b"epoch ") else None


def ready(item: bytes, timestamp_ms: int) -> bool:
    epoch = epoch_of(item)
    return epoch is None or epoch <= timestamp_ms // EPOCH_MS


def deadline(item: bytes) -> int | None:
    epoch = epoch_of(item)
    return None if epoch is None else (epoch + 1) * EPOCH_MS - 1


def signed(message: Proposal | Vote) -> Proposal | Vote:
    signer = SIGNERS[message.sender]
    return replace(message, signature=signer.sign(message.signing_digest(DOMAIN)))


def proposed(actions: list[object]) -> list[Block]:
    return [
        action.message.block  # type: ignore[attr-defined]
        for action in actions
        if isinstance(getattr(action, "message", None), Proposal)
    ]


def carrier(net: Network, index: int, item: bytes) -> Block:
    [block] = [block for block in net.logs[index] if item in block.payload]
    return block


def leader_of_view_2(now_ms: int, parent_ms: int, items: list[bytes]) -> Block:
    """Member 2's proposal for view 2, its clock at ``now_ms``, extending view 1's block
    stamped ``parent_ms``, with ``items`` pending."""
    replica = Replica(
        COMMITTEE,
        2,
        SIGNERS[2],
        VERIFIER,
        CONFIG,
        now_ms=now_ms,
        item_ready=ready,
        item_deadline=deadline,
    )
    actions = replica.submit_many(items)
    b1 = Block(1, 1, GENESIS_QC, 1, (b"x",), timestamp=parent_ms)
    actions += replica.on_message(signed(Proposal(b1, None, 1)))
    for voter in (0, 3):
        actions += replica.on_message(signed(Vote(1, b1.hash, voter)))
    [block] = proposed(actions)
    return block


def test_a_leader_past_an_items_deadline_stamps_its_block_at_it_and_includes_the_item() -> None:
    block = leader_of_view_2(now_ms=90, parent_ms=45, items=[E3, E2, b"plain", E4])
    # 59 (epoch 2's end), not 90: the earliest deadline at or after the parent's 45
    assert block.timestamp == deadline(E2) == 59
    # epoch 3's and 4's items are not ready at 59: they wait for a later block
    assert block.payload == (E2, b"plain")


def test_an_item_whose_deadline_is_before_the_parents_time_goes_in_at_the_clocks_time() -> None:
    # epoch 2 ended (59) before the parent (65): beyond help, proposed as any other item
    block = leader_of_view_2(now_ms=90, parent_ms=65, items=[E2, b"plain"])
    assert block.timestamp == 90
    assert block.payload == (E2, b"plain")


def test_a_deadline_not_yet_passed_by_the_clock_changes_nothing() -> None:
    block = leader_of_view_2(now_ms=50, parent_ms=45, items=[E2])
    assert block.timestamp == 50 and block.payload == (E2,)


def test_the_stamp_never_goes_before_the_parents_time() -> None:
    # the parent is stamped at epoch 2's last ms itself: the block may stamp it too
    block = leader_of_view_2(now_ms=90, parent_ms=59, items=[E2, E3])
    assert block.timestamp == 59 and block.payload == (E2,)


def run_late_leaders(
    item_deadline: Callable[[bytes], int | None] | None,
    items: list[bytes],
    hurry_from_ms: int | None = None,
) -> Network:
    """Member 1 proposes view 1 at 45; the votes for it are held while every clock moves to
    90, so members 2, 3 and 0 then lead views 2, 3 and 4 with their clocks past the parent's
    time. ``items`` are pending everywhere before that."""
    net = Network(4, item_ready=ready, item_deadline=item_deadline)
    if hurry_from_ms is not None:
        for index, replica in enumerate(net.replicas):
            net.perform(index, replica.hurry(hurry_from_ms))
    net.perform(1, net.replicas[1].on_tick(45))
    for item in items:
        net.submit(0, item)  # member 0 leads none of views 1 to 3: no proposal yet
    held: list[tuple[int, Message]] = []

    def hold_votes(to: int, message: Message) -> bool:
        if isinstance(message, Vote):
            held.append((to, message))
            return False
        return True

    net.deliver(hold_votes)
    assert [replica.pending_items for replica in net.replicas] == [len(items)] * 4
    net.now_ms = 90
    for index, replica in enumerate(net.replicas):
        net.perform(index, replica.on_tick(90))
    net.deliver(hold_votes)  # nothing proposes while view 1's votes are held
    net.queue.extend(held)
    net.deliver()
    return net


def test_each_epochs_items_go_in_a_block_stamped_in_their_epoch() -> None:
    net = run_late_leaders(deadline, [E2, E3, E4])
    net.tick(60)
    for index in range(4):
        # view 2 at epoch 2's end, view 3 at epoch 3's end, view 4 at the clock (epoch 4)
        assert carrier(net, index, E2).timestamp == 59
        assert carrier(net, index, E3).timestamp == 79
        assert carrier(net, index, E4).timestamp == 90
        assert net.replicas[index].pending_items == 0
        stamps = [block.timestamp for block in net.logs[index]]
        assert stamps == sorted(stamps)  # the committed time line never goes back


def test_no_deadline_gives_todays_blocks() -> None:
    items = [E2, E3, E4]
    without = run_late_leaders(None, items)
    without.tick(60)
    assert {carrier(without, 0, item).timestamp for item in items} == {90}  # all late
    for no_deadline in (lambda item: None, lambda item: 10_000):
        net = run_late_leaders(no_deadline, items)
        net.tick(60)
        assert [b.hash for b in net.logs[0]] == [b.hash for b in without.logs[0]]


def test_a_hurried_leader_gets_a_block_at_or_after_from_ms_after_a_block_stamped_before_it() -> (
    None
):
    from_ms = 70
    net = run_late_leaders(deadline, [E2], hurry_from_ms=from_ms)
    net.tick(1, step=1)
    for index in range(4):
        # epoch 2's item went in at 59 although every clock had passed 70: that block does
        # not end the hurry, and one stamped at or after 70 is committed everywhere soon
        # after (long before an idle leader would propose one: idle_block_ms is 30)
        assert carrier(net, index, E2).timestamp == 59
        assert any(block.timestamp >= from_ms for block in net.logs[index])
    assert all(replica.hurry_from_ms == from_ms for replica in net.replicas)


def test_a_hurried_single_member_does_not_stop_at_a_block_stamped_before_from_ms() -> None:
    net = Network(1)
    net.replicas = [
        Replica(
            net.committee,
            0,
            net.signers[0],
            VERIFIER,
            CONFIG,
            item_ready=ready,
            item_deadline=deadline,
        )
    ]
    net.tick(30)  # an empty block stamped 30; then idle
    net.perform(0, net.replicas[0].hurry(70))
    net.submit(0, E2)  # not ready before 40: stays pending
    assert net.committed_items(0) == []
    net.now_ms = 80
    net.perform(0, net.replicas[0].on_tick(80))
    net.deliver()
    net.tick(2, step=1)
    assert carrier(net, 0, E2).timestamp == 59
    assert any(block.timestamp >= 70 for block in net.logs[0])


def test_the_deadline_is_asked_once_per_item_not_at_every_proposal() -> None:
    asked: list[bytes] = []

    def counting(item: bytes) -> int | None:
        asked.append(item)
        return deadline(item)

    net = Network(4, item_ready=ready, item_deadline=counting)
    net.submit(1, b"plain")
    net.submit(2, b"epoch 9")  # pending through many proposals (not ready before 180)
    net.tick(200)
    assert net.replicas[0].committed_height > 5
    assert b"epoch 9" in net.committed_items(0)
    assert sorted(asked) == sorted([b"plain", b"epoch 9"] * 4)  # once per member
