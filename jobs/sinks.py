"""Where detector output goes: Kafka (spam events, topic updates, dead letters) and Cassandra.

Every Cassandra row is keyed by deterministic ids, so a micro-batch replayed after a crash overwrites what it
wrote before; on Kafka a replayed event carries the same event id. A sink that is down is retried with
exponential backoff, holding the stream back rather than losing the batch.
"""

from __future__ import annotations

import collections
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import msgpack
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.outages import is_outage
from twitchcrement.clients import kafka_producer
from twitchcrement.config import Config
from twitchcrement.records import SpamEvent, SpamTopic

log = logging.getLogger(__name__)
# pyspark 3.5's pandas-to-Arrow path calls a pandas function that pandas 2.2 deprecates, once per call.
warnings.filterwarnings("ignore", message="is_categorical_dtype is deprecated", category=DeprecationWarning)

CONNECTOR = "org.apache.spark.sql.cassandra"
RETRIES: collections.Counter[str] = collections.Counter()  # sink writes retried since the process started, by sink
# The detector's output rows (jobs.detection): kind is event | topic; each kind fills its own columns.
OUTPUT_FIELDS = [
    ("kind", "string"),
    ("channel", "string"),
    ("event_kind", "string"),
    ("window_start", "long"),
    ("window_end", "long"),
    ("event_id", "string"),
    ("state", "string"),  # of an event: open (its window still open), closed (final), undone (withdrawn)
    ("topic_id", "string"),
    ("text", "string"),
    ("norm", "string"),
    ("message_hash", "string"),
    ("message_count", "long"),
    ("distinct_users", "long"),
    ("variants", "long"),
    ("top_users", "array<struct<user:string,count:long>>"),
    ("top_variants", "array<struct<text:string,count:long>>"),
    ("first_ts", "long"),
    ("last_ts", "long"),
    ("buckets", "array<long>"),
    ("window_messages", "long"),
    ("windows_active", "long"),
    ("peak_rate", "double"),
    ("ended", "boolean"),
]
OUTPUT_COLUMNS = [name for name, _ in OUTPUT_FIELDS]
OUTPUT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in OUTPUT_FIELDS)
# One row per user of an event: the event's facts that the user tables repeat (typed as in OUTPUT_FIELDS), then the
# user's own (an event row's "users": login, messages, first and last time).
EVENT_FACTS = [
    "event_id",
    "channel",
    "window_start",
    "event_kind",
    "text",
    "message_hash",
    "topic_id",
    "message_count",
    "distinct_users",
]
USER_FIELDS = [(name, dict(OUTPUT_FIELDS)[name]) for name in EVENT_FACTS] + [
    ("user_login", "string"),
    ("messages", "long"),
    ("first_ts", "long"),
    ("last_ts", "long"),
]
USER_COLUMNS = [name for name, _ in USER_FIELDS]
USER_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in USER_FIELDS)
# Each table, and the kind of row it is made of.
TABLE_SOURCE = {
    "spam_events_by_channel": "event",
    "spam_events_by_message": "event",
    "spam_message_days": "event",
    "spam_lsh_buckets": "event",
    "spam_topics_by_channel": "topic",
    "spam_campaigns_by_day": "topic",
    "spam_event_users": "user",
    "spam_events_by_user": "user",
    "spam_user_days": "user",
}
CASSANDRA_TABLES = list(TABLE_SOURCE)


def _ms(column: str) -> Any:
    return F.timestamp_millis(F.col(column))


def _day(column: str) -> Any:
    return F.to_date(F.timestamp_millis(F.col(column)))


def user_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """Every user of every event among the detector's rows, in USER_COLUMNS order."""
    return [[*(r.get(c) for c in EVENT_FACTS), *user] for r in rows if r["kind"] == "event" for user in r["users"]]


