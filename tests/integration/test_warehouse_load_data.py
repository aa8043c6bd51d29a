"""LOAD DATA LOCAL INFILE path of write_partition: text round-trips, bad values roll back."""

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from resources.storage.schema import news_items
from resources.storage.warehouse import LOAD_DATA_MIN_ROWS, Warehouse, WarehouseError

NASTY = [
    "tab\there",
    "new\nline",
    "back\\slash",
    'quo"te',
    "'single'",
    "\\N",
    "NULL",
    "",
    "emoji 🚀 ünïcødé",
    "crlf\r\nend",
    "trailing\\",
    '"',
    '""',
    "\\t literal",
    "comma,semi;",
]


def _nan_as_none(values) -> list:
    """``values`` as a list with NaN written as None, so that missing values compare equal."""
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values]


def test_load_data_path_round_trips_text(mysql_url):
    wh = Warehouse(mysql_url)
    assert wh._can_load_data()
    n = LOAD_DATA_MIN_ROWS + 500
    start = datetime(2026, 1, 1)
    frame = pd.DataFrame(
        {
            "item_id": [f"id{i}" for i in range(n)],
            "source": "rss",
            "published_at": [start + timedelta(seconds=i * 7 + 0.123456) for i in range(n)],
            "collected_at": start + timedelta(days=1),
            "window_start": [start + timedelta(minutes=5 * (i * 7 // 300)) for i in range(n)],
            "title": [NASTY[i % len(NASTY)] + str(i) for i in range(n)],
            "summary": [None if i % 3 == 0 else NASTY[(i + 1) % len(NASTY)] for i in range(n)],
            "url": None,
            "symbols": "BTC,ETH",
        }
    )
    end = frame["window_start"].max() + timedelta(minutes=5)
    r = wh.write_partition("news_items", frame, start=start, end=end, run_id="r", code_version="1")
    assert r.rows_written == n
    back = wh.read_frame(sa.select(news_items).order_by(news_items.c.item_id))
    back = back.set_index("item_id").loc[frame["item_id"]].reset_index()
    assert back["title"].tolist() == frame["title"].tolist()
    assert _nan_as_none(back["summary"]) == _nan_as_none(frame["summary"])
    assert (pd.to_datetime(back["published_at"]) == frame["published_at"]).all()
    # duplicate keys are refused before anything is written; a value the column cannot hold fails the write
    bad = frame.copy()
    bad.loc[0, "symbols"] = "X" * 600
    with pytest.raises(WarehouseError):
        wh.write_partition("news_items", bad, start=start, end=end, run_id="r2", code_version="1")
    assert len(wh.read_frame(sa.select(news_items.c.item_id))) == n, "rolled back"


def test_load_data_path_round_trips_dates_and_missing_values(mysql_url):
    from resources.storage.schema import macro_indicators

    wh = Warehouse(mysql_url)
    days = pd.date_range("2020-01-01", periods=LOAD_DATA_MIN_ROWS // 2 + 10, freq="D")
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "series_id": series,
                    "observation_date": days.date,
                    "value": [
                        np.nan if i % 11 == 0 else (np.inf if i % 97 == 0 else i * 0.25) for i in range(len(days))
                    ],
                    "realtime_start": (days + pd.Timedelta(days=30)).date,
                    "source": "fred",
                }
            )
            for series in ("DGS10", "CPIAUCSL")
        ]
    )
    assert len(frame) >= LOAD_DATA_MIN_ROWS
    start, end = datetime(2020, 1, 1), days[-1].to_pydatetime() + timedelta(days=1)
    wh.write_partition(
        "macro_indicators",
        frame,
        start=start,
        end=end,
        run_id="r",
        code_version="1",
        asset="macro_indicators",
        time_column="observation_date",
        window=timedelta(days=1),
    )
    back = wh.read_frame(
        sa.select(macro_indicators).order_by(macro_indicators.c.series_id, macro_indicators.c.observation_date)
    )
    expected = frame.sort_values(["series_id", "observation_date"]).reset_index(drop=True)
    assert [pd.Timestamp(v).date() for v in back["observation_date"]] == list(expected["observation_date"])
    assert [pd.Timestamp(v).date() for v in back["realtime_start"]] == list(expected["realtime_start"])
    finite = np.isfinite(expected["value"].to_numpy())
    assert back["value"].isna().to_numpy().tolist() == (~finite).tolist()  # NaN and inf land as NULL
    assert np.array_equal(back["value"].to_numpy()[finite], expected["value"].to_numpy()[finite])


def test_load_data_path_writes_non_text_values_of_text_columns_as_their_text(mysql_url):
    """Both write paths render a number or boolean in a text column as ``str()`` does."""
    wh = Warehouse(mysql_url)
    n = LOAD_DATA_MIN_ROWS + 10
    start = datetime(2026, 2, 1)
    titles = pd.Series([i if i % 3 == 0 else (True if i % 3 == 1 else f"t{i}") for i in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "item_id": [f"nt{i}" for i in range(n)],
            "source": "rss",
            "published_at": [start + timedelta(seconds=i) for i in range(n)],
            "collected_at": start,
            "window_start": [start + timedelta(minutes=5 * (i // 300)) for i in range(n)],
            "title": titles,
            "summary": None,
            "url": None,
            "symbols": "BTC",
        }
    )
    end = frame["window_start"].max() + timedelta(minutes=5)
    wh.write_partition("news_items", frame, start=start, end=end, run_id="r", code_version="1")
    back = wh.read_frame(sa.select(news_items.c.item_id, news_items.c.title)).set_index("item_id")
    assert back.loc[frame["item_id"], "title"].tolist() == [str(v) for v in titles]
