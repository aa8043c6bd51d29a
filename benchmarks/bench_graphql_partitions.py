"""How long the webserver's GraphQL takes to return an asset's partition status, by horizon.

For a 30-, 90- and 365-day ``CRYPTO_PARTITION_START`` horizon (8.6 k, 26 k and 105 k 5-minute
partitions) this seeds a fresh local instance (the SQLite storage of ``deploy/local/dagster.yaml``)
with a materialization of ``price_data_real`` for every window of the horizon but one a day (so
the status has a range a day, as real gaps make), starts ``dagster-webserver`` over the workspace,
and times the query the asset page sends for the partition bar: ``assetPartitionStatuses`` and
``partitionStats``. "cold" is the first query after start (it builds the asset status cache from
the event log); "warm" is the median of the next ones.

The materializations are written as the instance writes runless ones (``EventLogEntry`` rows made
by the storage's own insert statement), in batches, because storing 105 k events one at a time
takes a quarter of an hour.

Run: ``.venv/bin/python benchmarks/bench_graphql_partitions.py [--days 30 90 365] [--repeat 5]``
"""

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from resources.config.settings import parse_partition_start  # noqa: E402
from testkit.dagster_private import StepMaterializationData  # noqa: E402
from testkit.fakes.loopback import free_port  # noqa: E402
from testkit.webserver import Webserver, platform_env  # noqa: E402

QUERY = """
query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
    partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { startKey endKey status } } }
} } }
"""
KEY_FORMAT = "%Y-%m-%d-%H:%M"
ASSET = dg.AssetKey("price_data_real")


def seed(dagster_home: str, days: int) -> tuple[int, float]:
    """Materialize every window of the horizon but the 12:00 one of each day; (events, seconds)."""
    began = time.perf_counter()
    start = parse_partition_start(f"{days}d")
    windows = days * 288  # up to today's midnight
    keys = [(start + i * timedelta(minutes=5)).strftime(KEY_FORMAT) for i in range(windows) if i % 288 != 144]
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(ASSET, partition=keys[0]))
        template = instance.fetch_materializations(ASSET, limit=1).records[0].event_log_entry
        storage = instance.event_log_storage
        entries = [
            template._replace(
                timestamp=template.timestamp + i * 1e-3,
                dagster_event=template.dagster_event._replace(
                    event_specific_data=StepMaterializationData(dg.AssetMaterialization(ASSET, partition=key))
                ),
            )
            for i, key in enumerate(keys[1:-1], start=1)
        ]
        with storage.index_connection() as conn:
            for offset in range(0, len(entries), 1000):
                conn.execute(storage.prepare_insert_event_batch(entries[offset : offset + 1000]))
        # The last one the ordinary way, so the asset's record points at its latest materialization.
        instance.report_runless_asset_event(dg.AssetMaterialization(ASSET, partition=keys[-1]))
    return len(keys), time.perf_counter() - began


def measure(days: int, repeat: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix=f"bench_{days}d_") as tmp:
        home = Path(tmp)
        env = platform_env(home, f"{days}d")
        events, seed_s = seed(env["DAGSTER_HOME"], days)
        web = Webserver(env, free_port(), home / "webserver.log")
        try:
            startup_s = web.wait_ready()
            timings = []
            for _ in range(repeat + 1):
                began = time.perf_counter()
                node = web.graphql(QUERY, {"path": ASSET.path})["assetNodeOrError"]
                timings.append(time.perf_counter() - began)
        finally:
            web.stop()
    stats = node["partitionStats"]
    assert stats["numMaterialized"] == events, (stats, events)
    return {
        "days": days,
        "partitions": stats["numPartitions"],
        "materialized": stats["numMaterialized"],
        "ranges": len(node["assetPartitionStatuses"]["ranges"]),
        "seed_s": seed_s,
        "startup_s": startup_s,
        "cold_s": timings[0],
        "warm_s": statistics.median(timings[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[30, 90, 365])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(days, args.repeat) for days in args.days]
    base = rows[0]
    print(
        f"{'horizon':>8} {'partitions':>10} {'materialized':>12} {'ranges':>6} {'cold s':>7} {'warm s':>7} "
        f"{'cold x':>6} {'warm x':>6}   (seed s, webserver start s)"
    )
    for row in rows:
        print(
            f"{row['days']:>7}d {row['partitions']:>10} {row['materialized']:>12} {row['ranges']:>6} "
            f"{row['cold_s']:>7.3f} {row['warm_s']:>7.3f} {row['cold_s'] / base['cold_s']:>6.1f} "
            f"{row['warm_s'] / base['warm_s']:>6.1f}   ({row['seed_s']:.1f}, {row['startup_s']:.1f})"
        )


if __name__ == "__main__":
    main()
