"""Alerts when a spam wave starts: the real detector on a synthetic wave the test writes (so the thresholds it
crosses are known from the chat itself), a local HTTP receiver standing in for Discord, Slack and a plain JSON
endpoint, and the bodies checked against the shapes those APIs document."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jobs.alerts import Alert, Rules, Sender, Tracker, Webhook, body
from jobs.keyed import KeyedBatch
from jobs.spam_detector import start, stop_between_batches
from tests.detector_harness import LiveWave, fresh_config, produce, run
from tests.test_ingest_twitch import wait_for
from tests.test_security import free_port
from twitchcrement.config import ConfigError
from twitchcrement.records import ChatMessage

START = 1_780_272_000_000  # a window boundary


class Receiver:
    """Records every POST per path; a path in `fail_first` answers 500 that many times before it answers 200."""

    def __init__(self, fail_first: dict[str, int] | None = None):
        self.fail_first = dict(fail_first or {})
        self.requests: list[tuple[str, int, Any]] = []  # path, status answered, body
        self.arrived_ms: list[int] = []  # when each request came (epoch ms), in the order of requests
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                left = receiver.fail_first.get(self.path, 0)
                status = 500 if left else 204
                receiver.fail_first[self.path] = max(0, left - 1)
                receiver.arrived_ms.append(int(time.time() * 1000))
                receiver.requests.append((self.path, status, data))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def delivered(self, path: str) -> list[Any]:
        return [data for p, status, data in self.requests if p == path and status < 300]


def check_discord(data: dict[str, Any]) -> None:
    """Discord's execute-webhook body: content up to 2,000 characters; up to 10 embeds, each title <= 256,
    description <= 4,096, up to 25 fields (name <= 256, value <= 1,024), 6,000 characters in all; mentions off."""
    assert isinstance(data["content"], str) and 0 < len(data["content"]) <= 2000
    assert data["allowed_mentions"] == {"parse": []}
    assert 1 <= len(data["embeds"]) <= 10
    for embed in data["embeds"]:
        assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
        assert isinstance(embed["color"], int) and embed["timestamp"].endswith("Z")
        assert len(embed["fields"]) <= 25
        assert all(len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024 for f in embed["fields"])
        total = (
            len(embed["title"])
            + len(embed["description"])
            + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
        )
        assert total <= 6000


def check_slack(data: dict[str, Any]) -> None:
    """Slack's incoming-webhook body: a fallback `text`; up to 50 blocks; a section's text object (mrkdwn) up to
    3,000 characters; a context block's elements (up to 10) text objects."""
    assert isinstance(data["text"], str) and data["text"]
    assert 1 <= len(data["blocks"]) <= 50
    for block in data["blocks"]:
        if block["type"] == "section":
            assert block["text"]["type"] in ("mrkdwn", "plain_text") and 0 < len(block["text"]["text"]) <= 3000
        else:
            assert block["type"] == "context" and 1 <= len(block["elements"]) <= 10
            assert all(e["type"] in ("mrkdwn", "plain_text") and e["text"] for e in block["elements"])


def wave(channel: str, text: str, users: int, every_ms: int, seconds: int) -> list[ChatMessage]:
    return [
        ChatMessage(channel=channel, user_login=f"{channel}_u{u}", text=text, sent_ts=START + t + u * 7)
        for t in range(0, seconds * 1000, every_ms)
        for u in range(users)
    ]


@pytest.mark.slow
def test_a_wave_alerts_each_webhook_once_per_topic_and_threshold(platform, spark, tmp_path, caplog) -> None:
    tag = f"al{uuid.uuid4().hex[:6]}"
    # In channel A, 10 users paste once a second for 30 s: 100 messages a window from 10 users (10/s), 300 in
    # all; the campaign text runs in A, B and C: 5 users every 2 s, 25 a window, below every topic threshold.
    pasta, campaign = f"{tag} the copypasta that floods this chat KEKW", f"{tag} free subs at my channel PogChamp"
    chat = wave(f"{tag}_a", pasta, 10, 1000, 30)
    for channel in ("a", "b", "c"):
        chat += wave(f"{tag}_{channel}", campaign, 5, 2000, 30)
    chat.sort(key=lambda m: m.sent_ts)
    receiver = Receiver(fail_first={"/json/s3cr3t": 1})  # the JSON receiver fails once, then takes it
    config = fresh_config(platform).with_overrides(
        alerts__webhooks=[
            f"discord:{receiver.base}/discord/s3cr3t",
            f"slack:{receiver.base}/slack/s3cr3t",
            f"json:{receiver.base}/json/s3cr3t",
        ],
        alerts__min_messages=250,
        alerts__min_users=10,
        alerts__min_rate=10.0,
        alerts__campaign_channels=3,
    )
    produce(config, chat)
    with caplog.at_level(logging.INFO):
        writer = run(spark, config, tmp_path / "checkpoint")  # closing the writer waits for the senders
    expected = {
        ("messages", f"{tag}_a"),
        ("users", f"{tag}_a"),
        ("rate", f"{tag}_a"),
        ("campaign", f"{tag}_a,{tag}_b,{tag}_c"),
    }
    wait_for(lambda: len(receiver.delivered("/json/s3cr3t")) >= len(expected), 30, "the JSON alerts")
    alerts = receiver.delivered("/json/s3cr3t")
    assert sorted((a["alert"], a["channel"]) for a in alerts) == sorted(expected)  # each once
    assert len([r for r in receiver.requests if r[0] == "/json/s3cr3t"]) == len(expected) + 1  # one 500, resent
    for alert in alerts:
        assert alert["text"] == (campaign if alert["alert"] == "campaign" else pasta)
    assert next(a for a in alerts if a["alert"] == "messages")["messages"] >= 250
    discord, slack = receiver.delivered("/discord/s3cr3t"), receiver.delivered("/slack/s3cr3t")
    assert len(discord) == len(slack) == len(expected)
    for data in discord:
        check_discord(data)
    for data in slack:
        check_slack(data)
    assert writer.alerts.counts()["sent"] == 3 * len(expected) and writer.alerts.counts()["retried"] == 1
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "alerts on" in logged and "s3cr3t" not in logged


