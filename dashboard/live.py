"""The dashboard's live data: a background Kafka consumer keeping bounded, per-channel buffers of recent chat, spam
events, spam topics and rates. Memory stays flat however long it runs: every buffer has a fixed size, channels are
forgotten least recently active first, and rate bins older than `dashboard.history_s` are dropped.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from twitchcrement.clients import ServiceUnavailable, kafka_consumer
from twitchcrement.config import Config
from twitchcrement.records import (
    ChannelList,
    ChatMessage,
    RecordError,
    SpamEvent,
    SpamTopic,
    decode_chat,
    decode_spam,
    emote_spans,
)

log = logging.getLogger(__name__)

BIN_MS = 10_000  # rate bins match the detector's windows, so a bin's spam and chat counts compare
HEALTH_CHECK_S = 3.0
MAX_EMOTES = 5_000


@dataclass
class ChannelBuffer:
    chat: collections.deque
    events: collections.deque
    topics: collections.OrderedDict = field(default_factory=collections.OrderedDict)
    bins: dict[int, list[int]] = field(default_factory=dict)  # bin start ms -> [chat messages, spam messages]


@dataclass(frozen=True)
class ChannelInfo:
    login: str
    viewers: int | None
    messages_per_s: float


class LiveFeed:
    """Reads chatmessage, spammessage and the channel list from Kafka in a thread; everything else reads snapshots.

    Starts `dashboard.backfill_s` seconds back so a fresh dashboard has something to show. Kafka going away is
    noticed by a health check (the error shows in `kafka_error`) and the consumer reconnects by itself.
    """

    def __init__(self, config: Config):
        self.config = config
        self.chat_topic = config.kafka.chat_topic
        self.spam_topic = config.kafka.spam_topic
        self.channels_topic = config.ingest.channels_topic
        self.chat_size = config.dashboard.chat_per_channel
        self.spam_size = config.dashboard.spam_per_channel
        self.max_channels = config.dashboard.max_channels
        self.history_ms = config.dashboard.history_s * 1000
        self._channels: collections.OrderedDict[str, ChannelBuffer] = collections.OrderedDict()
        self._viewers: dict[str, int] = {}
        self._arrivals: collections.deque = collections.deque(maxlen=600)  # (wall second, chat, spam events)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._partitions: list[Any] = []  # of the chat and spam topics, for the health check
        # Emote codes seen in chat (each message's emotes tag, and the BTTV, FFZ and 7TV emotes ingest marked) ->
        # emote id, to show spam texts, which carry no tag, with their emotes. Bounded, the least recently seen go.
        self._emotes: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.kafka_error: str | None = "connecting to Kafka ..."
        self.bad_records = 0

    # --- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> LiveFeed:
        self._thread = threading.Thread(target=self._run, name="dashboard-live-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff = 1.0
        first = True
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self._connect(backfill=first)
                first = False
                backoff = 1.0
                self._consume(consumer)
            except ServiceUnavailable as exc:
                self._set_error(str(exc))
            except Exception as exc:  # noqa: BLE001 - the feed must outlive any broker trouble; say what it was
                self._set_error(f"Kafka consumer failed ({type(exc).__name__}: {exc})")
                log.warning("live feed failed; reconnecting", extra={"error": str(exc)})
            finally:
                if consumer is not None:
                    consumer.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 15.0)

    def _set_error(self, message: str | None) -> None:
        if message != self.kafka_error:
            log.info("live feed kafka status", extra={"status": message or "ok"})
        self.kafka_error = message

    def _connect(self, backfill: bool) -> Any:
        from kafka import TopicPartition

        consumer = kafka_consumer(
            self.config,
            enable_auto_commit=False,
            group_id=None,
            request_timeout_ms=8000,
            session_timeout_ms=6000,
            heartbeat_interval_ms=2000,
            max_poll_records=2000,
        )
        partitions = []
        for topic in (self.chat_topic, self.spam_topic, self.channels_topic):
            found = consumer.partitions_for_topic(topic)
            if not found:
                consumer.close()
                raise ServiceUnavailable(
                    f"Kafka topic {topic!r} does not exist yet (create it with `python -m services init`)"
                )
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        # The channel list is a compacted topic: read it whole. The others start a little in the past, once;
        # after a reconnect the consumer simply goes on from where it was.
        consumer.seek_to_beginning(*[p for p in partitions if p.topic == self.channels_topic])
        streams = [p for p in partitions if p.topic != self.channels_topic]
        since_ms = int(time.time() * 1000) - (self.config.dashboard.backfill_s * 1000 if backfill else 0)
        offsets = consumer.offsets_for_times({p: since_ms for p in streams})
        for partition in streams:
            found = offsets.get(partition)
            if found is None:
                consumer.seek_to_end(partition)
            else:
                consumer.seek(partition, found.offset)
        self._partitions = streams
        self._set_error(None)
        return consumer

    def _consume(self, consumer: Any) -> None:
        next_check = time.monotonic() + HEALTH_CHECK_S
        while not self._stop.is_set():
            batches = consumer.poll(timeout_ms=500)
            for partition, records in batches.items():
                for record in records:
                    self._take(partition.topic, record.value)
            if time.monotonic() >= next_check:
                # poll() stays quiet while the broker is away; asking for offsets is what notices it.
                try:
                    consumer.end_offsets(self._partitions)
                    self._set_error(None)
                except Exception as exc:  # noqa: BLE001
                    self._set_error(
                        f"Kafka at {self.config.kafka_bootstrap} is not answering "
                        f"({type(exc).__name__}); live views are paused and resume by themselves"
                    )
                next_check = time.monotonic() + HEALTH_CHECK_S

    # --- taking records -------------------------------------------------------------------------------------------
    def _take(self, topic: str, value: bytes) -> None:
        try:
            if topic == self.chat_topic:
                self.add_chat(decode_chat(value))
            elif topic == self.spam_topic:
                self.add_spam(decode_spam(value))
            else:
                self.set_channel_list(ChannelList.decode(value))  # type: ignore[arg-type]
        except RecordError as exc:
            self.bad_records += 1
            if self.bad_records == 1 or self.bad_records % 1000 == 0:
                log.warning(
                    "skipped a bad record", extra={"topic": topic, "error": str(exc), "bad_records": self.bad_records}
                )

    def _buffer(self, channel: str) -> ChannelBuffer:
        buffer = self._channels.get(channel)
        if buffer is None:
            buffer = ChannelBuffer(collections.deque(maxlen=self.chat_size), collections.deque(maxlen=self.spam_size))
            self._channels[channel] = buffer
            while len(self._channels) > self.max_channels:
                self._channels.popitem(last=False)
        else:
            self._channels.move_to_end(channel)
        return buffer

    def _count(self, buffer: ChannelBuffer, ts_ms: int, chat: int = 0, spam: int = 0) -> None:
        start = ts_ms - ts_ms % BIN_MS
        counts = buffer.bins.get(start)
        if counts is None:
            horizon = int(time.time() * 1000) - self.history_ms
            if start < horizon:
                return  # older than any chart shows
            for old in [b for b in buffer.bins if b < horizon]:
                del buffer.bins[old]
            counts = buffer.bins[start] = [0, 0]
        counts[0] += chat
        counts[1] += spam

    def _arrived(self, chat: int = 0, spam: int = 0) -> None:
        second = int(time.time())
        if self._arrivals and self._arrivals[-1][0] == second:
            self._arrivals[-1][1] += chat
            self._arrivals[-1][2] += spam
        else:
            self._arrivals.append([second, chat, spam])

    def add_chat(self, message: ChatMessage) -> None:
        with self._lock:
            buffer = self._buffer(message.channel)
            buffer.chat.append(message)
            for start, end, emote_id in [
                *emote_spans(message.emotes, len(message.text)),
                *emote_spans(message.extra_emotes, len(message.text)),
            ]:
                self._emotes[message.text[start:end]] = emote_id
                self._emotes.move_to_end(message.text[start:end])
            while len(self._emotes) > MAX_EMOTES:
                self._emotes.popitem(last=False)
            self._count(buffer, message.sent_ts, chat=1)
            self._arrived(chat=1)

    def add_spam(self, record: SpamEvent | SpamTopic) -> None:
        with self._lock:
            buffer = self._buffer(record.channel)
            if isinstance(record, SpamEvent):
                # The last record of an event id wins: an open event grows, then closes; an undone one goes; a
                # replayed micro-batch sends the same record again.
                index = next((i for i, e in enumerate(buffer.events) if e.event_id == record.event_id), None)
                before = 0 if index is None else buffer.events[index].message_count
                if index is not None:
                    del buffer.events[index]
                now = 0 if record.state == "undone" else record.message_count
                if now and index is None:
                    buffer.events.append(record)
                    self._arrived(spam=1)
                elif now and index is not None:
                    buffer.events.insert(index, record)  # room: its old record was just removed
                self._count(buffer, record.window_start, spam=now - before)
            else:
                buffer.topics[record.topic_id] = record
                buffer.topics.move_to_end(record.topic_id)
                while len(buffer.topics) > self.spam_size:
                    buffer.topics.popitem(last=False)

    def set_channel_list(self, channels: ChannelList) -> None:
        with self._lock:
            self._viewers = {entry.login: entry.viewers for entry in channels.entries}

    # --- snapshots ---------------------------------------------------------------------------------------------
    def channels(self) -> list[ChannelInfo]:
        """The top-channel list (viewers known) first, most watched first, then channels seen in chat by rate."""
        with self._lock:
            now_ms = int(time.time() * 1000)
            rates = {name: self._rate(buffer, now_ms) for name, buffer in self._channels.items()}
            viewers = dict(self._viewers)
        names = set(rates) | set(viewers)
        infos = [ChannelInfo(n, viewers.get(n), rates.get(n, 0.0)) for n in names]
        return sorted(infos, key=lambda c: (c.viewers is None, -(c.viewers or 0), -c.messages_per_s, c.login))

    def _rate(self, buffer: ChannelBuffer, now_ms: int, span_ms: int = 60_000) -> float:
        return sum(c[0] for start, c in buffer.bins.items() if start >= now_ms - span_ms) / (span_ms / 1000)

    def buffer_sizes(self) -> dict[str, int]:
        """What the live buffers hold now: channels, chat lines, spam events and topics."""
        with self._lock:
            buffers = list(self._channels.values())
            return {
                "channels": len(buffers),
                "chat": sum(len(b.chat) for b in buffers),
                "events": sum(len(b.events) for b in buffers),
                "topics": sum(len(b.topics) for b in buffers),
                "emotes": len(self._emotes),
            }

    def known_emotes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._emotes)

    def chat(self, channel: str, limit: int = 50) -> list[ChatMessage]:
        with self._lock:
            buffer = self._channels.get(channel)
            return list(buffer.chat)[-limit:][::-1] if buffer else []

    def events(self, channel: str, limit: int = 50) -> list[SpamEvent]:
        with self._lock:
            buffer = self._channels.get(channel)
            return list(buffer.events)[-limit:][::-1] if buffer else []

    def event(self, channel: str, event_id: str) -> SpamEvent | None:
        with self._lock:
            buffer = self._channels.get(channel)
            return next((e for e in buffer.events if e.event_id == event_id), None) if buffer else None

    def topics(self, channel: str | None = None, limit: int = 20) -> list[SpamTopic]:
        """Topics still active (not ended), the most messages first; all channels when channel is None."""
        with self._lock:
            if channel is None:
                buffers = list(self._channels.values())
            else:
                buffers = [self._channels[channel]] if channel in self._channels else []
            active = [t for b in buffers for t in b.topics.values() if not t.ended]
        return sorted(active, key=lambda t: (-t.total_messages, t.topic_id))[:limit]

    def rates(self, channel: str) -> list[tuple[int, int, int]]:
        """(bin start ms, chat messages, spam messages) per 10 s bin, oldest first."""
        with self._lock:
            buffer = self._channels.get(channel)
            return sorted((start, c[0], c[1]) for start, c in buffer.bins.items()) if buffer else []

    def spam_by_minute(self, minutes: int = 15, top: int = 20) -> tuple[list[str], list[int], list[list[int]]]:
        """The `top` channels by spam volume, the last `minutes` minutes, and spam messages per channel and minute."""
        now_ms = int(time.time() * 1000)
        last_minute = now_ms - now_ms % 60_000
        minute_starts = [last_minute - 60_000 * i for i in range(minutes - 1, -1, -1)]
        with self._lock:
            volume: dict[str, dict[int, int]] = {}
            for name, buffer in self._channels.items():
                per_minute: dict[int, int] = {}
                for start, counts in buffer.bins.items():
                    if counts[1] and start >= minute_starts[0]:
                        minute = start - start % 60_000
                        per_minute[minute] = per_minute.get(minute, 0) + counts[1]
                if per_minute:
                    volume[name] = per_minute
        ranked = sorted(volume, key=lambda n: -sum(volume[n].values()))[:top]
        return ranked, minute_starts, [[volume[n].get(m, 0) for m in minute_starts] for n in ranked]

    def totals(self, span_s: int = 60) -> dict[str, float]:
        """Chat messages per second and spam events per minute that arrived over the last `span_s` seconds."""
        since = int(time.time()) - span_s
        with self._lock:
            recent = [a for a in self._arrivals if a[0] > since]
            channels = len(self._channels)
        return {
            "messages_per_s": sum(a[1] for a in recent) / span_s,
            "spam_events_per_min": sum(a[2] for a in recent) * 60 / span_s,
            "channels": channels,
        }
