"""Captures of Twitch's own IRC lines: raw lines (as justlog and rustlog store their day logs), the recent-messages
service's JSON, the dsteffan logger, and justlog/rustlog's JSON and text API answers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.formats.base import Format, Source, iso_ms, share
from twitchcrement.records import ChatMessage

_RAW_IRC = re.compile(r"^(?:@\S+ )?(?::\S+ )?[A-Z0-9]+(?: |$)")


def _received_when_sent(message: ChatMessage | None) -> ChatMessage | None:
    if message is not None and message.received_at == 0:
        message.received_at = message.sent_ts
    return message


def read_raw_irc(source: Source) -> Iterator[ChatMessage]:
    for raw in source.byte_lines():
        message = _received_when_sent(source.parser.parse(raw, received_at=0))
        if message is not None:
            yield message


def read_recent_messages(source: Source) -> Iterator[ChatMessage]:
    for raw in source.document()["messages"]:
        if not isinstance(raw, str):
            source.problem("not_a_line", repr(raw))
            continue
        message = _received_when_sent(source.parser.parse(raw, received_at=0))
        if message is not None:
            yield message


# The logger of dsteffan/twitch_chat_analysis: "YYYY-MM-DD_HH:MM:SS ;;; <one socket read: IRC lines>", blank
# lines between entries; its clock is UTC.
_LOGGER_ENTRY = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}) ;;; (.*)$")
_LOGGER_END = "RECORDING INTERRUPTED BY USER"
_LOGGER_START = "START OF RECORDED CHAT MESSAGES"


def read_logger(source: Source) -> Iterator[ChatMessage]:
    stamp: int | None = None
    for line in source.lines():
        entry = _LOGGER_ENTRY.match(line)
        if entry:
            when = dt.datetime.strptime(entry.group(1), "%Y-%m-%d_%H:%M:%S")
            stamp = int(when.replace(tzinfo=dt.UTC).timestamp() * 1000)
            line = entry.group(2).rstrip("\r")
            if line.startswith(_LOGGER_END):
                return  # what follows the logger's end marker is not chat
            if line.startswith(_LOGGER_START):
                continue
        elif stamp is None:
            source.problem("line_before_first_entry", line)
            continue
        message = source.parser.parse(line, received_at=stamp, fallback_ts=stamp)
        if message is not None:
            yield message


# justlog and rustlog answer /channel/NAME/YYYY/MM/DD?json with {"messages": [{"text", "username", "displayName",
# "channel", "timestamp" (RFC 3339), "id", "type" (go-twitch-irc's: 1 = PRIVMSG), "raw", "tags"}]}; "raw" is the
# IRC line as received, tags and all, so it is read like live chat.
_JUSTLOG_PRIVMSG = 1


def _justlog_json(document: Any) -> bool:
    messages = document.get("messages") if isinstance(document, dict) else None
    return (
        isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[0], dict)
        and "timestamp" in messages[0]
        and ("raw" in messages[0] or "username" in messages[0])
    )


def read_justlog_json(source: Source) -> Iterator[ChatMessage]:
    for entry in source.document()["messages"]:
        if not isinstance(entry, dict):
            source.problem("not_a_message", repr(entry))
            continue
        if entry.get("raw"):
            message = _received_when_sent(source.parser.parse(entry["raw"], received_at=0))
        elif entry.get("type") == _JUSTLOG_PRIVMSG:
            sent_ts = iso_ms(entry.get("timestamp"))
            if sent_ts is None:
                source.problem("bad_timestamp", repr(entry.get("timestamp")))
                continue
            message = source.message(
                channel=str(entry.get("channel") or source.channel()).lower(),
                user_login=str(entry.get("username", "")).lower(),
                display_name=str(entry.get("displayName", "")),
                text=entry.get("text"),
                message_id=str(entry.get("id", "")),
                sent_ts=sent_ts,
            )
        else:
            continue  # timeouts, subs and notices: not chat
        if message is not None:
            yield message


# justlog's plain-text answer: "[2024-01-6 16:19:44] #nymn login: text" (Go's "2006-01-2 15:04:05", UTC).
_JUSTLOG_TEXT = re.compile(r"^\[(\d{4})-(\d{1,2})-(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\] #(\w+) (?:(\w+): (.*)|.*)$")


def read_justlog_text(source: Source) -> Iterator[ChatMessage]:
    for line in source.lines():
        found = _JUSTLOG_TEXT.match(line)
        if not found:
            source.problem("unrecognised_line", line)
            continue
        *stamp, channel, login, text = found.groups()
        if login is None:
            continue  # timeouts and notices
        year, month, day, hour, minute, second = (int(p) for p in stamp)
        when = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
        message = source.message(
            channel=channel.lower(),
            user_login=login.lower(),
            display_name=login,
            text=text,
            sent_ts=int(when.timestamp() * 1000),
        )
        if message is not None:
            yield message


def _raw_irc_score(lines: list[str], path: Path) -> float:
    return share(_RAW_IRC, lines)


FORMATS = [
    Format(
        "logger",
        "2019-04-30_08:56:59 ;;; :nick!nick@nick.tmi.twitch.tv PRIVMSG #channel :text",
        read_logger,
        score=lambda lines, path: 1.0 if lines and _LOGGER_ENTRY.match(lines[0]) else 0.0,
    ),
    Format(
        "irc",
        "@tmi-sent-ts=1704557984398;... :nick!nick@nick.tmi.twitch.tv PRIVMSG #channel :text "
        "(justlog/rustlog day logs)",
        read_raw_irc,
        score=_raw_irc_score,
    ),
    Format(
        "justlog-text",
        "[2024-01-6 16:19:44] #channel nick: text",
        read_justlog_text,
        score=lambda lines, path: share(_JUSTLOG_TEXT, lines),
    ),
    Format(
        "recentmessages",
        '{"messages": ["@tmi-sent-ts=... PRIVMSG #channel :text", ...]}',
        read_recent_messages,
        accepts=lambda doc: isinstance(doc, dict)
        and isinstance(doc.get("messages"), list)
        and all(isinstance(m, str) for m in doc["messages"][:10]),
    ),
    Format(
        "justlog-json",
        '{"messages": [{"raw": "...", "username": ..., "timestamp": ...}]}',
        read_justlog_json,
        accepts=_justlog_json,
    ),
]
