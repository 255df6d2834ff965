"""The spam detector: pure functions, then the streaming job end to end on real Kafka, Cassandra and Spark."""

from __future__ import annotations

import struct
import uuid

import msgpack
import pytest
from pyspark.ml.feature import HashingTF

from ingest.captures import Capture
from ingest.synth import EMOTES, EVASIONS, Generator, SynthSettings
from jobs import detection
from jobs.detection import ChannelDetector, Settings, cluster
from jobs.evaluation import emote_truth, exact_baseline, labelled_cells, score
from jobs.pipeline import DetectorSettings, features, minhash_model
from tests.conftest import test_config
from tests.detector_harness import flush_message, fresh_config, produce, run, spam_records
from tests.test_kafka_records import consume_all
from twitchcrement import PROJECT_ROOT
from twitchcrement.clients import cassandra_session
from twitchcrement.records import ChatMessage
from twitchcrement.textsim import MinHasher, message_hash, normalise, shingles

HASHER = MinHasher(1 << 20, 32, 20240106, 3)
SETTINGS = Settings()


@pytest.mark.parametrize(
    "a,b",
    [
        ("forsenParty EDM \U000e0000", "forsenParty EDM"),
        ("KEKW KEKW KEKW", "kekw"),
        ("LOOOOOOL", "lool"),
        ("ＫＥＫＷ", "kekw"),  # full-width letters (NFKC)
        ("Pog\u200bChamp", "pogchamp"),
        ("  spaced\t\tout  text ", "spaced out text"),
        ("DocSpin it is what it is", "docspin it is what it is"),
    ],
)
def test_normalise_undoes_the_usual_evasions(a, b):
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize("text", ["", "\U000e0000\u200b", "🐢🐢🐢", "😂", "x" * 2000, "שלום עולם ☺", "a b"])
def test_any_text_gets_shingles_or_is_routed_aside(text):
    grams = shingles(normalise(text))
    if grams:
        assert HASHER.signature(grams)
    else:
        assert normalise(text) == ""


def test_near_duplicates_cluster_and_unrelated_texts_do_not():
    pasta = "Remember to hydrate chat, drink water and stretch your legs FeelsGoodMan"
    texts = [
        normalise(t)
        for t in [
            pasta,
            pasta + " Clap",
            "REMEMBER to hydrate chat drink water and stretch your legs FeelsGoodMan",
            "completely different message about the boss fight",
            "hydrate",
        ]
    ]
    signatures = [HASHER.signature(shingles(t)) if len(shingles(t)) >= 5 else None for t in texts]
    labels = cluster(texts, signatures, SETTINGS)
    assert labels[0] == labels[1] == labels[2]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_a_wave_of_many_variants_costs_linear_comparisons(monkeypatch):
    """Each text is checked (exact Jaccard) against at most the first and the previous member of its bucket per
    band: at most 2 x bands x n checks, where all pairs would be n^2 / 2 (2,000,000 for 2,000 texts)."""
    checks = []
    exact = detection.jaccard
    monkeypatch.setattr(detection, "jaccard", lambda a, b: checks.append((a, b)) or exact(a, b))
    base = "WHO ASKED LULW NOBODY ASKED LULW WHO ASKED"
    for n in (500, 2_000):
        checks.clear()
        texts = [normalise(f"{base} {'x' * (i % 7)} {i}") for i in range(n)]
        signatures = [HASHER.signature(shingles(t)) for t in texts]
        bands = len(signatures[0]) // SETTINGS.rows_per_band
        labels = cluster(texts, signatures, SETTINGS)
        assert len(set(labels)) < 20  # one wave, a few clusters at most
        assert 0 < len(checks) <= 2 * bands * n, (n, len(checks))


