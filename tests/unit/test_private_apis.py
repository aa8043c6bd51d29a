"""Private APIs of other libraries are used only behind a pin: Dagster's through two modules, pymysql's within a minor release."""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("api", "benchmarks", "cli", "crypto_assets", "resources", "scripts", "sensors", "testkit", "tests")
WRAPPERS = ("resources/dagster_private.py", "testkit/dagster_private.py")
PRIVATE_DAGSTER = re.compile(r"^\s*(?:from|import)\s+dagster\._|\bdg\._[a-z]", re.MULTILINE)


def _requirements() -> dict[str, Requirement]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {r.name.lower(): r for r in map(Requirement, dependencies)}


def test_private_dagster_names_are_imported_only_by_the_two_wrappers():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in SOURCES
        for path in sorted((ROOT / folder).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in WRAPPERS and PRIVATE_DAGSTER.search(path.read_text())
    ]
    assert offenders == [], "import private Dagster names from resources/ or testkit/dagster_private.py"


def test_every_wrapped_name_is_there_on_the_pinned_release():
    pin = _requirements()["dagster"]
    assert str(pin.specifier).startswith("==") and version("dagster") in pin.specifier
    for wrapper in WRAPPERS:
        module = importlib.import_module(wrapper.removesuffix(".py").replace("/", "."))
        assert module.__all__ and all(getattr(module, name) is not None for name in module.__all__)


def test_pymysql_is_held_to_the_tested_minor_release():
    """api/mysql_binary.py uses pymysql's private Connection internals."""
    pin = _requirements()["pymysql"]
    assert any(spec.operator == "<" for spec in pin.specifier) and version("pymysql") in pin.specifier
