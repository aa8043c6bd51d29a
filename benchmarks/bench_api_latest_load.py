"""Latest prices under load: p50/p99 latency and errors at concurrency 32, from a second process.

Creates its own MariaDB database (``crypto_bench_api_load``, dropped afterwards) holding a day of
committed 5-minute price windows for 124 symbols (written through ``Warehouse.write_partition``),
starts ``uvicorn api.app:app`` (``--workers``, default one; uvloop + httptools) on a loopback port, and runs the
load generator below as a *separate process*: an asyncio HTTP/1.1 client with 32 keep-alive
connections, each sending ``GET /v1/prices/latest`` (identity, or ``--gzip``) back to back for ``--seconds`` after a
warm-up. Every 200 response is checked for a body; anything else counts as an error.

The per-key rate limit is disabled for the run (``CRYPTO_API_RATE_LIMIT=0``): the point is the
latency of the route, not the limiter. Run:
``.venv/bin/python benchmarks/bench_api_latest_load.py [--seconds 20] [--concurrency 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.support import UVLOOP_HTTPTOOLS, bench_database, run_load_generator  # noqa: E402
from testkit.api_server import api_server  # noqa: E402

DATABASE = "crypto_bench_api_load"


# ------------------------------------------------------------------------------ load generator
async def _worker(
    host: str,
    port: int,
    path: str,
    gzip: bool,
    stop_at: float,
    warm_until: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    encoding = "Accept-Encoding: gzip\r\n" if gzip else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{encoding}\r\n".encode()
    expected = b"\x1f\x8b" if gzip else b'{"as_of"'
    try:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            elapsed = time.perf_counter() - began
            if began < warm_until:
                continue
            if status != 200 or not body.startswith(expected):
                errors.append(f"{status}: {body[:80]!r}")
            else:
                latencies.append(elapsed)
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


async def _load(host: str, port: int, path: str, gzip: bool, concurrency: int, seconds: float, warmup: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    now = time.perf_counter()
    warm_until = now + warmup
    stop_at = warm_until + seconds
    await asyncio.gather(
        *(_worker(host, port, path, gzip, stop_at, warm_until, latencies, errors) for _ in range(concurrency))
    )
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:3],
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
    }


def load_main(argv: list[str]) -> None:
    """Entry of the load-generator process: prints one JSON line of results."""
    host, port, path, gzip, concurrency, seconds, warmup = argv
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(
        json.dumps(
            asyncio.run(_load(host, int(port), path, gzip == "gzip", int(concurrency), float(seconds), float(warmup)))
        )
    )


# ------------------------------------------------------------------------------ orchestration
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip, as HTTP clients do")
    args = parser.parse_args()

    import httpx

    from resources.config.universe import load_universe
    from resources.sources.simulated import simulated_price_frame
    from resources.storage.warehouse import get_warehouse

    with bench_database(DATABASE, charset="utf8mb4") as url:
        coins = load_universe()
        end = datetime(2026, 1, 2)
        start = end - timedelta(days=1)
        frame = simulated_price_frame(coins, start, end)
        get_warehouse(url).write_partition(
            "price_data_real", frame, start=start, end=end, run_id="bench", code_version="bench"
        )
        print(f"setup: {len(frame):,} price rows, {len(coins)} symbols, one day of committed windows")
        with api_server(
            url, args.port, {"CRYPTO_API_RATE_LIMIT": "0"}, options=[*UVLOOP_HTTPTOOLS, "--workers", str(args.workers)]
        ):
            base = f"http://127.0.0.1:{args.port}"
            body = httpx.get(base + "/v1/prices/latest").json()
            assert body["count"] == len(coins), body["count"]
            stats = run_load_generator(
                __file__,
                "127.0.0.1",
                str(args.port),
                "/v1/prices/latest",
                "gzip" if args.gzip else "identity",
                str(args.concurrency),
                str(args.seconds),
                str(args.warmup),
            )
            wire = httpx.get(
                base + "/v1/prices/latest", headers={"Accept-Encoding": "gzip" if args.gzip else "identity"}
            )
            size = int(wire.headers["content-length"])
            print(
                f"GET /v1/prices/latest ({len(coins)} symbols, {size:,} bytes "
                f"{'gzip' if args.gzip else 'identity'}), {args.workers} uvicorn worker(s), concurrency "
                f"{args.concurrency}, {args.seconds:.0f}s after {args.warmup:.0f}s warm-up:"
            )
            print(f"  requests {stats['requests']:,}  ({stats['rps']:,.0f}/s)   errors {stats['errors']}")
            print(
                f"  p50 {stats['p50_ms']:.2f} ms   p90 {stats['p90_ms']:.2f} ms   p99 {stats['p99_ms']:.2f} ms   "
                f"max {stats['max_ms']:.2f} ms   (aim: p99 < 25 ms, no errors)"
            )
            if stats["error_examples"]:
                print("  error examples:", stats["error_examples"])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
    else:
        main()