def test_clustering_again_as_texts_come_gives_the_clusters_of_clustering_from_scratch():
    """An open window is clustered after each micro-batch from the clusters of the time before (only what came
    since is compared): on the generator's chat of three channels that gives the very clusters of clustering all
    the texts at once."""
    messages = list(Generator(SynthSettings(rate=3000, seconds=10, channels=3, seed=9, prefix="inc", spam_share=0.4)))

    def partition(labels: list[int]) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        for index, label in enumerate(labels):
            groups.setdefault(label, []).append(index)
        return sorted(groups.values())

    for channel in sorted({m.channel for m in messages}):
        norms = list(dict.fromkeys(normalise(m.text) for m in messages if m.channel == channel))
        grams = [shingles(n) for n in norms]
        signatures = [detection.packed_signature(HASHER.signature(g)) if len(g) >= 5 else None for g in grams]
        known = None
        for end in (len(norms) // 4, len(norms) // 2, len(norms) * 3 // 4, len(norms)):
            labels = cluster(norms[:end], signatures[:end], SETTINGS, known, own=end)
            known = [0] * end
            for group in partition(labels):
                for index in group:
                    known[index] = group[0]
        full = partition(cluster(norms, signatures, SETTINGS))
        assert len(full) < len(norms)  # waves joined texts
        assert partition(known) == full, channel


def test_channel_detector_events_topics_and_flood():
    detector = ChannelDetector("nymn")
    base = 1_704_557_980_000

    def add(offset_ms, user, text):
        norm = normalise(text)
        grams = shingles(norm)
        detector.add(base + offset_ms, user, text, norm, HASHER.signature(grams) if len(grams) >= 5 else None, SETTINGS)

    for i in range(6):
        add(i * 100, f"user{i}", "forsenParty EDM forsenParty EDM" + " \U000e0000" * (i % 3 == 0))
    for i in range(7):
        add(i * 100, "flooder", "buy followers at cheap prices now")
    for i in range(3):
        add(i * 100, f"user{i}", "KEKW")  # too few
    rows = detector.close_windows(base + 10_000, SETTINGS)
    events = [r for r in rows if r["kind"] == "event"]
    assert {(e["event_kind"], e["message_count"], e["distinct_users"]) for e in events} == {
        ("crowd", 6, 6),
        ("flood", 7, 1),
    }
    crowd = next(e for e in events if e["event_kind"] == "crowd")
    assert crowd["variants"] == 2 and crowd["text"] == "forsenParty EDM forsenParty EDM"
    first_topic = crowd["topic_id"]
    # the same spam in the next window continues the topic; a quiet period ends it
    for i in range(5):
        add(10_000 + i * 100, f"other{i}", "forsenParty EDM forsenParty EDM")
    rows = detector.close_windows(base + 20_000, SETTINGS)
    assert [r["topic_id"] for r in rows if r["kind"] == "event"] == [first_topic]
    topic = next(r for r in rows if r["kind"] == "topic" and r["topic_id"] == first_topic)
    assert (topic["windows_active"], topic["message_count"]) == (2, 11)
    ended = detector.close_windows(base + 20_000 + SETTINGS.topic_quiet_ms + 10_000, SETTINGS)
    assert {r["topic_id"] for r in ended if r["ended"]} >= {first_topic}
    assert detector.is_empty()
    # a message for a window that is already closed is dropped and counted
    assert not detector.add(base, "late", "late", "late", None, SETTINGS)
    assert detector.late_dropped == 1


def test_an_events_text_is_a_spelling_of_the_message_its_hash_and_buckets_name():
    """A wave whose commonest normalised text comes in many spellings, beside a near copy in one spelling that
    is more common than any single one of them: the history is searched by the event's text, so the text must
    hash to the event's message_hash and land in its buckets."""
    detector = ChannelDetector("nymn")
    base = 1_767_225_600_000
    lead = "stretch your legs chat FeelsGoodMan"
    spellings = [lead.upper(), lead.lower(), lead.title(), lead.swapcase(), lead]
    near = f"{lead} now"
    for i, text in enumerate(spellings + [near] * 3):
        norm = normalise(text)
        detector.add(base + i, f"user{i}", text, norm, HASHER.signature(shingles(norm)), SETTINGS)
    rows = detector.close_windows(base + 20_000, SETTINGS)
    (event,) = [r for r in rows if r["kind"] == "event"]
    assert event["message_count"] == 8 and normalise(event["text"]) == normalise(lead) != normalise(near)
    assert event["message_hash"] == message_hash(normalise(event["text"]))
    assert event["buckets"] == HASHER.bands(HASHER.signature(shingles(normalise(event["text"]))))


@pytest.mark.parametrize("before", [0, 2, 3, 4, 5, 6, 8])
def test_a_wave_is_one_event_wherever_the_window_boundary_falls(before):
    """Eight users, one pasta each, 0.4 s apart, `before` of them before a window boundary: one event, always. It
    holds the whole wave when the part after the boundary reached the thresholds (with the part before), and the
    part before when that reached them alone (the few messages after it make no event of their own)."""
    detector = ChannelDetector("nymn")
    boundary = 1_767_225_610_000
    pasta = "I can't believe chat is spamming this again Madge"
    first = boundary - before * 400 + 200
    rows = []
    for i in range(8):
        detector.add(
            first + i * 400, f"user{i}", pasta, normalise(pasta), HASHER.signature(shingles(normalise(pasta))), SETTINGS
        )
        rows += detector.take() + detector.report_open(SETTINGS)
    rows += detector.finish(SETTINGS)
    closed = [r for r in rows if r.get("state") == "closed"]
    whole = before < SETTINGS.min_messages
    counted = 8 if whole else before
    assert [(e["message_count"], e["distinct_users"]) for e in closed] == [(counted, counted)], before
    assert closed[0]["first_ts"] == first and closed[0]["last_ts"] == first + (counted - 1) * 400
    assert closed[0]["window_start"] == (boundary if whole else boundary - SETTINGS.window_ms)
    assert [r for r in rows if r.get("state") == "open"], "reported while its window was open"


def test_a_wave_big_enough_on_both_sides_of_a_boundary_is_one_event_in_each_and_a_slow_one_none():
    detector = ChannelDetector("nymn")
    boundary = 1_767_225_610_000
    pasta = "I can't believe chat is spamming this again Madge"
    signature = HASHER.signature(shingles(normalise(pasta)))
    for i in range(12):  # 6 and 6
        detector.add(boundary - 3_000 + i * 500, f"user{i}", pasta, normalise(pasta), signature, SETTINGS)
    # two messages early in a window, three late in the next: never five within one window's length
    slow = "this one is slow and not a wave at all my friends"
    for i, ts in enumerate(
        [boundary + 10_500, boundary + 11_000, boundary + 20_600, boundary + 21_000, boundary + 21_400]
    ):
        detector.add(ts, f"slow{i}", slow, normalise(slow), HASHER.signature(shingles(normalise(slow))), SETTINGS)
    closed = [r for r in detector.take() + detector.finish(SETTINGS) if r.get("state") == "closed"]
    assert sorted((e["window_start"], e["text"], e["message_count"]) for e in closed) == [
        (boundary - 10_000, pasta, 6),
        (boundary, pasta, 6),
    ]


def test_each_channel_closes_its_windows_by_its_own_clock_message_by_message():
    detector = ChannelDetector("busy")
    base = 1_767_225_600_000
    spam = "the same spam text again and again and again"
    for i in range(5):
        detector.add(base + 1_000 + i, f"u{i}", spam, spam, None, SETTINGS)
    # 12.9 s: the clock (newest - 3 s) is still inside [0, 10 s): nothing closes, a message at 1 s still counts
    detector.add(base + 12_900, "x", "chatter", "chatter", None, SETTINGS)
    assert detector.take() == [] and detector.add(base + 1_500, "u5", spam, spam, None, SETTINGS)
    # 13 s closes [0, 10 s) right there, in the middle of whatever micro-batch carries it
    detector.add(base + 13_000, "x", "chatter", "chatter", None, SETTINGS)
    events = [r for r in detector.take() if r["kind"] == "event"]
    assert [(e["window_start"], e["message_count"]) for e in events] == [(base, 6)]
    assert not detector.add(base + 9_999, "late", spam, spam, None, SETTINGS) and detector.late_dropped == 1


def test_a_silent_channel_is_closed_only_once_its_partition_is_read_to_the_end_and_the_stream_moved_on():
    import pandas as pd

    from jobs.keyed import advance, new_partition_state

    base = 1_767_225_600_000
    spam = "the same spam text again and again and again"

    def rows(channel: str, sent: list[int], kafka_ts: int, first_offset: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "channel": channel,
                "sent_ts": sent,
                "user_login": [f"u{i}" for i in range(len(sent))],
                "text": spam,
                "norm": spam,
                "signature": None,
                "emotes": "",
                "offset": range(first_offset, first_offset + len(sent)),
                "kafka_ts": kafka_ts,
                "reason": None,
                "raw": None,
            }
        )

    def events(out: list[dict], state: str = "closed") -> list[tuple[str, int, int]]:
        return [(r["channel"], r["window_start"], r["message_count"]) for r in out if r.get("state") == state]

    lag = SETTINGS.channel_lag_ms
    partition = new_partition_state()  # one Kafka partition, two channels; now = processing time of the batch
    quiet = rows("quiet", [base + 1_000 + i for i in range(5)], kafka_ts=0, first_offset=0)
    out, late = advance(partition, quiet, 0, base + 1_004, False, SETTINGS)
    assert events(out, "open") == [("quiet", base, 5)] and events(out) == [] and late == 0  # the wave, as it goes
    # silent for longer than the lag and read to the end, but nobody's chat has moved on (an outage upstream)
    assert advance(partition, None, lag + 1, base + 1_004, False, SETTINGS) == ([], 0)
    # the stream has moved on, but the partition is still being read (rows appended long before this batch's time,
    # a backlog): another channel of it may not have been read up to now, so nothing is taken for silent
    backlog = rows("busy", [base + 1_005], kafka_ts=1, first_offset=5)
    assert advance(partition, backlog, lag + 2, base + 1_005 + lag, False, SETTINGS) == ([], 0)
    # read to the end (a batch without its rows), silent for the lag, the stream a lag further on: the window closes
    out, late = advance(partition, None, lag + 3, base + 1_005 + lag, False, SETTINGS)
    assert events(out) == [("quiet", base, 5)] and late == 0
    # a drain ends the partition: what is still open (busy's single message: no event) closes, nothing more comes
    assert events(advance(partition, None, lag + 4, base + 1_005 + lag, True, SETTINGS)[0]) == []
    assert partition["read_through"] == 6


