"""The ``news_items`` asset: news and social posts published in each 5-minute window."""

from collections import Counter

import dagster as dg

from crypto_assets.common import OWNERS, preview_markdown, run_deadline, window_range, write_metadata
from crypto_assets.partitions import FIVE_MINUTE_PARTITIONS, PARTITION_KEY_FORMAT
from resources.sources.coin_tagging import tagger_for
from resources.sources.news_sources import (
    NEWS_COLUMNS,
    NewsSourcesResource,
    items_before,
    merge_with_stored,
    news_frame,
)
from resources.storage.dagster_resources import WarehouseResource
from resources.storage.schema import NEWS

NEWS_CODE_VERSION = "1"


@dg.asset(
    partitions_def=FIVE_MINUTE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=288),
    group_name="sentiment",
    kinds={"python", "pandas", "sql"},
    owners=OWNERS,
    code_version=NEWS_CODE_VERSION,
    pool="news_sources",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    tags={"crypto/network": "true"},
)
def news_items(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    news_sources: NewsSourcesResource,
) -> dg.MaterializeResult:
    """News articles and social posts published in each 5-minute window, tagged with the coins
    they mention.

    Offline (``CRYPTO_SOURCE=simulated``): deterministic simulated headlines and posts whose tone
    follows the simulated market. Live: the Guardian content API, crypto news RSS/Atom feeds and
    Reddit. A source without credentials is skipped with a warning; a source whose response is
    unusable fails alone (none of its items are written) and the others still land; the run fails
    (without a retry, leaving the window to gap healing) only when every source it tried failed.
    An item belongs to the window of its publication time: one that a source delivers late
    (published in an earlier window) is not written to this window; re-running its own window
    stores it there (``items_late`` and ``late_item_windows`` say which). Writes merge: a re-run
    never loses rows an earlier run stored. Key: ``item_id`` (a stable hash of the article URL, or
    of source and guid).
    """
    start, end = window_range(context)
    collection = news_sources.collect(start, end, deadline=run_deadline(context, news_sources.live_run_deadline_s))
    for outcome in collection.skipped:
        context.log.warning("news source %s skipped: %s", outcome.name, outcome.error)
    for outcome in collection.failed:
        context.log.warning("news source %s failed, nothing of it written: %s", outcome.name, outcome.error)
    reports = dg.MetadataValue.json(collection.reports())
    if collection.all_failed:
        # Every request was already retried with backoff: the window stays uncommitted for gap
        # healing to re-run, rather than being retried here against sources that are down.
        raise dg.Failure(
            description=f"every news source failed for [{start}, {end})",
            metadata={"sources": reports},
            allow_retries=False,
        )

    built = news_frame(collection, tagger_for(news_sources.coins()), start, end)
    wh = warehouse.get()
    stored = wh.read_window(NEWS.name, start, end, NEWS_COLUMNS)
    frame = merge_with_stored(built.frame, stored)
    result = wh.write_partition(
        NEWS.name, frame, start=start, end=end, run_id=context.run_id, code_version=NEWS_CODE_VERSION, mode="merge"
    )

    # Items of earlier windows that the warehouse does not hold yet: late arrivals, which belong
    # to their own windows (re-running those windows stores them there), never to this one.
    earlier = items_before(collection, start)
    if len(earlier):
        known = wh.present_values(NEWS.name, "item_id", earlier["item_id"].tolist())
        earlier = earlier.loc[~earlier["item_id"].isin(known)]
    late_windows = sorted({w.strftime(PARTITION_KEY_FORMAT) for w in earlier["window_start"]})
    if late_windows:
        context.log.info(
            "%d item(s) published in earlier windows are not stored yet (windows %s): re-running "
            "those windows stores them there",
            len(earlier),
            ", ".join(late_windows[:10]),
        )
    mentions = Counter(s for symbols in frame["symbols"] for s in symbols.split(",") if s)
    statuses = Counter(o.status for o in collection.outcomes)
    return dg.MaterializeResult(
        metadata=write_metadata(
            NEWS.table,
            result,
            start,
            end,
            source=news_sources.resolved_mode(),
            items_in_window=len(frame),
            items_new=int((~built.frame["item_id"].isin(stored["item_id"])).sum()) if len(stored) else len(built.frame),
            items_received=built.counts["items_received"],
            items_skipped=collection.items_skipped(),
            items_late=len(earlier),
            items_before_window=built.counts["outside_before"],
            items_after_window=built.counts["outside_after"],
            items_duplicate=built.counts["duplicates"],
            items_without_coins=int((frame["symbols"] == "").sum()) if len(frame) else 0,
            late_item_windows=dg.MetadataValue.json(late_windows[:50]),
            sources_ok=statuses.get("ok", 0),
            sources_failed=statuses.get("failed", 0),
            sources_skipped=statuses.get("skipped", 0),
            sources=reports,
            top_symbols=dg.MetadataValue.json(dict(mentions.most_common(10))),
            preview=preview_markdown(frame, columns=["published_at", "source", "symbols", "title"]),
        )
    )
