"""A thin client for the settlement contract, over the in-process EVM or any JSON-RPC node.

Invariants:
- Every transaction is signed locally from a private key and sent raw, so the same code drives
  py-evm (``EthTesterChain``) and a real node (``RpcChain``); nothing relies on node-held keys.
- A revert surfaces as ``ContractReverted`` carrying the custom error's name and decoded
  arguments on every backend, so callers match on names, never on message strings.
- ``batch_digest`` is ``Settlement.batchDigest``: the EIP-712 digest of
  ``Batch(batchNumber, prevStateRoot, newStateRoot, withdrawalsRoot, l1MessagesConsumed,
  batchDataHash)`` under the domain (name "asyncdex Settlement", version "1", chain id,
  contract address); the batch data itself is bound through ``batchDataHash``.
- Contracts come from the committed artifacts next to their sources; nothing is compiled or
  downloaded at run time.
- The reads a node makes every poll (block number, last batch, last final batch, finality of
  a batch) go over JSON-RPC as raw requests on ``RpcChain`` (``Chain.view``): web3's
  contract and formatting layers cost milliseconds of the node's interpreter lock per call,
  which the event loop would wait for; the answers are the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib.resources import files
from typing import Any, Self, cast

from eth_abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.types import Nonce, TxParams, TxReceipt

from asyncdex.types.hashing import keccak256

PrivateKey = bytes | str

EIP712_DOMAIN_TYPE = (
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
BATCH_TYPE = (
    b"Batch(uint256 batchNumber,bytes32 prevStateRoot,bytes32 newStateRoot,"
    b"bytes32 withdrawalsRoot,uint256 l1MessagesConsumed,bytes32 batchDataHash)"
)
DOMAIN_NAME = b"asyncdex Settlement"
DOMAIN_VERSION = b"1"


class MessageKind(IntEnum):
    DEPOSIT = 0
    FORCED_WITHDRAWAL = 1
    FORCED_CANCEL_ALL = 2


@dataclass(frozen=True, slots=True)
class L1MessageRecord:
    """One ``L1Message`` event: a deposit or a forced request, in queue order."""

    index: int
    kind: MessageKind
    account: ChecksumAddress
    amount: int
    block_number: int
    deadline: int  # 0 for deposits


@dataclass(frozen=True, slots=True)
class BatchCommit:
    """One ``BatchCommitted`` event and the transaction that emitted it."""

    batch_number: int
    state_root: bytes
    withdrawals_root: bytes
    l1_messages_consumed: int
    batch_data_hash: bytes
    tx_hash: bytes
    block_number: int


@dataclass(frozen=True, slots=True)
class CommitBatchCall:
    """The arguments of a ``commitBatch`` call, decoded from a transaction's input."""

    batch_number: int
    prev_state_root: bytes
    new_state_root: bytes
    withdrawals_root: bytes
    l1_messages_consumed: int
    batch_data: bytes
    batch_data_hash: bytes
    signature: bytes


class ContractReverted(Exception):
    """A call or transaction reverted; ``error`` is the Solidity error's name."""

    def __init__(self, error: str, arguments: tuple[Any, ...] = ()) -> None:
        super().__init__(f"{error}{arguments!r}" if arguments else error)
        self.error = error
        self.arguments = arguments


# ---------------------------------------------------------------- encodings


def batch_digest(
    chain_id: int,
    contract_address: str,
    batch_number: int,
    prev_state_root: bytes,
    new_state_root: bytes,
    withdrawals_root: bytes,
    l1_messages_consumed: int,
    batch_data_hash: bytes,
) -> bytes:
    """The EIP-712 digest the sequencer signs for a batch (mirrors Settlement.batchDigest)."""
    domain_separator = keccak256(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak256(EIP712_DOMAIN_TYPE),
                keccak256(DOMAIN_NAME),
                keccak256(DOMAIN_VERSION),
                chain_id,
                contract_address,
            ],
        )
    )
    struct_hash = keccak256(
        encode(
            ["bytes32", "uint256", "bytes32", "bytes32", "bytes32", "uint256", "bytes32"],
            [
                keccak256(BATCH_TYPE),
                batch_number,
                prev_state_root,
                new_state_root,
                withdrawals_root,
                l1_messages_consumed,
                batch_data_hash,
            ],
        )
    )
    return keccak256(b"\x19\x01" + domain_separator + struct_hash)


