"""Chat downloaded from a past broadcast (VOD): TwitchDownloader's JSON, chat-downloader's JSON, and Twitch's own
GraphQL VideoComment objects as twitch-archiver and other GQL clients save them.

Each comment has an offset into the VOD and usually a creation time. Some downloads carry creation times that
cannot be right (all of a VOD's chat within seconds, when they were fetched): when the creation times span less
than half of what the offsets span, the time of a message is the VOD's start plus its offset, and the replay
says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ingest.formats.base import Format, Source, emotes_tag, iso_ms
from twitchcrement.records import ChatMessage

_PLAUSIBLE_SHARE = 0.5
_MIN_SPAN_TO_JUDGE_S = 60.0


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _times(
    source: Source, comments: list[tuple[int | None, float | None]], vod_start_ms: int | None
) -> list[int | None]:
    """Each comment's Unix ms from (creation time, offset s): the creation times when they are plausible, else the
    VOD's start plus the offset."""
    created = [c for c, _ in comments if c is not None]
    offsets = [o for _, o in comments if o is not None]
    offset_span = max(offsets) - min(offsets) if offsets else 0.0
    created_span = (max(created) - min(created)) / 1000 if created else 0.0
    if len(created) == len(comments) and (
        offset_span < _MIN_SPAN_TO_JUDGE_S or created_span >= _PLAUSIBLE_SHARE * offset_span
    ):
        return [c for c, _ in comments]
    if vod_start_ms is None:
        pairs = [(c, o) for c, o in comments if c is not None and o is not None]
        if not pairs:
            return [c for c, _ in comments]
        vod_start_ms = min(c - int(o * 1000) for c, o in pairs)
    source.note(
        f"creation times implausible (they span {created_span:.0f} s, the offsets {offset_span:.0f} s): "
        "times are the VOD's start plus each message's offset"
    )
    return [vod_start_ms + int(o * 1000) if o is not None else None for _, o in comments]


def _fragments_emotes(fragments: Any, text: str, emote_id_of: Any) -> str:
    """The emotes tag from message fragments [{text, emote...}], when the fragments spell out the text."""
    if not isinstance(fragments, list):
        return ""
    spans, position = [], 0
    for fragment in fragments:
        if not isinstance(fragment, dict):
            return ""
        piece = str(fragment.get("text") or "")
        emote_id = emote_id_of(fragment)
        if emote_id and piece:
            spans.append((str(emote_id), position, position + len(piece) - 1))
        position += len(piece)
    return emotes_tag(spans) if position == len(text) else ""


