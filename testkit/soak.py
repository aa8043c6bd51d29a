"""Soak of the live loop: days of 5-minute windows through faulty sources, then an audit.

The loop is driven the way the daemon drives it, on a simulated clock that moves 5 minutes a
tick: at each tick of ``five_minute_schedule`` (a minute after each window closes) the schedule is
evaluated for that time and its run request is executed (``execute_in_process`` of the
``five_minute_job`` selection, with the run's partition and tags, the job's step retries but
without their 30 s delay); then the gap-healing sensor, the freshness-check sensor and the three
alert sensors are evaluated, with their cursors carried from tick to tick, and the runs they
request are executed too. Dagster's clock (``freeze_time``), the price source's ``now``, the
fake CoinGecko's ``now``, the circuit breakers' clock and the gap sensor's clock all read the
simulated time.

The sources are the fake exchange and CoinGecko servers (``testkit/fakes/price_servers.py``) in
the several-exchange setup: ``CRYPTO_EXCHANGES=binance,okx`` with Binance geo-blocked (HTTP 451
to every request, as from a US cloud region), so every coin falls to OKX. OKX and CoinGecko
misbehave on a seeded random schedule: 429 bursts, 5xx, timeouts, truncated or HTML bodies,
one-off impossible values, and whole outages (a source answering 503 to everything for an
hour; the "exchange" outage is OKX's, leaving no exchange). Alerts go to a fake Slack webhook.
Perpetual swaps are live too: ``CRYPTO_DERIVATIVES_EXCHANGES=binanceusdm,bybit`` with Binance's
futures host geo-blocked as well, so every perpetual comes from the Bybit fake
(``testkit/fakes/derivatives_servers.py``), which gets its share of the transient faults and is
down during the exchange outage. The news run as the settings say (``CRYPTO_SOURCE=simulated``),
so their windows are committed every tick and audited like the rest.

The audit at the end (after draining: more ticks without new windows and without faults, until
the gap sensor has nothing left to heal):

* every window of every 5-minute asset is in ``partition_log`` exactly once, and the rows of
  each table agree with it (row count per window, no rows outside committed windows, no
  duplicate keys);
* the bars and the perpetuals' rows of a sample of windows equal the (deterministic) market the
  fakes served: no fault left a corrupted value behind;
* backfilled windows (the day before, and windows healed after an outage: market fields from
  CoinGecko's history) and live windows (the snapshot) carry the same market fields: every bar
  row has all of them, none observed after its window's end in the history; features of a sample of windows equal a clean recomputation
  from the final tables, when the features asset is part of the job;
* every run that failed produced exactly one run alert, every check that started failing one
  check or freshness alert, every outage at least a run alert and a freshness alert, and
  nothing else alerted.

Run: ``.venv/bin/python testkit/soak.py [--windows 576] [--seed 7] [--coins 124] [--db-url URL]``.
It prints windows, runs, faults injected, retries, circuit-breaker openings, alerts and time
taken, then the audit's verdict; the exit status is 1 if the audit found a problem.
"""

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from resources.config.universe import load_universe  # noqa: E402
from resources.retry_policy import CircuitBreaker, circuit_breaker_for, reset_circuit_breakers  # noqa: E402
from resources.sources.simulated import (  # noqa: E402
    has_simulated_perpetual,
    simulated_derivatives_frame,
    simulated_price_frame,
)
from resources.storage.lake import LAKE_ASSET  # noqa: E402
from resources.storage.schema import METADATA  # noqa: E402
from resources.storage.warehouse import Warehouse, dispose_warehouse  # noqa: E402
from resources.storage.windows import WINDOW, window_floor, window_starts  # noqa: E402
from testkit.dagster_private import freeze_time  # noqa: E402
from testkit.fakes.derivatives_servers import FakeBinanceUsdm, FakeBybit  # noqa: E402
from testkit.fakes.fake_webhook import FakeWebhook  # noqa: E402
from testkit.fakes.price_servers import FakeBinance, FakeCoinGecko, FakeOkx  # noqa: E402

EPOCH = datetime(1970, 1, 1)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SCHEDULE_OFFSET = timedelta(minutes=1)  # five_minute_schedule ticks a minute after each window closes
TRANSIENT = ("429-burst", "5xx", "timeout", "malformed", "bad-data")
BAR_COLUMNS = ("open", "high", "low", "close", "volume")
BREAKERS = ("exchange:binance", "exchange:okx", "coingecko", "exchange:binanceusdm", "exchange:bybit")


# ------------------------------------------------------------------------------------ the clock
class SimClock:
    """The simulated time every component reads: naive UTC, moved by the loop."""

    def __init__(self, now: datetime):
        self.current = now

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - EPOCH).total_seconds()


# ------------------------------------------------------------------------------------ the sources
class _Down:
    """Mixin: while ``down`` the server answers 503 to everything (a source outage)."""

    down = False
    down_answers = 0

    def _respond(self, fault, path, query, headers):  # noqa: ANN001 (FakeServer's signature)
        if self.down:
            self.down_answers += 1
            return 503, {"Content-Type": "application/json"}, b'{"error": "service unavailable"}'
        return super()._respond(fault, path, query, headers)


