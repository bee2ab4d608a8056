"""What the committee tests share: JSON over HTTP, the operator door, waiting for a state, and
a local committee of member processes that is always stopped.

(A plain module beside the tests, imported by name: a conftest's module name may be claimed
by another test folder's conftest, this one's is not.)
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asyncdex.cli.committee_cmd import CommitteeProcesses, common_history

REPO = Path(__file__).resolve().parents[2]
COMMITTEE_CONFIG = REPO / "examples" / "committee.toml"
PUBLISHER = "0xc377c94d857b217ac94de730b94d5ce0a302f765"  # the config's first publisher


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def operator(url: str, token: str, commands: list[dict[str, Any]]) -> Any:
    """``POST /v1/system`` with the operator token; the receipts."""
    request = urllib.request.Request(
        url + "/v1/system",
        json.dumps({"commands": commands}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The predicate's first truthy value; a member not answering yet counts as not yet. The
    timeout is generous for a loaded machine: nothing here asserts a duration."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def has_account(url: str, account: str) -> bool:
    try:
        get(f"{url}/v1/accounts/{account}")
        return True
    except (OSError, ValueError):
        return False


def stopped_with_one_history(processes: CommitteeProcesses) -> int:
    """Stop every member (SIGTERM: each drains what it executed, exit 0) and check that their
    journals hold one history (``common_history``); its length."""
    codes = processes.stop_all()
    assert codes == [0] * processes.nodes, codes
    return common_history(processes.data, processes.nodes)


@contextmanager
def local_committee(
    directory: Path,
    base_port: int,
    token: str,
    *,
    config: Path = COMMITTEE_CONFIG,
    nodes: int = 4,
    node_args: tuple[str, ...] = (),
    **options: Any,
) -> Iterator[CommitteeProcesses]:
    """``nodes`` members started (their logs in ``directory/members.log``), stopped on exit."""
    log = (directory / "members.log").open("w")
    processes = CommitteeProcesses(
        directory / "committee",
        config,
        nodes,
        port=base_port,
        consensus_port=base_port + nodes,
        node_args=("--operator-token", token, *node_args),
        log=log,
        **options,
    )
    try:
        processes.start_all()
        yield processes
    finally:
        processes.stop_all()
        log.close()
