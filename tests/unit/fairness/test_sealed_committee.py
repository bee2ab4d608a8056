"""Sealed intents through the real consensus core: four HotStuff-2 replicas (real signatures)
on an in-memory network order a victim's sealed intent; the leader that would front-run it
sees only ciphertext; no share exists before a certified block closes the epoch; each member
then assembles the key from the shares that reach it and opens the same intents right before
the same closing block, executing nothing past it until it holds the key.

The network is a FIFO queue delivered in full between clock ticks of 10 ms (a synchronous
network); sealed payload items are tagged ``S``, the way a host tells its item kinds apart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from asyncdex.consensus import (
    Action,
    Broadcast,
    CachingVerifier,
    Commit,
    Committee,
    Message,
    Proposal,
    Replica,
    ReplicaConfig,
    Secp256k1Signer,
    Send,
)
from asyncdex.fairness.reveal import BlockEffects, KeyAssembler, SealedLog
from asyncdex.fairness.sealing import Opened, SealingKey, seal_intent, venue_id
from asyncdex.fairness.threshold import DecryptionShare, create_decryption_share
from asyncdex.signing.eip712 import Domain, LocalSigner
from asyncdex.signing.intents import encode_signed_intent

from .conftest import THRESHOLD, place_order
from .conftest import Committee as FairCommittee

EPOCH_MS = 1_000
START_MS = 10 * EPOCH_MS + 40
SEALED = b"S"
ATTACKER = 0


@dataclass
class Member:
    replica: Replica
    log: SealedLog
    assembler: KeyAssembler
    released: set[int] = field(default_factory=set)
    unclosed: set[int] = field(default_factory=set)  # epochs of committed sealed intents
    backlog: deque[tuple[int, int, list[bytes]]] = field(default_factory=deque)  # committed
    effects: dict[int, BlockEffects] = field(default_factory=dict)  # height -> effects
    committed: list[int] = field(default_factory=list)  # heights, in commit order
    timestamps: dict[int, int] = field(default_factory=dict)  # height -> block timestamp


@dataclass
class Run:
    members: list[Member]
    fair: FairCommittee
    domain: Domain
    now: int = START_MS
    queue: deque[tuple[int, Message]] = field(default_factory=deque)
    events: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, member, value)
    seen_by_attacker: list[bytes] = field(default_factory=list)  # payload items it saw

    def perform(self, index: int, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.queue.append((action.to, action.message))
            elif isinstance(action, Broadcast):
                for other in range(len(self.members)):
                    if other != index:
                        self.queue.append((other, action.message))
            elif isinstance(action, Commit):
                for block in action.blocks:
                    self.on_commit(index, block.height, block.timestamp, block.payload)

    def on_commit(
        self, index: int, height: int, timestamp: int, payload: tuple[bytes, ...]
    ) -> None:
        member = self.members[index]
        sealed = [item[1:] for item in payload if item[:1] == SEALED]
        member.committed.append(height)
        member.timestamps[height] = timestamp
        self.events.append(("commit", index, height))
        block_epoch = timestamp // EPOCH_MS
        if sealed:
            member.unclosed.add(block_epoch)  # (all of this test's envelopes are for it)
        for epoch in sorted(e for e in member.unclosed if e < block_epoch):
            member.unclosed.discard(epoch)
            if epoch not in member.released:  # closed by this committed block: release
                member.released.add(epoch)
                share = create_decryption_share(
                    self.fair.shares[index], venue_id(self.domain), epoch
                )
                self.events.append(("share", index, epoch))
                for other in range(len(self.members)):
                    self.on_share(other, share)
        member.backlog.append((height, timestamp, sealed))
        self.execute(index)

    def execute(self, index: int) -> None:
        """Execute committed blocks in order; one that closes an epoch waits for its key."""
        member = self.members[index]
        while member.backlog:
            height, timestamp, sealed = member.backlog[0]
            keys = {e: member.assembler.key(e) for e in member.log.closes(timestamp)}
            ready = {e: key for e, key in keys.items() if key is not None}
            if len(ready) < len(keys):
                return  # waits, executing nothing past it
            member.backlog.popleft()
            member.effects[height] = member.log.apply_block(height, timestamp, sealed, ready)

    def on_share(self, index: int, share: DecryptionShare) -> None:
        self.members[index].assembler.add(share)
        self.execute(index)

    def deliver(self) -> None:
        while self.queue:
            to, message = self.queue.popleft()
            if to == ATTACKER and isinstance(message, Proposal):
                self.seen_by_attacker.extend(message.block.payload)
            self.perform(to, self.members[to].replica.on_message(message))

    def tick(self, ms: int = 10) -> None:
        self.now += ms
        for index, member in enumerate(self.members):
            self.perform(index, member.replica.on_tick(self.now))
        self.deliver()


def _run(fair: FairCommittee, domain: Domain) -> Run:
    signers = [Secp256k1Signer.from_seed(bytes([k])) for k in range(4)]
    committee = Committee(tuple(s.address for s in signers))
    verifier = CachingVerifier()
    members = [
        Member(
            Replica(committee, k, signers[k], verifier, ReplicaConfig(), now_ms=START_MS),
            SealedLog(domain, fair.key, EPOCH_MS),
            KeyAssembler(fair.key, domain),
        )
        for k in range(4)
    ]
    return Run(members, fair, domain)


def test_the_leader_sees_ciphertext_until_the_epoch_closes_then_all_open_alike(
    committee: FairCommittee, domain: Domain, trader: LocalSigner
) -> None:
    run = _run(committee, domain)
    victim = place_order(trader, domain, nonce=77)
    epoch = START_MS // EPOCH_MS
    envelope = seal_intent(SealingKey(domain, committee.key.public_key), trader, victim, epoch)
    body = encode_signed_intent(victim)
    run.perform(1, run.members[1].replica.submit(SEALED + envelope.encode()))
    run.deliver()

    # the attacker's own share, even released against the rules, opens nothing
    rogue = KeyAssembler(committee.key, domain)
    assert THRESHOLD > 1
    assert (
        rogue.add(create_decryption_share(committee.shares[ATTACKER], venue_id(domain), epoch))
        is None
    )

    while not all(m.log.pending_epochs() == () and m.effects and m.released for m in run.members):
        run.tick()
        assert run.now < START_MS + 10 * EPOCH_MS, "the sealed intent was never revealed"

    # the attacker only ever saw the envelope, never the signed intent inside it
    assert SEALED + envelope.encode() in run.seen_by_attacker
    assert not any(body in item for item in run.seen_by_attacker)

    # every share was made after a certified block holding the envelope, and one past the
    # epoch, were committed at its maker
    ordered_at = {
        index: next(h for h, e in m.effects.items() if e.ordered)
        for index, m in enumerate(run.members)
    }
    for position, (kind, index, value) in enumerate(run.events):
        if kind != "share":
            continue
        before = [h for k, i, h in run.events[:position] if k == "commit" and i == index]
        assert ordered_at[index] in before
        assert value == epoch
        closing = run.members[index].timestamps[before[-1]]
        assert closing // EPOCH_MS > epoch  # the epoch was closed by a certified block

    # every member opened the same intent, at the same height, as the same outcome
    opened = []
    for member in run.members:
        (height,) = [h for h, e in member.effects.items() if e.revealed_epochs]
        (outcome,) = member.effects[height].outcomes
        assert isinstance(outcome.result, Opened) and outcome.result.body == body
        opened.append((height, outcome))
    assert all(item == opened[0] for item in opened)
    assert opened[0][0] > ordered_at[0]
    assert len([e for e in run.events if e[0] == "share"]) == 4  # one per member, once
