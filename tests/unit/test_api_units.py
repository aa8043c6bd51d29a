"""Pure pieces of the gateway: format negotiation, cursors, keys, rate limits, ranges."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from api.auth import KeyChecker
from api.dates import DateTimeValue, DateValue, explain
from api.errors import ApiError
from api.formats import csv_batch, json_body, negotiate
from api.gateway import parse_columns, time_range
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.reads import OutputColumn, decode_cursor, encode_cursor
from api.schemas import Format
from resources.storage.schema import PRICES, SENTIMENT, TableContract


def test_negotiate_prefers_the_parameter_then_accept_quality():
    assert negotiate(Format.csv, "application/vnd.apache.arrow.stream") is Format.csv
    assert negotiate(None, None) is Format.json
    assert negotiate(None, "text/csv;q=0.2, application/x-parquet;q=0.9") is Format.parquet
    assert negotiate(None, "image/png, */*") is Format.json
    assert negotiate(None, "text/csv;q=abc") is Format.json


def _keys(contract: TableContract) -> list[OutputColumn]:
    return [OutputColumn(name, sa.column(name), "time" if name == "window_start" else "str") for name in contract.order]


def test_cursor_round_trip_and_refusals():
    values = ["BTC", datetime(2026, 1, 1, 0, 5)]
    cursor = encode_cursor(PRICES.dataset, values)
    assert decode_cursor(PRICES.dataset, _keys(PRICES), cursor) == values
    for bad in (
        "",
        "!!!",
        "bm90IGpzb24",
        encode_cursor(SENTIMENT.dataset, ["a", datetime(2026, 1, 1), "i", "m"]),
        encode_cursor(PRICES.dataset, ["BTC", "yesterday"]),
        encode_cursor(PRICES.dataset, ["BTC"]),
    ):
        with pytest.raises(ApiError) as err:
            decode_cursor(PRICES.dataset, _keys(PRICES), bad)
        assert err.value.status == 400 and "cursor" in err.value.message


def test_key_checker():
    checker = KeyChecker(("alpha", "beta"))
    assert checker.check("beta", None, "1.2.3.4").id.startswith("key:")
    assert checker.check(None, "alpha", "1.2.3.4").id != checker.check("beta", None, "x").id
    with pytest.raises(ApiError) as missing:
        checker.check(None, None, "x")
    assert missing.value.status == 401
    with pytest.raises(ApiError) as wrong:
        checker.check("alph", None, "x")
    assert wrong.value.status == 403
    assert KeyChecker(()).check(None, None, "10.0.0.1").id == "ip:10.0.0.1"


def test_rate_limiter_counts_a_moving_window_per_principal():
    async def run() -> None:
        limiter = RateLimiter(2, None, key_prefix="unit", fallbacks=Metrics().rate_limit_fallbacks)
        await limiter.acquire("k")
        await limiter.acquire("k")
        with pytest.raises(ApiError) as err:
            await limiter.acquire("k")
        assert err.value.status == 429 and 59 <= int(err.value.headers["Retry-After"]) <= 60
        await limiter.acquire("other")  # each principal has its own window
        off = RateLimiter(0, None, key_prefix="unit", fallbacks=Metrics().rate_limit_fallbacks)
        for _ in range(5):
            await off.acquire("anyone")  # 0 turns the limit off

    asyncio.run(run())


def test_time_range_defaults_and_checks():
    end = datetime(2026, 1, 2)
    assert time_range(None, None, default_end=end, default_span=timedelta(days=1), max_span=None) == (
        datetime(2026, 1, 1),
        end,
    )
    aware = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert time_range(aware, None, default_end=end, default_span=timedelta(days=1), max_span=None)[0] == datetime(
        2026, 1, 1
    )
    for start, stop in ((end, end), (datetime(2024, 1, 1), end), (datetime(1, 1, 1), end)):
        with pytest.raises(ApiError):
            time_range(start, stop, default_end=end, default_span=timedelta(days=1), max_span=timedelta(days=366))


def test_parse_columns():
    assert parse_columns(None, ["a", "b"], "x") is None
    assert parse_columns("b, a,b", ["a", "b"], "x") == ["b", "a"]
    with pytest.raises(ApiError, match="unknown x column"):
        parse_columns("a,zz", ["a", "b"], "x")


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("2026-11-30T25:00:00Z", "hour 25 is out of range 0-23"),
        ("2026-11-30T23:60:00Z", "minute 60 is out of range 0-59"),
        ("2026-11-30T23:59:61", "second 61 is out of range 0-59"),
        ("2026-13-01", "month 13 is out of range 1-12"),
        ("2026-02-29T00:00:00Z", "day 29 is out of range 1-28 for 2026-02"),
        ("0000-01-01", "year 0 is out of range 1-9999"),
        ("2026-11-30T00:00:00+25:00", "time zone hour 25 is out of range 0-23"),
        ("2026-11-30T00:00:00 UTC", "the time zone ' UTC' is not Z or +HH:MM"),
        ("2026-11-30X00:00", "expected 'T' and a time after the date"),
        ("2026-11-30T7am", "the time '7am' is not HH:MM"),
        ("yesterday", "does not start with a date YYYY-MM-DD"),
    ],
)
def test_date_errors_name_the_wrong_part(value, fragment):
    message = explain(value, with_time=True)
    assert fragment in message and "is not a valid datetime" in message and "2026-11-30T00:00:00Z" in message


def test_date_only_errors_and_what_pydantic_accepts_is_unchanged():
    assert "unexpected 'T00:00' after the date" in explain("2026-11-30T00:00", with_time=False)
    assert "day 31 is out of range 1-30 for 2026-11" in explain("2026-11-31", with_time=False)
    accepts = TypeAdapter(DateTimeValue)
    assert accepts.validate_python("2026-11-30T23:59:59.5+01:00") == datetime(
        2026, 11, 30, 22, 59, 59, 500000, tzinfo=UTC
    )
    assert accepts.validate_python("2026-11-30") == datetime(2026, 11, 30)
    with pytest.raises(ValidationError) as refused:
        accepts.validate_python("2026-11-30T25:00:00Z")
    assert refused.value.errors()[0]["type"] == "datetime_parsing"
    assert "hour 25 is out of range" in refused.value.errors()[0]["msg"]
    assert TypeAdapter(DateValue).validate_python("2026-11-30") == date(2026, 11, 30)


def test_csv_batch_writes_times_as_json_does_and_joins_lists():
    times = [datetime(2026, 11, 30), datetime(2026, 11, 30, 0, 0, 1, 123456), None]
    batch = pa.record_batch(
        [
            pa.array(times, type=pa.timestamp("us", tz="UTC")),
            pa.array([["BTC", "ETH"], [], None], type=pa.list_(pa.string())),
            pa.array([date(2026, 1, 1), None, None], type=pa.date32()),
        ],
        names=["t", "symbols", "d"],
    )
    out = csv_batch(batch)
    assert out.column(0).to_pylist() == [json_body({"t": t})[6:-2].decode() if t else None for t in times]
    assert out.column(0).to_pylist()[:2] == ["2026-11-30T00:00:00Z", "2026-11-30T00:00:01.123456Z"]
    assert out.column(1).to_pylist() == ["BTC;ETH", "", None]
    assert out.column(2).type == pa.date32()  # dates already read the same in both
