"""Live Twitch chat over IRC (PyPI `irc`): anonymous by default, sharded connections, paced JOINs, self-healing.

- Login: `justinfan<digits>` without PASS (read-only), or TWITCH_IRC_NICK + TWITCH_IRC_TOKEN from the environment.
- `CAP REQ :twitch.tv/tags twitch.tv/commands` on every connection.
- Channels are spread over connections of at most `ingest.channels_per_connection`; JOINs across the process stay
  within `ingest.joins_per_10s` per `ingest.join_window_s`, since a burst over Twitch's limit gets disconnected.
- PING is answered by the irc library; RECONNECT, a dropped socket or a silent one (nothing for
  `ingest.silence_timeout_s`) lead to a reconnect with exponential backoff and full jitter, then a rejoin.
- Every line goes through the same parser as the replays; bad lines are counted, never fatal.
"""

from __future__ import annotations

import collections
import functools
import logging
import queue
import random
import ssl
import time
from collections.abc import Callable

import irc.client
import irc.connection
from jaraco.stream import buffer as line_buffer

from ingest.irc_parser import ChatParser, IrcParseError, parse_line
from ingest.sink import ChatSink
from twitchcrement.config import Config

log = logging.getLogger(__name__)

NICK_ENV = "TWITCH_IRC_NICK"
TOKEN_ENV = "TWITCH_IRC_TOKEN"


class _SurrogateLines(line_buffer.DecodingLineBuffer):
    # Keep undecodable bytes as surrogates so the parser can count the line as bad UTF-8 and still deliver it.
    errors = "surrogateescape"


class _TwitchConnection(irc.client.ServerConnection):
    buffer_class = _SurrogateLines

    def _process_line(self, line: str) -> None:
        # The library parses every line after our raw handler has; a line it cannot parse must not end the reader.
        try:
            super()._process_line(line)
        except Exception:  # noqa: BLE001 - the line was already counted by our parser
            log.debug("irc library could not process a line", exc_info=True)


class _Reactor(irc.client.Reactor):
    connection_class = _TwitchConnection


