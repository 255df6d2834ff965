"""Who spammed: every user of a spam event reaches Cassandra with their own counts and times, and each user's
events are found by login (real Kafka, Spark and Cassandra). The truth is the chat the test writes itself."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.detector_harness import fresh_config, produce, run, spam_records, stored_event_users
from twitchcrement.clients import cassandra_session
from twitchcrement.records import ChatMessage

WINDOW_START = 1_780_272_000_000  # 2026-06-01 00:00:00 UTC, a window boundary
WAVE_USERS = 300


def wave(channel: str, text: str, users: list[str], start_ms: int) -> tuple[list[ChatMessage], dict[str, tuple]]:
    """Each user sends the text 1, 2 or 3 times inside one 10 s window; returns the chat and, per user, the
    (messages, first ms, last ms) it holds."""
    messages, truth = [], {}
    for i, login in enumerate(users):
        times = [start_ms + 100 + (i * 29 + k * 3_100) % 9_700 for k in range(1 + i % 3)]
        messages += [ChatMessage(channel=channel, user_login=login, text=text, sent_ts=ts) for ts in times]
        truth[login] = (len(times), min(times), max(times))
    return sorted(messages, key=lambda m: m.sent_ts), truth


def millis(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.slow
def test_a_wave_of_300_users_stores_every_user_and_each_users_events(platform, spark, tmp_path):
    config = fresh_config(platform)
    tag = f"wu{uuid.uuid4().hex[:6]}"
    users = [f"{tag}_u{i:03d}" for i in range(WAVE_USERS)]
    chat_a, truth_a = wave(
        f"{tag}_a", f"{tag} three hundred of us paste this copypasta in chat KEKW", users, WINDOW_START
    )
    # Ten of them spam another channel in a later window: a bot ring joining several channels.
    chat_b, truth_b = wave(
        f"{tag}_b", f"{tag} follow the ring over here for a free giveaway PogChamp", users[:10], WINDOW_START + 30_000
    )
    produce(config, chat_a + chat_b)
    run(spark, config, tmp_path / "checkpoint")

    events, _ = spam_records(config)
    by_channel = {e.channel: e for e in events}
    assert sorted(by_channel) == [f"{tag}_a", f"{tag}_b"] and len(events) == 2
    event_a, event_b = by_channel[f"{tag}_a"], by_channel[f"{tag}_b"]
    assert event_a.distinct_users == WAVE_USERS and event_a.message_count == len(chat_a)
    assert len(event_a.top_users) == 5  # the Kafka event stays bounded: its top users only
    assert {u for u, c in event_a.top_users} <= {u for u, (c, _, _) in truth_a.items() if c == 3}

    for event, truth in ((event_a, truth_a), (event_b, truth_b)):
        rows = stored_event_users(config, event)
        assert len(rows) == event.distinct_users == len(truth)
        assert {r.user_login: (r.messages, millis(r.first_ts), millis(r.last_ts)) for r in rows} == truth

    session = cassandra_session(config)
    try:
        by_user = session.prepare(
            "SELECT event_id, channel, messages FROM spam_events_by_user WHERE user_login = ? AND day = ?"
        )
        user_days = session.prepare("SELECT day FROM spam_user_days WHERE user_login = ?")
        day = dt.date(2026, 6, 1)
        for login in users:
            found = {row.event_id: (row.channel, row.messages) for row in session.execute(by_user, [login, day])}
            expected = {event_a.event_id: (event_a.channel, truth_a[login][0])}
            if login in truth_b:
                expected[event_b.event_id] = (event_b.channel, truth_b[login][0])
            assert found == expected, login
            assert [
                row.day.date() if hasattr(row.day, "date") else row.day for row in session.execute(user_days, [login])
            ] == [day], login
    finally:
        session.cluster.shutdown()
