"""The committee runtime: one consensus member as a real asyncio component.

Invariants: the consensus core (``asyncdex.consensus``) stays pure; this package gives it a
network (``transport``: authenticated TCP links between members), durable state (``store``:
safety state, block journal, committed log, intake log, all fsync'd) and a host
(``runtime.CommitteeMember``: performs the replica's actions in order, persists before it
sends, feeds it the clock through ticks, and reports commits once they are durable).
"""

from asyncdex.committee.runtime import (
    CommitteeMember,
    IntakeFull,
    MemberStopped,
    wall_clock_ms,
)
from asyncdex.committee.store import (
    CommittedEntry,
    MemberStore,
    Recovered,
    StoreCorruption,
    StoreError,
)
from asyncdex.committee.transport import (
    CHANNEL_CONSENSUS,
    CHANNEL_FAIRNESS,
    CHANNEL_SETTLEMENT,
    InvalidFrame,
    Transport,
    TransportStats,
)

__all__ = [
    "CHANNEL_CONSENSUS",
    "CHANNEL_FAIRNESS",
    "CHANNEL_SETTLEMENT",
    "CommittedEntry",
    "CommitteeMember",
    "IntakeFull",
    "InvalidFrame",
    "MemberStopped",
    "MemberStore",
    "Recovered",
    "StoreCorruption",
    "StoreError",
    "Transport",
    "TransportStats",
    "wall_clock_ms",
]
