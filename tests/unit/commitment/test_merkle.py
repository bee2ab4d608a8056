"""merkle.py's proofs verify, tampering fails, and Settlement.verifyProof agrees with Python."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncdex.commitment.merkle import ZERO_HASH, merkle_proof, merkle_root, verify_proof
from asyncdex.settlement.chain import EthTesterChain, SettlementClient
from asyncdex.types.hashing import keccak256

hashes = st.binary(min_size=32, max_size=32)
trees = st.lists(hashes, min_size=1, max_size=40, unique=True)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(trees)
    return leaves, draw(st.integers(min_value=0, max_value=len(leaves) - 1))


def flip_byte(value: bytes, position: int) -> bytes:
    return value[:position] + bytes([value[position] ^ 0xFF]) + value[position + 1 :]


@given(tree_and_index())
def test_every_proof_verifies(case: tuple[list[bytes], int]) -> None:
    leaves, index = case
    assert verify_proof(merkle_root(leaves), leaves[index], index, merkle_proof(leaves, index))


@given(tree_and_index(), hashes)
def test_a_tampered_leaf_fails(case: tuple[list[bytes], int], other: bytes) -> None:
    leaves, index = case
    if other == leaves[index]:
        other = flip_byte(other, 0)
    assert not verify_proof(merkle_root(leaves), other, index, merkle_proof(leaves, index))


@given(tree_and_index(), st.integers(min_value=0, max_value=300))
def test_a_tampered_index_fails(case: tuple[list[bytes], int], shift: int) -> None:
    leaves, index = case
    proof = merkle_proof(leaves, index)
    wrong = index ^ (1 << (shift % len(proof))) if proof and shift < 200 else index + (1 << 200)
    assert not verify_proof(merkle_root(leaves), leaves[index], wrong, proof)


@given(tree_and_index(), st.integers(min_value=0), st.integers(min_value=0, max_value=31))
def test_a_tampered_proof_fails(case: tuple[list[bytes], int], which: int, byte: int) -> None:
    leaves, index = case
    proof = merkle_proof(leaves, index)
    root = merkle_root(leaves)
    if not proof:  # a one-leaf tree: its proof is empty, so a longer one must fail
        assert not verify_proof(root, leaves[index], index, [ZERO_HASH])
        return
    position = which % len(proof)
    proof[position] = flip_byte(proof[position], byte)
    assert not verify_proof(root, leaves[index], index, proof)


def test_small_trees_by_hand() -> None:
    a, b, c = keccak256(b"a"), keccak256(b"b"), keccak256(b"c")
    assert merkle_root([]) == ZERO_HASH
    assert merkle_root([a]) == a and merkle_proof([a], 0) == []
    left, right = keccak256(a + b), keccak256(c + ZERO_HASH)
    assert merkle_root([a, b, c]) == keccak256(left + right)
    assert merkle_proof([a, b, c], 2) == [ZERO_HASH, left]


# ---------------------------------------------------------------- against the contract


@pytest.fixture(scope="module")
def settlement() -> Iterator[SettlementClient]:
    chain = EthTesterChain()
    deployer = Account.from_key(chain.funded_keys[0])
    yield SettlementClient.deploy(chain, deployer.key, deployer.address, 1, 1, ZERO_HASH)


def contract_verifies(
    settlement: SettlementClient, root: bytes, leaf: bytes, index: int, proof: list[bytes]
) -> bool:
    function = settlement.contract.functions.verifyProof(root, leaf, index, proof)
    return bool(settlement.chain.call(function))


@settings(max_examples=60, deadline=None)
@given(tree_and_index(), st.sampled_from(["honest", "leaf", "index", "proof", "depth"]))
def test_contract_agrees_with_python(
    settlement: SettlementClient, case: tuple[list[bytes], int], tamper: str
) -> None:
    leaves, index = case
    root, leaf, proof = merkle_root(leaves), leaves[index], merkle_proof(leaves, index)
    if tamper == "leaf":
        leaf = flip_byte(leaf, 31)
    elif tamper == "index":
        index += 1 << len(proof)
    elif tamper == "proof" and proof:
        proof[-1] = flip_byte(proof[-1], 0)
    elif tamper == "depth":
        proof.append(ZERO_HASH)
    expected = verify_proof(root, leaf, index, proof)
    assert contract_verifies(settlement, root, leaf, index, proof) == expected
    assert expected == (tamper == "honest" or (tamper == "proof" and len(leaves) == 1))
