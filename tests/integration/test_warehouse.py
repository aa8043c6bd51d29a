"""The partition-write primitive on SQLite and on the real MariaDB."""

import multiprocessing as mp
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from resources.config.universe import load_universe
from resources.sources.simulated import simulated_price_frame
from resources.storage.schema import partition_log, price_data_real
from resources.storage.warehouse import Warehouse, WarehouseError

START = datetime(2026, 11, 20, 0, 0)


def _prices(start: datetime, windows: int) -> pd.DataFrame:
    return simulated_price_frame(load_universe()[:10], start, start + timedelta(minutes=5 * windows))


def _count(wh: Warehouse, table: sa.Table) -> int:
    with wh.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_write_is_idempotent_and_logs_every_window(db_url):
    wh = Warehouse(db_url)
    frame = _prices(START, 12)
    end = START + timedelta(hours=1)
    first = wh.write_partition("price_data_real", frame, start=START, end=end, run_id="r1", code_version="1")
    again = wh.write_partition("price_data_real", frame, start=START, end=end, run_id="r2", code_version="1")
    assert (first.rows_written, first.rows_deleted, again.rows_deleted) == (120, 0, 120)
    assert _count(wh, price_data_real) == 120
    log = wh.committed_windows("price_data_real")
    assert len(log) == 12 and set(log.run_id) == {"r2"} and set(log.row_count) == {10}
    back = wh.read_frame(sa.select(price_data_real).order_by(price_data_real.c.symbol, price_data_real.c.window_start))
    expected = frame.sort_values(["symbol", "window_start"]).reset_index(drop=True)
    pd.testing.assert_series_equal(back["close"], expected["close"], check_names=False)
    assert list(back["window_start"].drop_duplicates().sort_values()) == list(
        expected["window_start"].drop_duplicates()
    )


def test_replace_removes_rows_that_are_no_longer_there(db_url):
    wh = Warehouse(db_url)
    end = START + timedelta(minutes=10)
    wh.write_partition("price_data_real", _prices(START, 2), start=START, end=end, run_id="r1", code_version="1")
    fewer = _prices(START, 2).query("symbol != 'BTC'")
    wh.write_partition("price_data_real", fewer, start=START, end=end, run_id="r2", code_version="1")
    assert _count(wh, price_data_real) == 18
    # A window with no rows is still committed, with row_count 0.
    wh.write_partition(
        "price_data_real", fewer.iloc[0:0], start=end, end=end + timedelta(minutes=5), run_id="r3", code_version="1"
    )
    assert wh.committed_windows("price_data_real").row_count.tolist() == [9, 9, 0]


def test_merge_mode_keeps_rows_outside_the_frame(db_url):
    wh = Warehouse(db_url)
    end = START + timedelta(minutes=5)
    item = {
        "source": "rss",
        "published_at": START,
        "collected_at": START,
        "window_start": START,
        "title": "t",
        "summary": None,
        "url": "u",
        "symbols": "BTC",
    }
    wh.write_partition(
        "news_items",
        pd.DataFrame([{"item_id": "a", **item}, {"item_id": "b", **item}]),
        start=START,
        end=end,
        run_id="r1",
        code_version="1",
        mode="merge",
    )
    wh.write_partition(
        "news_items",
        pd.DataFrame([{"item_id": "b", **item, "title": "new"}]),
        start=START,
        end=end,
        run_id="r2",
        code_version="1",
        mode="merge",
    )
    rows = wh.read_frame("SELECT item_id, title FROM news_items ORDER BY item_id")
    assert rows.values.tolist() == [["a", "t"], ["b", "new"]]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.assign(extra=1), "columns the table does not"),
        (lambda f: f.drop(columns="source"), "lacks required column"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "duplicate key"),
        (lambda f: f.assign(symbol=None), "null values in key"),
        (lambda f: f.assign(window_start=START + timedelta(hours=5)), "outside"),
    ],
)
def test_bad_frames_are_refused_before_anything_is_written(sqlite_url, mutate, message):
    wh = Warehouse(sqlite_url)
    with pytest.raises(WarehouseError, match=message):
        wh.write_partition(
            "price_data_real",
            mutate(_prices(START, 1)),
            start=START,
            end=START + timedelta(minutes=5),
            run_id="r",
            code_version="1",
        )
    assert _count(wh, price_data_real) == 0 and _count(wh, partition_log) == 0


