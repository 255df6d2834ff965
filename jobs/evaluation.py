"""How good are spam events? Ground truth from synthetic labels or a brute-force oracle, scored per channel-window.

The unit of truth is a *cell*: one spam wave in one channel and one window that reaches the detector's thresholds
(so a burst split across two windows counts in each window where it is big enough), with the texts of its
messages. A wave also counts its messages of the window before that are in no cell there, those sent less than a
window before its first message in this one (`carried`): a wave split 4/4 by a window boundary is one cell, of the
later window. An event matches a cell in the same channel and window when one of the event's texts (its
representative and its top variants, as written) is one of the cell's: membership, not a similarity measure; an
emote wave also matches the labelled wave of one of its emotes (the generator's label names the emote).

- `labelled_cells`: cells from the synthetic generator's labels: every message it put in a wave, whatever its
  evasion did to the text (nothing is filtered by any similarity, the detector's or another).
- `oracle_cells`: every pair of distinct normalised texts in each channel-window compared by exact Jaccard, joined
  by union-find: what MinHash LSH approximates, computed the slow way.
- `exact_baseline`: the original system's algorithm: identical raw text in a channel-window, count > 1.
- `emote_truth`: per channel-window, the messages that are mostly emotes and their emotes, from a truth of which
  words are emotes given by the caller (the generator's vocabulary; a capture's Twitch tags): an emote wave event
  is right when the window really holds that many such messages, from that many users, with its emotes (even
  where no labelled wave is, as in ordinary chat that is all emotes).
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jobs.detection import Settings, UnionFind
from twitchcrement.records import ChatMessage
from twitchcrement.textsim import jaccard, normalise, shingles


@dataclass
class Cell:
    channel: str
    window_start: int
    count: int
    users: int
    tags: frozenset[str] = frozenset()  # e.g. the evasions of the synthetic bursts in it
    texts: frozenset[str] = frozenset()  # the texts of its messages, as written
    emotes: frozenset[str] = frozenset()  # for a labelled emote wave: the emote it is a wave of
    matched: bool = False


@dataclass
class Score:
    precision: float
    recall: float
    events: int
    cells: int
    recall_by_tag: dict[str, float] = field(default_factory=dict)
    precision_by_tag: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "events": self.events,
            "cells": self.cells,
            "recall_by_tag": {k: round(v, 4) for k, v in self.recall_by_tag.items()},
            "precision_by_tag": {k: round(v, 4) for k, v in self.precision_by_tag.items()},
        }


def _qualifies(count: int, users: collections.Counter, settings: Settings) -> bool:
    crowd = count >= settings.min_messages and len(users) >= settings.min_users
    flood = users and users.most_common(1)[0][1] >= settings.flood_min_messages and len(users) < settings.min_users
    return bool(crowd or flood)


def labelled_cells(
    messages: Iterable[ChatMessage],
    bursts: Iterable[dict[str, Any]],
    settings: Settings,
    min_messages_in_window: int | None = None,
) -> list[Cell]:
    """Cells of the synthetic bursts that are big enough in their channel-window to be called spam: all the
    messages the generator put in them. Bursts of the same base text in the same channel-window are one wave
    there (one cell, with each burst's evasion among its tags): nobody could tell them apart."""
    by_id = {m.message_id: m for m in messages}
    groups: dict[tuple[str, int, str], list[ChatMessage]] = collections.defaultdict(list)
    tags: dict[tuple[str, int, str], set[str]] = collections.defaultdict(set)
    emotes: dict[tuple[str, int, str], frozenset[str]] = {}
    for burst in bursts:
        for message_id in burst["message_ids"]:
            message = by_id[message_id]
            key = (message.channel, message.sent_ts - message.sent_ts % settings.window_ms, burst["base_text"])
            groups[key].append(message)
            tags[key].add(burst["evasion"])
            if burst["kind"] == "emote_wave":
                emotes[key] = frozenset(burst["base_text"].split())
    alone = {key for key, members in groups.items() if _qualifies_group(members, settings)}
    cells: list[Cell] = []
    for (channel, start, base_text), members in groups.items():
        before = (channel, start - settings.window_ms, base_text)
        group = members + (
            carried(groups[before], members, settings) if before in groups and before not in alone else []
        )
        users = collections.Counter(m.user_login for m in group)
        if _qualifies(len(group), users, settings) and len(group) >= (min_messages_in_window or 0):
            cells.append(
                Cell(
                    channel,
                    start,
                    len(group),
                    len(users),
                    frozenset(tags[channel, start, base_text]),
                    frozenset(m.text for m in group),
                    emotes.get((channel, start, base_text), frozenset()),
                )
            )
    return cells


def _qualifies_group(messages: list[ChatMessage], settings: Settings) -> bool:
    return _qualifies(len(messages), collections.Counter(m.user_login for m in messages), settings)


def carried(before: list[ChatMessage], wave: list[ChatMessage], settings: Settings) -> list[ChatMessage]:
    """The messages of the window before that count with a wave: sent less than a window before its first."""
    began = min(m.sent_ts for m in wave)
    return [m for m in before if m.sent_ts > began - settings.window_ms]


def oracle_cells(messages: Iterable[ChatMessage], settings: Settings) -> list[Cell]:
    """Brute force: all pairs of distinct normalised texts per channel-window (with the texts of the window before
    that are in no cell there), exact Jaccard, union-find."""
    windows: dict[tuple[str, int], list[ChatMessage]] = collections.defaultdict(list)
    for message in messages:
        windows[(message.channel, message.sent_ts - message.sent_ts % settings.window_ms)].append(message)
    cells = []
    leftover: dict[tuple[str, int], dict[str, list[ChatMessage]]] = {}  # window -> its texts in no cell
    for channel, start in sorted(windows):
        members = windows[channel, start]
        by_norm: dict[str, list[ChatMessage]] = collections.defaultdict(list)
        for message in members:
            by_norm[normalise(message.text)].append(message)
        own = set(by_norm)
        before = leftover.get((channel, start - settings.window_ms), {})
        norms = [*by_norm, *(n for n in before if n not in own)]
        sets = [frozenset(shingles(n, settings.shingle_size)) for n in norms]
        found = UnionFind(len(norms))
        for a, b in itertools.combinations(range(len(norms)), 2):
            if (
                len(sets[a]) >= settings.min_shingles
                and len(sets[b]) >= settings.min_shingles
                and jaccard(sets[a], sets[b]) >= settings.jaccard
            ):
                found.union(a, b)
        clusters: dict[int, list[int]] = collections.defaultdict(list)
        for i in range(len(norms)):
            clusters[found.find(i)].append(i)
        used: set[str] = set()
        for indices in clusters.values():
            wave = [m for i in indices for m in by_norm.get(norms[i], [])]
            if not wave:
                continue  # only texts of the window before
            group = wave + carried([m for i in indices for m in before.get(norms[i], [])], wave, settings)
            users = collections.Counter(m.user_login for m in group)
            if _qualifies(len(group), users, settings):
                cells.append(Cell(channel, start, len(group), len(users), texts=frozenset(m.text for m in group)))
                used.update(norms[i] for i in indices)
        leftover[channel, start] = {n: ms for n, ms in by_norm.items() if n not in used}
    return cells


EmoteTruth = dict[tuple[str, int], list[tuple[str, frozenset[str]]]]


def emote_truth(
    messages: Iterable[ChatMessage], settings: Settings, emote_words: Callable[[ChatMessage], list[bool]]
) -> EmoteTruth:
    """(channel, window start) -> (user, emotes) of each message of the window at least half of whose words are
    emotes; emote_words(message) says of each word of message.text.split() whether it is an emote."""
    truth: EmoteTruth = collections.defaultdict(list)
    for message in messages:
        words = message.text.split()
        flags = emote_words(message)
        if words and 2 * sum(flags) >= len(words):
            window = message.sent_ts - message.sent_ts % settings.window_ms
            codes = frozenset(w for w, is_emote in zip(words, flags, strict=True) if is_emote)
            truth[message.channel, window].append((message.user_login, codes))
    return truth


def tagged_emote_words(message: ChatMessage, known: frozenset[str] = frozenset()) -> list[bool]:
    """Which words of a message Twitch's `emotes` tag marks as emotes (its documented form: id, ':', then
    comma-separated inclusive first-last code-point ranges; ids joined by '/'), read here on its own; and the words
    that are `known` emotes (the third-party sets a run served)."""
    ranges = set()
    for part in filter(None, message.emotes.split("/")):
        for span in part.partition(":")[2].split(","):
            first, _, last = span.partition("-")
            if first.isdigit() and last.isdigit():
                ranges.add((int(first), int(last) + 1))
    flags, at = [], 0
    for word in message.text.split():
        start = message.text.index(word, at)
        at = start + len(word)
        flags.append((start, at) in ranges or word in known)
    return flags


def _kind(event: dict[str, Any]) -> str:
    """An event's kind: `event_kind` in the detector's own rows, `kind` in the records on Kafka."""
    return str(event.get("event_kind") or event.get("kind"))


def _confirmed_wave(event: dict[str, Any], truth: EmoteTruth, settings: Settings) -> bool:
    codes = set(event["text"].split())
    holding = [u for u, emotes in truth.get((event["channel"], event["window_start"]), []) if emotes & codes]
    count, users = len(holding), len(set(holding))
    return count >= max(event.get("message_count", 0), settings.min_messages) and users >= max(
        event.get("distinct_users", 0), settings.min_users
    )


def exact_baseline(messages: Iterable[ChatMessage], settings: Settings) -> list[dict[str, Any]]:
    """The original system: identical raw text per channel per window, more than once."""
    counts: collections.Counter = collections.Counter(
        (m.channel, m.sent_ts - m.sent_ts % settings.window_ms, m.text) for m in messages
    )
    return [
        {"channel": c, "window_start": w, "text": t, "message_count": n} for (c, w, t), n in counts.items() if n > 1
    ]


def event_texts(event: dict[str, Any]) -> set[str]:
    """The texts an event shows, as written: its representative and its top variants."""
    variants = event.get("top_variants") or ()  # [text, count] on Kafka, {"text", "count"} from the driver
    return {event["text"], *(v["text"] if isinstance(v, dict) else v[0] for v in variants)}


def score(
    events: Iterable[dict[str, Any]],
    cells: list[Cell],
    settings: Settings,
    min_event_messages: int = 1,
    emotes: EmoteTruth | None = None,
) -> Score:
    """Precision over events, recall over cells; an event may match several cells and the other way round. Per
    tag: recall over the cells with that tag; precision over the events that match a cell with that tag plus the
    events that match no cell but show a text of one (a false alarm raised by that evasion's texts). An emote
    wave that matches no cell is right when the emote truth confirms it (see emote_truth)."""
    by_window: dict[tuple[str, int], list[Cell]] = collections.defaultdict(list)
    tags_of_text: dict[str, set[str]] = collections.defaultdict(set)
    for cell in cells:
        cell.matched = False
        by_window[(cell.channel, cell.window_start)].append(cell)
        for text in cell.texts:
            tags_of_text[text].update(cell.tags)
    events = [e for e in events if e.get("message_count", min_event_messages) >= min_event_messages]
    correct = 0
    right: collections.Counter[str] = collections.Counter()
    wrong: collections.Counter[str] = collections.Counter()
    for event in events:
        texts = event_texts(event)
        # an emote wave is the labelled wave of its emote, whichever of the window's messages it shows
        wave = _kind(event) == "emote_wave"
        waving = set(event["text"].split()) if wave else set()
        window = by_window.get((event["channel"], event["window_start"]), [])
        hits = [c for c in window if texts & c.texts or waving & c.emotes]
        for cell in hits:
            cell.matched = True
        if not hits and emotes is not None and wave:
            correct += _confirmed_wave(event, emotes, settings)
            continue
        correct += bool(hits)
        if hits:
            right.update(set().union(*(c.tags for c in hits)))
        else:
            wrong.update(set().union(*(tags_of_text.get(t, set()) for t in texts)))
    tags = sorted(set().union(*(c.tags for c in cells)))
    recall_by_tag = {
        tag: sum(c.matched for c in cells if tag in c.tags) / sum(tag in c.tags for c in cells) for tag in tags
    }
    return Score(
        precision=correct / len(events) if events else 1.0,
        recall=sum(c.matched for c in cells) / len(cells) if cells else 1.0,
        events=len(events),
        cells=len(cells),
        recall_by_tag=recall_by_tag,
        precision_by_tag={tag: right[tag] / (right[tag] + wrong[tag]) for tag in tags if right[tag] + wrong[tag]},
    )
