"""Detector quality on real chat: the streaming job's events against a brute-force oracle (all pairs per
channel-window by exact Jaccard, same threshold and thresholds)."""

from __future__ import annotations

import pytest

from ingest.captures import Capture
from jobs.detection import Settings
from jobs.evaluation import emote_truth, oracle_cells, score, tagged_emote_words
from tests.detector_harness import WORLD_EMOTES, flush_message, fresh_config, produce, run, spam_records

CAPTURES = [
    "admiralbulldog_irc/chat_admiralbulldog_4_30.log",
    "nymn_recentmessages/recentmessages-nymn.json",
    "multichannel_2017_clanghout/data.csv",
]


@pytest.mark.slow
def test_events_agree_with_the_brute_force_oracle_on_real_captures(platform, spark, shared_data, tmp_path):
    messages = sorted((m for path in CAPTURES for m in Capture(shared_data / path)), key=lambda m: m.sent_ts)
    config = fresh_config(platform)
    produce(config, messages + [flush_message(messages[-1].sent_ts)])
    run(spark, config, tmp_path / "checkpoint")
    events, topics = spam_records(config)
    settings = Settings()
    cells = oracle_cells(messages, settings)
    rows = [
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
    # an emote wave is true when the window holds it: emotes by the captures' Twitch tags and the sets served
    truth = emote_truth(messages, settings, lambda m: tagged_emote_words(m, frozenset(WORLD_EMOTES)))
    result = score(rows, cells, settings, emotes=truth)
    print("oracle agreement:", result.as_dict())
    assert len(cells) > 100  # the captures are spam-rich (SOURCES.md: 24 % of admiralbulldog's chat)
    assert result.precision >= 0.95 and result.recall >= 0.95, result.as_dict()
    assert {e.channel for e in events} >= {"admiralbulldog", "nymn"}
