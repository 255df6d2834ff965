"""The channel list: the top live channels from Twitch Helix, or a channels file, published on a compacted topic.

Helix `GET /streams` is sorted by viewers; pages may repeat or skip streams while viewer counts move, so entries
are deduplicated by user_id. Credentials come from the environment (TWITCH_CLIENT_ID, TWITCH_APP_TOKEN) and
are never logged. The published list (topic `ingest.channels_topic`, key "top") is what the reader joins and what
the dashboard's channel picker shows.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twitchcrement.config import Config, project_path
from twitchcrement.errors import UserError
from twitchcrement.records import ChannelEntry, ChannelList

log = logging.getLogger(__name__)

CLIENT_ID_ENV = "TWITCH_CLIENT_ID"
APP_TOKEN_ENV = "TWITCH_APP_TOKEN"
LIST_KEY = b"top"


class HelixError(UserError, RuntimeError):
    """Helix could not be used (bad credentials, repeated failures); the message says which and what to do."""


@dataclass(frozen=True)
class HelixCredentials:
    client_id: str
    app_token: str

    def __repr__(self) -> str:  # never show the token, even in a traceback
        return f"HelixCredentials(client_id={self.client_id!r}, app_token=<hidden>)"

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> HelixCredentials | None:
        env = os.environ if environ is None else environ
        client_id, token = env.get(CLIENT_ID_ENV, "").strip(), env.get(APP_TOKEN_ENV, "").strip()
        return cls(client_id, token) if client_id and token else None


class HelixClient:
    def __init__(
        self,
        base_url: str,
        credentials: HelixCredentials,
        timeout_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        max_wait_s: float = 60.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.max_wait_s = max_wait_s

    def _get(self, path: str, params: dict[str, str]) -> dict:
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(
            url,
            headers={
                "Client-Id": self.credentials.client_id,
                "Authorization": f"Bearer {self.credentials.app_token}",
                "Accept": "application/json",
            },
        )
        for attempt in range(5):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = json.loads(response.read().decode("utf-8"))
                    self._respect_budget(response.headers)
                    return body
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    raise HelixError(
                        f"Helix rejected the credentials (401) at {self.base_url}{path}: "
                        f"check {CLIENT_ID_ENV} and {APP_TOKEN_ENV}"
                    ) from None
                if exc.code == 429:
                    wait = self._until_reset(exc.headers, fallback=2.0**attempt)
                    log.warning("Helix rate limit hit (429); waiting", extra={"seconds": round(wait, 1)})
                    self.sleep(wait)
                    continue
                if exc.code >= 500:
                    self.sleep(min(2.0**attempt, self.max_wait_s))
                    continue
                raise HelixError(f"Helix answered {exc.code} for {self.base_url}{path}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                if attempt == 4:
                    raise HelixError(f"Helix at {self.base_url} is unreachable ({exc})") from None
                self.sleep(min(2.0**attempt, self.max_wait_s))
            except ValueError:
                raise HelixError(f"Helix answered something that is not JSON for {self.base_url}{path}") from None
        raise HelixError(f"Helix kept failing for {self.base_url}{path} (5 attempts)")

    def _until_reset(self, headers: object, fallback: float) -> float:
        try:
            reset = float(headers.get("Ratelimit-Reset"))  # type: ignore[attr-defined]
        except (TypeError, ValueError, AttributeError):
            return fallback
        return min(max(reset - time.time(), 0.0) + 0.1, self.max_wait_s)

    def _respect_budget(self, headers: object) -> None:
        remaining = headers.get("Ratelimit-Remaining")  # type: ignore[attr-defined]
        if remaining is not None and remaining.isdigit() and int(remaining) == 0:
            self.sleep(self._until_reset(headers, fallback=1.0))

    def top_streams(self, count: int) -> list[ChannelEntry]:
        """The `count` most watched live channels, most viewers first, each once."""
        seen: set[str] = set()
        entries: list[ChannelEntry] = []
        cursor: str | None = None
        while len(entries) < count:
            params = {"first": "100", "after": cursor} if cursor else {"first": "100"}
            page = self._get("/streams", params)
            for stream in page.get("data", []):
                user_id, login = str(stream.get("user_id", "")), str(stream.get("user_login", "")).lower()
                if not user_id or not login or user_id in seen:
                    continue
                seen.add(user_id)
                entries.append(ChannelEntry(login, int(stream.get("viewer_count", 0) or 0)))
                if len(entries) == count:
                    break
            cursor = (page.get("pagination") or {}).get("cursor")
            if not cursor or not page.get("data"):
                break
        entries.sort(key=lambda e: e.viewers, reverse=True)
        return entries


def read_channels_file(path: str | Path) -> list[ChannelEntry]:
    """One channel a line ('#' optional); blank lines and lines starting with '//' or ';' are skipped."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise HelixError(f"channels file {file}: cannot read it ({exc.strerror})") from None
    names: list[str] = []
    for line in lines:
        name = line.strip().lstrip("#").lower()
        if name and not name.startswith(("//", ";")) and name not in names:
            names.append(name)
    return [ChannelEntry(n, 0) for n in names]


