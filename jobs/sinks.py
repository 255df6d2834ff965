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
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.outages import is_outage
from twitchcrement.config import Config
from twitchcrement.records import SpamEvent, SpamTopic
from twitchcrement.spark import kafka_options

log = logging.getLogger(__name__)
# pyspark 3.5's pandas-to-Arrow path calls a pandas function that pandas 2.2 deprecates, once per call.
warnings.filterwarnings("ignore", message="is_categorical_dtype is deprecated", category=DeprecationWarning)

CONNECTOR = "org.apache.spark.sql.cassandra"
DEADLETTER_RECORD_KEY = b"deadletter"
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
    ("last_update", "boolean"),  # of a topic: the last of its updates in this micro-batch (mark_last_topic_updates)
]
# The event's facts that the user tables repeat, beside each user's own (an event row's "users").
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


# Each table's rows as Spark SQL over the frames {events}, {topics} and {users} (see services/cassandra.cql). SQL
# text, not the DataFrame API: a frame is then one call from Python into the JVM, where building these selects
# column by column took hundreds, a share of the driver's CPU that grew with the number of micro-batches.
TABLE_QUERIES = {
    "spam_events_by_channel": """SELECT channel, to_date(timestamp_millis(window_start)) AS day,
        timestamp_millis(window_start) AS window_start, event_id, event_kind AS kind,
        timestamp_millis(window_end) AS window_end, text, message_hash, CAST(message_count AS INT) AS message_count,
        CAST(distinct_users AS INT) AS distinct_users, CAST(variants AS INT) AS variants,
        transform(top_users, u -> named_struct('user', u.user, 'count', CAST(u.`count` AS INT))) AS top_users,
        transform(top_variants, v -> named_struct('text', v.text, 'count', CAST(v.`count` AS INT))) AS top_variants,
        timestamp_millis(first_ts) AS first_ts, timestamp_millis(last_ts) AS last_ts, topic_id FROM {events}""",
    "spam_events_by_message": """SELECT message_hash, to_date(timestamp_millis(window_start)) AS day,
        timestamp_millis(window_start) AS window_start, channel, event_id, text,
        CAST(message_count AS INT) AS message_count, CAST(distinct_users AS INT) AS distinct_users, topic_id
        FROM {events}""",
    "spam_message_days": """SELECT message_hash, to_date(timestamp_millis(window_start)) AS day, text FROM {events}""",
    "spam_lsh_buckets": """SELECT posexplode(buckets) AS (band, bucket), message_hash, text,
        timestamp_millis(last_ts) AS last_seen FROM {events}""",
    "spam_topics_by_channel": """SELECT channel, to_date(timestamp_millis(first_ts)) AS day, topic_id, text,
        message_hash, timestamp_millis(first_ts) AS first_seen, timestamp_millis(last_ts) AS last_seen,
        CAST(windows_active AS INT) AS windows_active, message_count AS total_messages, peak_rate, ended
        FROM {topics}""",
    "spam_campaigns_by_day": """SELECT to_date(timestamp_millis(first_ts)) AS day, message_hash AS campaign_id,
        channel, topic_id, text, message_hash, timestamp_millis(first_ts) AS first_seen,
        timestamp_millis(last_ts) AS last_seen, message_count AS total_messages FROM {topics}""",
    "spam_event_users": """SELECT event_id, to_date(timestamp_millis(window_start)) AS day, user_login, channel,
        timestamp_millis(window_start) AS window_start, CAST(messages AS INT) AS messages,
        timestamp_millis(first_ts) AS first_ts, timestamp_millis(last_ts) AS last_ts FROM {users}""",
    "spam_events_by_user": """SELECT user_login, to_date(timestamp_millis(window_start)) AS day,
        timestamp_millis(window_start) AS window_start, event_id, channel, event_kind AS kind, text, message_hash,
        CAST(messages AS INT) AS messages, timestamp_millis(first_ts) AS first_ts,
        timestamp_millis(last_ts) AS last_ts, CAST(message_count AS INT) AS event_messages,
        CAST(distinct_users AS INT) AS event_users, topic_id FROM {users}""",
    "spam_user_days": """SELECT user_login, to_date(timestamp_millis(window_start)) AS day FROM {users}""",
}
# Each closed event's users, a row each beside the event's facts (EVENT_FACTS): the user tables' rows.
USER_ROWS = """SELECT event_id, channel, window_start, event_kind, text, message_hash, topic_id, message_count,
    distinct_users, u.user AS user_login, u.messages, u.first_ts, u.last_ts
    FROM {events} LATERAL VIEW explode(users) exploded AS u"""


