"""Sealed intents: the public header, the hybrid ciphertext, sealing and opening.

A sealed intent is a signed intent (its canonical binary form, exactly the bytes
``encode_signed_intent`` gives) encrypted to the committee for one epoch:

- KEM (Boneh-Franklin IBE): the client draws ``r``, sends ``U = r·g1`` and derives the
  session secret ``e(r·P, H(id))``; a holder of the epoch key ``d = s·H(id)`` gets the same
  secret as ``e(U, d)``. One encapsulation is a *session*: a client reuses its ``(r, U)``
  for every intent it seals for one epoch (:class:`SealingKey` keeps it), because the
  pairing that opens a session is the dominant cost of a block (about 1.3 ms each) and a
  market maker sends many intents per epoch. Sharing ``U`` reveals only that the intents
  come from one client, which the header's account says anyway.
- DEM: ChaCha20-Poly1305 under ``HKDF-SHA256(gt_bytes(secret), info = tag ‖ U)`` with a
  random 96-bit nonce per envelope (carried on the wire; a session seals far fewer than the
  2^32 messages a random nonce allows). The associated data is the venue id and the encoded
  public header, so a header cannot be changed or moved to another ciphertext without the
  AEAD failing.
- The header (account, nonce, expiry, market, target epoch, fee cap) is public so that the
  committee can order, deduplicate and rate-limit without seeing the body; the envelope is
  signed by the same key that signed the body (65-byte ECDSA over :func:`envelope_digest`), so
  the gateway knows the signer before anything is revealed and nobody can submit a sealed
  intent in another trader's name.

Invariants:

- Wire form: msgpack ``[1, account, nonce, expires_after, market, epoch, fee_cap, U,
  aead_nonce, ciphertext, signature]``. Exactly one byte string encodes an envelope;
  decoding refuses any other (wrong types, sizes or counts, non-minimal integers, trailing
  bytes, oversize input) with :class:`MalformedSealedIntent` naming the field. Points are
  checked when opened.
- :func:`envelope_epoch` reads only the header's first six fields, for a leader judging every
  pending envelope at every proposal: for every byte string :func:`decode_sealed_intent`
  accepts it gives that envelope's epoch; for others it may give None or a number, so it
  decides nothing that the strict decoding decides.
- :func:`open_sealed_intent` is a pure function of (venue domain, epoch key, envelope): every
  member gets the same :class:`Opened` or the same :class:`Rejected` reason. It rejects,
  checked in this order: an envelope for another epoch, an envelope signature that does not
  recover, an ephemeral point that is not a point of G1, a ciphertext that fails
  authentication, a body that is not a well-formed signed intent, a body signature that does
  not recover, a body signed by another key than the envelope, and a body whose account,
  nonce, expiry or market differ from the header. The optional session cache only
  remembers that function's per-``U`` part, so it changes no outcome.
- Randomness only in :func:`seal_intent`, which takes an RNG or uses ``secrets``. No clock,
  no I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeAlias

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from py_arkworks_bls12381 import G1Point

from asyncdex.fairness.bls import (
    G1_BYTES,
    PointError,
    RandomBits,
    decode_g1,
    encode_g1,
    g1_generator,
    g1_mul,
    gt_bytes,
    pairing,
    random_scalar,
)
from asyncdex.fairness.threshold import MAX_EPOCH, EpochKey, identity_point
from asyncdex.signing.eip712 import (
    Domain,
    LocalSigner,
    SignatureError,
    domain_separator,
    recover_address,
)
from asyncdex.signing.intents import (
    ALL_MARKETS,
    MAX_ENCODED_INTENT_BYTES,
    SIGNATURE_BYTES,
    MalformedIntent,
    SignedIntent,
    decode_intent_payload,
    encode_signed_intent,
    verify_intent,
)
from asyncdex.types.hashing import keccak256

ENVELOPE_VERSION = 1
TAG_BYTES = 16
MAX_CIPHERTEXT_BYTES = MAX_ENCODED_INTENT_BYTES + TAG_BYTES
MAX_ENVELOPE_BYTES = 1024
"""Decoding limit; the largest legal envelope (a 512-byte body) is 737 bytes."""

_KDF_INFO = b"asyncdex/sealed-intents/v1/aead-key"
_AAD_TAG = b"asyncdex/sealed-intents/v1/header"
_DIGEST_TAG = b"\x19asyncdex sealed intent v1"
AEAD_NONCE_BYTES = 12
MAX_SESSIONS = 64
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1


class MalformedSealedIntent(ValueError):
    """A sealed-intent envelope that is not well formed; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """What the committee sees of a sealed intent before its epoch key is released."""

    account: bytes  # the account acted for (20 bytes)
    nonce: int  # the body's nonce (per signer)
    expires_after: int  # the body's expires_after (ms, 0 = none)
    market: int  # the body's market, ALL_MARKETS for an intent without one
    epoch: int  # the sealing epoch whose key opens the body
    fee_cap: int  # the most the signer pays for inclusion, USDC 10^-6 (0 = none)

    def items(self) -> list[Any]:
        return [
            ENVELOPE_VERSION,
            self.account,
            self.nonce,
            self.expires_after,
            self.market,
            self.epoch,
            self.fee_cap,
        ]

    def encode(self) -> bytes:
        return _pack(self.items())


