"""The sinks: a batch's rows are in Cassandra when `write` returns (Spark commits the batch after it), and
Cassandra ends up with each topic's last update (real Spark, Cassandra and Kafka)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

from detector_harness import fresh_config, spam_records

from jobs.keyed import KEYED_SCHEMA, output_counts, output_frame
from jobs.sinks import Sinks, mark_last_topic_updates
from twitchcrement.clients import cassandra_session

DAY_MS = 1_767_225_600_000  # 2026-01-01


def topic_update(channel: str, topic_id: str, windows: int, ended: bool = False) -> dict[str, Any]:
    return {
        "kind": "topic",
        "channel": channel,
        "topic_id": topic_id,
        "text": "OMEGALUL",
        "norm": "omegalul",
        "message_hash": f"hash-{topic_id}",
        "first_ts": DAY_MS,
        "last_ts": DAY_MS + windows * 10_000,
        "windows_active": windows,
        "message_count": 10 * windows,
        "peak_rate": 1.0,
        "ended": ended,
    }


def stored_topics(config: Any, channel: str) -> dict[str, tuple[int, bool]]:
    session = cassandra_session(config)
    try:
        rows = session.execute(
            session.prepare(
                "SELECT topic_id, windows_active, ended FROM spam_topics_by_channel WHERE channel = ? AND day = ?"
            ),
            [channel, dt.date(2026, 1, 1)],
        )
        return {r.topic_id: (r.windows_active, r.ended) for r in rows}
    finally:
        session.cluster.shutdown()


def test_only_a_topics_last_update_is_marked_in_order_of_the_rows() -> None:
    rows = [
        topic_update("c", "a", 1),
        {"kind": "event", "event_id": "e1"},
        topic_update("c", "b", 1),
        topic_update("c", "a", 2),
        topic_update("c", "a", 3, ended=True),
    ]
    mark_last_topic_updates(rows)
    assert [r.get("last_update") for r in rows] == [False, None, True, False, True]


def write(sinks: Sinks, spark, rows: list[dict[str, Any]], timings: dict[str, float]) -> None:
    """rows as the stateful step hands them over (jobs.keyed.output_frame), through the sinks: the rows of one Kafka
    partition come from one call of the stateful step, so they are one Spark partition, in order."""
    output = spark.createDataFrame(output_frame(rows), KEYED_SCHEMA).coalesce(1)
    sinks.write(output, Counter(output_counts(rows)), timings)


def test_a_batch_is_in_kafka_and_cassandra_when_write_returns_and_a_topics_last_update_wins(platform, spark) -> None:
    config = fresh_config(platform)
    channel = f"sinks_{uuid.uuid4().hex[:8]}"
    sinks = Sinks(config, spark)
    timings: dict[str, float] = {}
    write(sinks, spark, [topic_update(channel, "wave", w, ended=w == 3) for w in (1, 2, 3)], timings)
    assert stored_topics(config, channel) == {"wave": (3, True)}  # no waiting: written before write returned
    write(sinks, spark, [topic_update(channel, "other", 1)], timings)
    assert stored_topics(config, channel) == {"wave": (3, True), "other": (1, False)}
    assert {name for name in timings if name.startswith("cassandra")} == {
        "cassandra spam_topics_by_channel",
        "cassandra spam_campaigns_by_day",
    }
    _, topics = spam_records(config)
    assert [(t.topic_id, t.windows_active) for t in topics if t.channel == channel] == [
        ("wave", 1),
        ("wave", 2),
        ("wave", 3),
        ("other", 1),
    ]
