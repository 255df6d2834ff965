"""Live: one channel's spam events and topics as they arrive, beside its raw chat, and its chat rate."""

from __future__ import annotations

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update

from dashboard import views
from dashboard.app import sources

dash.register_page(__name__, path="/", name="Live", order=0)


def layout(channel: str | None = None, **_: str) -> html.Div:
    refresh_ms = sources().refresh_ms
    return html.Div([
        html.Div([
            dcc.Dropdown(id="live-channel", value=channel, placeholder="Pick a channel (type to search)",
                         searchable=True, clearable=False, className="picker"),
            html.Span(id="live-status", className="muted"),
        ], className="toolbar"),
        dcc.Interval(id="live-tick", interval=refresh_ms),
        dcc.Interval(id="live-channels-tick", interval=5000),
        dcc.Store(id="live-selected"),
        dcc.Store(id="live-shown", data={}),
        html.Div([
            html.Section([html.H3("Spam topics, active now"), html.Div(id="live-topics"),
                          html.H3("Spam events"), html.Div(id="live-events", className="scroll")], className="col"),
            html.Section([html.H3("Chat"), html.Div(id="live-chat", className="scroll")], className="col"),
        ], className="columns"),
        html.Section(id="live-detail", className="detail"),
        dcc.Graph(id="live-rates", config={"displayModeBar": False}),
    ])


@dash.callback(Output("live-channel", "options"), Output("live-channel", "value"),
               Input("live-channels-tick", "n_intervals"), State("live-channel", "value"))
def pick_channels(_: int | None, current: str | None) -> tuple[list[dict[str, str]], str | None]:
    options = views.channel_options(sources().feed)
    if current and all(o["value"] != current for o in options):
        options.insert(0, {"label": current, "value": current})
    return options, current or (options[0]["value"] if options else None)


@dash.callback(Output("live-events", "children"), Output("live-topics", "children"), Output("live-chat", "children"),
               Output("live-detail", "children"), Output("live-rates", "figure"), Output("live-status", "children"),
               Output("live-shown", "data"),
               Input("live-tick", "n_intervals"), Input("live-channel", "value"), Input("live-selected", "data"),
               State("live-shown", "data"))
def refresh(_: int | None, channel: str | None, selected: str | None, shown: dict[str, str] | None) -> tuple:
    if not channel:
        waiting = [html.P("Waiting for chat ...", className="muted")]
        return waiting, [], waiting, [], views.empty_figure("Chat rate", "pick a channel"), "", {}
    data = sources()
    events, problem = views.live_events(data, channel)
    topics, chat, emotes = data.feed.topics(channel), data.feed.chat(channel), data.feed.known_emotes()
    # A list is sent to the browser only when what it shows has changed: an unchanged list is left alone, so a
    # click, a hover, a selection or a scroll position on it survives the refresh.
    parts = {
        "events": ((channel, selected, [(e["event_id"], e["message_count"], e["distinct_users"]) for e in events],
                    len(emotes)), lambda: views.event_list(events, selected, emotes)),
        "topics": ((channel, [(t.topic_id, t.total_messages, t.windows_active, t.last_seen) for t in topics],
                    len(emotes)), lambda: views.topic_list(topics, emotes)),
        "chat": ((channel, [views.chat_key(m) for m in chat]), lambda: views.chat_list(chat)),
        "detail": ((channel, selected, next((e["message_count"] for e in events if e["event_id"] == selected), None)),
                   lambda: views.event_details(events, selected, emotes)),
    }
    shown = shown or {}
    now_shown = {name: views.fingerprint(facts) for name, (facts, _) in parts.items()}
    out = [render() if shown.get(name) != now_shown[name] else no_update for name, (_, render) in parts.items()]
    return (*out, views.rate_figure(data.feed, channel), problem or "", now_shown)


@dash.callback(Output("live-selected", "data"), Input({"type": "live-event", "index": ALL}, "n_clicks"),
               prevent_initial_call=True)
def select_event(clicks: list[int | None]) -> str:
    # The list is re-rendered every refresh, which fires this with no clicks: only a real click selects.
    if not ctx.triggered_id or not any(t["value"] for t in ctx.triggered):
        return no_update
    return ctx.triggered_id["index"]
