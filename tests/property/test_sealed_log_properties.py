"""Properties of the sealed-intent log over random block sequences (hypothesis).

A random run: blocks with non-decreasing timestamps over a few epochs, each carrying sealed
envelopes for its own epoch, the one before or the one after, from a few traders; a block
that closes epochs is first offered without their keys (assembled from real decryption
shares), at random, then with them; then blocks until no epoch waits. Checked:

- nothing is dropped or duplicated: each envelope has exactly one final outcome;
- an envelope counts only in a block of its epoch; all others are refused at once;
- a block that closes an epoch does not execute without its key, and changes nothing;
- nothing opens before its epoch is closed, an epoch opens in certified order, right before
  the first block past it;
- an opened intent is exactly the signed bytes its trader sealed;
- two members fed the same blocks produce the same effects (determinism).
"""

from __future__ import annotations

import random
from collections import Counter
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.reveal import KeyAssembler, MissingEpochKey, SealedLog, SealedRejection
from asyncdex.fairness.sealing import Opened, SealingKey, seal_intent, sealed_intent_id, venue_id
from asyncdex.fairness.threshold import CommitteeKey, EpochKey, KeyShare, create_decryption_share
from asyncdex.signing.eip712 import LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    PlaceOrder,
    asyncdex_domain,
    encode_signed_intent,
    sign_intent,
)

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
EPOCH_MS = 100
FIRST = 10  # the first epoch of a run
TRADERS = [LocalSigner(bytes([7 + k]) * 32) for k in range(3)]


@cache
def _committee() -> tuple[CommitteeKey, tuple[KeyShare, ...]]:
    return run_local_dkg(4, 2, bytes(32), random.Random(5).getrandbits)


@cache
def _key(epoch: int) -> EpochKey:
    key, shares = _committee()
    venue = venue_id(DOMAIN)
    made = KeyAssembler(key, DOMAIN).add_all(
        create_decryption_share(s, venue, epoch) for s in shares[1:3]
    )
    assert made
    return made[0]


blocks_strategy = st.lists(
    st.tuples(
        st.integers(0, 60),  # time step to the next block, ms
        st.lists(st.tuples(st.integers(0, 2), st.sampled_from((-1, 0, 0, 0, 1))), max_size=3),
        st.booleans(),  # the keys are at hand at once (else the block is first refused)
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks=blocks_strategy, seed=st.integers(0, 2**32 - 1))
def test_every_sealed_intent_ends_once_in_order_and_the_same_everywhere(
    blocks: list[tuple[int, list[tuple[int, int]], bool]], seed: int
) -> None:
    key, _ = _committee()
    sessions = [SealingKey(DOMAIN, key.public_key) for _ in TRADERS]
    rng = random.Random(seed)
    members = [SealedLog(DOMAIN, key, EPOCH_MS) for _ in range(2)]
    bodies: dict[bytes, bytes] = {}  # sealed id -> the signed bytes sealed
    target_of: dict[bytes, int] = {}
    finals: Counter[bytes] = Counter()
    timestamp = FIRST * EPOCH_MS
    nonce = 0

    def run_block(height: int, stamp: int, wires: list[bytes], keys_at_hand: bool) -> None:
        log = members[0]
        block_epoch = stamp // EPOCH_MS
        closing = [e for e in log.pending_epochs() if e < block_epoch]
        assert log.closes(stamp) == tuple(closing)
        if closing and not keys_at_hand:
            for member in members:
                before = (member.pending_epochs(), member.last_timestamp_ms)
                with pytest.raises(MissingEpochKey):
                    member.apply_block(height, stamp, wires, {})
                assert (member.pending_epochs(), member.last_timestamp_ms) == before
        keys = {e: _key(e) for e in closing}
        effects = [m.apply_block(height, stamp, wires, keys) for m in members]
        assert effects[0] == effects[1]
        effect = effects[0]
        for place in effect.ordered:
            assert place.epoch == block_epoch
        by_epoch: dict[int, list[tuple[int, int]]] = {}
        for outcome in effect.outcomes:
            finals[outcome.sealed_id] += 1
            result = outcome.result
            if isinstance(result, Opened):
                assert outcome.epoch is not None and outcome.epoch < block_epoch
                assert result.body == bodies[outcome.sealed_id]
                by_epoch.setdefault(outcome.epoch, []).append((outcome.height, outcome.index))
            elif result in (SealedRejection.EPOCH_CLOSED, SealedRejection.EPOCH_NOT_OPEN):
                assert outcome.height == height and target_of[outcome.sealed_id] != block_epoch
            else:
                raise AssertionError(f"unexpected outcome {result}")  # every envelope decodes
        assert effect.revealed_epochs == tuple(closing)
        for places in by_epoch.values():
            assert places == sorted(places)

    height = 0
    for step, sends, keys_at_hand in blocks:
        timestamp += step
        height += 1
        wires = []
        for trader_index, offset in sends:
            nonce += 1
            trader = TRADERS[trader_index]
            order = PlaceOrder(
                trader.address, nonce, 0, 1, rng.random() < 0.5, 100 + nonce, 1, 0, 0, False,
                NO_CLIENT_ID, 0, 0, 0,
            )  # fmt: skip
            signed = sign_intent(trader, DOMAIN, order)
            target = timestamp // EPOCH_MS + offset
            wire = seal_intent(sessions[trader_index], trader, signed, target).encode()
            bodies[sealed_intent_id(wire)] = encode_signed_intent(signed)
            target_of[sealed_intent_id(wire)] = target
            wires.append(wire)
        run_block(height, timestamp, wires, keys_at_hand)
    # afterwards: blocks until no epoch waits
    while members[0].pending_epochs():
        timestamp += EPOCH_MS
        height += 1
        run_block(height, timestamp, [], keys_at_hand=False)
    assert set(finals) == set(bodies)
    assert all(count == 1 for count in finals.values())
