"""The chat-log formats replay reads, each a module of readers; `FORMATS` in the order a tie is decided."""

from ingest.formats import clientlogs, irc, tables, vod
from ingest.formats.base import CaptureError, Format, Hints, Source

FORMATS: list[Format] = [*irc.FORMATS, *tables.FORMATS, *clientlogs.FORMATS, *vod.FORMATS]

__all__ = ["FORMATS", "CaptureError", "Format", "Hints", "Source"]
