"""A features table and a Delta lake created before the derivatives features gain their columns in place."""

from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa
from deltalake import write_deltalake

from resources.storage.feature_specs import features_in_family
from resources.storage.lake import DATE_COLUMN, FeatureLake, lake_schema, to_lake_table
from resources.storage.schema import FEATURES
from resources.storage.warehouse import Warehouse
from tests.integration.test_api_support import T0, WINDOW, feature_frame

NEW = [spec.name for spec in features_in_family("derivatives")]


def _old_features_table() -> sa.Table:
    """The features table as declared before the derivatives family."""
    kept = [c for c in FEATURES.table.columns if c.name not in NEW]
    return sa.Table(
        FEATURES.name,
        sa.MetaData(),
        *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in kept),
    )


def test_an_existing_features_table_and_lake_gain_the_derivatives_columns(db_url: str, tmp_path) -> None:
    old = _old_features_table()
    old_rows = feature_frame([T0])[[c.name for c in old.columns]]
    engine = sa.create_engine(db_url)
    old.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(old.insert(), old_rows.astype(object).where(old_rows.notna(), None).to_dict("records"))
    engine.dispose()
    lake = FeatureLake(str(tmp_path / "lake"))
    write_deltalake(
        lake.uri,
        to_lake_table(pa.Table.from_pandas(old_rows, preserve_index=False), lake_schema(old)),
        mode="overwrite",
        partition_by=[DATE_COLUMN],
    )

    wh = Warehouse(db_url)  # ensure_schema: ALTER TABLE ... ADD COLUMN for each new feature
    columns = {c["name"] for c in sa.inspect(wh.engine).get_columns(FEATURES.name)}
    assert set(NEW) <= columns
    stored = wh.read_frame(sa.select(FEATURES.table))
    assert len(stored) == len(old_rows) and stored[NEW].isna().all().all(), "older rows kept, NULL in the new columns"

    later = T0 + WINDOW
    frame = feature_frame([later])
    wh.write_partition(
        FEATURES.name, frame, start=later, end=later + WINDOW, run_id="new", code_version="2", time_column="timestamp"
    )
    assert lake.sync(wh, later, later + WINDOW, "sync").rows == len(frame)

    table = lake.table().to_pyarrow_table().to_pandas()
    assert set(NEW) <= set(table.columns) and len(table) == len(old_rows) + len(frame)
    before = table.loc[table["timestamp"].dt.tz_localize(None) == T0]
    after = table.loc[table["timestamp"].dt.tz_localize(None) == later].sort_values("symbol")
    assert before[NEW].isna().all().all(), "rows written before the new columns read them as null"
    assert after[NEW].to_numpy().tolist() == frame.sort_values("symbol")[NEW].to_numpy().tolist()
    Warehouse(db_url)  # a second start finds nothing to add
