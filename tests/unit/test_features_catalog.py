"""The feature catalog: its rules, the table it declares, its generated documentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crypto_assets.features import docs
from resources.storage.feature_specs import (
    FAMILIES,
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    FEATURES,
    PRICE_LOOKBACK_WINDOWS,
    catalog_records,
    features_in_family,
)
from resources.storage.schema import METADATA
from resources.storage.schema import ml_features_materialized as FEATURES_TABLE

ROOT = Path(__file__).resolve().parents[2]


def test_catalog_has_at_least_150_unique_documented_features() -> None:
    assert len(FEATURES) >= 150
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    for spec in FEATURES:
        assert len(spec.name) <= 64 and spec.name.isidentifier() and spec.name == spec.name.lower()
        assert len(spec.description) > 15 and spec.unit, spec.name
        assert spec.family in FAMILIES
    assert all(features_in_family(family) for family in FAMILIES), "every family has features"
    assert len(features_in_family("rolling")) == 145, "all 29 Alpha158 rolling operators x 5 windows"
    assert PRICE_LOOKBACK_WINDOWS == 289, "a day of returns plus the window itself"


def test_the_table_has_exactly_the_catalogued_columns() -> None:
    assert METADATA.tables["ml_features_materialized"] is FEATURES_TABLE
    assert [c.name for c in FEATURES_TABLE.columns] == [
        "symbol",
        "timestamp",
        "price",
        *FEATURE_NAMES,
        "feature_set_version",
    ]
    assert [c.name for c in FEATURES_TABLE.primary_key.columns] == ["symbol", "timestamp"]
    assert len(FEATURE_SET_VERSION) <= 32 and FEATURE_SET_VERSION.startswith("1.")


def test_records_for_the_api() -> None:
    records = catalog_records()
    assert [r["name"] for r in records] == list(FEATURE_NAMES)
    assert set(records[0]) == {"name", "family", "description", "inputs", "lookback_windows", "unit"}


def test_docs_features_md_is_up_to_date() -> None:
    assert docs.main(["--check"]) == 0, "docs/features.md is stale: run `python -m crypto_assets.features.docs`"
    text = (ROOT / "docs" / "features.md").read_text()
    assert all(f"`{name}`" in text for name in FEATURE_NAMES)


def test_docs_check_fails_when_stale(tmp_path) -> None:
    stale = tmp_path / "features.md"
    stale.write_text("old")
    assert docs.main(["--check", "--path", str(stale)]) == 1
    assert docs.main(["--path", str(stale)]) == 0 and docs.main(["--check", "--path", str(stale)]) == 0


def test_catalog_and_computation_import_without_dagster() -> None:
    code = (
        "import sys; import resources.storage.feature_specs, crypto_assets.features.compute, "
        "crypto_assets.features.io, crypto_assets.features.docs; "
        "assert 'dagster' not in sys.modules, 'dagster was imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_sparse_features_are_the_only_nulls_on_complete_history() -> None:
    from resources.storage.feature_specs import SPARSE_FEATURES
    from tests.unit.test_features_reference import WARMUP, features_for, random_prices

    assert SPARSE_FEATURES < set(FEATURE_NAMES) and "sent_count_24h" not in SPARSE_FEATURES
    prices = random_prices(gaps=0, flat=False, windows=WARMUP + 24)
    prices["volume"] = prices["volume"].clip(lower=1.0)  # a zero-volume bar makes CORD's volume ratio undefined
    features = features_for(prices)
    dense = [n for n in FEATURE_NAMES if n not in SPARSE_FEATURES]
    assert features[dense].notna().all().all(), features[dense].isna().sum().loc[lambda s: s > 0].to_dict()
    assert features[sorted(SPARSE_FEATURES - {"sent_count_surge_1h"})].isna().all().all()
