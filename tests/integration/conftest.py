"""Fixtures for integration tests that run a real node process on loopback.

- ``node_launcher(data_dir, config_path, extra_args=..., operator_token=...)`` returns a
  :class:`NodeLauncher`: ``start()`` runs ``python -m asyncdex.cli.node_cmd`` on a free port
  (``--port 0``; the node reports the port it bound on its first stdout line) and waits
  until it listens; ``kill()`` sends SIGKILL, ``terminate()`` SIGTERM and returns the exit
  code. Every process a test starts is killed at teardown. Each node's stderr is appended
  to ``node-stderr.log`` beside the data directory and shown when a start fails.
- ``venue_config(path, domain, markets, oracle_publishers)`` writes a venue TOML file
  (engine config plus ``[venue]``); markets are ``(symbol, sz_decimals, tick, lot)``.
- :meth:`RunningNode.request` is a small blocking HTTP client (any status is returned);
  :meth:`RunningNode.system` sequences operator commands and insists on their receipts.
- ``anvil_launcher(workdir, block_time=..., state=...)`` returns an :class:`Anvil`: the pinned
  ``node_modules/.bin/anvil`` on a free loopback port, with its dev keys parsed from its
  banner. ``stop()`` (SIGTERM: with ``state`` it dumps the chain there) and ``start()`` again
  bring the same chain back on the same port. Every anvil is killed at teardown. Without
  the binary the tests skip, except under ``CI``, where they fail.

Tests use these through fixtures rather than ``import conftest``: another test folder's
conftest may claim that module name.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asyncdex.cli.committee_cmd import free_port_range
from asyncdex.signing.eip712 import Domain

# Every test drives its node from loopback, some with thousands of requests: budgets far
# above Hyperliquid's defaults, so the limiter runs but never refuses (a test of the limits
# passes its own flags in ``extra_args``, which come later and win).
LOOPBACK_BUDGETS = (
    "--ip-weight-per-minute", "1000000000",
    "--address-initial-requests", "1000000000",
    "--max-sockets-per-address", "1000",
)  # fmt: skip
START_TIMEOUT = 60.0  # seconds; a start replays the journal tail, on a loaded CI machine
STOP_TIMEOUT = 60.0


def write_venue_config(
    path: Path,
    domain: Domain,
    markets: Sequence[tuple[str, int, int, int]],
    oracle_publishers: Sequence[bytes],
) -> Path:
    lines = [
        "oracle_publishers = [" + ", ".join(f'"0x{p.hex()}"' for p in oracle_publishers) + "]",
        "",
        "[venue]",
        f"chain_id = {domain.chain_id}",
        f'settlement_contract = "0x{domain.verifying_contract.hex()}"',
    ]
    for symbol, sz_decimals, tick, lot in markets:
        lines += [
            "",
            "[[markets]]",
            f'symbol = "{symbol}"',
            f"sz_decimals = {sz_decimals}",
            f"tick = {tick}",
            f"lot = {lot}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class HttpResult:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    timeout: float = 30.0,
) -> HttpResult:
    """One request on a fresh connection; any status is returned, not raised."""
    scheme, _, rest = url.partition("://")
    assert scheme == "http"
    host_port, _, path = rest.partition("/")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        if chunked:
            assert body is not None
            # No Content-Length: the server has to bound what it reads by itself.
            connection.request(
                method, "/" + path, body=iter([body]), headers=headers or {}, encode_chunked=True
            )
        else:
            connection.request(method, "/" + path, body=body, headers=headers or {})
        response = connection.getresponse()
        return HttpResult(response.status, response.read())
    finally:
        connection.close()


@dataclass
class RunningNode:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    ready: dict[str, Any]  # the node's "listening" line
    stdout_lines: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> HttpResult:
        return http_request(self.url + path, method, body, headers, chunked=chunked)

    def get(self, path: str) -> HttpResult:
        return http_request(self.url + path)

    def post_json(self, path: str, document: Any, token: str | None = None) -> HttpResult:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return http_request(self.url + path, "POST", json.dumps(document).encode(), headers)

    def system(self, token: str, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Sequence operator commands (``POST /v1/system``); they must be acknowledged."""
        result = self.post_json("/v1/system", {"commands": list(commands)}, token)
        assert result.status == 200, result.body
        receipts: list[dict[str, Any]] = result.json()["receipts"]
        return receipts

    def status(self) -> dict[str, Any]:
        result = self.get("/v1/status")
        assert result.status == 200, result.body
        status: dict[str, Any] = result.json()
        return status


