"""Which engine a process runs: the native core whenever it is built, else the reference.

Invariants:
- ``ENGINE_KINDS`` are the implementations a user may name (``--engine``): ``reference``
  (``asyncdex.engine.transition``, the interpreted specification) and ``native`` (the C++
  core, ``asyncdex.engine.native``). Both produce the same events and roots.
- The default (no ``--engine``) is ``native`` when the extension is built; otherwise the
  reference, with a warning saying why (``choose_engine``). Naming ``native`` where it is not
  built is an error (``EngineUnavailable``), never a silent fallback.
- ``build_engine`` starts either from genesis or from a reference ``State`` (a restored
  snapshot: snapshots are one format for both).
"""

from __future__ import annotations

from asyncdex.engine.native import NativeEngine, native_available, native_unavailable_reason
from asyncdex.engine.reader import EngineLike
from asyncdex.engine.state import State
from asyncdex.engine.transition import Engine
from asyncdex.types.market import EngineConfig

ENGINE_KINDS = ("reference", "native")


class EngineUnavailable(RuntimeError):
    """The engine asked for cannot run here (the native core is not built)."""


def choose_engine(requested: str | None) -> tuple[str, str | None]:
    """(the kind to run, a warning to show or None). ``requested`` None: the default."""
    if requested is None:
        if native_available():
            return "native", None
        return "reference", f"running the reference engine: {native_unavailable_reason()}"
    if requested not in ENGINE_KINDS:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_KINDS)}, not {requested!r}")
    if requested == "native" and not native_available():
        raise EngineUnavailable(native_unavailable_reason())
    return requested, None


def build_engine(kind: str, config: EngineConfig, state: State | None = None) -> EngineLike:
    """An engine of ``kind`` at genesis, or holding ``state`` (taken over, not copied, by the
    reference; loaded by the native core)."""
    if kind == "reference":
        return Engine(config) if state is None else Engine(state=state)
    if kind == "native":
        if not native_available():
            raise EngineUnavailable(native_unavailable_reason())
        if state is None:
            return NativeEngine(config)
        return NativeEngine.from_reference_state(config, state)
    raise ValueError(f"engine must be one of {', '.join(ENGINE_KINDS)}, not {kind!r}")
