"""Gateway under mixed load while windows commit: throughput, p50/p99, errors, memory, torn reads.

Creates its own MariaDB database (``crypto_bench_api_load_mixed``, dropped afterwards) holding a
day of committed windows of prices (124 symbols) and features, starts ``uvicorn api.app:app``
(one worker, API keys required, the per-key rate limit set out of the way) on loopback, and
runs the load from a *second process*: an asyncio HTTP/1.1 client with ``--concurrency``
keep-alive connections (64 by default), half of them polling ``GET /v1/prices/latest`` and half
reading a feature range (``GET /v1/features`` for 5 symbols, 3 features, the 6 hours up to the
newest window the client has seen), back to back for ``--seconds``. Meanwhile this process commits a new window of prices
and features every ``--commit-every`` seconds (1 by default) through ``Warehouse.write_partition``.

Every response is parsed and checked: a 200 whose latest prices are not all of one window with
all 124 symbols, or whose feature range has a window with fewer than the 5 symbols, is a torn
(half-committed) read and counts as an error; so does any status other than 200 and 304. The
server's resident memory is sampled every second.

A second, short phase checks the keys and the rate limit under load: a gateway with the default
per-key limit (``CRYPTO_API_RATE_LIMIT=600`` a minute) is hammered with one key at concurrency
16 while a second key polls politely: the first gets 429 with ``Retry-After`` once its window is
full, the second is never refused, a wrong key gets 403 and no key 401.

Run: ``.venv/bin/python benchmarks/bench_api_load.py [--seconds 180] [--concurrency 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.support import UVLOOP_HTTPTOOLS, bench_database, run_load_generator  # noqa: E402
from testkit.api_server import api_server, stop_api  # noqa: E402

DATABASE = "crypto_bench_api_load_mixed"
KEYS = ("bench-key-load", "bench-key-polite")
FEATURE_SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE")
WINDOW = timedelta(minutes=5)


# ------------------------------------------------------------------------------ load generator
async def _request(reader, writer, host: str, port: int, path: str, key: str | None) -> tuple[int, dict, bytes]:
    auth = f"X-API-Key: {key}\r\n" if key else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{auth}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower().decode()] = value.strip().decode()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


def _torn_latest(body: dict, symbols: int) -> str | None:
    rows = body.get("data", [])
    if body.get("count") != symbols or len(rows) != symbols:
        return f"latest: {len(rows)} of {symbols} symbols"
    windows = {r["window_start"] for r in rows}
    if len(windows) != 1 or body.get("as_of") not in windows:
        return f"latest: rows from {len(windows)} windows, as_of {body.get('as_of')}"
    return None


def _torn_features(body: dict) -> str | None:
    per_window: dict[str, int] = {}
    for row in body.get("data", []):
        per_window[row["timestamp"]] = per_window.get(row["timestamp"], 0) + 1
    short = [w for w, n in per_window.items() if n != len(FEATURE_SYMBOLS)]
    if short:
        return f"features: window {short[0]} has {per_window[short[0]]} of {len(FEATURE_SYMBOLS)} symbols"
    if not per_window:
        return "features: no rows"
    return None


async def _worker(
    kind: str, host: str, port: int, path: str, key: str, symbols: int, stop_at: float, warm_until: float, out: dict
) -> None:
    import orjson

    reader, writer = await asyncio.open_connection(host, port)
    base_path = path.split("&start=")[0]
    try:
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            if kind == "features" and out["latest_as_of"]:
                # The last 6 hours before the newest window seen: a constant-size range that follows
                # the commits, as a dashboard would ask for it.
                newest = datetime.fromisoformat(out["latest_as_of"].rstrip("Z"))
                path = (
                    f"{base_path}&start={(newest - timedelta(hours=6)).isoformat()}Z"
                    f"&end={(newest + WINDOW).isoformat()}Z"
                )
            status, headers, body = await _request(reader, writer, host, port, path, key)
            elapsed = time.perf_counter() - began
            if began < warm_until:
                continue
            problem = None
            if status != 200:
                problem = f"{status}: {body[:80]!r}"
            else:
                parsed = orjson.loads(body)
                problem = _torn_latest(parsed, symbols) if kind == "latest" else _torn_features(parsed)
                if problem:
                    out["torn_reads"] += 1
                out["cache_" + headers.get("x-cache", "none")] += 1
                out["as_of"].add(parsed.get("as_of"))
                if kind == "latest" and parsed.get("as_of") and parsed["as_of"] > (out["latest_as_of"] or ""):
                    out["latest_as_of"] = parsed["as_of"]
            if problem:
                out["errors"].append(problem)
            else:
                out["latencies"][kind].append(elapsed)
    except (OSError, asyncio.IncompleteReadError) as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


async def _load(
    host: str, port: int, paths: dict[str, str], key: str, symbols: int, concurrency: int, seconds: float, warmup: float
) -> dict:
    from collections import defaultdict

    out: dict = defaultdict(int)
    out.update({"errors": [], "latencies": {"latest": [], "features": []}, "as_of": set(), "latest_as_of": None})
    now = time.perf_counter()
    warm_until, stop_at = now + warmup, now + warmup + seconds
    kinds = ["latest" if i % 2 == 0 else "features" for i in range(concurrency)]
    await asyncio.gather(
        *(_worker(kind, host, port, paths[kind], key, symbols, stop_at, warm_until, out) for kind in kinds)
    )

    def stats(values: list[float]) -> dict:
        values = sorted(values)
        pick = lambda p: round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 2) if values else None  # noqa: E731
        return {
            "requests": len(values),
            "rps": round(len(values) / seconds, 1),
            "p50_ms": pick(0.5),
            "p99_ms": pick(0.99),
            "max_ms": round(values[-1] * 1000, 2) if values else None,
        }

    every = out["latencies"]["latest"] + out["latencies"]["features"]
    return {
        "all": stats(every),
        "latest": stats(out["latencies"]["latest"]),
        "features": stats(out["latencies"]["features"]),
        "errors": len(out["errors"]),
        "error_examples": out["errors"][:5],
        "torn_reads": out["torn_reads"],
        "distinct_as_of": len(out["as_of"] - {None}),
        "cache": {k[6:]: v for k, v in out.items() if k.startswith("cache_")},
    }


async def _hammer(host: str, port: int, path: str, concurrency: int, seconds: float) -> dict:
    """Phase 2: one key hammers, one polls politely, a wrong key and no key are refused."""
    from collections import Counter

    counts: dict[str, Counter] = {"hammer": Counter(), "polite": Counter(), "wrong": Counter(), "none": Counter()}
    retry_after: set[str] = set()
    stop_at = time.perf_counter() + seconds

    async def loop(who: str, key: str | None, pause: float) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at:
                status, headers, _ = await _request(reader, writer, host, port, path, key)
                counts[who][status] += 1
                if status == 429:
                    retry_after.add(headers.get("retry-after", "missing"))
                if pause:
                    await asyncio.sleep(pause)
        finally:
            writer.close()

    await asyncio.gather(
        *(loop("hammer", KEYS[0], 0) for _ in range(concurrency)),
        loop("polite", KEYS[1], 0.5),
        loop("wrong", "not-a-key", 1.0),
        loop("none", None, 1.0),
    )
    return {who: dict(c) for who, c in counts.items()} | {"retry_after_values": sorted(retry_after)[:3]}


def load_main(argv: list[str]) -> None:
    """Entry of the load-generator process: prints one JSON line of results."""
    mode, host, port = argv[0], argv[1], int(argv[2])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if mode == "mixed":
        paths = json.loads(argv[3])
        result = asyncio.run(
            _load(host, port, paths, argv[4], int(argv[5]), int(argv[6]), float(argv[7]), float(argv[8]))
        )
    else:
        result = asyncio.run(_hammer(host, port, argv[3], int(argv[4]), float(argv[5])))
    print(json.dumps(result))


# ------------------------------------------------------------------------------ orchestration
def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _serve(servers: contextlib.ExitStack, url: str, port: int, extra: dict[str, str]) -> subprocess.Popen:
    """The gateway on ``port`` (one worker, API keys required, ``extra`` in its environment), stopped by ``servers``."""
    return servers.enter_context(
        api_server(
            url, port, {"CRYPTO_API_KEYS": ",".join(KEYS), **extra}, options=[*UVLOOP_HTTPTOOLS, "--workers", "1"]
        )
    )


def _features_frame(table, coins, window: datetime, rng) -> object:
    import pandas as pd

    names = [c.name for c in table.columns if c.name not in ("symbol", "timestamp", "price", "feature_set_version")]
    frame = pd.DataFrame(
        {
            "symbol": [c.symbol for c in coins],
            "timestamp": window,
            "price": rng.uniform(1, 100, len(coins)),
            "feature_set_version": "bench",
        }
    )
    values = rng.normal(size=(len(coins), len(names)))
    return pd.concat([frame, pd.DataFrame(values, columns=names)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--commit-every", type=float, default=1.0, help="seconds between committed windows")
    parser.add_argument("--hammer-seconds", type=float, default=8.0)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()

    import numpy as np

    from resources.config.universe import load_universe
    from resources.sources.simulated import simulated_price_frame
    from resources.storage.schema import FEATURES, ml_features_materialized
    from resources.storage.warehouse import get_warehouse

    table = ml_features_materialized
    feature_names = [
        c.name for c in table.columns if c.name not in ("symbol", "timestamp", "price", "feature_set_version")
    ][:3]
    rng = np.random.default_rng(3)
    with bench_database(DATABASE, charset="utf8mb4") as url, contextlib.ExitStack() as servers:
        coins = load_universe()
        end = datetime(2026, 1, 2)
        start = end - timedelta(days=1)
        wh = get_warehouse(url)
        prices = simulated_price_frame(coins, start, end)
        wh.write_partition("price_data_real", prices, start=start, end=end, run_id="bench", code_version="bench")
        features = __import__("pandas").concat(
            [_features_frame(table, coins, w, rng) for w in sorted(prices.window_start.unique())]
        )
        wh.write_partition(
            FEATURES.name,
            features,
            start=start,
            end=end,
            run_id="bench",
            code_version="bench",
            time_column="timestamp",
        )
        print(
            f"setup: a day of {len(coins)} symbols: {len(prices):,} price rows, {len(features):,} feature rows "
            f"x {len(table.columns)} columns"
        )

        server = _serve(servers, url, args.port, {"CRYPTO_API_RATE_LIMIT": "100000000"})
        paths = {
            "latest": "/v1/prices/latest",
            "features": f"/v1/features?symbols={','.join(FEATURE_SYMBOLS)}&columns={','.join(feature_names)}"
            f"&start={(end - timedelta(hours=6)).isoformat()}Z&limit=10000",
        }

        stop = threading.Event()
        commits: list[float] = []
        memory: list[float] = []

        def commit_windows() -> None:
            window = end
            while not stop.wait(args.commit_every):
                began = time.perf_counter()
                frame = simulated_price_frame(coins, window, window + WINDOW)
                wh.write_partition(
                    "price_data_real",
                    frame,
                    start=window,
                    end=window + WINDOW,
                    run_id="bench-live",
                    code_version="bench",
                )
                wh.write_partition(
                    FEATURES.name,
                    _features_frame(table, coins, window, rng),
                    start=window,
                    end=window + WINDOW,
                    run_id="bench-live",
                    code_version="bench",
                    time_column="timestamp",
                )
                commits.append(time.perf_counter() - began)
                window += WINDOW

        def sample_memory() -> None:
            while not stop.wait(1.0):
                memory.append(_rss_mb(server.pid))

        memory.append(_rss_mb(server.pid))
        threads = [
            threading.Thread(target=commit_windows, daemon=True),
            threading.Thread(target=sample_memory, daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            stats = run_load_generator(
                __file__,
                "mixed",
                "127.0.0.1",
                str(args.port),
                json.dumps(paths),
                KEYS[0],
                str(len(coins)),
                str(args.concurrency),
                str(args.seconds),
                str(args.warmup),
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        print(
            f"mixed load, {args.concurrency} connections from a second process, {args.seconds:.0f} s after "
            f"{args.warmup:.0f} s warm-up, API key required, a window committed every {args.commit_every} s "
            f"({len(commits)} windows, write p50 {sorted(commits)[len(commits) // 2] * 1000:.0f} ms):"
        )
        for kind in ("all", "latest", "features"):
            s = stats[kind]
            print(
                f"  {kind:8s} {s['requests']:>8,} requests  {s['rps']:>8,.1f}/s   p50 {s['p50_ms']} ms   "
                f"p99 {s['p99_ms']} ms   max {s['max_ms']} ms"
            )
        print(
            f"  errors {stats['errors']}  torn (half-committed) reads {stats['torn_reads']}  distinct windows "
            f"seen {stats['distinct_as_of']}  cache {stats['cache']}"
        )
        if stats["error_examples"]:
            print(f"  error examples: {stats['error_examples']}")
        quarters = [memory[min(len(memory) - 1, i * len(memory) // 4)] for i in range(4)] + [memory[-1]]
        print(
            f"  server RSS (MB) at 0/25/50/75/100% of the run: {' / '.join(f'{m:.0f}' for m in quarters)}, "
            f"peak {max(memory):.0f}"
        )
        stop_api(server)

        _serve(servers, url, args.port + 1, {"CRYPTO_API_RATE_LIMIT": "600"})
        hammer = run_load_generator(
            __file__, "hammer", "127.0.0.1", str(args.port + 1), "/v1/prices/latest", "16", str(args.hammer_seconds)
        )
        print(
            f"rate limit 600/min per key, {args.hammer_seconds:.0f} s: hammering key {hammer['hammer']}, "
            f"polite key {hammer['polite']}, wrong key {hammer['wrong']}, no key {hammer['none']}, "
            f"Retry-After {hammer['retry_after_values']}"
        )
        ok = (
            stats["errors"] == 0
            and stats["torn_reads"] == 0
            and set(hammer["polite"]) == {"200"}
            and "429" in hammer["hammer"]
            and set(hammer["wrong"]) == {"403"}
            and set(hammer["none"]) == {"401"}
        )
        print("verdict:", "OK" if ok else "PROBLEMS (see above)")
        print(
            json.dumps(
                {
                    "mixed": stats,
                    "memory_mb": {"start": memory[0], "peak": max(memory), "end": memory[-1]},
                    "commits": len(commits),
                    "hammer": hammer,
                }
            )
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
    else:
        main()
