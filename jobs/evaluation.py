"""How good are spam events? Ground truth from synthetic labels or a brute-force oracle, scored per channel-window.

The unit of truth is a *cell*: one spam text in one channel and one window that reaches the detector's thresholds
(so a burst split across two windows counts in each window where it is big enough). An event matches a cell in
the same channel and window whose text is similar (normalised Jaccard >= the detector's threshold, or equal).

- `labelled_cells`: cells from the synthetic generator's labels (which message belongs to which burst).
- `oracle_cells`: every pair of distinct normalised texts in each channel-window compared by exact Jaccard, joined
  by union-find: what MinHash LSH approximates, computed the slow way.
- `exact_baseline`: the original system's algorithm: identical raw text in a channel-window, count > 1.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

from jobs.detection import Settings, UnionFind
from twitchcrement.records import ChatMessage
from twitchcrement.textsim import jaccard, normalise, shingles


@dataclass
class Cell:
    channel: str
    window_start: int
    norm: str
    count: int
    users: int
    tag: str = ""  # e.g. the evasion of a synthetic burst
    matched: bool = False


@dataclass
class Score:
    precision: float
    recall: float
    events: int
    cells: int
    recall_by_tag: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "events": self.events,
                "cells": self.cells, "recall_by_tag": {k: round(v, 4) for k, v in self.recall_by_tag.items()}}


def _qualifies(count: int, users: collections.Counter, settings: Settings) -> bool:
    crowd = count >= settings.min_messages and len(users) >= settings.min_users
    flood = users and users.most_common(1)[0][1] >= settings.flood_min_messages and len(users) < settings.min_users
    return bool(crowd or flood)


def labelled_cells(messages: Iterable[ChatMessage], bursts: Iterable[dict[str, Any]], settings: Settings,
                   min_messages_in_window: int | None = None) -> list[Cell]:
    """Cells of the synthetic bursts that are big enough in their channel-window to be called spam.

    Only a burst's messages that are still near-duplicates of its text count (normalised Jaccard at the
    detector's threshold): an evasion can change a short text into a different one (`KEKW` -> `KEKW Pog`), and
    that message is then no longer the same spam, for any detector."""
    by_id = {m.message_id: m for m in messages}
    cells: list[Cell] = []
    for burst in bursts:
        base = normalise(burst["base_text"])
        groups: dict[tuple[str, int], list[ChatMessage]] = collections.defaultdict(list)
        for message_id in burst["message_ids"]:
            message = by_id[message_id]
            if not _similar(normalise(message.text), base, settings.jaccard):
                continue
            groups[(message.channel, message.sent_ts - message.sent_ts % settings.window_ms)].append(message)
        for (channel, start), members in groups.items():
            users = collections.Counter(m.user_login for m in members)
            if _qualifies(len(members), users, settings) and len(members) >= (min_messages_in_window or 0):
                cells.append(Cell(channel, start, normalise(burst["base_text"]), len(members), len(users),
                                  burst["evasion"]))
    return cells


def oracle_cells(messages: Iterable[ChatMessage], settings: Settings) -> list[Cell]:
    """Brute force: all pairs of distinct normalised texts per channel-window, exact Jaccard, union-find."""
    windows: dict[tuple[str, int], list[ChatMessage]] = collections.defaultdict(list)
    for message in messages:
        windows[(message.channel, message.sent_ts - message.sent_ts % settings.window_ms)].append(message)
    cells = []
    for (channel, start), members in windows.items():
        by_norm: dict[str, list[ChatMessage]] = collections.defaultdict(list)
        for message in members:
            by_norm[normalise(message.text)].append(message)
        norms = list(by_norm)
        sets = [frozenset(shingles(n, settings.shingle_size)) for n in norms]
        found = UnionFind(len(norms))
        for a, b in itertools.combinations(range(len(norms)), 2):
            if len(sets[a]) >= settings.min_shingles and len(sets[b]) >= settings.min_shingles and \
                    jaccard(sets[a], sets[b]) >= settings.jaccard:
                found.union(a, b)
        clusters: dict[int, list[int]] = collections.defaultdict(list)
        for i in range(len(norms)):
            clusters[found.find(i)].append(i)
        for indices in clusters.values():
            group = [m for i in indices for m in by_norm[norms[i]]]
            users = collections.Counter(m.user_login for m in group)
            if _qualifies(len(group), users, settings):
                lead = max(indices, key=lambda i: (len(by_norm[norms[i]]), norms[i]))
                cells.append(Cell(channel, start, norms[lead], len(group), len(users)))
    return cells


def exact_baseline(messages: Iterable[ChatMessage], settings: Settings) -> list[dict[str, Any]]:
    """The original system: identical raw text per channel per window, more than once."""
    counts: collections.Counter = collections.Counter(
        (m.channel, m.sent_ts - m.sent_ts % settings.window_ms, m.text) for m in messages)
    return [{"channel": c, "window_start": w, "text": t, "message_count": n}
            for (c, w, t), n in counts.items() if n > 1]


def _similar(a: str, b: str, threshold: float) -> bool:
    return a == b or jaccard(set(shingles(a)), set(shingles(b))) >= threshold


def score(events: Iterable[dict[str, Any]], cells: list[Cell], settings: Settings,
          min_event_messages: int = 1) -> Score:
    """Precision over events, recall over cells; an event may match several cells and the other way round."""
    by_window: dict[tuple[str, int], list[Cell]] = collections.defaultdict(list)
    for cell in cells:
        cell.matched = False
        by_window[(cell.channel, cell.window_start)].append(cell)
    events = [e for e in events if e.get("message_count", min_event_messages) >= min_event_messages]
    correct = 0
    for event in events:
        norm = normalise(event["text"])
        hits = [c for c in by_window.get((event["channel"], event["window_start"]), [])
                if _similar(norm, c.norm, settings.jaccard)]
        for cell in hits:
            cell.matched = True
        correct += bool(hits)
    tags = sorted({c.tag for c in cells})
    by_tag = {tag: sum(c.matched for c in cells if c.tag == tag) / max(1, sum(c.tag == tag for c in cells))
              for tag in tags}
    return Score(precision=correct / len(events) if events else 1.0,
                 recall=sum(c.matched for c in cells) / len(cells) if cells else 1.0,
                 events=len(events), cells=len(cells), recall_by_tag=by_tag)