def cassandra_frames(events: DataFrame, topics: DataFrame, users: DataFrame | None) -> dict[str, DataFrame]:
    """Detector output shaped as the rows of each Cassandra table (see services/cassandra.cql); the user tables
    only when there are user rows (users None: none)."""
    top_users = F.transform(
        "top_users", lambda u: F.struct(u["user"].alias("user"), u["count"].cast("int").alias("count"))
    )
    top_variants = F.transform(
        "top_variants", lambda v: F.struct(v["text"].alias("text"), v["count"].cast("int").alias("count"))
    )
    frames = {
        "spam_events_by_channel": events.select(
            "channel",
            _day("window_start").alias("day"),
            _ms("window_start").alias("window_start"),
            "event_id",
            F.col("event_kind").alias("kind"),
            _ms("window_end").alias("window_end"),
            "text",
            "message_hash",
            F.col("message_count").cast("int").alias("message_count"),
            F.col("distinct_users").cast("int").alias("distinct_users"),
            F.col("variants").cast("int").alias("variants"),
            top_users.alias("top_users"),
            top_variants.alias("top_variants"),
            _ms("first_ts").alias("first_ts"),
            _ms("last_ts").alias("last_ts"),
            "topic_id",
        ),
        "spam_events_by_message": events.select(
            "message_hash",
            _day("window_start").alias("day"),
            _ms("window_start").alias("window_start"),
            "channel",
            "event_id",
            "text",
            F.col("message_count").cast("int").alias("message_count"),
            F.col("distinct_users").cast("int").alias("distinct_users"),
            "topic_id",
        ),
        "spam_message_days": events.select("message_hash", _day("window_start").alias("day"), "text"),
        "spam_lsh_buckets": events.select(
            F.posexplode("buckets").alias("band", "bucket"), "message_hash", "text", _ms("last_ts").alias("last_seen")
        ),
        "spam_topics_by_channel": topics.select(
            "channel",
            _day("first_ts").alias("day"),
            "topic_id",
            "text",
            "message_hash",
            _ms("first_ts").alias("first_seen"),
            _ms("last_ts").alias("last_seen"),
            F.col("windows_active").cast("int").alias("windows_active"),
            F.col("message_count").alias("total_messages"),
            "peak_rate",
            "ended",
        ),
        "spam_campaigns_by_day": topics.select(
            _day("first_ts").alias("day"),
            F.col("message_hash").alias("campaign_id"),
            "channel",
            "topic_id",
            "text",
            "message_hash",
            _ms("first_ts").alias("first_seen"),
            _ms("last_ts").alias("last_seen"),
            F.col("message_count").alias("total_messages"),
        ),
    }
    if users is None:
        return frames
    return frames | {
        "spam_event_users": users.select(
            "event_id",
            _day("window_start").alias("day"),
            "user_login",
            "channel",
            _ms("window_start").alias("window_start"),
            F.col("messages").cast("int").alias("messages"),
            _ms("first_ts").alias("first_ts"),
            _ms("last_ts").alias("last_ts"),
        ),
        "spam_events_by_user": users.select(
            "user_login",
            _day("window_start").alias("day"),
            _ms("window_start").alias("window_start"),
            "event_id",
            "channel",
            F.col("event_kind").alias("kind"),
            "text",
            "message_hash",
            F.col("messages").cast("int").alias("messages"),
            _ms("first_ts").alias("first_ts"),
            _ms("last_ts").alias("last_ts"),
            F.col("message_count").cast("int").alias("event_messages"),
            F.col("distinct_users").cast("int").alias("event_users"),
            "topic_id",
        ),
        "spam_user_days": users.select("user_login", _day("window_start").alias("day")),
    }


