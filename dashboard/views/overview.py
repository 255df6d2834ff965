"""The overview: totals, the active spam topics, today's cross-channel campaigns and a heatmap of spam by channel."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import html

from dashboard.history import HistoryUnavailable
from dashboard.live import LiveFeed
from dashboard.views.common import Sources, age, empty_figure, history_down, results_table, spam_cell


@dataclass
class OverviewView:
    totals: list[Any]
    topics: list[Any]
    campaigns: list[Any]
    heatmap: go.Figure


def overview_view(sources: Sources) -> OverviewView:
    return OverviewView(
        _tiles(sources.feed.totals()),
        [_topics_block(sources.feed)],
        [_campaigns_block(sources)],
        heatmap_figure(sources.feed),
    )


def _tiles(totals: dict[str, float]) -> list[Any]:
    return [
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


def _topics_block(feed: LiveFeed) -> Any:
    topics = feed.topics(limit=15)
    if not topics:
        return html.P("No spam topic is active right now.", className="muted")
    return results_table(
        ("channel", "topic", "messages", "active"),
        ((t.channel, spam_cell(t.text), t.total_messages, age((t.last_seen - t.first_seen) / 1000)) for t in topics),
    )


def _campaigns_block(sources: Sources) -> Any:
    try:
        campaigns = sources.history.campaigns()[:15]
    except HistoryUnavailable as exc:
        return html.P(history_down(exc), className="muted")
    if not campaigns:
        return html.P("No cross-channel campaign today.", className="muted")
    return results_table(
        ("text", "channels", "messages", "first seen"),
        (
            (
                spam_cell(c["text"]),
                ", ".join(sorted(c["channels"])),
                c["total_messages"],
                c["first_seen"].strftime("%H:%M:%S"),
            )
            for c in campaigns
        ),
    )


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
