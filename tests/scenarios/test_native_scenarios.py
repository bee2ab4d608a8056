"""Every golden scenario through the native core and the reference, compared step by step.

The native core must give the same events (same classes, same fields) and the same state root
after every step of every scenario it supports. The scenarios it does not support yet are
listed in ``NATIVE_UNSUPPORTED`` with what they need: for them the native core must refuse
loudly (``NativeUnsupported``), and a listed scenario that runs through fails this test, so
the list can only shrink as the core grows. Nothing is skipped silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncdex.engine.native import NativeEngine, NativeUnsupported, native_available
from asyncdex.engine.state_root import state_root
from asyncdex.engine.transition import Engine

from .runner import load_scenario, scenario_paths

pytestmark = pytest.mark.skipif(
    not native_available(), reason="the native engine core is not built (no C++ compiler)"
)

# scenario -> what the native core lacks for it (empty since committee incentives landed: a
# new scenario the core cannot run must be listed here with the reason, or this test fails)
NATIVE_UNSUPPORTED: dict[str, str] = {}

PATHS = scenario_paths()


def _run_both(path: Path) -> None:
    scenario = load_scenario(path)
    reference = Engine(scenario.config)
    native = NativeEngine(scenario.config)
    for step in scenario.steps:
        expected = reference.apply(step.command, step.timestamp)
        actual = native.apply(step.command, step.timestamp)
        where = f"{path.stem} step {step.index} ({type(step.command).__name__})"
        assert [type(e) for e in actual] == [type(e) for e in expected], where
        assert actual == expected, where
        assert native.state_root() == state_root(reference.state), where
    if scenario.final_root is not None:
        assert "0x" + native.state_root().hex() == scenario.final_root


def test_every_unsupported_scenario_exists() -> None:
    names = {path.stem for path in PATHS}
    assert set(NATIVE_UNSUPPORTED) <= names
    # most of the golden files run natively: the list must not grow into a blanket exemption
    assert len(NATIVE_UNSUPPORTED) < len(names) / 2


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_native_core_matches_the_reference_on_scenario(path: Path) -> None:
    if path.stem in NATIVE_UNSUPPORTED:
        with pytest.raises(NativeUnsupported):
            _run_both(path)
        return
    _run_both(path)
