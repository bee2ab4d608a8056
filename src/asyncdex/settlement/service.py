"""Settlement inside the node: L1 watcher, batcher, poster, time ticks and protective mode.

Invariants:

- The batcher sees exactly the records the engine applies, in seq order: the node calls
  ``before_record`` before applying each record and ``after_record`` after it. Cut points are
  a function of the record stream alone (see :mod:`asyncdex.settlement.batcher`).
- Resume by replay. At start the journal is replayed from seq 1 through a fresh engine and the
  batcher (:meth:`SettlementService.recover`), which re-cuts byte-identical batches, and every
  one goes to a new poster. The poster reads the contract's last batch before sending and
  sends only the batches after it, each once, in order; it compares its root of the chain's
  last batch with the committed one and halts on a difference. So a restart commits no batch
  twice and skips none, and the contract refuses a repeat or a gap in any case. The replayed
  engine is the node's engine: nothing is applied twice. Snapshots are still written (journal
  tools use them), but a settling node does not start from one (see docs/settlement.md).
- L1 messages reach the engine only through the watcher, ``confirmations`` blocks deep, as
  sequenced commands. The operator's ``deposit`` system command is refused while settlement
  runs: a second path would give the engine an L1 index the contract never issued.
- Every chain call runs on one worker thread (``thread_offload``): the event loop never waits
  on the chain, so intake, sequencing and execution go on while the chain is slow or down.
  That thread's Python work (encoding and decoding calls, a millisecond or more each) holds
  the interpreter lock, so while the node settles the lock's switch interval is at most
  ``SWITCH_INTERVAL_S``: the event loop gets the lock back within that, not CPython's 5 ms.
  The node starts with the chain down: batches cut before the chain is reached wait here and
  go to the poster once it is.
- Time ticks: ``AdvanceTime`` is sequenced every ``tick_ms``, so an idle venue's open batch
  closes, and expiries, funding and mark refreshes run without traffic.
- Protective mode follows the committed lag with hysteresis: the node sequences
  ``SetProtectiveMode(True)`` when the newest committed record trails the newest applied one
  by more than ``max_lag_ms`` of sequenced time, or settlement stopped (the poster halted, or
  the chain refuses the node's configuration); and ``SetProtectiveMode(False)`` once the lag
  is below half the bound and settlement runs. The engine's own flag is the state compared
  against, so a restart picks up where it was.
- ``censor_forced_requests`` (tests only; the CLI refuses it outside test mode) drops forced
  requests in the watcher's submit, to exercise the escape hatch end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.engine.build import build_engine
from asyncdex.engine.reader import EngineLike
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.messages.commands import (
    AdvanceTime,
    Command,
    ForceCancelAll,
    ForceWithdraw,
    SetProtectiveMode,
)
from asyncdex.messages.events import Event
from asyncdex.sequencer.journal import FileJournal
from asyncdex.sequencer.records import Record, decode_trusted_record
from asyncdex.sequencer.recovery import Recovered, ReplayGap
from asyncdex.settlement.batch import CutBatch, withdrawal_proof
from asyncdex.settlement.batcher import Batcher, BatchSpan
from asyncdex.settlement.certificate import (
    BatchEquivocation,
    ProposalEquivocation,
    VoteEquivocation,
)
from asyncdex.settlement.chain import CommitteeSettlementClient, RpcChain, SettlementClient
from asyncdex.settlement.committee_poster import CommitteePoster
from asyncdex.settlement.devchain import DEV_KEYS, DevChainError, DevChainProcess
from asyncdex.settlement.header_guard import SignedHeaderLog
from asyncdex.settlement.poster import Offload, Poster, PosterHalted, thread_offload
from asyncdex.settlement.watcher import L1Watcher
from asyncdex.types.market import EngineConfig

_log = logging.getLogger(__name__)

SubmitCommands = Callable[[Sequence[Command]], Awaitable[object]]
OnReplayed = Callable[[int, Record, list[Event]], None]

DEFAULT_CONFIRMATIONS = 2
DEFAULT_BATCH_INTERVAL_MS = 1_000
DEFAULT_BATCH_MAX_RECORDS = 10_000
DEFAULT_MAX_LAG_MS = 60_000
DEFAULT_TICK_MS = 250
STOP_GRACE_S = 3.0  # tasks get this long to finish a pass before they are cancelled
FORCED_KINDS = (ForceWithdraw, ForceCancelAll)
TEST_MODE_ENV = "ASYNCDEX_TEST_MODE"
SWITCH_INTERVAL_S = 0.0005
EMBEDDED_CHAIN_SUBDIR = "chain"  # under the node's data directory
SIGNED_HEADERS_FILE = "signed-headers.log"  # a committee member's batch signatures, fsync'd
MAX_EARLY_SIGNATURES = 10_000  # peers' signatures kept until this member's poster exists
DEPLOYMENT_FILE = "deployment.json"  # the embedded contract's address and deployment block


class SettlementError(RuntimeError):
    """Settlement cannot run with this configuration or data directory."""


@dataclass(frozen=True, slots=True)
class EmbeddedChain:
    """The embedded chain (:mod:`asyncdex.settlement.devchain`) with the token and settlement
    contract deployed: py-evm in a process of the node's own, kept in the data directory's
    ``chain`` folder and spoken to over JSON-RPC like any other chain, so it survives a
    restart and never runs on the node's interpreter.
    """

    process: DevChainProcess
    client: SettlementClient  # over JSON-RPC to ``process``
    funder_key: bytes  # a funded key: mints test tokens and pays dev deposits
    deploy_block: int  # the contract's deployment block: log scans start there
    deployed_now: bool  # deployed by this start (a new chain), not found in the directory

    @property
    def url(self) -> str:
        return self.process.url

    def close(self) -> None:
        """Stop the chain process (what it answered is already on disk)."""
        self.process.close()


def deploy_embedded(
    engine_config: EngineConfig,
    sequencer_key: bytes | None,
    *,
    data_dir: str | os.PathLike[str],
    finality_blocks: int,
    forced_deadline_blocks: int,
    block_time_ms: int,
) -> tuple[EmbeddedChain, bytes]:
    """Start the embedded chain kept in ``data_dir/chain``; on its first start deploy an
    open-mint token and the settlement contract whose genesis root is the empty venue's (the
    deployment is then recorded beside the chain, and later starts find it there). Returns
    the chain and the sequencer key (a funded dev key unless one is given).

    ``finality_blocks`` and ``forced_deadline_blocks`` are the deployment's: a restart keeps
    the contract, and with it the values it was deployed with.
    """
    directory = Path(data_dir) / EMBEDDED_CHAIN_SUBDIR
    try:
        process = DevChainProcess.start(directory, block_time_ms=block_time_ms)
    except DevChainError as exc:
        raise SettlementError(str(exc)) from None
    try:
        chain = RpcChain(process.url, DEV_KEYS)
        deployer, default_sequencer = chain.funded_keys[0], chain.funded_keys[1]
        key = default_sequencer if sequencer_key is None else sequencer_key
        record_path = directory / DEPLOYMENT_FILE
        if record_path.exists():
            record = json.loads(record_path.read_text())
            address = record["settlement"]
            if not chain.w3.eth.get_code(Web3.to_checksum_address(address)):
                raise SettlementError(
                    f"{record_path} names contract {address}, which the chain in {directory} "
                    "does not hold: its state is not the one the venue settled on"
                )
            client = SettlementClient.at(chain, address)
            embedded = EmbeddedChain(process, client, deployer, record["deployBlock"], False)
            return embedded, key
        deploy_block = chain.block_number
        client = SettlementClient.deploy(
            chain,
            deployer,
            Account.from_key(key).address,
            finality_blocks,
            forced_deadline_blocks,
            state_root(Engine(engine_config).state),
        )
        record = {
            "settlement": client.address,
            "token": client.token.address,
            "deployBlock": deploy_block,
            "sequencer": Account.from_key(key).address,
        }
        _write_atomically(record_path, json.dumps(record, indent=2) + "\n")
        return EmbeddedChain(process, client, deployer, deploy_block, True), key
    except BaseException:
        process.close()
        raise


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(frozen=True, slots=True)
class SettlementSettings:
    """How the node settles. Exactly one of ``rpc_url`` (with ``contract``) or ``embedded``."""

    sequencer_key: bytes
    rpc_url: str | None = None
    contract: bytes | None = None
    embedded: EmbeddedChain | None = None
    expected_chain_id: int | None = None  # the signing domain's; settlement refuses another
    confirmations: int = DEFAULT_CONFIRMATIONS
    batch_interval_ms: int = DEFAULT_BATCH_INTERVAL_MS
    batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS
    max_lag_ms: int = DEFAULT_MAX_LAG_MS  # 0: lag never turns protective mode on
    tick_ms: int = DEFAULT_TICK_MS
    from_block: int = 0  # the contract's deployment block (or any block before it)
    poll_interval_s: float = 0.5
    backoff_max_s: float = 5.0  # the poster's retry delay cap: catch-up starts soon after
    rpc_timeout_s: float = 5.0
    max_in_flight: int = 4
    censor_forced_requests: bool = False
    # A committee member's key (secp256k1 secret): the contract is then CommitteeSettlement,
    # batches are signed by this key and posted with a quorum's certificate
    # (``committee_poster``); ``sequencer_key`` only pays for the transactions.
    member_secret: bytes | None = None

    def __post_init__(self) -> None:
        if (self.rpc_url is None) == (self.embedded is None):
            raise SettlementError("settle on either a JSON-RPC chain or the embedded one")
        if self.rpc_url is not None and self.contract is None:
            raise SettlementError("a JSON-RPC chain needs the settlement contract address")
        if self.confirmations < 1:
            raise SettlementError("confirmations count the message's own block: at least 1")
        if self.batch_interval_ms < 1 or self.batch_max_records < 1 or self.tick_ms < 1:
            raise SettlementError("batch interval, batch size and tick must be positive")
        if self.max_lag_ms < 0:
            raise SettlementError("the settlement lag bound must not be negative")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


class SettlementService:
    """The node's settlement: ``recover`` (replay) at start, the record hooks while running,
    ``start``/``stop`` for the background tasks, and read-only queries for the API."""

    def __init__(
        self,
        settings: SettlementSettings,
        engine_config: EngineConfig,
        clock: Callable[[], int],
    ) -> None:
        if settings.censor_forced_requests and os.environ.get(TEST_MODE_ENV) != "1":
            raise SettlementError(
                f"censoring forced requests is for tests only ({TEST_MODE_ENV}=1)"
            )
        self.settings = settings
        self.engine_config = engine_config
        self.clock = clock
        self.genesis_root = state_root(Engine(engine_config).state)
        self.batcher: Batcher | None = None
        self.client: SettlementClient | None = None
        self.poster: Poster | None = None
        self.watcher: L1Watcher | None = None
        self.chain_id: int | None = None
        self.finality_blocks: int | None = None
        self.head_seq = 0
        self.connect_error = ""
        self.fatal_error = ""  # a configuration the chain refuses (wrong chain, wrong key)
        self.censored: list[Command] = []
        self.protective_requests = 0
        self._unposted: list[CutBatch] = []  # cut before the poster exists
        self._batch_withdrawals: dict[int, tuple[tuple[int, bytes, int], ...]] = {}
        self._withdrawal_batch: dict[int, int] = {}
        self._synced = False  # the poster has read the chain at least once
        self._started_ms = 0
        self._protective_in_flight = False
        self._submit: SubmitCommands | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        # One worker: chain calls are serialised on one connection (and py-evm is not
        # thread-safe), and none of them ever runs on the event loop.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="asyncdex-chain")
        self._offload: Offload = thread_offload(self._executor)
        self._data_dir: Path | None = None
        # committee mode: how this member's batch signatures reach the others, and peers'
        # signatures that arrived before the poster existed
        self._broadcast: Callable[[bytes], None] | None = None
        self._early_signatures: list[bytes] = []
        # committee mode: misbehaviour proven by two signatures, and what the chain said
        self.evidence_submitted: list[dict[str, Any]] = []
        self._evidence_members: set[tuple[str, bytes]] = set()

    # ------------------------------------------------------------------ start: replay

    def recover(
        self,
        journal_dir: str | os.PathLike[str],
        on_record: OnReplayed | None = None,
        tail: int = 0,
        engine_kind: str = "reference",
    ) -> Recovered:
        """Open the journal and replay it from seq 1 through a fresh engine and the batcher.

        The batches cut here are the ones cut before the restart, byte for byte; they wait for
        the poster, which skips those the chain already has. ``on_record`` sees the last
        ``tail`` records replayed, with their events. ``engine_kind`` is the engine built
        (``asyncdex.engine.build``); a native engine hands each cut a whole reference
        ``State`` (``full_state``), which costs an export per batch.
        """
        self._data_dir = Path(journal_dir).parent
        journal, report = FileJournal.open(journal_dir)
        try:
            last_seq = journal.last_seq
            embedded = self.settings.embedded
            if embedded is not None and embedded.deployed_now and last_seq > 0:
                raise SettlementError(
                    f"the journal has {last_seq} records but the embedded chain was deployed "
                    f"afresh: its state ({EMBEDDED_CHAIN_SUBDIR}/ in the data directory) is "
                    "missing, and the venue cannot settle on another contract"
                )
            if last_seq >= journal.first_seq > 1:
                raise SettlementError(
                    f"the journal starts at seq {journal.first_seq}: settlement replays from 1"
                )
            engine = build_engine(engine_kind, self.engine_config)
            batcher = Batcher(
                engine,
                self._on_cut,
                max_records=self.settings.batch_max_records,
                max_interval_ms=self.settings.batch_interval_ms,
                genesis_root=self.genesis_root,
            )
            expected = 1
            records = journal.read(1)
            try:
                for seq, payload in records:
                    if seq > last_seq:
                        break
                    if seq != expected:
                        raise ReplayGap(expected, seq)
                    record = decode_trusted_record(payload)
                    batcher.before_record(record.timestamp)
                    events = engine.apply(record.command, record.timestamp)
                    batcher.after_record(seq, record.timestamp, events)
                    if on_record is not None and seq > last_seq - tail:
                        on_record(seq, record, events)
                    expected = seq + 1
            finally:
                close = getattr(records, "close", None)
                if close is not None:
                    close()
            if expected <= last_seq:
                raise ReplayGap(expected, None)
        except BaseException:
            journal.close()
            raise
        self.batcher = batcher
        self.head_seq = last_seq
        return Recovered(
            engine=engine,
            journal=journal,
            report=report,
            snapshot_seq=0,
            last_seq=last_seq,
            state_root=engine.state_root(),
            replayed=last_seq,
        )

    @property
    def engine(self) -> EngineLike:
        assert self.batcher is not None, "recover() first"
        return self.batcher.engine

    # ------------------------------------------------------------------ record hooks

    def before_record(self, timestamp: int) -> None:
        assert self.batcher is not None
        self.batcher.before_record(timestamp)

    def after_record(self, seq: int, timestamp: int, events: Sequence[Event]) -> None:
        assert self.batcher is not None
        self.batcher.after_record(seq, timestamp, events)
        self.head_seq = seq

    def _on_cut(self, batch: CutBatch) -> None:
        if batch.withdrawals:
            self._batch_withdrawals[batch.number] = batch.withdrawals
            for withdrawal_id, _, _ in batch.withdrawals:
                self._withdrawal_batch[withdrawal_id] = batch.number
        if self.poster is None:
            self._unposted.append(batch)
        else:
            self.poster.enqueue(batch)

    # ------------------------------------------------------------------ tasks

    async def start(self, submit: SubmitCommands) -> None:
        """Start the ticker, then reach the chain (retrying) and run the watcher and poster."""
        assert self.batcher is not None, "recover() first"
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._submit = submit
        self._stop = asyncio.Event()
        self._started_ms = self.clock()
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="settlement-ticks"),
            asyncio.create_task(self._chain_loop(), name="settlement-chain"),
        ]

    async def stop(self) -> None:
        """Stop the tasks (a pass in progress may finish), and release the chain thread."""
        if self._stop is not None:
            self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        for task in list(self._side_tasks):
            task.cancel()
        await asyncio.gather(*self._side_tasks, return_exceptions=True)
        # A call stuck on a dead connection ends with its timeout; nothing waits for it here.
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.settings.embedded is not None:
            # the node started its chain and takes it down (it is durable: nothing to save)
            await asyncio.to_thread(self.settings.embedded.close)

    async def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stopped; True when stopped."""
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def _tick_loop(self) -> None:
        assert self._submit is not None
        interval = self.settings.tick_ms / 1000
        while not await self._sleep(interval):
            try:
                await self._submit([AdvanceTime()])
            except Exception as exc:
                # The sequencer is closing or the journal failed: the node is stopping.
                _log.debug("time tick not sequenced: %r", exc)
                continue
            self._spawn_protective_check()

    async def _chain_loop(self) -> None:
        """Reach the chain, then run the watcher beside the poster until stopped."""
        while self.client is None:
            try:
                await self._offload(self._connect)
            except SettlementError as exc:
                self.fatal_error = str(exc)
                _log.error("settlement cannot run: %s", exc)
                self._spawn_protective_check()
                return
            except Exception as exc:
                self.connect_error = f"{type(exc).__name__}: {exc}"
                _log.warning("settlement chain unreachable: %s", self.connect_error)
                if await self._sleep(self.settings.backoff_max_s):
                    return
        self.connect_error = ""
        client = self.client
        settings = self.settings
        poster = await self._new_poster(client)
        for batch in self._unposted:
            poster.enqueue(batch)
        self._unposted = []
        self.poster = poster
        self.watcher = L1Watcher(
            client,
            self._submit_l1,
            start_index=self.engine.state.l1_consumed,
            confirmations=settings.confirmations,
            start_block=settings.from_block,
            offload=self._offload,
        )
        assert self._stop is not None
        watching = asyncio.create_task(
            self.watcher.run(self._stop, settings.poll_interval_s), name="settlement-watcher"
        )
        try:
            await self._post_loop(poster)
        except Exception as exc:
            # A bug, not the chain (the poster's own failures are retried inside): settle no
            # further and say so, rather than leave the venue trading on a dead poster.
            _log.exception("poster loop failed")
            self.fatal_error = f"poster loop failed: {exc!r}"
            self._spawn_protective_check()
        finally:
            await watching

    async def _new_poster(self, client: SettlementClient) -> Poster:
        settings = self.settings
        options: dict[str, Any] = {
            "genesis_root": self.genesis_root,
            "max_in_flight": settings.max_in_flight,
            "backoff_max_s": settings.backoff_max_s,
            "poll_interval_s": settings.poll_interval_s,
            "from_block": settings.from_block,
            "offload": self._offload,
        }
        if settings.member_secret is None:
            return Poster(client, settings.sequencer_key, **options)
        assert isinstance(client, CommitteeSettlementClient) and self._data_dir is not None
        members = await self._offload(client.members)
        poster = CommitteePoster(
            client,
            Secp256k1Signer(settings.member_secret),
            members,
            self._broadcast_signature,
            SignedHeaderLog(self._data_dir / SIGNED_HEADERS_FILE),
            settings.sequencer_key,
            **options,
        )
        for payload in self._early_signatures:
            poster.on_signature(payload)
        self._early_signatures = []
        return poster

    def attach_broadcast(self, broadcast: Callable[[bytes], None]) -> None:
        """Committee mode: how this member's batch signatures reach the other members."""
        self._broadcast = broadcast

    def on_peer_signature(self, payload: bytes) -> None:
        """Committee mode: a batch signature from another member (checked by the poster)."""
        poster = self.poster
        if isinstance(poster, CommitteePoster):
            poster.on_signature(payload)
        elif len(self._early_signatures) < MAX_EARLY_SIGNATURES:
            self._early_signatures.append(payload)

    def submit_evidence(
        self, evidence: BatchEquivocation | VoteEquivocation | ProposalEquivocation
    ) -> None:
        """Committee mode: send proof of a member's misbehaviour to the contract, which slashes
        the member's bond (a share to this member's sender key, the reporter). Once per
        member and kind; the outcome is kept for ``status_json``."""
        kind = type(evidence).__name__
        if (kind, evidence.member) in self._evidence_members:
            return
        self._evidence_members.add((kind, evidence.member))
        task = asyncio.get_running_loop().create_task(self._submit_evidence(evidence))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _submit_evidence(
        self, evidence: BatchEquivocation | VoteEquivocation | ProposalEquivocation
    ) -> None:
        entry: dict[str, Any] = {
            "kind": type(evidence).__name__,
            "member": "0x" + evidence.member.hex(),
            "txHash": None,
            "error": None,
        }
        self.evidence_submitted.append(entry)
        while self.client is None:
            if await self._sleep(self.settings.poll_interval_s):
                return
        client = self.client
        assert isinstance(client, CommitteeSettlementClient)
        slash = {
            BatchEquivocation: client.slash_batch_equivocation,
            VoteEquivocation: client.slash_vote_equivocation,
            ProposalEquivocation: client.slash_proposal_equivocation,
        }[type(evidence)]
        try:
            receipt = await self._offload(partial(slash, self.settings.sequencer_key, evidence))
            entry["txHash"] = "0x" + bytes(receipt["transactionHash"]).hex()
            _log.warning("member %s slashed for %s", entry["member"], entry["kind"])
        except Exception as exc:  # another member's report may have landed first
            entry["error"] = f"{type(exc).__name__}: {exc}"

    def _broadcast_signature(self, payload: bytes) -> None:
        if self._broadcast is not None:
            self._broadcast(payload)

    def _connect(self) -> None:
        """On the chain thread: the client, checked against the node's configuration."""
        settings = self.settings
        if settings.embedded is not None:
            url, address = settings.embedded.url, str(settings.embedded.client.address)
        else:
            assert settings.rpc_url is not None and settings.contract is not None
            url, address = settings.rpc_url, "0x" + settings.contract.hex()
        chain = RpcChain(url, timeout_s=settings.rpc_timeout_s, retry=False)
        client: SettlementClient
        if settings.member_secret is None:
            client = SettlementClient.at(chain, address)
        else:
            client = CommitteeSettlementClient.at(chain, address)
        chain_id = client.chain.chain_id
        if settings.expected_chain_id is not None and chain_id != settings.expected_chain_id:
            raise SettlementError(
                f"the chain's id is {chain_id}, the venue's signing domain says "
                f"{settings.expected_chain_id}"
            )
        if isinstance(client, CommitteeSettlementClient):
            assert settings.member_secret is not None
            member = Secp256k1Signer(settings.member_secret).address
            if member not in client.members():
                raise SettlementError(f"0x{member.hex()} is not a member of the contract's set")
        else:
            ours = Account.from_key(settings.sequencer_key).address
            theirs = client.sequencer_address()
            if theirs != ours:
                raise SettlementError(f"the contract's sequencer is {theirs}, our key is {ours}")
        self.finality_blocks = client.finality_blocks()
        self.chain_id = chain_id
        self.client = client

    async def _post_loop(self, poster: Poster) -> None:
        failures_logged = 0
        while True:
            delay = self.settings.poll_interval_s
            try:
                await poster.run_once()
                self._synced = True
                if isinstance(poster, CommitteePoster):
                    for evidence in poster.evidence:  # a member signed two headers for one batch
                        self.submit_evidence(evidence)
                if failures_logged:
                    _log.warning("poster reached the chain again after %d failed passes",
                                 failures_logged)  # fmt: skip
                failures_logged = 0
            except PosterHalted as halted:
                _log.error("settlement halted: %s", halted)
                self._spawn_protective_check()
                return
            except Exception:
                if poster.retry_delays:
                    delay = poster.retry_delays[-1]
                if failures_logged < 3 or poster.failures % 20 == 0:
                    _log.warning(
                        "poster pass failed (%d in a row): %s", poster.failures, poster.last_error
                    )
                failures_logged += 1
            if await self._sleep(delay):
                return

    async def _submit_l1(self, commands: Sequence[Command]) -> None:
        assert self._submit is not None
        if self.settings.censor_forced_requests:
            dropped = [command for command in commands if isinstance(command, FORCED_KINDS)]
            if dropped:
                _log.warning("TEST MODE: censoring %d forced request(s)", len(dropped))
                self.censored.extend(dropped)
                commands = [c for c in commands if not isinstance(c, FORCED_KINDS)]
            if not commands:
                return
        await self._submit(commands)

    # ------------------------------------------------------------------ protective mode

    def lag_ms(self) -> int:
        """Sequenced milliseconds between the newest applied record and the newest committed
        one. Before the poster has read the chain it counts from this start (a lower bound:
        what was sequenced since is certainly not committed)."""
        engine_time = self.engine.state.time
        poster = self.poster
        if poster is None or not self._synced:
            return max(0, engine_time - self._started_ms)
        lag = poster.lag(self.head_seq, engine_time)
        if lag.committed_ms is not None:
            return max(0, lag.committed_ms)
        assert self.batcher is not None
        if not self.batcher.batches:
            return 0  # nothing cut yet: the open batch is not due on chain
        return max(0, engine_time - self.batcher.batches[0].first_timestamp)

    @property
    def halted(self) -> bool:
        return bool(self.fatal_error) or (
            self.poster is not None and self.poster.halted is not None
        )

    def desired_protective(self) -> bool | None:
        """True or False when protective mode should change to it; None to keep it as is."""
        if self.halted:
            return True
        bound = self.settings.max_lag_ms
        if bound == 0:
            return False
        lag = self.lag_ms()
        if lag > bound:
            return True
        if 2 * lag < bound:
            return False
        return None

    def _spawn_protective_check(self) -> None:
        desired = self.desired_protective()
        if desired is None or desired == self.engine.state.protective:
            return
        if self._protective_in_flight or self._submit is None:
            return
        self._protective_in_flight = True
        task = asyncio.create_task(self._set_protective(desired), name="protective-mode")
        # The loop keeps only weak references to tasks: hold it until it is done.
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _set_protective(self, enabled: bool) -> None:
        assert self._submit is not None
        try:
            _log.warning(
                "%s protective mode: settlement lag %d ms (bound %d), halted %s",
                "entering" if enabled else "leaving",
                self.lag_ms(),
                self.settings.max_lag_ms,
                self.halted,
            )
            await self._submit([SetProtectiveMode(enabled)])
            self.protective_requests += 1
        except Exception as exc:
            _log.debug("protective mode not sequenced: %r", exc)
        finally:
            self._protective_in_flight = False

    # ------------------------------------------------------------------ queries

    def batch_of_seq(self, seq: int) -> BatchSpan | None:
        assert self.batcher is not None
        return self.batcher.batch_of_seq(seq)

    def settled_status(self, seq: int) -> tuple[str | None, int | None, bytes | None]:
        """("committed" | "finalized" | None, batch number, commit tx hash) for an applied
        record; None while its batch is open or not on chain yet."""
        span = self.batch_of_seq(seq)
        number = None if span is None else span.number
        if self.poster is None or span is None:
            return None, number, None
        status, tx_hash, _ = self.poster.status_of_seq(seq)
        if status == "sequenced":
            return None, number, None
        return status, number, tx_hash

    def withdrawal_proof(self, withdrawal_id: int) -> dict[str, Any] | None:
        """What ``claimWithdrawal`` takes for withdrawal ``withdrawal_id``, once it is in a cut
        batch; None before."""
        number = self._withdrawal_batch.get(withdrawal_id)
        if number is None:
            return None
        withdrawals = self._batch_withdrawals[number]
        index, proof = withdrawal_proof(withdrawals, withdrawal_id)
        _, account, amount = withdrawals[index]
        assert self.batcher is not None
        span = self.batcher.batches[number - 1]
        status, tx_hash = "cut", None
        if self.poster is not None:
            posting = self.poster.posting(number)
            if posting.finalized:
                status, tx_hash = "finalized", posting.tx_hash
            elif posting.committed:
                status, tx_hash = "committed", posting.tx_hash
        return {
            "withdrawalId": withdrawal_id,
            "account": "0x" + account.hex(),
            "amount": amount,
            "batch": number,
            "index": index,
            "proof": ["0x" + node.hex() for node in proof],
            "withdrawalsRoot": "0x" + span.withdrawals_root.hex(),
            "status": status,
            "claimable": status == "finalized",
            "txHash": _hex(tx_hash),
        }

    def _span_json(self, number: int) -> dict[str, Any] | None:
        assert self.batcher is not None
        if number < 1 or number > len(self.batcher.batches):
            return None
        span = self.batcher.batches[number - 1]
        # Once the poster exists every cut batch was handed to it, so it knows ``number``.
        tx_hash = None if self.poster is None else self.poster.posting(number).tx_hash
        return {
            "number": number,
            "firstSeq": span.first_seq,
            "lastSeq": span.last_seq,
            "stateRoot": "0x" + span.state_root.hex(),
            "txHash": _hex(tx_hash),
        }

    def status_json(self) -> dict[str, Any]:
        settings = self.settings
        assert self.batcher is not None
        poster, watcher = self.poster, self.watcher
        engine_time = self.engine.state.time
        lag = None if poster is None else poster.lag(self.head_seq, engine_time)
        committed = 0 if poster is None else poster.committed_number
        finalized = 0 if poster is None else poster.finalized_number
        contract = settings.contract
        if settings.embedded is not None:
            contract = bytes.fromhex(settings.embedded.client.address[2:])
        return {
            "chain": "embedded" if settings.embedded is not None else "rpc",
            # the embedded chain's JSON-RPC URL (loopback), for tools that read the contract
            "embeddedRpc": None if settings.embedded is None else settings.embedded.url,
            "chainId": self.chain_id,
            "contract": _hex(contract),
            "connected": self.client is not None,
            "connectError": self.connect_error or None,
            "fatalError": self.fatal_error or None,
            "finalityBlocks": self.finality_blocks,
            "cutBatches": len(self.batcher.batches),
            "openRecords": self.batcher.open_records,
            "lastCommittedBatch": committed,
            "lastFinalizedBatch": finalized,
            "pendingBatches": len(self.batcher.batches) - committed,
            "lastCommitted": self._span_json(committed),
            "lastFinalized": self._span_json(finalized),
            "lag": {
                "committedRecords": None if lag is None else lag.committed_records,
                "committedMs": None if lag is None else lag.committed_ms,
                "finalizedRecords": None if lag is None else lag.finalized_records,
                "finalizedMs": None if lag is None else lag.finalized_ms,
                "protectiveLagMs": self.lag_ms(),
            },
            "maxLagMs": settings.max_lag_ms,
            "protectiveMode": self.engine.state.protective,
            "posterHalted": None if poster is None or poster.halted is None
            else poster.halted.reason,
            "posterFailures": 0 if poster is None else poster.failures,
            "posterError": (poster.last_error or None) if poster is not None else None,
            "l1Consumed": self.engine.state.l1_consumed,
            "watcher": None if watcher is None else {
                "nextIndex": watcher.next_index,
                "submitted": watcher.submitted,
                "failures": watcher.failures,
                "lastError": watcher.last_error or None,
            },
            "protectiveModeChanges": self.protective_requests,
            "censoredForcedRequests": len(self.censored),
            "evidenceSubmitted": list(self.evidence_submitted),
        }  # fmt: skip

    # ------------------------------------------------------------------ embedded chain (demo)

    async def dev_deposit(self, account: bytes, amount: int) -> tuple[int, bytes]:
        """Embedded chain only: mint test tokens and deposit them for ``account`` on chain;
        the watcher then sequences the deposit like any other. Returns (L1 index, tx hash)."""
        embedded = self.settings.embedded
        if embedded is None:
            raise SettlementError("dev deposits exist only on the embedded chain")
        return await self._offload(partial(_mint_and_deposit, embedded, account, amount))

    async def dev_claim(self, withdrawal_id: int) -> DevClaim:
        """Embedded chain only: send ``claimWithdrawal`` for ``withdrawal_id`` from the chain's
        funded dev key (the contract pays the withdrawal's account whoever calls). The
        contract decides: a batch not final or a claim already made raises
        ``ContractReverted`` with its error; a withdrawal in no cut batch raises
        ``LookupError``."""
        embedded = self.settings.embedded
        if embedded is None:
            raise SettlementError("dev claims exist only on the embedded chain")
        proof = self.withdrawal_proof(withdrawal_id)
        if proof is None:
            raise LookupError(f"withdrawal {withdrawal_id} is in no batch yet (or does not exist)")
        return await self._offload(partial(_claim, embedded, proof))


