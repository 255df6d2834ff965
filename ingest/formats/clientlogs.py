"""Logs that IRC and Twitch chat clients write: irssi, WeeChat, ZNC and Chatterino.

They are written in the logging client's local time (--timezone; UTC unless given), one line a message, in the
order the client received them. Most give only the time of day: the day comes from the log's own lines (irssi's
"Log opened" and "Day changed", Chatterino's "Start logging at"), else from the file name, else --date; midnight
passed without such a line is seen as the time of day going back by more than two hours. irssi logs by default
only to the minute: the messages of one minute then get their seconds spread evenly over it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.formats.base import Format, Source, share
from twitchcrement.records import ChatMessage

_MIDNIGHT_JUMP_S = 2 * 3600  # more than a DST fall-back (1 h), less than any real day's wrap


class LocalClock:
    """Times of day in a client's log -> Unix ms."""

    def __init__(self, source: Source):
        self.source = source
        self.zone = source.hints.timezone
        self.day: dt.date | None = None
        self.last_s: int | None = None

    def new_day(self, day: dt.date) -> None:
        self.day, self.last_s = day, None

    def at(self, hours: str, minutes: str, seconds: str | None) -> int:
        if self.day is None:
            self.day = self.source.date()
        of_day = int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
        if self.last_s is not None and of_day < self.last_s - _MIDNIGHT_JUMP_S:
            self.day += dt.timedelta(days=1)
        self.last_s = of_day
        when = dt.datetime.combine(self.day, dt.time(int(hours), int(minutes), int(seconds or 0)), tzinfo=self.zone)
        return int(when.timestamp() * 1000)


def _nick_message(
    source: Source, sent_ts: int, nick: str, text: str, is_action: bool = False, channel: str | None = None
) -> ChatMessage | None:
    return source.message(
        channel=source.channel(channel),
        user_login=nick.lower(),
        display_name=nick,
        text=text,
        sent_ts=sent_ts,
        is_action=is_action,
    )


