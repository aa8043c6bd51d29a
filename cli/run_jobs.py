"""Delete the Kubernetes Jobs (and their Pods) of an uninstalled release's runs:
``python -m cli.run_jobs``.

``K8sRunLauncher`` creates one Job per run; Helm did not make them, so ``helm uninstall`` would
leave them (and a run in progress keeps its Pod). The chart runs this as a post-delete hook Job:
Helm has deleted the release's Deployments by then, and this deletes every run Job of the release
(again each second, for one a terminating daemon launched last) until the daemon's Pods are gone and
no run Job or Pod is left. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from kubernetes import client as k8s
from kubernetes import config as k8s_config


def run_selector(release: str) -> str:
    """The label selector of a release's run Jobs and Pods (the chart's run labels and Dagster's component)."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component=run_worker"


def daemon_selector(release: str) -> str:
    """The label selector of a release's daemon Pods (the chart's component labels)."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component=daemon"


def delete_run_jobs(namespace: str, release: str, release_namespace: str, timeout_s: float) -> dict[str, object]:
    """Delete the release's run Jobs in ``namespace`` until none is left and no daemon can launch one."""
    batch, core = k8s.BatchV1Api(), k8s.CoreV1Api()
    selector = run_selector(release)
    deleted: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = batch.list_namespaced_job(namespace, label_selector=selector).items
        for job in jobs:
            try:
                batch.delete_namespaced_job(
                    job.metadata.name, namespace, propagation_policy="Background", grace_period_seconds=5
                )
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
            deleted.add(job.metadata.name)
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        daemons = core.list_namespaced_pod(release_namespace, label_selector=daemon_selector(release)).items
        if not jobs and not pods and not daemons:
            return {"namespace": namespace, "deleted_jobs": sorted(deleted)}
        if time.monotonic() > deadline:
            left = [o.metadata.name for o in (*jobs, *pods, *daemons)]
            raise SystemExit(f"still present after {timeout_s:.0f} s: {', '.join(left)}")
        time.sleep(1)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cli.run_jobs --namespace NS --release NAME [--release-namespace NS] [--timeout S]``."""
    parser = argparse.ArgumentParser(prog="python -m cli.run_jobs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True, help="namespace of the runs' Jobs")
    parser.add_argument("--release", required=True, help="the Helm release whose runs' Jobs to delete")
    parser.add_argument("--release-namespace", default=None, help="the release's namespace (default: --namespace)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for the Pods to go")
    args = parser.parse_args(argv)
    k8s_config.load_incluster_config()
    report = delete_run_jobs(args.namespace, args.release, args.release_namespace or args.namespace, args.timeout)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
