"""``asyncdex committee``: a local sequencer committee, one ``asyncdex node`` process per member.

Invariants:
- Each member has its own data directory ``DATA/member-I`` holding its member key (created
  once, mode 0600, reused on every later start), its node config (the venue config given, with
  the ``[committee]`` table appended) and its journal, snapshots and consensus store. Started
  again on the same ``DATA``, the committee resumes where it stopped.
- Members are separate processes talking over loopback: the native API of member I is on
  ``--port + I`` and its consensus port on ``--consensus-port + I``.
- ``CommitteeProcesses`` is what the demo, the benchmarks and the tests use to start, kill
  and restart members; the command itself starts them all, prints one JSON line per member
  and stops them on SIGINT/SIGTERM.
- With ``--settle``, the committee settles on a development chain of its own: the embedded
  chain (py-evm in a process, kept in ``DATA/chain``) with a ``CommitteeSettlement`` contract
  deployed once for the members (recorded in ``DATA/deployment.json``), every member bonded.
  Members then use the chain's funded development keys as member keys: never for real stake.
- With sealing (``--sealing-epoch-ms``, on by default), the members' sealing key comes from
  one run of the DKG on this machine (``asyncdex.fairness.dkg.run_local_dkg``, threshold
  f + 1) at the first start: each member's ``sealing.json`` (mode 0600) holds the committee
  key and its share, and its config a ``[committee.sealing]`` table. Like the member keys,
  they are kept for later starts. A local committee's one process knew every share: fine
  for a demo, never for real use (docs/fairness.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from eth_account import Account

from asyncdex.cli.committee_config import load_committee
from asyncdex.cli.node_cmd import load_config
from asyncdex.consensus.crypto import Secp256k1Signer
from asyncdex.engine.build import ENGINE_KINDS
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine
from asyncdex.fairness.dkg import run_local_dkg
from asyncdex.fairness.keyfile import sealing_key_document
from asyncdex.gateway.node import JOURNAL_SUBDIR
from asyncdex.sequencer.journal import FileJournal
from asyncdex.settlement.chain import CommitteeSettlementClient, RpcChain
from asyncdex.settlement.devchain import DEV_KEYS, DevChainProcess

DEFAULT_PORT = 8100
DEFAULT_CONSENSUS_PORT = 9100
READY_TIMEOUT_S = 60.0
# the development chain of ``--settle``
FIRST_MEMBER_KEY = 2  # dev key 0 deploys, dev key 1 is the insurance account
DEV_BLOCK_TIME_MS = 1_000
DEV_FINALITY_BLOCKS = 5
DEV_FORCED_DEADLINE_BLOCKS = 100
DEV_MIN_BOND = 1_000 * 10**6  # 1,000 test USDC
DEV_UNBONDING_S = 3_600
DEV_REPORTER_SHARE_BPS = 1_000  # 10% of a slashed bond to whoever proved the misbehaviour


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; IANA's elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49_152, 65_535


def free_port_range(span: int) -> int:
    """A base port with ``span`` consecutive free loopback ports above it (each bound once to
    check), for a local committee: member I's API on base + I, its consensus port above."""
    rng = random.Random()
    # below the kernel's ephemeral range: a port the kernel may hand to any outgoing
    # connection between this check and the member's bind would make the member's start fail
    low, _ = _ephemeral_ports()
    for _ in range(200):
        base = rng.randrange(10_000, max(low, 10_000 + 2 * span) - span)
        sockets = []
        try:
            for port in range(base, base + span):
                probe = socket.socket()
                sockets.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise RuntimeError("no free port range")


def member_dir(data: Path, index: int) -> Path:
    return data / f"member-{index}"


def _member_key(directory: Path, given: bytes | None = None) -> bytes:
    path = directory / "member.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip().removeprefix("0x"))
    directory.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32) if given is None else given
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret.hex() + "\n")
        file.flush()
        os.fsync(file.fileno())
    return secret


