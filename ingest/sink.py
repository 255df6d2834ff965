"""Chat records to Kafka: opt-out first, the third-party emotes marked, then a bounded buffer that rides out a
broker outage, drops counted.

The kafka-python producer has no memory bound of its own, so this sink bounds what it holds (queued plus sent but
not yet acknowledged). A batch the producer gives up on comes back into the queue and is sent again once the
broker is back; only records offered while the bound is full are dropped, and each one is counted.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from twitchcrement.clients import kafka_producer
from twitchcrement.config import Config
from twitchcrement.emotes import EmoteSets
from twitchcrement.records import ChatMessage

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    offered: int = 0
    produced: int = 0
    opted_out: int = 0
    dropped: int = 0
    resent: int = 0


class ChatSink:
    def __init__(self, config: Config, topic: str | None = None, producer: Any = None, delivery: Any = None):
        """delivery: a prometheus-client Histogram to observe each record's seconds to acknowledgement in.
        The emote sets of emotes.providers are fetched (or read from their cache) before the first record."""
        self.topic = topic or config.kafka.chat_topic
        self.delivery = delivery
        self.bound = config.ingest.buffer_records
        self.optout_channels = {c.lower().lstrip("#") for c in config.ingest.optout_channels}
        self.optout_users = {u.lower() for u in config.ingest.optout_users}
        self.stats = SinkStats()
        self.emote_sets = EmoteSets.from_config(config)
        if self.emote_sets is not None:
            self.emote_sets.start()
        self._queue: collections.deque[ChatMessage] = collections.deque()
        self._retry: list[ChatMessage] = []  # handed back by the producer, in that order: sent again first
        self._in_flight = 0
        self._lock = threading.Condition()
        self._closing = False
        self._last_drop_log = 0.0
        # Each channel's chat must reach Kafka in order: the detector's per-channel watermark drops what comes more
        # than a few seconds behind its channel. So the producer itself retries through an outage, one request in
        # flight at a time; only a delivery it gives up on (after 10 minutes) comes back here to be resent.
        self._producer = producer or kafka_producer(
            config,
            delivery_timeout_ms=600_000,
            request_timeout_ms=10_000,
            max_in_flight_requests_per_connection=1,
            max_block_ms=5_000,
            linger_ms=50,
        )
        self._sender = threading.Thread(target=self._send_loop, name="chat-sink", daemon=True)
        self._sender.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._held()

    def _held(self) -> int:
        return len(self._queue) + len(self._retry) + self._in_flight

    def offer(self, message: ChatMessage, block: bool = False) -> bool:
        """Queue a message for Kafka; False when it was opted out or dropped (both counted).

        Live chat cannot wait, so by default a full buffer drops; a file replay passes block=True and waits.
        """
        if message.channel in self.optout_channels or message.user_login in self.optout_users:
            self.stats.opted_out += 1
            return False
        if self.emote_sets is not None:
            marked = self.emote_sets.tag(message.channel, message.room_id, message.text)
            if marked != message.extra_emotes:  # a copy: the caller's message stays as it was given
                message = dataclasses.replace(message, extra_emotes=marked)
        with self._lock:
            self.stats.offered += 1
            while block and self._held() >= self.bound and not self._closing:
                self._lock.wait(0.5)
            if self._held() >= self.bound:
                self.stats.dropped += 1
                self._log_drops()
                return False
            self._queue.append(message)
            self._lock.notify()
        return True

    def _log_drops(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= 10:
            self._last_drop_log = now
            log.warning(
                "buffer full (Kafka unreachable or slow): dropping chat records",
                extra={"dropped_total": self.stats.dropped, "bound": self.bound},
            )

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._retry and not self._closing:
                    self._lock.wait(0.5)
                self._queue.extendleft(reversed(self._retry))
                self._retry.clear()
                if not self._queue and self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), 5_000))]
                self._in_flight += len(batch)
            for position, message in enumerate(batch):
                try:
                    future = self._producer.send(self.topic, key=message.key, value=message.encode())
                except Exception as exc:  # metadata unavailable (broker down) or buffer trouble: retry later
                    self._requeue(batch[position:], exc)
                    time.sleep(1.0)
                    break
                future.add_callback(self._delivered, time.monotonic())
                future.add_errback(self._failed, message)

    def _delivered(self, sent_at: float, _metadata: Any) -> None:
        if self.delivery is not None:
            self.delivery.observe(time.monotonic() - sent_at)
        with self._lock:
            self._in_flight -= 1
            self.stats.produced += 1
            self._lock.notify_all()

    def _failed(self, message: ChatMessage, exc: Exception) -> None:
        # kafka-python calls an errback with its bound arguments first, then the exception.
        self._requeue([message], exc)

    def _requeue(self, messages: list[ChatMessage], exc: Exception) -> None:
        with self._lock:
            self._in_flight -= len(messages)
            self._retry.extend(messages)
            self.stats.resent += len(messages)
            self._lock.notify_all()
        if self.stats.resent == len(messages) or self.stats.resent % 10_000 < len(messages):
            log.warning(
                "Kafka did not take chat records; holding them to resend",
                extra={"records": len(messages), "error": f"{type(exc).__name__}: {exc}"[:200]},
            )

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Wait until everything offered is acknowledged by Kafka (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._lock.notify_all()
        from kafka.errors import KafkaTimeoutError

        while time.monotonic() < deadline:
            try:
                self._producer.flush(timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            except KafkaTimeoutError:
                pass  # not all acknowledged within this slice (the broker is away or slow): wait on
            if self.pending == 0:
                return True
            time.sleep(0.05)
        return self.pending == 0

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what can be flushed in the time given, then stop; what is left is counted as dropped."""
        flushed = self.flush(timeout_s)
        with self._lock:
            self._closing = True
            left = self._held()
            self._queue.clear()
            self._retry.clear()
            self._lock.notify_all()
        self._sender.join(timeout=5)
        if self.emote_sets is not None:
            self.emote_sets.close()
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.close(timeout=2)
        except KafkaTimeoutError:
            # kafka-python can keep a batch that expired during an outage as "incomplete" although its records
            # were handed back and resent (pending is 0): nothing of ours is waiting on it.
            log.debug("producer closed with a stale batch")
        if not flushed and left:
            self.stats.dropped += left
            log.warning("stopped with records not delivered", extra={"dropped": left})
