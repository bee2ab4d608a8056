"""The compiled engine: the same engine source, compiled to C extensions with mypyc.

Invariants:
- There is one engine source. The interpreted modules are the reference implementation; the
  compiled build is the fast one, and the tests run both on the same inputs and compare
  events and state roots.
- The build lives in its own tree (a copy of the package with the hot modules compiled),
  never beside the sources, so an edited ``.py`` is never shadowed by a stale extension.
  A hash of every source file of the package decides whether the build is current.
- Using the build is explicit: put ``compiled_path()`` first on ``PYTHONPATH`` (see
  ``compiled_env``); ``is_compiled()`` tells which implementation is running.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncdex
import asyncdex.engine.transition as _transition

COMPILED_MODULES = (
    "engine/transition.py",
    "engine/orderbook.py",
    "engine/margin.py",
    "engine/state.py",
    "engine/liquidation.py",
    "engine/auction.py",
    "types/market.py",
)

_PACKAGE = Path(asyncdex.__file__).resolve().parent
_STAMP = ".source-hash"


def is_compiled() -> bool:
    """True when the running engine is the compiled build."""
    return not str(_transition.__file__).endswith(".py")


def default_build_dir() -> Path:
    override = os.environ.get("ASYNCDEX_COMPILED_DIR")
    if override:
        return Path(override)
    checkout = _PACKAGE.parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "build" / "compiled"
    return Path.home() / ".cache" / "asyncdex" / "compiled"


def source_hash() -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def compiled_path(build_dir: Path | None = None) -> Path:
    """Build the compiled engine if it is missing or stale; return the path to import from.

    Concurrent callers (parallel test workers) serialise on a lock file beside the build.
    """
    out = build_dir or default_build_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(out)


def _build(out: Path) -> Path:
    if out.resolve() in _PACKAGE.parents:
        raise RuntimeError("the compiled engine cannot rebuild itself: run this from the sources")
    wanted = source_hash()
    stamp = out / _STAMP
    if stamp.is_file() and stamp.read_text() == wanted:
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(_PACKAGE, out / "asyncdex", ignore=shutil.ignore_patterns("__pycache__"))
    # the type checker behind mypyc runs in the build tree, away from pyproject.toml
    (out / "mypy.ini").write_text("[mypy]\nignore_missing_imports = True\n")
    mypyc = Path(sys.executable).with_name("mypyc")
    command = [str(mypyc)] if mypyc.exists() else [sys.executable, "-m", "mypyc"]
    result = subprocess.run(
        [*command, *(f"asyncdex/{module}" for module in COMPILED_MODULES)],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mypyc failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    shutil.rmtree(out / "build", ignore_errors=True)
    stamp.write_text(wanted)
    return out


def compiled_env(build_dir: Path | None = None) -> dict[str, str]:
    """An environment whose Python imports the compiled engine."""
    env = dict(os.environ)
    path = str(compiled_path(build_dir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    return env
