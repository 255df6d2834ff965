"""The Twitch IRC reader against a local Twitch-dialect server, delivering to the real Kafka broker."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ingest.sink import ChatSink
from ingest.twitch import JoinPacer, TwitchReader
from services.schema import ensure_topics
from tests.conftest import test_config
from tests.fake_twitch import FakeTwitch
from tests.test_kafka_records import consume_all
from twitchcrement.records import decode_chat

JOINS_PER_WINDOW, WINDOW_S = 60, 1.0  # Twitch's 20 per 10 s, sped up so 500 channels join in seconds


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Running:
    """A reader on its own thread, reading from a fake Twitch into a fresh Kafka topic."""

    def __init__(self, platform, channels: list[str], silence_s: float = 300.0):
        self.topic = f"test-irc-{uuid.uuid4().hex[:8]}"
        ensure_topics(platform, [self.topic])
        self.config = test_config(
            TWITCHCREMENT_INGEST_JOINS_PER_10S=str(JOINS_PER_WINDOW),
            TWITCHCREMENT_INGEST_JOIN_WINDOW_S=str(WINDOW_S),
            TWITCHCREMENT_INGEST_SILENCE_TIMEOUT_S=str(silence_s),
        )
        self.server = FakeTwitch(join_limit=JOINS_PER_WINDOW, join_window_s=WINDOW_S).start()
        self.sink = ChatSink(self.config, topic=self.topic)
        self.reader = TwitchReader(self.config, self.sink, "127.0.0.1", self.server.port, tls=False)
        self.reader.set_channels(channels)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.reader.run, args=(self.stop.is_set, 1.0), daemon=True)
        self.thread.start()

    def all_joined(self, channels: list[str], timeout_s: float = 60.0) -> None:
        wait_for(lambda: self.server.joined() >= set(channels), timeout_s, f"{len(channels)} channels joined")

    def close(self) -> list:
        self.stop.set()
        self.thread.join(10)
        self.sink.close(timeout_s=30)
        self.server.stop()
        return consume_all(self.config, self.topic, len(self.server.sent_ids), timeout_s=10)


@pytest.fixture
def running(platform):
    runs: list[Running] = []

    def start(channels: list[str], **kwargs) -> Running:
        runs.append(Running(platform, channels, **kwargs))
        return runs[-1]

    yield start
    for run in runs:
        if not run.stop.is_set():
            run.close()


def test_join_pacer_keeps_twitchs_limit():
    now = [0.0]
    pacer = JoinPacer(20, 10.0, clock=lambda: now[0])
    sent = []
    for step in range(300):  # 30 s in 0.1 s steps, always wanting to join
        now[0] = step / 10
        for _ in range(pacer.allowance()):
            pacer.record()
            sent.append(now[0])
    assert len(sent) == 60  # 20 per 10 s, for 30 s
    assert max(sum(1 for t in sent if start <= t < start + 10) for start in sent) == 20


def test_reads_500_channels_without_tripping_the_join_limit(running):
    channels = [f"channel_{i:03d}" for i in range(500)]
    run = running(channels)
    run.all_joined(channels)
    assert run.server.rate_limit_kicks == 0
    assert run.server.max_joins_in_window <= JOINS_PER_WINDOW
    assert len(run.reader.shards) == 6 and all(len(s.wanted) <= 90 for s in run.reader.shards)
    assert run.server.connections_accepted == 6
    for i, channel in enumerate(channels):
        assert run.server.chat(channel, f"user{i % 37}", f"hello {channel} KEKW", colon=i % 2 == 0)
    run.server.chat("channel_007", "mover", "\x01ACTION dances\x01")
    wait_for(lambda: run.reader.messages == 501, 30, "501 messages read")
    received = run.close()
    assert sorted(decode_chat(r.value).message_id for r in received) == sorted(run.server.sent_ids)
    action = [decode_chat(r.value) for r in received if decode_chat(r.value).user_login == "mover"]
    assert action[0].is_action and action[0].text == "dances"


def test_survives_reconnect_and_dropped_socket_with_no_loss_after_rejoin(running, recovery):
    channels = ["nymn", "xqcow", "admiralbulldog"]
    run = running(channels)
    run.all_joined(channels, 30)
    for n in range(5):
        run.server.chat("nymn", "before", f"before {n}")

    began = time.monotonic()
    run.server.reconnect()
    wait_for(lambda: run.reader.reconnects >= 1, 30, "reconnect after RECONNECT")
    run.all_joined(channels, 30)
    recovery("IRC server sends RECONNECT", time.monotonic() - began, "reconnected and rejoined 3 channels")
    after_reconnect = [run.server.chat(c, "after", f"after reconnect {c}") for c in channels]

    began = time.monotonic()
    run.server.drop_connections(mid_line=True)
    wait_for(lambda: run.reader.reconnects >= 2, 30, "reconnect after a dropped socket")
    run.all_joined(channels, 30)
    recovery("IRC server drops the socket mid-line", time.monotonic() - began, "reconnected and rejoined 3 channels")
    after_drop = [run.server.chat(c, "after", f"after drop {c}") for c in channels]

    assert all(after_reconnect) and all(after_drop)
    wait_for(lambda: run.reader.messages >= 11, 20, "messages after rejoin")
    received = {decode_chat(r.value).message_id for r in run.close()}
    assert set(after_reconnect) | set(after_drop) <= received
    assert run.server.rate_limit_kicks == 0


def test_garbage_from_the_server_is_counted_and_never_fatal(running, recovery):
    run = running(["nymn"])
    run.all_joined(["nymn"], 30)
    began = time.monotonic()
    garbage = [
        b"\xff\xfe not utf-8 at all",
        b"@only-tags",
        b":prefix.only",
        b"!!! nonsense",
        b":a!a@a PRIVMSG #nymn",
        b"@tmi-sent-ts=soon :a!a@a PRIVMSG #nymn :x",
    ]
    for line in garbage:
        run.server.raw(line)
        run.server.chat("nymn", "survivor", "still here")
    wait_for(lambda: run.reader.messages >= len(garbage), 20, "valid messages between garbage")
    recovery(
        "IRC server sends garbage (6 kinds)",
        time.monotonic() - began,
        "no reconnect needed: each valid line after a bad one is read",
    )
    assert run.reader.parser.error_count >= len(garbage) - 1
    received = run.close()
    assert len({decode_chat(r.value).message_id for r in received}) == len(garbage)


def test_a_silent_connection_is_replaced(running, recovery):
    run = running(["nymn"], silence_s=2.0)
    run.all_joined(["nymn"], 30)
    began = time.monotonic()
    run.server.stall()
    wait_for(lambda: run.reader.reconnects >= 1, 15, "reconnect of a silent connection")
    run.all_joined(["nymn"], 30)
    recovery(
        "IRC server stalls (no PING)",
        time.monotonic() - began,
        "silence limit 2 s here (ingest.silence_timeout_s, 300 s by default)",
    )
    assert run.server.chat("nymn", "back", "back again")
    wait_for(lambda: run.reader.messages >= 1, 20, "message after the stall")
    run.close()


def test_channel_list_refresh_parts_and_joins(running):
    run = running(["nymn", "xqcow"])
    run.all_joined(["nymn", "xqcow"], 30)
    run.reader.set_channels(["xqcow", "forsen"])
    wait_for(lambda: run.server.joined() == {"xqcow", "forsen"}, 30, "part nymn, join forsen")
    run.close()


def test_command_line_reader_publishes_the_list_reads_and_stops_cleanly_on_sigterm(platform, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from ingest.channels import latest
    from tests.conftest import TEST_ENVIRONMENT
    from twitchcrement import PROJECT_ROOT

    topic, channels_topic = f"test-cli-{uuid.uuid4().hex[:8]}", f"test-list-{uuid.uuid4().hex[:8]}"
    config = test_config(TWITCHCREMENT_INGEST_CHANNELS_TOPIC=channels_topic)
    ensure_topics(platform, [topic])
    ensure_topics(config, [channels_topic], partitions=1)
    channels_file = tmp_path / "channels.txt"
    channels_file.write_text("nymn\nxqcow\n")
    server = FakeTwitch().start()
    env = {
        "PATH": "/usr/bin:/bin",
        **TEST_ENVIRONMENT,
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": topic,
        "TWITCHCREMENT_INGEST_CHANNELS_TOPIC": channels_topic,
    }
    reader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingest",
            "twitch",
            "--channels-file",
            str(channels_file),
            "--irc-host",
            "127.0.0.1",
            "--irc-port",
            str(server.port),
            "--no-tls",
        ],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: server.joined() == {"nymn", "xqcow"}, 60, "both channels joined")
        ids = [server.chat(c, "viewer", f"hi {c}") for c in ("nymn", "xqcow", "nymn")]
        time.sleep(1.0)
        started = time.monotonic()
        reader.send_signal(signal.SIGTERM)
        _, stderr = reader.communicate(timeout=20)
        assert time.monotonic() - started < 10
    finally:
        if reader.poll() is None:
            os.kill(reader.pid, signal.SIGKILL)
        server.stop()
    assert reader.returncode == 0, stderr
    assert "justinfan" in stderr and "reading the channels file" in stderr
    assert sorted(decode_chat(r.value).message_id for r in consume_all(platform, topic, 3)) == sorted(ids)
    assert latest(config).logins == ["nymn", "xqcow"]
