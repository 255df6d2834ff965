"""What the pages show, as plain functions from the data sources to Dash components and Plotly figures.

Callbacks in dashboard/pages stay thin: they read their inputs, call one function here and return its result, so
every view is testable without a browser. Chat text is untrusted: it only ever goes into components as a string
(rendered as text by React), never into Markdown or HTML.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html
from dash.dash_table.DataTable import DataTable

from dashboard.history import History, HistoryUnavailable, SearchError, UserActivity, user_login
from dashboard.live import LiveFeed
from dashboard.slots import Row
from twitchcrement.records import ChatMessage, SpamEvent, SpamTopic, emote_spans


@dataclass
class Sources:
    feed: LiveFeed
    history: History
    page_size: int = 20
    refresh_ms: int = 1000
    search_max_chars: int = 500
    hidden_users: frozenset[str] = frozenset()  # opted out (ingest.optout_users), perhaps after their chat was read

    def shown(self, login: str) -> bool:
        return login.lower() not in self.hidden_users


def _clock(ms: int | float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000))


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


EMOTE_URL = "https://static-cdn.jtvnw.net/emoticons/v2/{id}/default/dark/1.0"  # Twitch's emote CDN, by emote id


def emote_image(code: str, emote_id: str) -> Any:
    return html.Img(src=EMOTE_URL.format(id=emote_id), alt=code, title=code, className="emote")


def chat_text(text: str, emotes_tag: str = "") -> list[Any]:
    """A chat text with its Twitch emotes (positions from the message's emotes tag) as images; the rest stays
    text. Third-party emotes (BTTV, FFZ, 7TV) have no tag and stay text."""
    parts: list[Any] = []
    at = 0
    for start, end, emote_id in emote_spans(emotes_tag, len(text)):
        if start > at:
            parts.append(text[at:start])
        parts.append(emote_image(text[start:end], emote_id))
        at = end
    if at < len(text):
        parts.append(text[at:])
    return parts


def spam_text(text: str, known_emotes: dict[str, str]) -> list[Any]:
    """A spam text (events carry no emotes tag) with the words that chat has shown to be Twitch emotes as images."""
    if not known_emotes:
        return [text]
    parts: list[Any] = []
    for i, word in enumerate(text.split(" ")):
        if i:
            parts.append(" ")
        emote_id = known_emotes.get(word)
        parts.append(emote_image(word, emote_id) if emote_id else word)
    merged: list[Any] = []  # neighbouring strings as one text node
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


def _ms(value: dt.datetime) -> int:
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


# --- live ------------------------------------------------------------------------------------------------------
def channel_options(feed: LiveFeed) -> list[dict[str, str]]:
    options = []
    for info in feed.channels():
        detail = f"{info.messages_per_s:.1f} msg/s"
        if info.viewers:
            detail = f"{info.viewers:,} viewers, {detail}"
        options.append({"label": f"{info.login}  ({detail})", "value": info.login})
    return options


def live_events(sources: Sources, channel: str, limit: int = 30) -> tuple[list[dict[str, Any]], str | None]:
    """The channel's newest spam events: the live buffer, topped up from today's history after a restart."""
    events = [_event_row(e) for e in sources.feed.events(channel, limit)]
    problem = None
    if len(events) < limit:
        try:
            seen = {e["event_id"] for e in events}
            for row in sources.history.channel_events(channel, limit):
                if row.event_id not in seen:
                    events.append(_history_event_row(channel, row))
        except HistoryUnavailable as exc:
            problem = str(exc)
    events.sort(key=lambda e: (-e["window_start"], -e["message_count"]))
    return events[:limit], problem


def selected_event(
    sources: Sources, channel: str, event_id: str | None, listed: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The event a user clicked: from the list shown, or from the channel's live buffer once newer events have
    pushed it off the list (its detail stays while the user reads it)."""
    if not event_id:
        return None
    shown = next((e for e in listed if e["event_id"] == event_id), None)
    if shown is not None:
        return shown
    buffered = sources.feed.event(channel, event_id)
    return _event_row(buffered) if buffered is not None else None


def _event_row(event: SpamEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "kind": event.kind,
        "channel": event.channel,
        "window_start": event.window_start,
        "window_end": event.window_end,
        "text": event.text,
        "message_count": event.message_count,
        "distinct_users": event.distinct_users,
        "variants": event.variants,
        "top_users": [tuple(u) for u in event.top_users],
        "top_variants": [tuple(v) for v in event.top_variants],
        "topic_id": event.topic_id,
        "live": event.state == "open",  # its window is still open: the wave may still grow
    }


def _history_event_row(channel: str, row: Any) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "kind": row.kind,
        "channel": channel,
        "window_start": _ms(row.window_start),
        "window_end": _ms(row.window_end),
        "text": row.text,
        "message_count": row.message_count,
        "distinct_users": row.distinct_users,
        "variants": row.variants,
        "top_users": [tuple(u) for u in row.top_users or []],
        "top_variants": [tuple(v) for v in row.top_variants or []],
        "topic_id": row.topic_id,
        "live": False,
    }


