"""Joint-Feldman DKG: honest runs agree; a cheating dealer is excluded by a complaint anyone can
check, and the rest still agree on one key that seals and opens."""

from __future__ import annotations

import dataclasses
import random

import pytest

from asyncdex.fairness.bls import encode_g1, encode_scalar, g1_generator, g1_mul, gt_bytes, pairing
from asyncdex.fairness.dkg import (
    Complaint,
    Deal,
    DkgFailed,
    DkgSetup,
    MalformedDeal,
    _share_aad,
    _share_cipher,
    committee_key,
    deal,
    decide_qualified,
    dkg_keypair,
    judge_complaint,
    key_share,
    receive_deal,
    validate_deal,
)
from asyncdex.fairness.sealing import Opened, SealingKey, open_sealed_intent, seal_intent
from asyncdex.fairness.threshold import (
    CommitteeKey,
    KeyShare,
    combine_decryption_shares,
    create_decryption_share,
    verify_epoch_key,
)
from asyncdex.signing.eip712 import Domain, LocalSigner

from .conftest import place_order

N, T = 4, 2


def _setup(seed: int) -> tuple[DkgSetup, list[int], random.Random]:
    rng = random.Random(seed)
    pairs = [dkg_keypair(rng.getrandbits) for _ in range(N)]
    setup = DkgSetup(rng.randbytes(32), T, tuple(public for _, public in pairs))
    return setup, [secret for secret, _ in pairs], rng


def _run(
    setup: DkgSetup, secrets: list[int], deals: list[Deal]
) -> tuple[CommitteeKey, dict[int, KeyShare], list[Complaint], tuple[int, ...]]:
    """Every member checks every deal, complaints are judged by all, keys are derived."""
    checked = {}
    for one in deals:
        try:
            checked[one.dealer] = validate_deal(setup, one)
        except MalformedDeal:
            continue
    received: dict[int, dict[int, int]] = {m: {} for m in range(1, N + 1)}
    complaints = []
    for member in range(1, N + 1):
        for dealer, one in checked.items():
            got = receive_deal(setup, member, secrets[member - 1], one)
            if isinstance(got, Complaint):
                complaints.append(got)
            else:
                received[member][dealer] = got
    outcome = decide_qualified(setup, deals, complaints)
    key = committee_key(setup, outcome)
    shares = {m: key_share(setup, m, outcome, received[m]) for m in range(1, N + 1)}
    return key, shares, complaints, outcome.qualified


def _assert_consistent(key: CommitteeKey, shares: dict[int, KeyShare]) -> None:
    for member, share in shares.items():
        assert encode_g1(g1_mul(g1_generator(), share.secret)) == key.public_shares[member - 1]


def _assert_opens(
    key: CommitteeKey, shares: dict[int, KeyShare], domain: Domain, trader: LocalSigner
) -> None:
    sealing = SealingKey(domain, key.public_key)
    envelope = seal_intent(sealing, trader, place_order(trader, domain), 5)
    for members in ((1, 2), (3, 4), (1, 4)):
        partial = [create_decryption_share(shares[m], sealing.venue, 5) for m in members]
        combined = combine_decryption_shares(key, sealing.venue, 5, partial).key
        assert combined is not None and verify_epoch_key(key, sealing.venue, combined)
        assert isinstance(open_sealed_intent(domain, combined, envelope), Opened)


def test_honest_members_agree_and_the_key_opens(domain: Domain, trader: LocalSigner) -> None:
    setup, secrets, rng = _setup(1)
    deals = [deal(setup, d, rng.getrandbits) for d in range(1, N + 1)]
    key, shares, complaints, qualified = _run(setup, secrets, deals)
    assert complaints == [] and qualified == (1, 2, 3, 4)
    _assert_consistent(key, shares)
    _assert_opens(key, shares, domain, trader)


def test_no_single_dealer_knows_the_secret() -> None:
    setup, secrets, rng = _setup(2)
    deals = [deal(setup, d, rng.getrandbits) for d in range(1, N + 1)]
    key, _, _, _ = _run(setup, secrets, deals)
    # the master key is the sum of all four constant commitments, not any one dealer's
    assert all(key.public_key != one.commitments[0] for one in deals)


def _cheat(setup: DkgSetup, honest: Deal, value: int, rng: random.Random) -> Deal:
    """``honest`` with every share replaced by a validly encrypted wrong value."""
    e = rng.getrandbits(200)
    ephemeral = g1_mul(g1_generator(), e)
    encoded = encode_g1(ephemeral)
    shares = []
    for member in range(1, setup.members + 1):
        secret = gt_bytes(pairing(ephemeral, setup.encryption_point(member)))
        cipher = _share_cipher(secret, encoded)
        aad = _share_aad(setup, honest.dealer, member)
        shares.append(cipher.encrypt(bytes(12), encode_scalar(value + member), aad))
    # the commitments stay the honest polynomial's, so only a share that matches them passes
    return dataclasses.replace(honest, ephemeral=encoded, shares=tuple(shares))


