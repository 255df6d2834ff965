"""The IRC line parser: real Twitch lines, tag escapes, CTCP ACTION, the missing ':' case, and malformed lines."""

from __future__ import annotations

import pytest

from ingest.irc_parser import ChatParser, IrcParseError, parse_line, unescape_tag_value

NYMN = (
    "@tmi-sent-ts=1704557984398;turbo=0;mod=0;badge-info=subscriber/38;returning-chatter=0;historical=1;"
    "user-type=;badges=subscriber/36,twitch-recap-2023/1;color=#63BD68;rm-received-ts=1704557984567;"
    "subscriber=1;id=8f921b5d-29b1-4c70-bc87-7a88a9d32ba8;display-name=jontEmillian;flags=;emotes=;"
    "user-id=433352132;first-msg=0;room-id=62300805 "
    ":jontemillian!jontemillian@jontemillian.tmi.twitch.tv PRIVMSG #nymn forsenParty"
)


def test_real_line_without_colon_before_one_word_text():
    message = ChatParser().parse(NYMN, received_at=1)
    assert (message.channel, message.user_login, message.text) == ("nymn", "jontemillian", "forsenParty")
    assert (message.sent_ts, message.display_name, message.user_id, message.room_id) == (
        1704557984398,
        "jontEmillian",
        "433352132",
        "62300805",
    )
    assert message.message_id == "8f921b5d-29b1-4c70-bc87-7a88a9d32ba8"
    assert message.is_subscriber and not message.is_mod and not message.is_first_msg
    assert message.badges == "subscriber/36,twitch-recap-2023/1"


def test_multi_word_text_with_colon_and_colons_inside():
    line = ":a!a@a.tmi.twitch.tv PRIVMSG #admiralbulldog ::rabbit_face: ClapHD"
    assert ChatParser().parse(line, received_at=5).text == ":rabbit_face: ClapHD"


def test_ctcp_action_is_text_with_is_action():
    line = "@tmi-sent-ts=1;mod=1;first-msg=1 :b!b@b.tmi.twitch.tv PRIVMSG #nymn :\x01ACTION waves KEKW\x01"
    message = ChatParser().parse(line, received_at=1_704_557_984_398)
    assert message.is_action and message.text == "waves KEKW"
    assert message.is_mod and message.is_first_msg


def test_tag_values_are_unescaped():
    assert unescape_tag_value(r"hello\sworld\:\\ok\r\n") == "hello world;\\ok\r\n"
    assert unescape_tag_value("trailing\\") == "trailing"
    assert unescape_tag_value(r"\x") == "x"
    parsed = parse_line(r"@display-name=a\sb;reply-parent-msg-body=hi\s\:)\\ :a!a@a PRIVMSG #c :x")
    assert parsed.tags == {"display-name": "a b", "reply-parent-msg-body": "hi ;)\\"}


def test_other_commands_are_counted_not_returned():
    parser = ChatParser()
    for line in (
        "PING :tmi.twitch.tv",
        ":tmi.twitch.tv 001 justinfan1 :Welcome, GLHF!",
        "@ban-duration=180;room-id=1 :tmi.twitch.tv CLEARCHAT #nymn e7om",
        ":tmi.twitch.tv RECONNECT",
        ":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands",
    ):
        assert parser.parse(line) is None
    assert parser.commands == {"PING": 1, "001": 1, "CLEARCHAT": 1, "RECONNECT": 1, "CAP": 1}
    assert parser.error_count == 0


def test_time_falls_back_when_there_is_no_tmi_sent_ts():
    line = ":a!a@a.tmi.twitch.tv PRIVMSG #nymn :KEKW"
    assert (
        ChatParser().parse(line, received_at=1_704_557_990_000, fallback_ts=1_704_557_980_000).sent_ts
        == 1_704_557_980_000
    )
    assert ChatParser().parse(line, received_at=1_704_557_990_000).sent_ts == 1_704_557_990_000


