"""Take the docs' screenshots of the Dagster UI with data: ``docs/asset_graph.png`` (the asset
graph with every group expanded, as a user sees it) and ``docs/asset_partitions.png`` (the
partitions of ``ml_features_materialized``).

Without ``--url`` it starts the platform as a user does (``testkit/platform.py``:
``scripts/start.sh`` with a fresh home, until the last day is healed and the latest window's
features are committed) and stops it afterwards; ``--url`` uses a UI already running. Playwright
drives Debian's Chromium. Run by hand, not in the tests::

    apt-get install chromium && scripts/install.sh screenshot
    .venv/bin/python scripts/screenshot.py [--url http://127.0.0.1:3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testkit.platform import started_platform  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
GRAPH, PARTITIONS = "/asset-groups", "/assets/ml_features_materialized?view=partitions"


def _expand_groups(page: Page) -> None:
    """Dismiss the UI's one-time community pop-up, then expand every asset group of the graph (the
    graph's context menu, "Expand all groups")."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()
    page.get_by_text("Reload definitions").wait_for()
    box = page.viewport_size or {"width": 1600, "height": 1000}
    page.mouse.click(box["width"] * 0.45, box["height"] * 0.9, button="right")
    page.get_by_role("menuitem").filter(has_text="Expand all groups").first.click()
    page.wait_for_timeout(5000)


def shoot(url: str, out: Path, width: int, height: int) -> None:
    """The two screenshots of the UI at ``url``, into the directory ``out``."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url + GRAPH, wait_until="networkidle")
        page.wait_for_timeout(5000)
        _expand_groups(page)
        page.screenshot(path=out / "asset_graph.png")
        page.goto(url + PARTITIONS, wait_until="networkidle")
        page.wait_for_timeout(5000)
        page.screenshot(path=out / "asset_partitions.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running Dagster UI (default: start the platform)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--size", default="1600,1000", help="the viewport, WIDTH,HEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split(","))
    with ExitStack() as stack:
        url = args.url
        if url is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="screenshot_")))
            url = stack.enter_context(started_platform(ROOT, workdir)).ui_url
        shoot(url.rstrip("/"), args.out, width, height)
    print(f"wrote {args.out / 'asset_graph.png'} and {args.out / 'asset_partitions.png'}")


if __name__ == "__main__":
    main()
