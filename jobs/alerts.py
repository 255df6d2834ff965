"""Alerts when a spam wave starts: a spam topic reaching a threshold (messages, users in one window, rate; in the
configured channels or all), or one spam text active in several channels at once (a campaign), POSTed as JSON to
the configured webhooks (Discord, Slack or plain JSON bodies).

Each alert goes out once per topic and threshold (once per text and day for a campaign). The detector only hands
alerts over (`Alerts.observe`, never blocking); each webhook has a thread of its own that sends, retries with
backoff while the receiver fails, and keeps to `alerts.max_per_minute`. A webhook that is down is counted and logged,
never fatal. Webhook URLs carry their secret in the path: logs and errors show only scheme and host.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from twitchcrement.config import Config, ConfigError

log = logging.getLogger(__name__)

KINDS = ("discord", "slack", "json")
QUEUE_SIZE = 1_000  # alerts waiting per webhook; beyond it they are dropped and counted
REMEMBERED = 100_000  # (topic, threshold) pairs already alerted; the oldest are forgotten
ATTEMPTS = 6  # 1 + 5 retries, waiting 1, 2, 4, 8, 16 s: a receiver down for half a minute still gets the alert
DISCORD_CONTENT, DISCORD_DESCRIPTION, SLACK_TEXT = 2_000, 4_096, 3_000  # the APIs' documented length limits
# What the rules read of the detector's output rows (events and topic updates): the driver collects only these.
ALERT_COLUMNS = [
    "kind",
    "state",
    "channel",
    "topic_id",
    "text",
    "message_hash",
    "message_count",
    "distinct_users",
    "window_start",
    "window_end",
    "first_ts",
    "last_ts",
    "peak_rate",
    "ended",
]


def redacted(url: str) -> str:
    """scheme://host/... : a webhook URL without its secret path and query, for logs."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."


@dataclass(frozen=True)
class Webhook:
    kind: str  # discord | slack | json
    url: str

    @classmethod
    def parse(cls, entry: str) -> Webhook:
        """`discord:https://...`, `slack:https://...` or `json:https://...` (a bare URL is json)."""
        kind, _, rest = entry.partition(":")
        if kind in KINDS and rest.startswith(("http://", "https://")):
            return cls(kind, rest)
        if entry.startswith(("http://", "https://")):
            return cls("json", entry)
        at = entry.find("://")
        shown = redacted(entry[entry.rfind(":", 0, at) + 1 :]) if at > 0 else "(not a URL)"
        raise ConfigError(
            f"alerts.webhooks: an entry {shown} is not KIND:URL with KIND one of {', '.join(KINDS)} and an http(s) URL"
        )


@dataclass(frozen=True)
class Alert:
    reason: str  # messages | users | rate | campaign
    threshold: float
    channel: str  # the topic's channel; for a campaign the channels, comma-separated
    text: str
    topic_id: str
    messages: int
    peak_rate: float
    users: int
    first_seen: int  # ms
    last_seen: int

    def title(self) -> str:
        if self.reason == "campaign":
            return f"Spam campaign in {len(self.channel.split(','))} channels"
        what = {
            "messages": f"{self.messages} messages",
            "users": f"{self.users} users in one window",
            "rate": f"{self.peak_rate:.1f} messages/s",
        }[self.reason]
        return f"Spam wave in #{self.channel}: {what}"

    def document(self) -> dict[str, Any]:
        return {
            "alert": self.reason,
            "threshold": self.threshold,
            "title": self.title(),
            "channel": self.channel,
            "text": self.text,
            "topic_id": self.topic_id,
            "messages": self.messages,
            "peak_rate": round(self.peak_rate, 2),
            "users": self.users,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
        }


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # Slack's three control characters


