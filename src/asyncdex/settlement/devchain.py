"""The embedded chain: py-evm (through eth-tester) in a process of its own, serving Ethereum
JSON-RPC on loopback and keeping its state in a directory, so a venue restarts on it.

Invariants:

- Durable before answered. Every database write py-evm makes (trie nodes, blocks, receipts,
  the canonical head) is recorded; after each request the writes are appended to
  ``chain.log`` as one checksummed record and the log is fsync'd before the answer leaves or
  the next request is read. So a transaction, with every block before it, is on disk
  whatever happens to this process, its parent or the machine afterwards. An empty block
  mined on the timer is appended at once (it survives this process and its parent) and
  fsync'd with the next transaction or within ``EMPTY_BLOCK_SYNC_S``: a machine crash can
  take back at most that much of the newest empty blocks (the head a little lower, a
  finality a block or two later), never a transaction nor a block under one.
- The log is a sequence of records ``[u32 length][u32 crc32][payload]``, the payload a run
  of ``[u8 op][u32 key length][key]([u32 value length][value] for a write)``. Opening it
  replays every whole record into memory and cuts the file at the first torn or damaged one
  (the write a crash interrupted: nothing after it was answered).
- A restart brings back the head block and everything under it: the same contracts at the
  same addresses, the same balances and logs, the same block numbers. Mining resumes on top.
- One process per directory: an exclusive lock on ``LOCK`` (a new process waits a few
  seconds for an exiting one to let go).
- The process serves until its stdin closes (the parent that started it is gone: a node
  killed with SIGKILL takes its chain down with it) or it gets SIGTERM or SIGINT. Its first
  stdout line is a JSON object: ``{"event": "listening", "url", "chainId", "block",
  "restored"}``.
- Blocks: every transaction is mined at once in its own block (eth-tester's auto-mining), and
  with ``--block-time-ms`` an empty block is mined on that timer, standing in for a real
  chain's block time so confirmations and finality advance.
- It runs at a lower scheduling priority than its parent (``NICENESS``): the node's event
  loop goes first when both want a core.
- Errors follow the JSON-RPC conventions of real nodes: a revert is code 3, ``"execution
  reverted"``, with the revert bytes as ``data``, so clients decode custom errors as they do
  against anvil.

Why a process: py-evm is pure Python. Inside the node it would hold the node's GIL for every
block and call, stalling the sequencer; here it has its own interpreter, and the node talks to
it exactly as to anvil or any other chain (``RpcChain``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_log = logging.getLogger(__name__)

LOG_NAME = "chain.log"
LOCK_NAME = "LOCK"
_HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
_LENGTH = struct.Struct("<I")
_SET, _DELETE = 1, 0
MAX_RECORD = 1 << 30
LOCK_WAIT_S = 15.0
START_TIMEOUT_S = 120.0  # py-evm's imports and a long log's replay, on a loaded machine
STOP_TIMEOUT_S = 10.0
EMPTY_BLOCK_SYNC_S = 1.0  # an empty block on the timer is fsync'd within this
NICENESS = 5  # added to the process's nice value (lower priority than the node's)
# eth-tester's funded dev accounts: the private keys 1 to 10, each holding 1,000,000 ether
DEV_KEYS = tuple(i.to_bytes(32, "big") for i in range(1, 11))
_CALLS = frozenset({"eth_call", "eth_estimateGas"})


class DevChainError(RuntimeError):
    """The embedded chain cannot start on this directory."""


# ---------------------------------------------------------------- the log


def encode_record(writes: list[tuple[bytes, bytes | None]]) -> bytes:
    """One log record holding ``writes`` in order (value None: a deletion)."""
    parts: list[bytes] = []
    for key, value in writes:
        if value is None:
            parts += [bytes((_DELETE,)), _LENGTH.pack(len(key)), key]
        else:
            parts += [bytes((_SET,)), _LENGTH.pack(len(key)), key, _LENGTH.pack(len(value)), value]
    payload = b"".join(parts)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _apply_payload(payload: bytes, store: dict[bytes, bytes]) -> None:
    view = memoryview(payload)
    offset = 0
    while offset < len(view):
        op = view[offset]
        (key_length,) = _LENGTH.unpack_from(view, offset + 1)
        offset += 1 + _LENGTH.size
        key = bytes(view[offset : offset + key_length])
        offset += key_length
        if op == _DELETE:
            store.pop(key, None)
            continue
        (value_length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        store[key] = bytes(view[offset : offset + value_length])
        offset += value_length


@dataclass(frozen=True, slots=True)
class LogReplay:
    store: dict[bytes, bytes]
    records: int
    valid_bytes: int
    cut_bytes: int  # a torn or damaged tail removed at open


def read_log(path: Path) -> LogReplay:
    """Replay the log at ``path`` into a dict; stops at the first torn or damaged record."""
    store: dict[bytes, bytes] = {}
    data = path.read_bytes() if path.exists() else b""
    offset = records = 0
    while offset + _HEADER.size <= len(data):
        length, checksum = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if length > MAX_RECORD or start + length > len(data):
            break
        payload = data[start : start + length]
        if zlib.crc32(payload) != checksum:
            break
        try:
            _apply_payload(payload, store)
        except struct.error:
            break  # a checksum collision on garbage: treat it as damage
        offset = start + length
        records += 1
    return LogReplay(store, records, offset, len(data) - offset)


class ChainLog:
    """The append-only log of database writes; ``sync`` makes what was appended durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("ab")
        self.unsynced = False
        self.synced_at = time.monotonic()

    def append(self, writes: list[tuple[bytes, bytes | None]], *, sync: bool = True) -> None:
        self._file.write(encode_record(writes))
        self._file.flush()  # in the page cache: survives this process, not the machine
        self.unsynced = True
        if sync:
            self.sync()

    def sync(self) -> None:
        if self.unsynced:
            os.fsync(self._file.fileno())
            self.unsynced = False
        self.synced_at = time.monotonic()

    def close(self) -> None:
        self.sync()
        self._file.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the chain