def newest_topic_updates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with only the last update of each topic: one write can hold several batches' updates of a topic
    (or several windows' of one backlog batch), and Cassandra keeps the newest write timestamp, which follows
    neither their order (the connector's tasks run side by side) nor, within one unlogged batch, any order at all
    (its rows share one timestamp and a tie goes to the greater value)."""
    last = {r["topic_id"]: i for i, r in enumerate(rows) if r["kind"] == "topic"}
    return [r for i, r in enumerate(rows) if r["kind"] != "topic" or last[r["topic_id"]] == i]


def spam_record(row: dict[str, Any]) -> SpamEvent | SpamTopic:
    """A detector output row (kind event or topic) as the record that goes to Kafka spammessage."""
    if row["kind"] == "event":
        return SpamEvent(
            event_id=row["event_id"],
            kind=row["event_kind"],
            channel=row["channel"],
            window_start=int(row["window_start"]),
            window_end=int(row["window_end"]),
            text=row["text"],
            message_hash=row["message_hash"],
            message_count=int(row["message_count"]),
            distinct_users=int(row["distinct_users"]),
            variants=int(row["variants"]),
            top_users=[[u["user"], int(u["count"])] for u in row["top_users"]],
            top_variants=[[v["text"], int(v["count"])] for v in row["top_variants"]],
            first_ts=int(row["first_ts"]),
            last_ts=int(row["last_ts"]),
            topic_id=row.get("topic_id") or "",
            state=row.get("state") or "closed",
        )
    return SpamTopic(
        topic_id=row["topic_id"],
        channel=row["channel"],
        text=row["text"],
        message_hash=row["message_hash"],
        first_seen=int(row["first_ts"]),
        last_seen=int(row["last_ts"]),
        windows_active=int(row["windows_active"]),
        total_messages=int(row["message_count"]),
        peak_rate=float(row["peak_rate"]),
        ended=bool(row["ended"]),
    )


def with_retries(
    what: str,
    action: Callable[[], None],
    attempts: int = 12,
    max_wait_s: float = 30.0,
    before_retry: Callable[[], None] = lambda: None,
    timings: dict[str, float] | None = None,
) -> None:
    """Run a sink write; while the sink is unreachable wait 1, 2, 4 ... (at most max_wait_s) seconds and try
    again. An error that retrying cannot fix (a schema mismatch, say) is raised at once."""
    began = time.perf_counter()
    for attempt in range(attempts):
        try:
            action()
            if timings is not None:
                timings[what] = round(time.perf_counter() - began, 4)
            return
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt == attempts - 1 or not is_outage(exc):
                raise
            wait = min(2.0**attempt, max_wait_s)
            log.warning(
                "sink write failed; retrying",
                extra={
                    "sink": what,
                    "attempt": attempt + 1,
                    "retry_in_s": wait,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
            )
            RETRIES[what] += 1
            time.sleep(wait)
            before_retry()


class Sinks:
    """Where detector output goes: spam records and dead letters to Kafka (a producer in the driver: the rows are
    few, and a Spark job per topic cost more than the write), then the history tables in Cassandra through
    spark-cassandra-connector. Both are written before `write` returns, so before Spark commits the micro-batch:
    its checkpoint is the only recovery, and a batch that runs again writes the same rows again (idempotent
    upserts). Every write is retried while its service is away, which holds the stream back."""

    def __init__(self, config: Config, spark: Any):
        self.config = config
        self.spark = spark
        self.keyspace = config.cassandra.keyspace
        self.spam_topic = config.kafka.spam_topic
        self.deadletter_topic = config.kafka.deadletter_topic
        self._producer: Any = None

    def write(self, rows: list[dict[str, Any]], dead: list[tuple[str, bytes, int]], timings: dict[str, float]) -> None:
        spam = [spam_record(r) for r in rows]
        if spam:
            # Kafka first: live consumers (the dashboard) see an event before the history tables are written.
            with_retries(
                "kafka spam", lambda: self._send(self.spam_topic, [(r.key, r.encode()) for r in spam]), timings=timings
            )
        if dead:
            values = [
                (b"deadletter", msgpack.packb({"reason": reason, "value": raw, "kafka_ts": int(ts)}, use_bin_type=True))
                for reason, raw, ts in dead
            ]
            with_retries("kafka dead letters", lambda: self._send(self.deadletter_topic, values), timings=timings)
        # The history holds closed events only: an open one is not final, and an undone one was never written.
        history = [r for r in rows if r["kind"] == "topic" or r.get("state", "closed") == "closed"]
        if history:
            self._cassandra(history, timings)

    def _send(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        if self._producer is None:
            self._producer = kafka_producer(self.config)
        futures = [self._producer.send(topic, key=key, value=value) for key, value in records]
        self._producer.flush(timeout=self.config.kafka.connect_timeout_s * 4)
        for future in futures:
            future.get(timeout=0)  # raises the delivery error of a record that did not make it

    def _cassandra(self, rows: list[dict[str, Any]], timings: dict[str, float]) -> None:
        rows = newest_topic_updates(rows)
        # From pandas, so Spark takes the rows through Arrow in the JVM: from a list they would be pickled and
        # converted again for each table written: 40 rows to six tables took 2.6 s that way, 1.5 s this way.
        frame = self.spark.createDataFrame(
            pd.DataFrame([[r.get(c) for c in OUTPUT_COLUMNS] for r in rows], columns=OUTPUT_COLUMNS), OUTPUT_SCHEMA
        )
        users = user_rows(rows)
        users_frame = (
            self.spark.createDataFrame(pd.DataFrame(users, columns=USER_COLUMNS), USER_SCHEMA) if users else None
        )
        frames = cassandra_frames(
            frame.where(F.col("kind") == "event"), frame.where(F.col("kind") == "topic"), users_frame
        )
        kinds = {r["kind"] for r in rows} | ({"user"} if users else set())
        wanted = [t for t in CASSANDRA_TABLES if TABLE_SOURCE[t] in kinds]

        def save(table: str) -> None:
            with_retries(
                f"cassandra {table}",
                lambda: frames[table]
                .write.format(CONNECTOR)
                .options(keyspace=self.keyspace, table=table)
                .mode("append")
                .save(),
                before_retry=self._reconnect,
                timings=timings,
            )

        # One table after the other: written at once, the connector's writes hung for good when Cassandra went
        # away mid-write (all of them waiting on the dropped session; test_faults' Cassandra outage).
        for table in wanted:
            save(table)

    def _reconnect(self) -> None:
        """Drop the connector's cached Cassandra sessions: one opened before a node restart can hang every later
        write (seen with the local node stopped and started again), while a new one connects at once."""
        self.spark.sparkContext._jvm.com.datastax.spark.connector.cql.CassandraConnector.evictCache()

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except Exception as exc:  # noqa: BLE001 - closing anyway: one line, not a traceback
                log.warning("the spam producer did not close cleanly", extra={"error": str(exc)[:300]})
            self._producer = None
