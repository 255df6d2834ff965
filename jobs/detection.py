"""Spam detection for one channel, as pure Python: window buffers, clustering, spam events and spam topics.

The streaming job feeds each micro-batch's messages (already normalised and MinHashed by Spark ML) to one
`ChannelDetector` per channel, in Kafka offset order (jobs.keyed); each channel keeps its own event-time clock.
Everything a detector remembers is in `ChannelDetector` (to_state), kept in Spark's state store with every
micro-batch, so a restarted job resumes with the same open windows and active topics.

Per 10 s window, after each micro-batch that brought it chat (`report_open`: events in state open, while the wave
goes on) and once more when it closes (state closed, final):
1. exact duplicates of the normalised text were aggregated on arrival (count, users, first/last time, originals),
   so a wave of identical messages costs one entry;
2. texts with enough shingles are put in LSH buckets (bands of `rows_per_band` MinHash values); within a bucket each
   text is compared with the bucket's first and previous member by exact Jaccard on shingles (linear, not n^2);
   the texts of the window before that were in no event there (its remnant) take part, so that a wave cut by the
   window boundary counts whole (see `_events`);
3. union-find joins verified pairs into clusters; a cluster that reaches the thresholds is a spam event, named by
   its first text in the window (the same id while it grows); an event reported open that no longer holds when
   it is clustered again is sent as undone;
4. emote waves: of the texts that are mostly emotes (by each message's own tags, see twitchcrement.emotes) and
   in no other event, an emote held by enough messages from enough users is a wave even when no two of its
   messages are alike; emotes that come together are one wave, and an event of texts that are all its emotes is
   reported as part of it (see _emote_waves);
5. at close, an event continues an active topic of the channel when its text matches the topic's (same hash, or
   Jaccard over the threshold); topics quiet for `topic_quiet_ms` end and are evicted.
"""

from __future__ import annotations

import collections
import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twitchcrement.textsim import (
    HASH_PRIME,
    band_buckets,
    jaccard,
    message_hash,
    normalise,
    shingle_set,
    shingles,
    stable_id,
)

MAX_ORIGINALS = 20  # original spellings kept per normalised text (for the representative and the variant count)
TOP_USERS = 5
TOP_VARIANTS = 5  # the most frequent spellings an event carries, for the dashboard's "show variants"
# Each MinHash value of two texts is equal with probability their Jaccard similarity J, and a candidate pair shares
# a band (3 values) by definition: of the other 29 a pair at the threshold (J = 0.6) shares fewer than 9, for fewer
# than 12 of 32 in all, with probability 4e-4 (binomial), while a chance candidate at J = 0.2 does 89 times in 100
# (at a quarter, 8 of 32, only 28 times in 100: 98 % of the exact checks failed, and they were most of the
# detection's time). Such a pair skips the exact check; on the benchmark's labelled chat no cell changed.
PREFILTER_SHARE = 0.375
# And a pair sharing 28 of 32 values or more is joined without the exact check: at J = 0.5 that happens with
# probability 1e-5, at the threshold 7e-4, while most pairs of one wave (spellings of one text, J > 0.9) do. Most
# candidate pairs of a spam wave are such near-copies, and their exact checks were most of the detection's time.
SURE_SHARE = 0.875


@dataclass(frozen=True)
class Settings:
    window_ms: int = 10_000
    jaccard: float = 0.6
    rows_per_band: int = 3
    shingle_size: int = 3  # character n-grams (beside the tokens) that Jaccard compares
    min_shingles: int = 5
    min_messages: int = 5
    min_users: int = 3
    flood_min_messages: int = 5
    min_share: float = 0.0  # a cluster must also hold this share of its channel-window's messages
    max_bucket: int = 500
    topic_quiet_ms: int = 30_000
    watermark_ms: int = 3_000  # how late a message may be, behind its channel's newest, and still count
    channel_lag_ms: int = 15_000  # how long a channel, read to the end, may be silent before its windows close
    open_events: bool = True  # report waves while their windows are open (ChannelDetector.report_open)


