"""Recorded chat files -> ChatMessages in time order. Formats (chosen by the file's name and first bytes):

- raw IRC lines with or without IRCv3 tags, one a line (`.irc`, `.txt`);
- a recent-messages JSON capture, `{"messages": [raw IRC lines]}` (`.json`);
- the IRC logger format `YYYY-MM-DD_HH:MM:SS ;;; <raw lines>` with blank lines between entries (`.log`);
- CSV with the columns channel, sender, date (Unix ms), message (`.csv`);
- the project's own JSONL: one ChatMessage's fields a line (`.jsonl`), as `synth` writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from ingest.irc_parser import ChatParser
from twitchcrement.records import ChatMessage, RecordError

log = logging.getLogger(__name__)

_LOG_ENTRY = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}) ;;; (.*)$")
_LOG_END_MARKER = "RECORDING INTERRUPTED BY USER"
_LOG_START_MARKER = "START OF RECORDED CHAT MESSAGES"


class CaptureError(ValueError):
    """A capture file cannot be read at all (missing, unknown format); bad lines inside one are only counted."""


class Capture:
    """One recorded file; iterate it for ChatMessages. `parser` and `problems` count what was skipped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CaptureError(f"capture {self.path}: no such file")
        self.parser = ChatParser(source=str(self.path))
        self.problems: Counter[str] = Counter()
        self.format = self._detect()

    def _detect(self) -> str:
        suffix = self.path.suffix.lower()
        if suffix in (".jsonl", ".csv", ".log"):
            return suffix[1:]
        if suffix == ".json":
            return "recentmessages"
        with self.path.open("rb") as head:
            first = head.read(64)
        if _LOG_ENTRY.match(first.decode("utf-8", "replace").split("\n")[0]):
            return "log"
        return "irc"

    def _problem(self, kind: str, detail: str) -> None:
        self.problems[kind] += 1
        if self.problems[kind] == 1:
            log.warning("skipping a bad record in a capture (further ones are only counted)",
                        extra={"capture": str(self.path), "kind": kind, "detail": detail[:200]})

    def __iter__(self) -> Iterator[ChatMessage]:
        reader = {"irc": self._irc_lines, "recentmessages": self._recentmessages, "log": self._log,
                  "csv": self._csv, "jsonl": self._jsonl}[self.format]
        return reader()

    @property
    def skipped(self) -> int:
        return self.parser.error_count + sum(self.problems.values())

    def _irc_lines(self) -> Iterator[ChatMessage]:
        with self.path.open("rb") as lines:
            for number, raw in enumerate(lines):
                raw = raw.rstrip(b"\r\n")
                if raw:
                    message = self.parser.parse(raw, received_at=0)
                    if message is not None:
                        yield _received_when_sent(message)

    def _recentmessages(self) -> Iterator[ChatMessage]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            lines = document["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CaptureError(f"capture {self.path}: not a recent-messages JSON document ({exc})") from None
        for raw in lines:
            if not isinstance(raw, str):
                self._problem("not_a_line", repr(raw))
                continue
            message = self.parser.parse(raw, received_at=0)
            if message is not None:
                yield _received_when_sent(message)

    def _log(self) -> Iterator[ChatMessage]:
        stamp: int | None = None
        with self.path.open("rb") as lines:
            for raw in lines:
                line = self.parser.decode(raw).rstrip("\r\n")
                if not line:
                    continue
                entry = _LOG_ENTRY.match(line)
                if entry:
                    when = dt.datetime.strptime(entry.group(1), "%Y-%m-%d_%H:%M:%S")
                    stamp = int(when.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)  # the log's clock: UTC
                    line = entry.group(2).rstrip("\r")
                    if line.startswith(_LOG_END_MARKER):
                        return  # what follows the logger's end marker is not chat
                    if line.startswith(_LOG_START_MARKER):
                        continue
                elif stamp is None:
                    self._problem("line_before_first_entry", line)
                    continue
                message = self.parser.parse(line, received_at=stamp, fallback_ts=stamp)
                if message is not None:
                    yield message

    def _csv(self) -> Iterator[ChatMessage]:
        # CSV exports are not always in time order (the 2017 multichannel capture jumps back minutes at a time), and
        # the detector drops what comes more than its watermark behind its channel: sort them (stable) first.
        return iter(sorted(self._csv_rows(), key=lambda m: m.sent_ts))

    def _csv_rows(self) -> Iterator[ChatMessage]:
        with self.path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = csv.DictReader(handle)
            missing = {"channel", "sender", "date", "message"} - set(rows.fieldnames or [])
            if missing:
                raise CaptureError(f"capture {self.path}: CSV lacks the column(s) {', '.join(sorted(missing))}")
            for row in rows:
                try:
                    yield ChatMessage.from_dict({
                        "channel": (row["channel"] or "").lstrip("#").lower(), "user_login": (row["sender"] or "").lower(),
                        "text": row["message"] or "", "sent_ts": int(row["date"]), "received_at": int(row["date"])})
                except (RecordError, ValueError, TypeError) as exc:
                    self._problem("bad_csv_row", f"line {rows.line_num}: {exc}")

    def _jsonl(self) -> Iterator[ChatMessage]:
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield ChatMessage.from_dict(json.loads(line))  # type: ignore[misc]
                except (RecordError, ValueError) as exc:
                    self._problem("bad_jsonl_line", f"line {number}: {exc}")


def _received_when_sent(message: ChatMessage) -> ChatMessage:
    if message.received_at == 0:
        message.received_at = message.sent_ts
    return message


def merged(captures: Iterable[Capture]) -> Iterator[ChatMessage]:
    """Several captures as one stream in time order (each file is already in order; this merges them)."""
    return heapq.merge(*captures, key=lambda m: m.sent_ts)
