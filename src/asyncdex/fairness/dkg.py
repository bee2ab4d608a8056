"""Distributed key generation for the sealing key: joint-Feldman (Pedersen) DKG on BLS12-381.

Each of the n members deals: it draws a polynomial ``f_d`` of degree ``t - 1``, publishes
Feldman commitments ``C_{d,k} = a_{d,k}·g1`` and sends member ``j`` the share ``f_d(j)``
encrypted to ``j``'s DKG key ``X_j = x_j·g2`` (ECIES over the pairing: an ephemeral
``E = e·g1`` per deal, ChaCha20-Poly1305 under a key derived from ``e(E, X_j)``, which member
``j`` computes as ``e(K_j, g2)`` with ``K_j = x_j·E``). A member whose share does not decrypt
or does not match the commitments complains by revealing ``K_j``; anyone checks the
revelation with one pairing equation (``e(K_j, g2) = e(E, X_j)``), decrypts the share and
sees who lied. The qualified set is the
dealers with a well-formed deal and no upheld complaint; the master public key is the sum of
their constant commitments and member ``j``'s secret share the sum of their shares to ``j``.

Invariants:

- Deals and complaints are public messages that every member sees in the same order (the
  runtime carries them in committed blocks, or over the signed transport with a deadline), so
  every member computes the same qualified set, the same :class:`CommitteeKey` and its own
  :class:`KeyShare`: these are pure functions of the deals and complaints.
- No member learns the master secret: it is the sum of the qualified dealers' secrets, and
  at least one qualified dealer is honest when at most ``t - 1`` are faulty and at least ``t``
  dealers qualify (fewer raises :class:`DkgFailed`).
- A complaint is upheld only if its revelation is correct and the revealed share is wrong or
  undecryptable; a false complaint is reported as the complainer's fault and changes nothing.
- Randomness only in :func:`dkg_keypair` and :func:`deal`, which take an RNG or use
  ``secrets``. No clock, no I/O.

Known limit (Gennaro, Jarecki, Krawczyk & Rabin, 1999): a rushing adversary in joint-Feldman
can bias the distribution of the public key by choosing which of its deals qualify. The
bias does not reveal the secret; threshold BLS and IBE keys are still secure with it
(Gennaro et al., 2007, "Secure Distributed Key Generation for Discrete-Log Based
Cryptosystems", section 5), which is why Shutter and Ethereum's distributed validators use
this DKG.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from py_arkworks_bls12381 import G1Point, G2Point

from asyncdex.fairness.bls import (
    G1_BYTES,
    SCALAR_BYTES,
    PointError,
    R,
    RandomBits,
    decode_g1,
    decode_g2,
    encode_g1,
    encode_g2,
    encode_scalar,
    g1_generator,
    g1_mul,
    g1_multiexp,
    g2_generator,
    g2_mul,
    gt_bytes,
    pairing,
    pairing_check,
    random_scalar,
)
from asyncdex.fairness.threshold import CommitteeKey, KeyShare

SESSION_BYTES = 32
SHARE_CIPHERTEXT_BYTES = SCALAR_BYTES + 16
MAX_MEMBERS = 256
_KDF_INFO = b"asyncdex/dkg/v1/share-key"
_ZERO_NONCE = bytes(12)


class DkgFailed(ValueError):
    """The DKG cannot produce a key (fewer than ``threshold`` dealers qualified)."""


class MalformedDeal(ValueError):
    """A deal that is not well formed; its dealer is disqualified without a complaint."""


@dataclass(frozen=True, slots=True)
class DkgSetup:
    """What every member agrees on before dealing.

    ``session`` is a 32-byte id of this run (e.g. a hash of the committee domain and the key
    epoch): it binds every deal and share, so nothing from one run is accepted in another.
    ``encryption_keys[j - 1]`` is member ``j``'s DKG public key (compressed G2).
    """

    session: bytes
    threshold: int
    encryption_keys: tuple[bytes, ...]
    _points: tuple[G2Point, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if type(self.session) is not bytes or len(self.session) != SESSION_BYTES:
            raise ValueError(f"session must be {SESSION_BYTES} bytes")
        n = len(self.encryption_keys)
        if not 1 <= n <= MAX_MEMBERS:
            raise ValueError(f"a committee has 1 to {MAX_MEMBERS} members, got {n}")
        if not 1 <= self.threshold <= n:
            raise ValueError(f"threshold {self.threshold} must be between 1 and {n}")
        points = tuple(
            decode_g2(key, f"encryption_keys[{k}]") for k, key in enumerate(self.encryption_keys)
        )
        object.__setattr__(self, "_points", points)

    @property
    def members(self) -> int:
        return len(self.encryption_keys)

    def encryption_point(self, member: int) -> G2Point:
        return self._points[member - 1]


def dkg_keypair(rng: RandomBits | None = None) -> tuple[int, bytes]:
    """A member's DKG key pair: (secret ``x``, public ``x·g2`` compressed)."""
    secret = random_scalar(rng)
    return secret, encode_g2(g2_mul(g2_generator(), secret))


