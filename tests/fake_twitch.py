"""A local stand-in for Twitch's chat servers (irc.chat.twitch.tv), speaking its IRC dialect on loopback.

It does what the reader depends on: CAP ACK for tags/commands, the welcome numerics, JOIN/PART echoes with
NAMES, PRIVMSG with IRCv3 tags to the channels' members, PING/PONG both ways, RECONNECT, and it disconnects a
client whose JOINs exceed the rate limit, as Twitch does. Tests drive it from their own thread.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
import uuid


class _Client:
    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.nick = ""
        self.caps: set[str] = set()
        self.channels: set[str] = set()
        self.welcomed = False
        self.leaving = False  # told to reconnect or dropped: in nobody's channels any more, whenever its socket ends
        self.stalled = False  # half-dead: it answers nothing and nothing reaches it


class FakeTwitch:
    def __init__(self, join_limit: int = 20, join_window_s: float = 10.0):
        self.passwords: list[str] = []
        self.join_limit, self.join_window_s = join_limit, join_window_s
        self.loop = asyncio.new_event_loop()
        self.clients: list[_Client] = []
        self.join_times: collections.deque[float] = collections.deque()
        self.max_joins_in_window = 0
        self.rate_limit_kicks = 0
        self.connections_accepted = 0
        self.pongs_received = 0
        self.sent_ids: list[str] = []
        self._ids = itertools.count()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-twitch")
        self.port = 0

    # --- lifecycle
    def start(self) -> FakeTwitch:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        def shutdown() -> None:
            self.server.close()
            for client in list(self.clients):
                client.writer.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(10)

    def _call(self, fn, *args) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(10)

    # --- protocol
    @staticmethod
    def _write(client: _Client, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        client.writer.write(data + b"\r\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        self.clients.append(client)
        self.connections_accepted += 1
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                self._handle(client, raw.decode("utf-8", "replace").rstrip("\r\n"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if client in self.clients:
                self.clients.remove(client)
            writer.close()

    def _handle(self, client: _Client, line: str) -> None:
        command, _, rest = line.partition(" ")
        command = command.upper()
        if command == "CAP" and rest.startswith("REQ"):
            wanted = rest.split(":", 1)[1].split()
            client.caps.update(wanted)
            self._write(client, f":tmi.twitch.tv CAP * ACK :{' '.join(wanted)}")
        elif command == "PASS":
            self.passwords.append(rest.strip())  # what a logged-in client sent, for the tests to check
        elif command == "NICK":
            client.nick = rest.strip().lower()
            for number, text in (
                ("001", "Welcome, GLHF!"),
                ("002", "Your host is tmi.twitch.tv"),
                ("003", "This server is rather new"),
                ("004", "-"),
                ("375", "-"),
                ("372", "You are in a maze of twisty passages, all alike."),
                ("376", ">"),
            ):
                self._write(client, f":tmi.twitch.tv {number} {client.nick} :{text}")
            client.welcomed = True
        elif command == "JOIN":
            now = time.monotonic()
            for channel in rest.strip().split(","):
                self.join_times.append(now)
                while self.join_times and now - self.join_times[0] >= self.join_window_s:
                    self.join_times.popleft()
                self.max_joins_in_window = max(self.max_joins_in_window, len(self.join_times))
                if len(self.join_times) > self.join_limit:
                    self.rate_limit_kicks += 1
                    client.writer.close()  # what Twitch does to a client that joins too fast
                    return
                name = channel.strip().lower()
                client.channels.add(name)
                self._write(client, f":{client.nick}!{client.nick}@{client.nick}.tmi.twitch.tv JOIN {name}")
                self._write(client, f":{client.nick}.tmi.twitch.tv 353 {client.nick} = {name} :{client.nick}")
                self._write(client, f":{client.nick}.tmi.twitch.tv 366 {client.nick} {name} :End of /NAMES list")
        elif command == "PART":
            for channel in rest.strip().split(","):
                client.channels.discard(channel.strip().lower())
                self._write(client, f":{client.nick}!{client.nick}@{client.nick}.tmi.twitch.tv PART {channel}")
        elif command == "PING":
            if not client.stalled:
                self._write(client, f":tmi.twitch.tv PONG tmi.twitch.tv {rest}")
        elif command == "PONG":
            self.pongs_received += 1

    # --- what tests do (thread-safe)
    def joined(self) -> set[str]:
        return {c.lstrip("#") for client in list(self.clients) if not client.leaving for c in client.channels}

    def chat(
        self, channel: str, user: str, text: str, *, tags: dict[str, str] | None = None, colon: bool = True
    ) -> str | None:
        """Send a PRIVMSG to every client in the channel; returns its message id, or None if nobody is there."""
        message_id = str(uuid.uuid4())
        sent_ts = int(time.time() * 1000)
        all_tags = {
            "badge-info": "",
            "badges": "",
            "color": "#FF0000",
            "display-name": user.title(),
            "emotes": "",
            "first-msg": "0",
            "id": message_id,
            "mod": "0",
            "room-id": "1",
            "subscriber": "0",
            "tmi-sent-ts": str(sent_ts),
            "turbo": "0",
            "user-id": "42",
            "user-type": "",
            **(tags or {}),
        }
        tag_text = ";".join(f"{k}={v}" for k, v in all_tags.items())
        trailing = f":{text}" if colon or " " in text else text
        line = f"@{tag_text} :{user}!{user}@{user}.tmi.twitch.tv PRIVMSG #{channel} {trailing}"
        delivered = []

        def send() -> None:
            for client in self.clients:
                if f"#{channel}" in client.channels and not client.leaving:
                    self._write(client, line)
                    delivered.append(client)

        self._call(send)
        if delivered:
            self.sent_ids.append(message_id)
            return message_id
        return None

    def raw(self, line: str | bytes) -> None:
        """Send any line (garbage included) to every client."""
        self._call(lambda: [self._write(c, line) for c in self.clients])

    def ping(self) -> None:
        self.raw("PING :tmi.twitch.tv")

    def reconnect(self) -> None:
        """Twitch's RECONNECT: the server is going away, so the clients it tells are gone from every channel (until
        their sockets close, a joined() that counted them would report the channels joined before the rejoin)."""

        def tell() -> None:
            for client in self.clients:
                self._write(client, ":tmi.twitch.tv RECONNECT")
                client.leaving = True

        self._call(tell)

    def drop_connections(self, mid_line: bool = False) -> None:
        def drop() -> None:
            for client in list(self.clients):
                if mid_line:
                    client.writer.write(b"@tmi-sent-ts=1704557984398 :a!a@a.tmi.twitch.tv PRIVMSG #nymn :cut off he")
                client.leaving = True
                client.writer.close()

        self._call(drop)

    def stall(self) -> None:
        """The connections open now go half-dead: no PONG, no chat, nothing else, for good. They leave every channel
        at once (as reconnect does): a client that replaces one must join again before joined() counts it, and chat
        must not be "delivered" to a socket its reader has given up on (the race behind a flaky reconnect test)."""

        def go_dead() -> None:
            for client in self.clients:
                client.stalled = client.leaving = True

        self._call(go_dead)
