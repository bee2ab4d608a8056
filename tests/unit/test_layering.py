"""Every import between asyncdex's packages points down.

Invariants (read from the source with ``ast``, so an import under ``TYPE_CHECKING`` or inside
a function counts too):

- A package imports only packages below it in the table, never one above, so each layer can
  be read, tested and reused without the ones above it.
- Nothing below the gateway imports ``asyncdex.gateway``, ``asyncdex.cli`` or
  ``asyncdex.web``: the pure core (types, messages, commitment, engine), the sequencer,
  signing, the oracle, sealed-intent cryptography and the consensus core run without the
  HTTP node.
- The engine imports no settlement module: the state root's Merkle tree and leaves live in
  ``asyncdex.commitment``, which the settlement package shares.

The allowed arrows, bottom to top (a package may import any package on an earlier line):

=================  ==========================================================================
package            may import
=================  ==========================================================================
types, logs        nothing in asyncdex
messages           types
commitment         types, messages
engine             types, messages, commitment
sequencer          ... engine
signing            ... sequencer
oracle             ... signing
fairness           ... oracle (sealed intents: threshold keys, DKG, envelopes)
consensus          ... fairness
settlement         ... consensus
committee          ... settlement (the asyncio host of a consensus member: network, storage)
client             ... committee
gateway, web       ... client, and each other (the node serves the page; the page's relay is
                   handed the node)
cli                everything
=================  ==========================================================================
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import asyncdex

SRC = Path(asyncdex.__file__).resolve().parent

# Bottom to top; packages on one line are peers and may import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"types", "logs"}),
    frozenset({"messages"}),
    frozenset({"commitment"}),
    frozenset({"engine"}),
    frozenset({"sequencer"}),
    frozenset({"signing"}),
    frozenset({"oracle"}),
    frozenset({"fairness"}),
    frozenset({"consensus"}),
    frozenset({"settlement"}),
    frozenset({"committee"}),
    frozenset({"client"}),
    frozenset({"gateway", "web"}),
    frozenset({"cli"}),
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}

BELOW_THE_GATEWAY = (
    "types",
    "messages",
    "commitment",
    "engine",
    "sequencer",
    "signing",
    "oracle",
    "fairness",
    "consensus",
)
ABOVE = ("gateway", "cli", "web")


def _package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["asyncdex", *parts])


def _imported(path: Path) -> Iterator[tuple[int, str]]:
    """Each asyncdex module ``path`` imports, absolute, with its line number."""
    module = _module_of(path)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "asyncdex":
                # ``from asyncdex import engine`` names the package in the alias
                for alias in node.names:
                    yield node.lineno, f"asyncdex.{alias.name}"
            else:
                yield node.lineno, target


def _arrows() -> list[tuple[str, str, str]]:
    """(importing package, imported package, where) for every cross-package import."""
    arrows = []
    for path in sorted(SRC.rglob("*.py")):
        package = _package_of(path)
        for line, target in _imported(path):
            parts = target.split(".")
            if parts[0] != "asyncdex" or len(parts) < 2 or parts[1] == package:
                continue
            where = f"{path.relative_to(SRC.parent)}:{line} imports {target}"
            arrows.append((package, parts[1], where))
    return arrows


ARROWS = _arrows()


def test_every_package_has_a_place_in_the_table() -> None:
    packages = {_package_of(path) for path in SRC.rglob("*.py")} - {"__init__"}
    assert packages - RANK.keys() == set()


def test_the_scan_sees_the_known_downward_arrows() -> None:
    # guards the scanner itself: an ast walk that found nothing would pass every check below
    seen = {(source, target) for source, target, _ in ARROWS}
    assert ("engine", "commitment") in seen
    assert ("oracle", "signing") in seen
    assert ("gateway", "signing") in seen
    assert ("gateway", "settlement") in seen


@pytest.mark.parametrize("package", BELOW_THE_GATEWAY)
def test_nothing_below_the_gateway_imports_the_gateway_cli_or_web(package: str) -> None:
    upward = [where for source, target, where in ARROWS if source == package and target in ABOVE]
    assert upward == []


def test_the_engine_imports_no_settlement_module() -> None:
    upward = [
        where for source, target, where in ARROWS if source == "engine" and target == "settlement"
    ]
    assert upward == []


def test_every_arrow_points_down() -> None:
    upward = [
        where for source, target, where in ARROWS if RANK.get(target, -1) > RANK.get(source, -1)
    ]
    assert upward == []
