"""``docs/fairness.md`` runs as written: its Python blocks, in order, in one namespace.

They need no node (sealing and opening are pure), so this is a unit test. Any block in
another language fails it, so nothing on the page goes unchecked by accident.
"""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[3] / "docs" / "fairness.md"
_FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def test_the_python_blocks_run_and_open_what_they_seal() -> None:
    blocks = _FENCE.findall(PAGE.read_text(encoding="utf-8"))
    assert blocks, "the page lost its example"
    assert {language for language, _ in blocks} == {"python"}
    namespace: dict[str, object] = {}
    for _, code in blocks:
        exec(compile(code, str(PAGE), "exec"), namespace)
    assert namespace["opened"].signed == namespace["signed"]  # type: ignore[attr-defined]
