"""``python -m cli.doctor`` as a user runs it, against loopback fakes of every source."""

import json
import os
import re
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.doctor import check_derivatives
from resources.config.settings import load_settings
from resources.config.universe import load_universe
from testkit.fakes.derivatives_servers import perpetual_listing
from testkit.fakes.doctor_fakes import doctor_env, start_fakes
from testkit.fakes.loopback import free_port
from testkit.fakes.price_servers import BINANCE_GEO_BLOCK

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fakes():
    with ExitStack() as stack:
        yield start_fakes(stack, datetime.now(UTC).replace(tzinfo=None))


def _closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _env(fakes, tmp_path: Path, **overrides: str) -> dict[str, str]:
    return doctor_env(fakes, tmp_path, **overrides)


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.doctor", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _rows(stdout: str) -> dict[str, list[str]]:
    """Table rows by source: the columns split on runs of two spaces (cells stripped)."""
    lines = stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("source ")) + 2
    body = lines[first : lines.index("", first)]
    return {cells[0]: cells for cells in ([c.strip() for c in line.split("  ") if c.strip()] for line in body)}


def _unreachable_env(fakes, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Every source's base URL at a loopback port nothing listens on: a machine without network."""
    closed = _closed_port()
    urls = ("COINGECKO_BASE_URL", "GUARDIAN_BASE_URL", "REDDIT_AUTH_URL", "REDDIT_API_URL", "FRED_BASE_URL")
    return _env(
        fakes,
        tmp_path,
        **{name: closed for name in (*urls, "YAHOO_BASE_URL")},
        CRYPTO_EXCHANGE_URLS=f"binance={closed},okx={closed},binanceusdm={closed},bybit={closed}",
        CRYPTO_RSS_FEEDS=f"{closed}/feed",
        **overrides,
    )


def _requests_seen(fakes) -> int:
    return sum(len(fake.requests) for fake in fakes.values())


def test_a_good_setup_passes_with_every_source_in_the_table(fakes, tmp_path):
    run = _doctor(_env(fakes, tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("CRYPTO_SOURCE=live: checking the live sources the platform uses.")
    rows = _rows(run.stdout)
    assert list(rows) == [
        "coingecko",
        "exchange binance",
        "exchange okx",
        "perpetuals binanceusdm",
        "perpetuals bybit",
        "guardian",
        "reddit token",
        "reddit r/Bitcoin",
        "rss:127.0.0.1",
        "fred DGS10",
        "fred DFF",
        "yahoo",
    ]  # both feeds on 127.0.0.1
    for source in (
        "coingecko",
        "exchange binance",
        "exchange okx",
        "perpetuals binanceusdm",
        "perpetuals bybit",
        "guardian",
        "reddit token",
        "reddit r/Bitcoin",
        "fred DGS10",
        "fred DFF",
        "yahoo",
    ):
        assert rows[source][2] == "ok" and rows[source][3] == "yes", rows[source]
    assert [rows[f"exchange {e}"][1] for e in ("binance", "okx")] == ["no", "no"], "each alone is optional"
    assert [c.strip() for c in rows["guardian"][3:5]] == ["yes", "valid"]
    assert re.fullmatch(r"\d+/5000 day, 719/720 minute", rows["guardian"][5].strip())
    assert re.fullmatch(r"\d+ calls left, resets in 420 s", rows["reddit r/Bitcoin"][5].strip())
    assert "124 of 124 coins priced" in run.stdout
    assert "no bars on any exchange (7): CRO, DAI, GNO, HNT, KAS, OCEAN, USDT" in run.stdout
    assert "bars served by: binance 115, okx 2" in run.stdout, "SOL and XMR only on OKX; BTC from Binance, first"
    assert "serves 2 coins (USDC 1, USDT 1)" in rows["exchange okx"][6]
    assert "1 localised_date" in run.stdout, "the pt-BR feed's date was read"
    assert [rows[f"perpetuals {e}"][1] for e in ("binanceusdm", "bybit")] == ["no", "no"], "derivatives are optional"
    assert "serves 1 coins (USDC 1)" in rows["perpetuals bybit"][6], "BTC comes from Binance USD-M, first"
    perpetuals = sum(1 for s in perpetual_listing() if s != "SOL")
    assert f"perpetuals served by: binanceusdm {perpetuals}, bybit 1" in run.stdout
    assert "  bybit: SOL" in run.stdout
    assert "no perpetual on any derivatives exchange (19): " in run.stdout
    assert run.stdout.rstrip().splitlines()[-1].startswith("OK: every required source works")


def test_a_geo_blocked_first_exchange_is_a_warning_and_its_coins_fall_to_the_next(fakes, tmp_path):
    fakes["binance"].refuse = 451
    try:
        run = _doctor(_env(fakes, tmp_path, CRYPTO_EXCHANGES="binance,okx"))
    finally:
        fakes["binance"].refuse = None
    assert run.returncode == 0, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert rows["exchange binance"][2].strip() == "warning" and "HTTP 451" in rows["exchange binance"][6]
    whole = "exchange binance: refused: load_markets refused with HTTP 451 (geo-blocked or blocked by a CDN): "
    assert whole + BINANCE_GEO_BLOCK["msg"] in run.stdout  # the exchange's reason, whole, below the table
    assert rows["exchange okx"][2].strip() == "ok"
    assert "bars served by: okx 3" in run.stdout


def test_a_geo_blocked_derivatives_exchange_is_a_warning_with_its_reason_whole(fakes, tmp_path):
    fakes["usdm"].refuse = 451
    try:
        run = _doctor(_env(fakes, tmp_path))
    finally:
        fakes["usdm"].refuse = None
    assert run.returncode == 0, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert rows["perpetuals binanceusdm"][2:4] == ["warning", "yes"]
    whole = "perpetuals binanceusdm: refused: load_markets refused with HTTP 451 (geo-blocked or blocked by a CDN): "
    assert whole + BINANCE_GEO_BLOCK["msg"] in run.stdout
    assert "perpetuals served by: bybit 2" in run.stdout, "BTC and SOL fall to Bybit"


def test_every_exchange_refusing_fails_the_required_one_of_them(fakes, tmp_path):
    fakes["binance"].refuse, fakes["okx"].refuse = 451, 403
    try:
        run = _doctor(_env(fakes, tmp_path))
    finally:
        fakes["binance"].refuse = fakes["okx"].refuse = None
    assert run.returncode == 1, run.stdout + run.stderr
    rows = _rows(run.stdout)
    for exchange in ("exchange binance", "exchange okx"):
        assert rows[exchange][1:4] == ["no", "warning", "yes"], "each answered, with a refusal"
    assert "geo-blocked" in rows["exchange binance"][6]
    assert rows["exchanges"][1:4] == ["yes", "FAILED", "yes"]
    assert "none of the 2 exchanges works: live bars need at least one" in rows["exchanges"][6]
    assert "no bars on any exchange (124): all" in run.stdout
    assert "no price at all (0): -" in run.stdout, "CoinGecko prices every coin's latest window"
    assert "NOT READY: required sources failed: exchanges (" in run.stdout


@pytest.mark.parametrize("source, args", [("live", ()), ("simulated", ("--live",))])
def test_offline_nothing_is_reachable_and_no_coin_has_a_price(fakes, tmp_path, source, args):
    run = _doctor(_unreachable_env(fakes, tmp_path, CRYPTO_SOURCE=source), *args)
    assert run.returncode == 1, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert len(rows) == 12 and all(row[3] == "no" for row in rows.values()), "nothing answered"
    assert [rows[f"perpetuals {e}"][2] for e in ("binanceusdm", "bybit")] == ["warning", "warning"]
    assert [rows[s][1:3] for s in ("exchange binance", "exchange okx")] == [["no", "warning"]] * 2
    assert rows["exchanges"][1:3] == ["yes", "FAILED"] and rows["coingecko"][1:3] == ["yes", "FAILED"]
    assert "ConnectError" in rows["coingecko"][6] and "NetworkError" in rows["exchange binance"][6]
    assert "coins: 124; no price source could be reached: none of the 124 coins has a price" in run.stdout
    assert "no price at all (0)" not in run.stdout
    verdict = run.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("NOT READY: no source could be reached (is this machine offline?); required sources")
    assert "coingecko, exchanges, guardian, reddit token" in verdict
    assert verdict.count("the simulated platform does not use them") == (source == "simulated")
    assert run.stderr == "", "the table has each failure; no retry log besides it"


def test_sources_answering_errors_are_reachable_but_failed(fakes, tmp_path):
    for name in ("cg", "binance", "okx"):
        fakes[name].faults.extend(["html", "html"])  # a CDN's 503 page to both attempts
    try:
        run = _doctor(_env(fakes, tmp_path))
    finally:
        for name in ("cg", "binance", "okx"):
            fakes[name].faults.clear()
    assert run.returncode == 1, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert rows["coingecko"][2:4] == ["FAILED", "yes"] and "HTTP 503" in rows["coingecko"][6]
    assert rows["exchange binance"][2:4] == ["warning", "yes"] and rows["exchanges"][2:4] == ["FAILED", "yes"]
    assert "coins: 124; no price source works (CoinGecko and every exchange failed)" in run.stdout
    assert run.stdout.rstrip().splitlines()[-1].startswith("NOT READY: required sources failed: coingecko, exchanges")


def test_simulated_mode_checks_no_live_source_and_passes(fakes, tmp_path):
    before = _requests_seen(fakes)
    run = _doctor(_unreachable_env(fakes, tmp_path, CRYPTO_SOURCE="simulated"))
    as_json = _doctor(_env(fakes, tmp_path, CRYPTO_SOURCE="simulated"), "--json")
    assert run.returncode == as_json.returncode == 0, run.stdout + run.stderr + as_json.stderr
    assert run.stdout.startswith("CRYPTO_SOURCE=simulated: the platform runs on simulated sources")
    assert "so none is checked" in run.stdout and "python -m cli.doctor --live" in run.stdout
    assert "source " not in run.stdout and "NOT READY" not in run.stdout
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["source"], report["live_checked"], report["checks"]) == (True, "simulated", False, [])
    assert _requests_seen(fakes) == before, "no live source was called"


def test_simulated_mode_with_live_checks_what_going_live_would_use(fakes, tmp_path):
    run = _doctor(_env(fakes, tmp_path, CRYPTO_SOURCE="simulated"), "--live")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[:2] == [
        "CRYPTO_SOURCE=simulated: the platform runs on simulated sources and uses none of these.",
        "Checking what CRYPTO_SOURCE=live would use:",
    ]
    assert _rows(run.stdout)["coingecko"][2] == "ok"
    assert run.stdout.rstrip().splitlines()[-1].startswith("OK: every required source works")


def test_a_broken_setup_fails_and_says_what_is_wrong(fakes, tmp_path):
    env = _env(
        fakes,
        tmp_path,
        COINGECKO_BASE_URL=_closed_port(),
        GUARDIAN_API_KEY="wrong-key",
        CRYPTO_REDDIT_SUBREDDITS="Bitcoin,Bitcoinn",
        CRYPTO_FRED_SERIES="DGS10,NOPE",
        YAHOO_BASE_URL=_closed_port(),
    )
    run = _doctor(env)
    assert run.returncode == 1, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert rows["coingecko"][2].strip() == "FAILED" and rows["coingecko"][3].strip() == "no"
    assert rows["guardian"][2].strip() == "FAILED" and rows["guardian"][4].strip() == "invalid"
    assert rows["reddit r/Bitcoinn"][2].strip() == "FAILED" and "r/Bitcoinn not found" in run.stdout
    assert rows["reddit r/Bitcoin"][2].strip() == "ok"
    assert rows["fred NOPE"][2].strip() == "FAILED" and "series does not exist" in run.stdout
    assert rows["fred DGS10"][2].strip() == "ok"
    assert rows["yahoo"][2].strip() == "warning", "Yahoo is best effort"
    assert "NOT READY: required sources failed: coingecko, guardian, reddit r/Bitcoinn, fred NOPE (" in run.stdout


def test_json_output_and_skipped_sources(fakes, tmp_path):
    env = _env(fakes, tmp_path, GUARDIAN_API_KEY="", REDDIT_CLIENT_ID="", FRED_API_KEY="")
    run = _doctor(env, "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    by_source = {c["source"]: c for c in report["checks"]}
    assert by_source["guardian"]["status"] == "skipped" and by_source["guardian"]["key"] == "not set"
    assert by_source["reddit"]["status"] == "skipped" and by_source["fred"]["status"] == "skipped"
    assert report["ok"] is True and report["coins"]["universe"] == 124
    assert (report["source"], report["live_checked"]) == ("live", True)
    assert report["coins"]["price_sources_working"] == ["coingecko", "exchange binance", "exchange okx"]
    exchange_of = report["coins"]["exchange_of"]
    assert (exchange_of["BTC"], exchange_of["SOL"], exchange_of["USDT"]) == ("binance", "okx", None)
    assert report["coins"]["no_price_at_all"] == []
    perpetual_of = report["coins"]["perpetual_of"]
    assert (perpetual_of["BTC"], perpetual_of["SOL"], perpetual_of["USDT"]) == ("binanceusdm", "bybit", None)
    assert report["coins"]["derivatives_exchanges"] == ["binanceusdm", "bybit"]
    assert "USDT" in report["coins"]["no_perpetual_anywhere"]


def test_no_derivatives_exchange_configured_checks_none(tmp_path):
    settings = load_settings({"CRYPTO_HOME": str(tmp_path)}).model_copy(update={"derivatives_exchanges": ()})
    checks, perpetual_of = check_derivatives(settings, load_universe())
    assert checks == [] and set(perpetual_of.values()) == {None}


def test_a_coingecko_key_is_checked_and_its_limits_reported(fakes, tmp_path):
    fakes["cg"].api_key = "cg-demo-key"
    try:
        good = _doctor(_env(fakes, tmp_path, COINGECKO_API_KEY="cg-demo-key"))
        wrong = _doctor(_env(fakes, tmp_path, COINGECKO_API_KEY="not-the-key"))
    finally:
        fakes["cg"].api_key = None
    row = _rows(good.stdout)["coingecko"]
    assert good.returncode == 0 and row[4].strip() == "valid"
    assert re.fullmatch(r"30/min, \d+ calls left this month", row[5].strip())
    row = _rows(wrong.stdout)["coingecko"]
    assert wrong.returncode == 1 and row[2].strip() == "FAILED" and row[4].strip() == "invalid"
    assert "10002" in row[6]


def test_unusable_settings_exit_2(tmp_path):
    env = {**os.environ, "CRYPTO_HOME": str(tmp_path), "CRYPTO_EXCHANGE_URLS": "binance"}
    run = _doctor(env)
    assert run.returncode == 2 and "CRYPTO_EXCHANGE_URLS" in run.stderr
