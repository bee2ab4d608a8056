"""``docs/client.md`` runs as written: every Python block of it, in order, in one session,
against a real node started from ``examples/node.toml`` as the README starts it.

What is run: the page's ```` ```python ```` blocks, executed in one namespace in page order
(the page says they form one session), in a scratch working directory, with
``ASYNCDEX_OPERATOR_TOKEN`` set to the token the node was started with (the page's ``sh``
block exports it for both). The only change to their text: the node's URL,
``http://127.0.0.1:8080`` on the page, becomes the test node's (it listens on a free port).
``sh`` blocks are not run: the one that starts the node is what this test does itself (the
README's ``asyncdex node --data DIR --config examples/node.toml``, on a free port), and the
test checks that the page still says so. A block in any other language fails the test, so
nothing on the page goes unchecked by accident.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import NodeLauncher

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "client.md"
NODE_CONFIG = REPO / "examples" / "node.toml"
PAGE_URL = "http://127.0.0.1:8080"
TOKEN = "docs-client-operator-token"
RUN_LANGUAGES = frozenset({"python"})
SHOWN_LANGUAGES = frozenset({"sh"})  # the node's start, which the test does itself
SESSION_TIMEOUT = 600.0  # seconds: only so that a hung block fails instead of hanging

_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the block's first line of code in the page


def code_blocks(text: str) -> list[Block]:
    return [
        Block(match.group(1), match.group(2), text.count("\n", 0, match.start(2)) + 1)
        for match in _FENCE.finditer(text)
    ]


def run_session(
    blocks: list[Block], url: str, page: str
) -> tuple[dict[str, Any], str, BaseException | None]:
    """Execute the Python blocks in order in one namespace; (the namespace, stdout, the
    first error)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    output = io.StringIO()
    failure: list[BaseException] = []

    def session() -> None:
        with contextlib.redirect_stdout(output):
            for block in blocks:
                # padded so that a traceback names the page's own line numbers
                source = "\n" * (block.line - 1) + block.code.replace(PAGE_URL, url)
                try:
                    exec(compile(source, page, "exec"), namespace)
                except BaseException as exc:
                    exc.add_note(f"in the block at {page}:{block.line}")
                    failure.append(exc)
                    return

    worker = threading.Thread(target=session, name="docs-client-session", daemon=True)
    worker.start()
    worker.join(SESSION_TIMEOUT)
    if worker.is_alive():
        failure.append(TimeoutError(f"the blocks of {page} did not finish"))
    return namespace, output.getvalue(), failure[0] if failure else None


def test_the_page_has_only_blocks_this_test_runs_or_reproduces() -> None:
    blocks = code_blocks(PAGE.read_text())
    languages = {block.language for block in blocks}
    assert languages <= RUN_LANGUAGES | SHOWN_LANGUAGES, (
        f"{PAGE.name} has blocks in {sorted(languages - RUN_LANGUAGES - SHOWN_LANGUAGES)}: "
        f"this test runs {sorted(RUN_LANGUAGES)} blocks and reproduces the sh one"
    )
    shell = "\n".join(block.code for block in blocks if block.language in SHOWN_LANGUAGES)
    # what the test does in place of the sh block
    assert "asyncdex node --data" in shell and "--config examples/node.toml" in shell, shell
    assert "export ASYNCDEX_OPERATOR_TOKEN=" in shell, shell
    assert sum(block.language == "python" for block in blocks) >= 3


def test_every_python_block_runs_against_a_node_from_the_example_config(
    tmp_path: Path,
    node_launcher: Callable[..., NodeLauncher],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = node_launcher(tmp_path / "data", NODE_CONFIG, operator_token=TOKEN).start()
    monkeypatch.setenv("ASYNCDEX_OPERATOR_TOKEN", TOKEN)
    session_dir = tmp_path / "session"
    session_dir.mkdir()
    monkeypatch.chdir(session_dir)
    blocks = [block for block in code_blocks(PAGE.read_text()) if block.language == "python"]

    namespace, output, failure = run_session(blocks, node.url, str(PAGE.relative_to(REPO)))

    if failure is not None:
        raise AssertionError(f"a block of {PAGE.name} failed; its output:\n{output}") from failure
    # the examples took their successful paths: nothing was rejected, every order rested
    assert "rejected:" not in output, output
    assert re.search(r"^placed, modified and cancelled order \d+$", output, re.M), output
    assert re.search(r"^ETH order \d+ fills: \[\]$", output, re.M), output
    assert re.search(r"^BTC best bid 59000 best ask None ", output, re.M), output
    assert re.search(r"^cancelled \[\d+\]$", output, re.M), output
    # connect signed for the contract the embedded chain deployed at the node's start
    assert node.ready["settlement"] is True
    domain = namespace["client"].domain
    assert (domain.chain_id, "0x" + domain.verifying_contract.hex()) == (
        node.ready["chainId"],
        node.ready["contract"],
    )
    book = node.get("/v1/markets/BTC/book").json()
    assert book["bids"] == [], book  # the last example cancelled what it placed
