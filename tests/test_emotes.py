"""Emote knowledge (twitchcrement.emotes): the providers' sets through the local stand-in of their APIs, the cache,
Cache-Control and outages; the emotes tag by code point; emote waves in the detector against the generator's labels
and against a capture's own Twitch tags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ingest.captures import Capture
from ingest.synth import EMOTES, TWITCH_EMOTES, Generator, SynthSettings
from jobs.detection import ChannelDetector, Settings
from jobs.evaluation import emote_truth, labelled_cells, score, tagged_emote_words
from services.emote_providers import EmoteProviders
from tests.detector_harness import DEFAULT_HASHER, WORLD_EMOTES
from twitchcrement.emotes import EmoteSets, emote_codes, image_url, tag_words, wave_emotes
from twitchcrement.records import ChatMessage
from twitchcrement.textsim import normalise, shingles

ROOM = "1001"  # a channel every provider has a set for
SETS = {
    "bttv": {
        "": {"monkaS": "56e9f494fff3cc5c35e5287e"},
        ROOM: {"PepeHands": "59f27b3f4ebd8047f54dee29", "catJAM": "5f1b0186cf6d2144653d2970"},
    },
    "ffz": {"": {"CatBag": "25927"}, ROOM: {"KEKW": "381875"}},
    "7tv": {"": {"EZ": "60ae7316f7c927fad14e6ca2"}, ROOM: {"Sadge": "61630205c1ff9a17cc396522"}},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stand_in():
    providers = EmoteProviders({p: {k: dict(v) for k, v in s.items()} for p, s in SETS.items()})
    yield providers
    providers.close()


def test_each_provider_s_global_and_channel_sets_are_read_in_its_own_shape(stand_in, tmp_path):
    sets = EmoteSets(stand_in.urls(), tmp_path)
    assert sets.refresh() == 3  # the three global sets
    sets.watch("forsen", ROOM)
    sets.watch("quiet", "404")  # no provider knows it: normal, not a failure
    assert sets.refresh() == 6
    expected = {
        "monkaS": "bttv-56e9f494fff3cc5c35e5287e",
        "PepeHands": "bttv-59f27b3f4ebd8047f54dee29",  # BTTV's channelEmotes
        "catJAM": "bttv-5f1b0186cf6d2144653d2970",  # and its sharedEmotes
        "CatBag": "ffz-25927",  # FFZ's default set only: not the set given to some users
        "KEKW": "ffz-381875",
        "EZ": "7tv-60ae7316f7c927fad14e6ca2",
        "Sadge": "7tv-61630205c1ff9a17cc396522",
    }
    assert sets.codes("forsen") == expected
    assert sets.codes("quiet") == {c: i for c, i in expected.items() if c in {"monkaS", "CatBag", "EZ"}}
    assert all(s["failures"] == 0 for s in sets.summary().values())
    assert sets.summary()["7tv"] == {
        "sets": 3.0,
        "emotes": 2.0,
        "last_refresh": sets.summary()["7tv"]["last_refresh"],
        "failures": 0.0,
    }
    assert image_url("7tv-61630205c1ff9a17cc396522") == "https://cdn.7tv.app/emote/61630205c1ff9a17cc396522/1x.webp"
    assert image_url("25") == "https://static-cdn.jtvnw.net/emoticons/v2/25/default/dark/1.0"


def test_a_set_is_fetched_again_after_refresh_s_or_the_answer_s_max_age_whichever_is_longer(stand_in, tmp_path):
    clock = Clock()
    stand_in.max_age_s = 7200  # the provider asks for two hours
    sets = EmoteSets(stand_in.urls(), tmp_path, refresh_s=3600, clock=clock)
    assert sets.refresh() == 3
    clock.now += 3700
    assert sets.refresh() == 0
    clock.now += 3600
    stand_in.sets["bttv"][""]["FeelsDankMan"] = "63c9080bec685e58d1727476"  # the global set changed meanwhile
    assert sets.refresh() == 3
    assert "FeelsDankMan" in sets.codes("anyone")


def test_an_unreachable_provider_means_the_last_cache_and_one_warning(stand_in, tmp_path, caplog):
    clock = Clock()
    stand_in.max_age_s = 0
    first = EmoteSets(stand_in.urls(), tmp_path, refresh_s=60, retry_s=30, clock=clock)
    first.watch("forsen", ROOM)
    first.refresh()
    known = first.codes("forsen")
    assert len(known) == 7
    stand_in.down = True
    later = EmoteSets(stand_in.urls(), tmp_path, refresh_s=60, retry_s=30, clock=clock)  # a restart: the cache
    assert later.codes("forsen") == known
    later.watch("forsen", ROOM)
    with caplog.at_level(logging.WARNING, logger="twitchcrement.emotes"):
        for _ in range(3):
            clock.now += 120
            later.refresh()
    assert later.codes("forsen") == known
    warnings = [r for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(warnings) == 3, "one warning per provider, not one per failed fetch"
    assert all(s["failures"] >= 3 for s in later.summary().values())
    stand_in.down = False
    clock.now += 120
    assert later.refresh() == 6


def test_a_broken_cache_file_is_skipped_with_a_warning(tmp_path, caplog):
    (tmp_path / "bttv").mkdir()
    (tmp_path / "bttv" / "_global.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="twitchcrement.emotes"):
        sets = EmoteSets({"bttv": "http://127.0.0.1:9/bttv"}, tmp_path)
    assert sets.codes("x") == {}
    assert any("_global.json" in r.getMessage() for r in caplog.records)


def test_the_emotes_tag_counts_code_points():
    # Twitch's documented example (dev.twitch.tv, IRC tags: emotes) ...
    assert tag_words("Kappa Keepo Kappa", {"Kappa": "25", "Keepo": "1902"}) == "25:0-4,12-16/1902:6-10"
    # ... and positions are code points: an emoji outside the BMP (two UTF-16 units) and one with a skin tone
    # (two code points) before the emotes move them by one and two
    text = "\U0001f600 Kappa \U0001f44d\U0001f3fd KEKW"
    assert tag_words(text, {"Kappa": "25", "KEKW": "ffz-381875"}) == "25:2-6/ffz-381875:11-14"
    assert emote_codes(text, "25:2-6", "ffz-381875:11-14") == (["Kappa", "KEKW"], 0.5)
    assert wave_emotes(text, "25:2-6", "ffz-381875:11-14") == "Kappa KEKW"
    assert wave_emotes("lol KEKW what", "", "ffz-381875:4-7") == ""  # a third emotes: ordinary chat
    assert wave_emotes("KEKWW", "", "") == ""


def test_the_generator_tags_twitch_emotes_and_leaves_the_others_as_words():
    messages = list(Generator(SynthSettings(rate=200, seconds=5, channels=3, seed=5)))
    tagged = 0
    for message in messages:
        flags = tagged_emote_words(message)
        assert flags == [w in TWITCH_EMOTES for w in message.text.split()], message
        tagged += any(flags)
    assert tagged > 50


def _detect(messages: list[ChatMessage], marks) -> list[dict]:
    settings, detectors, rows = Settings(), {}, []
    for m in messages:
        norm = normalise(m.text)
        grams = shingles(norm)
        signature = DEFAULT_HASHER.signature(grams, DEFAULT_HASHER.coefficients) if len(grams) >= 5 else None
        detector = detectors.setdefault(m.channel, ChannelDetector(m.channel))
        detector.add(m.sent_ts, m.user_login, m.text, norm, signature, settings, marks(m))
        rows.extend(detector.take())
    for detector in detectors.values():
        rows.extend(detector.finish(settings))
    return [r for r in rows if r["kind"] == "event" and r["state"] == "closed"]


def test_emote_waves_of_mixed_emotes_are_found_as_the_labels_say():
    generator = Generator(SynthSettings(rate=300, seconds=120, channels=10, seed=21))
    messages = list(generator)
    settings = Settings()
    events = _detect(messages, lambda m: wave_emotes(m.text, m.emotes, tag_words(m.text, WORLD_EMOTES)))
    cells = labelled_cells(messages, [b.label() for b in generator.bursts], settings)
    mixed = [c for c in cells if "emotes" in c.tags and any(len(set(t.split())) > 1 for t in c.texts)]
    assert len(mixed) >= 5
    truth = emote_truth(messages, settings, lambda m: [w in EMOTES for w in m.text.split()])  # the vocabulary
    result = score(events, cells, settings, emotes=truth)
    assert result.recall_by_tag["emotes"] >= 0.95 and result.precision >= 0.95, result.as_dict()
    waves = [e for e in events if e["event_kind"] == "emote_wave"]
    assert waves and all(set(e["text"].split()) <= set(EMOTES) for e in waves)
    # without emote knowledge the same detector misses them (what the issue measured)
    blind = score(_detect(messages, lambda m: ""), cells, settings)
    assert blind.recall_by_tag["emotes"] < result.recall_by_tag["emotes"]


def test_ordinary_short_chat_of_a_real_capture_is_not_an_emote_wave(shared_data: Path):
    messages = list(Capture(shared_data / "nymn_recentmessages/recentmessages-nymn.json"))
    settings = Settings()
    events = _detect(messages, lambda m: wave_emotes(m.text, m.emotes))  # Twitch's own tags: no set offline
    truth = emote_truth(messages, settings, tagged_emote_words)
    waves = [e for e in events if e["event_kind"] == "emote_wave"]
    assert truth and waves
    tagged = {w for m in messages for w, f in zip(m.text.split(), tagged_emote_words(m), strict=True) if f}
    for event in waves:
        assert set(event["text"].split()) <= tagged, event["text"]
        assert score([event], [], settings, emotes=truth).precision == 1.0, event