def _sealing_keys(data: Path, nodes: int) -> None:
    """Each member's ``sealing.json`` from one local DKG run, unless all are there already."""
    paths = [member_dir(data, index) / "sealing.json" for index in range(nodes)]
    present = [path.exists() for path in paths]
    if all(present):
        return
    if any(present):
        raise ValueError(f"{data}: some members have a sealing.json and some do not")
    key, shares = run_local_dkg(nodes, (nodes - 1) // 3 + 1, secrets.token_bytes(32))
    for path, share in zip(paths, shares, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(sealing_key_document(key, share), file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())


def write_member_configs(
    data: Path,
    base_config: Path,
    nodes: int,
    consensus_port: int,
    extra: str = "",
    keys: Sequence[bytes] | None = None,
    sealing_epoch_ms: int | None = None,
) -> list[Path]:
    """Keys (kept if present; ``keys`` if given, else fresh) and one node config per member;
    returns the config paths. With ``sealing_epoch_ms``, sealing keys too (see above)."""
    base = base_config.read_text()
    if any(line.strip().startswith("[committee]") for line in base.splitlines()):
        raise ValueError(f"{base_config} already has a [committee] table")
    addresses = []
    for index in range(nodes):
        secret = _member_key(member_dir(data, index), None if keys is None else keys[index])
        addresses.append(Secp256k1Signer(secret).address)
    members = ",\n".join(
        f'    {{ address = "0x{address.hex()}", consensus = "127.0.0.1:{consensus_port + index}" }}'
        for index, address in enumerate(addresses)
    )
    sealing = ""
    if sealing_epoch_ms is not None:
        _sealing_keys(data, nodes)
        sealing = (
            f'\n[committee.sealing]\nkey_file = "sealing.json"\nepoch_ms = {sealing_epoch_ms}\n'
        )
    paths = []
    for index in range(nodes):
        path = member_dir(data, index) / "node.toml"
        table = (
            f'\n\n[committee]\nindex = {index}\nkey_file = "member.key"\n{extra}'
            f"members = [\n{members},\n]\n{sealing}"
        )
        path.write_text(base.rstrip() + table)
        paths.append(path)
    return paths


class CommitteeProcesses:
    """Start, kill and restart the member processes of a local committee."""

    def __init__(
        self,
        data: Path,
        base_config: Path,
        nodes: int,
        *,
        port: int = DEFAULT_PORT,
        consensus_port: int = DEFAULT_CONSENSUS_PORT,
        node_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        log: TextIO | None = None,
        extra_committee: str = "",
        settle: bool = False,
        sealing_epoch_ms: int | None = None,
    ) -> None:
        self.data = data
        self.nodes = nodes
        self.port = port
        self.node_args = node_args
        self.env = env
        self.log = log
        self.chain: DevChainProcess | None = None
        self.deployment: dict[str, Any] | None = None
        keys = None
        if settle:
            if nodes > len(DEV_KEYS) - FIRST_MEMBER_KEY:
                raise ValueError(
                    f"--settle runs at most {len(DEV_KEYS) - FIRST_MEMBER_KEY} members"
                )
            keys = DEV_KEYS[FIRST_MEMBER_KEY : FIRST_MEMBER_KEY + nodes]
        self.configs = write_member_configs(
            data, base_config, nodes, consensus_port, extra_committee, keys, sealing_epoch_ms
        )
        if settle:
            self.chain, self.deployment = start_dev_chain(data, base_config, self.configs[0])
            self.node_args = (*node_args, *self.settlement_args())
        self.processes: list[subprocess.Popen[str] | None] = [None] * nodes
        self.ready: list[dict[str, Any] | None] = [None] * nodes

    def settlement_args(self) -> tuple[str, ...]:
        assert self.chain is not None and self.deployment is not None
        return (
            "--chain-rpc", self.chain.url,
            "--chain-id", str(self.deployment["chainId"]),
            "--contract", self.deployment["settlement"],
            "--from-block", str(self.deployment["deployBlock"]),
        )  # fmt: skip

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port + index}"

    def start(self, index: int) -> None:
        """Start member ``index`` (without waiting for it: see ``wait_ready``)."""
        directory = member_dir(self.data, index)
        command = [
            sys.executable, "-m", "asyncdex.cli.main", "node",
            "--data", str(directory),
            "--config", str(self.configs[index]),
            "--port", str(self.port + index),
            *self.node_args,
        ]  # fmt: skip
        if self.chain is not None:
            command += ["--sequencer-key-file", str(directory / "member.key")]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self.log if self.log is not None else subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        self.processes[index] = process
        self.ready[index] = None

    def wait_ready(self, index: int, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """The member's ``listening`` line (its node prints it once it serves)."""
        process = self.processes[index]
        assert process is not None and process.stdout is not None
        result: list[dict[str, Any]] = []
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                try:
                    document = json.loads(line)
                except ValueError:
                    continue
                if isinstance(document, dict) and document.get("event") == "listening":
                    result.append(document)
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        if not result:
            code = process.poll()
            raise RuntimeError(
                f"member {index} did not start within {timeout:.0f} s"
                + (f" (exit code {code})" if code is not None else "")
            )
        # keep draining its stdout so the member never blocks on a full pipe
        threading.Thread(target=lambda: stdout.read(), daemon=True).start()
        self.ready[index] = result[0]
        return result[0]

    def start_all(self) -> list[dict[str, Any]]:
        for index in range(self.nodes):
            self.start(index)
        return [self.wait_ready(index) for index in range(self.nodes)]

    def kill(self, index: int) -> None:
        """SIGKILL: the member dies at whatever point it is, as in a crash."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, index: int) -> dict[str, Any]:
        self.kill(index)
        self.start(index)
        return self.wait_ready(index)

    def stop_all(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every live member and wait; returns the exit codes."""
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: list[int | None] = []
        for process in self.processes:
            if process is None:
                codes.append(None)
                continue
            try:
                codes.append(process.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        if self.chain is not None:
            self.chain.close()
        return codes


class DivergedHistory(AssertionError):
    """Two members journaled different records at one seq: they executed different blocks."""


def common_history(data: Path, nodes: int) -> int:
    """The members' journals (read once they stopped) hold the same records up to the
    shortest: every member executed the same blocks, so it reached the same state at every
    seq. Returns that common length; raises ``DivergedHistory`` naming a member that differs.

    (Live state roots cannot show this: an idle committee still commits a block every fraction
    of a second, so the members' applied seqs rarely agree at one instant.)"""
    histories = []
    for index in range(nodes):
        journal, _ = FileJournal.open(member_dir(data, index) / JOURNAL_SUBDIR)
        try:
            histories.append([payload for _, payload in journal.read(1)])
        finally:
            journal.close()
    common = min(len(history) for history in histories)
    for index, history in enumerate(histories[1:], start=1):
        if history[:common] != histories[0][:common]:
            raise DivergedHistory(f"member {index}'s journal differs from member 0's")
    return common


def start_dev_chain(
    data: Path, base_config: Path, member_config: Path
) -> tuple[DevChainProcess, dict[str, Any]]:
    """The committee's development chain, with its contract deployed and every member bonded
    on the first start (recorded in ``DATA/deployment.json``; later starts reuse it)."""
    chain_process = DevChainProcess.start(data / "chain", block_time_ms=DEV_BLOCK_TIME_MS)
    record_path = data / "deployment.json"
    try:
        if record_path.exists():
            return chain_process, json.loads(record_path.read_text())
        engine_config, _ = load_config(base_config)
        seat = load_committee(member_config)
        assert seat is not None
        chain = RpcChain(chain_process.url, DEV_KEYS)
        deployer, insurance = DEV_KEYS[0], Account.from_key(DEV_KEYS[1]).address
        deploy_block = chain.block_number
        client = CommitteeSettlementClient.deploy_committee(
            chain,
            deployer,
            seat.members,
            DEV_FINALITY_BLOCKS,
            DEV_FORCED_DEADLINE_BLOCKS,
            state_root(Engine(engine_config).state),
            min_bond=DEV_MIN_BOND,
            unbonding_period_s=DEV_UNBONDING_S,
            reporter_share_bps=DEV_REPORTER_SHARE_BPS,
            insurance_account=insurance,
            consensus_domain=seat.domain,
        )
        for key in DEV_KEYS[FIRST_MEMBER_KEY : FIRST_MEMBER_KEY + len(seat.members)]:
            client.mint(key, Account.from_key(key).address, DEV_MIN_BOND)
            client.approve(key, DEV_MIN_BOND)
            client.bond(key, DEV_MIN_BOND)
        record = {
            "settlement": client.address,
            "token": client.token.address,
            "deployBlock": deploy_block,
            "chainId": chain_process.chain_id,
            "members": ["0x" + member.hex() for member in seat.members],
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        return chain_process, record
    except BaseException:
        chain_process.close()
        raise


def cmd_committee(args: argparse.Namespace) -> int:
    if args.nodes < 1:
        print("asyncdex committee: --nodes must be at least 1", file=sys.stderr)
        return 2
    node_args: tuple[str, ...] = ()
    if args.operator_token:
        node_args = ("--operator-token", args.operator_token)
    if args.engine is not None:
        node_args = (*node_args, "--engine", args.engine)
    committee = CommitteeProcesses(
        Path(args.data),
        Path(args.config),
        args.nodes,
        port=args.port,
        consensus_port=args.consensus_port,
        node_args=node_args,
        log=sys.stderr,
        settle=args.settle,
        sealing_epoch_ms=args.sealing_epoch_ms or None,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        for index, ready in enumerate(committee.start_all()):
            line = {"event": "member", "index": index, "url": committee.url(index)}
            line["stateRoot"] = ready.get("stateRoot")
            sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            for index, process in enumerate(committee.processes):
                if process is not None and process.poll() is not None:
                    print(
                        f"asyncdex committee: member {index} exited ({process.returncode})",
                        file=sys.stderr,
                    )
                    committee.processes[index] = None
    finally:
        codes = committee.stop_all()
    return 0 if all(code in (0, None) for code in codes) else 1


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "committee",
        help="run a local sequencer committee: one node process per member, on loopback",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nodes", type=int, default=4, help="members (default 4: f = 1)")
    parser.add_argument("--data", required=True, help="directory of the members' data")
    parser.add_argument(
        "--config",
        default="examples/committee.toml",
        help="the venue config every member runs (no [settlement], no [committee])",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="member 0's API port")
    parser.add_argument(
        "--consensus-port",
        type=int,
        default=DEFAULT_CONSENSUS_PORT,
        help="member 0's consensus port (member I listens on this + I)",
    )
    parser.add_argument(
        "--operator-token",
        default=os.environ.get("ASYNCDEX_OPERATOR_TOKEN"),
        help="enables POST /v1/system on every member (oracle prices, deposits)",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="settle on a development chain of the committee's own (CommitteeSettlement, "
        "members bonded; members use the chain's funded development keys)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_KINDS,
        default=None,
        help="every member's engine: native (the default when it is built) or reference",
    )
    parser.add_argument(
        "--sealing-epoch-ms",
        type=int,
        default=100,
        help="sealed intents' epoch length in ms (default 100; 0: no sealing key)",
    )
    parser.set_defaults(func=cmd_committee)
    return parser
