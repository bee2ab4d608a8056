"""A venue node as one member of a sequencer committee: what the node hands the committee and
what it gets back.

Invariants:
- A client's intent is acknowledged (``sequenced``) once it is durable in this member's intake
  log (``CommitteeMember.submit``); from then on the member proposes it whenever it leads and
  shares it with every member, until a block holding it commits. Nothing is executed before
  its block is committed: the engine only sees committed blocks, in height order, through
  ``BlockExecutor``.
- The node's own commands (relayed oracle prices, operator commands) enter as system items
  signed by this member, so every member can tell who put them in.
- ``ordered`` (in a block with a commit certificate) is known for every intent of a committed
  block; ``executed`` comes from the node's index once the engine applied it.
- With sealing configured (``CommitteeSettings.sealing``), sealed envelopes enter as
  ``KIND_SEALED`` items (:meth:`CommitteeVenue.submit_sealed`), shares travel on
  ``CHANNEL_FAIRNESS``, the executor journals what each block reveals, and the epoch keys
  are kept in ``sealed-keys/`` beside the committee's store (``asyncdex.committee.sealed``,
  docs/fairness.md).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncdex.committee.execution import BlockExecutor, Ordered
from asyncdex.committee.items import ItemDecoder, relayed_item, system_item
from asyncdex.committee.runtime import CommitteeMember
from asyncdex.committee.sealed import EpochKeyStore, SealedReveal, sealed_item
from asyncdex.committee.transport import CHANNEL_FAIRNESS, CHANNEL_SETTLEMENT
from asyncdex.consensus.committee import Committee
from asyncdex.consensus.crypto import CachingVerifier, Secp256k1Signer
from asyncdex.consensus.messages import Block, Proposal, QuorumCertificate, Vote
from asyncdex.consensus.replica import ReplicaConfig, ReportEquivocation
from asyncdex.fairness.intake import sealed_item_deadline, sealed_item_ready
from asyncdex.fairness.threshold import CommitteeKey, KeyShare
from asyncdex.messages.commands import Command
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.sequencer import Sequencer
from asyncdex.settlement.certificate import (
    ProposalEquivocation,
    VoteEquivocation,
    proposal_equivocation,
    vote_equivocation,
)
from asyncdex.settlement.service import SettlementService
from asyncdex.signing.eip712 import Domain

_log = logging.getLogger(__name__)

COMMITTEE_SUBDIR = "committee"
SEALED_KEYS_SUBDIR = "sealed-keys"  # the epoch keys this member opened sealed intents with
NOTED_BLOCKS = 1_000  # at start: where the intents of this many last blocks were ordered


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True, slots=True)
class SealingSettings:
    """The committee's sealing key (from its DKG) and this member's share of it."""

    key: CommitteeKey
    share: KeyShare | None = field(repr=False)  # None: this node holds no share
    epoch_ms: int = 100  # docs/fairness.md, "Choosing epoch_ms"
    key_alarm_ms: int = 2_000  # execution waiting this long for an epoch's key is reported

    def __post_init__(self) -> None:
        if self.epoch_ms <= 0 or self.key_alarm_ms <= 0:
            raise ValueError("sealing epoch_ms and key_alarm_ms must be positive")


@dataclass(frozen=True, slots=True)
class CommitteeSettings:
    """This node's seat in a committee (the ``[committee]`` table of the node config)."""

    index: int
    members: tuple[bytes, ...]  # addresses, in index order
    peers: tuple[tuple[str, int], ...]  # each member's consensus host and port, in index order
    secret: bytes = field(repr=False)  # this member's secp256k1 key
    domain: bytes = b"asyncdex/consensus/v1"
    replica: ReplicaConfig = field(default_factory=ReplicaConfig)
    sealing: SealingSettings | None = None

    def __post_init__(self) -> None:
        if len(self.peers) != len(self.members):
            raise ValueError(
                f"{len(self.members)} members but {len(self.peers)} consensus addresses"
            )
        if not 0 <= self.index < len(self.members):
            raise ValueError(f"member index {self.index} is not in 0..{len(self.members) - 1}")
        if Secp256k1Signer(self.secret).address != self.members[self.index]:
            raise ValueError(
                f"the member key is not member {self.index}'s (0x{self.members[self.index].hex()})"
            )

    @property
    def committee(self) -> Committee:
        return Committee(self.members, self.domain)


