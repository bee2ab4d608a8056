"""Decryption shares prove themselves; any t combine into the epoch key, t - 1 never do."""

from __future__ import annotations

import itertools
from functools import cache

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.fairness.bls import encode_g2, g2_multiexp
from asyncdex.fairness.threshold import (
    CommitteeKey,
    DecryptionShare,
    EpochKey,
    KeyShare,
    ShareFault,
    ShareRefused,
    combine_decryption_shares,
    create_decryption_share,
    epoch_identity,
    epoch_of,
    lagrange_at_zero,
    verify_decryption_share,
    verify_epoch_key,
)

from .conftest import THRESHOLD, Committee, run_dkg

EPOCH = 42


def _shares(committee: Committee, venue: bytes, epoch: int = EPOCH) -> list[DecryptionShare]:
    return [create_decryption_share(s, venue, epoch) for s in committee.shares]


def test_every_honest_share_verifies(committee: Committee, venue: bytes) -> None:
    for share in _shares(committee, venue):
        verify_decryption_share(committee.key, venue, EPOCH, share)


def test_every_t_subset_gives_the_same_verified_key(committee: Committee, venue: bytes) -> None:
    shares = _shares(committee, venue)
    keys = set()
    for subset in itertools.combinations(shares, THRESHOLD):
        combination = combine_decryption_shares(committee.key, venue, EPOCH, subset)
        assert combination.key is not None
        assert combination.used == tuple(sorted(s.member for s in subset))
        assert verify_epoch_key(committee.key, venue, combination.key)
        keys.add(combination.key.key)
    assert len(keys) == 1


def test_t_minus_one_shares_give_no_key(committee: Committee, venue: bytes) -> None:
    for share in _shares(committee, venue):
        combination = combine_decryption_shares(committee.key, venue, EPOCH, [share])
        assert combination.key is None
        assert combination.used == (share.member,)


def test_interpolating_t_minus_one_shares_anyway_is_not_the_key(venue: bytes) -> None:
    big = _big_committee()
    shares = _shares(big, venue)[: big.key.threshold - 1]
    members = [s.member for s in shares]
    from asyncdex.fairness.bls import decode_g2

    forged = g2_multiexp([decode_g2(s.share, "s") for s in shares], lagrange_at_zero(members))
    assert not verify_epoch_key(big.key, venue, EpochKey(EPOCH, encode_g2(forged)))


def test_the_key_of_one_epoch_is_not_the_key_of_another(committee: Committee, venue: bytes) -> None:
    key = combine_decryption_shares(committee.key, venue, EPOCH, _shares(committee, venue)).key
    assert key is not None
    assert not verify_epoch_key(committee.key, venue, EpochKey(EPOCH + 1, key.key))


def test_a_share_of_another_member_is_refused_and_attributed(
    committee: Committee, venue: bytes
) -> None:
    first, second = _shares(committee, venue)[:2]
    claimed = DecryptionShare(EPOCH, first.member, second.share)
    with pytest.raises(ShareRefused) as refused:
        verify_decryption_share(committee.key, venue, EPOCH, claimed)
    assert refused.value.fault is ShareFault.FAILED_EQUATION
    assert refused.value.member == first.member
    assert refused.value.share == claimed


def test_a_share_for_another_epoch_relabelled_fails_the_equation(
    committee: Committee, venue: bytes
) -> None:
    other = create_decryption_share(committee.shares[0], venue, EPOCH + 1)
    relabelled = DecryptionShare(EPOCH, other.member, other.share)
    with pytest.raises(ShareRefused) as refused:
        verify_decryption_share(committee.key, venue, EPOCH, relabelled)
    assert refused.value.fault is ShareFault.FAILED_EQUATION
    with pytest.raises(ShareRefused) as wrong_epoch:
        verify_decryption_share(committee.key, venue, EPOCH, other)
    assert wrong_epoch.value.fault is ShareFault.WRONG_EPOCH