@dataclass(frozen=True, slots=True)
class DevClaim:
    """A claim paid on the embedded chain, with the account's token balance around it."""

    withdrawal_id: int
    account: str
    amount: int
    tx_hash: bytes
    balance_before: int
    balance_after: int


def _claim(embedded: EmbeddedChain, proof: dict[str, Any]) -> DevClaim:
    client, account = embedded.client, proof["account"]
    before = client.token_balance(account)
    receipt = client.claim_withdrawal(
        embedded.funder_key,
        proof["batch"],
        proof["withdrawalId"],
        account,
        proof["amount"],
        [bytes.fromhex(node[2:]) for node in proof["proof"]],
        proof["index"],
    )
    return DevClaim(
        withdrawal_id=proof["withdrawalId"],
        account=account,
        amount=proof["amount"],
        tx_hash=bytes(receipt["transactionHash"]),
        balance_before=before,
        balance_after=client.token_balance(account),
    )


def _mint_and_deposit(embedded: EmbeddedChain, account: bytes, amount: int) -> tuple[int, bytes]:
    client, key = embedded.client, embedded.funder_key
    funder = Account.from_key(key).address
    client.mint(key, funder, amount)
    client.approve(key, amount)
    receipt = client.deposit(key, amount, "0x" + account.hex())
    # DISCARD: the receipt also holds the token's Transfer log, which is not an L1Message.
    (event,) = client.contract.events.L1Message().process_receipt(receipt, errors=DISCARD)
    return int(event["args"]["index"]), bytes(receipt["transactionHash"])


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A 32-byte private key from a file holding its hex (``0x`` optional)."""
    try:
        text = Path(path).read_text().strip().removeprefix("0x")
    except OSError as exc:
        raise SettlementError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SettlementError(f"{path}: not a hex private key") from None
    if len(key) != 32:
        raise SettlementError(f"{path}: a private key is 32 bytes")
    return key


__all__ = [
    "DevClaim",
    "EmbeddedChain",
    "SettlementError",
    "SettlementService",
    "SettlementSettings",
    "deploy_embedded",
    "read_key_file",
]
