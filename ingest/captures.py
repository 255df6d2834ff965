"""Recorded chat files -> ChatMessages in time order.

The format of a file is chosen by its content (`ingest/formats/`: the IRC family, CSV and JSON lines, IRC client
logs, VOD chat downloads); gzip files are read through, and a directory stands for all the files in it. Messages out
of order within a file are sorted: in memory up to `SORT_RUN` messages, beyond that in sorted runs spilled to
temporary files and merged, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import operator
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgpack

from ingest.formats import FORMATS, CaptureError, Format, Hints, Source
from ingest.formats.base import HEAD_BYTES
from ingest.irc_parser import ChatParser
from twitchcrement.records import ChatMessage

log = logging.getLogger(__name__)

SORT_RUN = 100_000  # messages of one file held in memory at once while sorting it (about 50 MB)
_SAMPLE_LINES = 50
_MIN_SCORE = 0.5  # a text format must recognise at least half of a file's first lines
# A spilled message is its fields in order: dataclasses.asdict deep-copies and was 5x the cost of the parsing.
_FIELD_VALUES = operator.attrgetter(*(f.name for f in dataclasses.fields(ChatMessage)))

__all__ = ["Capture", "CaptureError", "Hints", "captures", "known_formats", "merged", "SORT_RUN"]


def known_formats() -> str:
    return ", ".join(f.name for f in FORMATS)


def detect(source: Source) -> Format:
    """The format whose shape the file's content has, or CaptureError naming the formats known."""
    head = source.head()
    lines = [line.rstrip("\r") for line in head.lstrip("\ufeff").split("\n") if line.strip()]
    if len(head) >= HEAD_BYTES and lines:
        lines.pop()  # cut off by the sample's end
    lines = lines[:_SAMPLE_LINES]
    scored = [(f.score(lines, source.path), -rank, f) for rank, f in enumerate(FORMATS) if f.score is not None]
    best_score, _, best = max(scored, key=lambda s: s[:2])
    if best_score >= _MIN_SCORE:
        return best
    if head.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        document = source.document()
        for candidate in FORMATS:
            if candidate.accepts is not None and candidate.accepts(document):
                return candidate
    raise CaptureError(f"capture {source.path}: not a chat log in any format this replay knows ({known_formats()})")


class Capture:
    """One recorded file; iterate it for ChatMessages in time order. `problems` and `parser` count what was
    skipped, `notes` say how the file was read (times spread, VOD offsets used)."""

    def __init__(self, path: str | Path, hints: Hints | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise CaptureError(f"capture {self.path}: no such file")
        self.hints = hints or Hints()
        self.source = Source(self.path, self.hints)
        self._format = detect(self.source)
        self.format = self._format.name

    @property
    def parser(self) -> ChatParser:
        return self.source.parser

    @property
    def problems(self) -> Counter[str]:
        return self.source.problems

    @property
    def notes(self) -> list[str]:
        return self.source.notes

    @property
    def skipped(self) -> int:
        return self.parser.error_count + sum(self.problems.values())

    def summary(self) -> dict[str, object]:
        """What was skipped, by kind: the IRC parser's counts and the format reader's."""
        return {
            "format": self.format,
            "skipped": self.skipped,
            **self.parser.summary(),
            "problems_by_kind": dict(self.problems),
        }

    def fresh(self) -> Capture:
        """The same file to read again (a looping replay)."""
        return Capture(self.path, self.hints)

    def __iter__(self) -> Iterator[ChatMessage]:
        return in_time_order(self._format.read(self.source))


def in_time_order(messages: Iterable[ChatMessage], run_size: int = SORT_RUN) -> Iterator[ChatMessage]:
    """The messages sorted by sent_ts (stable: equal times keep the file's order), holding at most `run_size` of
    them in memory: longer inputs are sorted in runs written to temporary files and merged."""
    run: list[ChatMessage] = []
    spilled: list[IO[bytes]] = []
    try:
        for message in messages:
            run.append(message)
            if len(run) >= run_size:
                spilled.append(_spill(run))
                run = []
        run.sort(key=_sent)
        if not spilled:
            yield from run
            return
        log.info("sorting a capture through temporary files", extra={"runs": len(spilled) + 1})
        yield from heapq.merge(*(_unspill(f) for f in spilled), iter(run), key=_sent)
    finally:
        for handle in spilled:
            handle.close()


def _sent(message: ChatMessage) -> int:
    return message.sent_ts


def _spill(run: list[ChatMessage]) -> IO[bytes]:
    run.sort(key=_sent)
    handle = tempfile.TemporaryFile(prefix="twitchcrement-sort-")
    packer = msgpack.Packer(use_bin_type=True)
    for message in run:
        handle.write(packer.pack(_FIELD_VALUES(message)))
    handle.seek(0)
    return handle


def _unspill(handle: IO[bytes]) -> Iterator[ChatMessage]:
    for values in msgpack.Unpacker(handle, raw=False):
        yield ChatMessage(*values)  # written by this process from valid messages: no second validation


def captures(paths: Iterable[str | Path], hints: Hints | None = None) -> list[Capture]:
    """The captures of files and directories (all files inside, recursively). A file named on its own must be
    readable; a file inside a directory in no known format is skipped with a warning."""
    found: list[Capture] = []
    for given in map(Path, paths):
        if not given.is_dir():
            found.append(Capture(given, hints))
            continue
        members = sorted(p for p in given.rglob("*") if p.is_file() and not p.name.startswith("."))
        readable = 0
        for member in members:
            try:
                found.append(Capture(member, hints))
                readable += 1
            except CaptureError as exc:
                log.warning("skipping a file in a capture directory", extra={"reason": str(exc)})
        if not readable:
            raise CaptureError(
                f"capture directory {given}: no file in it is a chat log this replay knows ({known_formats()})"
            )
    return found


def merged(sources: Iterable[Capture]) -> Iterable[ChatMessage]:
    """Several captures as one stream in time order (each is in order; this merges them)."""
    return heapq.merge(*sources, key=_sent)
