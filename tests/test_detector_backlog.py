"""A backlog read in many micro-batches, with restarts, loses nothing: what the detector emits does not depend on how
the backlog is cut, nor on the other partitions' event time (real captures from 2017, 2019 and 2024 and synthetic
chat from 2026, interleaved in one topic so each partition holds several dates)."""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time
import uuid

import pytest

from ingest.captures import Capture
from ingest.synth import Generator, SynthSettings
from tests.conftest import TEST_ENVIRONMENT
from tests.detector_harness import (
    DetectorProcess,
    event_records,
    expected_events,
    flush_message,
    fresh_config,
    open_reports,
    produce,
    run,
    spam_records,
    stored_event_ids,
)
from tests.test_ingest_twitch import wait_for
from twitchcrement.records import ChatMessage

CAPTURES = [
    "admiralbulldog_irc/chat_admiralbulldog_4_30.log",
    "nymn_recentmessages/recentmessages-nymn.json",
    "multichannel_2017_clanghout/data.csv",
]


def interleaved(*sources: list[ChatMessage]) -> list[ChatMessage]:
    """Round-robin over the sources: every stretch of the topic mixes their dates."""
    out = []
    for group in itertools.zip_longest(*sources):
        out.extend(m for m in group if m is not None)
    return out


@pytest.fixture(scope="module")
def multi_date(platform, shared_data):
    captures = [list(Capture(shared_data / path)) for path in CAPTURES]
    synthetic = list(
        Generator(
            SynthSettings(
                rate=200,
                seconds=60,
                channels=6,
                seed=31,
                prefix=f"bl{uuid.uuid4().hex[:5]}",
                start_ms=1_767_225_600_000,
            )
        )
    )
    messages = interleaved(*captures, synthetic)
    config = fresh_config(platform)
    produce(config, messages)
    return config, messages


@pytest.mark.slow
def test_a_multi_date_backlog_gives_the_same_events_however_it_is_cut(multi_date, spark, tmp_path, artifacts):
    config, messages = multi_date
    expected, expected_late = expected_events(messages)
    assert expected_late == 0 and len(expected) > 100
    lines = [
        "| max_offsets_per_trigger | micro-batches | closed events | reported open / most open records of one | "
        "undone | late dropped | drain s |",
        "|---|---|---|---|---|---|---|",
    ]
    for limit in (2_000, 10_000, None):
        out = config.with_overrides(
            kafka__spam_topic=f"test-spam-{uuid.uuid4().hex[:8]}",
            **({"detector__max_offsets_per_trigger": limit} if limit else {}),
        )
        from services.schema import ensure_topics

        ensure_topics(out, [out.kafka.spam_topic])
        checkpoint = tmp_path / f"checkpoint-{limit}"
        began = time.monotonic()
        writer = run(spark, out, checkpoint)
        seconds = time.monotonic() - began
        events, _ = spam_records(out)
        batches = len(list((checkpoint / "commits").glob("[0-9]*")))
        opened = open_reports(event_records(out))
        lines.append(
            f"| {limit or 'default'} | {batches} | {len({e.event_id for e in events})} | "
            f"{len(opened)} / {max(opened.values(), default=0)} | {writer.totals['undone']} | "
            f"{writer.totals['late_dropped']} | {seconds:.1f} |"
        )
        assert writer.totals["late_dropped"] == 0, limit
        assert {e.event_id for e in events} == expected, limit
        # an event is reported open at most once per micro-batch while its window is open
        assert max(opened.values(), default=0) <= batches, limit
        assert writer.totals["messages"] == len(messages)
    (artifacts / "backlog.md").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_the_same_events_after_three_sigkills_in_a_cut_backlog(multi_date, tmp_path):
    config, messages = multi_date
    expected, _ = expected_events(messages)
    out = config.with_overrides(kafka__spam_topic=f"test-spam-{uuid.uuid4().hex[:8]}")
    from services.schema import ensure_topics

    ensure_topics(out, [out.kafka.spam_topic])
    detector = DetectorProcess(out, tmp_path, max_offsets_per_trigger=2_000)
    detector.launch()
    try:
        for kill in range(3):
            target = detector.committed() + 3 + kill * 2
            wait_for(
                lambda target=target: detector.committed() >= target,
                300,
                f"more committed micro-batches (kill {kill + 1})",
            )
            detector.kill()
            detector.launch()
        wait_for(lambda: detector.offsets_read() >= len(messages), 600, "the restarted job to read every message")
        # live: the last windows close once every partition is read, the channels have been silent for the lag and
        # the stream has moved on (another channel's chat, a lag later in event time)
        produce(out, [flush_message(max(m.sent_ts for m in messages))])
        wait_for(lambda: {e.event_id for e in spam_records(out)[0]} >= expected, 300, "every expected event")
        assert detector.terminate(timeout_s=60) == 0
    finally:
        detector.ensure_gone()
    events, _ = spam_records(out)
    assert {e.event_id for e in events} == expected
    log = detector.log_text()
    assert log.count("query started") >= 4  # restarted three times from Spark's checkpoint
    assert sum(int(n) for n in re.findall(r"late_dropped=(\d+)", log)) == 0
    assert "Traceback" not in log