@dataclass(frozen=True, slots=True)
class SealedIntent:
    header: SealedHeader
    ephemeral: bytes  # U = r·g1, compressed (48 bytes)
    aead_nonce: bytes  # 12 random bytes
    ciphertext: bytes  # ChaCha20-Poly1305 of the signed intent bytes, tag included
    signature: bytes  # the signer's 65-byte signature over envelope_digest

    def encode(self) -> bytes:
        """The canonical wire form."""
        return _pack(
            [
                *self.header.items(),
                self.ephemeral,
                self.aead_nonce,
                self.ciphertext,
                self.signature,
            ]
        )


def _pack(items: list[Any]) -> bytes:
    packed = msgpack.packb(items, use_bin_type=True)
    assert isinstance(packed, bytes)
    return packed


def header_for(signed: SignedIntent, epoch: int, fee_cap: int = 0) -> SealedHeader:
    """The public header of ``signed`` sealed for ``epoch``."""
    intent = signed.intent
    market = getattr(intent, "market", ALL_MARKETS)
    header = SealedHeader(
        intent.account, intent.nonce, intent.expires_after, market, epoch, fee_cap
    )
    _check_header(header)
    return header


def _check_header(header: SealedHeader) -> None:
    for name, value, bound in (
        ("nonce", header.nonce, _U64),
        ("expires_after", header.expires_after, _U64),
        ("market", header.market, _U32),
        ("epoch", header.epoch, MAX_EPOCH),
        ("fee_cap", header.fee_cap, _U64),
    ):
        if type(value) is not int or not 0 <= value <= bound:
            raise MalformedSealedIntent(
                f"{name}: expected an integer from 0 to {bound}", field=name
            )
    if type(header.account) is not bytes or len(header.account) != 20:
        raise MalformedSealedIntent("account: expected 20 bytes", field="account")


def associated_data(venue: bytes, header: SealedHeader) -> bytes:
    return _AAD_TAG + venue + header.encode()


def envelope_digest(
    venue: bytes, header: SealedHeader, ephemeral: bytes, aead_nonce: bytes, ciphertext: bytes
) -> bytes:
    """The 32-byte digest the signer signs: venue, header and ciphertext, under a tag that no
    EIP-712 digest (``0x19 0x01 ...``) can share."""
    sealed = keccak256(ephemeral + aead_nonce + ciphertext)
    return keccak256(_DIGEST_TAG + venue + keccak256(header.encode()) + sealed)


def venue_id(domain: Domain) -> bytes:
    """The venue's 32-byte id in identities and digests: its EIP-712 domain separator."""
    return domain_separator(domain)