def sign_digest(key: PrivateKey, digest: bytes) -> bytes:
    """65-byte r || s || v signature (v 27/28, low s) over a 32-byte digest."""
    return bytes(Account.unsafe_sign_hash(digest, key).signature)


# ---------------------------------------------------------------- artifacts and reverts


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The committed compiler output for contract ``name`` (abi, bytecode, ...)."""
    text = files("asyncdex.settlement").joinpath("contracts", f"{name}.json").read_text()
    return cast(dict[str, Any], json.loads(text))


def _error_table(abi: Sequence[Mapping[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    table = {
        bytes.fromhex("08c379a0"): ("Error", ["string"]),
        bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
    }
    for entry in abi:
        if entry["type"] == "error":
            types = [item["type"] for item in entry["inputs"]]
            signature = f"{entry['name']}({','.join(types)})".encode()
            table[keccak256(signature)[:4]] = (entry["name"], types)
    return table


def _revert_data(exc: BaseException) -> bytes | None:
    """Raw revert bytes from a web3 or eth-tester exception, wherever the backend put them.

    web3 over JSON-RPC puts them in ``.data`` as hex; its eth-tester provider re-raises with
    only their repr in the message, but py-evm's ``Revert(bytes)`` stays in ``__context__``.
    """
    pending: list[BaseException] = [exc]
    visited: set[int] = set()
    while pending:
        seen = pending.pop()
        if id(seen) in visited:
            continue
        visited.add(id(seen))
        data = getattr(seen, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        if seen.args and isinstance(seen.args[0], BaseException):
            pending.append(seen.args[0])
        if seen.__context__ is not None:
            pending.append(seen.__context__)
    return None


def _is_revert(exc: BaseException) -> bool:
    return isinstance(exc, ContractLogicError) or type(exc).__name__ == "TransactionFailed"


def decode_revert(abi: Sequence[Mapping[str, Any]], exc: BaseException) -> ContractReverted:
    """Turn a backend's revert exception into ``ContractReverted`` using the contract's ABI."""
    data = _revert_data(exc)
    if data is None or len(data) < 4:
        return ContractReverted("Reverted", (str(exc),))
    known = _error_table(abi).get(data[:4])
    if known is None:
        return ContractReverted("UnknownError", (data.hex(),))
    name, types = known
    return ContractReverted(name, tuple(decode(types, data[4:])))


# ---------------------------------------------------------------- chains


class Chain:
    """A web3 connection plus the few things every backend does the same way."""

    def __init__(self, w3: Web3, funded_keys: Sequence[bytes]) -> None:
        self.w3 = w3
        self.funded_keys = list(funded_keys)
        self.chain_id = w3.eth.chain_id

    @property
    def block_number(self) -> int:
        return self.w3.eth.block_number

    def mine(self, blocks: int = 1) -> None:
        raise NotImplementedError

    def advance_time(self, seconds: int) -> None:
        """Mine one block at least ``seconds`` after the latest (unbonding periods)."""
        raise NotImplementedError

    def view(self, address: str, data: bytes) -> bytes | None:
        """The return data of an ``eth_call`` of ``data`` on ``address`` at the latest block,
        sent raw; None where this backend has no raw path (callers then use web3)."""
        return None

    def deploy(self, key: PrivateKey, contract_name: str, *args: Any) -> Contract:
        artifact = load_artifact(contract_name)
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self._send(key, artifact["abi"], factory.constructor(*args).build_transaction)
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact["abi"])

    def transact(self, key: PrivateKey, function: ContractFunction) -> TxReceipt:
        """Sign and send ``function`` from ``key``; wait for and return the receipt."""
        return self._send(key, function.contract_abi, function.build_transaction)

    # -- transaction pieces, for callers that manage nonces and gas themselves (the poster)

    def pending_nonce(self, address: str) -> int:
        return self.w3.eth.get_transaction_count(_checksum(address), "pending")

    def estimate_gas(self, function: ContractFunction, sender: str) -> int:
        """Gas ``function`` would use from ``sender`` now; a revert raises ``ContractReverted``."""
        try:
            return int(function.estimate_gas({"from": _checksum(sender)}))
        except Exception as exc:
            if _is_revert(exc):
                raise decode_revert(function.contract_abi, exc) from exc
            raise

    def send_function(
        self, key: PrivateKey, function: ContractFunction, *, nonce: int, gas: int
    ) -> bytes:
        """Sign and send ``function`` with the given nonce and gas limit; returns the tx hash
        without waiting for it to be mined."""
        account: LocalAccount = Account.from_key(key)
        params: TxParams = {
            "from": account.address,
            "nonce": Nonce(nonce),
            "gas": gas,
            "chainId": self.chain_id,
        }
        transaction = function.build_transaction(params)
        signed = account.sign_transaction(cast(dict[str, Any], transaction))
        return bytes(self.w3.eth.send_raw_transaction(signed.raw_transaction))

    def receipt(self, tx_hash: bytes) -> TxReceipt | None:
        """The receipt of ``tx_hash``, or None while it is not mined (or unknown)."""
        try:
            return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    def is_pending(self, tx_hash: bytes) -> bool:
        """True when the node holds ``tx_hash`` unmined in its pool."""
        try:
            transaction = self.w3.eth.get_transaction(HexBytes(tx_hash))
        except TransactionNotFound:
            return False
        return transaction.get("blockNumber") is None

    def call(self, function: ContractFunction) -> Any:
        try:
            return function.call()
        except Exception as exc:
            if _is_revert(exc):
                raise decode_revert(function.contract_abi, exc) from exc
            raise

    def _send(
        self,
        key: PrivateKey,
        abi: Sequence[Mapping[str, Any]],
        build: Callable[[TxParams], TxParams],
    ) -> TxReceipt:
        account: LocalAccount = Account.from_key(key)
        params: TxParams = {
            "from": account.address,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": self.chain_id,
        }
        try:
            transaction = build(params)
        except Exception as exc:
            if _is_revert(exc):
                raise decode_revert(abi, exc) from exc
            raise
        signed = account.sign_transaction(cast(dict[str, Any], transaction))
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise ContractReverted("RevertedOnChain", (tx_hash.hex(),))
        return receipt


class EthTesterChain(Chain):
    """The in-process EVM (py-evm); every transaction is mined at once.

    ``fork`` picks the rules: "prague" (mainnet today, with the EIP-7623 calldata floor) or
    "cancun" (16 gas per non-zero calldata byte, no floor), for gas comparisons.
    """

    def __init__(self, fork: str = "prague") -> None:
        from eth.vm.forks import CancunVM, PragueVM  # heavy; only this backend needs py-evm
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        vms = {"prague": PragueVM, "cancun": CancunVM}
        if fork not in vms:
            raise ValueError(f"unsupported fork {fork!r}; choose one of {sorted(vms)}")
        backend = PyEVMBackend(vm_configuration=((0, vms[fork]),))
        self.tester = EthereumTester(backend)
        keys = [key.to_bytes() for key in backend.account_keys]
        super().__init__(Web3(EthereumTesterProvider(self.tester)), keys)

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)

    def advance_time(self, seconds: int) -> None:
        latest = self.w3.eth.get_block("latest")["timestamp"]
        self.tester.time_travel(int(latest) + seconds)


class RpcChain(Chain):
    """Any EVM JSON-RPC endpoint; ``funded_keys`` are keys holding gas money there.

    ``timeout_s`` bounds each request (web3's default otherwise). ``retry=False`` turns off
    web3's own retries of failed requests, for callers with their own backoff (the node's
    poster and watcher), so a call to a node that is down fails at once instead of after
    several hidden attempts.
    """

    def __init__(
        self,
        url: str,
        funded_keys: Sequence[bytes] = (),
        *,
        timeout_s: float | None = None,
        retry: bool = True,
    ) -> None:
        options: dict[str, Any] = {}
        if timeout_s is not None:
            options["request_kwargs"] = {"timeout": timeout_s}
        if not retry:
            options["exception_retry_configuration"] = None
        super().__init__(Web3(Web3.HTTPProvider(url, **options)), funded_keys)

    def _raw(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request past web3's middleware; an error answer raises (a revert as
        ``ContractLogicError`` with its data, so ``decode_revert`` reads it)."""
        response = self.w3.provider.make_request(cast(Any, method), params)
        error = response.get("error")
        if error is not None:
            data = error.get("data") if isinstance(error, dict) else None
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            if isinstance(data, str) and data.startswith("0x"):
                raise ContractLogicError(message, data=data)
            raise RuntimeError(f"{method}: {message}")
        return response["result"]

    @property
    def block_number(self) -> int:
        return int(self._raw("eth_blockNumber", []), 16)

    def view(self, address: str, data: bytes) -> bytes | None:
        result = self._raw("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])
        return bytes.fromhex(result[2:])

    def mine(self, blocks: int = 1) -> None:
        """anvil_mine when the node has it (one call for any count), else evm_mine per block."""
        response = self.w3.provider.make_request(cast(Any, "anvil_mine"), [hex(blocks)])
        if "error" not in response:
            return
        for _ in range(blocks):
            self.w3.provider.make_request(cast(Any, "evm_mine"), [])

    def advance_time(self, seconds: int) -> None:
        self._raw("evm_increaseTime", [seconds])
        self._raw("evm_mine", [])


# ---------------------------------------------------------------- the settlement contract


class SettlementClient:
    """The settlement contract and its collateral token on one chain."""

    ARTIFACT = "Settlement"  # the compiled contract whose ABI ``at`` binds

    def __init__(self, chain: Chain, settlement: Contract, token: Contract) -> None:
        self.chain = chain
        self.contract = settlement
        self.token = token

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        deployer_key: PrivateKey,
        sequencer: str,
        finality_blocks: int,
        forced_deadline_blocks: int,
        genesis_state_root: bytes,
        token_address: str | None = None,
    ) -> SettlementClient:
        """Deploy the contract (and an open-mint TestToken unless ``token_address`` is given)."""
        if token_address is None:
            token = chain.deploy(deployer_key, "TestToken", "Test USD Coin", "tUSDC", True)
        else:
            abi = load_artifact("TestToken")["abi"]
            token = chain.w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=abi)
        settlement = chain.deploy(
            deployer_key,
            "Settlement",
            token.address,
            Web3.to_checksum_address(sequencer),
            finality_blocks,
            forced_deadline_blocks,
            genesis_state_root,
        )
        return cls(chain, settlement, token)

    @classmethod
    def at(cls, chain: Chain, address: str) -> Self:
        """The settlement contract already deployed at ``address``, and its token."""
        settlement = chain.w3.eth.contract(
            address=_checksum(address), abi=load_artifact(cls.ARTIFACT)["abi"]
        )
        token_address = chain.call(settlement.functions.token())
        token = chain.w3.eth.contract(
            address=_checksum(token_address), abi=load_artifact("TestToken")["abi"]
        )
        return cls(chain, settlement, token)

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    # -- token

    def mint(self, key: PrivateKey, to: str, amount: int) -> TxReceipt:
        return self.chain.transact(key, self.token.functions.mint(_checksum(to), amount))

    def approve(self, key: PrivateKey, amount: int) -> TxReceipt:
        return self.chain.transact(key, self.token.functions.approve(self.address, amount))

    def token_balance(self, account: str) -> int:
        return int(self.chain.call(self.token.functions.balanceOf(_checksum(account))))

    # -- L1 messages

    def deposit(self, key: PrivateKey, amount: int, account: str | None = None) -> TxReceipt:
        """Deposit from ``key``'s tokens (approve first), credited to ``account`` or the sender."""
        if account is None:
            return self.chain.transact(key, self.contract.functions.deposit(amount))
        function = self.contract.functions.depositFor(_checksum(account), amount)
        return self.chain.transact(key, function)

    def force_request(self, key: PrivateKey, kind: MessageKind, amount: int = 0) -> int:
        """Post a forced request; returns its L1 message index."""
        receipt = self.chain.transact(key, self.contract.functions.forceRequest(kind, amount))
        (event,) = self.contract.events.L1Message().process_receipt(receipt)
        return int(event["args"]["index"])

    def l1_messages(
        self, from_block: int = 0, to_block: int | None = None
    ) -> list[L1MessageRecord]:
        logs = self.contract.events.L1Message().get_logs(
            from_block=from_block, to_block="latest" if to_block is None else to_block
        )
        return [
            L1MessageRecord(
                index=log["args"]["index"],
                kind=MessageKind(log["args"]["kind"]),
                account=log["args"]["account"],
                amount=log["args"]["amount"],
                block_number=log["args"]["blockNumber"],
                deadline=log["args"]["deadline"],
            )
            for log in logs
        ]

    # -- batches

    def batch_digest(
        self,
        batch_number: int,
        prev_state_root: bytes,
        new_state_root: bytes,
        withdrawals_root: bytes,
        l1_messages_consumed: int,
        batch_data_hash: bytes,
    ) -> bytes:
        return batch_digest(
            self.chain.chain_id,
            self.address,
            batch_number,
            prev_state_root,
            new_state_root,
            withdrawals_root,
            l1_messages_consumed,
            batch_data_hash,
        )

    def commit_batch(
        self,
        sender_key: PrivateKey,
        sequencer_key: PrivateKey,
        batch_number: int,
        prev_state_root: bytes,
        new_state_root: bytes,
        withdrawals_root: bytes,
        l1_messages_consumed: int,
        batch_data: bytes,
        *,
        batch_data_hash: bytes | None = None,
        signature: bytes | None = None,
    ) -> TxReceipt:
        """Sign the batch with ``sequencer_key`` and post it from ``sender_key``.

        ``batch_data_hash`` and ``signature`` default to the honest values; tests override them.
        """
        data_hash = keccak256(batch_data) if batch_data_hash is None else batch_data_hash
        if signature is None:
            digest = self.batch_digest(
                batch_number,
                prev_state_root,
                new_state_root,
                withdrawals_root,
                l1_messages_consumed,
                data_hash,
            )
            signature = sign_digest(sequencer_key, digest)
        function = self.contract.functions.commitBatch(
            batch_number,
            prev_state_root,
            new_state_root,
            withdrawals_root,
            l1_messages_consumed,
            batch_data,
            data_hash,
            signature,
        )
        return self.chain.transact(sender_key, function)

    def _view_uint(self, signature: bytes, function: ContractFunction, *args: int) -> int:
        """A view returning one uint256 (or bool): raw where the chain has a raw path."""
        data = keccak256(signature)[:4] + encode(["uint256"] * len(args), list(args))
        try:
            result = self.chain.view(self.address, data)
        except Exception as exc:
            if _is_revert(exc):
                raise decode_revert(self.contract.abi, exc) from exc
            raise
        if result is None:
            return int(self.chain.call(function))
        (value,) = decode(["uint256"], result)
        return int(value)

    def last_batch_number(self) -> int:
        function = self.contract.functions.lastBatchNumber()
        return self._view_uint(b"lastBatchNumber()", function)

    def is_final(self, batch_number: int) -> bool:
        function = self.contract.functions.isFinal(batch_number)
        return bool(self._view_uint(b"isFinal(uint256)", function, batch_number))

    def last_final_batch(self) -> int:
        function = self.contract.functions.lastFinalBatch()
        return self._view_uint(b"lastFinalBatch()", function)

    def finality_blocks(self) -> int:
        function = self.contract.functions.finalityBlocks()
        return self._view_uint(b"finalityBlocks()", function)

    def forced_deadline_blocks(self) -> int:
        return int(self.chain.call(self.contract.functions.forcedDeadlineBlocks()))

    def sequencer_address(self) -> ChecksumAddress:
        return _checksum(self.chain.call(self.contract.functions.sequencer()))

    def available_funds(self) -> int:
        return int(self.chain.call(self.contract.functions.availableFunds()))

    def batch_state_root(self, batch_number: int) -> bytes:
        record = self.chain.call(self.contract.functions.batches(batch_number))
        return bytes(record[0])

    def is_frozen(self) -> bool:
        return bool(self.chain.call(self.contract.functions.frozen()))

    def exit_batch_number(self) -> int:
        return int(self.chain.call(self.contract.functions.exitBatchNumber()))

    def has_exited(self, account: str) -> bool:
        return bool(self.chain.call(self.contract.functions.exited(_checksum(account))))

    def batch_commits(self, from_block: int = 0, to_block: int | None = None) -> list[BatchCommit]:
        """``BatchCommitted`` events in the block range, in chain order."""
        logs = self.contract.events.BatchCommitted().get_logs(
            from_block=from_block, to_block="latest" if to_block is None else to_block
        )
        return [
            BatchCommit(
                batch_number=log["args"]["batchNumber"],
                state_root=bytes(log["args"]["stateRoot"]),
                withdrawals_root=bytes(log["args"]["withdrawalsRoot"]),
                l1_messages_consumed=log["args"]["l1MessagesConsumed"],
                batch_data_hash=bytes(log["args"]["batchDataHash"]),
                tx_hash=bytes(log["transactionHash"]),
                block_number=log["blockNumber"],
            )
            for log in logs
        ]

    def commit_batch_call(self, tx_hash: bytes) -> CommitBatchCall:
        """The ``commitBatch`` arguments of transaction ``tx_hash``.

        Only a direct call to this contract carries them in its input; a batch committed
        through another contract raises ``ValueError`` (its data is only in a call trace).
        """
        transaction = self.chain.w3.eth.get_transaction(HexBytes(tx_hash))
        target = transaction.get("to")
        if target is None or _checksum(target) != self.address:
            raise ValueError(f"transaction 0x{tx_hash.hex()} is not a call to the contract")
        try:
            function, arguments = self.contract.decode_function_input(transaction["input"])
        except ValueError as exc:
            raise ValueError(f"transaction 0x{tx_hash.hex()} is not commitBatch: {exc}") from exc
        if function.fn_name != "commitBatch":
            raise ValueError(f"transaction 0x{tx_hash.hex()} calls {function.fn_name}")
        return CommitBatchCall(
            batch_number=arguments["batchNumber"],
            prev_state_root=bytes(arguments["prevStateRoot"]),
            new_state_root=bytes(arguments["newStateRoot"]),
            withdrawals_root=bytes(arguments["withdrawalsRoot"]),
            l1_messages_consumed=arguments["l1MessagesConsumed"],
            batch_data=bytes(arguments["batchData"]),
            batch_data_hash=bytes(arguments["batchDataHash"]),
            signature=bytes(arguments["signature"]),
        )

    # -- payouts

    def claim_withdrawal(
        self,
        key: PrivateKey,
        batch_number: int,
        withdrawal_id: int,
        account: str,
        amount: int,
        proof: Sequence[bytes],
        index: int,
    ) -> TxReceipt:
        function = self.contract.functions.claimWithdrawal(
            batch_number, withdrawal_id, _checksum(account), amount, list(proof), index
        )
        return self.chain.transact(key, function)

    def freeze(self, key: PrivateKey, forced_message_index: int) -> TxReceipt:
        return self.chain.transact(key, self.contract.functions.freeze(forced_message_index))

    def exit(
        self,
        key: PrivateKey,
        account: str,
        exit_value: int,
        account_state_hash: bytes,
        proof: Sequence[bytes],
        index: int,
    ) -> TxReceipt:
        function = self.contract.functions.exit(
            _checksum(account), exit_value, account_state_hash, list(proof), index
        )
        return self.chain.transact(key, function)

    def reclaim_deposit(self, key: PrivateKey, message: L1MessageRecord) -> TxReceipt:
        function = self.contract.functions.reclaimDeposit(
            message.index, message.account, message.amount, message.block_number
        )
        return self.chain.transact(key, function)