def test_python_minhash_equals_spark_ml(spark):
    texts = [
        "KEKW KEKW",
        "forsenParty EDM forsenParty EDM \U000e0000",
        "🐢 Slow and steady 🐢 wins the race",
        "日本語のテキストです",
        "ResidentSleeper Silent Hill 2 Waiting Room ResidentSleeper",
        "🐢🐢",
        "ab",
        "a",
    ]
    spark_config = test_config()
    settings = DetectorSettings.from_config(spark_config)
    tf, model = minhash_model(spark, settings.hasher)
    long_enough = [t for t in texts if len(shingles(normalise(t))) >= settings.detection.min_shingles]
    frame = spark.createDataFrame(
        [(t, shingles(normalise(t))) for t in long_enough], "text string, shingles array<string>"
    )
    rows = model.transform(tf.transform(frame)).collect()
    assert spark_config.detector.num_hash_tables == len(rows[0].hashes)
    for row in rows:
        assert [int(v[0]) for v in row.hashes] == settings.hasher.signature(row.shingles), row.text
    assert isinstance(tf, HashingTF)
    # The detector's one JVM call a row (shingles made from the normalised text in Java) gives Spark ML's very
    # values, as big-endian int32 bytes, and nothing for texts with too few shingles.
    normalised = spark.createDataFrame([(t, normalise(t)) for t in texts], "text string, norm string")
    packed = {row.text: row.signature for row in features(normalised, spark, settings).collect()}
    for row in rows:
        assert list(struct.unpack(f">{len(row.hashes)}i", packed[row.text])) == [int(v[0]) for v in row.hashes]
    assert {t for t, signature in packed.items() if signature is None} == set(texts) - set(long_enough) != set()
    # And on real chat (every emote, emoji and script of a recorded channel), against the Python reference.
    real = sorted({m.text for m in Capture(PROJECT_ROOT / "data" / "samples" / "recentmessages-nymn.json")})
    normalised = spark.createDataFrame([(t, normalise(t)) for t in real], "text string, norm string")
    for row in features(normalised, spark, settings).collect():
        grams = shingles(row.norm)
        expected = settings.hasher.signature(grams) if len(grams) >= settings.detection.min_shingles else None
        assert (
            None if row.signature is None else list(struct.unpack(f">{len(row.signature) // 4}i", row.signature))
        ) == expected, row.text


