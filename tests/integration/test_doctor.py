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

from testkit.fakes.doctor_fakes import doctor_env, start_fakes
from testkit.fakes.loopback import free_port

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
    """Table rows by source: the columns split on runs of two spaces."""
    lines = stdout.splitlines()
    body = lines[2 : lines.index("")]
    return {cells[0]: cells for cells in ([c for c in line.split("  ") if c.strip()] for line in body)}


def test_a_good_setup_passes_with_every_source_in_the_table(fakes, tmp_path):
    run = _doctor(_env(fakes, tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert list(rows) == [
        "coingecko",
        "exchange binance",
        "exchange okx",
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
        "guardian",
        "reddit token",
        "reddit r/Bitcoin",
        "fred DGS10",
        "fred DFF",
        "yahoo",
    ):
        assert rows[source][2].strip() == "ok", rows[source]
    assert [c.strip() for c in rows["guardian"][3:5]] == ["yes", "valid"]
    assert re.fullmatch(r"\d+/5000 day, 719/720 minute", rows["guardian"][5].strip())
    assert re.fullmatch(r"\d+ calls left, resets in 420 s", rows["reddit r/Bitcoin"][5].strip())
    assert "124 of 124 coins priced" in run.stdout
    assert "no bars on any exchange (7): CRO, DAI, GNO, HNT, KAS, OCEAN, USDT" in run.stdout
    assert "bars served by: binance 115, okx 2" in run.stdout, "SOL and XMR only on OKX; BTC from Binance, first"
    assert "serves 2 coins (USDC 1, USDT 1)" in rows["exchange okx"][6]
    assert "1 localised_date" in run.stdout, "the pt-BR feed's date was read"
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
    assert rows["exchange okx"][2].strip() == "ok"
    assert "bars served by: okx 3" in run.stdout


def test_every_exchange_refusing_fails(fakes, tmp_path):
    fakes["binance"].refuse, fakes["okx"].refuse = 451, 403
    try:
        run = _doctor(_env(fakes, tmp_path))
    finally:
        fakes["binance"].refuse = fakes["okx"].refuse = None
    assert run.returncode == 1, run.stdout + run.stderr
    rows = _rows(run.stdout)
    assert rows["exchange binance"][2].strip() == rows["exchange okx"][2].strip() == "FAILED"
    assert "geo-blocked" in rows["exchange binance"][6]
    assert "no bars on any exchange (124)" in run.stdout


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
    assert "NOT READY: a required source failed" in run.stdout


def test_json_output_and_skipped_sources(fakes, tmp_path):
    env = _env(fakes, tmp_path, GUARDIAN_API_KEY="", REDDIT_CLIENT_ID="", FRED_API_KEY="")
    run = _doctor(env, "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    by_source = {c["source"]: c for c in report["checks"]}
    assert by_source["guardian"]["status"] == "skipped" and by_source["guardian"]["key"] == "not set"
    assert by_source["reddit"]["status"] == "skipped" and by_source["fred"]["status"] == "skipped"
    assert report["ok"] is True and report["coins"]["universe"] == 124
    exchange_of = report["coins"]["exchange_of"]
    assert (exchange_of["BTC"], exchange_of["SOL"], exchange_of["USDT"]) == ("binance", "okx", None)
    assert report["coins"]["no_price_at_all"] == []


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
