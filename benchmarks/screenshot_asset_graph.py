"""Take the README's screenshot of the asset graph: ``docs/asset_graph.png``.

Starts ``dagster-webserver`` over the workspace on a fresh local instance (2-day horizon, one
window materialized through ``five_minute_job``), then has headless Chromium (Debian's
``chromium`` package) render the global asset lineage page. Run once, by hand, not in CI:
``.venv/bin/python benchmarks/screenshot_asset_graph.py [--out docs/asset_graph.png]``
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from tests.integration.test_webserver import KEY, Webserver, free_port, platform_env  # noqa: E402

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
        os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "CRYPTO_HOME", "CRYPTO_DB_URL",
                                               "CRYPTO_PARTITION_START")})
        from crypto_assets.definitions import defs

        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            defs.resolve_job_def("five_minute_job").execute_in_process(instance=instance, partition_key=KEY)
        web = Webserver(env, free_port(), home / "webserver.log")
        try:
            web.wait_ready()
            web.graphql("mutation { setNuxSeen }")  # the community pop-up a local UI shows once
            args.out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                            f"--user-data-dir={home / 'chromium'}", f"--window-size={args.size}",
                            "--virtual-time-budget=20000", f"--screenshot={args.out}", web.url + PAGE],
                           check=True, timeout=120, capture_output=True)
        finally:
            web.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
