"""Runs on the real test cluster: launch latency, a run worker's resources, window close to commit.

Installs the chart on the cluster of ``testkit/cluster/`` (``up.sh``, images from
``build-images.sh``), then:

1. the size of each image;
2. ``--runs`` window runs of ``five_minute_job`` launched one at a time through the webserver's
   GraphQL: launch (the run's creation) to ``RUN_START`` and to ``RUN_SUCCESS``, and the run Job's
   Pod from creation to its container running, p50 and p99;
3. each run worker's peak memory (its pod's memory cgroup, ``memory.max_usage_in_bytes``) and CPU
   (``cpuacct.usage`` sampled every 0.25 s: the busiest second and the run's average), against the
   chart's requests and limits for runs;
4. with ``--live-minutes M``: the release left running M minutes with its 5-minute schedule, and for
   each window that closed meanwhile, the time from the window's end to the commit of its features
   (``partition_log``), the figure ``bench_live_latency.py`` gives for ``scripts/start.sh``.

    .venv/bin/python benchmarks/bench_k8s_runs.py [--sizes] [--runs 20] [--day-run] [--live-minutes 0] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from resources.storage.windows import WINDOW  # noqa: E402
from testkit.cluster.release import Cluster, Release, partition_key  # noqa: E402

CGROUP = Path("/sys/fs/cgroup")


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def pod_cgroup(controller: str, uid: str) -> Path | None:
    """The pod-level cgroup directory of a pod (cgroup v1, kubelet's cgroupfs layout)."""
    found = list((CGROUP / controller / "kubepods").glob(f"**/pod{uid}"))
    return found[0] if found else None


class Sampler(threading.Thread):
    """Samples a run pod's cgroup CPU counter while it runs; keeps the busiest second."""

    def __init__(self, uid: str):
        super().__init__(daemon=True)
        self.uid, self.stop = uid, threading.Event()
        self.samples: list[tuple[float, int]] = []  # (monotonic s, cpu ns)

    def run(self) -> None:
        cg = None  # found once the kubelet made it; a recursive glob is not repeated every sample
        while not self.stop.is_set():
            cg = cg or pod_cgroup("cpuacct", self.uid)
            if cg is not None:
                try:
                    self.samples.append((time.monotonic(), int((cg / "cpuacct.usage").read_text())))
                except OSError:
                    pass
            time.sleep(0.25)

    def peak_cores(self) -> float:
        best = 0.0
        for i, (t0, c0) in enumerate(self.samples):
            for t1, c1 in self.samples[i + 1 :]:
                if t1 - t0 >= 1.0:
                    best = max(best, (c1 - c0) / 1e9 / (t1 - t0))
                    break
        return best


def _ts(value: float | None) -> float:
    assert value is not None
    return float(value)


def watch_run(release: Release, run_id: str, timeout_s: float = 1200) -> dict[str, float]:
    """Wait for a run while sampling its pod; its latencies and its worker's peak resources."""
    sampler = None
    deadline = time.monotonic() + 120
    while sampler is None and time.monotonic() < deadline:
        pod = release.run_pod(run_id)
        if pod is not None:
            sampler = Sampler(pod.metadata.uid)
            sampler.start()
        else:
            time.sleep(0.1)
    run = release.wait_run(run_id, timeout_s=timeout_s)
    assert run["status"] == "SUCCESS", run
    assert sampler is not None
    # The pod exits a moment after the run's end; its cgroup holds the whole run's peak.
    while (pod := release.run_pod(run_id)) is not None and pod.status.phase == "Running":
        time.sleep(0.25)
    sampler.stop.set()
    sampler.join()
    assert pod is not None
    created = _ts(run["creationTime"])
    state = pod.status.container_statuses[0].state
    started_at = (state.terminated or state.running).started_at
    figures = {
        "to_start": _ts(run["startTime"]) - created,
        "to_success": _ts(run["endTime"]) - created,
        "pod_start": (started_at - pod.metadata.creation_timestamp).total_seconds(),
    }
    memory = pod_cgroup("memory", pod.metadata.uid)
    if memory is not None:
        figures["peak_mib"] = int((memory / "memory.max_usage_in_bytes").read_text()) / 2**20
    if len(sampler.samples) >= 2:
        (t0, c0), (t1, c1) = sampler.samples[0], sampler.samples[-1]
        figures["mean_cores"] = (c1 - c0) / 1e9 / max(t1 - t0, 1e-9)
        figures["peak_cores"] = sampler.peak_cores()
    return figures


def measure_runs(release: Release, count: int) -> dict[str, object]:
    """``count`` window runs one after another; latencies and each worker's resources."""
    now = datetime.now(UTC).replace(tzinfo=None)
    first = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    seen: dict[str, list[float]] = {}
    for i in range(count):
        key = partition_key(first + i * WINDOW)
        figures = watch_run(release, release.launch_window(key), timeout_s=600)
        for name, value in figures.items():
            seen.setdefault(name, []).append(value)
        print(f"run {i + 1}/{count} {key}: {json.dumps({k: round(v, 2) for k, v in figures.items()})}", flush=True)

    def summary(samples: list[float]) -> dict[str, float]:
        return {
            "p50": round(statistics.median(samples), 2),
            "p99": round(percentile(samples, 99), 2),
            "max": round(max(samples), 2),
        }

    return {
        "runs": count,
        "launch_to_run_start_s": summary(seen["to_start"]),
        "launch_to_run_success_s": summary(seen["to_success"]),
        "pod_created_to_container_started_s": summary(seen["pod_start"]),
        "run_worker_peak_memory_mib": summary(seen.get("peak_mib", [0.0])),
        "run_worker_busiest_second_cores": summary(seen.get("peak_cores", [0.0])),
        "run_worker_mean_cores": summary(seen.get("mean_cores", [0.0])),
    }


def measure_day_run(release: Release) -> dict[str, float]:
    """One run over a whole day of windows (what a day of a backfill is): its worker's peak."""
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    run_id = release.launch_range(partition_key(day), partition_key(day + timedelta(days=1) - WINDOW))
    return {k: round(v, 2) for k, v in watch_run(release, run_id, timeout_s=1800).items()}


def measure_live(release: Release, minutes: float) -> dict[str, object]:
    """Leave the release running; window end to features commit for the windows that closed."""
    began = datetime.now(UTC).replace(tzinfo=None)
    time.sleep(minutes * 60)
    rows = release.warehouse_query(
        "SELECT window_start, committed_at FROM partition_log WHERE asset = 'ml_features_materialized' "
        "AND window_start >= %s",
        began,
    )
    latencies = [(committed - (start + timedelta(minutes=5))).total_seconds() for start, committed in rows]
    latencies = [s for s in latencies if s > 0]
    return {
        "minutes": minutes,
        "windows": len(latencies),
        "window_end_to_committed_s": {"median": round(statistics.median(latencies), 1), "max": round(max(latencies), 1)}
        if latencies
        else None,
    }


def image_sizes(cluster: Cluster) -> dict[str, dict[str, int]]:
    """Each image's size in MB: docker's (uncompressed) and what a registry stores (gzip of the
    layers, i.e. what a node pulls)."""
    env = {**os.environ, "DOCKER_HOST": cluster.env["DOCKER_HOST"]}
    sizes = {}
    for image in ("crypto-data-platform", "crypto-data-platform-gateway"):
        tag = f"{image}:{os.environ.get('CLUSTER_IMAGE_TAG', 'ci')}"
        out = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE, env=env)
        gzip = subprocess.run(["gzip", "-1"], stdin=save.stdout, capture_output=True, check=True)
        save.wait()
        sizes[image] = {
            "uncompressed_mb": round(int(out.stdout.strip()) / 1e6),
            "gzip_mb": round(len(gzip.stdout) / 1e6),
        }
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--day-run", action="store_true", help="also one run over a whole day of windows")
    parser.add_argument("--live-minutes", type=float, default=0.0)
    parser.add_argument("--sizes", action="store_true", help="also each image's size, uncompressed and gzipped")
    parser.add_argument("--set", action="append", default=[], help="a helm --set for the release (repeatable)")
    args = parser.parse_args()
    cluster = Cluster.load()
    if cluster is None:
        raise SystemExit("no test cluster: run testkit/cluster/up.sh and build-images.sh first")
    results: dict[str, object] = {"images": image_sizes(cluster)} if args.sizes else {}
    release = Release(cluster)
    try:
        results["helm_sets"] = args.set
        results["helm_install_s"] = round(release.install(*(a for kv in args.set for a in ("--set", kv))), 1)
        release.wait_location_loaded()
        release.stop_sensor("gap_healing_sensor")
        release.wait_idle()
        if args.runs:
            results["window_runs"] = measure_runs(release, args.runs)
        if args.day_run:
            results["day_run"] = measure_day_run(release)
        if args.live_minutes:
            results["live"] = measure_live(release, args.live_minutes)
    finally:
        try:
            release.uninstall()
        finally:
            release.destroy()
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