def _aead_key(secret: bytes, ephemeral: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO + ephemeral)
    return ChaCha20Poly1305(key.derive(secret))


# ---------------------------------------------------------------------------------------------
# Sealing (client side)


class SealingKey:
    """The committee's public key for sealing, with this client's session for each epoch.

    A session (``U`` and the AEAD key derived from ``e(r·P, H(id))``) costs a hash to G2 and
    a pairing; every intent sealed for the same epoch reuses it (see the module docstring).
    ``reuse_sessions=False`` draws a new session per intent, for a client that wants its
    intents unlinkable to each other (at a pairing per intent for the committee).
    """

    __slots__ = ("_sessions", "point", "public_key", "reuse_sessions", "venue")

    def __init__(self, domain: Domain, public_key: bytes, *, reuse_sessions: bool = True):
        self.venue = venue_id(domain)
        self.public_key = public_key
        self.point: G1Point = decode_g1(public_key, "sealing public key")
        self.reuse_sessions = reuse_sessions
        self._sessions: dict[int, tuple[bytes, ChaCha20Poly1305]] = {}

    def session(self, epoch: int, rng: RandomBits | None = None) -> tuple[bytes, ChaCha20Poly1305]:
        """``(U, AEAD)`` to seal with for ``epoch``: this client's session, or a fresh one."""
        cached = self._sessions.get(epoch) if self.reuse_sessions else None
        if cached is not None:
            return cached
        r = random_scalar(rng)
        ephemeral = encode_g1(g1_mul(g1_generator(), r))
        secret = gt_bytes(pairing(g1_mul(self.point, r), identity_point(self.venue, epoch)))
        made = (ephemeral, _aead_key(secret, ephemeral))
        if self.reuse_sessions:
            if len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions)]  # the oldest epoch
            self._sessions[epoch] = made
        return made


def seal_intent(
    key: SealingKey,
    signer: LocalSigner,
    signed: SignedIntent,
    epoch: int,
    *,
    fee_cap: int = 0,
    rng: RandomBits | None = None,
) -> SealedIntent:
    """Encrypt ``signed`` (signed by ``signer``) to the committee's key for ``epoch``.

    ``rng`` (a ``getrandbits``) makes the session and nonce reproducible in tests; without it
    the OS's CSPRNG draws them. The body is the intent's canonical binary form.
    """
    if signed.signer != signer.address:
        raise ValueError("the envelope must be signed by the key that signed the intent")
    return seal_body(
        key, signer, header_for(signed, epoch, fee_cap), encode_signed_intent(signed), rng
    )


def seal_body(
    key: SealingKey,
    signer: LocalSigner,
    header: SealedHeader,
    body: bytes,
    rng: RandomBits | None = None,
) -> SealedIntent:
    """Encrypt any ``body`` under ``header`` and sign the envelope; :func:`seal_intent` is the
    way to seal an intent (this one lets tests build envelopes a faulty client would send)."""
    _check_header(header)
    ephemeral, aead = key.session(header.epoch, rng)
    nonce = (
        rng(AEAD_NONCE_BYTES * 8).to_bytes(AEAD_NONCE_BYTES, "big")
        if rng is not None
        else secrets.token_bytes(AEAD_NONCE_BYTES)
    )
    ciphertext = aead.encrypt(nonce, body, associated_data(key.venue, header))
    signature = signer.sign(envelope_digest(key.venue, header, ephemeral, nonce, ciphertext))
    return SealedIntent(header, ephemeral, nonce, ciphertext, signature)


# ---------------------------------------------------------------------------------------------
# Strict decoding