class ChannelSource:
    """Where the channel list comes from: Helix with credentials, else the channels file (and it says so)."""

    def __init__(self, config: Config, channels_file: str | None = None, credentials: HelixCredentials | None = None):
        self.config = config
        # A file named on the command line is relative to the working directory; one from the config, to the project.
        if channels_file:
            self.channels_file = channels_file
        elif config.ingest.channels_file:
            self.channels_file = str(project_path(config.ingest.channels_file))
        else:
            self.channels_file = ""
        self.credentials = credentials if credentials is not None else HelixCredentials.from_environment()

    @property
    def kind(self) -> str:
        return "file" if self.channels_file or self.credentials is None else "helix"

    def fetch(self) -> ChannelList:
        if self.kind == "helix":
            assert self.credentials is not None
            client = HelixClient(self.config.ingest.helix_url, self.credentials)
            entries = client.top_streams(self.config.ingest.top_channels)
        else:
            if not self.channels_file:
                raise HelixError(
                    f"no channel list: set {CLIENT_ID_ENV} and {APP_TOKEN_ENV} for the top channels "
                    f"from Helix, or give a channels file (--channels-file, ingest.channels_file)"
                )
            log.info("no Helix credentials given: reading the channels file", extra={"path": self.channels_file})
            entries = read_channels_file(self.channels_file)[: self.config.ingest.top_channels]
        return ChannelList(
            source=self.kind, updated_at=int(time.time() * 1000), channels=[[e.login, e.viewers] for e in entries]
        )


def publish(config: Config, channels: ChannelList, producer: Any = None) -> None:
    """Put the list on the compacted channels topic so the dashboard shows the same channels the reader joins."""
    from twitchcrement.clients import kafka_producer

    own = producer is None
    producer = producer or kafka_producer(config, linger_ms=0)
    try:
        producer.send(config.ingest.channels_topic, key=LIST_KEY, value=channels.encode())
        producer.flush(timeout=30)
    finally:
        if own:
            producer.close(timeout=5)
    log.info("published channel list", extra={"channels": len(channels.channels), "source": channels.source})


def latest(config: Config, timeout_s: float = 5.0) -> ChannelList | None:
    """The last published channel list, or None if none was published yet."""
    from kafka import TopicPartition

    from twitchcrement.clients import kafka_consumer

    consumer = kafka_consumer(config, enable_auto_commit=False)
    try:
        partition = TopicPartition(config.ingest.channels_topic, 0)
        consumer.assign([partition])
        end = consumer.end_offsets([partition])[partition]
        if end == 0:
            return None
        consumer.seek(partition, end - 1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == LIST_KEY:
                        return ChannelList.decode(record.value)  # type: ignore[return-value]
        return None
    finally:
        consumer.close()
