"""Twitch's IRC dialect: one line -> tags, prefix, command, params -> a ChatMessage.

Used both by the live reader and by the replay of raw captures, so that both see chat the same way. Parsing never
raises to its caller through ChatParser: a malformed line is counted by kind and logged once per kind.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass

from twitchcrement.records import MAX_NAME_CHARS, MAX_TEXT_CHARS, ChatMessage

log = logging.getLogger(__name__)

MAX_LINE_CHARS = 16 * 1024  # Twitch lines run past RFC 1459's 512 bytes (tags alone may be 8 KiB)
_COMMAND_RE = re.compile(r"^(?:[A-Za-z]+|\d{3})$")
_CHANNEL_RE = re.compile(r"^#[a-z0-9_]{1,50}$")
_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ACTION_PREFIX = "\x01ACTION "


class IrcParseError(ValueError):
    """A line that is not valid IRC (or not a valid PRIVMSG); `kind` names the problem for counting."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(slots=True)
class IrcLine:
    tags: dict[str, str]
    prefix: str
    command: str
    params: list[str]

    @property
    def nick(self) -> str:
        return self.prefix.split("!", 1)[0] if self.prefix else ""


def unescape_tag_value(value: str) -> str:
    """IRCv3 tag value unescaping: \\: -> ';', \\s -> ' ', \\\\ -> '\\', \\r, \\n; other \\x -> x; a lone \\ at the
    end is dropped."""
    if "\\" not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char == "\\":
            if i + 1 < n:
                nxt = value[i + 1]
                out.append(_TAG_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def parse_line(line: str) -> IrcLine:
    """Parse one IRC line (without its CR LF). Raises IrcParseError."""
    if not line:
        raise IrcParseError("empty_line", "no content")
    if len(line) > MAX_LINE_CHARS:
        raise IrcParseError("line_too_long", f"{len(line)} characters, limit {MAX_LINE_CHARS}")
    rest = line
    tags: dict[str, str] = {}
    if rest[0] == "@":
        space = rest.find(" ")
        if space < 0:
            raise IrcParseError("tags_without_command", line[:80])
        for item in rest[1:space].split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = unescape_tag_value(value)
        rest = rest[space + 1 :].lstrip(" ")
    prefix = ""
    if rest[:1] == ":":
        space = rest.find(" ")
        if space < 0:
            raise IrcParseError("prefix_without_command", line[:80])
        prefix = rest[1:space]
        rest = rest[space + 1 :].lstrip(" ")
    if rest[:1] == ":":
        raise IrcParseError("missing_command", line[:80])  # a trailing parameter where the command should be
    trailing = None
    cut = rest.find(" :")
    if cut >= 0:
        trailing = rest[cut + 2 :]
        rest = rest[:cut]
    parts = rest.split()
    if not parts:
        raise IrcParseError("missing_command", line[:80])
    command = parts[0]
    if not _COMMAND_RE.match(command):
        raise IrcParseError("bad_command", repr(command[:40]))
    params = parts[1:]
    if trailing is not None:
        params.append(trailing)
    return IrcLine(tags, prefix, command.upper(), params)


def _flag(tags: dict[str, str], name: str) -> bool:
    return tags.get(name) == "1"


def to_chat(parsed: IrcLine, received_at: int, fallback_ts: int | None = None) -> ChatMessage:
    """A PRIVMSG as a ChatMessage. `fallback_ts` times lines without tmi-sent-ts (captures without tags)."""
    params = parsed.params
    if len(params) < 2:
        raise IrcParseError("privmsg_missing_text", f"{len(params)} parameter(s)")
    target = params[0].lower()
    if not _CHANNEL_RE.match(target):
        raise IrcParseError("privmsg_bad_channel", repr(params[0][:60]))
    # Twitch sends a one-word text without the ':'; a multi-word one without ':' is joined back.
    text = params[1] if len(params) == 2 else " ".join(params[1:])
    login = parsed.nick.lower()
    if not login or len(login) > MAX_NAME_CHARS:
        raise IrcParseError("privmsg_bad_sender", repr(parsed.prefix[:60]))
    tags = parsed.tags
    sent = tags.get("tmi-sent-ts")
    if sent is not None:
        if not (sent.isascii() and sent.isdigit()):  # str.isdigit also takes "²" and other non-ASCII digits
            raise IrcParseError("bad_tmi_sent_ts", repr(sent[:30]))
        sent_ts = int(sent)
    elif fallback_ts is not None:
        sent_ts = fallback_ts
    else:
        sent_ts = received_at
    is_action = text.startswith(_ACTION_PREFIX)
    if is_action:
        text = text[len(_ACTION_PREFIX) :]
        if text.endswith("\x01"):
            text = text[:-1]
    if not text:
        raise IrcParseError("privmsg_empty_text", "no text")
    if len(text) > MAX_TEXT_CHARS:
        raise IrcParseError("text_too_long", f"{len(text)} characters")
    return ChatMessage(
        channel=target[1:],
        user_login=login,
        text=text,
        sent_ts=sent_ts,
        display_name=tags.get("display-name", "")[:MAX_NAME_CHARS],
        user_id=tags.get("user-id", "")[:MAX_NAME_CHARS],
        room_id=tags.get("room-id", "")[:MAX_NAME_CHARS],
        message_id=tags.get("id", "")[:MAX_NAME_CHARS],
        is_action=is_action,
        is_mod=_flag(tags, "mod"),
        is_subscriber=_flag(tags, "subscriber"),
        is_first_msg=_flag(tags, "first-msg"),
        badges=tags.get("badges", "")[:1024],
        emotes=tags.get("emotes", "")[:4096],
        received_at=received_at,
    )


class ChatParser:
    """Lines in, ChatMessages out; counts commands and problems, logs each kind of problem once, never raises."""

    def __init__(self, source: str = "irc"):
        self.source = source
        self.commands: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def _problem(self, kind: str, detail: str, line: str) -> None:
        self.errors[kind] += 1
        if self.errors[kind] == 1:
            log.warning(
                "malformed IRC line (further ones of this kind are only counted)",
                extra={"source": self.source, "kind": kind, "detail": detail, "line": line[:200]},
            )

    def decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._problem("bad_utf8", f"byte {exc.start}", raw.decode("utf-8", "replace"))
            return raw.decode("utf-8", "replace")

    def parse(
        self, line: str | bytes, received_at: int | None = None, fallback_ts: int | None = None
    ) -> ChatMessage | None:
        """The ChatMessage of a PRIVMSG line; None for any other command or a malformed line (counted)."""
        if isinstance(line, (bytes, bytearray)):
            line = self.decode(bytes(line))
        line = line.rstrip("\r\n")
        now = int(time.time() * 1000) if received_at is None else received_at
        try:
            parsed = parse_line(line)
            self.commands[parsed.command] += 1
            if parsed.command != "PRIVMSG":
                return None
            return to_chat(parsed, now, fallback_ts)
        except IrcParseError as exc:
            self._problem(exc.kind, str(exc), line)
            return None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def summary(self) -> dict[str, object]:
        return {
            "privmsg": self.commands.get("PRIVMSG", 0),
            "other_commands": sum(v for k, v in self.commands.items() if k != "PRIVMSG"),
            "malformed": self.error_count,
            "malformed_by_kind": dict(self.errors),
        }
