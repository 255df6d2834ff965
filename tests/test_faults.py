"""Fault injection on the real services: each fault is injected, the platform recovers by itself, and nothing is
lost or doubled (see docs/guarantees.md). The IRC faults are in test_ingest_twitch, the detector's SIGKILLs in
test_detector_restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ingest import replay
from ingest.sink import ChatSink
from ingest.synth import Generator, SynthSettings
from services.local import LocalCassandra, LocalKafka
from tests.conftest import TEST_ENVIRONMENT
from tests.detector_harness import (
    DetectorProcess,
    expected_event_ids,
    flush_message,
    fresh_config,
    produce,
    run,
    stored_event_ids,
)
from tests.test_ingest_twitch import wait_for
from tests.test_kafka_records import consume_all
from tests.test_metrics import ready
from tests.test_security import free_port
from twitchcrement import PROJECT_ROOT
from twitchcrement.records import ChatMessage, decode_chat

pytestmark = pytest.mark.slow


def chat(prefix: str, seconds: int, start_ms: int, seed: int = 41) -> tuple[list[ChatMessage], list[str]]:
    generator = Generator(
        SynthSettings(rate=80, seconds=seconds, channels=3, seed=seed, prefix=prefix, start_ms=start_ms)
    )
    return list(generator), generator.channels


@pytest.mark.restarts_services
def test_kafka_broker_killed_while_ingest_and_detector_run(platform, tmp_path, recovery) -> None:
    config = fresh_config(platform)
    messages, channels = chat(f"kk{uuid.uuid4().hex[:6]}", 60, int(time.time() * 1000))
    detector = DetectorProcess(config, tmp_path).launch()
    sink = ChatSink(config)
    fed = threading.Event()

    accepted: list[str] = []

    def feed() -> None:  # live chat, as the IRC reader offers it: paced, never blocking (a full buffer drops)
        for message in replay.paced(messages, speed=1.0, restamp=False):
            if sink.offer(message):
                accepted.append(message.message_id)
        fed.set()

    broker = LocalKafka(platform)
    try:
        wait_for(lambda: detector.committed() >= 1, 180, "the detector's first micro-batch")
        threading.Thread(target=feed, daemon=True).start()
        time.sleep(15)
        os.kill(broker.pid(), signal.SIGKILL)
        killed = time.monotonic()
        time.sleep(15)
        broker.start()
        back = time.monotonic() - killed
        # Live chat still flows, so a few records are always in flight; the outage's backlog is thousands.
        wait_for(lambda: sink.pending < 100, 120, "the sink to deliver what it held")
        drained = time.monotonic() - killed - back
        assert fed.wait(180)
        sink.close(timeout_s=120)
        in_topic = [decode_chat(r.value) for r in consume_all(config, config.kafka.chat_topic, 10**9, timeout_s=10)]
        # Time moves on (a message far ahead closes every window) once the backlog is read: read before it, it
        # would stand for a stream minutes ahead, and each channel's windows would close behind it.
        wait_for(lambda: detector.offsets_read() >= len(in_topic), 180, "the detector to read the backlog")
        produce(config, [flush_message(messages[-1].sent_ts)])
        expected = expected_event_ids(messages)
        wait_for(
            lambda: set(stored_event_ids(config, channels, messages)) >= expected,
            300,
            "every expected event after the broker came back",
        )
        assert not re.search(r"late_dropped=[1-9]", detector.log_text()), "chat dropped as late"
        recovered_in = time.monotonic()
        assert detector.terminate(timeout_s=30) == 0
    finally:
        detector.ensure_gone()
        if broker.pid() is None:
            broker.start()
    ids = [m.message_id for m in in_topic if m.channel in channels]
    # The drop counter is what was really dropped: every accepted record reached Kafka. A 15 s outage fits in the
    # buffer, so that is nothing.
    assert sink.stats.dropped == len(messages) - len(accepted) == 0
    assert set(ids) == set(accepted)
    recovery(
        "Kafka broker SIGKILLed (ingest side)",
        drained,
        f"broker down {back:.0f} s (15 s + start-up); the sink's backlog delivered this long after it was back; "
        f"{len(ids) - len(set(ids))} duplicate records",
    )
    recovery(
        "Kafka broker SIGKILLed (detector side)",
        recovered_in - killed - back,
        "every expected event in Cassandra this long after the broker was back, nothing late",
    )
    stored = stored_event_ids(config, channels, messages)
    assert len(stored) == len(set(stored))  # no event twice in Cassandra
    # Every expected event; a resent duplicate chat record may in principle push one more cluster over a threshold.
    assert set(stored) >= expected


@pytest.mark.restarts_services
def test_cassandra_down_for_a_minute_loses_no_event(platform, tmp_path, recovery) -> None:
    config = fresh_config(platform)
    messages, channels = chat(f"cd{uuid.uuid4().hex[:6]}", 60, 1_767_225_600_000, seed=43)
    half = len(messages) // 2
    produce(config, messages[:half])
    # One micro-batch takes the whole backlog after the outage (see docs/guarantees.md on backfills).
    port = free_port()
    detector = DetectorProcess(
        config, tmp_path, max_offsets_per_trigger=100_000, extra_env={"TWITCHCREMENT_DETECTOR_METRICS_PORT": str(port)}
    ).launch()
    readyz = f"http://127.0.0.1:{port}"
    cassandra = LocalCassandra(platform)
    try:
        wait_for(lambda: detector.committed() >= 2, 180, "two committed micro-batches")
        wait_for(lambda: ready(readyz)["ready"], 60, "the detector ready before the outage")
        cassandra.stop()
        stopped = time.monotonic()
        # Readiness says so, naming Cassandra, while it is away.
        wait_for(lambda: ready(readyz)["checks"]["cassandra"] != "ok", 30, "readiness to go false")
        assert not ready(readyz)["ready"] and ready(readyz)["checks"]["kafka"] == "ok"
        # The job holds the stream back while the sink is down (retrying), so chat waits in Kafka meanwhile.
        produce(config, messages[half:] + [flush_message(messages[-1].sent_ts)])
        time.sleep(max(0.0, 60 - (time.monotonic() - stopped)))
        cassandra.start()
        restarted = time.monotonic()
        wait_for(lambda: ready(readyz)["ready"], 120, "readiness true again once Cassandra is back")
        expected = expected_event_ids(messages)
        wait_for(
            lambda: set(stored_event_ids(config, channels, messages)) >= expected,
            420,
            "every expected event once Cassandra is back",
        )
        caught_up = time.monotonic() - restarted
        assert detector.process.poll() is None, "the detector must ride out the outage, not exit"
        assert detector.terminate(timeout_s=30) == 0
    finally:
        detector.ensure_gone()
        if cassandra.pid() is None:
            cassandra.start()
    recovery(
        "Cassandra stopped for 60 s",
        caught_up,
        f"down {restarted - stopped:.0f} s; every expected event stored this long after it was back",
    )
    assert sorted(stored_event_ids(config, channels, messages)) == sorted(expected)
    assert "retrying" in detector.log_text() or "restarting the query" in detector.log_text()


def test_garbage_in_the_chat_topic_goes_to_the_dead_letter_topic(platform, spark, tmp_path) -> None:
    import msgpack

    config = fresh_config(platform)
    start = 1_767_225_600_000
    channel = f"gb{uuid.uuid4().hex[:6]}"
    texts = {"emoji": "🐸🐸🐸 🎉", "rtl": "مرحبا بالجميع في البث", "long": "KEKW " * 2000}  # long: 10 kB
    valid = [
        ChatMessage(channel=channel, user_login=f"u{i}", text=f"{texts['emoji']} wave", sent_ts=start + i * 100)
        for i in range(6)
    ]
    valid += [
        ChatMessage(channel=channel, user_login=f"r{i}", text=texts["rtl"], sent_ts=start + 1000 + i * 100)
        for i in range(6)
    ]
    garbage = [
        b"\xc1",
        b"not msgpack at all",
        msgpack.packb({"channel": channel}),
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"channel": channel, "user_login": "x", "text": "", "sent_ts": start}),
        msgpack.packb({"channel": channel, "user_login": "x", "text": texts["long"], "sent_ts": start}),
        msgpack.packb({"channel": channel, "user_login": "x", "text": " \t", "sent_ts": start}),
        msgpack.packb({"channel": "Not A Channel!", "user_login": "x", "text": "hi", "sent_ts": start}),
    ]
    produce(config, valid + [flush_message(start)], raw=garbage)
    run(spark, config, tmp_path / "checkpoint")
    dead = [msgpack.unpackb(r.value) for r in consume_all(config, config.kafka.deadletter_topic, len(garbage))]
    assert sorted(d["value"] for d in dead) == sorted(garbage)
    assert all(d["reason"] and "\n" not in d["reason"] for d in dead)
    reasons = " ".join(d["reason"] for d in dead)
    assert "is empty" in reasons and "over the limit" in reasons and "missing field" in reasons
    assert len(stored_event_ids(config, [channel], valid)) == 2  # the emoji wave and the right-to-left wave


def test_sigterm_stops_each_process_within_10_s(platform, tmp_path, recovery) -> None:
    config = fresh_config(platform)
    env = {
        "PATH": "/usr/bin:/bin",
        **TEST_ENVIRONMENT,
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": config.kafka.chat_topic,
        "TWITCHCREMENT_KAFKA_SPAM_TOPIC": config.kafka.spam_topic,
        "TWITCHCREMENT_LOCAL_DATA_DIR": str(tmp_path / "local"),
    }
    sample = str(PROJECT_ROOT / "data" / "samples" / "recentmessages-nymn.json")
    commands = {
        "replay": ["-m", "ingest", "--no-progress", "replay", sample, "--loop", "--speed", "1"],
        "synth": [
            "-m",
            "ingest",
            "--no-progress",
            "synth",
            "--rate",
            "200",
            "--seconds",
            "3600",
            "--labels",
            str(tmp_path / "labels.jsonl"),
        ],
        "dashboard": ["-m", "dashboard", "--port", str(free_port())],
        "detector": [str(PROJECT_ROOT / "jobs" / "spam_detector.py"), "--checkpoint", str(tmp_path / "checkpoint")],
    }
    timings = {}
    for name, arguments in commands.items():
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, *arguments],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),
            start_new_session=True,
        )
        try:
            if name == "dashboard":
                wait_for(
                    lambda log=log, process=process: "dashboard serving" in log.read_text(errors="replace")
                    or process.poll() is not None,
                    60,
                    "the dashboard to serve",
                )
            elif name == "detector":
                wait_for(lambda: (tmp_path / "checkpoint" / "commits").exists(), 180, "the detector's first batch")
            time.sleep(5)  # ingest: well into producing
            assert process.poll() is None, log.read_text()[-2000:]
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(30)
            timings[name] = time.monotonic() - began
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        assert code == 0, f"{name} exited {code}: {log.read_text()[-2000:]}"
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-2000:]
    for name, seconds in timings.items():
        recovery(f"SIGTERM to {name}", seconds, "flushed and exited 0")
    assert all(t < 10 for t in timings.values()), timings
