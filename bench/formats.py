"""How fast replay reads each chat-log format: messages per second on one core, file to ChatMessages in order.

    .venv/bin/python -m bench.formats [--messages 100000] [--repeat 3]

The same synthetic chat is written out in every format replay reads (as each tool lays out its files), then read
back through `ingest.captures.Capture` (detection, parsing, validation, the sort) with nothing downstream; best of
`--repeat`. Kafka is not involved: the producer's own rate is in the capacity part of `make bench`. Writes
bench/results/formats.json and formats.md; `make bench` includes the table in its report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.captures import Capture, Hints
from ingest.synth import Generator, SynthSettings
from twitchcrement import PROJECT_ROOT
from twitchcrement.records import ChatMessage

RESULTS = PROJECT_ROOT / "bench" / "results"
CHANNEL = "benchchannel"


def _clock(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts / 1000, dt.UTC)


def _irc(m: ChatMessage) -> str:
    return (
        f"@badge-info=;badges=;display-name={m.user_login};emotes=;id={m.message_id};mod=0;room-id=1;"
        f"subscriber=0;tmi-sent-ts={m.sent_ts};user-id=1 :{m.user_login}!{m.user_login}@{m.user_login}"
        f".tmi.twitch.tv PRIVMSG #{CHANNEL} :{m.text}"
    )


def _lines(render: Callable[[ChatMessage], str], head: str = "") -> Callable[[list[ChatMessage]], str]:
    return lambda messages: head + "".join(render(m) + "\n" for m in messages)


def _irssi(messages: list[ChatMessage]) -> str:
    first = _clock(messages[0].sent_ts)
    lines, day = [first.strftime("--- Log opened %a %b %d %H:%M:%S %Y")], first.date()
    for m in messages:
        when = _clock(m.sent_ts)
        if when.date() != day:
            day = when.date()
            lines.append(when.strftime("--- Day changed %a %b %d %Y"))
        lines.append(f"{when:%H:%M} < {m.user_login}> {m.text}")
    return "\n".join(lines) + "\n"


def _td(messages: list[ChatMessage]) -> str:
    start = messages[0].sent_ts
    return json.dumps(
        {
            "streamer": {"name": CHANNEL},
            "video": {"created_at": _clock(start).isoformat()},
            "comments": [
                {
                    "_id": m.message_id,
                    "created_at": _clock(m.sent_ts).isoformat(),
                    "content_offset_seconds": (m.sent_ts - start) / 1000,
                    "commenter": {"name": m.user_login, "display_name": m.user_login, "_id": "1"},
                    "message": {"body": m.text, "fragments": [{"text": m.text, "emoticon": None}]},
                }
                for m in messages
            ],
        }
    )


def _gql(messages: list[ChatMessage]) -> str:
    start = messages[0].sent_ts
    return json.dumps(
        [
            {
                "id": m.message_id,
                "createdAt": _clock(m.sent_ts).isoformat(),
                "contentOffsetSeconds": (m.sent_ts - start) // 1000,
                "commenter": {"id": "1", "login": m.user_login, "displayName": m.user_login},
                "message": {"fragments": [{"text": m.text, "emote": None}]},
            }
            for m in messages
        ]
    )


def _chat_downloader(messages: list[ChatMessage]) -> str:
    return json.dumps(
        [
            {
                "message_id": m.message_id,
                "message": m.text,
                "message_type": "text_message",
                "timestamp": m.sent_ts * 1000,
                "author": {"id": "1", "name": m.user_login},
            }
            for m in messages
        ]
    )


# format -> (file name, writer); the names carry no channel or date, so detection is by content alone
WRITERS: dict[str, tuple[str, Callable[[list[ChatMessage]], str]]] = {
    "irc": ("day.txt", _lines(_irc)),
    "recentmessages": ("recent.json", lambda ms: json.dumps({"messages": [_irc(m) for m in ms]})),
    "logger": ("logger.log", _lines(lambda m: f"{_clock(m.sent_ts):%Y-%m-%d_%H:%M:%S} ;;; {_irc(m)}")),
    "justlog-json": (
        "justlog.json",
        lambda ms: json.dumps(
            {
                "messages": [
                    {"raw": _irc(m), "username": m.user_login, "timestamp": _clock(m.sent_ts).isoformat(), "type": 1}
                    for m in ms
                ]
            }
        ),
    ),
    "justlog-text": (
        "justlog.txt",
        _lines(lambda m: f"[{_clock(m.sent_ts):%Y-%m-%d %H:%M:%S}] #{CHANNEL} {m.user_login}: {m.text}"),
    ),
    "csv": (
        "chat.csv",
        _lines(lambda m: f'{CHANNEL},{m.user_login},{m.sent_ts},"{m.text}"', "channel,sender,date,message\n"),
    ),
    "jsonl": ("chat.jsonl", _lines(lambda m: json.dumps(m.to_dict(), ensure_ascii=False))),
    "irssi": ("irssi.log", _irssi),
    "weechat": ("weechat.log", _lines(lambda m: f"{_clock(m.sent_ts):%Y-%m-%d %H:%M:%S}\t{m.user_login}\t{m.text}")),
    "znc": ("znc.log", _lines(lambda m: f"[{_clock(m.sent_ts):%H:%M:%S}] <{m.user_login}> {m.text}")),
    "chatterino": (
        "chatterino.log",
        lambda ms: _lines(
            lambda m: f"[{_clock(m.sent_ts):%H:%M:%S}] {m.user_login}: {m.text}",
            f"# Start logging at {_clock(ms[0].sent_ts):%Y-%m-%d %H:%M:%S} UTC\n",
        )(ms),
    ),
    "twitchdownloader": ("td.json", _td),
    "videocomments": ("gql.json", _gql),
    "chat-downloader": ("cd.json", _chat_downloader),
}


def measure(messages: int, repeat: int = 3) -> dict[str, Any]:
    # one channel, one day (a file of one channel's chat, as the tools write them), text without quotes for CSV
    chat = [
        m for m in Generator(SynthSettings(rate=2000, seconds=messages / 2000, channels=1, seed=3, prefix="formats"))
    ]
    chat = [
        ChatMessage(
            channel=CHANNEL,
            user_login=m.user_login,
            text=m.text.replace('"', "'"),
            sent_ts=m.sent_ts,
            message_id=m.message_id,
        )
        for m in chat
    ]
    day = _clock(chat[0].sent_ts).date()
    hints = Hints(channel=CHANNEL, date=day)
    results: dict[str, Any] = {"messages": len(chat), "formats": {}}
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as folder:
        for name, (file_name, write) in WRITERS.items():
            path = Path(folder) / file_name
            path.write_text(write(chat), encoding="utf-8")
            variants = {name: path}
            if name in ("irc", "twitchdownloader"):
                packed = path.with_name(file_name + ".gz")
                packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=6))
                variants[f"{name} (gzip)"] = packed
            for label, target in variants.items():
                best, read, detected = float("inf"), 0, ""
                for _ in range(repeat):
                    started = time.perf_counter()
                    capture = Capture(target, hints)
                    read = sum(1 for _ in capture)
                    best = min(best, time.perf_counter() - started)
                    detected = capture.format
                results["formats"][label] = {
                    "detected": detected,
                    "read": read,
                    "seconds": round(best, 3),
                    "msg_per_s": round(read / best),
                    "bytes": target.stat().st_size,
                }
                print(f"{label:22s} {read:>8,} msgs  {read / best:>10,.0f} msg/s", file=sys.stderr)
    return results


def table(results: dict[str, Any]) -> list[str]:
    lines = [
        f"### Replay: reading each format ({results['messages']:,} messages, one core, no Kafka)",
        "",
        "| format | detected as | messages read | msg/s | file MB |",
        "|---|---|---|---|---|",
    ]
    for label, row in results["formats"].items():
        lines.append(
            f"| {label} | {row['detected']} | {row['read']:,} | {row['msg_per_s']:,} | {row['bytes'] / 1e6:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.formats", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = measure(args.messages, args.repeat)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "formats.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "formats.md").write_text("\n".join(table(results)) + "\n")
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