class NodeStartError(RuntimeError):
    pass


class NodeLauncher:
    """Starts and stops one node (at a time) over one data directory."""

    def __init__(
        self,
        data_dir: Path,
        config_path: Path,
        *,
        extra_args: Sequence[str] = (),
        operator_token: str | None = None,  # None: POST /v1/system refused
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.config_path = config_path
        self.extra_args = list(extra_args)
        self.operator_token = operator_token
        self.extra_env = dict(extra_env or {})
        self.stderr_path = data_dir.parent / "node-stderr.log"
        self.node: RunningNode | None = None
        self.starts = 0

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "asyncdex.cli.node_cmd",
            "--data",
            str(self.data_dir),
            "--config",
            str(self.config_path),
            "--port",
            "0",
            *LOOPBACK_BUDGETS,
            *self.extra_args,
        ]

    def start(self) -> RunningNode:
        assert self.node is None or self.node.process.poll() is not None, "node still running"
        env = dict(os.environ)
        env.pop("ASYNCDEX_OPERATOR_TOKEN", None)
        if self.operator_token is not None:
            env["ASYNCDEX_OPERATOR_TOKEN"] = self.operator_token
        env.update(self.extra_env)
        with self.stderr_path.open("ab") as stderr:
            stderr.write(f"---- start {self.starts}\n".encode())
            stderr.flush()
            process = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=stderr, env=env
            )
        self.starts += 1
        lines: queue.Queue[str | None] = queue.Queue()
        stdout_lines: list[str] = []

        def pump() -> None:
            # Keep draining stdout for the life of the process so it can never block on it.
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                stdout_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        ready = None
        try:
            while ready is None:
                line = lines.get(timeout=START_TIMEOUT)
                if line is None:
                    raise NodeStartError(
                        f"node exited with {process.wait()} before listening:\n"
                        + self.stderr_tail()
                    )
                if line.startswith("{"):
                    candidate = json.loads(line)
                    if candidate.get("event") == "listening":
                        ready = candidate
        except queue.Empty:
            process.kill()
            process.wait()
            raise NodeStartError("node did not listen in time:\n" + self.stderr_tail()) from None
        self.node = RunningNode(process, ready["url"], ready["port"], ready, stdout_lines)
        return self.node

    def stderr_tail(self, lines: int = 40) -> str:
        text = self.stderr_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> int:
        """SIGKILL the node and wait for it to be gone."""
        assert self.node is not None
        process = self.node.process
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        return process.wait(timeout=STOP_TIMEOUT)

    def terminate(self) -> int:
        """SIGTERM the node (clean shutdown) and return its exit code."""
        assert self.node is not None
        process = self.node.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout=STOP_TIMEOUT)

    def cleanup(self) -> None:
        if self.node is not None and self.node.process.poll() is None:
            self.node.process.kill()
            self.node.process.wait()


@pytest.fixture
def venue_config() -> Callable[..., Path]:
    return write_venue_config


@pytest.fixture
def node_launcher() -> Iterator[Callable[..., NodeLauncher]]:
    launchers: list[NodeLauncher] = []

    def make(data_dir: Path, config_path: Path, **kwargs: Any) -> NodeLauncher:
        launcher = NodeLauncher(data_dir, config_path, **kwargs)
        launchers.append(launcher)
        return launcher

    yield make
    for launcher in launchers:
        launcher.cleanup()


# ---------------------------------------------------------------------------------------------
# anvil

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_BINARY = REPO_ROOT / "node_modules" / ".bin" / "anvil"


def anvil_executable() -> Path:
    """The platform binary that ``node_modules/.bin/anvil`` (a Node wrapper) runs.

    Started directly, a signal reaches anvil itself: the wrapper forwards SIGTERM and then
    exits at once, while anvil may still be writing its state and holding its port.
    """
    scope = REPO_ROOT / "node_modules" / "@foundry-rs"
    for candidate in sorted(scope.glob("anvil-*/bin/anvil")):
        return candidate
    return ANVIL_BINARY


ANVIL_START_TIMEOUT = 30.0
_BANNER_KEY = re.compile(r"^\((\d+)\) (0x[0-9a-fA-F]{64})$")


