"""The configuration page's settings table is the one the settings generate, and the settings are the
only reader of the environment."""

import re
import subprocess
import sys
from pathlib import Path

from cli.settings_doc import PAGE, page_table, settings_table
from resources.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
READERS = re.compile(r"os\.environ|getenv\(|EnvVar\(")


def test_the_configuration_table_is_generated_from_the_settings():
    assert page_table(PAGE.read_text("utf-8")) == settings_table(), "run: python -m cli.settings_doc --write"


def test_every_setting_has_a_variable_and_a_description():
    for name, field in Settings.model_fields.items():
        assert field.alias and field.alias == field.alias.upper(), name
        assert field.description, name


def test_only_the_settings_read_the_environment():
    readers = {
        str(path.relative_to(ROOT))
        for package in ("api", "resources", "crypto_assets", "sensors", "cli")
        for path in (ROOT / package).rglob("*.py")
        if READERS.search(path.read_text("utf-8"))
    }
    # The settings read it; the Dagster resources name credentials' variables for Dagster to resolve.
    assert readers <= {"resources/config/settings.py", "resources/storage/dagster_resources.py"}


def test_the_command_prints_the_table():
    out = subprocess.run(
        [sys.executable, "-m", "cli.settings_doc"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == settings_table()


def test_the_chart_and_the_docs_name_only_declared_settings():
    declared = {field.alias for field in Settings.model_fields.values()}
    variable = re.compile(r"\b(?:CRYPTO|COINGECKO|GUARDIAN|REDDIT|FRED|YAHOO|AWS|REDIS)_[A-Z0-9_]+\b")
    files = [
        *(ROOT / "deploy").rglob("*.yaml"),
        *(ROOT / "deploy").rglob("*.tpl"),
        *(ROOT / "docs").glob("*.md"),
        ROOT / "README.md",
    ]
    named = {(str(p.relative_to(ROOT)), name) for p in files for name in variable.findall(p.read_text("utf-8"))}
    # The tests', benchmarks' and notebook's own variables (CRYPTO_TEST_MYSQL_URL, ...) may be named too.
    harness = [
        *(ROOT / "testkit").rglob("*.py"),
        *(ROOT / "benchmarks").glob("*.py"),
        *(ROOT / "examples").glob("*.ipynb"),
    ]
    declared |= {name for p in harness for name in variable.findall(p.read_text("utf-8"))}
    assert {(path, name) for path, name in named if name not in declared} == set()
