"""Fuzz the live node with the OpenAPI document it serves: no input earns a 5xx, and every
answer has a status and a shape the document gives.

Schemathesis generates requests for every operation of ``GET /v1/openapi.json`` — valid
ones (``positive``: schema-conforming bodies, parameters and paths) and invalid ones
(``negative``: wrong types, out-of-range values, missing fields) — and sends them to a real
node process on loopback. The operator token is presented to the operator endpoints so their
bodies are parsed, and market paths are also tried with a real symbol so the read endpoints
get past the market lookup. Examples are bounded and derandomized: the run is the same each
time and stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from asyncdex.signing.intents import asyncdex_domain
from asyncdex.types.hashing import keccak256

if TYPE_CHECKING:
    from conftest import NodeLauncher, RunningNode

DOMAIN = asyncdex_domain(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"))
PUBLISHER = keccak256(b"fuzz publisher")[-20:]
MARKETS = (("BTC", 5, 10, 10), ("ETH", 4, 1, 10))
OPERATOR_TOKEN = "fuzz operator"
EXAMPLES_PER_OPERATION = 50  # per generation mode
CONFORMANCE = [status_code_conformance, response_schema_conformance]


@pytest.fixture
def node(
    tmp_path: Path,
    venue_config: Callable[..., Path],
    node_launcher: Callable[..., NodeLauncher],
) -> RunningNode:
    config_path = venue_config(tmp_path / "venue.toml", DOMAIN, MARKETS, [PUBLISHER])
    running = node_launcher(tmp_path / "data", config_path, operator_token=OPERATOR_TOKEN).start()
    priced = running.post_json(
        "/v1/system",
        {"commands": [{"type": "oraclePrice", "publisher": "0x" + PUBLISHER.hex(), "market": 0,
                       "price": 600_000}]},
        OPERATOR_TOKEN,
    )  # fmt: skip
    assert priced.status == 200, priced.body
    return running


def test_no_generated_request_gets_a_server_error(node: RunningNode) -> None:
    schema = schemathesis.openapi.from_url(node.url + "/v1/openapi.json")
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    failures: list[str] = []
    operations = 0
    unsatisfiable: list[str] = []
    seen: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        seen.append(f"{operation.method} {operation.path}")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            kwargs: dict[str, Any] = {}
            if operation.path in ("/v1/system", "/v1/dev/deposit"):
                kwargs["headers"] = operator
            strategy = operation.as_strategy(mode, **kwargs)
            if "{symbol}" in operation.path:
                strategy = st.one_of(
                    strategy,
                    operation.as_strategy(mode, path_parameters={"symbol": "BTC"}, **kwargs),
                )

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def send(case: Any) -> None:
                response = case.call(base_url=node.url, timeout=30)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                described = f"{case.method} {case.formatted_path} query={case.query} " + (
                    f"body={case.body!r:.300} -> {response.status_code} {response.text:.300}"
                )
                if response.status_code >= 500:
                    failures.append(described)
                try:
                    # the answer is one the document lists, in the shape it gives
                    case.validate_response(response, checks=CONFORMANCE)
                except (AssertionError, BaseExceptionGroup) as mismatch:
                    failures.append(f"{described}: {mismatch!s:.500}")

            try:
                send()
            except Unsatisfiable:
                # an operation with no parameters and no body has nothing to make invalid
                if mode is GenerationMode.POSITIVE:
                    raise
                unsatisfiable.append(f"{operation.method.upper()} {operation.path}")
    # every operation but the document itself, which schemathesis leaves out of a from_url load
    assert operations >= 16, f"the served document has only {operations} operations: {seen}"
    assert node.get("/v1/health").status == 200
    # the fuzzing reached both the handlers' success and refusal paths
    assert statuses.get(200, 0) > operations and statuses.get(400, 0) > operations, statuses
    assert not failures, "\n".join(failures[:20])
    assert len(unsatisfiable) < operations // 2, unsatisfiable  # negative mode did run