def anvil_port_candidates() -> Iterator[int]:
    """Free-looking loopback ports below the kernel's ephemeral range.

    Below it so that nothing else on the machine gets the port by accident while anvil is
    stopped (outgoing connections and ``bind(0)`` draw from the ephemeral range): the outage
    test brings the chain back on the same port the node was told about.
    """
    low = 32768  # Linux's default, where /proc does not say
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first = max(1024, low - 12_000)
    rng = random.Random()
    for _ in range(50):
        port = rng.randrange(first, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        yield port


class AnvilStartError(RuntimeError):
    pass


class Anvil:
    """One anvil process (at a time) on one loopback port; see the module docstring."""

    def __init__(
        self, workdir: Path, *, block_time: int | None = None, state: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.block_time = block_time
        self.state = state
        self.port = 0
        self.keys: list[bytes] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "anvil.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        command = [str(anvil_executable()), "--host", "127.0.0.1", "--port", str(port)]
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        if self.state is not None:
            command += ["--state", str(self.state)]
        return command

    def start(self) -> Anvil:
        """Start on a new free port, or on the same port as before once started."""
        assert self.process is None or self.process.poll() is not None, "anvil still running"
        ports = [self.port] * 20 if self.port else anvil_port_candidates()
        errors = []
        for port in ports:
            try:
                self._spawn(port)
                return self
            except AnvilStartError as exc:
                errors.append(str(exc))
                if self.port:  # the same port: it may still be in TIME_WAIT for a moment
                    threading.Event().wait(0.25)
        raise AnvilStartError("anvil did not start:\n" + "\n".join(errors[-3:]))

    def _spawn(self, port: int) -> None:
        log = self.log_path.open("ab")
        log.write(f"---- start {self.starts} on port {port}\n".encode())
        log.flush()
        # Its own process group: stop and cleanup reach anything it started (the wrapper's
        # child, when the platform binary was not found).
        process = subprocess.Popen(
            self.command(port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            # Drain for the life of the process so anvil never blocks on a full pipe.
            assert process.stdout is not None
            with log:
                for raw in process.stdout:
                    log.write(raw)
                    lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        keys: dict[int, bytes] = {}
        try:
            while True:
                line = lines.get(timeout=ANVIL_START_TIMEOUT)
                if line is None:
                    raise AnvilStartError(f"anvil exited with {process.wait()} on port {port}")
                match = _BANNER_KEY.match(line.strip())
                if match:
                    keys[int(match.group(1))] = bytes.fromhex(match.group(2)[2:])
                if line.startswith("Listening on"):
                    break
        except queue.Empty:
            _kill_group(process)
            raise AnvilStartError(f"anvil did not listen on port {port} in time") from None
        self.process = process
        self.port = port
        if keys:
            self.keys = [keys[index] for index in sorted(keys)]

    def stop(self) -> None:
        """SIGTERM, and wait until every process of the group is gone (with ``state``, anvil
        writes the chain there on the way out, before it exits)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=STOP_TIMEOUT)
        _wait_group_gone(self.process.pid)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        result = http_request(self.url, "POST", body.encode(), {"Content-Type": "application/json"})
        assert result.status == 200, result.body
        document = result.json()
        assert "error" not in document, document
        return document["result"]

    def mine(self, blocks: int) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def set_block_time(self, seconds: int) -> None:
        """Interval mining from now on (anvil starts in automine unless ``block_time``)."""
        self.rpc("evm_setIntervalMining", [seconds])

    def cleanup(self) -> None:
        if self.process is not None:
            _kill_group(self.process)


def _wait_group_gone(group: int) -> None:
    deadline = threading.Event()
    for _ in range(int(STOP_TIMEOUT / 0.05)):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        deadline.wait(0.05)
    raise TimeoutError(f"process group {group} still alive")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def anvil_launcher() -> Iterator[Callable[..., Anvil]]:
    if not ANVIL_BINARY.exists():
        message = f"{ANVIL_BINARY.relative_to(REPO_ROOT)} missing: run npm ci"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    started: list[Anvil] = []

    def make(workdir: Path, **kwargs: Any) -> Anvil:
        workdir.mkdir(parents=True, exist_ok=True)
        anvil = Anvil(workdir, **kwargs)
        started.append(anvil)
        return anvil.start()

    yield make
    for anvil in started:
        anvil.cleanup()


@pytest.fixture
def free_port_base() -> int:
    """The first of 8 consecutive free ports: 4 members' APIs, then their consensus ports."""
    return free_port_range(8)
