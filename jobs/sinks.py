"""Where a micro-batch of detector output goes: Kafka (spam events, topic updates, dead letters) and Cassandra.

Every Cassandra row is keyed by deterministic ids, so a micro-batch replayed after a crash overwrites what it
wrote before; on Kafka a replayed event carries the same event id. A sink that is down is retried with
exponential backoff, holding the stream back rather than losing the batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Callable, Iterator

import msgpack
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from twitchcrement.config import Config
from twitchcrement.records import SpamEvent, SpamTopic

log = logging.getLogger(__name__)

CONNECTOR = "org.apache.spark.sql.cassandra"


def _ms(column: str) -> Any:
    return F.timestamp_millis(F.col(column))


def _day(column: str) -> Any:
    return F.to_date(F.timestamp_millis(F.col(column)))


def cassandra_frames(events: DataFrame, topics: DataFrame) -> dict[str, DataFrame]:
    """Detector output shaped as the rows of each Cassandra table (see conf/cassandra.cql)."""
    top_users = F.transform("top_users", lambda u: F.struct(u["user"].alias("user"),
                                                             u["count"].cast("int").alias("count")))
    top_variants = F.transform("top_variants", lambda v: F.struct(v["text"].alias("text"),
                                                                   v["count"].cast("int").alias("count")))
    return {
        "spam_events_by_channel": events.select(
            "channel", _day("window_start").alias("day"), _ms("window_start").alias("window_start"), "event_id",
            F.col("event_kind").alias("kind"), _ms("window_end").alias("window_end"), "text", "message_hash",
            F.col("message_count").cast("int").alias("message_count"),
            F.col("distinct_users").cast("int").alias("distinct_users"), F.col("variants").cast("int").alias("variants"),
            top_users.alias("top_users"), top_variants.alias("top_variants"), _ms("first_ts").alias("first_ts"), _ms("last_ts").alias("last_ts"),
            "topic_id"),
        "spam_events_by_message": events.select(
            "message_hash", _day("window_start").alias("day"), _ms("window_start").alias("window_start"), "channel",
            "event_id", "text", F.col("message_count").cast("int").alias("message_count"),
            F.col("distinct_users").cast("int").alias("distinct_users"), "topic_id"),
        "spam_message_days": events.select("message_hash", _day("window_start").alias("day"), "text"),
        "spam_lsh_buckets": events.select(F.posexplode("buckets").alias("band", "bucket"), "message_hash", "text",
                                          _ms("last_ts").alias("last_seen")),
        "spam_topics_by_channel": topics.select(
            "channel", _day("first_ts").alias("day"), "topic_id", "text", "message_hash",
            _ms("first_ts").alias("first_seen"), _ms("last_ts").alias("last_seen"),
            F.col("windows_active").cast("int").alias("windows_active"),
            F.col("message_count").alias("total_messages"), "peak_rate", "ended"),
        "spam_campaigns_by_day": topics.select(
            _day("first_ts").alias("day"), F.col("message_hash").alias("campaign_id"), "channel", "topic_id", "text",
            "message_hash", _ms("first_ts").alias("first_seen"), _ms("last_ts").alias("last_seen"),
            F.col("message_count").alias("total_messages")),
    }


def _spam_records(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        keys, values = [], []
        for row in batch.itertuples(index=False):
            if row.kind == "event":
                record: SpamEvent | SpamTopic = SpamEvent(
                    event_id=row.event_id, kind=row.event_kind, channel=row.channel, window_start=int(row.window_start),
                    window_end=int(row.window_end), text=row.text, message_hash=row.message_hash,
                    message_count=int(row.message_count), distinct_users=int(row.distinct_users),
                    variants=int(row.variants), top_users=[[u["user"], int(u["count"])] for u in row.top_users],
                    top_variants=[[v["text"], int(v["count"])] for v in row.top_variants],
                    first_ts=int(row.first_ts), last_ts=int(row.last_ts), topic_id=row.topic_id or "")
            else:
                record = SpamTopic(
                    topic_id=row.topic_id, channel=row.channel, text=row.text, message_hash=row.message_hash,
                    first_seen=int(row.first_ts), last_seen=int(row.last_ts), windows_active=int(row.windows_active),
                    total_messages=int(row.message_count), peak_rate=float(row.peak_rate), ended=bool(row.ended))
            keys.append(record.key)
            values.append(record.encode())
        yield pd.DataFrame({"key": keys, "value": values})


def _dead_letters(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        values = [msgpack.packb({"reason": reason, "value": raw, "kafka_ts": int(ts)}, use_bin_type=True)
                  for reason, raw, ts in zip(batch["reason"], batch["raw"], batch["first_ts"])]
        yield pd.DataFrame({"key": [b"deadletter"] * len(values), "value": values})


# Words in the errors of a sink that is down or overloaded, as opposed to a write that can never succeed.
_TRANSIENT_MARKERS = ("NoNodeAvailable", "AllNodesFailed", "NoHostAvailable", "Connection refused", "Timeout",
                      "timed out", "Unavailable", "ConnectException", "ClosedChannel", "Connection reset",
                      "DisconnectException", "NetworkException", "NotLeaderOrFollower", "not available")


def is_transient(exc: BaseException) -> bool:
    """The error of a service that is down or overloaded (worth retrying), not of a write that cannot succeed."""
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def with_retries(what: str, action: Callable[[], None], attempts: int = 12, max_wait_s: float = 30.0,
                 before_retry: Callable[[], None] = lambda: None) -> None:
    """Run a sink write; while the sink is unreachable wait 1, 2, 4 ... (at most max_wait_s) seconds and try
    again. An error that retrying cannot fix (a schema mismatch, say) is raised at once."""
    for attempt in range(attempts):
        try:
            action()
            return
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            wait = min(2.0 ** attempt, max_wait_s)
            log.warning("sink write failed; retrying", extra={"sink": what, "attempt": attempt + 1,
                                                               "retry_in_s": wait,
                                                               "error": f"{type(exc).__name__}: {exc}"[:300]})
            time.sleep(wait)
            before_retry()


class BatchWriter:
    """The foreachBatch function: one micro-batch of detector output to every sink, and running totals."""

    def __init__(self, config: Config):
        self.bootstrap = config.kafka_bootstrap
        self.keyspace = config["cassandra.keyspace"]
        self.spam_topic = config["kafka.spam_topic"]
        self.deadletter_topic = config["kafka.deadletter_topic"]
        self.totals: Counter[str] = Counter()

    @staticmethod
    def _reconnect() -> None:
        """Drop the connector's cached Cassandra sessions: one opened before a node restart can hang every later
        write (seen with the local node stopped and started again), while a new one connects at once."""
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is not None:
            spark.sparkContext._jvm.com.datastax.spark.connector.cql.CassandraConnector.evictCache()

    def _kafka(self, frame: DataFrame, topic: str) -> None:
        (frame.write.format("kafka").option("kafka.bootstrap.servers", self.bootstrap).option("topic", topic)
         .save())

    def __call__(self, output: DataFrame, batch_id: int) -> None:
        output = output.persist()
        try:
            counts = {r["kind"]: (r["n"], r["late"]) for r in
                      output.groupBy("kind").agg(F.count("*").alias("n"), F.sum("late").alias("late")).collect()}
            if not counts:
                return
            events = output.where(F.col("kind") == "event")
            topics = output.where(F.col("kind") == "topic")
            if "event" in counts or "topic" in counts:
                # Kafka first: live consumers (the dashboard) see an event before the history tables are written.
                spam = output.where(F.col("kind").isin("event", "topic")).mapInPandas(_spam_records,
                                                                                       "key binary, value binary")
                with_retries("kafka spam", lambda: self._kafka(spam, self.spam_topic))
                for table, frame in cassandra_frames(events, topics).items():
                    with_retries(f"cassandra {table}", lambda f=frame, t=table: f.write.format(CONNECTOR).options(
                        keyspace=self.keyspace, table=t).mode("append").save(), before_retry=self._reconnect)
            if "deadletter" in counts:
                dead = output.where(F.col("kind") == "deadletter").mapInPandas(_dead_letters,
                                                                                "key binary, value binary")
                with_retries("kafka dead letters", lambda: self._kafka(dead, self.deadletter_topic))
            batch = {"events": counts.get("event", (0, 0))[0], "topic_updates": counts.get("topic", (0, 0))[0],
                     "dead_letters": counts.get("deadletter", (0, 0))[0],
                     "late_dropped": int(counts.get("late", (0, 0))[1] or 0)}
            self.totals.update(batch)
            log.info("batch written", extra={"batch": batch_id, **batch})
        finally:
            output.unpersist()