class JoinPacer:
    """At most `limit` JOINs in any `window_s` seconds (a sliding window over the times JOINs were sent)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self.sent: collections.deque[float] = collections.deque()

    def allowance(self) -> int:
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.window_s:
            self.sent.popleft()
        return self.limit - len(self.sent)

    def record(self) -> None:
        self.sent.append(self.clock())


class Shard:
    """One IRC connection and the channels it should be in."""

    def __init__(self, number: int):
        self.number = number
        self.wanted: set[str] = set()
        self.joined: set[str] = set()
        self.connection: _TwitchConnection | None = None
        self.ready = False
        self.last_line = time.monotonic()
        self.pinged = False
        self.failures = 0
        self.next_attempt = 0.0
        self.messages = 0  # chat messages read on this connection


class TwitchReader:
    def __init__(
        self,
        config: Config,
        sink: ChatSink,
        host: str,
        port: int,
        tls: bool,
        nick: str | None = None,
        token: str | None = None,
    ):
        self.config, self.sink = config, sink
        self.host, self.port, self.tls = host, port, tls
        self.nick = nick or f"justinfan{random.randint(10_000, 99_999)}"
        self._password = f"oauth:{token.removeprefix('oauth:')}" if token else None
        self.per_connection = config.ingest.channels_per_connection
        self.silence_s = config.ingest.silence_timeout_s
        self.pacer = JoinPacer(config.ingest.joins_per_10s, config.ingest.join_window_s)
        self.parser = ChatParser(source=f"irc {host}:{port}")
        self.reactor = _Reactor()
        self.reactor.add_global_handler("all_raw_messages", self._on_raw, -10)
        self.reactor.add_global_handler("welcome", self._on_welcome)
        self.reactor.add_global_handler("disconnect", self._on_disconnect)
        self.shards: list[Shard] = []
        self.join_queue: collections.deque[tuple[Shard, str]] = collections.deque()
        self.pending_lists: queue.Queue[list[str]] = queue.Queue()
        self.reconnects = 0
        self.messages = 0
        self.joins_sent = 0

    # --- channel assignment
    def set_channels(self, channels: list[str]) -> None:
        """Called from any thread: the reader applies the new list on its own loop."""
        self.pending_lists.put([c.lower().lstrip("#") for c in channels])

    def _apply_channels(self, channels: list[str]) -> None:
        wanted = list(dict.fromkeys(channels))
        current = {c: s for s in self.shards for c in s.wanted}
        for channel, shard in current.items():
            if channel not in wanted:
                shard.wanted.discard(channel)
                if channel in shard.joined and shard.connection is not None and shard.ready:
                    shard.connection.part(f"#{channel}")
                    shard.joined.discard(channel)
        for channel in wanted:
            if channel in current:
                continue
            free = next((s for s in self.shards if len(s.wanted) < self.per_connection), None)
            if free is None:
                free = Shard(len(self.shards))
                self.shards.append(free)
            free.wanted.add(channel)
            if free.ready:
                self.join_queue.append((free, channel))
        log.info("channel list applied", extra={"channels": len(wanted), "connections": len(self.shards)})

    # --- connection lifecycle
    def _factory(self) -> irc.connection.Factory:
        if not self.tls:
            return irc.connection.Factory()
        context = ssl.create_default_context()
        return irc.connection.Factory(wrapper=functools.partial(context.wrap_socket, server_hostname=self.host))

    def _connect(self, shard: Shard) -> None:
        shard.ready = False
        shard.joined.clear()
        if shard.connection is None:
            shard.connection = self.reactor.server()
            shard.connection.shard = shard
        try:
            shard.connection.connect(
                self.host, self.port, self.nick, password=self._password, connect_factory=self._factory()
            )
            shard.connection.send_raw("CAP REQ :twitch.tv/tags twitch.tv/commands")
            shard.last_line = time.monotonic()
        except (irc.client.ServerConnectionError, OSError) as exc:
            self._schedule_retry(shard, f"connect failed: {exc}")

    def _schedule_retry(self, shard: Shard, why: str) -> None:
        shard.ready = False
        shard.failures += 1
        delay = random.uniform(0, min(60.0, 2.0 ** min(shard.failures, 6)))  # exponential backoff, full jitter
        shard.next_attempt = time.monotonic() + delay
        log.warning(
            "IRC connection lost; reconnecting",
            extra={"connection": shard.number, "why": why, "retry_in_s": round(delay, 1), "attempt": shard.failures},
        )

    def _on_welcome(self, connection: _TwitchConnection, _event: irc.client.Event) -> None:
        shard: Shard = connection.shard
        shard.ready, shard.failures = True, 0
        self.join_queue.extend((shard, c) for c in sorted(shard.wanted) if c not in shard.joined)
        log.info("connected", extra={"connection": shard.number, "channels": len(shard.wanted)})

    def _on_disconnect(self, connection: _TwitchConnection, event: irc.client.Event) -> None:
        shard: Shard = connection.shard
        if shard.next_attempt <= time.monotonic():
            self.reconnects += 1
            self._schedule_retry(shard, (event.arguments or ["disconnected"])[0] or "disconnected")

    def _on_raw(self, connection: _TwitchConnection, event: irc.client.Event) -> None:
        shard: Shard = connection.shard
        shard.last_line = time.monotonic()
        shard.pinged = False
        line: str = event.arguments[0]
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = self.parser.decode(line.encode("utf-8", "surrogateescape"))
        message = self.parser.parse(line)
        if message is not None:
            self.messages += 1
            shard.messages += 1
            self.sink.offer(message)
            return
        if " RECONNECT" in line:
            try:
                if parse_line(line).command == "RECONNECT":
                    log.info("server asked to reconnect", extra={"connection": shard.number})
                    connection.disconnect("RECONNECT")
            except IrcParseError:
                pass

    # --- the loop
    def _tick(self) -> None:
        now = time.monotonic()
        while not self.pending_lists.empty():
            self._apply_channels(self.pending_lists.get_nowait())
        for shard in self.shards:
            connection = shard.connection
            connected = connection is not None and connection.is_connected()
            if connection is None or not connected:
                if shard.wanted and now >= shard.next_attempt:
                    self._connect(shard)
            elif not shard.pinged and now - shard.last_line > self.silence_s / 2:
                connection.ping("tmi.twitch.tv")  # a live server answers PONG; a dead one stays silent
                shard.pinged = True
            elif now - shard.last_line > self.silence_s:
                log.warning(
                    "IRC connection silent; treating it as dead",
                    extra={"connection": shard.number, "silent_s": round(now - shard.last_line)},
                )
                connection.disconnect("silent")
        allowance = self.pacer.allowance()
        while allowance > 0 and self.join_queue:
            shard, channel = self.join_queue.popleft()
            if not shard.ready or channel not in shard.wanted or channel in shard.joined:
                continue
            shard.connection.join(f"#{channel}")  # type: ignore[union-attr]
            self.joins_sent += 1
            shard.joined.add(channel)
            self.pacer.record()
            allowance -= 1

    def run(self, stop: Callable[[], bool], progress_every_s: float = 10.0) -> None:
        last, last_count = time.monotonic(), 0
        while not stop():
            self.reactor.process_once(timeout=0.2)
            self._tick()
            now = time.monotonic()
            if now - last >= progress_every_s:
                log.info(
                    "reading",
                    extra={
                        "messages": self.messages,
                        "rate_per_s": round((self.messages - last_count) / (now - last), 1),
                        "joined": sum(len(s.joined) for s in self.shards),
                        "connections": len(self.shards),
                        "reconnects": self.reconnects,
                        "malformed": self.parser.error_count,
                        "produced": self.sink.stats.produced,
                        "dropped": self.sink.stats.dropped,
                    },
                )
                last, last_count = now, self.messages
        self.reactor.disconnect_all("bye")

    @property
    def joined(self) -> set[str]:
        return {c for s in self.shards for c in s.joined}
