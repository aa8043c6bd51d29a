"""Private APIs of other libraries are used only behind a pin: Dagster's through two modules, pymysql's within a minor release."""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import dagster as dg
from packaging.requirements import Requirement

from resources.dagster_private import (
    check_executions_after,
    delete_check_executions,
    kv_get,
    kv_set,
    run_shards_dir,
    storage_database_url,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("api", "benchmarks", "cli", "crypto_assets", "resources", "scripts", "sensors", "testkit", "tests")
WRAPPERS = ("resources/dagster_private.py", "testkit/dagster_private.py")
PRIVATE_DAGSTER = re.compile(r"^\s*(?:from|import)\s+dagster\._|\bdg\._[a-z]", re.MULTILINE)
# Dagster's storages and their methods (no @public) the platform calls: resources/dagster_private.py wraps them.
PRIVATE_STORAGE = re.compile(
    r"\.index_connection\(|\b[gs]et_cursor_values\(|\.path_for_shard\(|\.(?:run|event_log)_storage\b|\.all_logs\("
)
PLATFORM = ("api", "cli", "crypto_assets", "resources", "sensors")


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


def test_the_platform_calls_private_storage_methods_only_through_the_wrapper():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in PLATFORM
        for path in sorted((ROOT / folder).rglob("*.py"))
        if str(path.relative_to(ROOT)) != WRAPPERS[0] and PRIVATE_STORAGE.search(path.read_text())
    ]
    assert offenders == [], "call Dagster's storages through resources/dagster_private.py"


STATE = {"fail": False}


@dg.asset
def thing() -> int:
    if STATE["fail"]:
        raise ValueError("no thing this time")
    return 1


@dg.asset_check(asset=thing)
def positive(thing: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=thing > 0)


def test_check_executions_are_read_after_an_id_oldest_first_and_deleted_by_run():
    key = dg.AssetCheckKey(dg.AssetKey("thing"), "positive")
    with dg.instance_for_test() as instance:
        runs = [dg.materialize([thing, positive], instance=instance).run_id for _ in range(2)]
        STATE["fail"] = True
        try:
            runs.append(dg.materialize([thing, positive], instance=instance, raise_on_error=False).run_id)
        finally:
            STATE["fail"] = False
        rows = check_executions_after(instance, key, -1, 10)
        assert [row.run_id for row in rows] == runs and rows == sorted(rows)
        assert all(row.event and "AssetCheckEvaluation" in row.event for row in rows[:2])
        assert rows[2].event is None  # planned: its run failed before the check ran
        assert all(row.created > 0 for row in rows)
        assert check_executions_after(instance, key, rows[0].id, 1) == rows[1:2]
        assert delete_check_executions(instance, runs[:2]) == 2
        assert check_executions_after(instance, key, -1, 10) == rows[2:]


def test_the_key_value_store_keeps_the_last_value_written():
    with dg.instance_for_test() as instance:
        assert kv_get(instance, "crypto/test") is None
        kv_set(instance, "crypto/test", "1")
        kv_set(instance, "crypto/test", "2")
        assert kv_get(instance, "crypto/test") == "2"


def test_the_per_run_event_log_files_are_found_on_sqlite(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run_id = dg.materialize([thing], instance=instance).run_id
        shards = run_shards_dir(instance)
        assert shards is not None and (shards / f"{run_id}.db").is_file()
        assert storage_database_url(instance) is None  # SQLite: no server database to complete


def test_every_wrapped_name_is_there_on_the_pinned_release():
    pin = _requirements()["dagster"]
    assert str(pin.specifier).startswith("==") and version("dagster") in pin.specifier
    for wrapper in WRAPPERS:
        module = importlib.import_module(wrapper.removesuffix(".py").replace("/", "."))
        assert module.__all__ and all(getattr(module, name) is not None for name in module.__all__)