@dataclass(slots=True)
class TextAgg:
    """One normalised text in one window: how often, by whom, when, in which spellings."""

    count: int = 0
    # user -> [messages, first ts, last ts]; plain dicts and lists: they pickle several times faster than objects
    users: dict[str, list[int]] = field(default_factory=dict)
    first_ts: int = 0
    last_ts: int = 0
    originals: dict[str, int] = field(default_factory=dict)
    signature: bytes | None = None  # the MinHash values as int32 bytes (cheap to pickle); None: too short for LSH
    # Of its messages, those that are mostly emotes by their own tags (a sender may have an emote that another
    # typing the same words has not): per set of emotes ("EDM forsenParty", sorted), how many each user sent.
    emotes: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, user: str, ts: int, original: str, signature: bytes | None, emotes: str = "") -> None:
        if self.count == 0:
            self.first_ts = self.last_ts = ts
            self.signature = signature
        if emotes:
            senders = self.emotes.setdefault(" ".join(sorted(set(emotes.split()))), {})
            senders[user] = senders.get(user, 0) + 1
        self.count += 1
        seen = self.users.get(user)
        if seen is None:
            self.users[user] = [1, ts, ts]
        else:
            seen[0] += 1
            seen[1], seen[2] = min(seen[1], ts), max(seen[2], ts)
        self.first_ts, self.last_ts = min(self.first_ts, ts), max(self.last_ts, ts)
        if original in self.originals or len(self.originals) < MAX_ORIGINALS:
            self.originals[original] = self.originals.get(original, 0) + 1


def _texts_state(texts: dict[str, TextAgg]) -> list[list[Any]]:
    return [[n, a.count, a.users, a.first_ts, a.last_ts, a.originals, a.signature, a.emotes] for n, a in texts.items()]


def _used_state(window: Window) -> list[Any] | None:
    """Window.used as data: the message count, and the texts by their place in the window's texts."""
    if window.used is None:
        return None
    at, used = window.used
    return [at, [i for i, norm in enumerate(window.texts) if norm in used]]


def _texts_from_state(rows: list[list[Any]]) -> dict[str, TextAgg]:
    return {norm: TextAgg(*fields) for norm, *fields in rows}  # a version-2 row has no emotes: ""


def merged_users(per_text: Any) -> list[tuple[str, int, int, int]]:
    """Every user of a cluster's texts as (login, messages, first ts, last ts), most messages first (then login)."""
    merged: dict[str, list[int]] = {}
    for users in per_text:
        for user, (count, first, last) in users.items():
            seen = merged.get(user)
            if seen is None:
                merged[user] = [count, first, last]
            else:
                seen[0] += count
                seen[1], seen[2] = min(seen[1], first), max(seen[2], last)
    return sorted(((u, c, f, la) for u, (c, f, la) in merged.items()), key=lambda u: (-u[1], u[0]))


@dataclass
class Topic:
    topic_id: str
    norm: str
    message_hash: str
    text: str
    first_seen: int
    last_seen: int
    windows_active: int = 0
    total_messages: int = 0
    peak_rate: float = 0.0


class UnionFind:
    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def packed_signature(signature: Any) -> bytes | None:
    """MinHash values (list or array) as big-endian int32 bytes, the form the streaming job packs them in (see
    jobs.pipeline.features): all are below HASH_PRIME < 2**31."""
    if signature is None or isinstance(signature, bytes):
        return signature
    return np.asarray(signature, dtype=">i4").tobytes()


def signature_array(signature: bytes | Any) -> np.ndarray:
    return np.frombuffer(signature, dtype=">i4") if isinstance(signature, bytes) else np.asarray(signature)


def _band_keys(signatures: np.ndarray, band: int, rows_per_band: int) -> np.ndarray:
    """One bucket key per text for one band; unsigned wrap-around keeps it a 64-bit hash (a rare collision only
    adds a candidate pair, which Jaccard then checks)."""
    columns = signatures[:, band * rows_per_band : (band + 1) * rows_per_band].astype(np.uint64)
    key = columns[:, 0].copy()
    for j in range(1, rows_per_band):
        key = key * np.uint64(HASH_PRIME) + columns[:, j]
    return key


