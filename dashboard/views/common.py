"""What every page shows alike: the data sources, times, chat text with its emotes, empty and timeline figures,
links to a user's page and the results tables."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import html

from dashboard.history import History
from dashboard.live import LiveFeed
from twitchcrement.emotes import image_url
from twitchcrement.records import emote_spans


@dataclass
class Sources:
    feed: LiveFeed
    history: History
    page_size: int = 20
    refresh_ms: int = 1000
    search_max_chars: int = 500
    hidden_users: frozenset[str] = frozenset()  # opted out (ingest.optout_users), perhaps after their chat was read
    emote_images: str = ""  # emotes.images_url

    def shown(self, login: str) -> bool:
        return login.lower() not in self.hidden_users


def clock(ms: int | float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def emote_image(code: str, picture: str) -> Any:
    """An emote's picture (see emote_pictures), its code as alt text and tooltip."""
    return html.Img(src=picture, alt=code, title=code, className="emote")


def emote_pictures(known_emotes: dict[str, str], images_url: str) -> dict[str, str]:
    """Emote code -> the address of its picture (twitchcrement.emotes.image_url), from code -> emote id."""
    return {code: image_url(emote_id, images_url) for code, emote_id in known_emotes.items()}


def chat_text(text: str, emotes_tag: str = "", extra_tag: str = "", images_url: str = "") -> list[Any]:
    """A chat text with its emotes as images: Twitch's (the message's emotes tag) and BTTV, FFZ and 7TV emotes
    (the tag ingest gave it, ChatMessage.extra_emotes); the rest stays text."""
    parts: list[Any] = []
    at = 0
    spans = sorted([*emote_spans(emotes_tag, len(text)), *emote_spans(extra_tag, len(text))])
    for start, end, emote_id in spans:
        if start < at:
            continue  # overlapping tags: the first
        if start > at:
            parts.append(text[at:start])
        parts.append(emote_image(text[start:end], image_url(emote_id, images_url)))
        at = end
    if at < len(text):
        parts.append(text[at:])
    return parts


def spam_text(text: str, pictures: dict[str, str]) -> list[Any]:
    """A spam text (events carry no emotes tag) with the words that chat has shown to be emotes as images
    (pictures: emote code -> picture address, see emote_pictures)."""
    if not pictures:
        return [text]
    parts: list[Any] = []
    for i, word in enumerate(text.split(" ")):
        if i:
            parts.append(" ")
        picture = pictures.get(word)
        parts.append(emote_image(word, picture) if picture else word)
    merged: list[Any] = []  # neighbouring strings as one text node
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def ms(value: dt.datetime) -> int:
    return int(value.replace(tzinfo=dt.UTC).timestamp() * 1000)


def empty_figure(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        height=280,
        margin=dict(l=40, r=20, t=40, b=30),
        annotations=[dict(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")],
        xaxis=dict(visible=False),
        yaxis=dict(visible=False),
    )
    return figure


def timeline_figure(points: list[dict[str, Any]], count: str, title: str) -> go.Figure:
    """Points in time (window_start) per channel, sized by their `count` (the 30 busiest channels)."""
    figure = go.Figure()
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        by_channel.setdefault(point["channel"], []).append(point)
    for channel, group in sorted(by_channel.items(), key=lambda item: -len(item[1]))[:30]:
        figure.add_scatter(
            x=[p["window_start"] for p in group],
            y=[channel] * len(group),
            mode="markers",
            name=channel,
            marker=dict(size=[min(30, 6 + p[count] ** 0.5) for p in group]),
            text=[f"{p[count]} msgs" for p in group],
            hoverinfo="x+y+text",
        )
    figure.update_layout(
        title=title, height=120 + 22 * min(30, len(by_channel)), margin=dict(l=120, r=20, t=40, b=30), showlegend=False
    )
    return figure


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def user_link(login: str) -> str:
    """A Markdown link to the user's page; the login escaped both in the text and in the address."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", login)
    return f"[{text}](/user?{urllib.parse.urlencode({'login': login})})"


def history_down(exc: Exception) -> str:
    return f"History is not available right now: {exc}"


def spam_cell(text: str) -> html.Td:
    return html.Td(text, className="spam-text")


def results_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], class_name: str = "results") -> html.Table:
    """A table of results: a header row, then a row per item; a cell is a value, or a `html.Td` of its own."""
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in headers])),
            html.Tbody([html.Tr([c if isinstance(c, html.Td) else html.Td(c) for c in row]) for row in rows]),
        ],
        className=class_name,
    )
