"""Property-based fuzzing: the IRC line parser, the tag unescaper, the msgpack decoders and the config raise only
their documented errors (IrcParseError, RecordError, ConfigError), whatever they are given. 10,000 inputs each."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.irc_parser import IrcParseError, parse_line, to_chat, unescape_tag_value
from twitchcrement import config as configuration
from twitchcrement.records import ChannelList, ChatMessage, RecordError, decode_chat, decode_spam

FUZZ = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
REAL_LINE = (
    "@badge-info=subscriber/36;badges=subscriber/36;color=#FF4500;display-name=Patixxl;emotes=;"
    "id=3d2e1f;mod=0;room-id=62300805;subscriber=1;tmi-sent-ts=1704557990123;user-id=1 "
    ":patixxl!patixxl@patixxl.tmi.twitch.tv PRIVMSG #nymn :forsenParty EDM"
)

# IRC-shaped lines: fragments of real syntax glued in any order, so the fuzzer reaches deep into the parser.
FRAGMENTS = st.sampled_from(
    [
        "@",
        ";",
        "=",
        " ",
        ":",
        "!",
        "@host",
        "PRIVMSG",
        "#nymn",
        "#",
        "\\",
        "\\s",
        "\\:",
        "tmi-sent-ts=",
        "1704557990123",
        "-1",
        "display-name=",
        "\x01ACTION ",
        "\x01",
        "PING",
        "RECONNECT",
        "001",
        "\r",
        "\n",
        "\x00",
        "é",
        "\U000e0000",
        "🐸",
        "9" * 30,
    ]
)
IRC_LIKE = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=30).map("".join)


def _parse_all_the_way(line: str) -> None:
    try:
        parsed = parse_line(line)
        to_chat(parsed, received_at=1_704_557_990_000)
    except IrcParseError:
        pass


@pytest.mark.slow
@FUZZ
@given(
    st.one_of(
        st.text(max_size=600),
        IRC_LIKE,
        st.builds(
            lambda cut, junk: REAL_LINE[:cut] + junk + REAL_LINE[cut:],
            st.integers(0, len(REAL_LINE)),
            st.text(max_size=5),
        ),
    )
)
def test_irc_parser_raises_only_irc_parse_error(line: str) -> None:
    _parse_all_the_way(line)


@pytest.mark.slow
@FUZZ
@given(st.text(alphabet=st.sampled_from(["\\", "s", ":", "r", "n", "x", " ", ";", "é"]), max_size=40) | st.text())
def test_tag_unescaper_never_raises_and_never_grows(value: str) -> None:
    assert len(unescape_tag_value(value)) <= len(value)


MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
FIELDS = [
    "channel",
    "user_login",
    "text",
    "sent_ts",
    "type",
    "event_id",
    "kind",
    "window_start",
    "window_end",
    "message_hash",
    "message_count",
    "distinct_users",
    "top_users",
    "top_variants",
    "topic_id",
    "first_seen",
    "last_seen",
    "source",
    "updated_at",
    "channels",
]
RECORD_LIKE = st.dictionaries(st.sampled_from(FIELDS), MSGPACK_VALUES, max_size=12)
VALID = ChatMessage(channel="nymn", user_login="patixxl", text="forsenParty", sent_ts=1_704_557_990_123).encode()


def _packed(value: object) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return b"\xc1"  # msgpack's never-used byte: still a bad record to decode


@pytest.mark.slow
@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        RECORD_LIKE.map(_packed),
        MSGPACK_VALUES.map(_packed),
        st.builds(
            lambda cut, junk: VALID[:cut] + junk + VALID[cut:], st.integers(0, len(VALID)), st.binary(max_size=4)
        ),
    )
)
def test_msgpack_decoders_raise_only_record_error(data: bytes) -> None:
    for decoder in (decode_chat, decode_spam, ChannelList.decode):
        try:
            decoder(data)
        except RecordError as exc:
            assert "\n" not in str(exc)


TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=20),
    st.lists(st.text(max_size=8) | st.integers(), max_size=3),
)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    # JSON strings, ints and floats are TOML, but for DEL, which TOML wants escaped
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


@pytest.mark.parametrize("setting", configuration.SETTINGS, ids=[s.key for s in configuration.SETTINGS])
def test_any_value_of_any_key_loads_or_fails_in_one_line_naming_the_key(setting, tmp_path_factory) -> None:
    """From the file and from the environment: a value either loads or gives one ConfigError line with the key."""
    section, name = setting.key.split(".", 1)
    path = tmp_path_factory.mktemp("config") / "fuzz.toml"
    seen = {"rejected": 0}

    @settings(max_examples=150, deadline=None, database=None)
    @given(TOML_VALUES, st.text(max_size=20))
    def check(value: object, env_value: str) -> None:
        path.write_text(f"[{section}]\n{name} = {_toml(value)}\n")
        for source, load in (
            ("file", lambda: configuration.load(path, environ={})),
            (
                "environment",
                lambda: configuration.load(path.parent / "none.toml", environ={setting.env_name: env_value})
                if "\x00" not in env_value
                else None,
            ),
        ):
            try:
                load()
            except configuration.ConfigError as exc:
                message = str(exc)
                if "none.toml" in message:
                    continue  # the missing file of the environment case: not about the value
                assert setting.key in message and "\n" not in message, (source, message)
                seen["rejected"] += 1

    (path.parent / "none.toml").write_text("")
    check()
    assert seen["rejected"] > 0  # every key has values it refuses