def test_a_failed_insert_rolls_back_the_delete(db_url):
    wh = Warehouse(db_url)
    end = START + timedelta(minutes=5)
    wh.write_partition("price_data_real", _prices(START, 1), start=START, end=end, run_id="r1", code_version="1")
    bad = _prices(START, 1)
    bad.loc[bad.index[-1], "coin_id"] = None  # NOT NULL column: the INSERT fails half-way
    with pytest.raises(WarehouseError, match="failed after 1 attempt"):
        wh.write_partition("price_data_real", bad, start=START, end=end, run_id="r2", code_version="1")
    assert _count(wh, price_data_real) == 10
    assert set(wh.committed_windows("price_data_real").run_id) == {"r1"}


def _write_from_another_process(url: str, run_id: str, barrier) -> None:
    wh = Warehouse(url)
    barrier.wait()
    for _ in range(3):
        wh.write_partition(
            "price_data_real",
            _prices(START, 6),
            start=START,
            end=START + timedelta(minutes=30),
            run_id=run_id,
            code_version="1",
        )


def test_two_processes_racing_on_the_same_windows_leave_one_copy(db_url):
    Warehouse(db_url)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_write_from_another_process, args=(db_url, f"p{i}", barrier)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    wh = Warehouse(db_url)
    assert _count(wh, price_data_real) == 60
    assert len(wh.committed_windows("price_data_real")) == 6


def test_text_round_trips_byte_for_byte_whatever_it_holds(db_url):
    wh = Warehouse(db_url)
    nasty = [
        'it\'s a "quote"',
        "back\\slash\\",
        "'); DROP TABLE news_items; --",
        "new\nline\ttab\r",
        "nul\x00byte",
        "emoji 🚀 and 中文",
        "\x1a ctrl-z",
        "%s %(x)s ?",
    ]
    frame = pd.DataFrame(
        {
            "item_id": [f"id{i}" for i in range(len(nasty))],
            "source": "rss",
            "published_at": START,
            "collected_at": START,
            "window_start": START,
            "title": nasty,
            "summary": [None] * len(nasty),
            "url": "https://example.invalid/a?b=c&d='e'",
            "symbols": "BTC,ETH",
        }
    )
    wh.write_partition(
        "news_items", frame, start=START, end=START + timedelta(minutes=5), run_id="r", code_version="1", mode="merge"
    )
    back = wh.read_frame("SELECT item_id, title, summary, url FROM news_items ORDER BY item_id")
    assert back.title.tolist() == [nasty[int(i[2:])] for i in back.item_id]
    assert back.summary.isna().all() and set(back.url) == {"https://example.invalid/a?b=c&d='e'"}


def test_a_missing_mysql_database_is_created(mysql_url):
    missing = mysql_url + "_new"
    wh = Warehouse(missing)
    try:
        wh.write_partition(
            "price_data_real",
            _prices(START, 1),
            start=START,
            end=START + timedelta(minutes=5),
            run_id="r",
            code_version="1",
        )
        assert _count(wh, price_data_real) == 10
    finally:
        with wh.engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE `{wh.engine.url.database}`")
        wh.dispose()


def test_an_existing_price_table_without_the_new_columns_is_altered_in_place(db_url):
    """A warehouse created before ``quote`` and ``market_data_age_s`` keeps its rows and gains the columns."""
    old_metadata = sa.MetaData()
    kept = [c for c in price_data_real.columns if c.name not in ("quote", "market_data_age_s")]
    old = sa.Table(
        "price_data_real",
        old_metadata,
        *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in kept),
    )
    engine = sa.create_engine(db_url)
    old_metadata.create_all(engine)
    frame = _prices(START, 2)
    with engine.begin() as conn:
        conn.execute(old.insert(), frame[[c.name for c in kept]].to_dict("records"))
    engine.dispose()

    wh = Warehouse(db_url)
    columns = {c["name"] for c in sa.inspect(wh.engine).get_columns("price_data_real")}
    assert {"quote", "market_data_age_s"} <= columns
    stored = wh.read_frame(sa.select(price_data_real))
    assert len(stored) == len(frame) and stored["quote"].isna().all()
    newer = _prices(START + timedelta(minutes=10), 1).assign(quote="USDT", market_data_age_s=-40.0)
    wh.write_partition(
        "price_data_real",
        newer,
        start=START + timedelta(minutes=10),
        end=START + timedelta(minutes=15),
        run_id="r",
        code_version="2",
    )
    latest = wh.read_frame(
        sa.select(price_data_real).where(price_data_real.c.window_start == START + timedelta(minutes=10))
    )
    assert set(latest["quote"]) == {"USDT"} and set(latest["market_data_age_s"]) == {-40.0}
    Warehouse(db_url)  # a second start finds nothing to add
