"""What a user sees of a started platform, read through its public interfaces: the runs and the
latest evaluation of every asset check (GraphQL against the webserver), and the macro series and
the newest feature window (the gateway). The first-hour test asserts on it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

# Daily macro features the newest window must carry once the series are filled (the CPI ones
# need a year or two monthly observations, more than a fresh platform's horizon holds).
DAILY_MACRO_FEATURES = ("macro_dgs10", "macro_dff", "macro_vix", "macro_sp500", "macro_gold", "macro_term_spread")

_CHECKS = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
_LATEST = """query($key: AssetKeyInput!, $name: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $name, limit: 1) {
    status evaluation { success description }
  }
}"""
_RUNS = """{ runsOrError(limit: 1000) { ... on Runs { results { runId status tags { key value } } } } }"""


@dataclass
class Health:
    """The platform's state as the UI and the gateway show it."""

    runs: Counter[str] = field(default_factory=Counter)
    runs_by_trigger: Counter[str] = field(default_factory=Counter)  # crypto/trigger: schedule, gap_healing
    failed_runs: list[str] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)  # "asset:check" -> latest status
    failing_checks: dict[str, str] = field(default_factory=dict)  # "asset:check" -> description
    macro_rows: int = 0
    newest_window: str | None = None
    newest_window_macro: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for a test's failure message."""
        return (
            f"runs {dict(self.runs)} by trigger {dict(self.runs_by_trigger)}; failed runs {self.failed_runs}; failing checks {self.failing_checks}; "
            f"macro rows {self.macro_rows}; newest feature window {self.newest_window} with {self.newest_window_macro}"
        )


def _graphql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = client.post("/graphql", json={"query": query, "variables": variables or {}}).json()
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def platform_health(ui_url: str, api_url: str) -> Health:
    """Read :class:`Health` from the webserver at ``ui_url`` and the gateway at ``api_url``."""
    health = Health()
    with httpx.Client(base_url=ui_url, timeout=60) as ui:
        for run in _graphql(ui, _RUNS)["runsOrError"]["results"]:
            health.runs[run["status"]] += 1
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            health.runs_by_trigger[tags.get("crypto/trigger", "other")] += 1
            if run["status"] == "FAILURE":
                health.failed_runs.append(run["runId"])
        for node in _graphql(ui, _CHECKS)["assetNodes"]:
            checks = node["assetChecksOrError"].get("checks") or []
            for check in checks:
                key = {"path": node["assetKey"]["path"]}
                name = f"{'/'.join(key['path'])}:{check['name']}"
                executions = _graphql(ui, _LATEST, {"key": key, "name": check["name"]})["assetCheckExecutions"]
                if not executions:
                    health.checks[name] = "NOT_EVALUATED"
                    continue
                latest = executions[0]
                health.checks[name] = latest["status"]
                evaluation = latest["evaluation"] or {}
                if latest["status"] not in ("SUCCEEDED", "IN_PROGRESS") or evaluation.get("success") is False:
                    health.failing_checks[name] = evaluation.get("description") or latest["status"]
    with httpx.Client(base_url=api_url, timeout=60) as api:
        macro = api.get("/v1/macro", params={"limit": 10000})
        health.macro_rows = macro.json()["count"] if macro.status_code == 200 else 0
        start = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        features = api.get(
            "/v1/features", params={"symbols": "BTC", "start": start, "columns": ",".join(DAILY_MACRO_FEATURES)}
        )
        rows = features.json()["data"] if features.status_code == 200 else []
        if rows:
            newest = max(rows, key=lambda row: row["timestamp"])
            health.newest_window = newest["timestamp"]
            health.newest_window_macro = {name: newest.get(name) for name in DAILY_MACRO_FEATURES}
    return health
