"""The dashboard's history: Cassandra through the Python driver, prepared statements only, bounded reads.

A monitor thread keeps the session: it connects, pings every few seconds, and reconnects after an outage, so a
page callback never waits for a connection; while Cassandra is away, calls raise HistoryUnavailable at once.
"""

from __future__ import annotations

import collections
import datetime as dt
import heapq
import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from twitchcrement.clients import ServiceUnavailable, cassandra_session
from twitchcrement.config import Config
from twitchcrement.textsim import MinHasher, jaccard, message_hash, normalise, shingles

log = logging.getLogger(__name__)

PING_S = 3.0
SEARCH_DAYS = 30  # days of sightings a search reads per message (newest first)
MAX_SIMILAR = 20  # similar spam texts a search follows
MAX_BUCKET_ROWS = 200  # rows read per LSH bucket (a bucket of a popular text can hold many spellings)
MAX_SIGHTINGS = 1000  # rows a search reads at most (the timeline; pages come from the newest of them)
MAX_EVENT_USERS = 50_000  # users read per event (one channel's 10 s window; the driver pages through them)
USERS_CACHED = 200  # events whose complete user lists are kept (a list, once complete, never changes)

STATEMENTS = {
    "events_by_channel": "SELECT window_start, event_id, kind, window_end, text, message_hash, message_count, "
    "distinct_users, variants, top_users, top_variants, topic_id FROM {keyspace}.spam_events_by_channel "
    "WHERE channel = ? AND day = ? LIMIT ?",
    "message_days": "SELECT day, text FROM {keyspace}.spam_message_days WHERE message_hash = ? LIMIT ?",
    "events_by_message": "SELECT window_start, channel, event_id, text, message_count, distinct_users, topic_id "
    "FROM {keyspace}.spam_events_by_message WHERE message_hash = ? AND day = ? LIMIT ?",
    "bucket": "SELECT message_hash, text FROM {keyspace}.spam_lsh_buckets WHERE band = ? AND bucket = ? LIMIT ?",
    "campaigns": "SELECT campaign_id, channel, topic_id, text, first_seen, last_seen, total_messages "
    "FROM {keyspace}.spam_campaigns_by_day WHERE day = ? LIMIT ?",
    "event_users": "SELECT user_login, messages, first_ts, last_ts FROM {keyspace}.spam_event_users "
    "WHERE event_id = ? AND day = ? LIMIT ?",
    "user_days": "SELECT day FROM {keyspace}.spam_user_days WHERE user_login = ? LIMIT ?",
    "user_events": "SELECT window_start, event_id, channel, kind, text, message_hash, messages, first_ts, last_ts, "
    "event_messages, event_users, topic_id FROM {keyspace}.spam_events_by_user "
    "WHERE user_login = ? AND day = ? LIMIT ?",
}


class HistoryUnavailable(ConnectionError):
    """Cassandra cannot be read right now; the message says where it was looked for."""


class SearchError(ValueError):
    """The search text cannot be searched; the message tells the user what to type instead."""


@dataclass
class Match:
    message_hash: str
    text: str
    similarity: float  # shingle Jaccard with the query; 1.0 for the exact (normalised) text


