"""The definitions take every value from one settings object; credentials reach the resources as
``dg.EnvVar`` (Dagster resolves them when it builds a resource), so no value of one is part of a
resource's config, which the UI and the run records show."""

import dagster as dg

from crypto_assets.definitions import build_definitions
from resources.config.settings import load_settings

SECRETS = {
    "CRYPTO_DB_URL": "mysql+pymysql://crypto:db-password-1@db.internal:3306/crypto",
    "COINGECKO_API_KEY": "cg-key-2",
    "GUARDIAN_API_KEY": "guardian-key-3",
    "REDDIT_CLIENT_ID": "reddit-id-4",
    "REDDIT_CLIENT_SECRET": "reddit-secret-5",
    "FRED_API_KEY": "fred-key-6",
    "CRYPTO_ALERT_WEBHOOK_URL": "https://hooks.example/secret-7",
    "AWS_ACCESS_KEY_ID": "aws-id-8",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-9",
}


def test_the_resources_carry_the_settings_and_credentials_only_as_env_vars(monkeypatch, tmp_path):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRYPTO_SOURCE", "live")
    monkeypatch.setenv("CRYPTO_EXCHANGES", "okx,kraken")
    monkeypatch.setenv("CRYPTO_SENTIMENT_MODEL", "/models/cryptobert")
    monkeypatch.setenv("CRYPTO_LIVE_RUN_DEADLINE_S", "120")
    monkeypatch.setenv("CRYPTO_MACRO_LOOKBACK_DAYS", "10")
    monkeypatch.setenv("CRYPTO_RETENTION_DAYS", "90")
    monkeypatch.setenv("CRYPTO_LAKE_URI", "s3://lake/prod")
    settings = load_settings()
    defs = build_definitions(settings)
    resources = defs.resources or {}
    price, news, macro = resources["price_source"], resources["news_sources"], resources["macro_sources"]
    assert (price.mode, price.exchanges, price.live_run_deadline_s) == ("live", "okx,kraken", 120)
    assert (news.mode, macro.source, macro.lookback_days, macro.live_run_deadline_s) == ("live", "live", 10, 120)
    assert resources["sentiment_model"].model == "/models/cryptobert"
    assert resources["maintenance"].retention_days == 90 and resources["lake"].uri == "s3://lake/prod"
    assert resources["warehouse"].db_url == dg.EnvVar("CRYPTO_DB_URL")
    assert (news.guardian_api_key, price.coingecko_api_key) == (
        dg.EnvVar("GUARDIAN_API_KEY"),
        dg.EnvVar("COINGECKO_API_KEY"),
    )
    config = repr({key: resource.model_dump() for key, resource in resources.items()})
    assert [name for name, value in SECRETS.items() if value in config] == []
    schedules = {s.name: s for s in defs.schedules or []}
    assert schedules["retention_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedules["backup_schedule"].default_status == dg.DefaultScheduleStatus.STOPPED


def test_sqlite_urls_and_unset_credentials_are_plain_values(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTO_DB_URL", f"sqlite:///{tmp_path}/w.sqlite")
    resources = build_definitions(load_settings()).resources or {}
    assert resources["warehouse"].db_url == f"sqlite:///{tmp_path}/w.sqlite"
    assert resources["news_sources"].guardian_api_key == "" and resources["alerts"].webhook_url == ""
