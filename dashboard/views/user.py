"""A user's page: the spam events they took part in, by day and channel, on a timeline, and the newest ones."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import html

from dashboard.history import HistoryUnavailable, UserActivity, user_login
from dashboard.views.common import Sources, empty_figure, history_down, results_table, spam_cell, timeline_figure

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
        return UserView(login, history_down(exc), empty_figure(title, ""), [])
    if not activity.events:  # opted-out users look the same as users never seen
        return UserView(login, f"No spam by {login} to show.", empty_figure(title, ""), [])
    events, channels = activity.events, activity.channels
    days = sorted({e["window_start"].date() for e in events}, reverse=True)
    message = (
        f"{login} took part in {'at least ' if activity.truncated else ''}{len(events)} spam events in "
        f"{len(channels)} channel{'s' if len(channels) != 1 else ''} ({', '.join(channels)}) "
        f"on {len(days)} day{'s' if len(days) != 1 else ''}."
    )
    return UserView(
        login,
        message,
        timeline_figure(events, "messages", title),
        [html.H4("By day and channel"), _days_table(events), html.H4("Newest spam events"), _events_table(events)],
    )


def _days_table(events: list[dict[str, Any]]) -> html.Table:
    per_day: dict[tuple[dt.date, str], list[int]] = {}
    for e in events:
        tally = per_day.setdefault((e["window_start"].date(), e["channel"]), [0, 0])
        tally[0] += 1
        tally[1] += e["messages"]
    newest_first = sorted(per_day.items(), key=lambda i: (-i[0][0].toordinal(), i[0][1]))
    return results_table(
        ("day (UTC)", "channel", "spam events", "their messages"),
        ((day.isoformat(), channel, n, m) for (day, channel), (n, m) in newest_first),
        "results user-days",
    )


def _events_table(events: list[dict[str, Any]]) -> html.Table:
    return results_table(
        ("window (UTC)", "channel", "text", "their messages", "event messages", "event users"),
        (
            (
                e["window_start"].strftime("%Y-%m-%d %H:%M:%S"),
                e["channel"],
                spam_cell(e["text"]),
                e["messages"],
                e["event_messages"],
                e["event_users"],
            )
            for e in events[:USER_EVENTS_SHOWN]
        ),
        "results user-events",
    )
