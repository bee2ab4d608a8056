"""A committee venue with sealing, in one process: a one-member committee (t = 1) on loopback
orders a sealed intent, closes its epoch, releases its share, assembles the key and journals
the revealed intent — the whole path from ``submit_sealed`` to the journal."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path

from asyncdex.committee.venue import CommitteeSettings, CommitteeVenue, SealingSettings
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.consensus.replica import ReplicaConfig
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.sealing import SealingKey, seal_intent
from asyncdex.messages.commands import Signed
from asyncdex.sequencer.journal import FileJournal, GroupCommitter
from asyncdex.sequencer.sequencer import Sequenced, Sequencer
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import NO_CLIENT_ID, PlaceOrder, asyncdex_domain, sign_intent
from asyncdex.types.hashing import keccak256

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
EPOCH_MS = 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _clock() -> int:
    return int(time.time() * 1000)


async def _run(directory: Path) -> tuple[list[Sequenced], dict[str, object] | None, bytes]:
    key, shares = run_local_dkg(1, 1, bytes(32), random.Random(4).getrandbits)
    secret = keccak256(b"sealed-venue member key")
    member = Secp256k1Signer(secret)
    settings = CommitteeSettings(
        index=0,
        members=(member.address,),
        peers=(("127.0.0.1", _free_port()),),
        secret=secret,
        replica=ReplicaConfig(idle_block_ms=50, base_timeout_ms=500),
        sealing=SealingSettings(key, shares[0], epoch_ms=EPOCH_MS, key_alarm_ms=5_000),
    )
    journal, _ = FileJournal.open(directory / "journal")
    committer = GroupCommitter(journal)
    sequencer = Sequencer(committer, _clock)
    seen: list[Sequenced] = []
    sequencer.add_consumer(seen.extend)
    venue = CommitteeVenue(settings, DOMAIN, sequencer, journal, directory, _clock)
    await venue.start()
    sealing = venue.sealing_json()
    trader = LocalSigner(b"\x44" * 32)
    intent = PlaceOrder(
        trader.address, 5, 0, 0, True, 600_000, 3, 0, 0, False, NO_CLIENT_ID, 0, 0, 0
    )
    signed = sign_intent(trader, DOMAIN, intent)
    epoch = _clock() // EPOCH_MS
    envelope = seal_intent(SealingKey(DOMAIN, key.public_key), trader, signed, epoch)
    await venue.submit_sealed([envelope.encode()])
    try:
        for _ in range(1_000):  # only so that a lost intent fails instead of hanging
            if any(type(r.command) is Signed for r in seen) or venue.executor.failed:
                break
            await asyncio.sleep(0.02)
    finally:
        await venue.stop()
        await sequencer.close()
        committer.close()
        journal.close()
    return seen, sealing, trader.address


def test_a_sealed_intent_goes_from_submit_to_the_journal_revealed(tmp_path: Path) -> None:
    seen, sealing, trader = asyncio.run(_run(tmp_path))
    assert sealing is not None and sealing["epoch_ms"] == EPOCH_MS
    revealed = [r.command for r in seen if type(r.command) is Signed]
    assert len(revealed) == 1, "the sealed intent was not revealed and journaled"
    (command,) = revealed
    assert isinstance(command, Signed)
    assert (command.signer, command.nonce) == (trader, 5)