@pytest.mark.slow
def test_an_uneven_backlog_after_an_outage_loses_nothing(platform, tmp_path):
    config = fresh_config(platform)
    prefix = f"out{uuid.uuid4().hex[:5]}"
    now = int(time.time() * 1000) // 10_000 * 10_000
    steady = list(Generator(SynthSettings(rate=60, seconds=60, channels=4, seed=41, prefix=prefix, start_ms=now)))
    # one channel bursts: a copypasta wave of 3,000 messages in 20 s while the detector is down
    burst = [
        ChatMessage(
            channel=f"{prefix}_burst",
            user_login=f"viewer{i % 400}",
            text=f"{'WHO ASKED LULW NOBODY ASKED LULW' if i % 3 else 'Pog Pog what a play'} {i % 7}",
            sent_ts=now + 20_000 + i * 7,
        )
        for i in range(3_000)
    ]
    before = [m for m in steady if m.sent_ts < now + 20_000]
    during = sorted([m for m in steady if m.sent_ts >= now + 20_000] + burst, key=lambda m: m.sent_ts)
    detector = DetectorProcess(config, tmp_path, max_offsets_per_trigger=400)
    produce(config, before)
    detector.launch()
    try:
        wait_for(lambda: detector.offsets_read() >= len(before), 240, "the detector to read the chat before")
        detector.kill()  # the outage
        produce(config, during)
        detector.launch()
        wait_for(lambda: detector.offsets_read() >= len(before) + len(during), 300, "the backlog caught up")
        produce(config, [flush_message(max(m.sent_ts for m in during))])  # the stream moves on: the last windows
        expected, late = expected_events(before + during)
        assert late == 0
        wait_for(lambda: {e.event_id for e in spam_records(config)[0]} >= expected, 300, "every expected event")
        assert detector.terminate(timeout_s=60) == 0
    finally:
        detector.ensure_gone()
    # the same as a run without the outage
    channels = sorted({m.channel for m in before + during})
    assert set(stored_event_ids(config, channels, before + during)) == expected
    log = detector.log_text()
    assert sum(int(n) for n in re.findall(r"late_dropped=(\d+)", log)) == 0
    assert len(re.findall(r"msg=\"?micro-batch", log)) >= 5  # caught up in several micro-batches


class Forwarder:
    """A TCP port that forwards to the test broker once opened: the broker "comes up" at that address."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: socket.socket | None = None

    def open(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.mark.slow
def test_an_unreachable_broker_is_one_line_then_the_detector_recovers(platform, tmp_path):
    config = fresh_config(platform)
    forwarder = Forwarder(int(TEST_ENVIRONMENT["TWITCHCREMENT_LOCAL_KAFKA_PORT"]))
    detector = DetectorProcess(
        config, tmp_path, extra_env={"TWITCHCREMENT_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{forwarder.port}"}
    )
    began = time.monotonic()
    detector.launch()
    try:
        timeout = config.kafka.connect_timeout_s
        wait_for(lambda: "kafka unreachable" in detector.log_text(), timeout + 60, "the one-line Kafka message")
        said_after = time.monotonic() - began
        line = next(x for x in detector.log_text().splitlines() if "kafka unreachable" in x)
        assert f"127.0.0.1:{forwarder.port}" in line and "Traceback" not in detector.log_text()
        forwarder.open()
        produce(
            config, [ChatMessage(channel="reachable", user_login="u", text="hello again", sent_ts=1_767_225_600_000)]
        )
        wait_for(lambda: detector.committed() >= 1, 240, "a micro-batch once the broker is reachable")
        assert detector.terminate(timeout_s=60) == 0
    finally:
        detector.ensure_gone()
        forwarder.close()
    assert "Traceback" not in detector.log_text() and "Exception in thread" not in detector.log_text()
    assert said_after < timeout + 45  # JVM and Python start-up included
