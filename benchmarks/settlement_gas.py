"""Settlement gas benchmark: what posting a batch of intents to Settlement.commitBatch costs.

Measured on the real compiled contract in py-evm, under two rule sets:
- ``prague`` (mainnet since May 2025): EIP-7623 makes a data-heavy transaction pay at least
  10 gas per calldata token (a non-zero byte is 4 tokens), i.e. 40 gas per non-zero byte;
- ``cancun``: the classic 16 gas per non-zero byte, 4 per zero byte, no floor.

Batch data is incompressible pseudo-random bytes (compressed intents look random), sized
``intents * bytes_per_intent``. Each size is committed after a warm-up batch, so every figure is
a steady-state commit (new storage slots for the batch record, warm counters). Besides the
receipt's gas it reports the calldata share and the per-intent byte budget that a 300
gas-per-intent target leaves. It prints figures and never asserts.
"""

from __future__ import annotations

import random
from typing import Any

from eth_account import Account

from asyncdex.commitment.merkle import ZERO_HASH
from asyncdex.settlement.chain import EthTesterChain, SettlementClient
from asyncdex.types.hashing import keccak256

TARGET_GAS_PER_INTENT = 300
TX_BASE_GAS = 21_000


def calldata_costs(data: bytes) -> dict[str, int]:
    """Intrinsic calldata gas under the classic schedule and the EIP-7623 floor."""
    zeros = data.count(0)
    nonzeros = len(data) - zeros
    return {
        "standard": 16 * nonzeros + 4 * zeros,
        "floor": 10 * (zeros + 4 * nonzeros),
    }


def _root(label: int) -> bytes:
    return keccak256(label.to_bytes(32, "big"))


def measure_fork(
    fork: str, intent_counts: tuple[int, ...], bytes_per_intent: int
) -> dict[str, Any]:
    chain = EthTesterChain(fork)
    deployer = Account.from_key(chain.funded_keys[0])
    sequencer = Account.from_key(chain.funded_keys[1])
    settlement = SettlementClient.deploy(
        chain, deployer.key, sequencer.address, 64, 7_200, _root(0)
    )
    rng = random.Random(2024)

    def commit(number: int, data: bytes) -> tuple[int, bytes]:
        """Commit batch ``number``; returns its gas and the transaction's calldata."""
        receipt = settlement.commit_batch(
            deployer.key,
            sequencer.key,
            number,
            _root(number - 1),
            _root(number),
            ZERO_HASH,
            0,
            data,
        )
        transaction = chain.w3.eth.get_transaction(receipt["transactionHash"])
        return int(receipt["gasUsed"]), bytes(transaction["input"])

    commit(1, rng.randbytes(32))  # first-ever writes (zero to non-zero counters) off the books
    results: dict[str, Any] = {}
    for number, intents in enumerate(intent_counts, start=2):
        data = rng.randbytes(intents * bytes_per_intent)
        gas, calldata = commit(number, data)
        costs = calldata_costs(calldata)
        results[str(intents)] = {
            "batch_bytes": len(data),
            "gas": gas,
            "gas_per_intent": round(gas / intents, 1),
            "calldata_gas_standard": costs["standard"],
            "calldata_gas_floor": costs["floor"],
            "floor_applied": gas == TX_BASE_GAS + costs["floor"],
        }
    return results


def byte_budget(results: dict[str, Any], bytes_per_intent: int) -> dict[str, float]:
    """Per-intent byte budget under the target, from the two largest measured sizes:
    marginal gas per byte, fixed cost per intent, and what 300 gas per intent allows."""
    sizes = sorted(int(size) for size in results)
    small, large = results[str(sizes[-2])], results[str(sizes[-1])]
    per_byte = (large["gas"] - small["gas"]) / (large["batch_bytes"] - small["batch_bytes"])
    fixed = large["gas"] - per_byte * large["batch_bytes"]
    per_intent_fixed = fixed / sizes[-1]
    return {
        "marginal_gas_per_byte": round(per_byte, 2),
        "fixed_gas_per_batch": round(fixed),
        "bytes_per_intent_at_target": round(
            (TARGET_GAS_PER_INTENT - per_intent_fixed) / per_byte, 1
        ),
        "gas_per_intent_at_measured_size": round(per_intent_fixed + per_byte * bytes_per_intent, 1),
    }


def run(
    quick: bool = False,
    bytes_per_intent: int = 30,
    intent_counts: tuple[int, ...] = (100, 1_000, 10_000),
) -> dict[str, Any]:
    forks = ("prague",) if quick else ("prague", "cancun")
    report: dict[str, Any] = {"bytes_per_intent": bytes_per_intent}
    for fork in forks:
        results = measure_fork(fork, intent_counts, bytes_per_intent)
        budget = byte_budget(results, bytes_per_intent)
        report[fork] = {"commits": results, "budget": budget}
        print(f"commitBatch gas, {fork} rules, {bytes_per_intent} bytes per intent", flush=True)
        for intents, row in results.items():
            floor = " (EIP-7623 floor)" if row["floor_applied"] else ""
            print(
                f"  {int(intents):>6,} intents {row['batch_bytes']:>8,} B "
                f"{row['gas']:>11,} gas {row['gas_per_intent']:>8} gas/intent{floor}",
                flush=True,
            )
        print(
            f"  marginal {budget['marginal_gas_per_byte']} gas/byte, fixed "
            f"{budget['fixed_gas_per_batch']:,} gas/batch: {TARGET_GAS_PER_INTENT} gas/intent "
            f"allows {budget['bytes_per_intent_at_target']} bytes/intent",
            flush=True,
        )
    return report


if __name__ == "__main__":
    run()
