"""Tests and benchmarks share code only through ``testkit/``: neither imports the other, and testkit imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"tests": {"benchmarks"}, "benchmarks": {"tests"}, "testkit": {"tests", "benchmarks"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_tests_benchmarks_and_testkit_do_not_import_each_other():
    crossings = [
        f"{path.relative_to(ROOT)} imports {package}"
        for folder, forbidden in FORBIDDEN.items()
        for path in sorted((ROOT / folder).rglob("*.py"))
        for package in sorted(_imported_packages(path) & forbidden)
    ]
    assert crossings == [], "move what both need to testkit/"
