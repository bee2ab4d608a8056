"""The committed page in ``src/asyncdex/web/dist`` is exactly what the pinned toolchain builds.

Like the contract artifacts: the rebuild needs node and the page's npm packages (``npm ci``
in ``src/asyncdex/web``, which ``./run.sh test`` does); without them it is skipped locally
and fails under CI (``CI`` set), so CI cannot pass with a stale build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from asyncdex.web import load_page

WEB = Path(__file__).resolve().parents[3] / "src" / "asyncdex" / "web"


def web_toolchain() -> str:
    """The node binary, once the page's pinned packages are installed (else skip or fail)."""
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "vite" / "package.json").is_file():
        if os.environ.get("CI"):
            pytest.fail("CI needs node and the page's npm packages: npm ci in src/asyncdex/web")
        pytest.skip("node or src/asyncdex/web/node_modules missing; run npm ci there")
    return node


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_rebuilding_gives_the_committed_page_byte_for_byte(tmp_path: Path) -> None:
    node = web_toolchain()
    out = tmp_path / "dist"
    subprocess.run(
        [node, "node_modules/vite/bin/vite.js", "build", "--outDir", str(out), "--emptyOutDir"],
        cwd=WEB,
        check=True,
        capture_output=True,
        timeout=300,
    )
    fresh = files_under(out)
    committed = files_under(WEB / "dist")
    assert sorted(fresh) == sorted(committed), "dist/ is stale: npm run build in src/asyncdex/web"
    for name, body in fresh.items():
        assert body == committed[name], f"dist/{name} is stale: run npm run build"


def test_the_toolchain_is_pinned_exactly() -> None:
    manifest = json.loads((WEB / "package.json").read_text())
    lock = json.loads((WEB / "package-lock.json").read_text())
    for name, version in manifest["devDependencies"].items():
        assert version[0].isdigit(), f"{name} must be pinned to one version, not {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version


def test_the_node_serves_what_was_built() -> None:
    files = load_page()
    index = files["/"][0].decode()
    assets = [path for path in files if path.startswith("/assets/")]
    assert any(path.endswith(".js") for path in assets)
    for path in assets:
        assert path in index  # the page names each asset it needs, by content hash
    # nothing is loaded from another origin
    assert "http://" not in index and "https://" not in index
