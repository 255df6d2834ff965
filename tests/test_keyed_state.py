"""The detector's state (jobs.keyed): each channel's detector as msgpack data, and the shape check."""

from __future__ import annotations

import msgpack
import pytest

from ingest.synth import Generator, SynthSettings
from jobs.detection import ChannelDetector, Settings
from jobs.keyed import shape_problem, state_shape
from jobs.pipeline import DetectorSettings
from tests.conftest import test_config
from twitchcrement.textsim import MinHasher, normalise, shingles

HASHER = MinHasher(1 << 20, 32, 20240106, 3)
SETTINGS = Settings()


def _feed(detector: ChannelDetector, messages, coefficients, report_every: int = 1) -> list[dict]:
    """Every message into the detector; its open waves reported every `report_every` messages (0: never), as if
    each such stretch were one micro-batch."""
    rows = []
    for i, m in enumerate(messages, start=1):
        norm = normalise(m.text)
        grams = shingles(norm)
        signature = HASHER.signature(grams, coefficients) if len(grams) >= SETTINGS.min_shingles else None
        detector.add(m.sent_ts, m.user_login, m.text, norm, signature, SETTINGS)
        rows += detector.take()
        if report_every and i % report_every == 0:
            rows += detector.report_open(SETTINGS)
    return rows


def _messages():
    generator = Generator(SynthSettings(rate=50, seconds=60, channels=1, seed=5, prefix="ks", spam_share=0.4))
    return list(generator)


def test_open_reports_grow_with_the_wave_and_the_closed_events_do_not_depend_on_them():
    messages = _messages()
    coefficients = HASHER.coefficients

    def closed(rows: list[dict]) -> list[tuple]:
        return [(r["event_id"], r["message_count"], r["distinct_users"]) for r in rows if r.get("state") == "closed"]

    quiet = ChannelDetector(messages[0].channel)
    expected = closed(_feed(quiet, messages, coefficients, report_every=0) + quiet.finish(SETTINGS))
    assert expected, "the generator's spam must make events"
    for every in (1, 7, 50):
        detector = ChannelDetector(messages[0].channel)
        rows = _feed(detector, messages, coefficients, report_every=every) + detector.finish(SETTINGS)
        assert closed(rows) == expected, every
        opened = [r for r in rows if r.get("state") == "open"]
        assert opened, every
        by_id: dict[str, list[dict]] = {}
        for r in rows:
            if r["kind"] == "event":
                by_id.setdefault(r["event_id"], []).append(r)
        for event_id, records in by_id.items():
            states = [r["state"] for r in records]
            # open while it grows (each report a bigger wave), then closed (or undone), nothing after
            assert states[-1] in ("closed", "undone") and "open" not in states[states.index(states[-1]) :], states
            counts = [r["message_count"] for r in records if r["state"] == "open"]
            assert counts == sorted(counts) and len(counts) <= len(messages) // every, (event_id, counts)
        # With the default settings a wave is undone only when it merged into another wave of its window (a
        # flooder's wave joined by a crowd's near copies): the closed one holds at least its messages.
        for undone in [r for r in rows if r.get("state") == "undone"]:
            same_window = [
                r for r in rows if r.get("state") == "closed" and r["window_start"] == undone["window_start"]
            ]
            assert any(r["message_count"] >= undone["message_count"] for r in same_window), undone


def test_a_detector_packed_as_msgpack_between_any_two_messages_emits_what_an_unbroken_one_does():
    messages = _messages()
    coefficients = HASHER.coefficients
    unbroken = ChannelDetector(messages[0].channel)
    expected = _feed(unbroken, messages, coefficients) + unbroken.finish(SETTINGS)
    assert [r for r in expected if r["kind"] == "event"], "the generator's spam must make events"
    for cut in (1, len(messages) // 3, len(messages) // 2, len(messages) - 1):
        first = ChannelDetector(messages[0].channel)
        rows = _feed(first, messages[:cut], coefficients)
        data = msgpack.unpackb(msgpack.packb(first.to_state(), use_bin_type=True), raw=False, strict_map_key=False)
        resumed = ChannelDetector.from_state(data)
        rows += _feed(resumed, messages[cut:], coefficients) + resumed.finish(SETTINGS)
        assert rows == expected, cut


def test_a_state_made_with_other_settings_is_refused_in_one_line_that_names_them():
    current = state_shape(DetectorSettings.from_config(test_config()))
    other = state_shape(DetectorSettings.from_config(test_config(TWITCHCREMENT_DETECTOR_WINDOW_S="5")))
    assert shape_problem(current, current) is None
    problem = shape_problem(other, current)
    assert problem is not None and "\n" not in problem
    assert "detector.window_s 5 -> 10" in problem
    assert "detector.shingle_size" not in problem


@pytest.mark.parametrize("setting", ["detector.rows_per_band", "detector.num_hash_tables", "detector.shingle_size"])
def test_each_setting_that_shapes_the_state_is_in_its_shape(setting):
    assert setting + "=" in state_shape(DetectorSettings.from_config(test_config()))
