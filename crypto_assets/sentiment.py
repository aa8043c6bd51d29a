"""The ``sentiment_data`` asset: each (news item, coin) of a window scored by the sentiment model."""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd

from crypto_assets.common import OWNERS, preview_markdown, window_range, write_metadata
from crypto_assets.news import news_items
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS
from resources.model.sentiment_scorers import LABELS, SentimentModelResource, SentimentScorer
from resources.sources.coin_tagging import CoinTagger, tagger_for
from resources.sources.news_sources import NewsSourcesResource
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import NEWS, SENTIMENT
from resources.storage.warehouse import utc_now

SENTIMENT_CODE_VERSION = "1"
SENTIMENT_COLUMNS = [
    "item_id",
    "symbol",
    "model",
    "window_start",
    "sentiment_score",
    "confidence",
    "label",
    "source",
    "analyzed_at",
]


@dataclass
class ScoredWindow:
    """The rows a run adds, and what it did."""

    frame: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)


def item_pairs(news: pd.DataFrame) -> pd.DataFrame:
    """One row per (item, coin) from ``news_items`` rows (items that mention no coin drop out)."""
    columns = ["item_id", "symbol", "window_start", "source", "title", "summary"]
    if news.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    pairs = news.assign(symbol=news["symbols"].fillna("").str.split(",")).explode("symbol")
    pairs = pairs.loc[pairs["symbol"].fillna("").str.len() > 0]
    return pairs[columns].drop_duplicates(["item_id", "symbol"]).reset_index(drop=True)


def score_pairs(
    news: pd.DataFrame, already: pd.DataFrame, scorer: SentimentScorer, tagger: CoinTagger, analyzed_at: datetime
) -> ScoredWindow:
    """Score every (item, coin) of ``news`` that ``already`` (rows scored by this model) lacks.

    Each pair is scored on the item's title plus the summary sentences about that coin
    (:meth:`CoinTagger.context`); identical texts are scored once.
    """
    pairs = item_pairs(news)
    stats: dict[str, Any] = {
        "items_in_window": int(news["item_id"].nunique()) if len(news) else 0,
        "items_without_coins": int((news["symbols"].fillna("") == "").sum()) if len(news) else 0,
        "pairs_in_window": len(pairs),
    }
    if len(already) and len(pairs):
        done = pd.MultiIndex.from_frame(already[["item_id", "symbol"]])
        todo = pairs.loc[~pd.MultiIndex.from_frame(pairs[["item_id", "symbol"]]).isin(done)]
    else:
        todo = pairs
    stats["pairs_already_scored"] = len(pairs) - len(todo)
    stats["items_already_scored"] = int(pairs["item_id"].nunique() - todo["item_id"].nunique()) if len(pairs) else 0
    texts = [tagger.context(t, s, sym) for t, s, sym in zip(todo["title"], todo["summary"].fillna(""), todo["symbol"])]
    unique = list(dict.fromkeys(texts))
    began = time.perf_counter()
    scores = scorer.score(unique)
    seconds = time.perf_counter() - began
    by_text = {text: i for i, text in enumerate(unique)}
    rows = scores.iloc[[by_text[t] for t in texts]].reset_index(drop=True) if texts else scores
    frame = pd.DataFrame(
        {
            "item_id": todo["item_id"].to_numpy(dtype=object),
            "symbol": todo["symbol"].to_numpy(dtype=object),
            "model": scorer.model_id,
            "window_start": pd.to_datetime(todo["window_start"]).to_numpy(),
            "sentiment_score": rows["sentiment_score"].to_numpy(dtype=float),
            "confidence": rows["confidence"].to_numpy(dtype=float),
            "label": rows["label"].to_numpy(dtype=object),
            "source": todo["source"].to_numpy(dtype=object),
            "analyzed_at": pd.Timestamp(analyzed_at),
        },
        columns=SENTIMENT_COLUMNS,
    )
    stats.update(
        {
            "pairs_scored": len(frame),
            "items_scored": int(todo["item_id"].nunique()),
            "texts_scored": len(unique),
            "scoring_seconds": round(seconds, 4),
            "texts_per_second": round(len(unique) / seconds, 1) if seconds > 0 and unique else 0.0,
        }
    )
    return ScoredWindow(frame, stats)


