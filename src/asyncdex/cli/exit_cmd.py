"""``asyncdex exit``: leave the venue through the settlement contract, from chain data only.

Invariants: the command reads nothing but the JSON-RPC endpoint it is given (see
``asyncdex.settlement.exit_tool``); ``--dry-run`` sends no transaction; the private key is
read from a file (never from the command line, where other users and shell history see it)
and never printed. Exit code 0 on success, 1 when the chain data refuses an exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from eth_account import Account
from web3 import Web3

from asyncdex.settlement.chain import RpcChain, SettlementClient
from asyncdex.settlement.exit_tool import ExitError, plan_exit, submit_exit
from asyncdex.types.numeric import format_usdc


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "exit",
        help="exit an account after a freeze, proving its balance from chain data only",
    )
    parser.add_argument("--rpc", required=True, help="JSON-RPC URL of the base chain")
    parser.add_argument("--contract", required=True, help="settlement contract address")
    parser.add_argument("--account", required=True, help="the account to exit (funds go here)")
    parser.add_argument(
        "--key-file", help="file holding the hex private key that pays the gas (any funded key)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print value and proof, send nothing"
    )
    parser.add_argument("--from-block", type=int, default=0, help="the contract's deploy block")
    parser.add_argument("--max-block-range", type=int, default=10_000, help="eth_getLogs span")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.set_defaults(func=cmd_exit)
    return parser


def read_key(path: str) -> bytes:
    text = Path(path).read_text().strip().removeprefix("0x")
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise SystemExit(f"{path}: not a hex private key") from exc
    if len(key) != 32:
        raise SystemExit(f"{path}: a private key is 32 bytes")
    return key


def cmd_exit(args: argparse.Namespace) -> int:
    if not args.dry_run and not args.key_file:
        raise SystemExit("--key-file is required unless --dry-run")
    key = read_key(args.key_file) if args.key_file else None
    client = SettlementClient.at(RpcChain(args.rpc), args.contract)
    return run_exit(client, args, key, sys.stdout)


def run_exit(
    client: SettlementClient, args: argparse.Namespace, key: bytes | None, out: TextIO
) -> int:
    """The command's body over any chain client (the tests pass the in-process EVM)."""
    if not Web3.is_address(args.account):
        raise SystemExit(f"{args.account}: not an address")
    account = bytes.fromhex(Web3.to_checksum_address(args.account)[2:])
    try:
        plan = plan_exit(
            client, account, from_block=args.from_block, max_block_range=args.max_block_range
        )
    except ExitError as exc:
        print(f"exit refused: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "account": Web3.to_checksum_address(account),
        "batch": plan.batch_number,
        "frozen": plan.frozen,
        "state_root": "0x" + plan.state_root.hex(),
        "exit_value": plan.exit_value,
        "account_hash": "0x" + plan.account_hash.hex(),
        "index": plan.index,
        "proof": ["0x" + node.hex() for node in plan.proof],
    }
    kind = "exit batch" if plan.frozen else "last final batch (not frozen)"
    print(f"{kind} {plan.batch_number}, state root 0x{plan.state_root.hex()}", file=out)
    print(
        f"exit value {format_usdc(plan.exit_value)} USDC ({plan.exit_value} base units)", file=out
    )
    if args.dry_run:
        print(f"leaf index {plan.index}, account hash 0x{plan.account_hash.hex()}", file=out)
        for level, node in enumerate(plan.proof):
            print(f"  proof[{level}] 0x{node.hex()}", file=out)
    else:
        assert key is not None
        try:
            receipt = submit_exit(client, key, plan)
        except ExitError as exc:
            print(f"exit refused: {exc}", file=sys.stderr)
            return 1
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        payer = Account.from_key(key).address
        print(f"exit sent by {payer}: tx {tx_hash}, block {receipt['blockNumber']}", file=out)
        report["tx_hash"] = tx_hash
    if args.json:
        print(json.dumps(report), file=out)
    return 0
