"""Certificate gas benchmark: what a committee's quorum certificate adds to each batch.

Measured on the real compiled CommitteeSettlement in py-evm (Prague rules) for committees of
n = 4, 7 and 10 members, each certificate carrying exactly a quorum, n - floor((n-1)/3),
of ECDSA signatures:
- ``verify_gas``: execution gas of ``verifyCertificate(digest, certificate)`` alone (the
  transaction's intrinsic 21,000 and its calldata subtracted): the on-chain check of the
  bitmap, the ecrecovers and the member loads;
- ``certificate_calldata_gas``: what the certificate's bytes cost as calldata (16 gas per
  non-zero byte, 4 per zero byte);
- ``commit_gas`` and ``extra_over_single``: the receipt gas of a steady-state commitBatch with
  the certificate, and its difference to the same batch in the single-operator contract.
From the per-signer slope it derives the committee size at which a flat BLS12-381 aggregate
check (133,860 gas on anvil's EIP-2537 precompiles, without hashing to the curve) becomes
cheaper. It prints figures and never asserts.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account

from asyncdex.commitment.merkle import ZERO_HASH
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.settlement.certificate import BatchHeader, certify, quorum
from asyncdex.settlement.chain import (
    CommitteeSettlementClient,
    EthTesterChain,
    SettlementClient,
)
from asyncdex.types.hashing import keccak256

TX_BASE_GAS = 21_000
BLS_AGGREGATE_VERIFY_GAS = 133_860  # TRUST.md: anvil, EIP-2537, 4-signer aggregate
MIN_BOND = 1_000
BATCH_DATA = bytes(range(1, 241))  # 240 non-zero bytes: the same batch in every contract


def calldata_gas(data: bytes) -> int:
    zeros = data.count(0)
    return 16 * (len(data) - zeros) + 4 * zeros


def _root(label: int) -> bytes:
    return keccak256(label.to_bytes(32, "big"))


def _fund_gas(chain: EthTesterChain, funder: str, to: str) -> None:
    chain.w3.eth.send_transaction({"from": funder, "to": to, "value": 10**18})  # type: ignore[typeddict-item]


def measure_committee(chain: EthTesterChain, size: int) -> dict[str, Any]:
    deployer = Account.from_key(chain.funded_keys[0])
    keys = [keccak256(f"asyncdex/bench/certificate-gas/{size}/{i}".encode()) for i in range(size)]
    signers = [Secp256k1Signer(key) for key in keys]
    members = [signer.address for signer in signers]
    settlement = CommitteeSettlementClient.deploy_committee(
        chain,
        deployer.key,
        members,
        64,
        7_200,
        _root(0),
        min_bond=MIN_BOND,
        unbonding_period_s=86_400,
        reporter_share_bps=2_500,
        insurance_account=deployer.address,
        consensus_domain=b"asyncdex/consensus/v1",
    )
    for key in keys:
        account = Account.from_key(key)
        _fund_gas(chain, deployer.address, account.address)
        settlement.mint(key, account.address, MIN_BOND)
        settlement.approve(key, MIN_BOND)
        settlement.bond(key, MIN_BOND)

    def commit(number: int) -> tuple[int, bytes, bytes]:
        header = BatchHeader(
            number, _root(number - 1), _root(number), ZERO_HASH, 0, keccak256(BATCH_DATA)
        )
        digest = header.digest(chain.chain_id, settlement.address)
        certificate = certify(digest, members, signers)
        receipt = settlement.commit_certified(
            deployer.key, number, _root(number - 1), _root(number), ZERO_HASH, 0, BATCH_DATA,
            certificate,
        )  # fmt: skip
        return int(receipt["gasUsed"]), digest, certificate

    commit(1)  # first writes off the books, as in settlement_gas
    commit_gas, _, _ = commit(2)
    # a fresh digest so nothing is warm from the commit above
    _, digest, certificate = commit(3)
    # sent as a transaction (a view can be): its receipt is exact, where an estimate would
    # add the 63/64 headroom of the precompile calls
    function = settlement.contract.functions.verifyCertificate(digest, certificate)
    receipt = chain.transact(deployer.key, function)
    call_data = bytes(chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    verify_gas = int(receipt["gasUsed"]) - TX_BASE_GAS - calldata_gas(call_data)
    return {
        "members": size,
        "signatures": quorum(size),
        "certificate_bytes": len(certificate),
        "verify_gas": verify_gas,
        "certificate_calldata_gas": calldata_gas(certificate),
        "commit_gas": commit_gas,
    }


def single_operator_commit_gas(chain: EthTesterChain) -> int:
    deployer = Account.from_key(chain.funded_keys[0])
    sequencer = Account.from_key(chain.funded_keys[1])
    settlement = SettlementClient.deploy(
        chain, deployer.key, sequencer.address, 64, 7_200, _root(0)
    )
    gas = 0
    for number in (1, 2):
        receipt = settlement.commit_batch(
            deployer.key, sequencer.key, number, _root(number - 1), _root(number), ZERO_HASH, 0,
            BATCH_DATA,
        )  # fmt: skip
        gas = int(receipt["gasUsed"])
    return gas


def run(quick: bool = False, sizes: tuple[int, ...] = (4, 7, 10)) -> dict[str, Any]:
    chain = EthTesterChain("prague")
    single = single_operator_commit_gas(chain)
    rows = [measure_committee(chain, size) for size in sizes]
    print(f"single-operator commitBatch: {single:,} gas ({len(BATCH_DATA)} B of batch data)")
    print("certificate gas per batch (Prague rules, quorum of ECDSA signatures):")
    for row in rows:
        row["extra_over_single"] = row["commit_gas"] - single
        print(
            f"  n={row['members']:>2} signatures={row['signatures']:>2} "
            f"verify {row['verify_gas']:>6,} gas + calldata "
            f"{row['certificate_calldata_gas']:>5,} gas; commitBatch {row['commit_gas']:>7,} "
            f"gas ({row['extra_over_single']:+,} over single-operator)",
            flush=True,
        )
    first, last = rows[0], rows[-1]
    per_signer = (
        last["verify_gas"]
        + last["certificate_calldata_gas"]
        - first["verify_gas"]
        - first["certificate_calldata_gas"]
    ) / (last["signatures"] - first["signatures"])
    fixed = (
        first["verify_gas"] + first["certificate_calldata_gas"] - per_signer * first["signatures"]
    )
    crossover_signers = (BLS_AGGREGATE_VERIFY_GAS - fixed) / per_signer
    # smallest n whose quorum needs at least that many signatures
    crossover_members = next(n for n in range(1, 1_000) if quorum(n) >= crossover_signers)
    print(
        f"per signer {per_signer:,.0f} gas (ecrecover, member load, 65 B calldata); "
        f"a flat {BLS_AGGREGATE_VERIFY_GAS:,}-gas BLS check wins from "
        f"{crossover_signers:.0f} signatures, i.e. committees of n >= {crossover_members}",
        flush=True,
    )
    return {
        "single_operator_commit_gas": single,
        "committees": {str(row["members"]): row for row in rows},
        "gas_per_signer": round(per_signer),
        "fixed_gas": round(fixed),
        "bls_crossover_signatures": round(crossover_signers, 1),
        "bls_crossover_members": crossover_members,
    }


if __name__ == "__main__":
    run()