@pytest.mark.parametrize("num_features", [1, 2, 64])
def test_the_jvm_function_starts_and_hashes_as_spark_ml_in_a_small_feature_space(spark, num_features):
    # The function checks itself against MinHashLSHModel.hashFunction when it is registered; that check must fit
    # any feature space the config allows, and the values must still be Spark ML's.
    settings = DetectorSettings.from_config(test_config().with_overrides(detector__num_features=num_features))
    tf, model = minhash_model(spark, settings.hasher)
    text = "ResidentSleeper Silent Hill 2 Waiting Room ResidentSleeper"
    frame = spark.createDataFrame([(text, shingles(normalise(text)))], "text string, shingles array<string>")
    (row,) = model.transform(tf.transform(frame)).collect()
    normalised = spark.createDataFrame([(text, normalise(text))], "text string, norm string")
    (featured,) = features(normalised, spark, settings).collect()
    assert list(struct.unpack(f">{len(row.hashes)}i", featured.signature)) == [int(v[0]) for v in row.hashes]


def _synthetic(prefix: str, seconds: int = 60) -> Generator:
    return Generator(
        SynthSettings(rate=400, seconds=seconds, channels=8, seed=13, prefix=prefix, start_ms=1_767_225_600_000)
    )


def test_streaming_job_end_to_end(platform, spark, tmp_path):
    config = fresh_config(platform)
    prefix = f"e2e{uuid.uuid4().hex[:6]}"
    generator = _synthetic(prefix)
    messages = list(generator)
    bursts = [b.label() for b in generator.bursts]
    bad = [b"\xc1 not msgpack", msgpack.packb({"channel": "nymn", "text": "no user, no time"})]
    produce(config, messages + [flush_message(max(m.sent_ts for m in messages))], raw=bad)
    writer = run(spark, config, tmp_path / "checkpoint")
    events, topics = spam_records(config)

    # quality against the labels, and against the original exact-match algorithm
    cells = labelled_cells(messages, bursts, SETTINGS)
    event_rows = [
        {
            "channel": e.channel,
            "window_start": e.window_start,
            "event_kind": e.kind,
            "text": e.text,
            "message_count": e.message_count,
            "distinct_users": e.distinct_users,
            "top_variants": e.top_variants,
        }
        for e in events
    ]
    # emote waves no label names (chatter that is all emotes): true when the window holds them (the vocabulary)
    truth = emote_truth(messages, SETTINGS, lambda m: [w in EMOTES for w in m.text.split()])
    ours = score(event_rows, cells, SETTINGS, emotes=truth)
    exact = score(exact_baseline(messages, SETTINGS), cells, SETTINGS, min_event_messages=SETTINGS.min_messages)
    assert ours.precision >= 0.95 and ours.recall >= 0.95, ours.as_dict()
    evasive = [t for t in EVASIONS if t != "none" and t in ours.recall_by_tag]
    assert len(evasive) >= 8  # most kinds have waves big enough in this minute of chat
    assert sum(ours.recall_by_tag[t] for t in evasive) > sum(exact.recall_by_tag[t] for t in evasive) + 1.0, (
        ours.as_dict(),
        exact.as_dict(),
    )

    # every event carries a topic; topics end; campaigns span channels
    assert all(e.topic_id for e in events)
    assert {t.topic_id for t in topics} == {e.topic_id for e in events}
    assert any(t.ended for t in topics)
    assert writer.totals["dead_letters"] == 2
    dead = [msgpack.unpackb(r.value) for r in consume_all(config, config.kafka.deadletter_topic, 2)]
    assert sorted(d["value"] for d in dead) == sorted(bad)
    assert any("missing field 'user_login'" in d["reason"] for d in dead)

    session = cassandra_session(config)
    try:
        channel, day = events[0].channel, None
        import datetime as dt

        day = dt.datetime.fromtimestamp(events[0].window_start / 1000, dt.UTC).date()
        stored = session.execute(
            session.prepare("SELECT event_id, message_count FROM spam_events_by_channel WHERE channel = ? AND day = ?"),
            [channel, day],
        ).all()
        assert {r.event_id for r in stored} == {
            e.event_id
            for e in events
            if e.channel == channel and dt.datetime.fromtimestamp(e.window_start / 1000, dt.UTC).date() == day
        }
        by_message = session.execute(
            session.prepare("SELECT channel FROM spam_events_by_message WHERE message_hash = ? AND day = ?"),
            [events[0].message_hash, day],
        ).all()
        assert channel in {r.channel for r in by_message}
        campaign_rows = session.execute(
            session.prepare("SELECT campaign_id, channel FROM spam_campaigns_by_day WHERE day = ?"), [day]
        ).all()
        campaigns = {}
        for row in campaign_rows:
            if row.channel.startswith(prefix):
                campaigns.setdefault(row.campaign_id, set()).add(row.channel)
        assert any(len(channels) >= 2 for channels in campaigns.values())
        buckets = session.execute(
            session.prepare("SELECT message_hash FROM spam_lsh_buckets WHERE band = ? AND bucket = ?"),
            [0, HASHER.bands(HASHER.signature(shingles(normalise(events[0].text))))[0]],
        ).all()
        assert (
            events[0].message_hash in {r.message_hash for r in buckets}
            or len(shingles(normalise(events[0].text))) < SETTINGS.min_shingles
        )
    finally:
        session.cluster.shutdown()


