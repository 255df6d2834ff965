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


def _feed(detector: ChannelDetector, messages, coefficients) -> list[dict]:
    rows = []
    for m in messages:
        norm = normalise(m.text)
        grams = shingles(norm)
        signature = HASHER.signature(grams, coefficients) if len(grams) >= SETTINGS.min_shingles else None
        detector.add(m.sent_ts, m.user_login, m.text, norm, signature, SETTINGS)
        rows += detector.take()
    return rows


def test_a_detector_packed_as_msgpack_between_any_two_messages_emits_what_an_unbroken_one_does():
    generator = Generator(SynthSettings(rate=50, seconds=60, channels=1, seed=5, prefix="ks", spam_share=0.4))
    messages = list(generator)
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
