"""The records that cross Kafka, and their msgpack codec. This is the one place their schemas live.

A record is a msgpack map keyed by field name, so any msgpack tool can read it and optional fields can be added
later. Decoding either returns a complete, valid record or raises RecordError saying what is wrong: it never
returns half a record. Unknown keys are ignored so that older readers accept newer writers.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, ClassVar, NamedTuple

import msgpack
import msgspec

MAX_RECORD_BYTES = 64 * 1024
# Twitch caps a chat message at 500 characters; 2,000 leaves room for escapes and clients that pad messages.
MAX_TEXT_CHARS = 2_000
MAX_NAME_CHARS = 64
_MIN_TS_MS = 1_000_000_000_000  # 2001-09-09: anything earlier is not a Twitch timestamp in milliseconds
_MAX_TS_MS = 32_503_680_000_000  # year 3000
_CHANNEL_RE = re.compile(r"^[a-z0-9_]{1,50}\Z")  # \Z: "$" would let a trailing newline through


class RecordError(ValueError):
    """A value could not be decoded into a record; the message says which record and what was wrong."""


def _check_channel(value: str) -> str | None:
    return None if _CHANNEL_RE.match(value) else "must be a lower-case channel login (a-z, 0-9, _), without '#'"


def _check_ts(value: int) -> str | None:
    return None if _MIN_TS_MS <= value <= _MAX_TS_MS else "must be a Unix time in milliseconds"


def _check_count(value: int) -> str | None:
    return None if 0 <= value < 2**63 else "must be a count from 0"


# The checks above as msgspec constraints, for the fast decoder (Record.decode).
_CHECKS_AS_MSGSPEC: dict[Any, dict[str, Any]] = {
    _check_channel: {"pattern": _CHANNEL_RE.pattern},
    _check_ts: {"ge": _MIN_TS_MS, "le": _MAX_TS_MS},
    _check_count: {"ge": 0, "le": 2**63 - 1},
}
_FAST_DECODERS: dict[type, Any] = {}


def _check_counted(what: str) -> Any:
    def check(value: list[Any]) -> str | None:
        for entry in value:
            if not (
                isinstance(entry, (list, tuple))
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], int)
                and not isinstance(entry[1], bool)
            ):
                return f"must be a list of [{what}, count] pairs"
        return None

    return check


def spec(
    kind: type, *, required: bool = False, max_chars: int | None = None, check: Any = None, default: Any = None
) -> Any:
    """A dataclass field with its wire rules: type, required or not, length bound, extra check."""
    meta = {"kind": kind, "required": required, "max_chars": max_chars, "check": check}
    if required:
        return field(metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=kind() if default is None else default, metadata=meta)


class Record:
    """Base of the wire records: encode to msgpack bytes, decode with full validation."""

    record_name: ClassVar[str]
    wire_type: ClassVar[str | None] = None  # records sharing a topic carry {"type": wire_type}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        if self.wire_type:
            data["type"] = self.wire_type
        return data

    def encode(self) -> bytes:
        return msgpack.packb(self.to_dict(), use_bin_type=True)

    @classmethod
    def from_dict(cls, data: Any) -> Record:
        name = cls.record_name
        if not isinstance(data, dict):
            raise RecordError(f"{name}: expected a map of fields, got {type(data).__name__}")
        if cls.wire_type and data.get("type", cls.wire_type) != cls.wire_type:
            raise RecordError(f"{name}: record of type {data.get('type')!r}, expected {cls.wire_type!r}")
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            meta = f.metadata
            if f.name not in data:
                if meta["required"]:
                    raise RecordError(f"{name}: missing field '{f.name}'")
                continue
            value = data[f.name]
            kind = meta["kind"]
            if kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            elif kind is list:
                ok = isinstance(value, (list, tuple))
                value = [list(v) if isinstance(v, (list, tuple)) else v for v in value] if ok else value
            else:
                ok = isinstance(value, kind)
            if not ok:
                raise RecordError(f"{name}: field '{f.name}' must be {kind.__name__}, got {type(value).__name__}")
            if meta["max_chars"] is not None and len(value) > meta["max_chars"]:
                raise RecordError(
                    f"{name}: field '{f.name}' is {len(value)} characters long, over the limit of {meta['max_chars']}"
                )
            if meta["check"] is not None:
                complaint = meta["check"](value)
                if complaint:
                    raise RecordError(f"{name}: field '{f.name}' = {_short(value)} {complaint}")
            values[f.name] = value
        return cls(**values)

    @classmethod
    def decode(cls, data: bytes) -> Record:
        """Bytes -> a valid record, or RecordError. Records whose rules msgspec can state are decoded and
        validated by it in one C pass (several times faster: the detector decodes every chat message); anything
        it refuses goes through from_dict, which says exactly what is wrong."""
        fast = _fast_decoder(cls)
        if fast is not None and isinstance(data, (bytes, bytearray, memoryview)) and 0 < len(data) <= MAX_RECORD_BYTES:
            try:
                return cls(*msgspec.structs.astuple(fast.decode(data)))
            except (msgspec.MsgspecError, ValueError, TypeError):  # invalid UTF-8 comes as UnicodeDecodeError
                pass
        return cls.from_dict(unpack(data, cls.record_name))


def _fast_decoder(cls: type) -> Any:
    """A msgspec decoder with the same wire rules as cls's fields (type, required, length, check), or None when
    a rule has no msgspec form. Built once per class."""
    if cls in _FAST_DECODERS:
        return _FAST_DECODERS[cls]
    decoder = None
    spec_fields = []
    for f in fields(cls):
        meta = f.metadata
        constraints: dict[str, Any] = {}
        if meta["max_chars"] is not None:
            constraints["max_length"] = meta["max_chars"]
        if meta["check"] is not None:
            if meta["check"] not in _CHECKS_AS_MSGSPEC:
                break
            constraints.update(_CHECKS_AS_MSGSPEC[meta["check"]])
        if meta["kind"] not in (str, int, bool):
            break
        kind = Annotated[meta["kind"], msgspec.Meta(**constraints)] if constraints else meta["kind"]
        spec_fields.append((f.name, kind) if meta["required"] else (f.name, kind, f.default))
    else:
        decoder = msgspec.msgpack.Decoder(msgspec.defstruct(f"{cls.__name__}Wire", spec_fields))
    _FAST_DECODERS[cls] = decoder
    return decoder


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unpack(data: bytes, name: str = "record") -> Any:
    """msgpack bytes -> Python value, with every way of being malformed turned into one RecordError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RecordError(f"{name}: expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise RecordError(f"{name}: empty value")
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"{name}: value is {len(data)} bytes, over the limit of {MAX_RECORD_BYTES}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except msgpack.ExtraData:
        raise RecordError(f"{name}: trailing bytes after the msgpack value") from None
    except (msgpack.OutOfData, ValueError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            raise RecordError(f"{name}: a string is not valid UTF-8 (byte {exc.start})") from None
        if isinstance(exc, msgpack.OutOfData) or "incomplete" in str(exc).lower():
            raise RecordError(f"{name}: truncated msgpack value") from None
        raise RecordError(f"{name}: not a msgpack value ({exc or 'invalid format byte'})") from None
    except (TypeError, msgpack.StackError, msgpack.FormatError) as exc:
        raise RecordError(f"{name}: not a msgpack value ({exc or 'invalid format byte'})") from None


@dataclass(slots=True)
class ChatMessage(Record):
    """One chat message as read from Twitch IRC (or replayed). Key on Kafka: the channel."""

    record_name: ClassVar[str] = "chat message"

    channel: str = spec(str, required=True, max_chars=50, check=_check_channel)
    user_login: str = spec(str, required=True, max_chars=MAX_NAME_CHARS)
    text: str = spec(str, required=True, max_chars=MAX_TEXT_CHARS)
    sent_ts: int = spec(int, required=True, check=_check_ts)  # tmi-sent-ts, Unix ms
    display_name: str = spec(str, max_chars=MAX_NAME_CHARS)
    user_id: str = spec(str, max_chars=MAX_NAME_CHARS)
    room_id: str = spec(str, max_chars=MAX_NAME_CHARS)
    message_id: str = spec(str, max_chars=MAX_NAME_CHARS)
    is_action: bool = spec(bool, default=False)  # /me, a CTCP ACTION
    is_mod: bool = spec(bool, default=False)
    is_subscriber: bool = spec(bool, default=False)
    is_first_msg: bool = spec(bool, default=False)
    badges: str = spec(str, max_chars=1024)  # raw IRC tag, "subscriber/36,moderator/1"
    emotes: str = spec(str, max_chars=4096)  # raw IRC tag, "25:0-4,12-16/1902:6-10"
    # the BTTV, FFZ and 7TV emotes ingest found in the text (twitchcrement.emotes), in the tag's shape with the
    # provider in the id: "bttv-54fa925e01e468494b85b54d:0-4/7tv-60ae3c2b:6-10"
    extra_emotes: str = spec(str, max_chars=4096)
    received_at: int = spec(int, default=0, check=_check_count)  # when ingest read it, Unix ms

    @property
    def key(self) -> bytes:
        return self.channel.encode()


_EMOTE_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # Twitch's ids, and others' with their provider ("bttv-5e76...")


def emote_spans(tag: str, length: int) -> list[tuple[int, int, str]]:
    """The IRC `emotes` tag ("25:0-4,12-16/1902:6-10": id, then inclusive ranges of code points, which are
    Python's string indices) as sorted (start, end exclusive, id) spans inside a text of `length` characters;
    malformed parts are skipped."""
    spans = []
    for part in (tag or "").split("/"):
        emote_id, _, ranges = part.partition(":")
        if not _EMOTE_ID.match(emote_id):
            continue
        for span in ranges.split(","):
            first, _, last = span.partition("-")
            if first.isdigit() and last.isdigit() and int(first) <= int(last) < length:
                spans.append((int(first), int(last) + 1, emote_id))
    spans.sort()
    return [s for i, s in enumerate(spans) if i == 0 or s[0] >= spans[i - 1][1]]  # overlapping ranges: the first


EVENT_STATES = ("open", "closed", "undone")
EVENT_KINDS = ("crowd", "flood", "emote_wave")


@dataclass(slots=True)
class SpamEvent(Record):
    """A cluster of similar messages in one channel and one event-time window that reached the spam thresholds."""

    record_name: ClassVar[str] = "spam event"
    wire_type: ClassVar[str | None] = "spam_event"

    event_id: str = spec(str, required=True, max_chars=64)  # deterministic: same input, same id
    kind: str = spec(
        str,
        required=True,
        check=lambda v: None
        if v in EVENT_KINDS
        else "must be 'crowd' (many users), 'flood' (one user) or 'emote_wave' (many users, an emote)",
    )
    channel: str = spec(str, required=True, max_chars=50, check=_check_channel)
    window_start: int = spec(int, required=True, check=_check_ts)
    window_end: int = spec(int, required=True, check=_check_ts)
    text: str = spec(str, required=True, max_chars=MAX_TEXT_CHARS)  # the most frequent original text
    message_hash: str = spec(str, required=True, max_chars=64)  # hash of the normalised representative text
    message_count: int = spec(int, required=True, check=_check_count)
    distinct_users: int = spec(int, required=True, check=_check_count)
    variants: int = spec(int, default=1, check=_check_count)
    top_users: list = spec(list, default=[], check=_check_counted("user_login"))  # [[login, count], ...]
    top_variants: list = spec(list, default=[], check=_check_counted("text"))  # [[original text, count], ...]
    first_ts: int = spec(int, default=0, check=_check_count)
    last_ts: int = spec(int, default=0, check=_check_count)
    topic_id: str = spec(str, max_chars=64)
    # open: its window is still open and the wave may grow (sent again when it does); closed: final, the one the
    # history keeps; undone: an event reported open that did not hold (consumers drop it). Every record of one
    # event carries the same event_id: keep the last one.
    state: str = spec(
        str,
        default="closed",
        check=lambda v: None if v in EVENT_STATES else "must be 'open', 'closed' or 'undone'",
    )

    @property
    def key(self) -> bytes:
        return self.channel.encode()


@dataclass(slots=True)
class SpamTopic(Record):
    """A spam text that stays active in a channel across windows; updated each window it appears in."""

    record_name: ClassVar[str] = "spam topic"
    wire_type: ClassVar[str | None] = "spam_topic"

    topic_id: str = spec(str, required=True, max_chars=64)
    channel: str = spec(str, required=True, max_chars=50, check=_check_channel)
    text: str = spec(str, required=True, max_chars=MAX_TEXT_CHARS)
    message_hash: str = spec(str, required=True, max_chars=64)
    first_seen: int = spec(int, required=True, check=_check_ts)
    last_seen: int = spec(int, required=True, check=_check_ts)
    windows_active: int = spec(int, default=1, check=_check_count)
    total_messages: int = spec(int, default=0, check=_check_count)
    peak_rate: float = spec(float, default=0.0)  # messages per second in its busiest window
    ended: bool = spec(bool, default=False)

    @property
    def key(self) -> bytes:
        return self.channel.encode()


def decode_spam(data: bytes) -> SpamEvent | SpamTopic:
    """A record of the spammessage topic: an event or a topic update, by its "type"."""
    value = unpack(data, "spam record")
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == SpamTopic.wire_type:
        return SpamTopic.from_dict(value)  # type: ignore[return-value]
    if kind == SpamEvent.wire_type:
        return SpamEvent.from_dict(value)  # type: ignore[return-value]
    raise RecordError(f"spam record: unknown type {kind!r} (expected spam_event or spam_topic)")


class ChannelEntry(NamedTuple):
    login: str
    viewers: int


def _check_channel_entries(value: list[Any]) -> str | None:
    for entry in value:
        if not (
            isinstance(entry, (list, tuple))
            and len(entry) == 2
            and isinstance(entry[0], str)
            and _check_channel(entry[0]) is None
            and isinstance(entry[1], int)
        ):
            return "must be a list of [channel login, viewers] pairs"
    return None


@dataclass(slots=True)
class ChannelList(Record):
    """The channels ingest reads, most watched first. Latest value on the compacted channels topic, key "top"."""

    record_name: ClassVar[str] = "channel list"

    source: str = spec(
        str, required=True, check=lambda v: None if v in ("helix", "file") else "must be 'helix' or 'file'"
    )
    updated_at: int = spec(int, required=True, check=_check_ts)
    channels: list = spec(list, default=[], check=_check_channel_entries)  # [[login, viewers], ...]

    @property
    def entries(self) -> list[ChannelEntry]:
        return [ChannelEntry(login, viewers) for login, viewers in self.channels]

    @property
    def logins(self) -> list[str]:
        return [login for login, _ in self.channels]


def decode_chat(data: bytes) -> ChatMessage:
    return ChatMessage.decode(data)  # type: ignore[return-value]


def decode_spam_event(data: bytes) -> SpamEvent:
    return SpamEvent.decode(data)  # type: ignore[return-value]
