"""Run the real streaming detector on a list of messages: produce them to a fresh topic, process everything
available (the same plan as production, trigger availableNow), and read back what reached Kafka."""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ingest.sink import ChatSink
from ingest.synth import THIRD_PARTY_SETS
from jobs.detection import ChannelDetector, Settings
from jobs.keyed import KeyedBatch
from jobs.spam_detector import drain
from services.schema import ensure_topics
from tests.conftest import TEST_ENVIRONMENT
from tests.test_kafka_records import consume_all
from twitchcrement import PROJECT_ROOT
from twitchcrement.clients import cassandra_session
from twitchcrement.config import Config
from twitchcrement.emotes import tag_words, wave_emotes
from twitchcrement.records import ChatMessage, SpamEvent, SpamTopic, decode_spam
from twitchcrement.spark import checkpoint_offsets
from twitchcrement.textsim import MinHasher, normalise, shingles


def fresh_config(platform: Config) -> Config:
    suffix = uuid.uuid4().hex[:8]
    config = platform.with_overrides(
        kafka__chat_topic=f"test-chat-{suffix}",
        kafka__spam_topic=f"test-spam-{suffix}",
        kafka__deadletter_topic=f"test-dead-{suffix}",
        detector__starting_offsets="earliest",
    )
    ensure_topics(config, [config.kafka.chat_topic, config.kafka.spam_topic, config.kafka.deadletter_topic])
    return config


def produce(config: Config, messages: list[ChatMessage], raw: list[bytes] = ()) -> None:
    sink = ChatSink(config)
    for message in messages:
        sink.offer(message, block=True)
    sink.close(timeout_s=600)
    if raw:
        from twitchcrement.clients import kafka_producer

        producer = kafka_producer(config)
        for value in raw:
            producer.send(config.kafka.chat_topic, value)
        producer.flush(30)
        producer.close()


def flush_message(after_ts: int, seconds: int = 120) -> ChatMessage:
    """A message far later in event time: it moves the watermark past every window and topic before it."""
    return ChatMessage(
        channel=f"zz_flush_{uuid.uuid4().hex[:6]}", user_login="flush", text="flush", sent_ts=after_ts + seconds * 1000
    )


def run(spark, config: Config, checkpoint: Path, finish: bool = True) -> KeyedBatch:
    """Drain the chat topic with the real job (finish: then close the last windows, as --available-now does)."""
    return drain(spark, config, str(checkpoint), finish=finish, timeout_s=900)


def event_records(config: Config) -> list[SpamEvent]:
    """Every event record on the spam topic, in order: open ones, closed ones and undone ones."""
    records = (decode_spam(r.value) for r in consume_all(config, config.kafka.spam_topic, 10**9, timeout_s=8))
    return [r for r in records if isinstance(r, SpamEvent)]


def spam_records(config: Config) -> tuple[list[SpamEvent], list[SpamTopic]]:
    """The closed events (final) and the topic updates on the spam topic."""
    records = [decode_spam(r.value) for r in consume_all(config, config.kafka.spam_topic, 10**9, timeout_s=8)]
    events = [r for r in records if isinstance(r, SpamEvent) and r.state == "closed"]
    topics = [r for r in records if isinstance(r, SpamTopic)]
    return events, topics


def open_reports(records: list[SpamEvent]) -> dict[str, int]:
    """Per event id, how many open records it had; every id reported open must end closed or undone."""
    opened = collections.Counter(r.event_id for r in records if r.state == "open")
    last = {r.event_id: r.state for r in records}
    unfinished = sorted(event_id for event_id in opened if last[event_id] == "open")
    assert not unfinished, f"reported open and never closed or undone: {unfinished[:5]}"
    return dict(opened)


DEFAULT_SETTINGS = Settings()
# what ingest marks as third-party emotes: the sets the test run's stand-in serves (tests/conftest.py)
WORLD_EMOTES = {code: f"{p}-{i}" for p, sets in THIRD_PARTY_SETS.items() for code, i in sets[""].items()}
DEFAULT_HASHER = MinHasher(1 << 20, 32, 20240106, 3)  # the config's defaults (test_detector checks it equals Spark ML)


def expected_events(
    messages: list[ChatMessage],
    settings: Settings = DEFAULT_SETTINGS,
    hasher: MinHasher = DEFAULT_HASHER,
) -> tuple[set[str], int]:
    """Event ids and late drops of the same detection in plain Python (Python MinHash equals Spark ML's, see
    test_detector), each channel's messages in the order given (the order they reach Kafka), every window closed
    at the end: what any cut into micro-batches must reproduce."""
    detectors: dict[str, ChannelDetector] = {}
    coefficients = hasher.coefficients
    events: set[str] = set()
    for message in messages:
        norm = normalise(message.text)
        grams = shingles(norm)
        detector = detectors.setdefault(message.channel, ChannelDetector(message.channel))
        detector.add(
            message.sent_ts,
            message.user_login,
            message.text,
            norm,
            hasher.signature(grams, coefficients) if len(grams) >= settings.min_shingles else None,
            settings,
            wave_emotes(message.text, message.emotes, tag_words(message.text, WORLD_EMOTES)),
        )
        events |= {r["event_id"] for r in detector.take() if r.get("state") == "closed"}
    for detector in detectors.values():
        events |= {r["event_id"] for r in detector.finish(settings) if r.get("state") == "closed"}
    return events, sum(d.late_dropped for d in detectors.values())