def test_bad_utf8_is_counted_and_the_message_still_delivered():
    parser = ChatParser()
    message = parser.parse(b":a!a@a PRIVMSG #nymn :caf\xe9 KEKW", received_at=1_704_557_990_000)
    assert message.text == "caf\ufffd KEKW"
    assert parser.errors == {"bad_utf8": 1}


MALFORMED = [
    ("", "empty_line"),
    ("@badges=;color=", "tags_without_command"),
    ("@a=b ", "missing_command"),
    (":prefix.only", "prefix_without_command"),
    (":a!a@a ", "missing_command"),
    (":a!a@a PRIV-MSG #nymn :x", "bad_command"),
    (":a!a@a 12 #nymn :x", "bad_command"),
    (":a!a@a 1234 #nymn :x", "bad_command"),
    ("!!! #nymn :x", "bad_command"),
    (":a!a@a PRIVMSG", "privmsg_missing_text"),
    (":a!a@a PRIVMSG #nymn", "privmsg_missing_text"),
    (":a!a@a PRIVMSG :only text", "privmsg_missing_text"),
    (":a!a@a PRIVMSG nymn :no hash", "privmsg_bad_channel"),
    (":a!a@a PRIVMSG # :empty channel", "privmsg_bad_channel"),
    (":a!a@a PRIVMSG #ny.mn :dot", "privmsg_bad_channel"),
    (":a!a@a PRIVMSG #" + "n" * 60 + " :long channel", "privmsg_bad_channel"),
    ("PRIVMSG #nymn :no prefix", "privmsg_bad_sender"),
    (":!a@a PRIVMSG #nymn :empty nick", "privmsg_bad_sender"),
    (":" + "u" * 80 + " PRIVMSG #nymn :long nick", "privmsg_bad_sender"),
    ("@tmi-sent-ts=abc :a!a@a PRIVMSG #nymn :x", "bad_tmi_sent_ts"),
    ("@tmi-sent-ts=-5 :a!a@a PRIVMSG #nymn :x", "bad_tmi_sent_ts"),
    ("@tmi-sent-ts= :a!a@a PRIVMSG #nymn :x", "bad_tmi_sent_ts"),
    ("@tmi-sent-ts=\u00b2 :a!a@a PRIVMSG #nymn :x", "bad_tmi_sent_ts"),  # found by the fuzzer: "²".isdigit()
    (":a!a@a PRIVMSG #nymn :", "privmsg_empty_text"),
    (":a!a@a PRIVMSG #nymn :\x01ACTION \x01", "privmsg_empty_text"),
    (":a!a@a PRIVMSG #nymn :" + "x" * 2_001, "text_too_long"),
    ("@" + "k=v;" * 5_000 + " :a!a@a PRIVMSG #nymn :x", "line_too_long"),
    ("x" * 20_000, "line_too_long"),
    ("@ :a!a@a", "prefix_without_command"),
    ("   ", "missing_command"),
    (":a!a@a \x00\x01 #nymn :x", "bad_command"),
    ("@a=b :a!a@a :trailing only", "missing_command"),
    ("@tmi-sent-ts=1.5 :a!a@a PRIVMSG #nymn :x", "bad_tmi_sent_ts"),
]


@pytest.mark.parametrize("line,kind", MALFORMED, ids=[k + str(i) for i, (_, k) in enumerate(MALFORMED)])
def test_malformed_lines_raise_their_kind(line, kind):
    with pytest.raises(IrcParseError) as error:
        parsed = parse_line(line)
        from ingest.irc_parser import to_chat

        to_chat(parsed, received_at=1_704_557_990_000)
    assert error.value.kind == kind


def test_chat_parser_counts_malformed_lines_logs_each_kind_once_and_keeps_going(caplog):
    parser = ChatParser()
    with caplog.at_level("WARNING"):
        for line, _ in MALFORMED * 2:
            assert parser.parse(line, received_at=1_704_557_990_000) is None
        assert parser.parse(NYMN) is not None
    assert len(MALFORMED) >= 30
    assert parser.error_count == 2 * len(MALFORMED)
    kinds = {kind for _, kind in MALFORMED}
    assert len([r for r in caplog.records if "malformed IRC line" in r.message]) == len(kinds)
