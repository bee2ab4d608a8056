"""A fault-free, hand-driven network of real replicas for unit tests (the simulator is the
randomized one): messages wait in one FIFO queue until ``deliver`` moves them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from asyncdex.consensus import (
    Block,
    Broadcast,
    CachingVerifier,
    Commit,
    Committee,
    Message,
    PersistSafety,
    Replica,
    ReplicaConfig,
    Secp256k1Signer,
    Send,
)
from asyncdex.consensus.replica import Action, PersistBlock, ReportEquivocation

CONFIG = ReplicaConfig(
    base_timeout_ms=100, max_timeout_ms=800, proposal_wait_ms=20, idle_block_ms=30
)
VERIFIER = CachingVerifier()


def signers(n: int) -> list[Secp256k1Signer]:
    return [Secp256k1Signer.from_seed(f"unit-member-{i}".encode()) for i in range(n)]


@dataclass
class Network:
    n: int
    replicas: list[Replica] = field(init=False)
    signers: list[Secp256k1Signer] = field(init=False)
    committee: Committee = field(init=False)
    queue: deque[tuple[int, Message]] = field(default_factory=deque)
    logs: list[list[Block]] = field(init=False)
    persisted: list[bytes] = field(init=False)
    evidence: list[ReportEquivocation] = field(default_factory=list)
    now_ms: int = 0
    down: set[int] = field(default_factory=set)
    item_ready: Callable[[bytes, int], bool] | None = None
    item_deadline: Callable[[bytes], int | None] | None = None

    def __post_init__(self) -> None:
        self.signers = signers(self.n)
        self.committee = Committee(tuple(s.address for s in self.signers))
        self.replicas = [
            Replica(
                self.committee,
                i,
                self.signers[i],
                VERIFIER,
                CONFIG,
                item_ready=self.item_ready,
                item_deadline=self.item_deadline,
            )
            for i in range(self.n)
        ]
        self.logs = [[] for _ in range(self.n)]
        self.persisted = [b"" for _ in range(self.n)]

    def perform(self, index: int, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.queue.append((action.to, action.message))
            elif isinstance(action, Broadcast):
                for to in range(self.n):
                    if to != index:
                        self.queue.append((to, action.message))
            elif isinstance(action, Commit):
                self.logs[index].extend(action.blocks)
            elif isinstance(action, PersistSafety):
                self.persisted[index] = action.state.to_bytes()
            elif isinstance(action, ReportEquivocation):
                self.evidence.append(action)
            else:
                assert isinstance(action, PersistBlock)

    def deliver(
        self, keep: Callable[[int, Message], bool] = lambda to, message: True, limit: int = 10_000
    ) -> None:
        """Deliver queued messages (and what they cause) until the queue is empty."""
        for _ in range(limit):
            if not self.queue:
                return
            to, message = self.queue.popleft()
            if to in self.down or not keep(to, message):
                continue
            self.perform(to, self.replicas[to].on_message(message))
        raise AssertionError("the network did not go quiet")

    def tick(self, ms: int, step: int = 5, **deliver_options: object) -> None:
        """Let ``ms`` of time pass in steps, ticking every live replica and delivering."""
        end = self.now_ms + ms
        while self.now_ms < end:
            self.now_ms += step
            for index, replica in enumerate(self.replicas):
                if index not in self.down:
                    self.perform(index, replica.on_tick(self.now_ms))
            self.deliver(**deliver_options)  # type: ignore[arg-type]

    def submit(self, index: int, item: bytes) -> None:
        self.perform(index, self.replicas[index].submit(item))

    def committed_items(self, index: int) -> list[bytes]:
        return [item for block in self.logs[index] for item in block.payload]
