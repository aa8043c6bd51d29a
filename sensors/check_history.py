"""Asset check executions read incrementally by record id, and the run states they depend on.

Dagster keeps one row per asset check execution (the table behind the UI's check history): a
*planned* row for each partition a run targets, filled in with the evaluation when the check
runs, or a new row when a multi-window run evaluates the whole range at once. A day backfill
therefore leaves 288 planned rows per check that are never evaluated. The alert sensors need the
rows after their cursor, oldest first, and the event of the evaluated ones only:
:func:`check_rows_after`, one index range scan a page.

Dagster 1.13 has no public reader of these rows (``DagsterInstance`` has none; the event log
storage's ``get_asset_check_execution_history`` is not public either, and pages newest first,
deserializing every row), so the query is ``check_executions_after`` of ``resources/dagster_private.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

from resources.dagster_private import check_executions_after


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


def _evaluation(event_json: str | None) -> dg.AssetCheckEvaluation | None:
    if not event_json:
        return None
    entry = dg.deserialize_value(event_json, dg.EventLogEntry)
    data = entry.dagster_event.event_specific_data if entry.dagster_event else None
    return data if isinstance(data, dg.AssetCheckEvaluation) else None


def check_rows_after(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, after: int, limit: int
) -> list[CheckRow]:
    """Up to ``limit`` execution rows of ``check_key`` with id above ``after``, oldest first.

    Only evaluated rows have their event deserialized; a planned row costs its four columns.
    """
    return [
        CheckRow(row.id, row.run_id, row.created, _evaluation(row.event))
        for row in check_executions_after(instance, check_key, after, limit)
    ]


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
