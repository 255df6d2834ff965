"""The chat-log formats people hold, read from fixtures written from each tool's documentation and source (the
expected messages below are read off the fixtures by hand, not produced by the readers), and replayed through
the real broker."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import shutil
import subprocess
import sys
import uuid
import zoneinfo
from pathlib import Path

import pytest

from ingest.captures import Capture, CaptureError, Hints, captures, in_time_order
from services.schema import ensure_topics
from tests.conftest import TEST_ENVIRONMENT
from tests.test_kafka_records import consume_all
from twitchcrement import PROJECT_ROOT
from twitchcrement.records import ChatMessage, decode_chat

FIXTURES = Path(__file__).parent / "fixtures" / "chatlogs"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def at(stamp: str, zone: dt.tzinfo = dt.UTC) -> int:
    """'2024-01-06 16:19:44.5' in a zone as Unix ms."""
    return int(dt.datetime.fromisoformat(stamp).replace(tzinfo=zone).timestamp() * 1000)


# (file, format, hints) -> [(channel, user_login, text, sent_ts, emotes, is_action)]
EXPECTED = {
    ("irssi/#forsen.log", "irssi"): [
        ("forsen", "forsen_fan", "forsenE forsenE", at("2024-01-06 23:58:00"), "", False),
        ("forsen", "modguy", "hello chat", at("2024-01-06 23:58:30"), "", False),  # 2nd of 2 in its minute
        ("forsen", "forsen_fan", "waves", at("2024-01-06 23:59:00"), "", True),
        ("forsen", "someone", "happy new day", at("2024-01-07 00:00:00"), "", False),  # after "Day changed"
    ],
    ("weechat/irc.twitch.#xqcow.weechatlog", "weechat"): [
        ("xqcow", "someuser", "LULW LULW", at("2024-01-06 17:19:45", BERLIN), "", False),
        ("xqcow", "moduser", "stop spamming", at("2024-01-06 17:19:46", BERLIN), "", False),
        ("xqcow", "someuser", "dances", at("2024-01-06 17:19:47", BERLIN), "", True),
    ],
    ("znc/#nymn/2024-01-06.log", "znc"): [
        ("nymn", "usera", "forsenParty", at("2024-01-06 16:19:45"), "", False),
        ("nymn", "userb", "claps", at("2024-01-06 16:19:46"), "", True),
        ("nymn", "userc", "last one today", at("2024-01-06 23:59:59"), "", False),
    ],
    ("chatterino/pokimane-2024-01-06.log", "chatterino"): [
        ("pokimane", "usera", "OMEGALUL OMEGALUL", at("2024-01-06 16:19:44"), "", False),
        ("pokimane", "jpuser", "こんにちは: everyone", at("2024-01-06 16:19:45"), "", False),
    ],
    ("justlog/channel.txt", "irc"): [
        ("nymn", "usera", "Kappa hi", 1704557985000, "25:0-4", False),
        ("nymn", "userb", "back again", 1704557987500, "", False),
    ],
    ("justlog/2024-1-6.json", "justlog-json"): [
        ("nymn", "usera", "Kappa hi", 1704557985000, "25:0-4", False),
        ("nymn", "userc", "no raw line kept", at("2024-01-06 16:19:48"), "", False),
    ],
    ("justlog/nymn-text.txt", "justlog-text"): [
        ("nymn", "usera", "Kappa hi", at("2024-01-06 16:19:45"), "", False),
        ("nymn", "userc", "no raw line kept", at("2024-01-06 16:19:48"), "", False),
    ],
    ("vod/twitchdownloader-xqcow.json", "twitchdownloader"): [
        ("xqcow", "usera", "LUL nice LUL", at("2024-01-06 16:00:05.123"), "425618:0-2,9-11", False),
        ("xqcow", "userb", "hello", at("2024-01-06 16:00:07.5"), "", False),
        ("xqcow", "usera", "Kappa Kappa", at("2024-01-06 16:00:09"), "25:0-4,6-10", False),
    ],
    ("vod/videocomments.json", "videocomments"): [
        ("vodchannel", "gqluser", "PogChamp yes", at("2024-01-06 16:00:20.25"), "305954156:0-7", False),
        ("vodchannel", "second", "plain text", at("2024-01-06 16:00:22"), "", False),
    ],
    ("vod/chatdownloader.json", "chat-downloader"): [
        ("vodchannel", "cduser", "Kappa Kappa", at("2024-01-06 16:00:10"), "25:0-4,6-10", False),
        ("vodchannel", "other", "ok", at("2024-01-06 16:00:12.5"), "", False),
    ],
}
HINTS = Hints(channel="vodchannel", timezone=BERLIN)  # Berlin: only the WeeChat log is read in local time
ZONED = {"weechat"}


def facts(message: ChatMessage) -> tuple:
    return (message.channel, message.user_login, message.text, message.sent_ts, message.emotes, message.is_action)


def hints_for(kind: str) -> Hints:
    return HINTS if kind in ZONED else Hints(channel=HINTS.channel)


@pytest.mark.parametrize("relative,kind", list(EXPECTED))
def test_each_format_reads_the_messages_its_documentation_describes(relative, kind):
    capture = Capture(FIXTURES / relative, hints_for(kind))
    assert capture.format == kind
    assert [facts(m) for m in capture] == EXPECTED[relative, kind]


def test_what_a_format_could_not_read_is_counted_by_kind():
    capture = Capture(FIXTURES / "vod/videocomments.json", HINTS)
    list(capture)
    assert capture.problems == {"comment_without_commenter_or_message": 1}  # the deleted account's comment
    for relative, kind in EXPECTED:
        if kind != "videocomments":
            other = Capture(FIXTURES / relative, hints_for(kind))
            list(other)
            assert other.skipped == 0, (relative, other.summary())


def test_flags_from_badges_and_minute_notes():
    vod = list(Capture(FIXTURES / "vod/twitchdownloader-xqcow.json"))
    assert [(m.is_mod, m.is_subscriber, m.message_id, m.display_name) for m in vod] == [
        (True, False, "c1", "UserA"),
        (False, True, "c2", "UserB"),
        (False, False, "c3", "UserA"),
    ]
    irssi = Capture(FIXTURES / "irssi/#forsen.log")
    list(irssi)
    assert any("to the minute" in note for note in irssi.notes)


def test_format_is_chosen_by_content_not_name(tmp_path):
    for relative, kind in EXPECTED:
        renamed = tmp_path / f"{uuid.uuid4().hex}.dat"  # no channel, no date, no telling suffix
        shutil.copy(FIXTURES / relative, renamed)
        hints = Hints(channel="renamed", date=dt.date(2024, 1, 6), timezone=hints_for(kind).timezone)
        capture = Capture(renamed, hints)
        assert capture.format == kind
        assert [facts(m)[1:] for m in capture] == [e[1:] for e in EXPECTED[relative, kind]]


def in_berlin() -> list[tuple]:
    """EXPECTED when every file is read with --timezone Europe/Berlin: the irssi and ZNC logs, which do not say
    their zone, an hour earlier in UTC (January); Chatterino's says UTC, the rest carry UTC or Unix times."""
    return sorted(
        e[:3] + (e[3] - 3_600_000,) + e[4:] if kind in {"irssi", "znc"} else e
        for (_, kind), rows in EXPECTED.items()
        for e in rows
    )