def decode_sealed_intent(data: bytes) -> SealedIntent:
    """Decode the wire form strictly; raises :class:`MalformedSealedIntent`."""
    if type(data) is not bytes:
        raise MalformedSealedIntent(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise MalformedSealedIntent(
            f"sealed intent of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}"
        )
    try:
        items = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            max_str_len=64,  # no field is a string, but say which one held it
            max_bin_len=MAX_CIPHERTEXT_BYTES,
            max_array_len=16,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedSealedIntent(f"not a valid msgpack document: {exc}") from None
    if type(items) is not list or len(items) != 11:
        raise MalformedSealedIntent("expected an array of 11 items")
    version, account, nonce, expires_after, market, epoch, fee_cap = items[:7]
    ephemeral, aead_nonce, ct, sig = items[7:]
    if version != ENVELOPE_VERSION or type(version) is not int:
        raise MalformedSealedIntent(f"unknown envelope version {version!r}", field="version")
    _check_bytes("account", account, 20, 20)
    header = SealedHeader(account, nonce, expires_after, market, epoch, fee_cap)
    _check_header(header)
    _check_bytes("ephemeral", ephemeral, G1_BYTES, G1_BYTES)
    _check_bytes("aead_nonce", aead_nonce, AEAD_NONCE_BYTES, AEAD_NONCE_BYTES)
    _check_bytes("ciphertext", ct, TAG_BYTES + 1, MAX_CIPHERTEXT_BYTES)
    _check_bytes("signature", sig, SIGNATURE_BYTES, SIGNATURE_BYTES)
    envelope = SealedIntent(header, ephemeral, aead_nonce, ct, sig)
    # Every value now has its exact type and range, so re-packing gives the canonical bytes.
    if envelope.encode() != data:
        raise MalformedSealedIntent("non-canonical msgpack encoding")
    return envelope


# The fixed start of every envelope: an array of 11, version 1, a 20-byte bin (the account).
_ENVELOPE_START = bytes((0x9B, ENVELOPE_VERSION, 0xC4, 20))
_HEADER_INTS_AT = len(_ENVELOPE_START) + 20  # nonce, expires_after, market, epoch follow
# bytes an unsigned msgpack integer takes, by its first byte (fixint, uint 8/16/32/64); 0 for
# anything else, which leaves the read in place so that it ends on that byte with None
_UINT_SIZE = bytes(
    1 if tag < 0x80 else {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9}.get(tag, 0) for tag in range(256)
)


def envelope_epoch(data: bytes) -> int | None:
    """The target epoch in an envelope's wire bytes, or None if they do not start like one.

    A direct read of the header up to the epoch (no objects, no check of the rest), several
    times cheaper than :func:`decode_sealed_intent`. Whether the envelope is valid is decided
    where it is opened."""
    return header_epoch_at(data, 0)


def header_epoch_at(data: bytes, start: int) -> int | None:
    """:func:`envelope_epoch` of ``data[start:]``, without copying it (an item holding an
    envelope after its kind byte)."""
    if len(data) - start > MAX_ENVELOPE_BYTES or not data.startswith(_ENVELOPE_START, start):
        return None
    at = start + _HEADER_INTS_AT
    size = _UINT_SIZE
    try:
        at += size[data[at]]  # nonce
        at += size[data[at]]  # expires_after
        at += size[data[at]]  # market
        tag = data[at]  # the epoch
    except IndexError:
        return None  # the bytes end inside the header
    width = size[tag]
    if width == 1:
        return tag
    if width == 0 or at + width > len(data):
        return None  # not an unsigned integer (a negative, a string...), or cut short
    return int.from_bytes(data[at + 1 : at + width], "big")


def _check_bytes(name: str, value: Any, least: int, most: int) -> None:
    if type(value) is not bytes:
        raise MalformedSealedIntent(f"{name}: expected bytes", field=name)
    if not least <= len(value) <= most:
        size = str(least) if least == most else f"{least} to {most}"
        raise MalformedSealedIntent(f"{name}: expected {size} bytes, got {len(value)}", field=name)


def sealed_intent_id(data: bytes) -> bytes:
    """The id of a sealed intent before it is opened: keccak256 of its wire form."""
    return keccak256(data)


def envelope_signer(venue: bytes, envelope: SealedIntent) -> bytes:
    """The address that signed the envelope; raises ``SignatureError`` if none does."""
    digest = envelope_digest(
        venue, envelope.header, envelope.ephemeral, envelope.aead_nonce, envelope.ciphertext
    )
    return recover_address(digest, envelope.signature)


# ---------------------------------------------------------------------------------------------
# Opening (every member, after the epoch key is combined)


class Rejection(Enum):
    """Why a sealed intent did not open; deterministic, the same on every member."""

    WRONG_EPOCH = "wrong_epoch"
    BAD_ENVELOPE_SIGNATURE = "bad_envelope_signature"
    BAD_EPHEMERAL = "bad_ephemeral"
    DECRYPTION_FAILED = "decryption_failed"
    MALFORMED_BODY = "malformed_body"
    BAD_BODY_SIGNATURE = "bad_body_signature"
    SIGNER_MISMATCH = "signer_mismatch"
    HEADER_MISMATCH = "header_mismatch"


@dataclass(frozen=True, slots=True)
class Opened:
    signed: SignedIntent
    body: bytes  # the signed intent's canonical bytes, as the client encoded them


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Rejection
    detail: str


Sessions: TypeAlias = dict[bytes, ChaCha20Poly1305 | Rejected]
"""What :func:`open_sealed_intent` may remember per ``U`` while opening one epoch's block."""


def open_sealed_intent(
    domain: Domain, key: EpochKey, envelope: SealedIntent, sessions: Sessions | None = None
) -> Opened | Rejected:
    """Open ``envelope`` with the epoch key: the signed intent, or why it is rejected.

    Pass one ``sessions`` dict for all envelopes of one epoch (and one key) so that each
    client session's pairing is computed once.
    """
    header = envelope.header
    if header.epoch != key.epoch:
        return Rejected(
            Rejection.WRONG_EPOCH, f"sealed for epoch {header.epoch}, key of epoch {key.epoch}"
        )
    venue = venue_id(domain)
    try:
        envelope_by = envelope_signer(venue, envelope)
    except SignatureError as exc:
        return Rejected(Rejection.BAD_ENVELOPE_SIGNATURE, str(exc))
    aead = sessions.get(envelope.ephemeral) if sessions is not None else None
    if aead is None:
        aead = _open_session(key, envelope.ephemeral)
        if sessions is not None:
            sessions[envelope.ephemeral] = aead
    if isinstance(aead, Rejected):
        return aead
    try:
        body = aead.decrypt(
            envelope.aead_nonce, envelope.ciphertext, associated_data(venue, header)
        )
    except InvalidTag:
        return Rejected(
            Rejection.DECRYPTION_FAILED, "the ciphertext or its header fails authentication"
        )
    try:
        intent, signature = decode_intent_payload(body)
    except MalformedIntent as exc:
        return Rejected(Rejection.MALFORMED_BODY, str(exc))
    try:
        signer = verify_intent(domain, intent, signature)
    except (SignatureError, MalformedIntent) as exc:
        return Rejected(Rejection.BAD_BODY_SIGNATURE, str(exc))
    if signer != envelope_by:
        return Rejected(
            Rejection.SIGNER_MISMATCH,
            f"body signed by 0x{signer.hex()}, envelope by 0x{envelope_by.hex()}",
        )
    market = getattr(intent, "market", ALL_MARKETS)
    for name, inside, outside in (
        ("account", intent.account, header.account),
        ("nonce", intent.nonce, header.nonce),
        ("expires_after", intent.expires_after, header.expires_after),
        ("market", market, header.market),
    ):
        if inside != outside:
            return Rejected(Rejection.HEADER_MISMATCH, f"{name} differs from the header")
    return Opened(SignedIntent(intent, signature, signer), body)


def _open_session(key: EpochKey, ephemeral: bytes) -> ChaCha20Poly1305 | Rejected:
    try:
        point = decode_g1(ephemeral, "ephemeral")
    except PointError as exc:
        return Rejected(Rejection.BAD_EPHEMERAL, str(exc))
    return _aead_key(gt_bytes(pairing(point, key.point)), ephemeral)