def test_late_messages_within_the_watermark_count_later_ones_are_dropped(platform, spark, tmp_path):
    config = fresh_config(platform)
    channel, ahead = f"late_{uuid.uuid4().hex[:8]}", f"ahead_{uuid.uuid4().hex[:8]}"
    window = 1_767_225_600_000  # a window start (a multiple of 10 s)
    lag_ms = int(config.detector.channel_lag_s * 1000)
    spam = "this is the same spam text again and again"

    def chat(ts: int, user: str, text: str = spam, where: str = channel) -> ChatMessage:
        return ChatMessage(channel=where, user_login=user, text=text, sent_ts=ts)

    checkpoint = tmp_path / "checkpoint"
    # 1. four spam messages up to +4 s; another channel's chat runs further ahead, but less than the lag
    produce(
        config,
        [chat(window + 1000 * i, f"user{i}") for i in range(1, 5)]
        + [chat(window + 9_500 + lag_ms - 1_000, "someone", "unrelated chatter here", ahead)],
    )
    run(spark, config, checkpoint, finish=False)
    # 2. a fifth one at +7 s: behind the stream's watermark, but not behind its channel's (+4 s - 3 s): it counts.
    #    Then the channel's own chat moves its clock past the window's end plus the watermark: the window closes.
    produce(config, [chat(window + 7_000, "user5"), chat(window + 14_000, "someone", "more chatter")])
    first = run(spark, config, checkpoint, finish=False)
    # 3. one more for the closed window: dropped and counted
    produce(config, [chat(window + 2_000, "user6"), chat(window + 40_000, "someone", "even more", ahead)])
    late = _late_dropped(spark, config, checkpoint)
    events, _ = spam_records(config)
    ours = [e for e in events if e.channel == channel]
    assert [(e.window_start, e.message_count, e.distinct_users) for e in ours] == [(window, 5, 5)]
    assert first.totals["events"] == 1
    assert late == 1


