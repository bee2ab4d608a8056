"""``docs/consensus.md`` runs as written: each Python block prints what the page says it prints.

The page says ``prints `...` `` right after each block; the block is run in a fresh namespace
with its output captured, and that text must be the first line it printed.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[3] / "docs" / "consensus.md"
_EXAMPLE = re.compile(r"^```python\n(.*?)^```\n\nprints `(.*?)`", re.MULTILINE | re.DOTALL)


def test_every_python_block_prints_what_the_page_says() -> None:
    text = PAGE.read_text(encoding="utf-8")
    examples = _EXAMPLE.findall(text)
    assert len(examples) == text.count("```python"), "a Python block without its output"
    assert examples, "the page lost its examples"
    for code, expected in examples:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, str(PAGE), "exec"), {"__name__": "__main__"})
        assert output.getvalue().splitlines()[0] == expected
