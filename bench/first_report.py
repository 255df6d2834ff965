"""Time to first report: how long after a wave became spam did a system first say so.

The truth is the load generator's: bench/load.py writes every labelled wave message it offers (wave, channel, user,
the time it was sent, text) to its --waves file. A wave becomes spam at its *crossing message*: the first message
after which the wave's messages of the last window_ms reach the event thresholds (min_messages from min_users, or
flood_min_messages from one user), wherever the detector's window boundaries fall. A system's first report of it is
the Kafka timestamp of the first record of any event in the wave's channel that names one of the wave's texts
(its text or one of its top variants, as written) and whose window overlaps the wave. So the measure takes
nothing from the detector but its output records.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.stats import percentile
from jobs.detection import Settings


def read_waves(path: Path) -> dict[tuple[str, str], list[tuple[int, str, str]]]:
    """(wave, channel) -> its offered messages as (sent ms, user, text), in the order sent."""
    waves: dict[tuple[str, str], list[tuple[int, str, str]]] = collections.defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            wave, channel, user, sent_ts, text = json.loads(line)
            waves[wave, channel].append((sent_ts, user, text))
    return waves


def crossing_ts(messages: list[tuple[int, str, str]], settings: Settings) -> int | None:
    """The send time of the message that made the wave spam (sliding window of window_ms), or None: never."""
    window: collections.deque[tuple[int, str, str]] = collections.deque()
    users: collections.Counter[str] = collections.Counter()
    for message in messages:
        ts, user, _ = message
        window.append(message)
        users[user] += 1
        while window[0][0] <= ts - settings.window_ms:
            old = window.popleft()[1]
            users[old] -= 1
            if not users[old]:
                del users[old]
        crowd = len(window) >= settings.min_messages and len(users) >= settings.min_users
        flood = users.most_common(1)[0][1] >= settings.flood_min_messages
        if crowd or flood:
            return ts
    return None


def first_reports(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first record of each event id (each record of a system without ids stands for itself)."""
    seen: set[str] = set()
    firsts = []
    for index, record in enumerate(sorted(records, key=lambda r: r["kafka_ms"])):
        event_id = record.get("event_id") or f"#{index}"
        if event_id not in seen:
            seen.add(event_id)
            firsts.append(record)
    return firsts


def time_to_first_report(
    waves: dict[tuple[str, str], list[tuple[int, str, str]]], records: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """p50/p95 seconds from each wave's crossing message to its first report, and how many spam waves were
    reported at all."""
    by_channel: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for record in first_reports(records):
        texts = {record["text"], *(v[0] for v in record.get("top_variants") or [])}
        by_channel[record["channel"]].append({**record, "texts": texts})
    delays, spam_waves = [], 0
    for (_, channel), messages in waves.items():
        crossed = crossing_ts(messages, settings)
        if crossed is None:
            continue
        spam_waves += 1
        texts = {text for _, _, text in messages}
        first, last = messages[0][0], messages[-1][0]
        reported = [
            r["kafka_ms"]
            for r in by_channel.get(channel, [])
            if r["texts"] & texts and r["window_start"] <= last and r["window_end"] > first
        ]
        if reported:
            delays.append((min(reported) - crossed) / 1000)
    return {
        "first_report_p50_s": percentile(delays, 0.5),
        "first_report_p95_s": percentile(delays, 0.95),
        "spam_waves": spam_waves,
        "waves_reported": len(delays),
    }