def _recording_db(store: dict[bytes, bytes], pending: list[tuple[bytes, bytes | None]]) -> Any:
    """py-evm's in-memory database over ``store``, noting every write in ``pending``."""
    from eth.db.atomic import AtomicDB
    from eth.db.backends.memory import MemoryDB

    class RecordingMemoryDB(MemoryDB):
        def __setitem__(self, key: bytes, value: bytes) -> None:
            self.kv_store[key] = value
            pending.append((key, value))

        def __delitem__(self, key: bytes) -> None:
            del self.kv_store[key]
            pending.append((key, None))

    return AtomicDB(RecordingMemoryDB(store))


class PersistentChain:
    """eth-tester over a py-evm chain whose database lives in ``directory``'s log."""

    def __init__(self, directory: Path) -> None:
        from eth.vm.forks import PragueVM
        from eth_tester import EthereumTester, PyEVMBackend

        self.directory = directory
        log_path = directory / LOG_NAME
        replay = read_log(log_path)
        if replay.cut_bytes:
            _log.warning(
                "%s: cut a torn or damaged tail of %d bytes after %d records",
                log_path, replay.cut_bytes, replay.records,
            )  # fmt: skip
            with log_path.open("r+b") as file:
                file.truncate(replay.valid_bytes)
                file.flush()
                os.fsync(file.fileno())
        # A fresh backend gives the tester chain class, the dev accounts and a genesis; on a
        # restart its genesis is dropped for the one in the log.
        backend = PyEVMBackend(vm_configuration=((0, PragueVM),))
        chain_class = type(backend.chain)
        self.restored = replay.records > 0
        self.pending: list[tuple[bytes, bytes | None]] = []
        if self.restored:
            store = replay.store
        else:
            genesis = backend.chain.chaindb.db.wrapped_db.kv_store
            store = dict(genesis)
            self.pending.extend(store.items())
        backend.chain = chain_class(_recording_db(store, self.pending))
        self.backend = backend
        self.tester = EthereumTester(backend)
        self.log = ChainLog(log_path)
        if not self.restored:
            _fsync_dir(directory)
        self.persist()

    @property
    def block_number(self) -> int:
        return int(self.tester.get_block_by_number("latest")["number"])

    def persist(self) -> None:
        """Append what changed since the last call and fsync the log (with it the empty
        blocks appended before): called before every answer. Nothing changed, nothing done:
        a read does not wait for the timer's empty blocks to be fsync'd."""
        if self.pending:
            self.log.append(self.pending)
            self.pending.clear()

    def mine(self) -> None:
        """An empty block on the timer: appended at once, fsync'd with the next transaction
        or within ``EMPTY_BLOCK_SYNC_S``. Nobody waits for it, and on a disk shared with the
        node's journal an fsync per block delayed the journal's own (and so receipts)."""
        self.tester.mine_blocks(1)
        if self.pending:
            self.log.append(self.pending, sync=False)
            self.pending.clear()
        if time.monotonic() - self.log.synced_at >= EMPTY_BLOCK_SYNC_S:
            self.log.sync()

    def close(self) -> None:
        self.persist()
        self.log.close()


