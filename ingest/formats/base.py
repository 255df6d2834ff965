"""What a chat-log format reader gets from the capture it reads: lines or the parsed document, hints given on the
command line, and one place to count what it could not read."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from ingest.irc_parser import ChatParser
from twitchcrement.errors import UserError
from twitchcrement.records import ChatMessage, RecordError

log = logging.getLogger("ingest.captures")

_GZIP_MAGIC = b"\x1f\x8b"
_CHANNEL_IN_PATH = re.compile(r"#([A-Za-z0-9_]{1,50})")  # irssi "#nymn.log", WeeChat "irc.twitch.#nymn.weechatlog"
_CHATTERINO_NAME = re.compile(r"^([A-Za-z0-9_]{1,50})-\d{4}-\d{2}-\d{2}$")  # "nymn-2024-01-06.log"
_DATE_IN_PATH = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_FRACTION = re.compile(r"(\.\d{6})\d+")  # .NET writes 7 fraction digits; Python reads at most 6
HEAD_BYTES = 65_536  # how much of a file its format is told by


class CaptureError(UserError, ValueError):
    """A capture file cannot be read at all (missing, unknown format, no channel or date); bad lines inside one are
    only counted."""


@dataclass(frozen=True)
class Hints:
    """What the command line says about captures whose lines do not (--channel, --date, --timezone)."""

    channel: str | None = None
    date: dt.date | None = None
    timezone: dt.tzinfo = dt.UTC


@dataclass(frozen=True)
class Format:
    """One chat-log format. Text formats score a sample of a file's first lines (the share of lines that look like
    theirs); JSON formats say whether a parsed document has their shape."""

    name: str
    example: str  # one line of what it reads, for --help and errors
    read: Callable[[Source], Iterator[ChatMessage]]
    score: Callable[[list[str], Path], float] | None = None
    accepts: Callable[[Any], bool] | None = None


def share(pattern: re.Pattern[str], lines: list[str]) -> float:
    """The share of sample lines that match: how a text format scores a file."""
    return sum(1 for line in lines if pattern.match(line)) / len(lines) if lines else 0.0


@dataclass
class Source:
    """A capture file as a format reader sees it."""

    path: Path
    hints: Hints = field(default_factory=Hints)
    parser: ChatParser = field(init=False)
    problems: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.parser = ChatParser(source=str(self.path))

    def open(self) -> BinaryIO:
        """The file's bytes, gunzipped when it is gzip (by its first bytes, whatever its name)."""
        with self.path.open("rb") as probe:
            compressed = probe.read(2) == _GZIP_MAGIC
        return gzip.open(self.path, "rb") if compressed else self.path.open("rb")  # type: ignore[return-value]

    def head(self) -> str:
        with self.open() as stream:
            try:
                return stream.read(HEAD_BYTES).decode("utf-8", "replace")
            except (OSError, EOFError) as exc:
                raise CaptureError(f"capture {self.path}: cannot read it ({exc})") from None

    def byte_lines(self) -> Iterator[bytes]:
        with self.open() as stream:
            for raw in stream:
                raw = raw.rstrip(b"\r\n")
                if raw:
                    yield raw

    def lines(self) -> Iterator[str]:
        """Non-empty lines as text; invalid UTF-8 is counted and replaced."""
        for raw in self.byte_lines():
            yield self.parser.decode(raw)

    def document(self) -> Any:
        """The whole file as one JSON document (read at once: a VOD's chat is tens of MB, not GBs). Not kept: a
        directory's documents are not all held at once while their formats are told."""
        with self.open() as stream:
            try:
                return msgspec.json.decode(stream.read())
            except (msgspec.DecodeError, OSError, EOFError) as exc:
                raise CaptureError(f"capture {self.path}: not a JSON document ({exc})") from None

    def problem(self, kind: str, detail: str) -> None:
        self.problems[kind] += 1
        if self.problems[kind] == 1:
            log.warning(
                "skipping a bad record in a capture (further ones are only counted)",
                extra={"capture": str(self.path), "kind": kind, "detail": detail[:200]},
            )

    def note(self, text: str) -> None:
        """Something the replay's user should know about how this file was read (logged once)."""
        if text not in self.notes:
            self.notes.append(text)
            log.info("capture note", extra={"capture": str(self.path), "note": text})

    def channel(self, from_log: str | None = None) -> str:
        """The channel: from the log, else from the file's path, else --channel."""
        for candidate in (from_log, self._channel_from_path, self.hints.channel):
            if candidate:
                return candidate.lstrip("#").lower()
        raise CaptureError(f"capture {self.path}: no channel in the log or its file name; pass --channel")

    @functools.cached_property
    def _channel_from_path(self) -> str | None:  # asked for every message of a client log: the path is read once
        found = _CHATTERINO_NAME.match(self.path.name.split(".")[0])
        if found:
            return found.group(1)
        for part in (self.path.name, self.path.parent.name):
            found = _CHANNEL_IN_PATH.search(part)
            if found:
                return found.group(1)
        return None

    def date(self, from_log: dt.date | None = None) -> dt.date:
        """The day of a log whose lines carry only the time: from the log, else the file name, else --date."""
        if from_log is not None:
            return from_log
        found = _DATE_IN_PATH.search(self.path.name)
        if found:
            try:
                return dt.date(*(int(g) for g in found.groups()))
            except ValueError:
                pass
        if self.hints.date is not None:
            return self.hints.date
        raise CaptureError(f"capture {self.path}: no date in the log or its file name; pass --date YYYY-MM-DD")

    def message(self, **fields: Any) -> ChatMessage | None:
        """A validated ChatMessage (received when sent: it is a recording), or None with the problem counted."""
        fields.setdefault("received_at", fields.get("sent_ts", 0))
        try:
            return ChatMessage.from_dict(fields)  # type: ignore[return-value]
        except RecordError as exc:
            self.problem("bad_message", str(exc))
            return None


def iso_ms(value: Any) -> int | None:
    """An ISO 8601 / RFC 3339 time ("2024-01-06T16:19:44.3981234Z") as Unix ms, UTC when it names no zone; None
    when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def emotes_tag(spans: list[tuple[str, int, int]]) -> str:
    """(emote id, first, last index inclusive) spans as the IRC `emotes` tag, "25:0-4,12-16/1902:6-10"."""
    by_id: dict[str, list[str]] = {}
    for emote_id, first, last in spans:
        by_id.setdefault(str(emote_id), []).append(f"{first}-{last}")
    return "/".join(f"{emote_id}:{','.join(ranges)}" for emote_id, ranges in by_id.items())