@pytest.mark.slow
def test_a_live_wave_alerts_before_its_window_has_closed(platform, spark, tmp_path) -> None:
    """The detector streams; a wave of 8 users is written as it happens: the users alert reaches the receiver
    while the wave's window is still open, not after it closes."""
    receiver = Receiver()
    config = fresh_config(platform).with_overrides(
        alerts__webhooks=[f"json:{receiver.base}/json/live"],
        alerts__min_messages=0,
        alerts__min_users=5,
        alerts__min_rate=0.0,
        alerts__campaign_channels=0,
    )
    batches = KeyedBatch(config)
    query = start(spark, config, checkpoint=str(tmp_path / "checkpoint"), writer=batches)
    try:
        wait_for(lambda: query.lastProgress is not None, 120, "the detector's first micro-batch")
        tag = f"lw{uuid.uuid4().hex[:6]}"
        wave = LiveWave(
            config, f"{tag}_live", f"{tag} the raid is here right now KEKW", users=8, count=30, every_s=0.25
        )
        wait_for(
            lambda: receiver.delivered("/json/live"),
            wave.window_end / 1000 - time.time() + 30,
            "the users alert",
        )
        (alert,) = receiver.delivered("/json/live")
        assert alert["alert"] == "users" and alert["channel"] == wave.channel and alert["users"] >= 5
        assert receiver.arrived_ms[0] < wave.window_end, (receiver.arrived_ms[0] - wave.window_end) / 1000
    finally:
        stop_between_batches(query, batches)
        batches.close()


def test_a_receiver_that_stays_down_is_counted_and_logged_without_its_secret(caplog) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks/t0ken-s3cr3t"
    sender = Sender(Webhook("slack", dead), max_per_minute=600, timeout_s=2, attempts=2)
    sender.start()
    with caplog.at_level(logging.WARNING):
        sender.offer(Alert("rate", 10, "chan", "hello", "t1", 10, 12.0, 3, START, START + 10_000))
        sender.stop(timeout_s=15)
    assert sender.counts["failed"] == 1 and sender.counts["retried"] == 1 and sender.counts["sent"] == 0
    lines = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name == "jobs.alerts"]
    assert lines and all("t0ken-s3cr3t" not in line for line in lines)
    assert any("http://127.0.0.1/..." in line for line in lines)


def test_tracker_alerts_each_threshold_once_and_campaigns_once_a_day() -> None:
    tracker = Tracker(Rules(min_messages=100, min_users=5, min_rate=0, campaign_channels=2, channels=frozenset()))

    def topic(channel: str, messages: int, ended: bool = False, topic_id: str = "") -> dict[str, Any]:
        return {
            "kind": "topic",
            "channel": channel,
            "topic_id": topic_id or f"t-{channel}",
            "text": "spam",
            "message_hash": "h",
            "message_count": messages,
            "peak_rate": 3.0,
            "first_ts": START,
            "last_ts": START + 9_000,
            "ended": ended,
        }

    event = {"kind": "event", "topic_id": "t-a", "distinct_users": 6}
    assert [a.reason for a in tracker.observe([event, topic("a", 50)])] == ["users"]
    assert [a.reason for a in tracker.observe([topic("a", 120)])] == ["messages"]
    assert tracker.observe([topic("a", 300)]) == []  # each threshold once
    assert [(a.reason, a.channel) for a in tracker.observe([topic("b", 10)])] == [("campaign", "a,b")]
    assert tracker.observe([topic("b", 10, ended=True), topic("b", 10, topic_id="t-b2")]) == []  # once a day
    only_a = Tracker(Rules(min_messages=1, min_users=0, min_rate=0, campaign_channels=0, channels=frozenset({"a"})))
    assert [a.channel for a in only_a.observe([topic("a", 5), topic("b", 5)])] == ["a"]


def test_webhook_entries_and_bodies() -> None:
    assert Webhook.parse("discord:https://discord.com/api/webhooks/1/x") == Webhook(
        "discord", "https://discord.com/api/webhooks/1/x"
    )
    assert Webhook.parse("https://example.org/hook").kind == "json"
    with pytest.raises(ConfigError) as refused:
        Webhook.parse("teams:https://example.org/secret-path")
    assert "secret-path" not in str(refused.value) and "https://example.org/..." in str(refused.value)
    hostile = Alert("campaign", 3, "a,b,c", "@everyone <!channel> & " + "x" * 5000, "h", 10, 1.0, 3, START, START)
    check_discord(body("discord", hostile))
    check_slack(body("slack", hostile))
    assert "<!channel>" not in json.dumps(body("slack", hostile))