def cassandra_frames(
    events: DataFrame, topics: DataFrame, users: DataFrame | None = None, tables: list[str] = CASSANDRA_TABLES
) -> dict[str, DataFrame]:
    """Detector output shaped as the rows of each of `tables`; users: from the events' `users` if None. Only the
    frames asked for are made: each is a query Spark analyses."""
    sql = events.sparkSession.sql  # a foreachBatch frame's own session, where its temporary views are
    if users is None and any(TABLE_SOURCE[table] == "user" for table in tables):
        users = sql(USER_ROWS, events=events)
    return {table: sql(TABLE_QUERIES[table], events=events, topics=topics, users=users) for table in tables}


def mark_last_topic_updates(rows: list[dict[str, Any]]) -> None:
    """Mark (last_update) each topic's last update among the rows: one batch can hold several windows' updates of a
    topic, and Cassandra keeps the newest write timestamp, which follows neither their order (the connector's tasks
    run side by side) nor, within one unlogged batch, any order at all (its rows share one timestamp and a tie goes
    to the greater value), so only the last is written there."""
    last = {r["topic_id"]: i for i, r in enumerate(rows) if r["kind"] == "topic"}
    for i, row in enumerate(rows):
        if row["kind"] == "topic":
            row["last_update"] = last[row["topic_id"]] == i


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


def kafka_record(row: dict[str, Any]) -> tuple[bytes, bytes]:
    """The Kafka key and value of a detector output row: a spam record (event or topic) or a dead letter."""
    if row["kind"] == "dead":
        letter = {"reason": row["reason"], "value": row["raw"], "kafka_ts": int(row["kafka_ts"])}
        return DEADLETTER_RECORD_KEY, msgpack.packb(letter, use_bin_type=True)
    record = spam_record(row)
    return record.key, record.encode()


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
    """Where detector output goes: spam records and dead letters to Kafka, then the history tables in Cassandra,
    each a Spark job over the stateful step's output (jobs.keyed.KEYED_FIELDS, encoded for Kafka on the executors),
    so no output row passes through the driver. Both are written before `write` returns, so before Spark commits
    the micro-batch: its checkpoint is the only recovery, and a batch that runs again writes the same rows again
    (idempotent upserts; on Kafka the same event ids). Every write is retried while its service is away, which
    holds the stream back."""

    def __init__(self, config: Config, spark: Any):
        self.config = config
        self.spark = spark
        self.keyspace = config.cassandra.keyspace
        # Spark's Kafka sink: Java's producer, idempotent with acks=all by its defaults; a send waits for a broker's
        # metadata as long as the platform's clients wait for a broker to answer, then the write is retried
        self.kafka = {**kafka_options(config), "kafka.max.block.ms": str(int(config.kafka.connect_timeout_s * 4000))}

    def write(self, output: DataFrame, counts: collections.Counter[str], timings: dict[str, float]) -> None:
        """output: the stateful step's rows of one micro-batch (persisted by the caller); counts: how many of each
        kind they hold (from the partitions' summaries), so that a table with no rows costs no Spark job."""
        kind, state = F.col("kind"), F.col("state")
        if counts["events"] + counts["open_reports"] + counts["undone"] + counts["topic_updates"]:
            # Kafka first: live consumers (the dashboard) see an event before the history tables are written.
            spam = output.where(kind.isin("event", "topic")).select(
                F.lit(self.config.kafka.spam_topic).alias("topic"), "key", "value"
            )
            with_retries("kafka spam", lambda: spam.write.format("kafka").options(**self.kafka).save(), timings=timings)
        if counts["dead_letters"]:
            dead = output.where(kind == "dead").select(
                F.lit(self.config.kafka.deadletter_topic).alias("topic"), "key", "value"
            )
            with_retries(
                "kafka dead letters", lambda: dead.write.format("kafka").options(**self.kafka).save(), timings=timings
            )
        # The history holds closed events only (an open one is not final, an undone one was never written), and
        # each topic's last update of the batch.
        events = output.where((kind == "event") & (state == "closed"))
        kinds = {"event", "user"} if counts["events"] else set()
        kinds |= {"topic"} if counts["topic_updates"] else set()
        tables = [table for table in CASSANDRA_TABLES if TABLE_SOURCE[table] in kinds]
        frames = cassandra_frames(events, output.where((kind == "topic") & F.col("last_update")), tables=tables)
        # One table after the other: written at once, the connector's writes hung for good when Cassandra went
        # away mid-write (all of them waiting on the dropped session; test_faults' Cassandra outage).
        for table, frame in frames.items():
            self._save(table, frame, timings)

    def _save(self, table: str, frame: DataFrame, timings: dict[str, float]) -> None:
        with_retries(
            f"cassandra {table}",
            lambda: frame.write.format(CONNECTOR).options(keyspace=self.keyspace, table=table).mode("append").save(),
            before_retry=self._reconnect,
            timings=timings,
        )

    def _reconnect(self) -> None:
        """Drop the connector's cached Cassandra sessions: one opened before a node restart can hang every later
        write (seen with the local node stopped and started again), while a new one connects at once."""
        self.spark.sparkContext._jvm.com.datastax.spark.connector.cql.CassandraConnector.evictCache()