def test_gzip_files_and_directories(tmp_path):
    for relative, _kind in EXPECTED:
        target = tmp_path / "logs" / (relative + ".gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress((FIXTURES / relative).read_bytes()))
    (tmp_path / "logs" / ".hidden").write_text("not a log")
    found = captures([tmp_path / "logs"], HINTS)
    assert sorted(c.format for c in found) == sorted(kind for _, kind in EXPECTED)
    assert sorted(facts(m) for c in found for m in c) == in_berlin()


def test_a_file_in_no_known_format_is_one_clear_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Shopping list\nmilk\neggs\n")
    with pytest.raises(CaptureError) as error:
        Capture(notes)
    message = str(error.value)
    assert str(notes) in message and "irssi" in message and "twitchdownloader" in message
    with pytest.raises(CaptureError, match="no channel"):
        list(Capture(FIXTURES / "vod/chatdownloader.json"))
    undated = tmp_path / "irc.log"
    undated.write_text("[16:19:45] <UserA> hi\n")
    with pytest.raises(CaptureError, match="no date"):
        list(Capture(undated, Hints(channel="nymn")))


def test_out_of_order_messages_are_sorted_in_bounded_runs():
    rng = random.Random(7)
    messages = [
        ChatMessage(channel="a", user_login="u", text=str(i), sent_ts=1_704_557_984_000 + rng.randrange(50))
        for i in range(1_000)
    ]
    ordered = list(in_time_order(iter(messages), run_size=64))  # 16 runs through temporary files
    assert [m.sent_ts for m in ordered] == sorted(m.sent_ts for m in messages)
    assert [m.text for m in ordered] == [m.text for m in sorted(messages, key=lambda m: m.sent_ts)]  # stable


def test_a_client_log_out_of_order_is_replayed_in_order(tmp_path):
    log = tmp_path / "#nymn" / "2024-01-06.log"
    log.parent.mkdir()
    log.write_text("[16:19:47] <c> third\n[16:19:45] <a> first\n[16:19:46] <b> second\n")
    assert [m.text for m in Capture(log)] == ["first", "second", "third"]


def _replay(args: list[str], topic: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **TEST_ENVIRONMENT, "TWITCHCREMENT_KAFKA_CHAT_TOPIC": topic}
    return subprocess.run(
        [sys.executable, "-m", "ingest", "--no-progress", "replay", *args, "--speed", "max"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=180,
    )


def test_replaying_a_directory_of_every_format_puts_each_message_on_kafka(platform, tmp_path):
    topic = f"test-formats-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    logs = tmp_path / "logs"
    shutil.copytree(FIXTURES, logs)
    weechat = logs / "weechat" / "irc.twitch.#xqcow.weechatlog"
    weechat.with_name(weechat.name + ".gz").write_bytes(gzip.compress(weechat.read_bytes()))
    weechat.unlink()
    result = _replay([str(logs), "--channel", "vodchannel", "--timezone", "Europe/Berlin"], topic)
    assert result.returncode == 0, result.stderr
    expected = in_berlin()
    received = [decode_chat(r.value) for r in consume_all(platform, topic, len(expected) + 1, timeout_s=20)]
    assert sorted(facts(m) for m in received) == expected
    for channel in {m.channel for m in received}:  # merged into one stream in time order: each channel in order
        times = [m.sent_ts for m in received if m.channel == channel]
        assert times == sorted(times), channel


def test_replay_errors_are_one_line_and_a_non_zero_exit(platform, tmp_path):
    topic = f"test-formats-bad-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    unknown = tmp_path / "mvg_league.bin"
    unknown.write_bytes(bytes(range(256)) * 10)
    result = _replay([str(unknown)], topic)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: capture {unknown}: not a chat log in any format")
    assert "irssi" in lines[0] and "chat-downloader" in lines[0]
    broken = tmp_path / "broken-xqcow.json"
    broken.write_text(
        json.dumps(
            {
                "streamer": {"name": "xqcow"},
                "comments": [
                    {"_id": f"c{i}", "content_offset_seconds": i, "commenter": None, "message": None} for i in range(40)
                ],
            }
        )
    )
    result = _replay([str(broken)], topic)
    assert result.returncode == 3, result.stderr
    assert "comment_without_commenter_or_message" in result.stderr and "nothing replayed" in result.stderr


def test_implausible_creation_times_give_way_to_the_vod_start_plus_offsets(tmp_path):
    """A download whose createdAt values are all the moment it was fetched: 150 messages over 10 minutes of VOD
    'created' within two seconds."""
    start = at("2024-01-06 16:00:00")
    comments = [
        {
            "id": f"v{i}",
            "createdAt": f"2024-01-08T10:00:0{i % 2}.{i:03d}Z",
            "contentOffsetSeconds": i * 4,
            "commenter": {"id": str(i), "login": f"user{i}", "displayName": f"User{i}"},
            "message": {"fragments": [{"text": f"message {i}", "emote": None}]},
        }
        for i in range(150)
    ]
    path = tmp_path / "vod.json"
    path.write_text(
        json.dumps({"video": {"createdAt": "2024-01-06T16:00:00Z", "owner": {"login": "nymn"}}, "comments": comments})
    )
    capture = Capture(path)
    assert [(m.channel, m.sent_ts) for m in capture] == [("nymn", start + i * 4_000) for i in range(150)]
    assert any("implausible" in note for note in capture.notes)
