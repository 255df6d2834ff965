"""The live page: a channel's newest spam events, its active topics and chat as slot rows, the detail of a clicked
event with its users, and the channel's chat rate."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import plotly.graph_objects as go
from dash import html
from dash_ag_grid import AgGrid

from dashboard.history import HistoryUnavailable
from dashboard.live import LiveFeed
from dashboard.slots import Row
from dashboard.views.common import Sources, age, chat_text, clock, empty_figure, ms, spam_text, user_link
from twitchcrement.records import ChatMessage, SpamEvent, SpamTopic


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
        "window_start": ms(row.window_start),
        "window_end": ms(row.window_end),
        "text": row.text,
        "message_count": row.message_count,
        "distinct_users": row.distinct_users,
        "variants": row.variants,
        "top_users": [tuple(u) for u in row.top_users or []],
        "top_variants": [tuple(v) for v in row.top_variants or []],
        "topic_id": row.topic_id,
        "live": False,
    }


def _emotes_in(text: str, pictures: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The words of a text that are known emotes, with their pictures: part of what a row shows."""
    return tuple((word, pictures[word]) for word in text.split(" ") if word in pictures)


# Live lists are slot lists (dashboard/slots.py): a row is its key, the facts it shows and how to draw them.
def event_rows(events: list[dict[str, Any]], selected: str | None, pictures: dict[str, str] | None = None) -> list[Row]:
    emotes = pictures or {}

    def row(e: dict[str, Any]) -> Row:
        def render() -> list[Any]:
            return [
                html.Div(
                    [
                        html.Span(clock(e["window_start"]), className="time"),
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


def topic_rows(topics: list[SpamTopic], pictures: dict[str, str] | None = None) -> list[Row]:
    emotes = pictures or {}

    def row(t: SpamTopic) -> Row:
        def render() -> list[Any]:
            return [
                html.Div(
                    [
                        html.Span(f"active {age((t.last_seen - t.first_seen) / 1000)}", className="badge"),
                        html.Span(f"{t.total_messages} msgs", className="badge"),
                        html.Span(f"{t.windows_active} windows", className="badge"),
                        html.Span(f"peak {t.peak_rate:.1f}/s", className="badge"),
                        html.Span(f"last seen {clock(t.last_seen)}", className="muted"),
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


def chat_rows(messages: list[ChatMessage], images_url: str = "") -> list[Row]:
    def row(m: ChatMessage) -> Row:
        def render() -> list[Any]:
            return [
                html.Span(clock(m.sent_ts), className="time"),
                html.Span(m.display_name or m.user_login, className="user"),
                html.Span(chat_text(m.text, m.emotes, m.extra_emotes, images_url), className="chat-text"),
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


def users_table(users: list[dict[str, Any]], table_id: str, page_size: int = 10) -> Any:
    """All users of an event: paged and sortable in the browser, each a link to their User page."""

    def when(value: dt.datetime | None) -> str:
        return value.strftime("%H:%M:%S.%f")[:-3] if value else ""

    return AgGrid(
        id=table_id,
        rowData=[
            {
                "user": user_link(u["user_login"]),
                "messages": u["messages"],
                "first": when(u["first_ts"]),
                "last": when(u["last_ts"]),
            }
            for u in users
        ],
        columnDefs=[
            # Markdown without HTML: a login is text whatever it holds (user_link escapes its punctuation).
            {"field": "user", "cellRenderer": "markdown", "linkTarget": "_self"},
            {"field": "messages", "type": "numericColumn", "sort": "desc"},
            {"field": "first", "headerName": "first (UTC)"},
            {"field": "last", "headerName": "last (UTC)"},
        ],
        columnSize="sizeToFit",
        dashGridOptions={
            "pagination": True,
            "paginationPageSize": page_size,
            "paginationPageSizeSelector": False,
            "domLayout": "autoHeight",
        },
        className="users-table",
    )


def event_details(
    event: dict[str, Any] | None,
    users: list[dict[str, Any]],
    users_note: str = "",
    pictures: dict[str, str] | None = None,
) -> list[Any]:
    if event is None:
        return [html.P("Click a spam event to see who sent it and in which spellings.", className="muted")]
    return [
        # data-event names the event shown (and its id its pattern id, as the list's row has it)
        html.Div(id=f"detail-{event['event_id']}", **{"data-event": event["event_id"]}, className="detail-of"),
        html.H4(f"{event['kind']} spam, {clock(event['window_start'])}-{clock(event['window_end'])} UTC"),
        html.Div(spam_text(event["text"], pictures or {}), className="spam-text"),
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
                                        html.Span(spam_text(text, pictures or {}), className="chat-text"),
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
