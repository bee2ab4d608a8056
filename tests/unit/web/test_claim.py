"""The page's on-chain claim (``src/asyncdex/web/src/claim.js``, run in node) against the
contract's ABI as web3 encodes it: the ``claimWithdrawal`` call data byte for byte, for
proofs of zero to many nodes and values up to the edges of their words (as decimal strings
past 2^53, where a JSON number is refused), and the contract's revert data (as a wallet
reports it) read back into words.

Needs node and the page's npm packages, as ``test_build.py``.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from eth_abi import encode
from web3 import Web3

from asyncdex.settlement.chain import load_artifact
from asyncdex.types.hashing import keccak256

from .test_build import WEB, web_toolchain

SCRIPT = r"""
import { encodeClaim, refusalWords } from "./src/claim.js";
const { proofs, reverts } = JSON.parse(process.argv[1]);
let unsafe;
try {
  encodeClaim({ ...proofs[0], amount: 2 ** 53 + 2 });
} catch (error) {
  unsafe = error.message;
}
process.stdout.write(JSON.stringify({
  unsafe,
  calls: proofs.map(encodeClaim),
  words: reverts.map((data) => refusalWords({ message: "execution reverted", data })),
}));
"""

PROOFS: list[dict[str, Any]] = [
    {
        "withdrawalId": 1,
        "account": "0x" + "ab" * 20,
        "amount": 100 * 10**6,
        "batch": 3,
        "index": 0,
        "proof": [],
    },
    {
        "withdrawalId": 2**53 - 1,
        "account": "0x" + "ff" * 20,
        "amount": 2**53 - 1,
        "batch": 2**32,
        "index": 6,
        "proof": ["0x" + keccak256(bytes([i])).hex() for i in range(3)],
    },
    {  # past 2^53 as decimal strings: exact to the word's edge
        "withdrawalId": str(2**63 - 1),
        "account": "0x" + "01" * 20,
        "amount": str(2**256 - 1),
        "batch": str(2**64),
        "index": "1",
        "proof": ["0x" + "00" * 32],
    },
]


def revert(signature: str, types: list[str], values: list[int]) -> str:
    return "0x" + (keccak256(signature.encode())[:4] + encode(types, values)).hex()


def test_the_page_encodes_claims_and_reads_refusals_as_the_contract_defines_them() -> None:
    node = web_toolchain()
    reverts = [
        revert("BatchNotFinal(uint256)", ["uint256"], [7]),
        revert("WithdrawalAlreadyClaimed(uint256)", ["uint256"], [12]),
        revert("InsufficientFunds(uint256,uint256)", ["uint256", "uint256"], [5, 3]),
        revert("InvalidProof()", [], []),
        "0xdeadbeef",
    ]
    result = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT,
         json.dumps({"proofs": PROOFS, "reverts": reverts})],
        cwd=WEB, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    answer = json.loads(result.stdout)
    contract = Web3().eth.contract(abi=load_artifact("Settlement")["abi"])
    for proof, data in zip(PROOFS, answer["calls"], strict=True):
        arguments = [
            int(proof["batch"]),
            int(proof["withdrawalId"]),
            Web3.to_checksum_address(proof["account"]),
            int(proof["amount"]),
            [bytes.fromhex(node[2:]) for node in proof["proof"]],
            int(proof["index"]),
        ]
        assert data == contract.encode_abi("claimWithdrawal", args=arguments)
    # a JSON number past 2^53 has lost digits before the page sees it: refused, not rounded
    assert "not exactly representable" in answer["unsafe"]
    assert answer["words"] == [
        "batch 7 is not final on chain yet: claim once it is finalized",
        "withdrawal 12 is already claimed",
        "the contract holds 3 micro-USDC, less than the 5 claimed",
        "the proof does not match the batch's withdrawals root",
        "execution reverted",
    ]
