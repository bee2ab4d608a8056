"""Fixtures for the settlement tests: a fresh in-process EVM with the real compiled contracts."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from asyncdex.commitment.merkle import ZERO_HASH
from asyncdex.settlement.chain import ContractReverted, EthTesterChain, SettlementClient

FINALITY_BLOCKS = 5
FORCED_DEADLINE_BLOCKS = 10
GENESIS_ROOT = b"\x01" * 32


@dataclass
class Venue:
    chain: EthTesterChain
    settlement: SettlementClient
    deployer: LocalAccount
    sequencer: LocalAccount
    operator: LocalAccount  # posts batches; needs no special rights
    alice: LocalAccount
    bob: LocalAccount
    outsider: LocalAccount

    def fund(self, account: LocalAccount, amount: int) -> None:
        """Mint ``amount`` to ``account`` and approve the settlement contract for all of it."""
        self.settlement.mint(account.key, account.address, amount)
        self.settlement.approve(account.key, 2**256 - 1)

    def commit(
        self,
        batch_number: int,
        prev_root: bytes,
        new_root: bytes,
        withdrawals_root: bytes = ZERO_HASH,
        l1_consumed: int = 0,
        batch_data: bytes = b"intents",
        **overrides: Any,
    ) -> Any:
        return self.settlement.commit_batch(
            self.operator.key,
            self.sequencer.key,
            batch_number,
            prev_root,
            new_root,
            withdrawals_root,
            l1_consumed,
            batch_data,
            **overrides,
        )


@pytest.fixture
def venue() -> Venue:
    chain = EthTesterChain()
    deployer, sequencer, operator, alice, bob, outsider = (
        Account.from_key(key) for key in chain.funded_keys[:6]
    )
    settlement = SettlementClient.deploy(
        chain,
        deployer.key,
        sequencer.address,
        FINALITY_BLOCKS,
        FORCED_DEADLINE_BLOCKS,
        GENESIS_ROOT,
    )
    return Venue(chain, settlement, deployer, sequencer, operator, alice, bob, outsider)


def reverts(error: str) -> AbstractContextManager[Any]:
    """Expect a revert with the Solidity custom error named ``error``."""
    return pytest.raises(ContractReverted, match=rf"^{re.escape(error)}(\(|$)")
