"""Fixtures for integration tests that run a real node process on loopback.

- ``node_launcher(data_dir, config_path, extra_args=..., operator_token=...)`` returns a
  :class:`NodeLauncher`: ``start()`` runs ``python -m asyncdex.cli.node_cmd`` on a free port
  (``--port 0``; the node reports the port it bound on its first stdout line) and waits
  until it listens; ``kill()`` sends SIGKILL, ``terminate()`` SIGTERM and returns the exit
  code. Every process a test starts is killed at teardown. Each node's stderr is appended
  to ``node-stderr.log`` beside the data directory and shown when a start fails.
- ``venue_config(path, domain, markets, oracle_publishers)`` writes a venue TOML file
  (engine config plus ``[venue]``); markets are ``(symbol, sz_decimals, tick, lot)``.
- :meth:`RunningNode.request` is a small blocking HTTP client (any status is returned).

Tests use these through fixtures rather than ``import conftest``: another test folder's
conftest may claim that module name.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asyncdex.gateway.eip712 import Domain

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
    ) -> None:
        self.data_dir = data_dir
        self.config_path = config_path
        self.extra_args = list(extra_args)
        self.operator_token = operator_token
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
            *self.extra_args,
        ]

    def start(self) -> RunningNode:
        assert self.node is None or self.node.process.poll() is not None, "node still running"
        env = dict(os.environ)
        env.pop("ASYNCDEX_OPERATOR_TOKEN", None)
        if self.operator_token is not None:
            env["ASYNCDEX_OPERATOR_TOKEN"] = self.operator_token
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
