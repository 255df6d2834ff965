"""Prometheus metrics and health endpoints on real services: what they count is checked against what reached Kafka
(read back with a consumer) and against the chat the test wrote; the exposition is parsed with prometheus-client's
own parser of the text format."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ingest import metrics as ingest_metrics
from ingest import replay
from ingest.sink import ChatSink
from ingest.synth import THIRD_PARTY_SETS, Generator, SynthSettings
from tests.conftest import TEST_ENVIRONMENT
from tests.detector_harness import DetectorProcess, flush_message, fresh_config, produce
from tests.test_ingest_twitch import wait_for
from tests.test_kafka_records import consume_all
from tests.test_security import free_port
from twitchcrement import PROJECT_ROOT


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    status, text = get(f"{base}/metrics")
    assert status == 200, f"{base}/metrics answered {status}"
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def ready(base: str) -> dict[str, Any]:
    status, text = get(f"{base}/readyz")
    body = json.loads(text) if text else {}
    assert status in (200, 503) and body.get("ready") == (status == 200), (status, text)
    return body


def test_ingest_metrics_count_what_reached_kafka(platform) -> None:
    config = fresh_config(platform)
    messages = list(
        Generator(
            SynthSettings(
                rate=1_000,
                seconds=4,
                channels=3,
                seed=5,
                prefix=f"mt{uuid.uuid4().hex[:5]}",
                start_ms=1_767_225_600_000,
            )
        )
    )
    opted_out = messages[0].user_login
    config = config.with_overrides(ingest__optout_users=[opted_out], ingest__metrics_port=free_port())
    registry = CollectorRegistry()
    sink = ChatSink(config, delivery=ingest_metrics.delivery_histogram(registry))
    endpoint = ingest_metrics.serve(config, sink, registry)
    base = endpoint.url
    try:
        assert get(f"{base}/healthz") == (200, "ok\n")
        # Replayed at its recorded pace (about 4 s), scraped while it runs: the counters move.
        replaying = threading.Thread(target=replay.run, args=(messages, sink), kwargs={"speed": 1.0, "progress": False})
        replaying.start()
        seen = [scrape(base)[("twitchcrement_ingest_messages_produced_total", ())]]
        while replaying.is_alive():
            replaying.join(0.7)
            seen.append(scrape(base)[("twitchcrement_ingest_messages_produced_total", ())])
        assert sink.flush(60)
        final = scrape(base)
    finally:
        sink.close()
        endpoint.stop()
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # rising during the replay
    on_kafka = len(consume_all(config, config.kafka.chat_topic, len(messages), timeout_s=15))
    expected_out = sum(m.user_login == opted_out for m in messages)
    assert final[("twitchcrement_ingest_messages_produced_total", ())] == on_kafka == len(messages) - expected_out
    assert final[("twitchcrement_ingest_messages_opted_out_total", ())] == expected_out > 0
    assert final[("twitchcrement_ingest_messages_dropped_total", ())] == 0
    # the emote sets came from the run's stand-in of the providers (tests/conftest.py): each global set, no failure
    for provider, emotes in (("bttv", "PepeHands"), ("ffz", "KEKW"), ("7tv", "Sadge")):
        assert emotes in THIRD_PARTY_SETS[provider][""]
        assert final[("twitchcrement_ingest_emotes", (("provider", provider),))] == len(THIRD_PARTY_SETS[provider][""])
        assert final[("twitchcrement_ingest_emote_sets", (("provider", provider),))] >= 1
        assert final[("twitchcrement_ingest_emote_set_fetch_failures_total", (("provider", provider),))] == 0
        assert final[("twitchcrement_ingest_emote_sets_refreshed_timestamp_seconds", (("provider", provider),))] > 0
    assert final[("twitchcrement_ingest_kafka_delivery_seconds_count", ())] == on_kafka
    assert final[("twitchcrement_ingest_buffer_capacity_records", ())] == config.ingest.buffer_records


@pytest.mark.slow
def test_the_ingest_command_serves_health_and_readiness(platform, tmp_path) -> None:
    config = fresh_config(platform)
    port = free_port()
    env = {
        **TEST_ENVIRONMENT,
        "PATH": "/usr/bin:/bin",
        "TWITCHCREMENT_INGEST_METRICS_PORT": str(port),
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": config.kafka.chat_topic,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingest",
            "--no-progress",
            "synth",
            "--rate",
            "50",
            "--seconds",
            "120",
            "--labels",
            str(tmp_path / "labels.jsonl"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, 60, "the ingest's /healthz")
        wait_for(lambda: ready(base)["ready"], 60, "the ingest ready (Kafka reachable)")
        wait_for(
            lambda: scrape(base)[("twitchcrement_ingest_messages_produced_total", ())] > 50,
            60,
            "chat produced, as its metrics say",
        )
        assert get(f"{base}/nothing")[0] == 404
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert "Traceback" not in process.stderr.read()


@pytest.mark.slow
def test_detector_metrics_follow_the_chat_and_readiness_its_services(platform, tmp_path) -> None:
    config = fresh_config(platform)
    prefix = f"md{uuid.uuid4().hex[:5]}"
    messages = list(
        Generator(SynthSettings(rate=200, seconds=30, channels=3, seed=8, prefix=prefix, start_ms=1_767_225_600_000))
    )
    messages.append(flush_message(max(m.sent_ts for m in messages)))
    produce(config, messages)
    port = free_port()
    detector = DetectorProcess(
        config, tmp_path, max_offsets_per_trigger=2_000, extra_env={"TWITCHCREMENT_DETECTOR_METRICS_PORT": str(port)}
    ).launch()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, 120, "the detector's /healthz")
        wait_for(
            lambda: scrape(base).get(("twitchcrement_detector_input_rows_total", ())) == len(messages),
            300,
            "every chat record counted as read",
        )
        wait_for(lambda: ready(base)["ready"], 60, "the detector ready: Kafka, Cassandra, its query")
        samples = scrape(base)
    finally:
        detector.terminate(timeout_s=60)
        detector.ensure_gone()
    assert samples[("twitchcrement_detector_events_total", ())] >= 1
    assert samples[("twitchcrement_detector_late_dropped_total", ())] == 0
    assert samples[("twitchcrement_detector_batch_duration_seconds_count", ())] >= 2
    lags = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "twitchcrement_detector_consumer_lag_records"
    }
    assert lags and set(lags.values()) == {0.0}, lags  # caught up on every partition
    assert samples[("twitchcrement_detector_state_rows", (("kind", "channels"),))] >= 3