def _emotes_in(text: str, known_emotes: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The words of a text that are known emotes, with their ids: part of what a row shows."""
    return tuple((word, known_emotes[word]) for word in text.split(" ") if word in known_emotes)


# Live lists are slot lists (dashboard/slots.py): a row is its key, the facts it shows and how to draw them.
def event_rows(
    events: list[dict[str, Any]], selected: str | None, known_emotes: dict[str, str] | None = None
) -> list[Row]:
    emotes = known_emotes or {}

    def row(e: dict[str, Any]) -> Row:
        def render() -> list[Any]:
            return [
                html.Div(
                    [
                        html.Span(_clock(e["window_start"]), className="time"),
                        html.Span(f"{e['message_count']} msgs", className="badge"),
                        html.Span(f"{e['distinct_users']} users", className="badge"),
                        html.Span(f"{e['variants']} variants", className="badge"),
                        html.Span(e["kind"], className=f"badge kind-{e['kind']}"),
                        *(
                            [html.Span("live", className="badge live", title="its window is still open")]
                            if e["live"]
                            else []
                        ),
                    ]
                ),
                html.Div(spam_text(e["text"], emotes), className="spam-text", **{"data-event": e["event_id"]}),
            ]

        facts = (
            e["window_start"],
            e["message_count"],
            e["distinct_users"],
            e["variants"],
            e["kind"],
            e["live"],
            e["text"],
            _emotes_in(e["text"], emotes),
        )
        return Row(e["event_id"], facts, render, "event selected" if e["event_id"] == selected else "event")

    return [row(e) for e in events]


def topic_rows(topics: list[SpamTopic], known_emotes: dict[str, str] | None = None) -> list[Row]:
    emotes = known_emotes or {}

    def row(t: SpamTopic) -> Row:
        def render() -> list[Any]:
            return [
                html.Div(
                    [
                        html.Span(f"active {_age((t.last_seen - t.first_seen) / 1000)}", className="badge"),
                        html.Span(f"{t.total_messages} msgs", className="badge"),
                        html.Span(f"{t.windows_active} windows", className="badge"),
                        html.Span(f"peak {t.peak_rate:.1f}/s", className="badge"),
                        html.Span(f"last seen {_clock(t.last_seen)}", className="muted"),
                    ]
                ),
                html.Div(spam_text(t.text, emotes), className="spam-text"),
            ]

        facts = (
            t.first_seen,
            t.last_seen,
            t.total_messages,
            t.windows_active,
            round(t.peak_rate, 1),
            t.text,
            _emotes_in(t.text, emotes),
        )
        return Row(t.topic_id, facts, render, "topic")

    return [row(t) for t in topics]


def chat_key(message: ChatMessage) -> str:
    return message.message_id or f"{message.sent_ts}/{message.user_login}/{zlib.crc32(message.text.encode())}"


def chat_rows(messages: list[ChatMessage]) -> list[Row]:
    def row(m: ChatMessage) -> Row:
        def render() -> list[Any]:
            return [
                html.Span(_clock(m.sent_ts), className="time"),
                html.Span(m.display_name or m.user_login, className="user"),
                html.Span(chat_text(m.text, m.emotes), className="chat-text"),
            ]

        return Row(chat_key(m), None, render, "chat-line")  # a chat line never changes

    return [row(m) for m in messages]


def event_users(sources: Sources, event: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str]:
    """Every user of an event from the history, or, until the history has them, the top users the live event
    carries; and a note saying which (opted-out users are left out either way)."""
    if event is None:
        return [], ""
    note = ""
    try:
        users = sources.history.event_users(event["event_id"], event["window_start"], event["distinct_users"])
    except HistoryUnavailable as exc:
        users, note = [], f"History is not available right now ({exc}): the top users only."
    if len(users) < event["distinct_users"]:
        users = users or [
            {"user_login": u, "messages": c, "first_ts": None, "last_ts": None} for u, c in event["top_users"]
        ]
        note = note or "The history is still being written: the top users for now."
    shown = [u for u in users if sources.shown(u["user_login"])]
    return shown, note


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def user_link(login: str) -> str:
    """A Markdown link to the user's page; the login escaped both in the text and in the address."""
    text = _MARKDOWN_PUNCTUATION.sub(r"\\\1", login)
    return f"[{text}](/user?{urllib.parse.urlencode({'login': login})})"


def users_table(users: list[dict[str, Any]], table_id: str, page_size: int = 10) -> Any:
    """All users of an event: paged and sortable in the browser, each a link to their User page."""

    def when(value: dt.datetime | None) -> str:
        return value.strftime("%H:%M:%S.%f")[:-3] if value else ""

    return DataTable(
        id=table_id,
        page_size=page_size,
        sort_action="native",
        page_action="native",
        sort_by=[{"column_id": "messages", "direction": "desc"}],
        columns=[
            {"name": "user", "id": "user", "presentation": "markdown"},
            {"name": "messages", "id": "messages", "type": "numeric"},
            {"name": "first (UTC)", "id": "first"},
            {"name": "last (UTC)", "id": "last"},
        ],
        data=[
            {
                "user": user_link(u["user_login"]),
                "login": u["user_login"],
                "messages": u["messages"],
                "first": when(u["first_ts"]),
                "last": when(u["last_ts"]),
            }
            for u in users
        ],
        markdown_options={"html": False, "link_target": "_self"},
        style_cell={"textAlign": "left", "fontFamily": "inherit", "padding": "2px 8px"},
        style_as_list_view=True,
    )


def event_details(
    event: dict[str, Any] | None,
    users: list[dict[str, Any]],
    users_note: str = "",
    known_emotes: dict[str, str] | None = None,
) -> list[Any]:
    if event is None:
        return [html.P("Click a spam event to see who sent it and in which spellings.", className="muted")]
    return [
        # data-event names the event shown (and its id its pattern id, as the list's row has it)
        html.Div(id=f"detail-{event['event_id']}", **{"data-event": event["event_id"]}, className="detail-of"),
        html.H4(f"{event['kind']} spam, {_clock(event['window_start'])}-{_clock(event['window_end'])} UTC"),
        html.Div(spam_text(event["text"], known_emotes or {}), className="spam-text"),
        html.Div(
            [
                html.Div(
                    [
                        html.H5(f"Users ({event['distinct_users']} in all)"),
                        html.P(users_note, className="muted") if users_note else None,
                        users_table(users, "event-users"),
                    ],
                    className="col",
                ),
                html.Div(
                    [
                        html.H5(f"Top spellings ({event['variants']} in all)"),
                        html.Ul(
                            [
                                html.Li(
                                    [
                                        html.Span(spam_text(text, known_emotes or {}), className="chat-text"),
                                        f" x{count}",
                                    ]
                                )
                                for text, count in event["top_variants"]
                            ]
                        ),
                    ],
                    className="col",
                ),
            ],
            className="columns",
        ),
    ]


def rate_figure(feed: LiveFeed, channel: str) -> go.Figure:
    rates = feed.rates(channel)
    if not rates:
        return empty_figure(f"#{channel}: chat rate and spam share", "waiting for chat ...")
    times = [dt.datetime.fromtimestamp(start / 1000, dt.UTC) for start, _, _ in rates]
    chat_rate = [chat / 10 for _, chat, _ in rates]
    share = [min(1.0, spam / chat) if chat else 0.0 for _, chat, spam in rates]
    figure = go.Figure()
    figure.add_bar(x=times, y=chat_rate, name="chat msg/s", marker_color="#9aa5b1")
    figure.add_scatter(
        x=times, y=share, name="spam share", yaxis="y2", mode="lines+markers", line=dict(color="#d64545")
    )
    figure.update_layout(
        title=f"#{channel}: chat rate and spam share (10 s bins)",
        height=280,
        margin=dict(l=40, r=40, t=40, b=30),
        legend=dict(orientation="h", y=-0.2),
        yaxis=dict(title="msg/s"),
        uirevision=channel,
        yaxis2=dict(title="spam share", overlaying="y", side="right", range=[0, 1], tickformat=".0%"),
    )
    return figure


# --- search ------------------------------------------------------------------------------------------------------
@dataclass
class SearchView:
    message: str
    matches: list[Any]
    results: list[Any]
    figure: go.Figure
    page_label: str
    page: int = 0


def search_view(sources: Sources, query: str | None, page: int) -> SearchView:
    empty = empty_figure("Sightings per channel", "")
    if not query:
        return SearchView("Type or paste a chat message to see where it has been spammed.", [], [], empty, "")
    if query.strip().startswith("@"):  # a user lookup
        view = user_view(sources, query)
        link = (
            [
                dcc.Link(
                    f"Open {view.login}'s page",
                    href=f"/user?{urllib.parse.urlencode({'login': view.login})}",
                    className="user-page-link",
                )
            ]
            if view.login
            else []
        )
        return SearchView(view.message, [], link + view.results, view.figure, "")
    try:
        search = sources.history.search(query)
    except SearchError as exc:
        return SearchView(str(exc), [], [], empty, "")
    except HistoryUnavailable as exc:
        return SearchView(f"History is not available right now: {exc}", [], [], empty, "")
    if not search.sightings:
        return SearchView(f"No spam like this has been seen. {search.note}".strip(), [], [], empty, "")
    size = sources.page_size
    page = min(max(page, 0), search.pages(size) - 1)
    channels = {s["channel"] for s in search.sightings}
    seen = (
        f"Seen at least {len(search.sightings)} times (the newest shown)"
        if search.truncated
        else f"Seen {len(search.sightings)} times"
    )
    message = f"{seen} in {len(channels)} channels, {len(search.matches)} spelling(s). {search.note}".strip()
    matches = [
        html.Li([html.Span(f"{m.similarity:.0%}", className="badge"), html.Span(m.text, className="spam-text")])
        for m in search.matches
    ]
    rows = [
        html.Tr(
            [
                html.Td(s["window_start"].strftime("%Y-%m-%d %H:%M:%S")),
                html.Td(s["channel"]),
                html.Td(s["text"], className="spam-text"),
                html.Td(s["message_count"]),
                html.Td(s["distinct_users"]),
                html.Td(f"{s['similarity']:.0%}"),
            ]
        )
        for s in search.page(page, size)
    ]
    table = html.Table(
        [
            html.Thead(
                html.Tr([html.Th(h) for h in ("window (UTC)", "channel", "text", "messages", "users", "similarity")])
            ),
            html.Tbody(rows),
        ],
        className="results",
    )
    return SearchView(
        message,
        matches,
        [table],
        timeline_figure(search.sightings, "message_count", "Sightings per channel"),
        f"page {page + 1} of {search.pages(size)}",
        page,
    )


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


# --- users -------------------------------------------------------------------------------------------------------
USER_EVENTS_SHOWN = 50  # the newest events listed on a user's page (the timeline and the summary have them all)


@dataclass
class UserView:
    login: str
    message: str
    figure: go.Figure
    results: list[Any]


def user_view(sources: Sources, text: str | None) -> UserView:
    """The spam events a user took part in: by day and channel, a timeline, and the newest events."""
    login = user_login(text or "")
    title = "Spam events per channel"
    if not login:
        return UserView("", "Type a user's login to see the spam they took part in.", empty_figure(title, ""), [])
    try:
        activity = sources.history.user_activity(login) if sources.shown(login) else UserActivity(login, [])
    except HistoryUnavailable as exc:
        return UserView(login, f"History is not available right now: {exc}", empty_figure(title, ""), [])
    if not activity.events:  # opted-out users look the same as users never seen
        return UserView(login, f"No spam by {login} to show.", empty_figure(title, ""), [])
    events, channels = activity.events, activity.channels
    days = sorted({e["window_start"].date() for e in events}, reverse=True)
    message = (
        f"{login} took part in {'at least ' if activity.truncated else ''}{len(events)} spam events in "
        f"{len(channels)} channel{'s' if len(channels) != 1 else ''} ({', '.join(channels)}) "
        f"on {len(days)} day{'s' if len(days) != 1 else ''}."
    )
    per_day: dict[tuple[dt.date, str], list[int]] = {}
    for e in events:
        tally = per_day.setdefault((e["window_start"].date(), e["channel"]), [0, 0])
        tally[0] += 1
        tally[1] += e["messages"]
    summary = html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in ("day (UTC)", "channel", "spam events", "their messages")])),
            html.Tbody(
                [
                    html.Tr([html.Td(day.isoformat()), html.Td(channel), html.Td(n), html.Td(m)])
                    for (day, channel), (n, m) in sorted(per_day.items(), key=lambda i: (-i[0][0].toordinal(), i[0][1]))
                ]
            ),
        ],
        className="results user-days",
    )
    listed = html.Table(
        [
            html.Thead(
                html.Tr(
                    [
                        html.Th(h)
                        for h in ("window (UTC)", "channel", "text", "their messages", "event messages", "event users")
                    ]
                )
            ),
            html.Tbody(
                [
                    html.Tr(
                        [
                            html.Td(e["window_start"].strftime("%Y-%m-%d %H:%M:%S")),
                            html.Td(e["channel"]),
                            html.Td(e["text"], className="spam-text"),
                            html.Td(e["messages"]),
                            html.Td(e["event_messages"]),
                            html.Td(e["event_users"]),
                        ]
                    )
                    for e in events[:USER_EVENTS_SHOWN]
                ]
            ),
        ],
        className="results user-events",
    )
    return UserView(
        login,
        message,
        timeline_figure(events, "messages", title),
        [html.H4("By day and channel"), summary, html.H4("Newest spam events"), listed],
    )