# An open window is clustered again after each micro-batch that brings it chat, and most of its candidate pairs
# were checked the time before: their verdicts (pure functions of the two texts) are remembered, per Python worker
# process, for as many pairs and texts as these bounds allow (about 40 MB at most).
PAIR_VERDICTS = 200_000
SHINGLE_SETS = 5_000


@functools.lru_cache(maxsize=SHINGLE_SETS)
def _shingle_set(norm: str, size: int) -> frozenset[str]:
    return frozenset(shingle_set(norm, size))


@functools.lru_cache(maxsize=PAIR_VERDICTS)
def similar_texts(first: str, second: str, shingle_size: int, threshold: float) -> bool:
    """Exact shingle Jaccard of two normalised texts >= threshold (call with the two in sorted order)."""
    return jaccard(_shingle_set(first, shingle_size), _shingle_set(second, shingle_size)) >= threshold


def cluster(
    norms: list[str], signatures: list[Any], settings: Settings, known: list[int] | None = None, own: int = 0
) -> list[int]:
    """Cluster label (index of the cluster's first member) for each distinct normalised text.

    Per LSH band the texts are sorted by bucket key (numpy); only texts that share a bucket are compared, each
    with the first and the previous member of its bucket, so a wave of n variants costs O(n) checks per band.

    Again, after more texts came (`known`: the labels of the first len(known) texts from the time before): only
    the comparisons that involve a text that came since are made, and of the texts from `own` on (the window
    before's) only those with a text of the window. Nearly always the same clusters as from scratch, at a
    fraction of the cost; the order of the joins can differ, so a closing window is clustered from scratch."""
    found = UnionFind(len(norms))
    for index, label in enumerate(known or ()):
        found.union(label, index)
    hashed = [i for i, signature in enumerate(signatures) if signature is not None]
    if len(hashed) < 2:
        return [found.find(i) for i in range(len(norms))]
    if known is not None:
        came = np.array([i >= len(known) and i < own for i in hashed])  # texts of the window new since
        before = np.array([i >= own for i in hashed])
    packed = [signatures[i] for i in hashed]
    if all(isinstance(signature, bytes) for signature in packed):  # as the detector keeps them: one buffer
        matrix = np.frombuffer(b"".join(packed), dtype=">i4").reshape(len(packed), -1).astype(np.int64)
    else:
        matrix = np.vstack([signature_array(signature) for signature in packed]).astype(np.int64)
    min_agreeing = int(PREFILTER_SHARE * matrix.shape[1])
    sure_agreeing = int(SURE_SHARE * matrix.shape[1])

    def similar(a: int, b: int) -> bool:
        first, second = sorted((norms[a], norms[b]))
        return similar_texts(first, second, settings.shingle_size, settings.jaccard)

    def join(a: int, b: int, agreeing: int) -> bool:
        """Join a candidate pair that shares `agreeing` MinHash values, if it is similar enough."""
        if agreeing >= sure_agreeing or (agreeing >= min_agreeing and similar(a, b)):
            found.union(a, b)
            return True
        return False

    for band in range(matrix.shape[1] // settings.rows_per_band):
        keys = _band_keys(matrix, band, settings.rows_per_band)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        repeats = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1  # sorted positions that share the previous key
        if not len(repeats):
            continue
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        run_start = starts[np.searchsorted(starts, repeats, side="right") - 1]
        # How many MinHash values each candidate pair shares, for all pairs of the band at once: a pair sharing
        # fewer than PREFILTER_SHARE of them is not worth an exact Jaccard check, one sharing SURE_SHARE needs none.
        if known is not None:
            current, first, previous = order[repeats], order[run_start], order[repeats - 1]
            new = came[current] | came[first] | came[previous]
            across = before[current] & ~(before[first] & before[previous])
            wanted = new | across
            repeats, run_start = repeats[wanted], run_start[wanted]
            if not len(repeats):
                continue
        rows = order[repeats]
        agree_first = (matrix[order[run_start]] == matrix[rows]).sum(axis=1).tolist()
        agree_previous = (matrix[order[repeats - 1]] == matrix[rows]).sum(axis=1).tolist()
        for k, (position, first_position) in enumerate(zip(repeats.tolist(), run_start.tolist(), strict=True)):
            if position - first_position >= settings.max_bucket:
                continue
            current, first = hashed[order[position]], hashed[order[first_position]]
            if found.find(current) == found.find(first):
                continue
            previous = hashed[order[position - 1]]
            if not join(first, current, agree_first[k]) and previous != first:
                join(previous, current, agree_previous[k])
    return [found.find(i) for i in range(len(norms))]


@dataclass
class Window:
    start: int
    texts: dict[str, TextAgg] = field(default_factory=dict)
    messages: int = 0
    changed: bool = False  # messages came since its open events were last reported
    reported: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> its last open record (no users)
    labels: list[int] = field(default_factory=list)  # cluster of each text (index of its first) when last clustered
    # Its message count and the texts in its events when report_open last clustered it: while it is still open, the
    # next window's clustering takes the rest as its remnant without clustering this one again
    used: tuple[int, set[str]] | None = None


class ChannelDetector:
    """The state of one channel: open windows, active topics and the channel's own event-time clock.

    The clock is the channel's newest message minus watermark_ms, and it moves message by message: after each
    message every window that the clock has passed is closed, and a message for a closed window is late (dropped
    and counted). So what the channel emits depends only on its own messages in their order, never on how they
    were cut into micro-batches or on what other channels (other Kafka partitions, other dates) are doing.
    A channel that falls silent is closed by its caller (`close_quiet`, see jobs.keyed)."""

    def __init__(self, channel: str):
        self.channel = channel
        self.windows: dict[int, Window] = {}
        self.topics: dict[str, Topic] = {}
        self.late_dropped = 0
        self.newest_ts = 0
        self.closed_through = 0  # every window ending at or before this has been closed
        self.emitted: list[dict[str, Any]] = []  # rows closed by the channel's own clock, not yet taken
        self._next_end = 0  # the earliest end of an open window (0: none open)
        # closed window start -> its texts that were in no event: the next window's waves may begin there
        self.remnants: dict[int, dict[str, TextAgg]] = {}

    # --- input
    def add(
        self, ts: int, user: str, original: str, norm: str, signature: Any, settings: Settings, emotes: str = ""
    ) -> bool:
        """Buffer one message (emotes: its emotes when it is mostly emotes), then close what the channel's clock
        has passed; False (and counted) when the message's window had already closed."""
        start = ts - ts % settings.window_ms
        if start + settings.window_ms <= self.closed_through:
            self.late_dropped += 1
            return False
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = Window(start)
            end = start + settings.window_ms
            self._next_end = end if not self._next_end else min(self._next_end, end)
        window.messages += 1
        window.changed = True
        text = window.texts.get(norm)
        if text is None:
            text = window.texts[norm] = TextAgg()
        text.add(user, ts, original, packed_signature(signature), emotes)
        if ts > self.newest_ts:
            self.newest_ts = ts
            clock = ts - settings.watermark_ms
            if self._next_end and clock >= self._next_end:
                self.emitted.extend(self.close_windows(clock, settings))
        return True

    def take(self) -> list[dict[str, Any]]:
        """The rows emitted since the last call."""
        rows, self.emitted = self.emitted, []
        return rows

    def report_open(self, settings: Settings) -> list[dict[str, Any]]:
        """The waves of the open windows as they stand: each cluster that reaches the thresholds is an event in state
        `open` (its final id, the topic it would continue), sent again only when it grew; an event reported open
        that no longer qualifies (merged into another, or below min_share) is sent as `undone`."""
        out: list[dict[str, Any]] = []
        for window in self.windows.values() if settings.open_events else ():
            if not window.changed:
                continue
            window.changed = False
            events, used = self._events(window, settings, "open")
            window.used = (window.messages, used)
            out.extend(self._undone(window, {e["event_id"] for e in events}))
            for event in events:
                event["topic_id"] = self._topic_id(event, settings)
                summary = (event["message_count"], event["distinct_users"], event["variants"])
                last = window.reported.get(event["event_id"])
                if last is None or (last["message_count"], last["distinct_users"], last["variants"]) != summary:
                    out.append(event)
                    window.reported[event["event_id"]] = {**event, "users": []}
        return out

    def close_quiet(self, silent_ms: int, settings: Settings) -> list[dict[str, Any]]:
        """The channel has been silent for silent_ms (processing time; jobs.keyed says when a channel is silent):
        its clock moves on by that much, closing its windows and ending its quiet topics."""
        return self.close_windows(self.newest_ts - settings.watermark_ms + silent_ms, settings)

    def finish(self, settings: Settings) -> list[dict[str, Any]]:
        """The end of the input (a drain is over): every open window closes; topics stay until they are quiet."""
        last_end = max((s + settings.window_ms for s in self.windows), default=self.closed_through)
        return self.close_windows(max(last_end, self.newest_ts - settings.watermark_ms), settings)

    # --- output
    def close_windows(self, watermark: int, settings: Settings) -> list[dict[str, Any]]:
        """Events and topic updates of every window that the watermark has passed, oldest first."""
        out: list[dict[str, Any]] = []
        for start in sorted(s for s in self.windows if s + settings.window_ms <= watermark):
            window = self.windows.pop(start)
            events, used = self._events(window, settings, "closed")
            out.extend(self._undone(window, {e["event_id"] for e in events}))
            out.extend(events)
            out.extend(self._track_topics(events, start + settings.window_ms, settings))
            self.remnants[start] = {n: a for n, a in window.texts.items() if n not in used}
            following = self.windows.get(start + settings.window_ms)
            if following is not None:
                following.changed = True  # its waves may now reach the thresholds with this window's part
        # a remnant is kept until the window after it has closed
        for start in [s for s in self.remnants if s + 2 * settings.window_ms <= watermark]:
            del self.remnants[start]
        out.extend(self._end_quiet_topics(watermark, settings))
        self.closed_through = max(self.closed_through, watermark)
        self._next_end = min((s + settings.window_ms for s in self.windows), default=0)
        return out

    def is_empty(self) -> bool:
        return not self.windows and not self.topics and not self.remnants

    # --- the state as data (jobs.keyed: Spark's state store keeps it between micro-batches)
    def to_state(self) -> list[Any]:
        """Everything the detector remembers, as plain lists, dicts, numbers, strings and bytes (msgpack), never
        pickled classes. Rows emitted and not yet taken are not part of it: take them first."""
        windows = [
            [w.start, w.messages, _texts_state(w.texts), w.changed, w.reported, w.labels, _used_state(w)]
            for w in self.windows.values()
        ]
        remnants = [[start, _texts_state(texts)] for start, texts in self.remnants.items()]
        topics = [
            [
                t.topic_id,
                t.norm,
                t.message_hash,
                t.text,
                t.first_seen,
                t.last_seen,
                t.windows_active,
                t.total_messages,
                t.peak_rate,
            ]
            for t in self.topics.values()
        ]
        return [self.channel, self.newest_ts, self.closed_through, self._next_end, windows, topics, remnants]

    @classmethod
    def from_state(cls, data: list[Any]) -> ChannelDetector:
        channel, newest_ts, closed_through, next_end, windows, topics, remnants = data
        detector = cls(channel)
        detector.newest_ts, detector.closed_through = newest_ts, closed_through
        for start, messages, texts, changed, reported, labels, *used in windows:  # version 3: no used
            window = Window(start, _texts_from_state(texts), messages, changed, reported, labels)
            if used and used[0] is not None:
                at, indices = used[0]
                norms = list(window.texts)
                window.used = (at, {norms[i] for i in indices})
            detector.windows[start] = window
        detector.remnants = {start: _texts_from_state(texts) for start, texts in remnants}
        for fields in topics:
            topic = Topic(*fields)
            detector.topics[topic.topic_id] = topic
        detector._next_end = next_end
        return detector

    def _undone(self, window: Window, current: set[str]) -> list[dict[str, Any]]:
        """The events reported open in this window that are no longer among its events, as `undone` records."""
        gone = [event_id for event_id in window.reported if event_id not in current]
        return [{**window.reported.pop(event_id), "state": "undone"} for event_id in gone]

    def _remnant(self, start: int, settings: Settings) -> dict[str, TextAgg]:
        """The texts of the window at `start` that are in none of its events: its remnant once it has closed, and
        while it is still open (the watermark's few seconds after its end) the texts outside its events so far."""
        window = self.windows.get(start)
        if window is None:
            return self.remnants.get(start, {})
        if window.used is not None and window.used[0] == window.messages and not window.changed:
            used = window.used[1]
        else:
            _, used = self._events(window, settings, "open")
        return {n: a for n, a in window.texts.items() if n not in used}

    def _events(self, window: Window, settings: Settings, state: str) -> tuple[list[dict[str, Any]], set[str]]:
        """The window's events, and the texts in them. A wave counts whole across the boundary with the window
        before: with each text of its cluster that was in no event there (the remnant), when that text's first
        message came less than a window before the wave's first message in this window. So a wave split 4/4 by
        the boundary is one event (of this window), and one big enough on both sides is one event in each."""
        own = len(window.texts)
        before = self._remnant(window.start - settings.window_ms, settings)
        norms = [*window.texts, *(n for n in before if n not in window.texts)]
        signatures = [(window.texts.get(n) or before[n]).signature for n in norms]
        # an open window again: only what came since is compared (see cluster); a closing one from scratch
        known = window.labels if state == "open" else None
        labels = cluster(norms, signatures, settings, known, own)
        members: dict[int, list[int]] = collections.defaultdict(list)
        for index, label in enumerate(labels):
            members[label].append(index)
        if state == "open":
            window.labels = [min(members[label]) for label in labels[:own]]
        events: list[dict[str, Any]] = []
        event_norms: list[set[str]] = []  # each event's texts of this window
        used: set[str] = set()
        least = min(settings.min_messages, settings.flood_min_messages)
        counts = [a.count for a in window.texts.values()] + [0] * (len(norms) - own)
        for i, norm in enumerate(norms):
            earlier = before.get(norm)
            if earlier is not None:
                counts[i] += earlier.count
        for indices in members.values():
            if indices[0] >= own:
                continue  # only texts of the window before
            if (counts[indices[0]] if len(indices) == 1 else sum(counts[i] for i in indices)) < least:
                continue  # too few messages even with all of the window before's (most clusters: one chat line)
            began = min(window.texts[norms[i]].first_ts for i in indices if i < own)
            parts: dict[int, list[TextAgg]] = {i: [] for i in indices}
            for i in indices:
                if i < own:
                    parts[i].append(window.texts[norms[i]])
                earlier = before.get(norms[i])
                if earlier is not None and earlier.first_ts > began - settings.window_ms:
                    parts[i].append(earlier)
            aggs = [a for i in indices for a in parts[i]]
            count = sum(a.count for a in aggs)
            if count < least:
                continue
            users = merged_users(a.users for a in aggs)
            originals: collections.Counter = collections.Counter()
            for a in aggs:
                originals.update(a.originals)
            top_count = users[0][1]
            if count >= settings.min_messages and len(users) >= settings.min_users:
                kind = "crowd"
            elif top_count >= settings.flood_min_messages and len(users) < settings.min_users:
                kind = "flood"
            else:
                continue
            if count < settings.min_share * window.messages:
                continue
            lead = max((i for i in indices if parts[i]), key=lambda i: (sum(a.count for a in parts[i]), norms[i]))
            norm = norms[lead]
            # the lead text's own commonest spelling, so that text, message_hash and buckets name one message (the
            # commonest spelling overall can belong to another member, and a search by it would miss this event)
            spellings: collections.Counter = collections.Counter()
            for a in parts[lead]:
                spellings.update(a.originals)
            text = max(spellings.items() or originals.items(), key=lambda item: (item[1], item[0]))[0]
            event_norms.append({norms[i] for i in indices if i < own})
            used.update(event_norms[-1])
            buckets = (
                []
                if signatures[lead] is None
                else band_buckets(signature_array(signatures[lead]).tolist(), settings.rows_per_band)
            )
            # named by its first text to arrive in this window: the same id while the wave grows, however it was
            # cut into micro-batches
            event_id = stable_id(self.channel, window.start, norms[min(indices)])
            events.append(
                self._event(window, settings, state, kind, event_id, text, norm, count, aggs, users, originals)
            )
            events[-1]["buckets"] = buckets
        # Waves of emotes, of the texts in no event but those of events that are all emotes: such an event is part
        # of its emotes' wave (reported once, as the wave)
        pure = [k for k, own_norms in enumerate(event_norms) if all(window.texts[n].emotes for n in own_norms)]
        free = {n for n, a in window.texts.items() if a.emotes and n not in used}
        free.update(n for k in pure for n in event_norms[k])
        waves, in_waves = self._emote_waves(window, free, settings, state)
        absorbed = {k for k in pure if event_norms[k] <= in_waves}
        events = [e for k, e in enumerate(events) if k not in absorbed] + waves
        return sorted(events, key=lambda e: -e["message_count"]), used | in_waves

    def _emote_waves(
        self, window: Window, candidates: set[str], settings: Settings, state: str
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """Emote waves among the candidate texts (all mostly emotes): an emote held by at least min_messages of
        their messages from at least min_users users is a wave, even when no two of the messages are alike; emotes
        that come together in at least min_messages messages, and in half those of the rarer one, are one wave.
        Returns the waves and their texts."""
        texts = window.texts
        sent: dict[tuple[str, str], int] = {}  # (text, emote set) -> its messages
        holders: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)  # emote -> (text, emote set)
        for norm, agg in texts.items():  # in arrival order, so that holders and waves do not depend on set order
            if norm in candidates:
                for combination, senders in agg.emotes.items():
                    sent[norm, combination] = sum(senders.values())
                    for code in combination.split(" "):
                        holders[code].append((norm, combination))

        def messages(held: Iterable[tuple[str, str]]) -> int:
            return sum(sent[h] for h in held)

        alone = {code: messages(held) for code, held in holders.items()}
        waving = [
            code
            for code, held in holders.items()
            if alone[code] >= settings.min_messages
            and len({u for n, c in held for u in texts[n].emotes[c]}) >= settings.min_users
        ]
        if not waving:
            return [], set()
        index = {code: i for i, code in enumerate(waving)}
        together: collections.Counter[tuple[int, int]] = collections.Counter()
        for text_set in dict.fromkeys(h for code in waving for h in holders[code]):
            indices = sorted({index[c] for c in text_set[1].split(" ") if c in index})
            for pair in itertools.combinations(indices, 2):
                together[pair] += sent[text_set]
        # two emotes are one wave when they come together in at least half the messages of the rarer one: in a busy
        # channel any two common emotes meet min_messages times by chance, and all of chat would be one wave
        found = UnionFind(len(waving))
        for (first_index, second_index), count in together.items():
            rarer = min(alone[waving[first_index]], alone[waving[second_index]])
            if count >= max(settings.min_messages, rarer / 2):
                found.union(first_index, second_index)
        groups: dict[int, list[str]] = collections.defaultdict(list)
        for code in waving:
            groups[found.find(index[code])].append(code)
        waves: list[dict[str, Any]] = []
        in_waves: set[str] = set()
        for codes in groups.values():
            held = list(dict.fromkeys(h for code in codes for h in holders[code]))
            count = messages(held)
            if count < settings.min_share * window.messages:
                continue
            codes.sort(key=lambda c: (-alone[c], c))
            aggs = [texts[n] for n in dict.fromkeys(n for n, _ in held)]
            # named by the emote of its first message in the window: the same id while the wave grows
            first = min(codes, key=lambda c: (min(texts[n].first_ts for n, _ in holders[c]), c))
            users = merged_users(
                {u: [m, *texts[n].users[u][1:]] for u, m in texts[n].emotes[c].items()} for n, c in held
            )
            originals: collections.Counter = collections.Counter()
            for agg in aggs:
                originals.update(agg.originals)
            norm = normalise(codes[0])
            in_waves.update(n for n, _ in held)
            event_id = stable_id(self.channel, window.start, f"emote wave {first}")
            text = " ".join(codes[:TOP_VARIANTS])
            waves.append(
                self._event(window, settings, state, "emote_wave", event_id, text, norm, count, aggs, users, originals)
            )
        return waves, in_waves

    def _event(
        self,
        window: Window,
        settings: Settings,
        state: str,
        kind: str,
        event_id: str,
        text: str,
        norm: str,
        count: int,
        aggs: list[TextAgg],
        users: list[tuple[str, int, int, int]],
        originals: collections.Counter,
    ) -> dict[str, Any]:
        """An event record (no LSH buckets: the caller adds them where it has them)."""
        return {
            "kind": "event",
            "event_kind": kind,
            "channel": self.channel,
            "window_start": window.start,
            "window_end": window.start + settings.window_ms,
            "event_id": event_id,
            "state": state,
            "text": text,
            "norm": norm,
            "message_hash": message_hash(norm),
            "message_count": count,
            "distinct_users": len(users),
            "variants": len(originals),
            "top_users": [{"user": u, "count": c} for u, c, _, _ in users[:TOP_USERS]],
            "users": users,
            "top_variants": [{"text": t, "count": c} for t, c in originals.most_common(TOP_VARIANTS)],
            "first_ts": min(a.first_ts for a in aggs),
            "last_ts": max(a.last_ts for a in aggs),
            "buckets": [],
            "window_messages": window.messages,
        }

    def _track_topics(self, events: list[dict[str, Any]], window_end: int, settings: Settings) -> list[dict[str, Any]]:
        touched: dict[str, Topic] = {}
        for event in events:
            topic = self._matching_topic(event, settings)
            if topic is None:
                topic = Topic(
                    event["event_id"],  # what its open records already named it
                    event["norm"],
                    event["message_hash"],
                    event["text"],
                    event["first_ts"],
                    event["last_ts"],
                )
                self.topics[topic.topic_id] = topic
            if topic.topic_id not in touched:
                topic.windows_active += 1
            topic.last_seen = max(topic.last_seen, event["last_ts"], window_end - settings.window_ms)
            topic.total_messages += event["message_count"]
            topic.peak_rate = max(topic.peak_rate, event["message_count"] / (settings.window_ms / 1000))
            event["topic_id"] = topic.topic_id
            touched[topic.topic_id] = topic
        return [self._topic_row(t, ended=False) for t in touched.values()]

    def _topic_id(self, event: dict[str, Any], settings: Settings) -> str:
        """The topic an event will continue when its window closes (as things stand), or the one it will start."""
        topic = self._matching_topic(event, settings)
        return event["event_id"] if topic is None else topic.topic_id

    def _matching_topic(self, event: dict[str, Any], settings: Settings) -> Topic | None:
        for topic in self.topics.values():
            if topic.message_hash == event["message_hash"]:
                return topic
        event_shingles = set(shingles(event["norm"], settings.shingle_size))
        best, best_score = None, settings.jaccard
        for topic in self.topics.values():
            score = jaccard(event_shingles, set(shingles(topic.norm, settings.shingle_size)))
            if score >= best_score:
                best, best_score = topic, score
        return best

    def _end_quiet_topics(self, watermark: int, settings: Settings) -> list[dict[str, Any]]:
        ended = [t for t in self.topics.values() if t.last_seen + settings.topic_quiet_ms <= watermark]
        for topic in ended:
            del self.topics[topic.topic_id]
        return [self._topic_row(t, ended=True) for t in ended]

    def _topic_row(self, topic: Topic, ended: bool) -> dict[str, Any]:
        return {
            "kind": "topic",
            "channel": self.channel,
            "topic_id": topic.topic_id,
            "text": topic.text,
            "norm": topic.norm,
            "message_hash": topic.message_hash,
            "first_ts": topic.first_seen,
            "last_ts": topic.last_seen,
            "windows_active": topic.windows_active,
            "message_count": topic.total_messages,
            "peak_rate": topic.peak_rate,
            "ended": ended,
        }
