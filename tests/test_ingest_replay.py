"""Captures, replay timing, synthetic chat, opt-out and the bounded sink, on the real broker."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
import uuid

import pytest

from ingest import replay
from ingest.captures import Capture, CaptureError, merged
from ingest.channels import latest, publish
from ingest.sink import ChatSink
from ingest.synth import EVASIONS, Generator, SynthSettings, evade, write_jsonl
from services.local import LocalKafka
from services.schema import ensure_topics
from tests.conftest import TEST_ENVIRONMENT, test_config
from tests.test_ingest_twitch import Running, wait_for
from tests.test_kafka_records import consume_all
from twitchcrement import PROJECT_ROOT
from twitchcrement.records import ChannelList, ChatMessage, decode_chat

SAMPLE = PROJECT_ROOT / "data" / "samples" / "recentmessages-nymn.json"


@pytest.mark.parametrize(
    "relative,count,channels",
    [
        ("admiralbulldog_irc/chat_admiralbulldog_4_30.log", 28_844, {"admiralbulldog"}),
        ("nymn_recentmessages/recentmessages-nymn.json", 798, {"nymn"}),
        ("multichannel_2017_clanghout/data.csv", 5_293, {"enviosity", "totalbiscuit", "shenryyr", "gamej06"}),
    ],
)
def test_real_captures_parse_with_zero_errors(shared_data, relative, count, channels):
    capture = Capture(shared_data / relative)
    messages = list(capture)
    assert len(messages) == count
    assert capture.skipped == 0, (capture.parser.summary(), dict(capture.problems))
    assert {m.channel for m in messages} == channels


def test_the_shipped_sample_keeps_its_invisible_characters():
    messages = list(Capture(SAMPLE))
    assert len(messages) == 798
    assert sum("\U000e0000" in m.text for m in messages) == 128
    assert sum(m.is_mod for m in messages) == 19


def test_other_formats_and_bad_rows(tmp_path):
    irc = tmp_path / "chat.irc"
    irc.write_text("@tmi-sent-ts=1704557984398 :a!a@a PRIVMSG #nymn :KEKW\nPING :x\n:broken\n")
    capture = Capture(irc)
    assert [m.text for m in capture] == ["KEKW"] and capture.parser.error_count == 1
    csv_file = tmp_path / "chat.csv"
    csv_file.write_text("genre,channel,sender,date,message\nchill,#a,b,1497898506235,hi\nchill,#a,b,notatime,x\n")
    capture = Capture(csv_file)
    assert [m.text for m in capture] == ["hi"] and capture.problems == {"bad_csv_row": 1}
    jsonl = tmp_path / "chat.jsonl"
    write_jsonl(iter([ChatMessage(channel="a", user_login="b", text="t", sent_ts=1_704_557_984_398)]), jsonl)
    with jsonl.open("a") as extra:
        extra.write('{"channel": "a"}\nnot json\n')
    capture = Capture(jsonl)
    assert [m.text for m in capture] == ["t"] and capture.problems == {"bad_jsonl_line": 2}
    with pytest.raises(CaptureError, match="no such file"):
        Capture(tmp_path / "missing.log")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(CaptureError, match="lacks the column"):
        list(Capture(bad_csv))


def test_paced_keeps_recorded_gaps_divided_by_speed_and_restamps():
    base = 1_704_557_984_000
    messages = [
        ChatMessage(channel="a", user_login="u", text=str(i), sent_ts=base + gap)
        for i, gap in enumerate([0, 1_000, 1_000, 5_000])
    ]
    now = [1_000_000.0]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 3))
        now[0] += seconds

    out = list(replay.paced(messages, speed=10.0, restamp=True, clock=lambda: now[0], sleep=sleep))
    assert slept == [0.1, 0.4]
    assert [m.sent_ts - out[0].sent_ts for m in out] == [0, 100, 100, 500]
    assert out[0].sent_ts == 1_000_000_000
    fast = list(replay.paced(messages, speed=None, restamp=False, clock=lambda: now[0], sleep=sleep))
    assert [m.sent_ts for m in fast] == [m.sent_ts for m in messages] and len(slept) == 2


def test_merged_captures_are_in_time_order(tmp_path):
    a, b = tmp_path / "a.irc", tmp_path / "b.irc"
    a.write_text("".join(f"@tmi-sent-ts={1704557984000 + 2 * i} :u!u@u PRIVMSG #a :a{i}\n" for i in range(5)))
    b.write_text("".join(f"@tmi-sent-ts={1704557984001 + 2 * i} :u!u@u PRIVMSG #b :b{i}\n" for i in range(5)))
    assert [m.text for m in merged([Capture(a), Capture(b)])] == [
        "a0",
        "b0",
        "a1",
        "b1",
        "a2",
        "b2",
        "a3",
        "b3",
        "a4",
        "b4",
    ]


def test_synthetic_chat_is_deterministic_labelled_and_evasive():
    settings = SynthSettings(rate=2_000, seconds=30, channels=20, seed=11)
    first, second = list(Generator(settings)), list(Generator(settings))
    assert first == second
    generator = Generator(settings)
    messages = list(generator)
    by_id = {m.message_id: m for m in messages}
    assert abs(len(messages) - 60_000) < 1_000
    assert all(a.sent_ts <= b.sent_ts for a, b in itertools.pairwise(messages))
    spam_ids = {i for b in generator.bursts for i in b.message_ids}
    assert 0.15 < len(spam_ids) / len(messages) < 0.3
    kinds = {b.kind for b in generator.bursts}
    assert kinds == {"copypasta", "emote_wave", "flood", "campaign"}
    assert {b.evasion for b in generator.bursts} == set(EVASIONS)
    for burst in generator.bursts:
        users = {by_id[i].user_login for i in burst.message_ids}
        channels = {by_id[i].channel for i in burst.message_ids}
        assert channels <= set(burst.channels)
        if burst.kind == "flood":
            assert len(users) == 1
        if burst.kind == "campaign":
            assert len(channels) >= 2 or len(burst.message_ids) < 3
        assert all(burst.start_ts <= by_id[i].sent_ts < burst.end_ts for i in burst.message_ids)
    counts = [sum(1 for m in messages if m.channel == c) for c in generator.channels]
    assert counts[0] > 5 * counts[-1]  # skewed activity


def test_evasions_change_the_text_the_way_real_chat_does():
    import random

    rng = random.Random(3)
    base = "Remember to hydrate chat FeelsGoodMan"
    assert "\U000e0000" in "".join(evade(base, "invisible", random.Random(s)) for s in range(10)) or any(
        c in "".join(evade(base, "invisible", random.Random(s)) for s in range(10)) for c in "\u200b\u200c\u200d"
    )
    assert evade(base, "case", rng).lower() == base.lower()
    assert len(evade(base, "repeat_letters", rng)) > len(base)
    assert sorted(evade(base, "word_order", rng).split()) == sorted(base.split())
    assert evade(base, "none", rng) == base


def test_replay_command_line_puts_the_sample_on_kafka(platform, tmp_path):
    topic = f"test-replay-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    env = {"PATH": "/usr/bin:/bin", **TEST_ENVIRONMENT, "TWITCHCREMENT_KAFKA_CHAT_TOPIC": topic}
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "--no-progress", "replay", str(SAMPLE), "--speed", "max", "--restamp"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "produced=798 dropped=0" in result.stderr
    received = [decode_chat(r.value) for r in consume_all(platform, topic, 798)]
    assert len(received) == 798
    assert abs(min(m.sent_ts for m in received) - time.time() * 1000) < 120_000  # restamped to now
    original = list(Capture(SAMPLE))
    span = max(m.sent_ts for m in original) - min(m.sent_ts for m in original)
    assert max(m.sent_ts for m in received) - min(m.sent_ts for m in received) == span  # gaps kept


def test_synth_command_line_writes_labels_and_chat(platform, tmp_path):
    topic = f"test-synth-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    labels = tmp_path / "labels.jsonl"
    env = {"PATH": "/usr/bin:/bin", **TEST_ENVIRONMENT, "TWITCHCREMENT_KAFKA_CHAT_TOPIC": topic}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest",
            "--no-progress",
            "synth",
            "--rate",
            "2000",
            "--seconds",
            "5",
            "--labels",
            str(labels),
            "--speed",
            "max",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    bursts = [json.loads(line) for line in labels.read_text().splitlines()]
    produced = int(re.search(r"produced=(\d+) dropped=0", result.stderr).group(1))
    assert abs(produced - 10_000) < 200
    received = consume_all(platform, topic, produced)
    ids = {decode_chat(r.value).message_id for r in received}
    assert len(ids) == produced
    assert {i for b in bursts for i in b["message_ids"]} <= ids


def test_opt_out_is_honoured_before_kafka(platform):
    topic = f"test-optout-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    config = test_config(
        TWITCHCREMENT_INGEST_OPTOUT_CHANNELS="private_channel", TWITCHCREMENT_INGEST_OPTOUT_USERS="shy_user"
    )
    sink = ChatSink(config, topic=topic)
    sent = [
        ChatMessage(channel=c, user_login=u, text="hi", sent_ts=1_704_557_984_398, message_id=f"{c}-{u}")
        for c in ("nymn", "private_channel")
        for u in ("someone", "shy_user")
    ]
    for message in sent:
        sink.offer(message)
    sink.close(timeout_s=30)
    assert (sink.stats.produced, sink.stats.opted_out) == (1, 3)
    assert [decode_chat(r.value).message_id for r in consume_all(platform, topic, 1)] == ["nymn-someone"]


def test_channel_list_is_published_for_the_dashboard(platform):
    listing = ChannelList(source="file", updated_at=1_795_000_000_000, channels=[["nymn", 10], ["xqcow", 5]])
    publish(platform, listing)
    assert latest(platform) == listing


@pytest.mark.slow
@pytest.mark.restarts_services
def test_broker_outage_loses_nothing_inside_the_buffer_and_counts_drops(platform):
    bound = 200
    run = Running(platform, ["nymn"])
    run.sink.bound = bound
    run.all_joined(["nymn"], 30)
    before = [run.server.chat("nymn", "before", f"before {i}") for i in range(20)]
    wait_for(lambda: run.sink.stats.produced == 20, 30, "messages before the outage")

    kafka = LocalKafka(platform)
    kafka.stop()
    outage_started = time.monotonic()
    during = [run.server.chat("nymn", "during", f"during {i}") for i in range(bound + 100)]
    wait_for(lambda: run.reader.messages == 20 + bound + 100, 20, "reader got every message")
    time.sleep(max(0.0, 20 - (time.monotonic() - outage_started)))  # the broker stays down for 20 s
    kafka.start()

    wait_for(lambda: run.sink.pending == 0, 120, "buffer drained after the broker came back")
    assert run.sink.stats.dropped == 100
    received = [decode_chat(r.value).message_id for r in run.close()]
    kept = during[:bound]
    assert set(before) | set(kept) == set(received)
    assert len(received) == len(set(received))  # nothing doubled


def test_a_delivery_kafka_gives_up_on_is_resent(platform):
    """kafka-python calls errbacks as f(*bound_args, exception): a failed delivery must come back and be resent."""
    from kafka.errors import KafkaTimeoutError
    from kafka.future import Future

    topic = f"test-resend-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    sink = ChatSink(platform, topic=topic)
    message = ChatMessage(channel="nymn", user_login="a", text="again", sent_ts=1_704_557_984_398, message_id="resend")
    with sink._lock:
        sink._in_flight += 1  # as if the sender had handed it to the producer
    failed = Future()
    failed.add_errback(sink._failed, message)
    failed.failure(KafkaTimeoutError("expired in the producer's buffer"))
    assert sink.flush(timeout_s=30)
    sink.close(timeout_s=10)
    assert (sink.stats.resent, sink.stats.produced, sink.stats.dropped) == (1, 1, 0)
    assert [decode_chat(r.value).message_id for r in consume_all(platform, topic, 1)] == ["resend"]