class SoakExchange(_Down, FakeOkx):
    """The exchange that serves (OKX), with outages."""


class GeoBlockedBinance(FakeBinance):
    """The first exchange of the list, refusing every request with HTTP 451."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 451


class SoakBybit(_Down, FakeBybit):
    """The derivatives exchange that serves (Bybit), with outages."""


class GeoBlockedBinanceUsdm(FakeBinanceUsdm):
    """The first derivatives exchange of the list, refusing every request with HTTP 451."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = 451


class SoakCoinGecko(_Down, FakeCoinGecko):
    """The fake CoinGecko, with outages."""


class OneShot:
    """A payload mutation applied to the first payload only (a one-off bad value)."""

    def __init__(self, mutate: Callable, passthrough: Callable):
        self.mutate, self.passthrough = mutate, passthrough
        self.used = False
        self._lock = threading.Lock()

    def __call__(self, *args: Any) -> Any:
        with self._lock:
            first, self.used = not self.used, True
        return self.mutate(*args) if first else self.passthrough(*args)


@dataclass(frozen=True)
class Outage:
    """``source`` answers 503 to everything for ``windows`` ticks from tick ``first``."""

    source: str
    first: int
    windows: int


@dataclass
class SoakConfig:
    """What to soak: how many windows, which faults, how many coins, which database."""

    windows: int = 576
    seed: int = 7
    coins: int | None = None
    fault_rate: float = 0.25
    outages: tuple[Outage, ...] | None = None
    db_url: str | None = None
    start: datetime | None = None
    drain_ticks: int = 40
    feature_samples: int = 6
    price_samples: int = 24
    workdir: Path | None = None
    verbose: bool = False
    #: ``module:attribute`` of the Definitions under test, or of a function that builds them from
    #: the settings (called with the settings of the soak's environment).
    definitions: str = "crypto_assets.definitions:build_definitions"

    def outage_plan(self) -> tuple[Outage, ...]:
        if self.outages is not None:
            return self.outages
        if self.windows >= 288:  # an hour of exchange outage on day 1, of CoinGecko on day 2
            return (Outage("exchange", self.windows // 4, 12), Outage("coingecko", (self.windows * 5) // 8, 12))
        return (Outage("exchange", self.windows // 4, 12),)


@dataclass
class SoakReport:
    """What the soak did and what the audit found."""

    windows: int = 0
    ticks: int = 0
    coins: int = 0
    database: str = ""
    runs: Counter = field(default_factory=Counter)
    runs_failed: Counter = field(default_factory=Counter)
    faults_injected: Counter = field(default_factory=Counter)
    outage_answers: int = 0
    http_retries: int = 0
    step_retries: int = 0
    write_retries: int = 0
    circuit_opened: dict[str, int] = field(default_factory=dict)
    circuit_rejections: int = 0
    alerts: Counter = field(default_factory=Counter)
    heal_runs: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "windows": self.windows,
            "ticks": self.ticks,
            "coins": self.coins,
            "database": self.database,
            "runs": dict(self.runs),
            "runs_failed": dict(self.runs_failed),
            "heal_runs": self.heal_runs,
            "faults_injected": dict(self.faults_injected),
            "faults_injected_total": sum(self.faults_injected.values()),
            "outage_answers_503": self.outage_answers,
            "retries": {"http": self.http_retries, "step": self.step_retries, "write": self.write_retries},
            "circuit_breaker_openings": self.circuit_opened,
            "circuit_rejections": self.circuit_rejections,
            "alerts": dict(self.alerts),
            "rows": self.rows,
            "checks": self.checks,
            "problems": self.problems,
            "seconds": round(self.seconds, 1),
        }


class _LogCounter(logging.Handler):
    """Counts retry warnings of the HTTP client and the warehouse, and circuit-open refusals."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name in ("resources.sources.http", "resources.sources.exchange") and "retrying in" in message:
            self.counts["http"] += 1
        elif record.name == "resources.storage.warehouse" and "retrying in" in message:
            self.counts["write"] += 1


# ------------------------------------------------------------------------------------ the loop
@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def run_soak(config: SoakConfig) -> SoakReport:
    """Drive the live loop for ``config.windows`` windows, then audit the warehouse and the alerts."""
    began = time.perf_counter()
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="crypto-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = config.db_url or f"sqlite:///{workdir / 'soak.sqlite'}"
    universe = load_universe()
    coins = universe[: config.coins] if config.coins else universe
    env = {"CRYPTO_DB_URL": db_url, "CRYPTO_HOME": str(workdir / "home"), "CRYPTO_SOURCE": "simulated"}
    if config.coins:
        universe_file = workdir / "universe.csv"
        source = Path(ROOT / "resources" / "config" / "data" / "universe.csv").read_text().splitlines()
        universe_file.write_text("\n".join(source[: config.coins + 1]) + "\n")
        env["CRYPTO_UNIVERSE_FILE"] = str(universe_file)
    report = SoakReport(
        windows=config.windows,
        coins=len(coins),
        database=sa.engine.make_url(db_url).render_as_string(hide_password=True),
    )
    counter = _LogCounter()
    levels = {
        name: logging.getLogger(name).level
        for name in ("resources.sources.http", "resources.sources.exchange", "resources.storage.warehouse")
    }
    for name in levels:
        logging.getLogger(name).addHandler(counter)
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with (
            FakeWebhook() as hook,
            GeoBlockedBinance() as binance,
            SoakExchange() as exchange,
            SoakCoinGecko() as coingecko,
            GeoBlockedBinanceUsdm() as futures_binance,
            SoakBybit() as bybit,
        ):
            env["CRYPTO_ALERT_WEBHOOK_URL"] = hook.url
            with _environment(env):
                _Loop(config, report, coins, db_url, exchange, coingecko, hook, binance, (futures_binance, bybit)).run()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).removeHandler(counter)
            logging.getLogger(name).setLevel(level)
        if config.db_url is None:
            dispose_warehouse(db_url)
        if config.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report.http_retries = counter.counts["http"]
    report.write_retries = counter.counts["write"]
    report.seconds = time.perf_counter() - began
    return report


class _Loop:
    """One soak: the definitions under test, the instance, the fakes and the simulated clock."""

    def __init__(
        self,
        config: SoakConfig,
        report: SoakReport,
        coins,
        db_url: str,
        exchange: SoakExchange,
        coingecko: SoakCoinGecko,
        hook: FakeWebhook,
        binance: FakeBinance,
        swaps: tuple[FakeBinanceUsdm, SoakBybit],
    ):
        import importlib

        import resources.sources.derivatives_sources as derivatives_sources
        import resources.sources.price_sources as price_sources
        from crypto_assets.freshness_checks import freshness_rules
        from crypto_assets.jobs import NETWORK_RETRY_POLICY, five_minute_job, five_minute_schedule
        from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
        from resources.storage.dagster_resources import WarehouseResource
        from sensors.alerts import ALERT_SENSORS
        from sensors.freshness import build_freshness_sensor
        from sensors.gaps import FIVE_MINUTE_TARGET, build_gap_sensor

        self.config, self.report, self.coins, self.db_url = config, report, coins, db_url
        self.exchange, self.coingecko, self.hook, self.binance = exchange, coingecko, hook, binance
        self.futures_binance, self.bybit = swaps
        self.rng = random.Random(config.seed)
        start = config.start or window_floor(datetime.now(UTC).replace(tzinfo=None)) + WINDOW
        self.first_window = start
        self.windows = window_starts(start, start + config.windows * WINDOW)
        self.clock = SimClock(start)
        self.partitions = FIVE_MINUTE_PARTITIONS
        self.schedule = five_minute_schedule
        self.price_sources, self.derivatives_sources = price_sources, derivatives_sources

        from resources.config.settings import load_settings

        module, _, attribute = config.definitions.partition(":")
        target = getattr(importlib.import_module(module), attribute or "build_definitions")
        # Definitions take their settings once, when built: a module's ``defs`` was built from the
        # environment it was first imported in, so build them here, in the soak's environment.
        base: dg.Definitions = target(load_settings()) if callable(target) else target
        assets = list(base.assets or [])
        self.assets = assets
        self.asset_keys = sorted(
            k.to_user_string() for a in assets if a.partitions_def == FIVE_MINUTE_PARTITIONS for k in a.keys
        )
        # The scheduled job, with its step retries but not their 30 s wait (time is simulated).
        self.job_def = dg.define_asset_job(
            five_minute_job.name,
            selection=five_minute_job.selection,
            partitions_def=FIVE_MINUTE_PARTITIONS,
            tags=five_minute_job.tags,
            op_retry_policy=dg.RetryPolicy(max_retries=NETWORK_RETRY_POLICY.max_retries),
        )
        gap_sensor = build_gap_sensor(
            assets, targets=[replace(FIVE_MINUTE_TARGET, job=self.job_def)], clock=self.clock.now
        )
        # The freshness sensor on the simulated clock, as the gap sensor.
        freshness = build_freshness_sensor(freshness_rules(assets), clock=lambda: _aware(self.clock.now()))
        self.sensor_defs = [gap_sensor, freshness, *ALERT_SENSORS]
        from resources.sources.derivatives_sources import DerivativesSourceResource
        from resources.sources.price_sources import PriceSourceResource

        resources = dict(base.resources or {})
        resources["warehouse"] = WarehouseResource(db_url=db_url)
        resources["price_source"] = PriceSourceResource.from_settings(  # the soak's universe file, if any
            load_settings(),
            mode="live",
            coingecko_base_url=coingecko.url,
            exchanges="binance,okx",
            exchange_urls={"binance": binance.url, "okx": exchange.url},
            coingecko_calls_per_minute=100_000,
            exchange_rate_limit_ms=5,
            timeout_s=0.5,
            max_attempts=3,
            backoff_base_s=0.01,
            max_retry_after_s=5,
        )
        resources["derivatives_source"] = DerivativesSourceResource.from_settings(
            load_settings(),
            mode="live",
            exchanges="binanceusdm,bybit",
            exchange_urls={"binanceusdm": self.futures_binance.url, "bybit": self.bybit.url},
            exchange_rate_limit_ms=5,
            timeout_s=0.5,
            max_attempts=3,
            backoff_base_s=0.01,
            max_retry_after_s=5,
        )
        self.defs = dg.Definitions(
            assets=assets,
            asset_checks=list(base.asset_checks or []),
            jobs=[self.job_def],
            sensors=self.sensor_defs,
            resources=resources,
        )
        self.repo = self.defs.get_repository_def()
        self.job = self.defs.resolve_job_def(self.job_def.name)
        self.check_job = self.defs.resolve_implicit_global_asset_job_def()
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursors: dict[str, str | None] = {}
        self.run_keys: set[str] = set()
        self.failed_runs: dict[str, str] = {}  # run id -> trigger
        self.failed_outside_outage: list[str] = []  # transient faults must be absorbed by retries
        self.in_outage = False
        exchange.timeout_sleep_s = coingecko.timeout_sleep_s = self.bybit.timeout_sleep_s = 0.7

    # ---------------------------------------------------------------- faults
    def _inject(self, tick: int) -> None:
        for outage in self.config.outage_plan():
            down = outage.first <= tick < outage.first + outage.windows
            for server in (self.exchange, self.bybit) if outage.source == "exchange" else (self.coingecko,):
                server.down = down
        self.in_outage = self.exchange.down or self.coingecko.down
        if self.rng.random() >= self.config.fault_rate:
            return
        kind = self.rng.choice(TRANSIENT)
        target = self.rng.choice([s for s in (self.exchange, self.coingecko, self.bybit) if not s.down] or [None])
        if target is None:
            return
        if target is self.bybit and kind not in ("429-burst", "5xx", "timeout", "malformed"):
            kind = "5xx"  # the one-off impossible values are the spot sources' (validation refuses the fetch)
        if kind == "429-burst":
            target.faults.extend(["429"] * self.rng.randint(1, 2))
        elif kind == "5xx":
            target.faults.extend(["500"] * self.rng.randint(1, 2))
        elif kind == "timeout":
            target.faults.append("timeout")
        elif kind == "malformed":
            target.faults.append(self.rng.choice(["truncated", "html"]))
        elif target is self.exchange:
            target.mutate_bar = OneShot(lambda pair, bar: [bar[0], "-1", *bar[2:]], lambda pair, bar: bar)
        else:

            def negative(elements):
                if elements:
                    elements[0]["current_price"] = -abs(elements[0]["current_price"] or 1.0)
                return elements

            target.mutate = OneShot(negative, lambda elements: elements)
        name = {id(self.exchange): "exchange", id(self.coingecko): "coingecko", id(self.bybit): "derivatives"}[
            id(target)
        ]
        self.report.faults_injected[f"{name}:{kind}"] += 1

    def _clear_faults(self) -> None:
        for server in (self.exchange, self.coingecko, self.bybit):
            server.faults.clear()
        self.exchange.mutate_bar = lambda pair, bar: bar
        self.coingecko.mutate = lambda elements: elements

    # ---------------------------------------------------------------- runs
    def _execute(self, request: dg.RunRequest, trigger: str) -> None:
        if request.run_key and request.run_key in self.run_keys:
            return
        if request.run_key:
            self.run_keys.add(request.run_key)
        tags = dict(request.tags or {})
        if request.asset_check_keys and not request.asset_selection:
            job = self.check_job.get_subset(asset_selection=set(), asset_check_selection=set(request.asset_check_keys))
            result = job.execute_in_process(run_config=QUIET, instance=self.instance, tags=tags, raise_on_error=False)
        else:
            result = self.job.execute_in_process(
                run_config=QUIET,
                instance=self.instance,
                partition_key=request.partition_key,
                tags=tags,
                raise_on_error=False,
                asset_selection=list(request.asset_selection) if request.asset_selection else None,
            )
        self.report.runs[trigger] += 1
        self.report.step_retries += sum(1 for e in result.all_events if e.event_type_value == "STEP_RESTARTED")
        if not result.success:
            self.report.circuit_rejections += sum(
                1
                for e in result.all_events
                if e.event_type_value in ("STEP_FAILURE", "STEP_UP_FOR_RETRY")
                and "circuit open" in str(getattr(e.event_specific_data, "error", "") or "")
            )
            self.report.runs_failed[trigger] += 1
            self.failed_runs[result.run_id] = trigger
            if not self.in_outage:
                self.failed_outside_outage.append(f"{trigger} run at {self.clock.now():%Y-%m-%d %H:%M}")
            if self.config.verbose:
                error = next(
                    (
                        str(e.event_specific_data.error.message).splitlines()[0]
                        for e in result.all_events
                        if e.event_type_value == "STEP_FAILURE"
                    ),
                    "?",
                )
                print(f"  {self.clock.now():%m-%d %H:%M} {trigger} run failed: {error[:160]}", file=sys.stderr)

    def _sensor(self, sensor: dg.SensorDefinition) -> list[dg.RunRequest]:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor.name),
            repository_def=self.repo,
            sensor_name=sensor.name,
            resources=self.defs.resources,  # the daemon hands sensors the definitions' resources
        )
        data = sensor.evaluate_tick(context)
        for event in data.asset_events:  # what the daemon records for a sensor (runless check evaluations)
            self.instance.report_runless_asset_event(event)
        if data.cursor is not None:
            self.cursors[sensor.name] = data.cursor
        return list(data.run_requests or [])

    def _tick(self, tick_time: datetime, schedule: bool) -> None:
        self.clock.current = tick_time
        self.coingecko.now = self.exchange.now = self.bybit.now = self.futures_binance.now = tick_time
        with freeze_time(_aware(tick_time)):
            if schedule:
                context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=_aware(tick_time))
                for request in self.schedule.evaluate_tick(context).run_requests or []:
                    self._execute(request, "schedule")
            for sensor in self.sensor_defs:
                for request in self._sensor(sensor):
                    trigger = "gap_healing" if sensor.name == "gap_healing_sensor" else "freshness_checks"
                    self._execute(request, trigger)
        self.report.ticks += 1

    def _history(self) -> None:
        """The day before the soak, as one backfill run: the platform has been running (and the gap
        sensor, which looks a day back, finds nothing to heal before the soak starts)."""
        first, last = self.first_window - timedelta(days=1), self.first_window - WINDOW
        self.clock.current = self.first_window
        self.coingecko.now = self.exchange.now = self.bybit.now = self.futures_binance.now = self.first_window
        with freeze_time(_aware(self.first_window)):
            tags = {
                "dagster/asset_partition_range_start": first.strftime(self.partitions.fmt),
                "dagster/asset_partition_range_end": last.strftime(self.partitions.fmt),
            }
            self._execute(dg.RunRequest(tags=tags), "history")

    def run(self) -> None:
        reset_circuit_breakers()
        for name in BREAKERS:
            circuit_breaker_for(name, clock=self.clock.monotonic)
        real_now = self.price_sources.utc_now
        self.price_sources.utc_now = self.clock.now  # the price source's "now" (snapshot window, collected_at)
        self.derivatives_sources.utc_now = self.clock.now  # the derivatives source's (the live window)
        try:
            self._history()
            for index, window in enumerate(self.windows):
                self._inject(index)
                self._tick(window + WINDOW + SCHEDULE_OFFSET, schedule=True)
                self._clear_faults()
                if self.config.verbose and index % 48 == 47:
                    print(
                        f"  {index + 1} windows, runs {dict(self.report.runs)}, failed {dict(self.report.runs_failed)}",
                        file=sys.stderr,
                    )
            for server in (self.exchange, self.coingecko, self.bybit):
                server.down = False
            self.in_outage = False
            tick_time = self.windows[-1] + WINDOW + SCHEDULE_OFFSET
            for _ in range(self.config.drain_ticks):
                if not self._missing() and not self._stale():
                    break
                tick_time += WINDOW
                self._tick(tick_time, schedule=False)
            tick_time += WINDOW  # one last round of the alert sensors after the healing
            self._tick(tick_time, schedule=False)
        finally:
            self.price_sources.utc_now = self.derivatives_sources.utc_now = real_now
        self.report.outage_answers = self.exchange.down_answers + self.coingecko.down_answers + self.bybit.down_answers
        breakers: dict[str, CircuitBreaker] = {n: circuit_breaker_for(n) for n in BREAKERS}
        self.report.circuit_opened = {n: b.times_opened for n, b in breakers.items()}
        self.report.heal_runs = self.report.runs["gap_healing"]
        self._audit()
        reset_circuit_breakers()

    # ---------------------------------------------------------------- audit
    def _missing(self) -> dict[str, list[datetime]]:
        from resources.config.settings import load_settings
        from resources.storage.lake import FeatureLake
        from sensors.gaps import WindowLogs

        wh = Warehouse(self.db_url, create=False)
        try:
            out = {}
            logs = WindowLogs(wh, FeatureLake.from_settings(load_settings()))
            for asset in self.asset_keys:
                log = logs.of(asset, self.windows[0], self.windows[-1] + WINDOW)
                have = set(pd.to_datetime(log["window_start"])) if len(log) else set()
                missing = [w for w in self.windows if pd.Timestamp(w) not in have]
                if missing:
                    out[asset] = missing
            return out
        finally:
            wh.dispose()

    def _stale(self) -> dict[datetime, set[str]]:
        """Windows whose features read an upstream window committed after them (the gap sensor re-runs them)."""
        from resources.config.settings import load_settings
        from resources.storage.lake import FeatureLake
        from sensors.gaps import HISTORY_LOOKBACKS, WindowLogs, stale_windows

        lookbacks = {a: up for a, up in HISTORY_LOOKBACKS.items() if a in self.asset_keys}
        wh = Warehouse(self.db_url, create=False)
        try:
            logs = WindowLogs(wh, FeatureLake.from_settings(load_settings()))
            return stale_windows(logs, lookbacks, self.windows[0], self.windows[-1] + WINDOW, WINDOW)
        finally:
            wh.dispose()

    def _audit(self) -> None:
        problems = self.report.problems
        wh = Warehouse(self.db_url)
        try:
            for asset, missing in self._missing().items():
                problems.append(f"{asset}: {len(missing)} window(s) never committed, first {missing[0]}")
            start, end = self.windows[0], self.windows[-1] + WINDOW
            for asset in self.asset_keys:
                if asset == LAKE_ASSET:
                    self._audit_lake(wh, start, end)
                    continue
                table = METADATA.tables.get(asset)
                if table is None:
                    problems.append(f"{asset}: no table of that name to audit")
                    continue
                self._audit_table(wh, asset, table, start, end)
            self._audit_prices(wh)
            self._audit_derivatives(wh)
            self._audit_market_fields(wh)
            self._audit_features(wh)
        finally:
            wh.dispose()
        self._audit_alerts()

    def _audit_table(self, wh: Warehouse, asset: str, table: sa.Table, start: datetime, end: datetime) -> None:
        problems = self.report.problems
        time_column = "timestamp" if "timestamp" in table.c and "window_start" not in table.c else "window_start"
        column = table.c[time_column]
        keys = [c for c in table.primary_key.columns]
        with wh.engine.connect() as conn:
            per_window = dict(
                conn.execute(
                    sa.select(column, sa.func.count()).where(column >= start, column < end).group_by(column)
                ).all()
            )
            duplicates = conn.execute(
                sa.select(sa.func.count()).select_from(
                    sa.select(*keys).group_by(*keys).having(sa.func.count() > 1).subquery()
                )
            ).scalar_one()
            logged = conn.execute(
                sa.select(sa.text("window_start"), sa.text("row_count"))
                .select_from(sa.text("partition_log"))
                .where(sa.text("asset = :asset"), sa.text("window_start >= :start"), sa.text("window_start < :end")),
                {"asset": asset, "start": start, "end": end},
            ).all()
        log_counts = {pd.Timestamp(w): int(n) for w, n in logged}
        table_counts = {pd.Timestamp(w): int(n) for w, n in per_window.items()}
        self.report.rows[asset] = sum(table_counts.values())
        if duplicates:
            problems.append(f"{asset}: {duplicates} duplicate key(s)")
        if len(log_counts) != len(logged):
            problems.append(f"{asset}: partition_log holds a window twice")
        stray = sorted(set(table_counts) - set(log_counts))
        if stray:
            problems.append(f"{asset}: rows in {len(stray)} window(s) without a partition_log row, first {stray[0]}")
        disagree = [w for w in log_counts if log_counts[w] != table_counts.get(w, 0)]
        if disagree:
            w = disagree[0]
            problems.append(
                f"{asset}: partition_log row_count disagrees with the table in {len(disagree)} "
                f"window(s), e.g. {w}: log {log_counts[w]}, table {table_counts.get(w, 0)}"
            )

    def _audit_prices(self, wh: Warehouse) -> None:
        """A sample of windows' bars equal what the fakes served (the deterministic market)."""
        if "price_data_real" not in self.asset_keys:
            return
        rng = random.Random(self.config.seed + 1)
        sample = sorted(rng.sample(self.windows, min(self.config.price_samples, len(self.windows))))
        table = METADATA.tables["price_data_real"]
        with_pair = [c for c in self.coins if c.exchange_pair]
        mismatches = 0
        for window in sample:
            stored = wh.read_frame(
                sa.select(table.c.symbol, *(table.c[c] for c in BAR_COLUMNS)).where(
                    table.c.window_start == window, table.c.symbol.in_([c.symbol for c in with_pair])
                )
            ).set_index("symbol")
            # The fake exchange computes each pair on its own (the simulated market's volatility
            # scale depends on the list of coins it is given).
            served = pd.concat([simulated_price_frame([c], window, window + WINDOW) for c in with_pair]).set_index(
                "symbol"
            )
            expected = served[list(BAR_COLUMNS)].map(lambda v: float(f"{v:.8f}"))
            if set(stored.index) != set(expected.index):
                self.report.problems.append(
                    f"price_data_real {window}: symbols {len(stored)} stored, {len(expected)} served"
                )
                continue
            diff = (stored.loc[expected.index, list(BAR_COLUMNS)] != expected).any(axis=1)
            mismatches += int(diff.sum())
        if mismatches:
            self.report.problems.append(f"price_data_real: {mismatches} bar(s) differ from what the exchange served")
        self.report.checks["price_windows_compared"] = len(sample)

    def _audit_derivatives(self, wh: Warehouse) -> None:
        """A sample of windows' perpetuals equal what the Bybit fake served (the simulated market of
        the whole universe, as the fake computes it): every coin with a perpetual, from Bybit."""
        if "derivatives_data" not in self.asset_keys:
            return
        rng = random.Random(self.config.seed + 2)
        sample = sorted(rng.sample(self.windows, min(self.config.price_samples, len(self.windows))))
        table = METADATA.tables["derivatives_data"]
        wanted = {c.symbol for c in self.coins if has_simulated_perpetual(c)}
        compared = ["mark_close", "index_close", "funding_rate", "open_interest"]
        mismatches = 0
        for window in sample:
            stored = wh.read_frame(
                sa.select(table.c.symbol, table.c.exchange, *(table.c[c] for c in compared)).where(
                    table.c.window_start == window
                )
            ).set_index("symbol")
            if set(stored.index) != wanted or set(stored["exchange"]) != {"bybit"}:
                self.report.problems.append(
                    f"derivatives_data {window}: {sorted(stored.index)} from {sorted(set(stored['exchange']))}, "
                    f"expected {sorted(wanted)} from bybit"
                )
                continue
            served = simulated_derivatives_frame(load_universe(), window, window + WINDOW).set_index("symbol")
            close = np.isclose(stored[compared], served.loc[stored.index, compared], rtol=1e-7)
            mismatches += int((~close).any(axis=1).sum())
        if mismatches:
            self.report.problems.append(f"derivatives_data: {mismatches} row(s) differ from what the exchange served")
        self.report.checks["derivatives_windows_compared"] = len(sample)

    def _audit_lake(self, wh: Warehouse, start: datetime, end: datetime) -> None:
        """The lake holds every committed feature row of the soak's windows, once, at its current commit."""
        from resources.config.settings import load_settings
        from resources.storage.lake import FeatureLake, LakeError, range_filter
        from resources.storage.schema import FEATURES

        committed = wh.committed_windows(FEATURES.name, start, end)
        expected = int(committed["row_count"].sum()) if len(committed) else 0
        try:
            keys = (
                FeatureLake.from_settings(load_settings())
                .table()
                .to_pyarrow_dataset()
                .to_table(columns=["symbol", "timestamp"], filter=range_filter(start, end))
                .to_pandas()
            )
        except LakeError as exc:
            self.report.problems.append(f"{LAKE_ASSET}: {exc}")
            return
        if len(keys) != expected or keys.duplicated().any():
            self.report.problems.append(f"{LAKE_ASSET}: {len(keys)} lake rows for {expected} committed feature rows")
        self.report.checks["lake"] = f"{len(keys)} rows, equal to the committed feature rows"

    def _audit_market_fields(self, wh: Warehouse) -> None:
        """Live windows (the snapshot) and backfilled ones (the history) carry the same market fields."""
        from resources.sources.coingecko import MARKET_FIELDS

        if "price_data_real" not in self.asset_keys:
            return
        table = METADATA.tables["price_data_real"]
        fields = [*MARKET_FIELDS, "market_data_age_s"]
        frame = wh.read_frame(
            sa.select(table.c.source, table.c.close, *(table.c[c] for c in fields)).where(table.c.close.is_not(None))
        )
        kinds = frame["source"].map(
            lambda s: (
                "live" if s.endswith("+coingecko") else "backfilled" if s.endswith("+coingecko_history") else "none"
            )
        )
        self.report.checks["market_field_rows"] = {k: int(n) for k, n in kinds.value_counts().items()}
        for kind in ("live", "backfilled"):
            rows = frame[kinds == kind]
            if not len(rows):
                self.report.problems.append(f"price_data_real: no {kind} window with market fields to compare")
                continue
            present = sorted(c for c in fields if rows[c].notna().all())
            if present != sorted(fields):
                lacking = {c: int(rows[c].isna().sum()) for c in fields if rows[c].isna().any()}
                self.report.problems.append(f"price_data_real: {kind} bar rows lack market fields {lacking}")
        without = int((kinds == "none").sum())
        if without:
            self.report.problems.append(f"price_data_real: {without} bar row(s) without market fields")
        future = int((frame.loc[kinds == "backfilled", "market_data_age_s"] < 0).sum())
        if future:
            self.report.problems.append(f"price_data_real: {future} backfilled row(s) joined a later observation")

    def _audit_features(self, wh: Warehouse) -> None:
        """Features of a sample of windows equal a clean recomputation from the final tables."""
        from resources.storage.parquet_backup import export_warehouse, restore_warehouse
        from resources.storage.schema import FEATURES

        if FEATURES.name not in self.asset_keys:
            self.report.checks["features"] = "not part of five_minute_job: skipped"
            return
        rng = random.Random(self.config.seed + 2)
        sample = sorted(rng.sample(self.windows, min(self.config.feature_samples, len(self.windows))))
        scratch = Path(tempfile.mkdtemp(prefix="crypto-soak-features-"))
        clean_url = f"sqlite:///{scratch / 'clean.sqlite'}"
        try:
            export_warehouse(wh, scratch / "backup")
            clean = Warehouse(clean_url)
            restore_warehouse(clean, scratch / "backup")
            features = next(a for a in self.assets if dg.AssetKey(FEATURES.name) in a.keys)
            resources = dict(self.defs.resources or {})
            from resources.storage.dagster_resources import WarehouseResource

            resources["warehouse"] = WarehouseResource(db_url=clean_url)
            table = METADATA.tables[FEATURES.name]
            differing: list[datetime] = []
            for window in sample:
                key = window.strftime(self.partitions.fmt)
                with freeze_time(_aware(self.clock.now())), _environment({"CRYPTO_DB_URL": clean_url}):
                    result = dg.materialize(
                        [features],
                        partition_key=key,
                        resources=resources,
                        selection=[features.key],
                        raise_on_error=False,
                        instance=dg.DagsterInstance.ephemeral(),
                    )
                if not result.success:
                    self.report.problems.append(f"features recomputation of {key} failed")
                    continue
                stmt = sa.select(table).where(table.c.timestamp == window).order_by(table.c.symbol)
                soaked, recomputed = wh.read_frame(stmt), clean.read_frame(stmt)
                value_columns = [c for c in soaked.columns if c not in ("feature_set_version",)]
                try:
                    pd.testing.assert_frame_equal(
                        soaked[value_columns], recomputed[value_columns], check_exact=False, rtol=1e-9, atol=1e-12
                    )
                except AssertionError:
                    differing.append(window)
            clean.dispose()
            if differing:
                outages = ", ".join(
                    f"{o.source} down for windows {self.windows[o.first]:%H:%M} to "
                    f"{self.windows[min(o.first + o.windows, len(self.windows)) - 1]:%H:%M}"
                    for o in self.config.outage_plan()
                )
                self.report.problems.append(
                    f"features of {len(differing)}/{len(sample)} sampled window(s) differ from a clean recomputation "
                    f"(windows {', '.join(f'{w:%m-%d %H:%M}' for w in differing[:12])}"
                    f"{', ...' if len(differing) > 12 else ''}; {outages or 'no outage'})"
                )
            self.report.checks["feature_windows_compared"] = len(sample)
        finally:
            dispose_warehouse(clean_url)
            shutil.rmtree(scratch, ignore_errors=True)

    def _audit_alerts(self) -> None:
        """Every failed run alerted once, every check that started failing alerted once, nothing else."""
        problems = self.report.problems
        messages = [json.dumps(m) for m in self.hook.messages]
        run_alerts: Counter = Counter()
        for text in messages:
            kind = next((k for k in ("run", "freshness", "check") if f"*Kind:* {k}" in text), "other")
            self.report.alerts[kind] += 1
            if kind == "run":
                run_alerts.update(r for r in self.failed_runs if r in text)
        for run_id, trigger in self.failed_runs.items():
            if run_alerts[run_id] != 1:
                problems.append(f"failed {trigger} run {run_id} produced {run_alerts[run_id]} run alert(s), not 1")
        extra = self.report.alerts["run"] - sum(run_alerts.values())
        if extra:
            problems.append(f"{extra} run alert(s) for runs that did not fail")
        expected_checks = self._check_fail_starts()
        for kind in ("check", "freshness"):
            if self.report.alerts[kind] != expected_checks[kind]:
                problems.append(
                    f"{self.report.alerts[kind]} {kind} alert(s), expected {expected_checks[kind]} "
                    "(one each time a check starts failing)"
                )
        for failure in self.failed_outside_outage:
            problems.append(f"{failure} failed outside any outage: a transient fault was not absorbed by retries")
        late = [t for t in messages if "*Kind:* freshness" in t and any(f"{a} is late" in t for a in self.asset_keys)]
        if self.config.outage_plan() and (not self.failed_runs or not late):
            problems.append("an outage produced no run alert or no freshness alert of a 5-minute asset")
        self.report.checks["check_fail_starts"] = dict(expected_checks)

    def _check_fail_starts(self) -> Counter:
        """How many times each check went from passing (or never run) to failing (for freshness, the
        freshness sensor's verdicts: the ones that alert)."""
        from crypto_assets.freshness_checks import FRESHNESS_CHECK_NAME

        starts: Counter = Counter()
        storage = self.instance.event_log_storage
        for check_key in self.repo.asset_graph.asset_check_keys:
            history = storage.get_asset_check_execution_history(check_key, limit=100_000)
            failing = False
            for record in sorted(history, key=lambda r: r.id):
                event = (
                    record.event.dagster_event.event_specific_data
                    if record.event and record.event.dagster_event
                    else None
                )
                if not isinstance(event, dg.AssetCheckEvaluation):
                    continue
                if check_key.name == FRESHNESS_CHECK_NAME and record.run_id:
                    continue  # lateness is the freshness sensor's (runless) verdict; a run's own does not alert
                if not event.passed and not failing:
                    starts["freshness" if check_key.name == FRESHNESS_CHECK_NAME else "check"] += 1
                failing = not event.passed
        return starts


def print_report(report: SoakReport) -> None:
    """The figures, human-readable."""
    data = report.as_dict()
    print(
        f"soak: {report.windows} windows x {report.coins} coins on {report.database} in {data['seconds']} s "
        f"({report.ticks} ticks)"
    )
    print(f"  runs: {data['runs']}, failed: {data['runs_failed']}")
    print(
        f"  faults injected: {data['faults_injected_total']} {data['faults_injected']}; "
        f"outage answers (503): {report.outage_answers}"
    )
    print(
        f"  retries: {data['retries']}; circuit breaker openings: {report.circuit_opened}, steps refused by an "
        f"open circuit: {report.circuit_rejections}"
    )
    print(f"  alerts: {data['alerts']} (check fail-starts: {report.checks.get('check_fail_starts')})")
    print(f"  rows: {report.rows}")
    print(
        f"  audit: {'OK: every window exactly once, partition_log agrees, alerts as expected' if report.ok else 'FAILED'}"
    )
    for problem in report.problems:
        print(f"    - {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=576, help="5-minute windows to drive (576 = two days)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--coins", type=int, default=None, help="first N coins of the universe (default: all)")
    parser.add_argument("--fault-rate", type=float, default=0.25, help="share of ticks with a transient fault")
    parser.add_argument("--db-url", default=None, help="warehouse URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--definitions",
        default="crypto_assets.definitions:build_definitions",
        help="module:attribute of the Definitions under test, or of a function of the settings that builds them",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    report = run_soak(
        SoakConfig(
            windows=args.windows,
            seed=args.seed,
            coins=args.coins,
            fault_rate=args.fault_rate,
            db_url=args.db_url,
            verbose=args.verbose,
            definitions=args.definitions,
        )
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