class CommitteeVenue:
    """The committee side of one venue node."""

    def __init__(
        self,
        settings: CommitteeSettings,
        domain: Domain,
        sequencer: Sequencer,
        journal: FileJournal,
        data_dir: Path,
        clock: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.committee = settings.committee
        self._signer = Secp256k1Signer(settings.secret)
        self._clock = clock
        verify = CachingVerifier()
        self.decoder = ItemDecoder(domain, self.committee, verify)
        self.member = CommitteeMember(
            self.committee,
            settings.index,
            self._signer,
            settings.peers,
            data_dir / COMMITTEE_SUBDIR,
            settings.replica,
            clock=clock,
            on_commit=self._on_commit,
            on_equivocation=self._on_equivocation,
            on_committing=self._on_committing if settings.sealing is not None else None,
            # a sealed envelope for a later epoch waits in the pool for a block of its epoch
            item_ready=(
                sealed_item_ready(settings.sealing.epoch_ms)
                if settings.sealing is not None
                else None
            ),
            # an envelope whose epoch the clock has left but the chain has not goes in a block
            # stamped at the epoch's last ms
            item_deadline=(
                sealed_item_deadline(settings.sealing.epoch_ms)
                if settings.sealing is not None
                else None
            ),
        )
        self._settlement: SettlementService | None = None
        self.sealed: SealedReveal | None = None
        if settings.sealing is not None:
            sealing = settings.sealing
            transport = self.member.transport
            self.sealed = SealedReveal(
                domain,
                sealing.key,
                sealing.share,
                epoch_ms=sealing.epoch_ms,
                alarm_ms=sealing.key_alarm_ms,
                broadcast=lambda payload: transport.broadcast(CHANNEL_FAIRNESS, payload),
                send=lambda member, payload: transport.send(member, CHANNEL_FAIRNESS, payload),
                keys=EpochKeyStore(data_dir / SEALED_KEYS_SUBDIR),
            )
            transport.register(CHANNEL_FAIRNESS, self.sealed.on_share_frame)
        self.executor = BlockExecutor(
            sequencer, self.decoder, journal, self._committed, clock=clock, sealed=self.sealed
        )
        self._nonces = itertools.count()
        self._nonce_base = 0

    def _on_commit(self, blocks: Sequence[Block], certificate: QuorumCertificate) -> None:
        self.executor.on_commit(blocks, certificate)

    def _on_committing(self, blocks: Sequence[Block]) -> None:
        sealed = self.sealed
        if sealed is None:
            return
        # shares go out at the commit (closing an epoch needs the commit, not this member's
        # copy of it on disk, nor the executor catching up); and while an epoch holding sealed
        # intents waits for a committed block past it, this member's leader proposes from its
        # end on without waiting for the idle timer (the replica ends the hurry itself once
        # that block is committed and announced)
        for block in blocks:
            sealed.on_committed(block.timestamp, block.payload)
        due = sealed.closing_block_due_ms()
        if due is not None:
            self.member.hurry(due)

    def _committed(self, from_height: int) -> Iterator[tuple[Block, QuorumCertificate | None]]:
        for entry in self.member.store.committed_entries(from_height):
            yield entry.block, entry.certificate

    def connect_settlement(self, settlement: SettlementService) -> None:
        """Carry the settlement's batch signatures to and from the other members (before
        ``start``: a frame on a channel nobody handles closes its link)."""
        self._settlement = settlement
        transport = self.member.transport
        settlement.attach_broadcast(
            lambda payload: transport.broadcast(CHANNEL_SETTLEMENT, payload)
        )
        transport.register(
            CHANNEL_SETTLEMENT, lambda member, payload: settlement.on_peer_signature(payload)
        )

    def _on_equivocation(self, report: ReportEquivocation) -> None:
        """Two messages one member signed for one view: proof for the contract to slash it."""
        settlement = self._settlement
        if settlement is None:
            return
        try:
            evidence = evidence_of(self.committee, report)
        except ValueError:
            _log.exception("equivocation report that makes no evidence")
            return
        settlement.submit_evidence(evidence)

    async def start(self) -> None:
        # a system item's nonce: the start time and a counter, unique across restarts
        self._nonce_base = self._clock() << 20
        await self.member.start()
        self.executor.note_history(NOTED_BLOCKS, self.member.committed_height)
        self.executor.start()

    async def stop(self) -> None:
        await self.executor.stop()
        await self.member.stop()
        if self.sealed is not None:
            self.sealed.close()

    async def submit(self, items: Sequence[bytes]) -> None:
        """Durable in this member's intake (the receipt's promise), then ordered by the
        committee."""
        await self.member.submit(items)

    async def submit_sealed(self, envelopes: Sequence[bytes]) -> None:
        """Sealed envelopes (checked by ``asyncdex.fairness.intake``), durable in this member's
        intake, then ordered by the committee still sealed."""
        if self.sealed is None:
            raise RuntimeError("this committee has no sealing key configured")
        await self.member.submit([sealed_item(envelope) for envelope in envelopes])

    def sealing_json(self) -> dict[str, Any] | None:
        """The ``sealing`` object of ``GET /v1/venue`` (None without sealing)."""
        sealing = self.settings.sealing
        if sealing is None:
            return None
        return {
            "epoch": self._clock() // sealing.epoch_ms,
            "epoch_ms": sealing.epoch_ms,
            "public_key": "0x" + sealing.key.public_key.hex(),
        }

    def system_item(self, command: Command) -> bytes:
        nonce = self._nonce_base + next(self._nonces)
        return system_item(self.committee, self.settings.index, self._signer, nonce, command)

    def relayed_item(
        self, scheme: str, inputs: list[Any], command: Command, signature: bytes
    ) -> bytes:
        nonce = self._nonce_base + next(self._nonces)
        return relayed_item(
            self.committee, self.settings.index, self._signer, nonce, scheme, inputs, command,
            signature,
        )  # fmt: skip

    def ordered(self, intent_id: bytes) -> Ordered | None:
        return self.executor.ordered(intent_id)

    def status_json(self) -> dict[str, Any]:
        status = {_camel(key): value for key, value in self.member.status_json().items()}
        status["member"] = self.settings.index
        status["members"] = ["0x" + address.hex() for address in self.committee.members]
        status["executedHeight"] = self.executor.next_height - 1
        status["refusedItems"] = dict(self.decoder.refused)
        if self.sealed is not None:
            status["sealing"] = self.sealed.status_json()
        return status


def ordered_json(ordered: Ordered) -> dict[str, Any]:
    certificate = ordered.certificate
    return {
        "height": ordered.height,
        "view": ordered.view,
        "blockHash": "0x" + ordered.block_hash.hex(),
        "atMs": ordered.at_ms,
        "certificate": None
        if certificate is None
        else {
            "view": certificate.view,
            "blockHash": "0x" + certificate.block_hash.hex(),
            "signers": list(certificate.signers),
        },
    }


def evidence_of(
    committee: Committee, report: ReportEquivocation
) -> VoteEquivocation | ProposalEquivocation:
    """The contract's evidence for two votes or two proposals of one member in one view."""
    first, second = report.first, report.second
    member = committee.members[first.sender]
    if isinstance(first, Vote) and isinstance(second, Vote):
        return vote_equivocation(
            committee.domain, member, first.view, first.block_hash, first.signature,
            second.block_hash, second.signature,
        )  # fmt: skip
    if isinstance(first, Proposal) and isinstance(second, Proposal):
        return proposal_equivocation(
            committee.domain, member, first.block.view, first.block.hash, first.signature,
            second.block.hash, second.signature,
        )  # fmt: skip
    raise ValueError("a vote and a proposal are no equivocation")