# ---------------------------------------------------------------------------------------------
# Deals


@dataclass(frozen=True, slots=True)
class Deal:
    """Dealer ``dealer``'s commitments and its encrypted share for every member."""

    session: bytes
    dealer: int
    commitments: tuple[bytes, ...]  # C_0..C_{t-1}, compressed G1
    ephemeral: bytes  # E = e·g1, compressed G1
    shares: tuple[bytes, ...]  # to member j at j - 1: ChaCha20-Poly1305(f(j)), 48 bytes

    def encode(self) -> bytes:
        packed = msgpack.packb(
            [self.session, self.dealer, list(self.commitments), self.ephemeral, list(self.shares)],
            use_bin_type=True,
        )
        assert isinstance(packed, bytes)
        return packed

    @classmethod
    def decode(cls, data: bytes) -> Deal:
        """Decode the wire form (types and canonical encoding; points in :func:`validate_deal`)."""
        items = _unpack(data, "deal", 5)
        session, dealer, commitments, ephemeral, shares = items
        if type(dealer) is not int or not 1 <= dealer <= MAX_MEMBERS:
            raise MalformedDeal("deal: dealer must be a member index")
        if type(commitments) is not list or type(shares) is not list:
            raise MalformedDeal("deal: commitments and shares must be arrays")
        if not all(type(v) is bytes for v in [session, ephemeral, *commitments, *shares]):
            raise MalformedDeal("deal: session, points and shares must be bytes")
        deal = cls(session, dealer, tuple(commitments), ephemeral, tuple(shares))
        if deal.encode() != data:
            raise MalformedDeal("deal: non-canonical encoding")
        return deal


@dataclass(frozen=True, slots=True)
class Complaint:
    """Member ``complainer`` says ``dealer``'s share to it is wrong, revealing ``K = x·E``."""

    session: bytes
    dealer: int
    complainer: int
    revealed: bytes  # compressed G1

    def encode(self) -> bytes:
        packed = msgpack.packb(
            [self.session, self.dealer, self.complainer, self.revealed], use_bin_type=True
        )
        assert isinstance(packed, bytes)
        return packed

    @classmethod
    def decode(cls, data: bytes) -> Complaint:
        session, dealer, complainer, revealed = _unpack(data, "complaint", 4)
        if type(session) is not bytes or type(revealed) is not bytes:
            raise ValueError("complaint: session and revealed key must be bytes")
        for name, value in (("dealer", dealer), ("complainer", complainer)):
            if type(value) is not int or not 1 <= value <= MAX_MEMBERS:
                raise ValueError(f"complaint: {name} must be a member index")
        complaint = cls(session, dealer, complainer, revealed)
        if complaint.encode() != data:
            raise ValueError("complaint: non-canonical encoding")
        return complaint