def test_non_member_and_malformed_shares_are_refused(committee: Committee, venue: bytes) -> None:
    honest = _shares(committee, venue)[0]
    outsider = create_decryption_share(KeyShare(5, 777), venue, EPOCH)
    with pytest.raises(ShareRefused) as refused:
        verify_decryption_share(committee.key, venue, EPOCH, outsider)
    assert refused.value.fault is ShareFault.NOT_A_MEMBER
    for bad in (honest.share[:-1], bytes([0xC0]) + bytes(95), b"\xff" * 96):
        with pytest.raises(ShareRefused) as malformed:
            verify_decryption_share(committee.key, venue, EPOCH, DecryptionShare(EPOCH, 1, bad))
        assert malformed.value.fault is ShareFault.MALFORMED


def test_combination_reports_faulty_shares_and_still_opens(
    committee: Committee, venue: bytes
) -> None:
    shares = _shares(committee, venue)
    wrong = DecryptionShare(EPOCH, 1, shares[1].share)
    outsider = create_decryption_share(KeyShare(9, 5), venue, EPOCH)
    combination = combine_decryption_shares(
        committee.key, venue, EPOCH, [wrong, outsider, shares[2], shares[3]]
    )
    assert combination.key is not None and verify_epoch_key(committee.key, venue, combination.key)
    assert combination.used == (3, 4)
    assert [(r.member, r.fault) for r in combination.refused] == [
        (1, ShareFault.FAILED_EQUATION),
        (9, ShareFault.NOT_A_MEMBER),
    ]


def test_one_member_twice_counts_once(committee: Committee, venue: bytes) -> None:
    share = _shares(committee, venue)[0]
    combination = combine_decryption_shares(committee.key, venue, EPOCH, [share, share])
    assert combination.key is None
    assert combination.duplicates == (share.member,)


@cache
def _big_committee() -> Committee:
    return run_dkg(seed=7, n=7, t=3)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_t_valid_shares_open_and_fewer_never(data: st.DataObject) -> None:
    big = _big_committee()
    venue = bytes(range(32))
    epoch = data.draw(st.integers(0, 2**64 - 1), label="epoch")
    members = data.draw(
        st.lists(st.integers(1, 7), min_size=1, max_size=7, unique=True), label="members"
    )
    shares = [create_decryption_share(big.shares[m - 1], venue, epoch) for m in members]
    combination = combine_decryption_shares(big.key, venue, epoch, shares)
    if len(members) >= big.key.threshold:
        assert combination.key is not None
        assert verify_epoch_key(big.key, venue, combination.key)
        assert combination.used == tuple(sorted(members)[: big.key.threshold])
    else:
        assert combination.key is None


def test_decryption_share_encoding_is_strict(committee: Committee, venue: bytes) -> None:
    share = _shares(committee, venue)[0]
    assert DecryptionShare.decode(share.encode()) == share
    with pytest.raises(ValueError, match="non-canonical"):
        DecryptionShare.decode(b"\x93\xcf" + EPOCH.to_bytes(8, "big") + share.encode()[2:])
    with pytest.raises(ValueError, match="member"):
        DecryptionShare.decode(DecryptionShare(EPOCH, 0, share.share).encode())
    with pytest.raises(ValueError, match="array of 3"):
        DecryptionShare.decode(msgpack.packb([EPOCH, 1]))
    with pytest.raises(ValueError, match="extra data"):
        DecryptionShare.decode(share.encode() + b"\x00")


def test_committee_key_refuses_bad_threshold_and_points(committee: Committee) -> None:
    key = committee.key
    with pytest.raises(ValueError, match="threshold"):
        CommitteeKey(0, key.public_key, key.public_shares)
    with pytest.raises(ValueError, match="public_shares\\[1\\]"):
        CommitteeKey(2, key.public_key, (key.public_shares[0], b"\x00" * 48))


def test_epochs_and_identities() -> None:
    assert epoch_of(1_700_000_000_999, 1_000) == 1_700_000_000
    assert epoch_of(0, 250) == 0
    with pytest.raises(ValueError):
        epoch_of(5, 0)
    venue = bytes(32)
    assert epoch_identity(venue, 1) != epoch_identity(venue, 2)
    assert epoch_identity(venue, 1) != epoch_identity(b"\x01" * 32, 1)
    with pytest.raises(ValueError):
        epoch_identity(venue, 2**64)
