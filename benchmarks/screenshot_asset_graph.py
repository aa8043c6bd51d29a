"""Take the README's screenshot of the asset graph: ``docs/asset_graph.png``.

Starts ``dagster-webserver`` over the workspace on a fresh local instance (2-day horizon), with
data in every asset: ``five_minute_job`` over every window from yesterday's midnight to the
latest due one (one range run, so every check, freshness included, has passed) and ``macro_job``
over the last days; then has headless Chromium (Debian's
``chromium`` package) render the global asset lineage page. Run once, by hand, not in CI:
``.venv/bin/python benchmarks/screenshot_asset_graph.py [--out docs/asset_graph.png]``
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from resources.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG  # noqa: E402
from testkit.fakes.loopback import free_port  # noqa: E402
from testkit.webserver import Webserver, platform_env  # noqa: E402

PAGE = "/asset-groups"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "asset_graph.png")
    parser.add_argument("--size", default="1600,1000")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="screenshot_") as tmp:
        home = Path(tmp)
        env = platform_env(home, "2d")
        os.environ.update(
            {k: env[k] for k in ("DAGSTER_HOME", "CRYPTO_HOME", "CRYPTO_DB_URL", "CRYPTO_PARTITION_START")}
        )
        from datetime import datetime, timedelta

        from crypto_assets.definitions import defs

        now = datetime.now(UTC)
        latest = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) - timedelta(minutes=10)
        first = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            for job, start, end, fmt in (
                ("five_minute_job", first, latest, "%Y-%m-%d-%H:%M"),
                ("macro_job", first - timedelta(days=1), first, "%Y-%m-%d"),
            ):
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=instance,
                    tags={
                        ASSET_PARTITION_RANGE_START_TAG: start.strftime(fmt),
                        ASSET_PARTITION_RANGE_END_TAG: end.strftime(fmt),
                    },
                )
                assert result.success, job
        web = Webserver(env, free_port(), home / "webserver.log")
        try:
            web.wait_ready()
            web.graphql("mutation { setNuxSeen }")  # the community pop-up a local UI shows once
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    browser,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    f"--user-data-dir={home / 'chromium'}",
                    f"--window-size={args.size}",
                    "--virtual-time-budget=20000",
                    f"--screenshot={args.out}",
                    web.url + PAGE,
                ],
                check=True,
                timeout=120,
                capture_output=True,
            )
        finally:
            web.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