def _object(mapping: Any, key: str) -> dict[str, Any]:
    """mapping[key] when it is an object, else {} (JSON downloads put null, or nothing, in many places)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, dict) else {}


def _badges(badges: Any, set_key: str) -> str:
    if not isinstance(badges, list):
        return ""
    return ",".join(f"{b.get(set_key)}/{b.get('version', 1)}" for b in badges if isinstance(b, dict) and b.get(set_key))


def _flags(badges: str) -> dict[str, bool]:
    sets = {badge.split("/")[0] for badge in badges.split(",") if badge}
    return {"is_mod": "moderator" in sets, "is_subscriber": "subscriber" in sets or "founder" in sets}


def _emit(source: Source, rows: list[dict[str, Any]], times: list[int | None]) -> Iterator[ChatMessage]:
    for row, sent_ts in zip(rows, times, strict=True):
        if sent_ts is None:
            source.problem("no_time", repr(row)[:200])
            continue
        message = source.message(sent_ts=sent_ts, **row)
        if message is not None:
            yield message


# TwitchDownloader: {"streamer": {"name", "id"}, "video": {"created_at", ...}, "comments": [{"_id", "created_at",
# "content_offset_seconds", "commenter": {"name", "display_name", "_id"}, "message": {"body", "fragments":
# [{"text", "emoticon": {"emoticon_id"}}], "emoticons": [{"_id", "begin", "end"}], "user_badges": [{"_id",
# "version"}], "is_action"}}]}
def _twitchdownloader(document: Any) -> bool:
    comments = document.get("comments") if isinstance(document, dict) else None
    return (
        isinstance(comments, list)
        and bool(comments)
        and isinstance(comments[0], dict)
        and "content_offset_seconds" in comments[0]
    )


def _td_emotes(message: dict[str, Any], text: str) -> str:
    emoticons = message.get("emoticons")
    if isinstance(emoticons, list) and emoticons:
        return emotes_tag(
            [
                (str(e["_id"]), int(e["begin"]), int(e["end"]))
                for e in emoticons
                if isinstance(e, dict)
                and e.get("_id")
                and isinstance(e.get("begin"), int)
                and isinstance(e.get("end"), int)
            ]
        )
    return _fragments_emotes(message.get("fragments"), text, lambda f: _object(f, "emoticon").get("emoticon_id"))


def read_twitchdownloader(source: Source) -> Iterator[ChatMessage]:
    document = source.document()
    streamer, video = _object(document, "streamer"), _object(document, "video")
    channel = source.channel(streamer.get("name") or video.get("user_name"))
    rows, stamps = [], []
    for comment in document["comments"]:
        commenter = comment.get("commenter") if isinstance(comment, dict) else None
        message = comment.get("message") if isinstance(comment, dict) else None
        if not isinstance(commenter, dict) or not isinstance(message, dict):
            source.problem("comment_without_commenter_or_message", repr(comment)[:200])
            continue
        text = message.get("body")
        if not isinstance(text, str):
            text = "".join(str(f.get("text") or "") for f in message.get("fragments") or [] if isinstance(f, dict))
        badges = _badges(message.get("user_badges"), "_id")
        rows.append(
            {
                "channel": channel,
                "user_login": str(commenter.get("name") or "").lower(),
                "display_name": str(commenter.get("display_name") or ""),
                "user_id": str(commenter.get("_id") or ""),
                "room_id": str(comment.get("channel_id") or ""),
                "message_id": str(comment.get("_id") or ""),
                "text": text,
                "is_action": bool(message.get("is_action")),
                "badges": badges,
                "emotes": _td_emotes(message, text),
                **_flags(badges),
            }
        )
        stamps.append((iso_ms(comment.get("created_at")), _number(comment.get("content_offset_seconds"))))
    yield from _emit(source, rows, _times(source, stamps, iso_ms(video.get("created_at"))))


# Twitch GQL VideoComment: {"id", "createdAt", "contentOffsetSeconds", "commenter": {"id", "login",
# "displayName"}, "message": {"fragments": [{"text", "emote": {"emoteID", "from"}}], "userBadges": [{"setID",
# "version"}]}}, saved as a list, as GQL edges [{"node": {...}}], or under "comments".
def _video_comments(document: Any) -> list[Any] | None:
    comments = document.get("comments") if isinstance(document, dict) else document
    if isinstance(comments, dict):
        comments = comments.get("edges")
    if not isinstance(comments, list) or not comments:
        return None
    first = comments[0].get("node", comments[0]) if isinstance(comments[0], dict) else None
    return comments if isinstance(first, dict) and "contentOffsetSeconds" in first else None


def read_video_comments(source: Source) -> Iterator[ChatMessage]:
    document = source.document()
    video = _object(document, "video")
    owner = _object(video, "owner")
    channel = source.channel(owner.get("login"))
    rows, stamps = [], []
    for comment in _video_comments(document) or []:
        comment = comment.get("node", comment) if isinstance(comment, dict) else comment
        commenter = comment.get("commenter") if isinstance(comment, dict) else None
        message = comment.get("message") if isinstance(comment, dict) else None
        if not isinstance(commenter, dict) or not isinstance(message, dict):
            source.problem("comment_without_commenter_or_message", repr(comment)[:200])  # deleted accounts
            continue
        fragments = message.get("fragments") or []
        text = "".join(str(f.get("text") or "") for f in fragments if isinstance(f, dict))
        badges = _badges(message.get("userBadges"), "setID")
        rows.append(
            {
                "channel": channel,
                "user_login": str(commenter.get("login") or "").lower(),
                "display_name": str(commenter.get("displayName") or ""),
                "user_id": str(commenter.get("id") or ""),
                "message_id": str(comment.get("id") or ""),
                "text": text,
                "badges": badges,
                "emotes": _fragments_emotes(fragments, text, lambda f: _object(f, "emote").get("emoteID")),
                **_flags(badges),
            }
        )
        stamps.append((iso_ms(comment.get("createdAt")), _number(comment.get("contentOffsetSeconds"))))
    yield from _emit(source, rows, _times(source, stamps, iso_ms(video.get("createdAt"))))


# chat-downloader (xenova): a list of {"message_id", "message", "timestamp" (Unix microseconds), "time_in_seconds",
# "author": {"id", "name", "display_name"}, "emotes": [{"id", "locations": "0-4,6-10" or ["0-4"]}],
# "message_type": "text_message"}.
def _chat_downloader(document: Any) -> bool:
    return (
        isinstance(document, list)
        and bool(document)
        and isinstance(document[0], dict)
        and "timestamp" in document[0]
        and "author" in document[0]
        and "message" in document[0]
    )


def _cd_emotes(emotes: Any) -> str:
    spans = []
    for emote in emotes if isinstance(emotes, list) else []:
        if not isinstance(emote, dict) or not emote.get("id"):
            continue
        locations = emote.get("locations") or []
        for location in locations.split(",") if isinstance(locations, str) else locations:
            first, _, last = str(location).partition("-")
            if first.isdigit() and last.isdigit():
                spans.append((str(emote["id"]), int(first), int(last)))
    return emotes_tag(spans)


def read_chat_downloader(source: Source) -> Iterator[ChatMessage]:
    channel: str | None = None
    for entry in source.document():
        if not isinstance(entry, dict) or entry.get("message_type", "text_message") != "text_message":
            continue  # subscriptions, raids and other events
        author = _object(entry, "author")
        stamp = entry.get("timestamp")
        if not isinstance(stamp, int):
            source.problem("no_time", repr(entry)[:200])
            continue
        channel = channel or source.channel(entry.get("channel_name"))
        message = source.message(
            channel=channel,
            user_login=str(author.get("name") or "").lower(),
            display_name=str(author.get("display_name") or ""),
            user_id=str(author.get("id") or ""),
            message_id=str(entry.get("message_id") or ""),
            text=entry.get("message"),
            emotes=_cd_emotes(entry.get("emotes")),
            sent_ts=stamp // 1000,
        )
        if message is not None:
            yield message


FORMATS = [
    Format(
        "twitchdownloader",
        '{"streamer": {...}, "comments": [{"content_offset_seconds": ..., "commenter": ...}]}',
        read_twitchdownloader,
        accepts=_twitchdownloader,
    ),
    Format(
        "videocomments",
        '[{"contentOffsetSeconds": ..., "createdAt": ..., "commenter": ..., "message": ...}]',
        read_video_comments,
        accepts=lambda doc: _video_comments(doc) is not None,
    ),
    Format(
        "chat-downloader",
        '[{"timestamp": <Unix us>, "author": {...}, "message": "..."}]',
        read_chat_downloader,
        accepts=_chat_downloader,
    ),
]
