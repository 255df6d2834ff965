"""The detector as operators run it: killed with SIGKILL three times mid-stream and restarted from its checkpoint."""

from __future__ import annotations

import collections
import time
import uuid

import pytest

from ingest.synth import Generator, SynthSettings
from tests.detector_harness import (
    DetectorProcess,
    expected_event_ids,
    flush_message,
    fresh_config,
    produce,
    stored_event_ids,
    stored_event_users,
)
from tests.test_ingest_twitch import wait_for
from tests.test_kafka_records import consume_all
from twitchcrement.records import SpamEvent, decode_spam


@pytest.mark.slow
def test_sigkill_three_times_and_restart_from_checkpoint_keeps_every_event_once(platform, tmp_path, recovery):
    config = fresh_config(platform)
    prefix = f"rs{uuid.uuid4().hex[:6]}"
    generator = Generator(
        SynthSettings(rate=100, seconds=80, channels=3, seed=29, prefix=prefix, start_ms=1_767_225_600_000)
    )
    messages = list(generator)
    quarter = len(messages) // 4
    detector = DetectorProcess(config, tmp_path, max_offsets_per_trigger=500)
    produce(config, messages[:quarter])
    detector.launch()
    try:
        for kill in range(1, 4):
            target = detector.committed() + 2
            wait_for(
                lambda target=target: detector.committed() >= target,
                240,
                f"two more committed micro-batches (kill {kill})",
            )
            detector.kill()  # mid-stream, no clean shutdown
            produce(config, messages[kill * quarter : (kill + 1) * quarter if kill < 3 else len(messages)])
            killed_at = detector.committed()
            began = time.monotonic()
            detector.launch()
            wait_for(
                lambda killed_at=killed_at: detector.committed() > killed_at,
                240,
                f"a committed micro-batch after kill {kill}",
            )
            recovery(
                f"detector SIGKILLed ({kill} of 3)",
                time.monotonic() - began,
                "restart to its next committed micro-batch, from the checkpoint (JVM start included)",
            )
        # The flush message goes last: read before the backlog, a message minutes ahead would stand for a stream
        # that has moved on, and every channel still behind it would be closed (see detector.channel_lag_s).
        wait_for(lambda: detector.offsets_read() >= len(messages), 300, "the restarted job to read every message")
        produce(config, [flush_message(max(m.sent_ts for m in messages))])
        expected = expected_event_ids(messages)
        wait_for(
            lambda: set(stored_event_ids(config, generator.channels, messages)) >= expected,
            300,
            "every expected event in Cassandra after three kills",
        )
        assert detector.terminate(timeout_s=30) == 0
    finally:
        detector.ensure_gone()
    stored = stored_event_ids(config, generator.channels, messages)
    assert sorted(stored) == sorted(expected)  # each exactly once in Cassandra, nothing extra
    # On Kafka a replayed micro-batch may send an event again: then with the same id (and the same content).
    on_kafka = [
        r
        for r in (decode_spam(x.value) for x in consume_all(config, config.kafka.spam_topic, 10**9, timeout_s=8))
        if isinstance(r, SpamEvent) and r.state == "closed"
    ]
    assert {e.event_id for e in on_kafka} == expected
    by_id = collections.defaultdict(set)
    for event in on_kafka:
        by_id[event.event_id].add((event.message_count, event.distinct_users, event.text))
    assert all(len(versions) == 1 for versions in by_id.values())
    # Every user of every event once: replayed batches overwrote their user rows rather than adding to them.
    for event in {e.event_id: e for e in on_kafka}.values():
        logins = [row.user_login for row in stored_event_users(config, event)]
        assert len(logins) == len(set(logins)) == event.distinct_users, event.event_id


def test_a_checkpoint_of_the_release_before_is_one_clear_error(platform, spark, tmp_path):
    from jobs.spam_detector import start
    from twitchcrement.errors import UserError

    (tmp_path / "detector-state").mkdir()  # what the release before kept beside Spark's checkpoint
    with pytest.raises(UserError, match=r"^the checkpoint .* was written by a release that kept the detector state"):
        start(spark, platform, checkpoint=str(tmp_path))
    assert spark.streams.active == []