# ---------------------------------------------------------------- JSON-RPC


def _to_json(value: Any) -> Any:
    """eth-tester's results in JSON-RPC's encoding: quantities and bytes as 0x hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


class RpcDispatcher:
    """JSON-RPC requests to eth-tester, through web3's own request and result formatting
    for it (the same translation ``EthereumTesterProvider`` applies in process)."""

    def __init__(self, chain: PersistentChain) -> None:
        from web3.providers.eth_tester.defaults import API_ENDPOINTS
        from web3.providers.eth_tester.middleware import request_formatters, result_formatters

        self.chain = chain
        self.endpoints = API_ENDPOINTS
        # keyed by method name (web3 types the keys as its RPCEndpoint, a str)
        self.request_formatters: dict[str, Callable[..., Any]] = {
            str(method): formatter for method, formatter in request_formatters.items()
        }
        self.result_formatters: dict[str, Callable[..., Any]] = {
            str(method): formatter for method, formatter in (result_formatters or {}).items()
        }
        self.default_sender = chain.tester.get_accounts()[0]

    def handle(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(request_id, -32600, "invalid request")
        method: str = request["method"]
        params = request.get("params", [])
        try:
            result = self._call(method, params if isinstance(params, list) else [params])
        except _RpcError as error:
            return _error(request_id, error.code, error.message, error.data)
        except Exception as exc:
            reverted = _reverted(exc)
            if reverted is not None:
                return _error(request_id, 3, "execution reverted", "0x" + reverted.hex())
            _log.debug("%s failed", method, exc_info=True)
            return _error(request_id, -32000, f"{type(exc).__name__}: {exc}")
        finally:
            self.chain.persist()
        return {"jsonrpc": "2.0", "id": request_id, "result": _to_json(result)}

    def _call(self, method: str, params: list[Any]) -> Any:
        if method == "anvil_mine":  # one call for any count, as anvil has it
            count = int(params[0], 16) if params else 1
            self.chain.tester.mine_blocks(max(1, count))
            return None
        namespace, _, name = method.partition("_")
        delegator = self.endpoints.get(namespace, {}).get(name)
        if delegator is None:
            raise _RpcError(-32601, f"method not found: {method}")
        if method in _CALLS and params and isinstance(params[0], dict):
            # eth-tester wants a sender with gas money; web3's in-process provider fills in
            # the first dev account the same way
            params = [{"from": self.default_sender, **params[0]}, *params[1:]]
        formatter = self.request_formatters.get(method)
        if formatter is not None:
            params = formatter(params)
        try:
            result = delegator(self.chain.tester, params)
        except NotImplementedError:
            raise _RpcError(-32601, f"method not implemented: {method}") from None
        formatter = self.result_formatters.get(method)
        return result if formatter is None else formatter(result)


class _RpcError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _error(request_id: Any, code: int, message: str, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _reverted(exc: BaseException) -> bytes | None:
    """The revert bytes of a failed call or estimate, or None when ``exc`` is no revert."""
    from asyncdex.settlement.chain import _is_revert, _revert_data

    pending: list[BaseException] = [exc]
    while pending:
        seen = pending.pop()
        if _is_revert(seen) or type(seen).__name__ in {"Revert", "ContractCustomError"}:
            data = _revert_data(seen)
            return b"" if data is None else data
        if seen.__context__ is not None:
            pending.append(seen.__context__)
    return None


# ---------------------------------------------------------------- the server process


def _acquire_lock(directory: Path) -> IO[bytes]:
    lock = (directory / LOCK_NAME).open("ab")
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                lock.close()
                raise DevChainError(
                    f"{directory}: another embedded chain holds it ({exc.strerror})"
                ) from None
            time.sleep(0.1)


async def _serve(directory: Path, port: int, block_time_ms: int, exit_with_stdin: bool) -> None:
    from aiohttp import web

    chain = PersistentChain(directory)
    dispatcher = RpcDispatcher(chain)

    async def handle(request: web.Request) -> web.Response:
        try:
            document = await request.json()
        except ValueError:
            return web.json_response(_error(None, -32700, "parse error"))
        if isinstance(document, list):
            return web.json_response([dispatcher.handle(item) for item in document])
        return web.json_response(dispatcher.handle(document))

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # stdin closing means the parent is gone (a pipe's end of file)
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        try:
            if os.read(stdin, 4096):
                return
        except OSError:
            pass
        loop.remove_reader(stdin)
        stop.set()

    if exit_with_stdin:
        loop.add_reader(stdin, on_stdin)
    line = {
        "event": "listening",
        "url": f"http://127.0.0.1:{bound}",
        "chainId": chain.tester.backend.chain.chain_id,
        "block": chain.block_number,
        "restored": chain.restored,
    }
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    try:
        while not stop.is_set():
            if block_time_ms <= 0:
                await stop.wait()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), block_time_ms / 1000)
            if not stop.is_set():
                chain.mine()
    finally:
        await runner.cleanup()
        chain.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asyncdex.settlement.devchain",
        description="the embedded chain: py-evm serving JSON-RPC on loopback, kept in DIR",
    )
    parser.add_argument("--dir", required=True, help="directory of the chain's log")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free)")
    parser.add_argument(
        "--block-time-ms", type=int, default=0, help="mine an empty block this often (0: never)"
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when stdin closes (how the node that started it takes it down)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s devchain %(levelname)s %(message)s")  # fmt: skip
    directory = Path(args.dir)
    # The chain is background work beside the venue it settles: on a machine with few cores
    # the scheduler should run the node's event loop first when both want a core.
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = _acquire_lock(directory)
    except (OSError, DevChainError) as exc:
        print(f"devchain: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(directory, args.port, args.block_time_ms, args.exit_with_stdin))
    finally:
        lock.close()
    return 0


# ---------------------------------------------------------------- the parent's handle


class DevChainProcess:
    """A running embedded chain, started by :meth:`start`; :meth:`close` stops it (its log
    is already durable: stopping only ends the process)."""

    def __init__(self, process: subprocess.Popen[bytes], ready: dict[str, Any]) -> None:
        self.process = process
        self.url: str = ready["url"]
        self.chain_id: int = ready["chainId"]
        self.restored: bool = ready["restored"]
        self.block_at_start: int = ready["block"]

    @classmethod
    def start(cls, directory: Path, *, block_time_ms: int, port: int = 0) -> DevChainProcess:
        command = [
            sys.executable, "-m", "asyncdex.settlement.devchain", "--dir", str(directory),
            "--port", str(port), "--block-time-ms", str(block_time_ms), "--exit-with-stdin",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        assert process.stdout is not None
        line = _read_line(process.stdout, START_TIMEOUT_S)
        if not line:
            code = process.poll()
            if code is None:
                _stop(process)
            raise DevChainError(
                f"the embedded chain in {directory} did not start (exit {process.returncode})"
            )
        return cls(process, json.loads(line))

    def close(self) -> int:
        """Stop the chain (SIGTERM, then SIGKILL after a while); its exit code."""
        return _stop(self.process)


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
