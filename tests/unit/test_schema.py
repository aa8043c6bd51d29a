"""The table contract: every fact it states holds for its tables, and it needs nothing above it."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from resources.storage.feature_specs import FEATURE_NAMES
from resources.storage.schema import CONTRACTS, CONTRACTS_BY_NAME, FEATURES, MACRO, METADATA, contract_of
from resources.storage.windows import DAY, WINDOW, absent_windows, window_floor

ROOT = Path(__file__).resolve().parents[2]


def test_every_contract_names_columns_of_its_table() -> None:
    assert len({c.name for c in CONTRACTS}) == len({c.dataset for c in CONTRACTS}) == len(CONTRACTS)
    for contract in CONTRACTS:
        columns = set(contract.table.columns.keys())
        assert METADATA.tables[contract.name] is contract.table
        assert contract.time_column in columns, contract.name
        assert set(contract.key) <= columns and set(contract.order) <= columns, contract.name
        assert set(contract.list_columns) <= columns, contract.name
        assert contract.symbol_column is None or contract.symbol_column in columns, contract.name
        assert set(contract.lookbacks) <= set(CONTRACTS_BY_NAME), contract.name
        assert contract_of(contract.name) is contract
    assert contract_of("partition_log") is None


def test_the_features_table_is_declared_from_the_specs_alone() -> None:
    assert [c.name for c in FEATURES.table.columns][3:-1] == list(FEATURE_NAMES)
    code = (
        "import sys; from resources.storage.schema import METADATA; "
        "assert 'ml_features_materialized' in METADATA.tables; "
        "assert not {'dagster', 'crypto_assets', 'api', 'sensors'} & set(sys.modules), 'imported from above'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_daily_tables_bound_their_dates() -> None:
    start = datetime(2026, 11, 20)
    assert MACRO.daily and not FEATURES.daily
    assert MACRO.time_bounds(start, start + DAY) == (start.date(), (start + DAY).date())
    assert FEATURES.time_bounds(start, start + DAY) == (start, start + DAY)
    assert MACRO.window_end(start) == start + DAY and FEATURES.window_end(start) == start + WINDOW


def test_absent_windows_and_the_window_floor() -> None:
    start = datetime(2026, 11, 20, 12, 0)
    committed = [pd.Timestamp(start, tz="UTC"), start + 2 * WINDOW]
    assert absent_windows(committed, start, start + 4 * WINDOW) == [start + WINDOW, start + 3 * WINDOW]
    assert window_floor(start + timedelta(minutes=7, seconds=3)) == start + WINDOW
