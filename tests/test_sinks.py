"""The history writer: the rows of batches that end while a Cassandra write runs go together in the next write,
Cassandra ends up with each topic's last update, and a state snapshot carries what is not written yet, which a
restart writes (real Spark, Cassandra and Kafka)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from detector_harness import fresh_config

from jobs.micro_batch import MicroBatch
from jobs.sinks import MAX_HISTORY_LAG_BATCHES, Sinks, newest_topic_updates
from jobs.state import DetectorState
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


class CountingSinks(Sinks):
    """The real sinks, counting the history writes they start."""

    def __init__(self, config: Any, spark: Any):
        super().__init__(config, spark)
        self.writes: list[int] = []
        self.busy_since = 0.0  # when busy_writer made its history thread busy

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        self.writes.append(len(rows))
        super().write_history(rows)


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


def busy_writer(sinks: Sinks, seconds: float) -> float:
    """Keeps the history thread busy for `seconds`, as a long Cassandra write would; returns when it began."""
    began = time.monotonic()
    sinks._history = sinks._history_writer.submit(time.sleep, seconds)
    return began


@pytest.fixture
def busy_sinks(platform, spark) -> Iterator[tuple[CountingSinks, Any, str]]:
    """Sinks on fresh topics whose history thread is busy for 3 s, their config, and a channel of its own."""
    config = fresh_config(platform)
    sinks = CountingSinks(config, spark)
    sinks.busy_since = busy_writer(sinks, 3)
    try:
        yield sinks, config, f"sinks_{uuid.uuid4().hex[:8]}"
    finally:
        sinks.close()


def test_batches_that_end_while_a_history_write_runs_go_together_and_the_last_update_wins(busy_sinks) -> None:
    sinks, config, channel = busy_sinks
    timings: dict[str, float] = {}
    for windows in (1, 2, 3):
        sinks.write([topic_update(channel, "wave", windows, ended=windows == 3)], [], timings)
        assert timings["wait for the history writer"] < 0.5  # no batch waits for the busy writer
    sinks.write([topic_update(channel, "other", 1)], [], timings)
    sinks.write([], [], timings)  # a batch without output
    assert sinks.writes == []
    sinks.wait_for_history()  # what the end of a drain waits for: everything handed over is written
    assert sinks.writes == [4]  # the four batches' rows in one write
    assert stored_topics(config, channel) == {"wave": (3, True), "other": (1, False)}


def test_a_batch_waits_once_the_history_trails_by_the_limit(busy_sinks) -> None:
    sinks, config, channel = busy_sinks
    timings: dict[str, float] = {}
    began = time.monotonic()
    for batch in range(MAX_HISTORY_LAG_BATCHES - 1):
        sinks.write([topic_update(channel, f"t{batch}", 1)], [], timings)
    assert sinks.writes == [] and time.monotonic() - began < 2.5
    sinks.write([topic_update(channel, "last", 1)], [], timings)  # the limit: this batch waits
    assert time.monotonic() - sinks.busy_since >= 3  # it waited for the busy writer to finish
    sinks.wait_for_history()
    assert sinks.writes == [MAX_HISTORY_LAG_BATCHES]  # handed over at once, as one write
    assert set(stored_topics(config, channel)) == {f"t{b}" for b in range(MAX_HISTORY_LAG_BATCHES - 1)} | {"last"}


def test_a_snapshot_carries_the_unwritten_history_and_a_restart_writes_it(platform, spark, tmp_path) -> None:
    config = fresh_config(platform).with_overrides(detector__state_snapshot_s=0.001)
    channel = f"sinks_{uuid.uuid4().hex[:8]}"
    checkpoint = str(tmp_path / "checkpoint")
    killed = MicroBatch(config).bind(spark, checkpoint)
    busy_writer(killed.sinks, 5)  # the history thread is busy when batch 0 ends and its state is saved
    killed.sinks.write([topic_update(channel, "carried", 2)], [], {})
    killed._snapshot(DetectorState(batch_id=0))
    killed._wait_for_snapshot()
    # The job dies here: batch 0's history never left it. The restarted job's next batch restores the snapshot.
    restarted = MicroBatch(config).bind(spark, checkpoint)
    try:
        state = restarted._state_before(1)
    finally:
        restarted.close()
    assert state.batch_id == 0 and state.unwritten_history == []
    assert stored_topics(config, channel) == {"carried": (2, False)}