def body(kind: str, alert: Alert) -> dict[str, Any]:
    """The request body for a webhook kind: Discord's execute-webhook JSON, Slack's incoming-webhook JSON, or the
    alert's own fields."""
    if kind == "discord":
        return {
            "content": alert.title()[:DISCORD_CONTENT],
            "allowed_mentions": {"parse": []},  # chat text must never ping @everyone or anyone
            "embeds": [
                {
                    "title": alert.title()[:256],
                    "description": alert.text[:DISCORD_DESCRIPTION],
                    "timestamp": _iso(alert.last_seen),
                    "color": 0xD64545,
                    "fields": [
                        {"name": "messages", "value": str(alert.messages), "inline": True},
                        {"name": "peak rate", "value": f"{alert.peak_rate:.1f}/s", "inline": True},
                        {"name": "users (one window)", "value": str(alert.users), "inline": True},
                        {"name": "channel(s)", "value": alert.channel[:1024], "inline": False},
                    ],
                }
            ],
        }
    if kind == "slack":
        return {
            "text": _slack_escape(alert.title())[:SLACK_TEXT],
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*{_slack_escape(alert.title())}*\n```{_slack_escape(alert.text)}```"[:SLACK_TEXT],
                    },
                },
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": _slack_escape(
                                f"{alert.messages} messages, peak {alert.peak_rate:.1f}/s, {alert.users} users, "
                                f"{_iso(alert.first_seen)} to {_iso(alert.last_seen)}"
                            )[:SLACK_TEXT],
                        }
                    ],
                },
            ],
        }
    return alert.document()


@dataclass
class Rules:
    min_messages: int
    min_users: int
    min_rate: float
    campaign_channels: int
    channels: frozenset[str]  # empty: every channel

    @classmethod
    def from_config(cls, config: Config) -> Rules:
        return cls(
            config.alerts.min_messages,
            config.alerts.min_users,
            config.alerts.min_rate,
            config.alerts.campaign_channels,
            frozenset(c.lower().lstrip("#") for c in config.alerts.channels),
        )


@dataclass
class Tracker:
    """What has been alerted (bounded), and per spam text the channels whose topics are active (campaigns)."""

    rules: Rules
    alerted: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    peak_users: dict[str, int] = field(default_factory=dict)  # topic id -> most users of one of its events
    active: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # hash -> channel -> topic row

    def observe(self, rows: list[dict[str, Any]]) -> list[Alert]:
        """The alerts due for these detector output rows (events and topic updates), each once."""
        due: list[Alert] = []
        for row in rows:
            if row["kind"] == "event" and row.get("topic_id") and row.get("state") != "undone":
                topic = row["topic_id"]
                self.peak_users[topic] = max(self.peak_users.get(topic, 0), row["distinct_users"])
                if row.get("state") == "open":  # the wave is still going: alert now, not when its window closes
                    seconds = (row["window_end"] - row["window_start"]) / 1000
                    due += self._thresholds({**row, "peak_rate": row["message_count"] / seconds})
            elif row["kind"] == "topic":
                due += self._topic(row)
        return due

    def _thresholds(self, row: dict[str, Any]) -> list[Alert]:
        """The alerts due for a topic row (or an open event shaped like one: topic_id, message_count, peak_rate)."""
        topic, channel = row["topic_id"], row["channel"]
        users = self.peak_users.get(topic, 0)
        if self.rules.channels and channel not in self.rules.channels:
            return []
        return [
            self._alert(reason, threshold, channel, row, users)
            for reason, value, threshold in (
                ("messages", row["message_count"], self.rules.min_messages),
                ("users", users, self.rules.min_users),
                ("rate", row["peak_rate"], self.rules.min_rate),
            )
            if threshold and value >= threshold and self._first((topic, reason))
        ]

    def _topic(self, row: dict[str, Any]) -> list[Alert]:
        due = self._thresholds(row)
        channel = row["channel"]
        texts = self.active.setdefault(row["message_hash"], {})
        if row["ended"]:
            texts.pop(channel, None)
            self.peak_users.pop(row["topic_id"], None)
            if not texts:
                del self.active[row["message_hash"]]
        else:
            texts[channel] = row
            day = _iso(row["first_ts"])[:10]
            wanted = self.rules.campaign_channels
            if wanted and len(texts) >= wanted and self._first((row["message_hash"], day, "campaign")):
                rows = list(texts.values())
                due.append(
                    Alert(
                        "campaign",
                        wanted,
                        ",".join(sorted(texts)),
                        row["text"],
                        row["message_hash"],
                        sum(r["message_count"] for r in rows),
                        max(r["peak_rate"] for r in rows),
                        max(self.peak_users.get(r["topic_id"], 0) for r in rows),
                        min(r["first_ts"] for r in rows),
                        max(r["last_ts"] for r in rows),
                    )
                )
        return due

    def _first(self, key: tuple) -> bool:
        if key in self.alerted:
            return False
        self.alerted[key] = True
        while len(self.alerted) > REMEMBERED:
            self.alerted.popitem(last=False)
        return True

    @staticmethod
    def _alert(reason: str, threshold: float, channel: str, row: dict[str, Any], users: int) -> Alert:
        return Alert(
            reason,
            threshold,
            channel,
            row["text"],
            row["topic_id"],
            row["message_count"],
            row["peak_rate"],
            users,
            row["first_ts"],
            row["last_ts"],
        )


