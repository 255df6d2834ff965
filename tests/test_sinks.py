"""The sinks: a batch's rows are in Cassandra when `write` returns (Spark commits the batch after it), and
Cassandra ends up with each topic's last update (real Spark, Cassandra and Kafka)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from detector_harness import fresh_config, spam_records

from jobs.sinks import Sinks, newest_topic_updates
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


def test_only_a_topics_last_update_is_kept_in_order_of_the_rows() -> None:
    rows = [
        topic_update("c", "a", 1),
        {"kind": "event", "event_id": "e1"},
        topic_update("c", "b", 1),
        topic_update("c", "a", 2),
        topic_update("c", "a", 3, ended=True),
    ]
    assert newest_topic_updates(rows) == [rows[1], rows[2], rows[4]]


def test_a_batch_is_in_kafka_and_cassandra_when_write_returns_and_a_topics_last_update_wins(platform, spark) -> None:
    config = fresh_config(platform)
    channel = f"sinks_{uuid.uuid4().hex[:8]}"
    sinks = Sinks(config, spark)
    try:
        timings: dict[str, float] = {}
        sinks.write([topic_update(channel, "wave", w, ended=w == 3) for w in (1, 2, 3)], [], timings)
        assert stored_topics(config, channel) == {"wave": (3, True)}  # no waiting: written before write returned
        sinks.write([topic_update(channel, "other", 1)], [], timings)
        assert stored_topics(config, channel) == {"wave": (3, True), "other": (1, False)}
        assert {name for name in timings if name.startswith("cassandra")} == {
            "cassandra spam_topics_by_channel",
            "cassandra spam_campaigns_by_day",
        }
    finally:
        sinks.close()
    _, topics = spam_records(config)
    assert [(t.topic_id, t.windows_active) for t in topics if t.channel == channel] == [
        ("wave", 1),
        ("wave", 2),
        ("wave", 3),
        ("other", 1),
    ]
