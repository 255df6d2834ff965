"""Live: one channel's spam events and topics as they arrive, beside its raw chat, and its chat rate."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, NoUpdate, Output, State, ctx, dcc, html, no_update

from dashboard.app import sources
from dashboard.slots import SlotList, fingerprint
from dashboard.views import live as view
from dashboard.views.common import emote_pictures, empty_figure

dash.register_page(__name__, path="/", name="Live", order=0)


# Capacities: the newest spam events and chat lines, and the active topics, that the page shows.
EVENTS = SlotList("live-event", 30, "No spam in this channel yet.")
TOPICS = SlotList("live-topic", 20, "No active spam topics.")
CHAT = SlotList("live-chat-line", 50, "No chat received for this channel yet.")


def layout(channel: str | None = None, **_: str) -> html.Div:
    refresh_ms = sources().refresh_ms
    return html.Div(
        [
            html.Div(
                [
                    dcc.Dropdown(
                        id="live-channel",
                        value=channel,
                        placeholder="Pick a channel (type to search)",
                        searchable=True,
                        clearable=False,
                        className="picker",
                    ),
                    html.Span(id="live-status", className="muted"),
                ],
                className="toolbar",
            ),
            dcc.Interval(id="live-tick", interval=refresh_ms),
            dcc.Interval(id="live-channels-tick", interval=5000),
            dcc.Store(id="live-selected"),
            dcc.Store(id="live-shown", data={}),
            html.Div(
                [
                    html.Section(
                        [
                            html.H3("Spam topics, active now"),
                            TOPICS.layout(id="live-topics", className="slots topics-box"),
                            html.H3("Spam events"),
                            EVENTS.layout(id="live-events", className="scroll slots"),
                        ],
                        className="col",
                    ),
                    html.Section(
                        [html.H3("Chat"), CHAT.layout(id="live-chat", className="scroll slots")], className="col"
                    ),
                ],
                className="columns",
            ),
            html.Section(id="live-detail", className="detail"),
            dcc.Graph(id="live-rates", config={"displayModeBar": False}),
        ]
    )


@dash.callback(
    Output("live-channel", "options"),
    Output("live-channel", "value"),
    Input("live-channels-tick", "n_intervals"),
    State("live-channel", "value"),
)
def pick_channels(_: int | None, current: str | None) -> tuple[list[dict[str, str]], str | None]:
    options = view.channel_options(sources().feed)
    if current and all(o["value"] != current for o in options):
        options.insert(0, {"label": current, "value": current})
    return options, current or (options[0]["value"] if options else None)


@dash.callback(
    *EVENTS.outputs(),
    *TOPICS.outputs(),
    *CHAT.outputs(),
    Output("live-detail", "children"),
    Output("live-rates", "figure"),
    Output("live-status", "children"),
    Output("live-shown", "data"),
    Input("live-tick", "n_intervals"),
    Input("live-channel", "value"),
    Input("live-selected", "data"),
    State("live-shown", "data"),
)
def refresh(_: int | None, channel: str | None, selected: str | None, shown: dict[str, Any] | None) -> tuple:
    shown = shown or {}
    data = sources()
    if channel:
        events, problem = view.live_events(data, channel, EVENTS.capacity)
        topics = data.feed.topics(channel, TOPICS.capacity)
        emotes = emote_pictures(data.feed.known_emotes(), data.emote_images)
        chat = data.feed.chat(channel, CHAT.capacity)
        figure = view.rate_figure(data.feed, channel)
    else:
        events, topics, chat, emotes, problem = [], [], [], {}, None
        figure = empty_figure("Chat rate", "pick a channel")
    out: list[Any] = []
    now_shown: dict[str, Any] = {}
    for name, slots, rows in (
        ("events", EVENTS, view.event_rows(events, selected, emotes)),
        ("topics", TOPICS, view.topic_rows(topics, emotes)),
        ("chat", CHAT, view.chat_rows(chat, data.emote_images)),
    ):
        values, now_shown[name] = slots.update(shown.get(name), rows)
        out += values
    # The detail is sent again only when the event shown, its numbers or the users found for it change, so it
    # too holds still (the history's user list is read each tick only until it is complete).
    event = view.selected_event(data, channel, selected, events) if channel else None
    users, users_note = view.event_users(data, event)
    now_shown["detail"] = fingerprint((channel, selected, event and event["message_count"], len(users), users_note))
    detail = (
        view.event_details(event, users, users_note, emotes)
        if now_shown["detail"] != shown.get("detail")
        else no_update
    )
    return (*out, detail, figure, problem or "", now_shown)


@dash.callback(
    Output("live-selected", "data"),
    Input(EVENTS.every_slot, "n_clicks"),
    State("live-shown", "data"),
    prevent_initial_call=True,
)
def select_event(clicks: list[int | None], shown: dict[str, Any] | None) -> str | NoUpdate:
    if not ctx.triggered_id or not any(t["value"] for t in ctx.triggered):
        return no_update
    # The slot's event as the browser showed it when clicked.
    return SlotList.key_at((shown or {}).get("events"), ctx.triggered_id[EVENTS.kind]) or no_update
