"""The detector as operators run it: killed with SIGKILL mid-stream and restarted from its checkpoint."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from ingest.synth import Generator, SynthSettings
from jobs.detection import ChannelDetector, Settings
from tests.conftest import TEST_ENVIRONMENT
from tests.detector_harness import flush_message, fresh_config, produce
from tests.test_ingest_twitch import wait_for
from twitchcrement import PROJECT_ROOT
from twitchcrement.clients import cassandra_session
from twitchcrement.textsim import MinHasher, normalise, shingles


def expected_event_ids(messages, settings: Settings, hasher: MinHasher) -> set[str]:
    """The same detection in plain Python (Python MinHash equals Spark ML's, see test_detector)."""
    detectors: dict[str, ChannelDetector] = {}
    for message in messages:
        norm = normalise(message.text)
        grams = shingles(norm)
        detectors.setdefault(message.channel, ChannelDetector(message.channel)).add(
            message.sent_ts, message.user_login, message.text, norm,
            hasher.signature(grams) if len(grams) >= settings.min_shingles else None, 0, settings)
    return {row["event_id"] for d in detectors.values() for row in d.close_windows(2**62, settings)
            if row["kind"] == "event"}


def stored_event_ids(config, channels: list[str], days: set[dt.date]) -> list[str]:
    session = cassandra_session(config)
    try:
        query = session.prepare("SELECT event_id FROM spam_events_by_channel WHERE channel = ? AND day = ?")
        return [row.event_id for c in channels for d in days for row in session.execute(query, [c, d])]
    finally:
        session.cluster.shutdown()


@pytest.mark.slow
def test_sigkill_and_restart_from_checkpoint_keeps_every_event_once(platform, tmp_path):
    config = fresh_config(platform)
    prefix = f"rs{uuid.uuid4().hex[:6]}"
    generator = Generator(SynthSettings(rate=100, seconds=60, channels=3, seed=29, prefix=prefix,
                                        start_ms=1_767_225_600_000))
    messages = list(generator)
    env = {"PATH": "/usr/bin:/bin", **TEST_ENVIRONMENT,
           "TWITCHCREMENT_KAFKA_CHAT_TOPIC": config["kafka.chat_topic"],
           "TWITCHCREMENT_KAFKA_SPAM_TOPIC": config["kafka.spam_topic"],
           "TWITCHCREMENT_KAFKA_DEADLETTER_TOPIC": config["kafka.deadletter_topic"],
           "TWITCHCREMENT_DETECTOR_STARTING_OFFSETS": "earliest",
           "TWITCHCREMENT_DETECTOR_MAX_OFFSETS_PER_TRIGGER": "1000",
           "TWITCHCREMENT_LOCAL_DATA_DIR": str(tmp_path / "local")}
    checkpoint = tmp_path / "checkpoint"
    command = [sys.executable, str(PROJECT_ROOT / "jobs" / "spam_detector.py"), "--checkpoint", str(checkpoint)]

    def launch() -> subprocess.Popen:
        return subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / "detector.log", "ab"), start_new_session=True)

    def offsets_read() -> int:
        """Records of the chat topic that the query has planned to read (its latest offsets log entry)."""
        logs = sorted((p for p in (checkpoint / "offsets").iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) \
            if (checkpoint / "offsets").exists() else []
        if not logs:
            return 0
        offsets = json.loads(logs[-1].read_text().strip().splitlines()[-1])
        return sum(offsets.get(config["kafka.chat_topic"], {}).values())

    def committed() -> int:
        commits = checkpoint / "commits"
        return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.exists() else 0

    half = len(messages) // 2
    produce(config, messages[:half])
    job = launch()
    try:
        wait_for(lambda: committed() >= 3, 180, "three committed micro-batches")
        os.killpg(job.pid, signal.SIGKILL)  # mid-stream, no clean shutdown
        job.wait(30)
        before_kill = committed()
        produce(config, messages[half:])
        job = launch()
        # The flush message goes last: Spark's watermark is the newest event time over all partitions, so a far
        # later message read before the backlog of other partitions would make that backlog late.
        wait_for(lambda: offsets_read() >= len(messages), 300, "the restarted job to read every message")
        produce(config, [flush_message(max(m.sent_ts for m in messages))])
        expected = expected_event_ids(messages, Settings(), MinHasher(1 << 20, 32, 20240106, 3))
        days = {dt.datetime.fromtimestamp(m.sent_ts / 1000, dt.timezone.utc).date() for m in messages}
        wait_for(lambda: set(stored_event_ids(config, generator.channels, days)) >= expected, 300,
                 "every expected event in Cassandra after the restart")
        job.send_signal(signal.SIGTERM)
        job.wait(60)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    stored = stored_event_ids(config, generator.channels, days)
    assert committed() > before_kill
    assert sorted(stored) == sorted(expected)  # each exactly once, nothing extra