def _unpack(data: bytes, what: str, count: int) -> list[Any]:
    limit = 64 + MAX_MEMBERS * (G1_BYTES + SHARE_CIPHERTEXT_BYTES + 8)
    if type(data) is not bytes or len(data) > limit:
        raise MalformedDeal(f"{what}: expected at most {limit} bytes")
    try:
        items = msgpack.unpackb(
            data, raw=False, max_map_len=0, max_ext_len=0, max_str_len=0, max_array_len=MAX_MEMBERS
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedDeal(f"{what}: not a msgpack document: {exc}") from None
    if type(items) is not list or len(items) != count:
        raise MalformedDeal(f"{what}: expected an array of {count} items")
    return items


def deal(setup: DkgSetup, dealer: int, rng: RandomBits | None = None) -> Deal:
    """Dealer ``dealer``'s deal: a fresh polynomial, its commitments, encrypted shares."""
    _check_member(setup, dealer, "dealer")
    coefficients = [random_scalar(rng) for _ in range(setup.threshold)]
    commitments = tuple(encode_g1(g1_mul(g1_generator(), a)) for a in coefficients)
    e = random_scalar(rng)
    ephemeral_point = g1_mul(g1_generator(), e)
    ephemeral = encode_g1(ephemeral_point)
    shares = []
    for member in range(1, setup.members + 1):
        secret = gt_bytes(pairing(ephemeral_point, setup.encryption_point(member)))
        share = _evaluate(coefficients, member)
        shares.append(
            _share_cipher(secret, ephemeral).encrypt(
                _ZERO_NONCE, encode_scalar(share), _share_aad(setup, dealer, member)
            )
        )
    return Deal(setup.session, dealer, commitments, ephemeral, tuple(shares))


def _shared_secret(revealed: G1Point) -> bytes:
    # The dealer knows e and X_j (in G2), member j knows x_j and E (in G1): the value both can
    # compute is e(E, X_j) = e(x_j·E, g2) = e(g1, g2)^(e·x_j). The member's revelation
    # K_j = x_j·E gives it to everyone, and e(K_j, g2) = e(E, X_j) proves K_j honest.
    return gt_bytes(pairing(revealed, g2_generator()))


def _evaluate(coefficients: Sequence[int], x: int) -> int:
    value = 0
    for a in reversed(coefficients):
        value = (value * x + a) % R
    return value


def _share_aad(setup: DkgSetup, dealer: int, member: int) -> bytes:
    return setup.session + dealer.to_bytes(2, "big") + member.to_bytes(2, "big")


def _share_cipher(secret: bytes, ephemeral: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO + ephemeral)
    return ChaCha20Poly1305(key.derive(secret))


def _check_member(setup: DkgSetup, member: int, what: str) -> None:
    if not 1 <= member <= setup.members:
        raise ValueError(f"{what} {member} is not a member of a committee of {setup.members}")


# ---------------------------------------------------------------------------------------------
# Checking deals, complaining, judging complaints


@dataclass(frozen=True, slots=True)
class CheckedDeal:
    """A deal whose shape and points are valid, with its points decoded."""

    deal: Deal
    commitments: tuple[G1Point, ...]
    ephemeral: G1Point


def validate_deal(setup: DkgSetup, deal: Deal) -> CheckedDeal:
    """Check what anyone can check of a deal; raises :class:`MalformedDeal` naming the flaw.

    A deal refused here disqualifies its dealer with no complaint needed: every member sees
    the same deal and reaches the same verdict.
    """
    if deal.session != setup.session:
        raise MalformedDeal(f"deal of dealer {deal.dealer}: another DKG session")
    if not 1 <= deal.dealer <= setup.members:
        raise MalformedDeal(f"deal of dealer {deal.dealer}: not a member")
    if len(deal.commitments) != setup.threshold:
        raise MalformedDeal(
            f"deal of dealer {deal.dealer}: {len(deal.commitments)} commitments, "
            f"expected {setup.threshold}"
        )
    if len(deal.shares) != setup.members:
        raise MalformedDeal(
            f"deal of dealer {deal.dealer}: {len(deal.shares)} shares, expected {setup.members}"
        )
    if any(len(share) != SHARE_CIPHERTEXT_BYTES for share in deal.shares):
        raise MalformedDeal(
            f"deal of dealer {deal.dealer}: a share is not {SHARE_CIPHERTEXT_BYTES} bytes"
        )
    try:
        commitments = tuple(
            decode_g1(c, f"commitments[{k}]") for k, c in enumerate(deal.commitments)
        )
        ephemeral = decode_g1(deal.ephemeral, "ephemeral")
    except PointError as exc:
        raise MalformedDeal(f"deal of dealer {deal.dealer}: {exc}") from None
    return CheckedDeal(deal, commitments, ephemeral)


def _expected_share_point(checked: CheckedDeal, member: int) -> G1Point:
    """``Σ_k member^k · C_k`` = ``f(member)·g1`` for an honest dealer."""
    powers = [pow(member, k, R) for k in range(len(checked.commitments))]
    return g1_multiexp(checked.commitments, powers)


def _open_share(setup: DkgSetup, checked: CheckedDeal, member: int, secret: bytes) -> int | None:
    """The share to ``member`` if it decrypts and matches the commitments, else None."""
    deal = checked.deal
    try:
        plain = _share_cipher(secret, deal.ephemeral).decrypt(
            _ZERO_NONCE, deal.shares[member - 1], _share_aad(setup, deal.dealer, member)
        )
    except InvalidTag:
        return None
    value = int.from_bytes(plain, "big")
    if value >= R or g1_mul(g1_generator(), value) != _expected_share_point(checked, member):
        return None
    return value


def receive_deal(
    setup: DkgSetup, member: int, secret_key: int, checked: CheckedDeal
) -> int | Complaint:
    """Member ``member``'s share from a valid deal, or its complaint against the dealer."""
    _check_member(setup, member, "member")
    revealed = g1_mul(checked.ephemeral, secret_key)
    share = _open_share(setup, checked, member, _shared_secret(revealed))
    if share is None:
        return Complaint(setup.session, checked.deal.dealer, member, encode_g1(revealed))
    return share


def judge_complaint(setup: DkgSetup, checked: CheckedDeal, complaint: Complaint) -> bool:
    """True when ``complaint`` is upheld: its revelation is honest and the share is bad.

    False means the complaint is false (a wrong revelation, or a share that is fine): the
    complainer, not the dealer, is at fault.
    """
    if complaint.session != setup.session or complaint.dealer != checked.deal.dealer:
        return False
    if not 1 <= complaint.complainer <= setup.members:
        return False
    try:
        revealed = decode_g1(complaint.revealed, "revealed")
    except PointError:
        return False
    member_key = setup.encryption_point(complaint.complainer)
    # e(K_j, g2) == e(E, X_j): K_j = x_j·E, without the complainer showing x_j
    if not pairing_check([revealed, -checked.ephemeral], [g2_generator(), member_key]):
        return False
    share = _open_share(setup, checked, complaint.complainer, _shared_secret(revealed))
    return share is None


@dataclass(frozen=True, slots=True)
class DkgOutcome:
    """The qualified set and every fault found, the same for every member."""

    qualified: tuple[int, ...]
    disqualified: Mapping[int, str]  # dealer -> why (missing, malformed, upheld complaint)
    false_complaints: tuple[Complaint, ...]  # their complainers are at fault
    deals: Mapping[int, CheckedDeal]  # the qualified dealers' deals


def decide_qualified(
    setup: DkgSetup, deals: Iterable[Deal], complaints: Iterable[Complaint]
) -> DkgOutcome:
    """Judge every deal and complaint: the qualified dealers and who is at fault.

    The first deal of each dealer counts (the runtime's order is the same everywhere); a
    dealer with no deal, a malformed one or an upheld complaint is disqualified.
    """
    checked: dict[int, CheckedDeal] = {}
    disqualified: dict[int, str] = {}
    for one in deals:
        if one.dealer in checked or one.dealer in disqualified:
            continue
        try:
            checked[one.dealer] = validate_deal(setup, one)
        except MalformedDeal as exc:
            if 1 <= one.dealer <= setup.members:
                disqualified[one.dealer] = str(exc)
    false_complaints = []
    for complaint in complaints:
        target = checked.get(complaint.dealer)
        if target is None:
            continue  # the dealer is out already; nothing to judge
        if judge_complaint(setup, target, complaint):
            del checked[complaint.dealer]
            disqualified[complaint.dealer] = (
                f"member {complaint.complainer} showed its share is wrong"
            )
        else:
            false_complaints.append(complaint)
    for dealer in range(1, setup.members + 1):
        if dealer not in checked and dealer not in disqualified:
            disqualified[dealer] = "no deal"
    qualified = tuple(sorted(checked))
    if len(qualified) < setup.threshold:
        raise DkgFailed(
            f"{len(qualified)} dealers qualified, at least {setup.threshold} needed: "
            + "; ".join(f"{d}: {why}" for d, why in sorted(disqualified.items()))
        )
    return DkgOutcome(qualified, disqualified, tuple(false_complaints), checked)


def committee_key(setup: DkgSetup, outcome: DkgOutcome) -> CommitteeKey:
    """The committee's public key and public shares from the qualified deals (anyone)."""
    deals = [outcome.deals[d] for d in outcome.qualified]
    master = g1_multiexp([d.commitments[0] for d in deals], [1] * len(deals))
    public_shares = []
    for member in range(1, setup.members + 1):
        powers = [pow(member, k, R) for k in range(setup.threshold)]
        points = [c for d in deals for c in d.commitments]
        public_shares.append(encode_g1(g1_multiexp(points, powers * len(deals))))
    return CommitteeKey(setup.threshold, encode_g1(master), tuple(public_shares))


def key_share(
    setup: DkgSetup, member: int, outcome: DkgOutcome, shares: Mapping[int, int]
) -> KeyShare:
    """Member ``member``'s secret share: the sum of its shares from the qualified dealers.

    ``shares`` maps dealer -> the share :func:`receive_deal` gave; a share from every
    qualified dealer is needed (a dealer this member complained about is disqualified).
    """
    _check_member(setup, member, "member")
    missing = [d for d in outcome.qualified if d not in shares]
    if missing:
        raise DkgFailed(f"member {member} has no share from qualified dealer(s) {missing}")
    return KeyShare(member, sum(shares[d] for d in outcome.qualified) % R)


def run_local_dkg(
    members: int, threshold: int, session: bytes, rng: RandomBits | None = None
) -> tuple[CommitteeKey, tuple[KeyShare, ...]]:
    """Run the whole protocol for ``members`` honest members in one process.

    For tests, benchmarks and a local committee on one machine, where one process holds every
    member's key anyway; it runs the same deals, checks and sums as the distributed protocol,
    not a trusted dealer.
    """
    pairs = [dkg_keypair(rng) for _ in range(members)]
    setup = DkgSetup(session, threshold, tuple(public for _, public in pairs))
    deals = [deal(setup, dealer, rng) for dealer in range(1, members + 1)]
    checked = [validate_deal(setup, one) for one in deals]
    received: list[dict[int, int]] = [{} for _ in range(members)]
    complaints = []
    for member in range(1, members + 1):
        for one in checked:
            got = receive_deal(setup, member, pairs[member - 1][0], one)
            if isinstance(got, Complaint):
                complaints.append(got)
            else:
                received[member - 1][one.deal.dealer] = got
    outcome = decide_qualified(setup, deals, complaints)
    shares = tuple(
        key_share(setup, member, outcome, received[member - 1]) for member in range(1, members + 1)
    )
    return committee_key(setup, outcome), shares
