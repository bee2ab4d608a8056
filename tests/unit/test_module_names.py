"""Test modules outside packages have unique names.

Without ``__init__.py`` pytest imports a test file by its bare name (rootdir insertion), so two
such files of one name in different folders break collection of the whole suite: the second
one is refused as an "import file mismatch". This catches it before CI does.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _import_name(path: Path) -> str:
    """The module name pytest gives ``path``: dotted through the packages that hold it."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def test_every_test_module_imports_under_its_own_name() -> None:
    names: defaultdict[str, list[Path]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name == "__init__.py" or path.name == "conftest.py":
            continue
        names[_import_name(path)].append(path.relative_to(TESTS))
    clashes = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not clashes, clashes