# --- overview ---------------------------------------------------------------------------------------------------
@dataclass
class OverviewView:
    totals: list[Any]
    topics: list[Any]
    campaigns: list[Any]
    heatmap: go.Figure


def overview_view(sources: Sources) -> OverviewView:
    totals = sources.feed.totals()
    tiles = [
        html.Div(
            [
                html.Div(f"{value:,.1f}" if isinstance(value, float) else f"{value:,}", className="value"),
                html.Div(label, className="label"),
            ],
            className="tile",
        )
        for label, value in (
            ("chat messages/s in", totals["messages_per_s"]),
            ("spam events/min", totals["spam_events_per_min"]),
            ("channels seen", totals["channels"]),
        )
    ]
    topics = sources.feed.topics(limit=15)
    topic_rows = [
        html.Tr(
            [
                html.Td(t.channel),
                html.Td(t.text, className="spam-text"),
                html.Td(t.total_messages),
                html.Td(_age((t.last_seen - t.first_seen) / 1000)),
            ]
        )
        for t in topics
    ]
    topics_table = (
        html.Table(
            [
                html.Thead(html.Tr([html.Th(h) for h in ("channel", "topic", "messages", "active")])),
                html.Tbody(topic_rows),
            ],
            className="results",
        )
        if topics
        else html.P("No spam topic is active right now.", className="muted")
    )
    try:
        campaigns = sources.history.campaigns()[:15]
        campaign_block: Any = (
            html.Table(
                [
                    html.Thead(html.Tr([html.Th(h) for h in ("text", "channels", "messages", "first seen")])),
                    html.Tbody(
                        [
                            html.Tr(
                                [
                                    html.Td(c["text"], className="spam-text"),
                                    html.Td(", ".join(sorted(c["channels"]))),
                                    html.Td(c["total_messages"]),
                                    html.Td(c["first_seen"].strftime("%H:%M:%S")),
                                ]
                            )
                            for c in campaigns
                        ]
                    ),
                ],
                className="results",
            )
            if campaigns
            else html.P("No cross-channel campaign today.", className="muted")
        )
    except HistoryUnavailable as exc:
        campaign_block = html.P(f"History is not available right now: {exc}", className="muted")
    return OverviewView(tiles, [topics_table], [campaign_block], heatmap_figure(sources.feed))


def heatmap_figure(feed: LiveFeed, minutes: int = 15) -> go.Figure:
    channels, minute_starts, volume = feed.spam_by_minute(minutes)
    if not channels:
        return empty_figure("Spam messages by channel and minute", "no spam in the last minutes")
    figure = go.Figure(
        go.Heatmap(
            z=volume,
            y=channels,
            x=[dt.datetime.fromtimestamp(m / 1000, dt.UTC) for m in minute_starts],
            colorscale="Reds",
            colorbar=dict(title="spam msgs"),
        )
    )
    figure.update_layout(
        title="Spam messages by channel and minute (UTC)",
        height=140 + 22 * len(channels),
        margin=dict(l=120, r=20, t=40, b=30),
        yaxis=dict(autorange="reversed"),
    )
    return figure
