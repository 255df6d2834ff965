"""Dashboard callback times with a large history: fill Cassandra with N spam events (default 1,000,000) through the
detector's own Cassandra sink shapes, then time the main callback of each page.

    .venv/bin/python -m bench.dashboard [--events 1000000] [--calls 200] [--keep]

Each timed call is what the page's main callback runs (the dashboard.views function the callback wraps) plus the
JSON encoding Dash applies to its result. Live: a channel whose live buffer is empty, so its events come from
Cassandra (the slow path); search: a known spam text (exact and similar), a mutated spelling and an unknown text;
user: a user's page (each of the 20,000 users took part in about 50 events); overview: totals, topics, campaigns
of today and the heatmap. Writes dashboard.json in --out (bench/results).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import plotly.utils
from pyspark.sql import functions as F
from tqdm import tqdm

import services
from bench.isolation import BenchSpace
from dashboard.history import History
from dashboard.live import LiveFeed
from dashboard.views.common import Sources
from dashboard.views.live import chat_rows, event_details, event_rows, event_users, live_events, rate_figure, topic_rows
from dashboard.views.overview import overview_view
from dashboard.views.search import search_view
from dashboard.views.user import user_view
from jobs.sinks import CONNECTOR, EVENT_FACTS, cassandra_frames
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.records import ChatMessage
from twitchcrement.spark import session
from twitchcrement.textsim import MinHasher, message_hash, normalise, shingles

RESULTS = PROJECT_ROOT / "bench" / "results"
KEYSPACE = "twitchcrement_bench"
CHANNELS = 500
USERS = 20_000  # distinct users the events spread over
WORDS = (
    "KEKW OMEGALUL LULW PogChamp Kappa forsenE monkaS catJAM xqcL Pepega the chat is so real right now who asked "
    "nobody streamer please read my message EZ Clap gachiBASS TriHard copypasta free giveaway follow sub "
    "hype train today never again pog clip it"
).split()


def spam_texts(count: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + f" {i}" for i in range(count)]


def fill(spark: Any, config: configuration.Config, events: int, texts: list[str]) -> float:
    """Write `events` spam events (and their topics and LSH buckets) to the bench keyspace; returns seconds."""
    text_frame = texts_frame(spark, config, texts)
    now_ms = int(time.time() * 1000)
    event_frame = events_frame(spark, text_frame, events, len(texts), now_ms)
    # Topics: one per (channel, text) that had an event, spanning its first to last window.
    topic_frame = (
        event_frame.groupBy("channel", "topic_id", "text", "message_hash")
        .agg(
            F.min("first_ts").alias("first_ts"),
            F.max("last_ts").alias("last_ts"),
            F.count("*").alias("windows_active"),
            F.sum("message_count").alias("message_count"),
        )
        .withColumn("peak_rate", F.lit(2.5))
        .withColumn("ended", F.lit(True))
    )
    # Users: one per event, each of USERS taking part in about events / USERS events (a user page's reads).
    user_frame = event_frame.select(
        *EVENT_FACTS,
        F.format_string("bench_user_%05d", F.abs(F.hash("event_id")) % USERS).alias("user_login"),
        F.lit(2).cast("long").alias("messages"),
        "first_ts",
        "last_ts",
    )
    started = time.perf_counter()
    frames = cassandra_frames(event_frame, topic_frame, user_frame)
    # Every event of a text has the same buckets: write them once per text, not once per event.
    frames["spam_lsh_buckets"] = text_frame.select(
        F.posexplode("buckets").alias("band", "bucket"),
        "message_hash",
        "text",
        F.timestamp_millis(F.lit(now_ms)).alias("last_seen"),
    )
    for table, frame in frames.items():
        began = time.perf_counter()
        frame.write.format(CONNECTOR).options(keyspace=KEYSPACE, table=table).mode("append").save()
        print(f"  wrote {table} in {time.perf_counter() - began:.0f} s", flush=True)
    return time.perf_counter() - started


def texts_frame(spark: Any, config: configuration.Config, texts: list[str]) -> Any:
    """The spam texts with their ids, hashes and LSH buckets, computed as the detector computes them."""
    hasher = MinHasher.from_config(config)
    coefficients = hasher.coefficients
    rows: list[tuple[Any, ...]] = []
    for text in tqdm(texts, desc="texts", unit="text", mininterval=2.0):
        norm = normalise(text)
        rows.append((len(rows), text, message_hash(norm), hasher.bands(hasher.signature(shingles(norm), coefficients))))
    return spark.createDataFrame(rows, "text_id long, text string, message_hash string, buckets array<long>")


def events_frame(spark: Any, text_frame: Any, events: int, texts: int, now_ms: int) -> Any:
    """`events` events over CHANNELS channels and the texts, in 10 s windows of the last 20 hours."""
    day_ms = 20 * 3600 * 1000  # the last 20 hours: today's and yesterday's partitions, as live history is
    base = (
        spark.range(events)
        .withColumnRenamed("id", "n")
        .withColumn("text_id", (F.hash("n") % texts + texts) % texts)
        .join(F.broadcast(text_frame), "text_id")
        .withColumn("channel", F.format_string("bench_%03d", (F.col("n") % CHANNELS).cast("int")))
        .withColumn(
            "window_start", F.lit(now_ms) - (F.abs(F.hash("n", F.lit(7))) % (day_ms // 10_000)) * 10_000 - 10_000
        )
    )
    return base.select(
        "channel",
        F.lit("crowd").alias("event_kind"),
        "window_start",
        (F.col("window_start") + 10_000).alias("window_end"),
        F.md5(F.col("n").cast("string")).alias("event_id"),
        F.substring(F.md5(F.concat_ws("/", "channel", "message_hash")), 1, 32).alias("topic_id"),
        "text",
        "message_hash",
        (F.col("n") % 40 + 5).alias("message_count"),
        (F.col("n") % 20 + 3).alias("distinct_users"),
        (F.col("n") % 4 + 1).alias("variants"),
        F.array(F.struct(F.lit("user_a").alias("user"), F.lit(3).cast("long").alias("count"))).alias("top_users"),
        F.array(F.struct(F.col("text").alias("text"), F.lit(3).cast("long").alias("count"))).alias("top_variants"),
        (F.col("window_start") + 500).alias("first_ts"),
        (F.col("window_start") + 9_500).alias("last_ts"),
        "buckets",
    )


def timed(calls: int, action: Callable[[int], Any]) -> dict[str, float]:
    samples = []
    for i in range(calls):
        began = time.perf_counter()
        json.dumps(action(i), cls=plotly.utils.PlotlyJSONEncoder)  # what Dash does with a callback's result
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return {
        "calls": calls,
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(0.95 * (calls - 1))], 2),
        "p99_ms": round(samples[int(0.99 * (calls - 1))], 2),
        "max_ms": round(samples[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--texts", type=int, default=20_000, help="distinct spam texts the events spread over")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per callback")
    parser.add_argument("--out", default=str(RESULTS), help="where dashboard.json goes (default bench/results)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the bench keyspace at the end, and reuse it if it is already filled"
    )
    args = parser.parse_args()
    logs.setup("WARNING")
    base = configuration.load()
    services.up(base)
    with BenchSpace(base.with_overrides(spark__master="local[2]"), keep=args.keep, keyspace=KEYSPACE) as space:
        try:
            measure_callbacks(space.config, args)
        finally:
            if not args.keep:
                (RESULTS / f".{KEYSPACE}-filled").unlink(missing_ok=True)  # the keyspace goes with it


def filled(config: configuration.Config, args: argparse.Namespace, texts: list[str]) -> float | None:
    """The bench keyspace filled with args.events events: the seconds it took, or None if a kept fill was reused."""
    marker = RESULTS / f".{KEYSPACE}-filled"
    size = f"{args.events} {args.texts} {USERS} users"  # a fill of another size, or without users, is redone
    if args.keep and marker.exists() and marker.read_text() == size:
        return None
    spark = session(config, app_name="twitchcrement-bench-dashboard")
    print(f"filling {args.events:,} spam events over {CHANNELS} channels and {args.texts:,} texts ...", flush=True)
    seconds = fill(spark, config, args.events, texts)
    spark.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    marker.write_text(size)
    return seconds


def measure_callbacks(config: configuration.Config, args: argparse.Namespace) -> None:
    texts = spam_texts(args.texts)
    fill_s = filled(config, args, texts)
    history = History(config)
    history.connect()
    feed = LiveFeed(config)  # not started: the live page's Cassandra path is the one measured
    now = int(time.time() * 1000)
    for i in range(200):
        feed.add_chat(ChatMessage(channel="bench_001", user_login=f"u{i}", text=texts[i], sent_ts=now - i * 100))
    sources = Sources(feed, history)
    rng = random.Random(1)

    def live(i: int) -> Any:
        channel = f"bench_{rng.randrange(CHANNELS):03d}"
        events, _ = live_events(sources, channel)
        rows = [
            *event_rows(events, None),
            *topic_rows(feed.topics(channel)),
            *chat_rows(feed.chat(channel)),
        ]
        users, note = event_users(sources, events[0])
        return (
            [row.render() for row in rows],
            event_details(events[0], users, note),
            rate_figure(feed, channel),
        )

    def search(i: int) -> Any:
        text = texts[rng.randrange(len(texts))]
        query = (text, text.upper() + " xd", f"never seen {i} " + text[::-1])[i % 3]
        view = search_view(sources, query, 0)
        return view.message, view.matches, view.results, view.figure

    def user(i: int) -> Any:
        view = user_view(sources, f"bench_user_{rng.randrange(USERS):05d}")
        return view.message, view.figure, view.results

    def overview(i: int) -> Any:
        view = overview_view(sources)
        return view.totals, view.topics, view.campaigns, view.heatmap

    results = {
        "events": args.events,
        "texts": args.texts,
        "channels": CHANNELS,
        "fill_seconds": fill_s,
        "callbacks": {},
    }
    for name, action in (("live", live), ("search", search), ("user", user), ("overview", overview)):
        timed(5, action)  # warm-up: prepared statements, connections
        results["callbacks"][name] = timed(args.calls, action)
        print(f"{name:9s} {results['callbacks'][name]}", flush=True)
    history.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dashboard.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'dashboard.json'}")


if __name__ == "__main__":
    main()
