"""The msgpack codec of the wire records: round trips, and malformed values rejected with a clear reason."""

from __future__ import annotations

import msgpack
import pytest

from twitchcrement.records import MAX_TEXT_CHARS, ChatMessage, RecordError, SpamEvent, decode_chat, decode_spam_event

TS = 1_704_557_984_398


def chat(**overrides) -> ChatMessage:
    values = dict(
        channel="nymn",
        user_login="jontemillian",
        display_name="jontEmillian",
        user_id="433352132",
        room_id="62300805",
        text="forsenParty EDM \U000e0000",
        sent_ts=TS,
        message_id="8f921b5d-29b1-4c70-bc87-7a88a9d32ba8",
        is_action=False,
        is_subscriber=True,
        badges="subscriber/36,twitch-recap-2023/1",
        emotes="",
        received_at=TS + 169,
    )
    values.update(overrides)
    return ChatMessage(**values)


def packed(**fields) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def test_chat_round_trip_keeps_every_field():
    message = chat(is_action=True, emotes="25:0-4")
    assert decode_chat(message.encode()) == message
    assert decode_chat(message.encode()).encode() == message.encode()


def test_optional_fields_default_when_absent():
    minimal = decode_chat(packed(channel="nymn", user_login="a", text="hi", sent_ts=TS))
    assert (minimal.display_name, minimal.is_action, minimal.badges, minimal.received_at) == ("", False, "", 0)


def test_unknown_fields_from_newer_writers_are_ignored():
    assert decode_chat(packed(channel="nymn", user_login="a", text="hi", sent_ts=TS, colour="#FF0000")).text == "hi"


def test_spam_event_round_trip():
    event = SpamEvent(
        event_id="e" * 32,
        kind="crowd",
        channel="nymn",
        window_start=TS,
        window_end=TS + 10_000,
        text="forsenParty EDM",
        message_hash="ab12",
        message_count=94,
        distinct_users=40,
        variants=3,
        top_users=[["patixxl", 7], ["jontemillian", 3]],
        first_ts=TS,
        last_ts=TS + 9000,
    )
    assert decode_spam_event(event.encode()) == event


VALID = chat().encode()
MALFORMED = {
    "empty": (b"", "empty value"),
    "truncated": (VALID[:-5], "truncated"),
    "trailing bytes": (VALID + b"\x00", "trailing bytes"),
    "reserved byte": (b"\xc1", "not a msgpack value"),
    "not a map": (msgpack.packb(["nymn", "a", "hi", TS]), "expected a map"),
    "missing channel": (packed(user_login="a", text="hi", sent_ts=TS), "missing field 'channel'"),
    "missing text": (packed(channel="nymn", user_login="a", sent_ts=TS), "missing field 'text'"),
    "ts as string": (
        packed(channel="nymn", user_login="a", text="hi", sent_ts="1704557984398"),
        "'sent_ts' must be int",
    ),
    "ts as bool": (packed(channel="nymn", user_login="a", text="hi", sent_ts=True), "'sent_ts' must be int"),
    "ts in seconds": (
        packed(channel="nymn", user_login="a", text="hi", sent_ts=1_704_557_984),
        "Unix time in milliseconds",
    ),
    "text as bytes": (packed(channel="nymn", user_login="a", text=b"hi", sent_ts=TS), "'text' must be str"),
    "channel with #": (packed(channel="#nymn", user_login="a", text="hi", sent_ts=TS), "channel login"),
    "oversize text": (
        packed(channel="nymn", user_login="a", text="x" * (MAX_TEXT_CHARS + 1), sent_ts=TS),
        "over the limit",
    ),
    "oversize value": (b"\xc6" + (70_000).to_bytes(4, "big") + b"x" * 70_000, "over the limit"),
    "invalid utf-8": (
        b"\x84\xa7channel\xa4nymn\xaauser_login\xa1a\xa4text\xa2\xff\xfe\xa7sent_ts" + msgpack.packb(TS),
        "not valid UTF-8",
    ),
    "is_action as int": (
        packed(channel="nymn", user_login="a", text="hi", sent_ts=TS, is_action=1),
        "'is_action' must be bool",
    ),
    "map with int keys": (msgpack.packb({1: "nymn"}), "not a msgpack value"),
    "not bytes": ("a string", "expected bytes"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_values_raise_record_error_naming_the_problem(name):
    value, reason = MALFORMED[name]
    with pytest.raises(RecordError, match=reason):
        decode_chat(value)


def test_spam_event_rejects_unknown_kind_and_bad_top_users():
    base = dict(
        event_id="e",
        channel="nymn",
        window_start=TS,
        window_end=TS,
        text="x",
        message_hash="h",
        message_count=1,
        distinct_users=1,
    )
    with pytest.raises(RecordError, match="'kind'"):
        decode_spam_event(packed(kind="storm", **base))
    with pytest.raises(RecordError, match="top_users"):
        decode_spam_event(packed(kind="crowd", top_users=[["a", "7"]], **base))