def _spread_minutes(stamped: Iterator[tuple[int, bool, dict[str, Any]]], source: Source) -> Iterator[ChatMessage]:
    """(time ms, to the minute only?, message fields) -> messages; the k-th of n messages of one minute-only
    stamp gets k * 60 / n seconds, so 10 s windows downstream still see the minute's chat spread out."""
    group: list[dict[str, Any]] = []
    group_ts = 0

    def flush() -> Iterator[ChatMessage]:
        for k, fields in enumerate(group):
            message = _nick_message(source, group_ts + k * 60_000 // len(group), **fields)
            if message is not None:
                yield message
        group.clear()

    for sent_ts, minute_only, fields in stamped:
        if group and (not minute_only or sent_ts != group_ts):
            yield from flush()
        if minute_only:
            if not group:
                source.note("times to the minute only: each minute's messages get their seconds spread evenly")
            group_ts = sent_ts
            group.append(fields)
        else:
            message = _nick_message(source, sent_ts, **fields)
            if message is not None:
                yield message
    yield from flush()


# irssi: "--- Log opened Sat Jan 06 17:19:44 2024", "--- Day changed Sun Jan 07 2024", "17:19 < nick> text",
# "17:19  * nick does something", "17:19 -!- nick [user@host] has joined #channel" (the time format is the user's
# log_timestamp, "%H:%M " by default).
_IRSSI_TIME = r"(\d{2}):(\d{2})(?::(\d{2}))?"
_IRSSI_CHAT = re.compile(_IRSSI_TIME + r" <[ @+%&~]?([^>\s]+)> ?(.*)$")
_IRSSI_ACTION = re.compile(_IRSSI_TIME + r"\s+\* (\S+) (.*)$")
_IRSSI_EVENT = re.compile(_IRSSI_TIME + r" -!- (.*)$")
_IRSSI_JOIN = re.compile(r"\S+ \[[^\]]*\] has joined #(\w+)")
_IRSSI_DAY = re.compile(r"^--- (?:Log opened|Day changed) \w{3} (\w{3}) (\d{1,2})(?: [\d:]+)? (\d{4})$")
_IRSSI_ANY = re.compile(r"^(?:--- Log (?:opened|closed)|--- Day changed|" + _IRSSI_TIME + r" (?:<|-!-|\s+\*))")


def read_irssi(source: Source) -> Iterator[ChatMessage]:
    clock = LocalClock(source)
    channel: str | None = None

    def stamped() -> Iterator[tuple[int, bool, dict[str, Any]]]:
        nonlocal channel
        for line in source.lines():
            day = _IRSSI_DAY.match(line)
            if day:
                month, mday, year = day.groups()
                clock.new_day(dt.datetime.strptime(f"{year} {month} {mday}", "%Y %b %d").date())
                continue
            if line.startswith("--- Log closed"):
                continue
            found = _IRSSI_CHAT.match(line) or _IRSSI_ACTION.match(line)
            if found:
                hours, minutes, seconds, nick, text = found.groups()
                yield (
                    clock.at(hours, minutes, seconds),
                    seconds is None,
                    {"nick": nick, "text": text, "is_action": found.re is _IRSSI_ACTION, "channel": channel},
                )
                continue
            event = _IRSSI_EVENT.match(line)
            if event:
                joined = _IRSSI_JOIN.match(event.group(4))
                channel = joined.group(1) if joined and channel is None else channel
                continue
            source.problem("unrecognised_line", line)

    return _spread_minutes(stamped(), source)


# WeeChat's logger: "YYYY-MM-DD HH:MM:SS<TAB>prefix<TAB>message", where the prefix is the nick (with its mode
# character) or a marker: "-->" joins, "<--" parts, "--" network, " *" an action ("nick does something").
_WEECHAT = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\t([^\t]*)\t(.*)$")
_WEECHAT_MARKERS = {"-->", "<--", "--", "=!=", "<->", ""}
_WEECHAT_JOIN = re.compile(r"\S+ \([^)]*\) has joined #(\w+)")


def read_weechat(source: Source) -> Iterator[ChatMessage]:
    channel: str | None = None
    for line in source.lines():
        found = _WEECHAT.match(line)
        if not found:
            source.problem("unrecognised_line", line)
            continue
        *stamp, prefix, text = found.groups()
        prefix = prefix.strip()
        if prefix in _WEECHAT_MARKERS:
            joined = _WEECHAT_JOIN.match(text)
            channel = joined.group(1) if joined and channel is None else channel
            continue
        is_action = prefix == "*"
        if is_action:
            prefix, _, text = text.partition(" ")
        year, month, day, hours, minutes, seconds = (int(p) for p in stamp)
        when = dt.datetime(year, month, day, hours, minutes, seconds, tzinfo=source.hints.timezone)
        message = _nick_message(source, int(when.timestamp() * 1000), prefix.lstrip("@+%&~"), text, is_action, channel)
        if message is not None:
            yield message


# ZNC's log module: "[HH:MM:SS] <nick> text", "[HH:MM:SS] * nick does something", "[HH:MM:SS] *** Joins: nick
# (ident@host)"; one file a channel and day, named by the day ("2024-01-06.log" in a "#channel" folder, or
# "twitch_#channel_20240106.log").
_ZNC = re.compile(r"^\[(\d{2}):(\d{2}):(\d{2})\] (?:<([^>\s]+)> (.*)|\* (\S+) (.*)|\*\*\* .*|-\S+- .*)$")


def read_znc(source: Source) -> Iterator[ChatMessage]:
    clock = LocalClock(source)
    for line in source.lines():
        found = _ZNC.match(line)
        if not found:
            source.problem("unrecognised_line", line)
            continue
        hours, minutes, seconds, nick, text, actor, action = found.groups()
        if nick is None and actor is None:
            continue  # joins, parts, notices
        message = _nick_message(
            source, clock.at(hours, minutes, seconds), nick or actor, text if nick else action, is_action=nick is None
        )
        if message is not None:
            yield message


# Chatterino: "# Start logging at 2024-01-06 17:19:44 CET", then "[HH:MM:SS] login: text", or
# "[HH:MM:SS] 表示名 login: text" when the display name is not the login; lines with no login are its own notices.
_CHATTERINO_START = re.compile(r"^# (?:Start|Stop) logging at (\d{4})-(\d{2})-(\d{2}) [\d:]+ ?(\S*)$")
_CHATTERINO = re.compile(r"^\[(\d{2}):(\d{2}):(\d{2})\] (.*)$")
_CHATTERINO_CHAT = re.compile(r"^ ?(?:(\S+) )?([A-Za-z0-9_]{1,25}): (.*)$")
_UTC_NAMES = {"UTC", "GMT", "Z", "UTC+0", "GMT+0"}


def read_chatterino(source: Source) -> Iterator[ChatMessage]:
    clock = LocalClock(source)
    for line in source.lines():
        start = _CHATTERINO_START.match(line)
        if start:
            year, month, day, zone = start.groups()
            if line.startswith("# Start"):
                clock.new_day(dt.date(int(year), int(month), int(day)))
                clock.zone = _zone(source, zone, clock.day)
            continue
        found = _CHATTERINO.match(line)
        if not found:
            source.problem("unrecognised_line", line)
            continue
        chat = _CHATTERINO_CHAT.match(found.group(4))
        if not chat:
            continue  # Chatterino's own notices (timeouts, subs, "now live")
        display, login, text = chat.groups()
        message = source.message(
            channel=source.channel(),
            user_login=login.lower(),
            display_name=display or login,
            text=text,
            sent_ts=clock.at(*found.groups()[:3]),
        )
        if message is not None:
            yield message


def _zone(source: Source, name: str, day: dt.date | None) -> dt.tzinfo:
    """Chatterino names its local zone by abbreviation (CET, EST), which no table maps back to one zone: UTC is
    taken as said; other logs are read in --timezone, and one whose abbreviation differs from it says so."""
    if name in _UTC_NAMES:
        return dt.UTC
    noon = dt.datetime.combine(day or dt.date.today(), dt.time(12), tzinfo=source.hints.timezone)
    if name and name != noon.tzname():
        source.note(f"the log's times are in {name}; read as {noon.tzname()} (set --timezone to its zone)")
    return source.hints.timezone


def _chatterino_score(lines: list[str], path: Path) -> float:
    return share(re.compile(r"^(# (Start|Stop) logging at |\[\d{2}:\d{2}:\d{2}\] (\S+ )?[A-Za-z0-9_]+: )"), lines)


FORMATS = [
    Format(
        "irssi",
        "17:19 < nick> text   (after --- Log opened ...)",
        read_irssi,
        score=lambda lines, path: share(_IRSSI_ANY, lines),
    ),
    Format(
        "weechat",
        "2024-01-06 17:19:44<TAB>nick<TAB>text",
        read_weechat,
        score=lambda lines, path: share(_WEECHAT, lines),
    ),
    Format("znc", "[17:19:44] <nick> text", read_znc, score=lambda lines, path: share(_ZNC, lines)),
    Format(
        "chatterino", "[17:19:44] nick: text   (after # Start logging at ...)", read_chatterino, score=_chatterino_score
    ),
]