@dataclass
class Search:
    query: str
    normalised: str
    matches: list[Match]
    sightings: list[dict[str, Any]]  # newest first: window_start (datetime), channel, text, message_count, ...
    note: str = ""
    truncated: bool = False

    def page(self, number: int, size: int) -> list[dict[str, Any]]:
        return self.sightings[number * size : (number + 1) * size]

    def pages(self, size: int) -> int:
        return max(1, -(-len(self.sightings) // size))


@dataclass
class UserActivity:
    login: str
    events: list[dict[str, Any]]  # newest first: window_start (datetime), channel, text, messages, event_id, ...
    truncated: bool = False

    @property
    def channels(self) -> list[str]:
        return sorted({e["channel"] for e in self.events})


def user_login(text: str) -> str:
    """A login as typed ("@Name", " name "): Twitch logins are lower case."""
    return text.strip().lstrip("@").strip().lower()


@dataclass
class History:
    config: Config
    session: Any = None
    error: str | None = "connecting to Cassandra ..."
    _prepared: dict[str, Any] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _users: collections.OrderedDict = field(default_factory=collections.OrderedDict)  # event id -> complete users

    def __post_init__(self) -> None:
        self.hasher = MinHasher.from_config(self.config)
        self.coefficients = self.hasher.coefficients
        self.min_shingles = self.config.detector.min_shingles
        self.shingle_size = self.config.detector.shingle_size
        self.threshold = self.config.detector.jaccard
        self.max_chars = self.config.dashboard.search_max_chars

    # --- connection -----------------------------------------------------------------------------------------
    def start(self) -> History:
        threading.Thread(target=self._monitor, name="dashboard-history", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.session is not None:
            self.session.cluster.shutdown()

    def connect(self) -> None:
        session = cassandra_session(self.config.with_overrides(cassandra__connect_timeout_s=5.0), keyspace=False)
        keyspace = self.config.cassandra.keyspace  # checked by the config to be a plain CQL name
        self._prepared = {name: session.prepare(cql.format(keyspace=keyspace)) for name, cql in STATEMENTS.items()}
        self.session, self.error = session, None
        log.info("history connected", extra={"keyspace": self.config.cassandra.keyspace})

    def _monitor(self) -> None:
        while not self._stop.is_set():
            try:
                if self.session is None:
                    self.connect()
                else:
                    self.session.execute("SELECT release_version FROM system.local", timeout=5.0)
                    self.error = None
            except ServiceUnavailable as exc:
                self.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - any driver error means "not readable now"; keep trying
                self.error = f"Cassandra is not answering ({type(exc).__name__}); history resumes by itself"
            self._stop.wait(PING_S)

    def _run(self, name: str, *values: Any) -> list[Any]:
        if self.session is None:
            raise HistoryUnavailable(self.error or "Cassandra is not connected yet")
        try:
            return list(self.session.execute(self._prepared[name], values, timeout=10.0))
        except Exception as exc:  # noqa: BLE001
            self.error = f"Cassandra read failed ({type(exc).__name__}); history resumes by itself"
            raise HistoryUnavailable(self.error) from None

    def _run_many(self, name: str, values: list[tuple]) -> list[list[Any]]:
        """The same prepared statement with many bindings, in parallel."""
        if self.session is None:
            raise HistoryUnavailable(self.error or "Cassandra is not connected yet")
        try:
            futures = [self.session.execute_async(self._prepared[name], v, timeout=10.0) for v in values]
            return [list(f.result()) for f in futures]
        except Exception as exc:  # noqa: BLE001
            self.error = f"Cassandra read failed ({type(exc).__name__}); history resumes by itself"
            raise HistoryUnavailable(self.error) from None

    # --- questions -------------------------------------------------------------------------------------------
    def channel_events(self, channel: str, limit: int = 50, day: dt.date | None = None) -> list[Any]:
        """A channel's newest spam events of a day (today by default, UTC), newest first."""
        return self._run("events_by_channel", channel, day or _today(), limit)

    def campaigns(self, day: dt.date | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Spam texts seen in two or more channels on a day, most messages first."""
        by_campaign: dict[str, dict[str, Any]] = {}
        for row in self._run("campaigns", day or _today(), limit):
            campaign = by_campaign.setdefault(
                row.campaign_id,
                {
                    "campaign_id": row.campaign_id,
                    "text": row.text,
                    "channels": set(),
                    "total_messages": 0,
                    "first_seen": row.first_seen,
                    "last_seen": row.last_seen,
                },
            )
            campaign["channels"].add(row.channel)
            campaign["total_messages"] += row.total_messages or 0
            campaign["first_seen"] = min(campaign["first_seen"], row.first_seen)
            campaign["last_seen"] = max(campaign["last_seen"], row.last_seen)
        found = [c for c in by_campaign.values() if len(c["channels"]) >= 2]
        return sorted(found, key=lambda c: (-c["total_messages"], c["campaign_id"]))

    def event_users(self, event_id: str, window_start_ms: int, expected: int) -> list[dict[str, Any]]:
        """Every user of a spam event, most messages first; until the detector has written all `expected` of them
        (it writes history just after an event reaches Kafka) the ones written so far."""
        if event_id in self._users:
            self._users.move_to_end(event_id)
            return self._users[event_id]
        day = dt.datetime.fromtimestamp(window_start_ms / 1000, dt.UTC).date()
        users = sorted(
            (
                {"user_login": r.user_login, "messages": r.messages, "first_ts": r.first_ts, "last_ts": r.last_ts}
                for r in self._run("event_users", event_id, day, MAX_EVENT_USERS)
            ),
            key=lambda u: (-u["messages"], u["user_login"]),
        )
        if len(users) >= expected:
            self._users[event_id] = users
            while len(self._users) > USERS_CACHED:
                self._users.popitem(last=False)
        return users

    def user_activity(self, login: str) -> UserActivity:
        """The spam events a user took part in, newest first, over the user's newest SEARCH_DAYS days."""
        days = [row.day for row in self._run("user_days", login, SEARCH_DAYS)]
        streams = [
            [
                {
                    "window_start": r.window_start,
                    "event_id": r.event_id,
                    "channel": r.channel,
                    "kind": r.kind,
                    "text": r.text,
                    "message_hash": r.message_hash,
                    "messages": r.messages,
                    "first_ts": r.first_ts,
                    "last_ts": r.last_ts,
                    "event_messages": r.event_messages,
                    "event_users": r.event_users,
                    "topic_id": r.topic_id,
                }
                for r in rows
            ]
            for rows in self._run_many("user_events", [(login, day, MAX_SIGHTINGS) for day in days])
        ]
        events = list(
            itertools.islice(heapq.merge(*streams, key=lambda e: e["window_start"], reverse=True), MAX_SIGHTINGS + 1)
        )
        return UserActivity(login, events[:MAX_SIGHTINGS], len(events) > MAX_SIGHTINGS)

    def search(self, query: str) -> Search:
        """Where has this spam been seen? The exact text, and similar texts through the LSH buckets."""
        query = (query or "").strip()
        if not query:
            raise SearchError("Type or paste a chat message to see where it has been spammed.")
        if len(query) > self.max_chars:
            raise SearchError(f"That text is {len(query)} characters long; search takes at most {self.max_chars}.")
        norm = normalise(query)
        if not norm:
            raise SearchError("Nothing searchable is left once invisible characters and spacing are removed.")
        grams = shingles(norm, self.shingle_size)
        exact = message_hash(norm)
        candidates: dict[str, Match] = {exact: Match(exact, query, 1.0)}
        note = ""
        if len(grams) >= self.min_shingles:
            signature = self.hasher.signature(grams, self.coefficients)
            bands = self.hasher.bands(signature)
            for rows in self._run_many(
                "bucket", [(band, bucket, MAX_BUCKET_ROWS) for band, bucket in enumerate(bands)]
            ):
                for row in rows:
                    if row.message_hash not in candidates:
                        score = jaccard(set(grams), set(shingles(normalise(row.text), self.shingle_size)))
                        if score >= self.threshold:
                            candidates[row.message_hash] = Match(row.message_hash, row.text, round(score, 3))
        else:
            note = "Short texts are matched exactly (after normalisation) only."
        matches = sorted(candidates.values(), key=lambda m: -m.similarity)[: MAX_SIMILAR + 1]
        sightings, truncated = self._sightings(matches)
        seen = {s["message_hash"] for s in sightings}
        matches = [m for m in matches if m.message_hash in seen]
        return Search(query, norm, matches, sightings, note, truncated)

    def _sightings(self, matches: list[Match]) -> tuple[list[dict[str, Any]], bool]:
        days = self._run_many("message_days", [(m.message_hash, SEARCH_DAYS) for m in matches])
        wanted = [(m, row.day) for m, rows in zip(matches, days, strict=True) for row in rows]
        results = self._run_many("events_by_message", [(m.message_hash, day, MAX_SIGHTINGS) for m, day in wanted])
        streams = []
        for (match, _), rows in zip(wanted, results, strict=True):
            streams.append(
                [
                    {
                        "window_start": row.window_start,
                        "channel": row.channel,
                        "text": row.text,
                        "message_count": row.message_count,
                        "distinct_users": row.distinct_users,
                        "event_id": row.event_id,
                        "topic_id": row.topic_id,
                        "message_hash": match.message_hash,
                        "similarity": match.similarity,
                    }
                    for row in rows
                ]
            )
        merged = heapq.merge(*streams, key=lambda s: s["window_start"], reverse=True)
        sightings: list[dict[str, Any]] = []
        for sighting in merged:
            if len(sightings) == MAX_SIGHTINGS:
                return sightings, True
            sightings.append(sighting)
        return sightings, False


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