class Sender(threading.Thread):
    """One webhook: a queue, and a thread sending its alerts in order, retrying with backoff, rate-limited."""

    def __init__(self, webhook: Webhook, max_per_minute: int, timeout_s: float = 10.0, attempts: int = ATTEMPTS):
        super().__init__(name=f"alerts-{webhook.kind}", daemon=True)
        self.webhook, self.timeout_s, self.attempts = webhook, timeout_s, attempts
        self.spacing_s = 60.0 / max_per_minute
        self.pending: queue.Queue[Alert | None] = queue.Queue(QUEUE_SIZE)
        self.counts: collections.Counter[str] = collections.Counter()  # sent, failed, retried, dropped

    def offer(self, alert: Alert) -> None:
        try:
            self.pending.put_nowait(alert)
        except queue.Full:
            self.counts["dropped"] += 1

    def run(self) -> None:
        last_sent = 0.0
        while (alert := self.pending.get()) is not None:
            time.sleep(max(0.0, last_sent + self.spacing_s - time.monotonic()))
            self._deliver(alert)
            last_sent = time.monotonic()

    def _deliver(self, alert: Alert) -> None:
        data = json.dumps(body(self.webhook.kind, alert)).encode()
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.counts["retried"] += 1
                time.sleep(2 ** (attempt - 1))
            request = urllib.request.Request(
                self.webhook.url,
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "twitchcrement-alerts"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s):
                    self.counts["sent"] += 1
                    return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code != 429:
                    break  # the receiver refuses this body: sending it again will not help
            except OSError as exc:
                problem = type(exc).__name__
        self.counts["failed"] += 1
        log.warning(
            "alert not delivered",
            extra={
                "webhook": redacted(self.webhook.url),
                "kind": self.webhook.kind,
                "alert": alert.reason,
                "error": problem,
            },
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        try:
            self.pending.put_nowait(None)
        except queue.Full:
            pass
        self.join(timeout_s)


class Alerts:
    """The detector's alerting: rules over its output rows, and a sender per configured webhook."""

    def __init__(self, config: Config):
        webhooks = [Webhook.parse(entry) for entry in config.alerts.webhooks]
        self.tracker = Tracker(Rules.from_config(config))
        self.senders = [Sender(w, config.alerts.max_per_minute) for w in webhooks]
        for sender in self.senders:
            sender.start()
        if self.senders:
            log.info(
                "alerts on",
                extra={"webhooks": ",".join(f"{s.webhook.kind} {redacted(s.webhook.url)}" for s in self.senders)},
            )

    def observe(self, rows: list[dict[str, Any]]) -> None:
        if not self.senders:
            return
        for alert in self.tracker.observe(rows):
            for sender in self.senders:
                sender.offer(alert)

    def counts(self) -> collections.Counter[str]:
        total: collections.Counter[str] = collections.Counter()
        for sender in self.senders:
            total.update(sender.counts)
        return total

    def close(self) -> None:
        for sender in self.senders:
            sender.stop()