class CommitteeStatus(IntEnum):
    """``CommitteeSettlement.Status`` of a bond."""

    NONE = 0
    BONDED = 1
    ACTIVE = 2
    UNBONDING = 3
    SLASHED = 4


@dataclass(frozen=True, slots=True)
class Stake:
    """A member's bond as the contract holds it."""

    bond: int
    unbonding_ends: int
    status: CommitteeStatus


class CommitteeSettlementClient(SettlementClient):
    """The committee-mode contract: quorum-certified batches, bonds, epochs and slashing.

    Certificates and evidence come from ``asyncdex.settlement.certificate``; this class only
    sends them. ``commit_batch`` of the base class also works here with ``signature`` set to a
    certificate (the ABI is the same), which is how the node's poster can post either mode.
    """

    ARTIFACT = "CommitteeSettlement"

    @classmethod
    def deploy_committee(
        cls,
        chain: Chain,
        deployer_key: PrivateKey,
        members: Sequence[str | bytes],
        finality_blocks: int,
        forced_deadline_blocks: int,
        genesis_state_root: bytes,
        *,
        min_bond: int,
        unbonding_period_s: int,
        reporter_share_bps: int,
        insurance_account: str,
        consensus_domain: bytes,
        token_address: str | None = None,
    ) -> CommitteeSettlementClient:
        """Deploy the committee contract for genesis ``members`` (index order); each member
        must then ``bond`` at least ``min_bond`` before the first batch."""
        if token_address is None:
            token = chain.deploy(deployer_key, "TestToken", "Test USD Coin", "tUSDC", True)
        else:
            abi = load_artifact("TestToken")["abi"]
            token = chain.w3.eth.contract(address=_checksum(token_address), abi=abi)
        settlement = chain.deploy(
            deployer_key,
            "CommitteeSettlement",
            token.address,
            finality_blocks,
            forced_deadline_blocks,
            genesis_state_root,
            [_address(member) for member in members],
            min_bond,
            unbonding_period_s,
            reporter_share_bps,
            _checksum(insurance_account),
            consensus_domain,
        )
        return cls(chain, settlement, token)

    # -- views

    def members(self) -> list[bytes]:
        return [bytes.fromhex(a[2:]) for a in self.chain.call(self.contract.functions.members())]

    def quorum(self) -> int:
        return int(self.chain.call(self.contract.functions.quorum()))

    def epoch(self) -> int:
        return int(self.chain.call(self.contract.functions.epoch()))

    def stake(self, member: str | bytes) -> Stake:
        bond, ends, status = self.chain.call(self.contract.functions.stakes(_address(member)))
        return Stake(int(bond), int(ends), CommitteeStatus(status))

    def consensus_domain(self) -> bytes:
        return bytes(self.chain.call(self.contract.functions.consensusDomain()))

    # -- batches

    def commit_certified(
        self,
        sender_key: PrivateKey,
        batch_number: int,
        prev_state_root: bytes,
        new_state_root: bytes,
        withdrawals_root: bytes,
        l1_messages_consumed: int,
        batch_data: bytes,
        certificate: bytes,
        *,
        batch_data_hash: bytes | None = None,
    ) -> TxReceipt:
        """Post a batch with its quorum certificate; anyone may send it."""
        data_hash = keccak256(batch_data) if batch_data_hash is None else batch_data_hash
        function = self.contract.functions.commitBatch(
            batch_number,
            prev_state_root,
            new_state_root,
            withdrawals_root,
            l1_messages_consumed,
            batch_data,
            data_hash,
            certificate,
        )
        return self.chain.transact(sender_key, function)

    # -- stake and epochs

    def bond(self, key: PrivateKey, amount: int) -> TxReceipt:
        """Add ``amount`` to the sender's bond (approve the contract first)."""
        return self.chain.transact(key, self.contract.functions.bond(amount))

    def change_epoch(
        self,
        sender_key: PrivateKey,
        new_epoch: int,
        members: Sequence[str | bytes],
        certificate: bytes,
    ) -> TxReceipt:
        function = self.contract.functions.changeEpoch(
            new_epoch, [_address(member) for member in members], certificate
        )
        return self.chain.transact(sender_key, function)

    def unbond(self, key: PrivateKey) -> TxReceipt:
        return self.chain.transact(key, self.contract.functions.unbond())

    def withdraw_bond(self, key: PrivateKey) -> TxReceipt:
        return self.chain.transact(key, self.contract.functions.withdrawBond())

    # -- slashing (evidence from asyncdex.settlement.certificate)

    def slash_batch_equivocation(self, reporter_key: PrivateKey, evidence: Any) -> TxReceipt:
        """Submit a ``BatchEquivocation``; the reporter's share goes to ``reporter_key``."""
        function = self.contract.functions.slashBatchEquivocation(
            _address(evidence.member),
            evidence.header_a.as_tuple(),
            evidence.signature_a,
            evidence.header_b.as_tuple(),
            evidence.signature_b,
        )
        return self.chain.transact(reporter_key, function)

    def slash_vote_equivocation(self, reporter_key: PrivateKey, evidence: Any) -> TxReceipt:
        """Submit a ``VoteEquivocation``; the reporter's share goes to ``reporter_key``."""
        return self._slash_view_equivocation("slashVoteEquivocation", reporter_key, evidence)

    def slash_proposal_equivocation(self, reporter_key: PrivateKey, evidence: Any) -> TxReceipt:
        """Submit a ``ProposalEquivocation`` (an equivocating leader)."""
        return self._slash_view_equivocation("slashProposalEquivocation", reporter_key, evidence)

    def _slash_view_equivocation(
        self, name: str, reporter_key: PrivateKey, evidence: Any
    ) -> TxReceipt:
        """Votes and proposals are both two signed block hashes for one view."""
        function = getattr(self.contract.functions, name)(
            _address(evidence.member),
            evidence.view,
            evidence.block_hash_a,
            evidence.signature_a,
            evidence.block_hash_b,
            evidence.signature_b,
        )
        return self.chain.transact(reporter_key, function)


def _address(address: str | bytes) -> ChecksumAddress:
    """A checksum address from its text or its 20 bytes."""
    if isinstance(address, bytes):
        return Web3.to_checksum_address("0x" + address.hex())
    return Web3.to_checksum_address(address)


def _checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)