def _late_dropped(spark, config, checkpoint) -> int:
    return run(spark, config, checkpoint, finish=False).totals["late_dropped"]


@pytest.mark.slow
def test_live_waves_are_each_reported_while_they_go_on_wherever_the_window_boundary_falls(platform, spark, tmp_path):
    """The detector streams beside 60 msg/s of chatter; six waves of a pasta from 8 users, 0.4 s apart, are written
    as they happen, one a window: three inside a window, three across a boundary with 4, 3 and 2 of their eight
    messages before it. Each is reported (open) before its window closes, and each ends as a closed event."""
    import threading
    import time

    from ingest.sink import ChatSink
    from jobs.keyed import KeyedBatch
    from jobs.spam_detector import start, stop_between_batches
    from tests.detector_harness import event_records
    from tests.test_ingest_twitch import wait_for

    config = fresh_config(platform)
    tag = f"lv{uuid.uuid4().hex[:6]}"
    chatter = list(Generator(SynthSettings(rate=60, seconds=75, channels=1, seed=3, prefix=tag, spam_share=0.0)))
    channel = chatter[0].channel
    batches = KeyedBatch(config)
    query = start(spark, config, checkpoint=str(tmp_path / "checkpoint"), writer=batches)
    try:
        wait_for(lambda: query.lastProgress is not None, 120, "the detector's first micro-batch")
        window_s = config.detector.window_s
        first_boundary = (int(time.time()) // window_s + 2) * window_s
        waves: list[tuple[str, float]] = []  # pasta, when its first message is sent (epoch s)
        pastas = [
            "the copypasta nobody asked for KEKW",
            "stop posting this in chat the mods are asleep",
            "who else is watching this at three in the morning",
            "remember to hydrate and stretch your legs chat",
            "first time chatter long time lurker hello everyone",
            "this game is rigged and the devs know it",
        ]
        for k, before in enumerate([None, 4, None, 3, None, 2]):
            boundary = first_boundary + k * window_s
            began = boundary + 2.0 if before is None else boundary - before * 0.4 + 0.2
            waves.append((f"{pastas[k]} {tag}", began))
        plan = [
            (began + i * 0.4, channel, f"{tag}w{k}u{i}", pasta)
            for k, (pasta, began) in enumerate(waves)
            for i in range(8)
        ]
        start_s = first_boundary - window_s
        plan += [(start_s + (m.sent_ts - chatter[0].sent_ts) / 1000, channel, m.user_login, m.text) for m in chatter]
        plan.sort()

        def write() -> None:
            sink = ChatSink(config)
            for at, where, user, text in plan:
                time.sleep(max(0.0, at - time.time()))
                sink.offer(ChatMessage(channel=where, user_login=user, text=text, sent_ts=int(time.time() * 1000)))
            sink.close(timeout_s=30)

        writer = threading.Thread(target=write, name="test-live-chat", daemon=True)
        writer.start()

        def closed() -> set[str]:
            return {r.text for r in event_records(config) if r.state == "closed"} & {p for p, _ in waves}

        wait_for(lambda: len(closed()) == len(waves), plan[-1][0] - time.time() + 60, "every wave closed")
        records = event_records(config)
        for pasta, _ in waves:
            mine = [r for r in records if r.text == pasta]
            assert [r.state for r in mine][-1] == "closed", pasta
            opened = [r for r in mine if r.state == "open"]
            assert opened, f"never reported while it went on: {pasta}"
            assert max(r.message_count for r in mine if r.state == "closed") >= 5
        writer.join(timeout=30)
    finally:
        stop_between_batches(query, batches)
        batches.close()