def label_mix(frame: pd.DataFrame) -> dict[str, int]:
    """Count of each label (all three, zeros included)."""
    counts = frame["label"].value_counts() if len(frame) else pd.Series(dtype=int)
    return {label: int(counts.get(label, 0)) for label in LABELS}


@dg.asset(
    partitions_def=FIVE_MINUTE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=288),
    deps=[news_items],
    group_name="sentiment",
    kinds={"pytorch", "pandas", "sql"},
    owners=OWNERS,
    code_version=SENTIMENT_CODE_VERSION,
    pool="sentiment_model",
)
def sentiment_data(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    sentiment_model: SentimentModelResource,
    news_sources: NewsSourcesResource,
) -> dg.MaterializeResult:
    """Sentiment of each (news item, coin) of the window: ``sentiment_score = P(bullish) -
    P(bearish)`` in [-1, 1], ``confidence`` (the winning probability) and ``label``.

    The model is ``CRYPTO_SENTIMENT_MODEL``: ``lexicon`` (offline default: VADER with crypto terms)
    or a ``transformers`` classifier such as CryptoBERT, from a directory or hub id, run in batches
    (on the GPU when there is one; inputs truncated at its 128 training tokens). Every row records
    ``model = <name>@<revision>``. Pairs this model already scored are not scored again, so
    re-runs and backfills cost nothing for what is done; the model loads once per process.
    Key: (item_id, symbol, model).
    """
    start, end = window_range(context)
    scorer = sentiment_model.get()
    wh = warehouse.get()
    news = wh.read_window(NEWS.name, start, end, ["item_id", "source", "window_start", "title", "summary", "symbols"])
    stored = wh.read_window(SENTIMENT.name, start, end, SENTIMENT_COLUMNS, equal={"model": scorer.model_id})
    tagger = tagger_for(news_sources.coins())  # the coins news_items tagged
    scored = score_pairs(news, stored, scorer, tagger, utc_now())
    # The window's rows of this model after the run: what was stored, plus what was just scored.
    frame = (
        scored.frame
        if stored.empty
        else pd.concat(
            [
                stored.astype({"window_start": "datetime64[us]", "analyzed_at": "datetime64[us]"}),
                scored.frame.astype({"window_start": "datetime64[us]", "analyzed_at": "datetime64[us]"}),
            ],
            ignore_index=True,
        )
    )
    result = wh.write_partition(
        SENTIMENT.name,
        frame,
        start=start,
        end=end,
        run_id=context.run_id,
        code_version=SENTIMENT_CODE_VERSION,
        mode="merge",
    )
    stats = scored.stats
    return dg.MaterializeResult(
        metadata=write_metadata(
            SENTIMENT.table,
            result,
            start,
            end,
            **scorer.describe(),
            items_scored=stats["items_scored"],
            items_skipped=stats["items_already_scored"] + stats["items_without_coins"],
            items_already_scored=stats["items_already_scored"],
            items_without_coins=stats["items_without_coins"],
            items_in_window=stats["items_in_window"],
            pairs_scored=stats["pairs_scored"],
            pairs_already_scored=stats["pairs_already_scored"],
            texts_scored=stats["texts_scored"],
            scoring_seconds=stats["scoring_seconds"],
            texts_per_second=stats["texts_per_second"],
            label_mix=dg.MetadataValue.json(label_mix(scored.frame)),
            label_mix_window=dg.MetadataValue.json(label_mix(frame)),
            mean_score=float(frame["sentiment_score"].mean()) if len(frame) else 0.0,
            preview=preview_markdown(
                scored.frame, columns=["window_start", "symbol", "label", "sentiment_score", "confidence"]
            ),
        )
    )
