"""Consensus of a sequencer committee: chained HotStuff-2 as a pure state machine.

Invariants: nothing in this package reads a clock, draws randomness or does I/O; a replica
is driven by ``on_message`` / ``on_tick`` / ``submit`` and answers with actions (send,
broadcast, persist, commit). Safety (never two conflicting commits among honest members)
rests on the vote rule in ``safety`` alone; see docs/consensus.md for the protocol's rules
and where each appears in the paper.
"""

from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import (
    CachingVerifier,
    Secp256k1Signer,
    Secp256k1Verifier,
    Signer,
    Verifier,
)
from asyncdex.consensus.messages import (
    Block,
    BlockRequest,
    BlockResponse,
    ForwardItem,
    Message,
    NewView,
    Proposal,
    QuorumCertificate,
    TimeoutCertificate,
    TimeoutMessage,
    Vote,
)
from asyncdex.consensus.replica import (
    Action,
    Broadcast,
    Commit,
    ItemDeadline,
    ItemReady,
    PersistSafety,
    Replica,
    ReplicaConfig,
    Send,
)
from asyncdex.consensus.safety import SafetyRules, SafetyState, UnsafeToSign

__all__ = [
    "Action",
    "Block",
    "BlockRequest",
    "BlockResponse",
    "Broadcast",
    "CachingVerifier",
    "Commit",
    "Committee",
    "ForwardItem",
    "ItemDeadline",
    "ItemReady",
    "Message",
    "NewView",
    "PersistSafety",
    "Proposal",
    "QuorumCertificate",
    "Replica",
    "ReplicaConfig",
    "SafetyRules",
    "SafetyState",
    "Secp256k1Signer",
    "Secp256k1Verifier",
    "Send",
    "Signer",
    "TimeoutCertificate",
    "TimeoutMessage",
    "UnsafeToSign",
    "Verifier",
    "Vote",
]