def test_a_dealer_with_a_bad_share_for_one_member_is_excluded(
    domain: Domain, trader: LocalSigner
) -> None:
    setup, secrets, rng = _setup(3)
    deals = [deal(setup, d, rng.getrandbits) for d in range(1, N + 1)]
    cheater = deals[1]
    bad = list(cheater.shares)
    bad[2] = bytes(48)  # member 3's share does not even decrypt
    deals[1] = dataclasses.replace(cheater, shares=tuple(bad))
    key, shares, complaints, qualified = _run(setup, secrets, deals)
    assert [(c.dealer, c.complainer) for c in complaints] == [(2, 3)]
    assert qualified == (1, 3, 4)
    _assert_consistent(key, shares)
    _assert_opens(key, shares, domain, trader)


def test_a_wrong_but_decryptable_share_is_proven_wrong_by_anyone() -> None:
    setup, secrets, rng = _setup(4)
    honest = deal(setup, 1, rng.getrandbits)
    wrong = _cheat(setup, honest, value=12345, rng=rng)
    checked = validate_deal(setup, wrong)
    complaint = receive_deal(setup, 2, secrets[1], checked)
    assert isinstance(complaint, Complaint) and complaint.complainer == 2
    # a third party with only public data upholds it
    assert judge_complaint(setup, checked, Complaint.decode(complaint.encode()))


def test_false_and_forged_complaints_are_refused_and_change_nothing() -> None:
    setup, secrets, rng = _setup(5)
    deals = [deal(setup, d, rng.getrandbits) for d in range(1, N + 1)]
    checked = validate_deal(setup, deals[0])
    # member 4 reveals its real K but its share was fine: a lie, provably
    honest_revealed = encode_g1(g1_mul(checked.ephemeral, secrets[3]))
    lie = Complaint(setup.session, 1, 4, honest_revealed)
    assert not judge_complaint(setup, checked, lie)
    # a revelation that is not x_4·E fails the pairing check
    forged = Complaint(setup.session, 1, 4, encode_g1(g1_mul(g1_generator(), 99)))
    assert not judge_complaint(setup, checked, forged)
    outcome = decide_qualified(setup, deals, [lie, forged])
    assert outcome.qualified == (1, 2, 3, 4)
    assert outcome.false_complaints == (lie, forged)


def test_malformed_and_missing_deals_disqualify_without_complaints() -> None:
    setup, _, rng = _setup(6)
    deals = [deal(setup, d, rng.getrandbits) for d in range(1, N + 1)]
    short = dataclasses.replace(deals[0], commitments=deals[0].commitments[:1])
    other_session = dataclasses.replace(deals[1], session=bytes(32))
    outcome = decide_qualified(setup, [short, other_session, deals[2], deals[3]], [])
    assert outcome.qualified == (3, 4)
    assert "commitments" in outcome.disqualified[1]
    assert "session" in outcome.disqualified[2]
    missing = decide_qualified(setup, deals[:3], [])
    assert missing.qualified == (1, 2, 3)
    assert missing.disqualified == {4: "no deal"}


def test_too_few_qualified_dealers_fail_the_run() -> None:
    setup, _, rng = _setup(7)
    with pytest.raises(DkgFailed, match="1 dealers qualified, at least 2"):
        decide_qualified(setup, [deal(setup, 1, rng.getrandbits)], [])


def test_the_first_deal_of_a_dealer_counts() -> None:
    setup, _, rng = _setup(8)
    deals = [deal(setup, d, rng.getrandbits) for d in range(1, N + 1)]
    again = deal(setup, 1, rng.getrandbits)
    first = decide_qualified(setup, deals, [])
    with_again = decide_qualified(setup, [*deals, again], [])
    assert committee_key(setup, first) == committee_key(setup, with_again)


def test_deal_and_complaint_encodings_are_strict() -> None:
    setup, _, rng = _setup(9)
    one = deal(setup, 1, rng.getrandbits)
    assert Deal.decode(one.encode()) == one
    with pytest.raises(MalformedDeal):
        Deal.decode(one.encode() + b"\x00")
    with pytest.raises(MalformedDeal, match="dealer"):
        Deal.decode(dataclasses.replace(one, dealer=0).encode())
    complaint = Complaint(setup.session, 1, 2, one.ephemeral)
    assert Complaint.decode(complaint.encode()) == complaint
    with pytest.raises(ValueError, match="complainer"):
        Complaint.decode(dataclasses.replace(complaint, complainer=0).encode())


def test_setup_refuses_bad_parameters() -> None:
    _, public = dkg_keypair(random.Random(1).getrandbits)
    with pytest.raises(ValueError, match="threshold"):
        DkgSetup(bytes(32), 2, (public,))
    with pytest.raises(ValueError, match="session"):
        DkgSetup(bytes(31), 1, (public,))
    with pytest.raises(ValueError, match="encryption_keys"):
        DkgSetup(bytes(32), 1, (public[:-1] + b"\x00",))
