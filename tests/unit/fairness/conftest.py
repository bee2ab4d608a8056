"""Shared fixtures: a committee key made by a real DKG run (seeded), a venue and a trader."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.sealing import SealingKey, venue_id
from asyncdex.fairness.threshold import CommitteeKey, KeyShare
from asyncdex.signing.eip712 import Domain, LocalSigner
from asyncdex.signing.intents import (
    NO_CLIENT_ID,
    PlaceOrder,
    SignedIntent,
    asyncdex_domain,
    sign_intent,
)

N_MEMBERS = 4
THRESHOLD = 2  # f + 1 for n = 3f + 1 = 4


@dataclass(frozen=True)
class Committee:
    key: CommitteeKey
    shares: tuple[KeyShare, ...]


def run_dkg(seed: int, n: int = N_MEMBERS, t: int = THRESHOLD) -> Committee:
    rng = random.Random(seed)
    key, shares = run_local_dkg(n, t, rng.randbytes(32), rng.getrandbits)
    return Committee(key, shares)


@pytest.fixture(scope="session")
def committee() -> Committee:
    return run_dkg(seed=12)


@pytest.fixture(scope="session")
def domain() -> Domain:
    return asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))


@pytest.fixture(scope="session")
def venue(domain: Domain) -> bytes:
    return venue_id(domain)


@pytest.fixture(scope="session")
def trader() -> LocalSigner:
    return LocalSigner(
        bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    )


@pytest.fixture(scope="session")
def sealing_key(domain: Domain, committee: Committee) -> SealingKey:
    return SealingKey(domain, committee.key.public_key)


def place_order(
    signer: LocalSigner, domain: Domain, nonce: int = 1_700_000_000_000, market: int = 1
) -> SignedIntent:
    intent = PlaceOrder(
        account=signer.address,
        nonce=nonce,
        expires_after=0,
        market=market,
        is_buy=True,
        price=2_000_00,
        size=3,
        order_type=0,
        tif=0,
        reduce_only=False,
        client_id=NO_CLIENT_ID,
        expiry=0,
        trigger_price=0,
        trigger_kind=0,
    )
    return sign_intent(signer, domain, intent)
