"""FRED, Yahoo Finance and simulated macro sources, against a fake server with faults."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from resources.config.settings import Settings
from resources.sources.http import HttpSource, SourceError
from resources.sources.macro_sources import (
    FredClient,
    YahooClient,
    fetch_macro,
    parse_fred_observations,
    simulated_macro_frame,
)
from testkit.fakes.fake_fred import API_KEY, MAX_VINTAGE_DATES, FakeMacroServer

D = date(2026, 1, 5)


def no_sleep(seconds: float) -> None:
    """Retries in tests do not wait."""


@pytest.fixture
def server():
    with FakeMacroServer() as fake:
        fake.add_fred("DGS10", D, "4.10", D + timedelta(days=1))
        fake.add_fred("DGS10", D + timedelta(days=1), ".", D + timedelta(days=2))  # a holiday
        fake.add_fred("DGS10", D + timedelta(days=2), "4.20", D + timedelta(days=3))
        fake.add_fred("CPIAUCSL", D.replace(day=1), "320.1", D + timedelta(days=40))
        fake.add_fred("CPIAUCSL", D.replace(day=1), "320.4", D + timedelta(days=70))  # a revision
        fake.add_yahoo("^GSPC", D, 6000.5)
        fake.add_yahoo("^GSPC", D + timedelta(days=1), None)
        fake.add_yahoo("^GSPC", D + timedelta(days=2), 6010.0)
        yield fake


def fred(server: FakeMacroServer, key: str = API_KEY) -> FredClient:
    return FredClient(key, http=HttpSource("fred", server.url, sleep=no_sleep, backoff_base_s=0.0))


def test_fred_keeps_the_first_release_and_its_publication_date(server) -> None:
    cpi = fred(server).observations("CPIAUCSL", D.replace(day=1), D + timedelta(days=1))
    assert cpi.to_dict("records") == [
        {
            "series_id": "CPIAUCSL",
            "observation_date": pd.Timestamp(D.replace(day=1)),
            "value": 320.1,
            "realtime_start": pd.Timestamp(D + timedelta(days=40)),
            "source": "fred",
        }
    ]
    path, params = server.requests[-1]
    assert path == "/fred/series/observations"
    assert params["realtime_start"] == D.replace(day=1).isoformat() and params["realtime_end"] == "9999-12-31", (
        "the real-time period starts at the observation start: no earlier vintage can hold the observation"
    )
    assert params["observation_end"] == D.isoformat(), "the end date is exclusive"


def test_fred_missing_marker_becomes_null(server) -> None:
    rows = fred(server).observations("DGS10", D, D + timedelta(days=3))
    assert rows["observation_date"].dt.date.tolist() == [D, D + timedelta(days=1), D + timedelta(days=2)]
    assert rows["value"].iloc[0] == 4.10 and math.isnan(rows["value"].iloc[1]) and rows["value"].iloc[2] == 4.20
    assert rows["realtime_start"].dt.date.tolist() == [D + timedelta(days=k) for k in (1, 2, 3)]


@pytest.mark.parametrize("faults", [("429",), ("500", "503"), ("malformed",), ("429", "500", "malformed")])
def test_fred_transient_faults_are_retried(server, faults) -> None:
    server.fail("fred", *faults)
    client = fred(server)
    rows = client.observations("DGS10", D, D + timedelta(days=1))
    assert rows["value"].tolist() == [4.10]
    assert client.http.stats.retries == len(faults)


@pytest.fixture
def daily_server():
    """DFF (every day) and DGS10 (business days) from 2015: about 4,300 and 3,100 vintage dates."""
    with FakeMacroServer() as fake:
        fake.add_daily_series("DFF", date(2015, 1, 1), date(2026, 11, 20), business_days=False)
        fake.add_daily_series("DGS10", date(2015, 1, 1), date(2026, 11, 20), business_days=True)
        yield fake


def test_fake_fred_enforces_the_vintage_cap(daily_server) -> None:
    """The request the client used to send (every vintage since 1776) is refused as FRED refuses it."""
    http = HttpSource("fred", daily_server.url, sleep=no_sleep, max_attempts=1)
    with pytest.raises(SourceError) as info:
        http.get_json(
            "/fred/series/observations",
            {
                "series_id": "DFF",
                "api_key": API_KEY,
                "file_type": "json",
                "observation_start": "2016-03-01",
                "observation_end": "2016-03-09",
                "realtime_start": "1776-07-04",
                "realtime_end": "9999-12-31",
            },
        )
    assert info.value.status == 400
    assert "exceeds the maximum number of vintage dates allowed (2000)" in str(info.value)


@pytest.mark.parametrize("series_id", ["DFF", "DGS10"])
def test_daily_series_land_within_the_vintage_cap_with_their_first_release(daily_server, series_id) -> None:
    start, end = date(2016, 3, 1), date(2016, 3, 31)
    client = fred(daily_server)
    rows = client.observations(series_id, start, end)
    expected = {}
    for vintage in daily_server.fred[series_id]:
        if start <= vintage.observation_date < end:
            known = expected.get(vintage.observation_date)
            if known is None or vintage.realtime_start < known[0]:
                expected[vintage.observation_date] = (vintage.realtime_start, float(vintage.value))
    assert len(rows) == len(expected) > 20
    for row in rows.itertuples():
        published, value = expected[row.observation_date.date()]
        assert (row.realtime_start.date(), row.value) == (published, value), "first release and its day"
    observation_calls = [p for path, p in daily_server.requests if path == "/fred/series/observations"]
    assert len(observation_calls) >= 2, "more than 2,000 vintage dates since 2016: the real-time period was split"
    for params in observation_calls:
        held = daily_server.vintage_dates(
            series_id,
            date.fromisoformat(params["realtime_start"]),
            date.fromisoformat(params["realtime_end"]),
            date.today(),
        )
        assert len(held) <= MAX_VINTAGE_DATES
    periods = [(p["realtime_start"], p["realtime_end"]) for p in observation_calls]
    assert periods[0][0] == start.isoformat() and periods[-1][1] == "9999-12-31"
    assert all(date.fromisoformat(a[1]) < date.fromisoformat(b[0]) for a, b in zip(periods, periods[1:])), (
        "consecutive periods, none overlapping"
    )


def test_daily_defaults_land_through_fetch_macro_against_the_capped_fake(daily_server, tmp_path) -> None:
    settings = _settings(tmp_path, source="live", fred_api_key=API_KEY)
    got = fetch_macro(
        settings,
        date(2017, 6, 1),
        date(2017, 6, 15),
        fred_series=["DFF", "DGS10"],
        yahoo_tickers=[],
        fred_base_url=daily_server.url,
        yahoo_base_url=daily_server.url,
    )
    assert not got.warnings and not got.fred_failed
    counts = got.frame.groupby("series_id").size().to_dict()
    assert counts == {"DFF": 14, "DGS10": 10}
    assert (got.frame["realtime_start"] > got.frame["observation_date"]).all()


def test_a_recent_range_needs_one_observations_call(daily_server) -> None:
    client = fred(daily_server)
    rows = client.observations("DFF", date(2026, 11, 1), date(2026, 11, 8))
    assert len(rows) == 7
    calls = [path for path, _ in daily_server.requests]
    assert calls == ["/fred/series/vintagedates", "/fred/series/observations"]


def test_vintage_dates_list_every_publication_day(daily_server) -> None:
    client = fred(daily_server)
    dates = client.vintage_dates("DFF", date(2015, 1, 1))
    assert dates == daily_server.vintage_dates("DFF", date(2015, 1, 1), date(9999, 12, 31), date.today())
    assert len(dates) > 4000
    assert [p.get("offset") for path, p in daily_server.requests] == ["0"], "one page of up to 10,000"


def test_nothing_published_since_the_start_means_no_observations_call(server) -> None:
    client = fred(server)
    rows = client.observations("DGS10", date(2026, 6, 1), date(2026, 6, 5))
    assert rows.empty
    assert [path for path, _ in server.requests] == ["/fred/series/vintagedates"]


def test_fred_errors_name_the_series_and_fred_message(server) -> None:
    with pytest.raises(SourceError, match=r"fred: NOPE: HTTP 400: Bad Request. +The series does not exist"):
        fred(server).observations("NOPE", D, D + timedelta(days=1))
    with pytest.raises(SourceError, match="api_key is not registered") as info:
        fred(server, key="wrong").observations("DGS10", D, D + timedelta(days=1))
    assert "wrong" not in str(info.value), "the API key never appears in an error"
    server.fail("fred", "400")
    with pytest.raises(SourceError, match="Injected"):
        fred(server).observations("DGS10", D, D + timedelta(days=1))


def test_fred_rejects_a_malformed_answer() -> None:
    with pytest.raises(SourceError, match="no 'observations'"):
        parse_fred_observations("DGS10", {"error": 1}, D, D)
    with pytest.raises(SourceError, match="malformed observation"):
        parse_fred_observations("DGS10", {"observations": [{"date": "x"}]}, D, D + timedelta(days=1))


def test_yahoo_daily_closes_skip_nulls_and_use_the_exchange_date(server) -> None:
    client = YahooClient(http=HttpSource("yahoo", server.url, sleep=no_sleep))
    rows = client.daily_closes("^GSPC", D, D + timedelta(days=3))
    assert rows["observation_date"].dt.date.tolist() == [D, D + timedelta(days=2)]
    assert rows["value"].tolist() == [6000.5, 6010.0]
    assert (rows["realtime_start"] == rows["observation_date"]).all()
    assert unquote(server.requests[-1][0]) == "/v8/finance/chart/^GSPC"
    with pytest.raises(SourceError, match="HTTP 404"):
        client.daily_closes("NOPE", D, D + timedelta(days=3))


def _settings(tmp_path: Path, **kw) -> Settings:
    return Settings.model_validate({"home": tmp_path, "db_url": f"sqlite:///{tmp_path}/w.sqlite", **kw})


def test_live_fetch_without_fred_key_skips_fred_with_a_warning(server, tmp_path) -> None:
    got = fetch_macro(
        _settings(tmp_path, source="live"),
        D,
        D + timedelta(days=3),
        yahoo_tickers=["^GSPC", "NOPE"],
        fred_base_url=server.url,
        yahoo_base_url=server.url,
    )
    assert got.warnings[0] == "FRED_API_KEY is not set: FRED series skipped"
    assert any("NOPE" in w and "best effort" in w for w in got.warnings)
    assert got.yahoo_failed == ["NOPE"] and not got.fred_down
    assert set(got.frame["series_id"]) == {"^GSPC"}


def test_live_fetch_reports_fred_down_only_when_every_series_failed(server, tmp_path) -> None:
    settings = _settings(tmp_path, source="live", fred_api_key=API_KEY)
    got = fetch_macro(
        settings,
        D,
        D + timedelta(days=3),
        fred_series=["DGS10", "NOPE"],
        yahoo_tickers=[],
        fred_base_url=server.url,
        yahoo_base_url=server.url,
    )
    assert got.fred_failed == ["NOPE"] and not got.fred_down
    assert got.frame["series_id"].unique().tolist() == ["DGS10"]
    got = fetch_macro(
        settings,
        D,
        D + timedelta(days=3),
        fred_series=["NOPE"],
        yahoo_tickers=[],
        fred_base_url=server.url,
        yahoo_base_url=server.url,
    )
    assert got.fred_down


def test_simulated_macro_is_deterministic_and_only_what_was_published() -> None:
    series = ["DGS10", "DFF", "CPIAUCSL", "^GSPC", "EXTRA"]
    today = date(2026, 3, 1)
    whole = simulated_macro_frame(series, date(2026, 1, 1), date(2026, 3, 1), today)
    parts = pd.concat(
        [
            simulated_macro_frame(series, date(2026, 1, 1), date(2026, 2, 1), today),
            simulated_macro_frame(series, date(2026, 2, 1), date(2026, 3, 1), today),
        ],
        ignore_index=True,
    )
    key = ["series_id", "observation_date"]
    pd.testing.assert_frame_equal(
        whole.sort_values(key).reset_index(drop=True), parts.sort_values(key).reset_index(drop=True)
    )
    assert (whole["realtime_start"] <= pd.Timestamp(today)).all()
    assert (whole["realtime_start"] >= whole["observation_date"]).all()
    cpi = whole.loc[whole["series_id"] == "CPIAUCSL"]
    assert cpi["observation_date"].dt.date.tolist() == [date(2026, 1, 1)], "February's CPI is not out yet"
    rates = whole.loc[whole["series_id"] == "DGS10"]
    assert (rates["observation_date"].dt.weekday < 5).all() and 0 < rates["value"].min() < rates["value"].max() < 10
    assert set(whole["source"]) == {"simulated"}
