"""Member signatures and the canonical message encoding."""

from __future__ import annotations

import pytest

from asyncdex.consensus import CachingVerifier, Committee, Secp256k1Signer, Secp256k1Verifier
from asyncdex.consensus.crypto import _SECP256K1_N
from asyncdex.consensus.messages import (
    GENESIS_QC,
    Block,
    BlockRequest,
    BlockResponse,
    ForwardItem,
    MalformedMessage,
    NewView,
    Proposal,
    QuorumCertificate,
    TimeoutCertificate,
    TimeoutMessage,
    Vote,
    decode,
    encode,
    timeout_digest,
    vote_digest,
)
from asyncdex.types.hashing import keccak256

ALICE = Secp256k1Signer.from_seed(b"alice")
BOB = Secp256k1Signer.from_seed(b"bob")
DIGEST = keccak256(b"a vote")
verify = Secp256k1Verifier()


def test_signature_verifies_for_its_signer_only() -> None:
    signature = ALICE.sign(DIGEST)
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert verify(ALICE.address, DIGEST, signature)
    assert not verify(BOB.address, DIGEST, signature)
    assert not verify(ALICE.address, keccak256(b"another"), signature)


def test_high_s_twin_and_bad_recovery_id_are_refused() -> None:
    signature = ALICE.sign(DIGEST)
    s = int.from_bytes(signature[32:64], "big")
    twin_v = 55 - signature[64]  # flipping s flips the recovery id
    twin = signature[:32] + (_SECP256K1_N - s).to_bytes(32, "big") + bytes([twin_v])
    assert not verify(ALICE.address, DIGEST, twin)
    assert not verify(ALICE.address, DIGEST, signature[:64] + b"\x01")
    assert not verify(ALICE.address, DIGEST, signature[:64])
    assert not verify(ALICE.address, DIGEST, bytes(65))


def test_caching_verifier_gives_the_inner_answers() -> None:
    cached = CachingVerifier()
    good, bad = ALICE.sign(DIGEST), BOB.sign(DIGEST)
    for _ in range(2):
        assert cached(ALICE.address, DIGEST, good)
        assert not cached(ALICE.address, DIGEST, bad)
    assert (cached.misses, cached.hits) == (2, 2)


def test_digests_are_separated_by_kind_and_committee() -> None:
    other = Committee((ALICE.address,), domain=b"another committee")
    block_hash = keccak256(b"b")
    assert vote_digest(b"d", 3, block_hash) != vote_digest(other.domain, 3, block_hash)
    assert vote_digest(b"d", 3, block_hash) != timeout_digest(b"d", 3)


def test_block_hash_covers_its_content() -> None:
    a = Block(1, 1, GENESIS_QC, 1, (b"x",))
    assert a.hash == Block(1, 1, GENESIS_QC, 1, (b"x",)).hash
    assert a.hash != Block(1, 1, GENESIS_QC, 1, (b"y",)).hash
    assert a.hash != Block(2, 1, GENESIS_QC, 1, (b"x",)).hash
    assert a.parent == GENESIS_QC.block_hash


def test_block_hash_covers_timestamp_and_justify_signers_not_signatures() -> None:
    assert Block(1, 1, GENESIS_QC, 1, (), 5).hash != Block(1, 1, GENESIS_QC, 1, (), 6).hash
    parent = keccak256(b"parent")
    by_0_1 = QuorumCertificate(3, parent, ((0, b"s" * 65), (1, b"t" * 65)))
    by_0_2 = QuorumCertificate(3, parent, ((0, b"s" * 65), (2, b"t" * 65)))
    same_signers = QuorumCertificate(3, parent, ((0, b"x" * 65), (1, b"y" * 65)))
    block = Block(4, 2, by_0_1, 0, (b"x",), 7)
    # which members certified the parent is fixed by the block (fees pay those signers)
    assert block.hash != Block(4, 2, by_0_2, 0, (b"x",), 7).hash
    # another valid signature set by the same members names the same block
    assert block.hash == Block(4, 2, same_signers, 0, (b"x",), 7).hash


def _messages() -> list[object]:
    qc = QuorumCertificate(4, keccak256(b"b4"), ((0, b"s" * 65), (2, b"t" * 65)))
    tc = TimeoutCertificate(5, ((1, b"u" * 65),))
    block = Block(6, 3, qc, 2, (b"intent-1", b"intent-2"))
    return [
        Proposal(block, tc, 2, b"p" * 65),
        Proposal(block, None, 2, b"p" * 65),
        Vote(6, block.hash, 3, b"v" * 65),
        TimeoutMessage(6, qc, tc, 1, b"w" * 65),
        TimeoutMessage(6, GENESIS_QC, None, 1, b"w" * 65),
        NewView(7, qc, 0, b"n" * 65),
        BlockRequest(block.hash, 2, 1, b"r" * 65),
        BlockResponse((block,), 1, b"q" * 65),
        ForwardItem((b"\x00raw intent", b"another"), 3, b"f" * 65),
    ]


@pytest.mark.parametrize("message", _messages(), ids=lambda m: type(m).__name__)
def test_encoding_round_trips(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    assert decode(data) == message
    assert encode(decode(data)) == data


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", encode(Vote(1, bytes(32), 0))[:-3], b"\x93\xa4vote\x01\x02"],
    ids=["empty", "invalid-msgpack", "truncated", "wrong-shape"],
)
def test_invalid_bytes_are_refused_with_malformed_message(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(data)


def test_invalid_field_types_are_refused() -> None:
    from asyncdex.types.packing import pack

    with pytest.raises(MalformedMessage, match="32"):
        decode(pack(["vote", 1, b"short", 0, b"sig"]))
    with pytest.raises(MalformedMessage, match="non-negative"):
        decode(pack(["vote", -1, bytes(32), 0, b"sig"]))
    with pytest.raises(MalformedMessage, match="unknown message kind"):
        decode(pack(["ballot", 1, bytes(32), 0, b"sig"]))
