"""Tabular captures: CSV exports (channel, sender, date in Unix ms, message) and the project's own JSON lines (one
ChatMessage's fields a line, as `ingest synth --out` writes them)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from ingest.formats.base import CaptureError, Format, Source
from twitchcrement.records import ChatMessage, RecordError

_CSV_COLUMNS = {"channel", "sender", "date", "message"}


def _csv_score(lines: list[str], path: Path) -> float:
    header = {name.strip().lower() for name in lines[0].split(",")} if lines else set()
    if _CSV_COLUMNS <= header:
        return 1.0
    return 0.5 if path.suffix.lower() == ".csv" and "," in (lines[0] if lines else "") else 0.0


def read_csv(source: Source) -> Iterator[ChatMessage]:
    with source.open() as stream:
        rows = csv.DictReader(io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""))
        missing = _CSV_COLUMNS - set(rows.fieldnames or [])
        if missing:
            raise CaptureError(f"capture {source.path}: CSV lacks the column(s) {', '.join(sorted(missing))}")
        for row in rows:
            try:
                stamp = int(row["date"])
            except (TypeError, ValueError):
                source.problem("bad_csv_row", f"line {rows.line_num}: date {row['date']!r} is not Unix ms")
                continue
            message = source.message(
                channel=(row["channel"] or "").lstrip("#").lower(),
                user_login=(row["sender"] or "").lower(),
                text=row["message"] or "",
                sent_ts=stamp,
            )
            if message is not None:
                yield message


def _jsonl_score(lines: list[str], path: Path) -> float:
    try:
        first = json.loads(lines[0]) if lines else None
    except ValueError:
        return 0.0
    return 1.0 if isinstance(first, dict) and {"channel", "user_login", "text", "sent_ts"} <= first.keys() else 0.0


def read_jsonl(source: Source) -> Iterator[ChatMessage]:
    for number, line in enumerate(source.lines(), 1):
        try:
            yield ChatMessage.from_dict(json.loads(line))  # type: ignore[misc]
        except (RecordError, ValueError) as exc:
            source.problem("bad_jsonl_line", f"line {number}: {exc}")


FORMATS = [
    Format("csv", "channel,sender,date,message  (date in Unix ms)", read_csv, score=_csv_score),
    Format(
        "jsonl",
        '{"channel": "nymn", "user_login": "...", "text": "...", "sent_ts": 1704557984398} a line',
        read_jsonl,
        score=_jsonl_score,
    ),
]
