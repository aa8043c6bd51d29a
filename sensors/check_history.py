"""Asset check executions read incrementally by record id, and the run states they depend on.

Dagster keeps one row per asset check execution (the table behind the UI's check history): a
*planned* row for each partition a run targets, filled in with the evaluation when the check
runs, or a new row when a multi-window run evaluates the whole range at once. A day backfill
therefore leaves 288 planned rows per check that are never evaluated. The public reader
(``get_asset_check_execution_history``) pages newest first and deserializes every row's event;
the alert sensors need the opposite: the rows after their cursor, oldest first, and the event of
the evaluated ones only. :func:`check_rows_after` is that query, one index range scan a page.

It reads ``asset_check_executions`` through the event log storage's own connection: a private
table of Dagster, which is why the Dagster family is pinned to one release in ``pyproject.toml``
(the same table and columns serve SQLite, MySQL and Postgres instances).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa

from resources.dagster_private import AssetCheckExecutionRecordStatus, AssetCheckExecutionsTable

_PLANNED = AssetCheckExecutionRecordStatus.PLANNED.value


@dataclass(frozen=True)
class CheckRow:
    """One execution row: planned (``evaluation`` is None) or evaluated."""

    id: int
    run_id: str
    created: float
    evaluation: dg.AssetCheckEvaluation | None

    @property
    def planned(self) -> bool:
        """True while the row has no evaluation (in flight, or its run ended without one)."""
        return self.evaluation is None


def _timestamp(value: datetime | float | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def check_rows_after(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, after: int, limit: int
) -> list[CheckRow]:
    """Up to ``limit`` execution rows of ``check_key`` with id above ``after``, oldest first.

    Only evaluated rows have their event deserialized; a planned row costs its four columns.
    """
    table = AssetCheckExecutionsTable
    query = (
        sa.select(
            table.c.id, table.c.run_id, table.c.execution_status, table.c.create_timestamp, table.c.evaluation_event
        )
        .where(
            table.c.asset_key == check_key.asset_key.to_string(),
            table.c.check_name == check_key.name,
            table.c.id > after,
        )
        .order_by(table.c.id.asc())
        .limit(limit)
    )
    with instance.event_log_storage.index_connection() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(query).fetchall()
    result = []
    for row_id, run_id, status, created, event_json in rows:
        evaluation = None
        if status != _PLANNED and event_json:
            entry = dg.deserialize_value(event_json, dg.EventLogEntry)
            data = entry.dagster_event.event_specific_data if entry.dagster_event else None
            evaluation = data if isinstance(data, dg.AssetCheckEvaluation) else None
        result.append(CheckRow(int(row_id), run_id or "", _timestamp(created), evaluation))
    return result


class RunStates:
    """Whether runs are finished, looked up once per run per tick (in batches)."""

    def __init__(self, instance: dg.DagsterInstance):
        self._instance = instance
        self._finished: dict[str, bool] = {}
        self.lookups = 0

    def prefetch(self, run_ids: Iterable[str]) -> None:
        """Look up, in one query, the runs of ``run_ids`` not known yet."""
        wanted = sorted({r for r in run_ids if r and r not in self._finished})
        if not wanted:
            return
        self.lookups += 1
        records = self._instance.get_run_records(filters=dg.RunsFilter(run_ids=wanted))
        found: Mapping[str, bool] = {r.dagster_run.run_id: r.dagster_run.is_finished for r in records}
        for run_id in wanted:
            self._finished[run_id] = found.get(run_id, True)  # a deleted run will not evaluate anything

    def finished(self, run_id: str) -> bool:
        """True when the run ended (or no longer exists, or the row belongs to no run)."""
        if not run_id:
            return True
        if run_id not in self._finished:
            self.prefetch([run_id])
        return self._finished[run_id]