def expected_event_ids(messages: list[ChatMessage]) -> set[str]:
    return expected_events(messages)[0]


def stored_event_ids(config: Config, channels: list[str], messages: list[ChatMessage]) -> list[str]:
    """Event ids in Cassandra's spam_events_by_channel for these channels on the messages' days (duplicates kept)."""
    days = {dt.datetime.fromtimestamp(m.sent_ts / 1000, dt.UTC).date() for m in messages}
    session = cassandra_session(config)
    try:
        query = session.prepare("SELECT event_id FROM spam_events_by_channel WHERE channel = ? AND day = ?")
        return [row.event_id for c in channels for d in days for row in session.execute(query, [c, d])]
    finally:
        session.cluster.shutdown()


def stored_event_users(config: Config, event: SpamEvent) -> list[Any]:
    """The rows of an event's partition of Cassandra's spam_event_users (user_login, messages, first_ts, last_ts)."""
    day = dt.datetime.fromtimestamp(event.window_start / 1000, dt.UTC).date()
    session = cassandra_session(config)
    try:
        query = session.prepare(
            "SELECT user_login, messages, first_ts, last_ts FROM spam_event_users WHERE event_id = ? AND day = ?"
        )
        return list(session.execute(query, [event.event_id, day]))
    finally:
        session.cluster.shutdown()


class DetectorProcess:
    """jobs/spam_detector.py as operators run it: its own process, its own checkpoint, the test's services."""

    def __init__(
        self,
        config: Config,
        workdir: Path,
        max_offsets_per_trigger: int = 1000,
        extra_env: dict[str, str] | None = None,
    ):
        self.config = config
        self.checkpoint = workdir / "checkpoint"
        self.logfile = workdir / "detector.log"
        self.env = {
            "PATH": "/usr/bin:/bin",
            **TEST_ENVIRONMENT,
            "TWITCHCREMENT_KAFKA_CHAT_TOPIC": config.kafka.chat_topic,
            "TWITCHCREMENT_KAFKA_SPAM_TOPIC": config.kafka.spam_topic,
            "TWITCHCREMENT_KAFKA_DEADLETTER_TOPIC": config.kafka.deadletter_topic,
            "TWITCHCREMENT_DETECTOR_STARTING_OFFSETS": "earliest",
            "TWITCHCREMENT_DETECTOR_MAX_OFFSETS_PER_TRIGGER": str(max_offsets_per_trigger),
            "TWITCHCREMENT_LOCAL_DATA_DIR": str(workdir / "local"),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    def launch(self) -> DetectorProcess:
        command = [
            sys.executable,
            str(PROJECT_ROOT / "jobs" / "spam_detector.py"),
            "--checkpoint",
            str(self.checkpoint),
        ]
        self.process = subprocess.Popen(
            command,
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(self.logfile, "ab"),
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL to the whole process group (the driver and its JVM): no clean shutdown."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def terminate(self, timeout_s: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def ensure_gone(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def committed(self) -> int:
        commits = self.checkpoint / "commits"
        return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.exists() else 0

    def offsets_read(self) -> int:
        """Records of the chat topic the query has planned to read."""
        return checkpoint_offsets(self.checkpoint, self.config.kafka.chat_topic) or 0

    def log_text(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""


class LiveWave:
    """A spam wave written to the chat topic as it happens, stamped now: `users` take turns pasting `text`, one
    message every `every_s`, `count` in all, beginning half a second after a window boundary (so the whole wave
    falls in `windows` windows). `window_end` is the last window's end (epoch ms); `done` is set after the last
    message."""

    def __init__(
        self, config: Config, channel: str, text: str, users: int, count: int, every_s: float, windows: int = 1
    ):
        self.config, self.channel, self.text = config, channel, text
        self.users, self.count, self.every_s = users, count, every_s
        window_ms = config.detector.window_s * 1000
        now = int(time.time() * 1000)
        self.window_start = now - now % window_ms + window_ms
        self.window_end = self.window_start + windows * window_ms
        assert count * every_s * 1000 < windows * window_ms - 1_000, f"the wave must fit in {windows} window(s)"
        self.done = threading.Event()
        threading.Thread(target=self._run, name="test-live-wave", daemon=True).start()

    def _run(self) -> None:
        sink = ChatSink(self.config)
        try:
            time.sleep(max(0.0, (self.window_start + 500) / 1000 - time.time()))
            for i in range(self.count):
                message = ChatMessage(
                    channel=self.channel,
                    user_login=f"{self.channel}_u{i % self.users}",
                    text=self.text,
                    sent_ts=int(time.time() * 1000),
                )
                sink.offer(message, block=True)
                time.sleep(self.every_s)
        finally:
            sink.close(timeout_s=30)
            self.done.set()
