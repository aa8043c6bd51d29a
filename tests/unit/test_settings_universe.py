"""Settings from the environment, and the symbol universe file."""

from datetime import datetime

import pytest

from resources.config.settings import SettingsError, load_settings, parse_partition_start
from resources.config.universe import UniverseError, load_universe, parse_universe


def test_defaults_are_the_embedded_offline_platform(tmp_path):
    settings = load_settings({"CRYPTO_HOME": str(tmp_path)})
    assert settings.db_url == f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    assert settings.source == "simulated" and settings.sentiment_model == "lexicon"
    assert settings.partition_start == "30d" and settings.api_keys == ()
    assert settings.lake_location == str(tmp_path.resolve() / "lake") and settings.lake_retention_days == 30
    assert settings.lake_storage == ()


def test_lake_settings_on_s3():
    env = {
        "CRYPTO_LAKE_URI": "s3://crypto-lake/prod/",
        "CRYPTO_LAKE_RETENTION_DAYS": "45",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_PROFILE": "not passed on",
    }
    s = load_settings(env)
    assert (s.lake_location, s.lake_retention_days) == ("s3://crypto-lake/prod", 45)
    assert dict(s.lake_storage) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }


def test_every_variable_is_read():
    env = {
        "CRYPTO_DB_URL": "mysql+pymysql://u:p@h:3306/crypto",
        "CRYPTO_SOURCE": "live",
        "CRYPTO_PARTITION_START": "2026-01-01",
        "CRYPTO_SENTIMENT_MODEL": "/models/cryptobert",
        "COINGECKO_API_KEY": "cg",
        "COINGECKO_PLAN": "pro",
        "GUARDIAN_API_KEY": "g",
        "REDDIT_CLIENT_ID": "rid",
        "REDDIT_CLIENT_SECRET": "rs",
        "FRED_API_KEY": "f",
        "CRYPTO_API_KEYS": "a, b,",
        "CRYPTO_ALERT_WEBHOOK_URL": "http://hook",
    }
    s = load_settings(env)
    assert (s.db_url, s.source, s.coingecko_plan, s.api_keys) == (env["CRYPTO_DB_URL"], "live", "pro", ("a", "b"))
    assert (s.guardian_api_key, s.reddit_client_id, s.reddit_client_secret, s.fred_api_key) == ("g", "rid", "rs", "f")
    assert s.partition_start_datetime() == datetime(2026, 1, 1)


def test_paths_are_made_absolute_once_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"CRYPTO_HOME": "rel/home", "CRYPTO_UNIVERSE_FILE": "coins.csv"})
    assert settings.home == tmp_path / "rel" / "home" and settings.home.is_absolute()
    assert settings.db_url == f"sqlite:///{tmp_path / 'rel' / 'home' / 'warehouse.sqlite'}"
    assert settings.universe_file == tmp_path / "coins.csv"
    assert (
        load_settings({"CRYPTO_DB_URL": "sqlite:///data/w.sqlite"}).db_url
        == f"sqlite:///{tmp_path / 'data' / 'w.sqlite'}"
    )
    for url in ("sqlite:////abs/w.sqlite", "sqlite://", "mysql+pymysql://u:p@h:3306/crypto"):
        assert load_settings({"CRYPTO_DB_URL": url}).db_url == url
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a later change of directory moves nothing already loaded
    assert settings.home == tmp_path / "rel" / "home"


def test_live_run_deadline_and_source_base_urls_are_read():
    defaults = load_settings({})
    assert defaults.live_run_deadline_s == 300 and defaults.fred_base_url is None
    env = {
        "CRYPTO_LIVE_RUN_DEADLINE_S": "120",
        "COINGECKO_BASE_URL": "http://cg",
        "GUARDIAN_BASE_URL": "http://g",
        "REDDIT_AUTH_URL": "http://ra",
        "REDDIT_API_URL": "http://rapi",
        "FRED_BASE_URL": "http://f",
        "YAHOO_BASE_URL": "http://y",
    }
    s = load_settings(env)
    assert s.live_run_deadline_s == 120
    assert (
        s.coingecko_base_url,
        s.guardian_base_url,
        s.reddit_auth_url,
        s.reddit_api_url,
        s.fred_base_url,
        s.yahoo_base_url,
    ) == ("http://cg", "http://g", "http://ra", "http://rapi", "http://f", "http://y")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CRYPTO_DB_URL": "not a url"}, "CRYPTO_DB_URL"),
        ({"CRYPTO_LIVE_RUN_DEADLINE_S": "soon"}, "CRYPTO_LIVE_RUN_DEADLINE_S"),
        ({"CRYPTO_LIVE_RUN_DEADLINE_S": "-5"}, "CRYPTO_LIVE_RUN_DEADLINE_S"),
        ({"CRYPTO_SOURCE": "random"}, "CRYPTO_SOURCE"),
        ({"COINGECKO_PLAN": "gold"}, "COINGECKO_PLAN"),
        ({"CRYPTO_PARTITION_START": "yesterday"}, "CRYPTO_PARTITION_START"),
        ({"CRYPTO_PARTITION_START": "2026-01-01T00:03"}, "5-minute boundary"),
        ({"CRYPTO_LAKE_RETENTION_DAYS": "0"}, "CRYPTO_LAKE_RETENTION_DAYS"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_rolling_horizon_is_aligned_to_utc_midnight():
    start = parse_partition_start("90d", now=datetime(2026, 11, 26, 15, 47))
    assert start == datetime(2026, 8, 28, 0, 0)


def test_shipped_universe_has_about_124_unique_coins():
    coins = load_universe()
    assert len(coins) == 124
    assert len({c.symbol for c in coins}) == len({c.coin_id for c in coins}) == 124
    assert {"BTC", "ETH", "SOL"} <= {c.symbol for c in coins}


def test_universe_file_override_and_errors(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("symbol,coin_id\nbtc,bitcoin\nETH,ethereum\n")
    assert [c.symbol for c in load_universe(path)] == ["BTC", "ETH"]
    with pytest.raises(UniverseError, match="missing column"):
        parse_universe("symbol\nBTC\n")
    with pytest.raises(UniverseError, match=":3: duplicate"):
        parse_universe("symbol,coin_id\nBTC,bitcoin\nBTC,bitcoin2\n")


def test_alert_links_follow_the_ui_host_and_port():
    from resources.config.settings import load_settings

    assert load_settings({}).ui_url == "http://127.0.0.1:3000"
    assert load_settings({"DAGSTER_PORT": "3100"}).ui_url == "http://127.0.0.1:3100"
    assert load_settings({"DAGSTER_HOST": "0.0.0.0", "DAGSTER_PORT": "3100"}).ui_url == "http://127.0.0.1:3100"
    assert load_settings({"DAGSTER_HOST": "dagster.internal"}).ui_url == "http://dagster.internal:3000"
    assert load_settings({"DAGSTER_HOST": "::1", "DAGSTER_PORT": "3100"}).ui_url == "http://[::1]:3100"
    assert (
        load_settings({"CRYPTO_UI_URL": "https://dagster.example.com/", "DAGSTER_PORT": "3100"}).ui_url
        == "https://dagster.example.com"
    )
