"""The search page: where a pasted chat message (or `@user`) has been spammed, from the history."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from dashboard.history import HistoryUnavailable, SearchError
from dashboard.views.common import Sources, empty_figure, history_down, results_table, spam_cell, timeline_figure
from dashboard.views.user import user_view


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
    if query.strip().startswith("@"):
        return _user_lookup(sources, query)
    try:
        search = sources.history.search(query)
    except SearchError as exc:
        return SearchView(str(exc), [], [], empty, "")
    except HistoryUnavailable as exc:
        return SearchView(history_down(exc), [], [], empty, "")
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
    table = results_table(
        ("window (UTC)", "channel", "text", "messages", "users", "similarity"),
        (
            (
                s["window_start"].strftime("%Y-%m-%d %H:%M:%S"),
                s["channel"],
                spam_cell(s["text"]),
                s["message_count"],
                s["distinct_users"],
                f"{s['similarity']:.0%}",
            )
            for s in search.page(page, size)
        ),
    )
    return SearchView(
        message,
        matches,
        [table],
        timeline_figure(search.sightings, "message_count", "Sightings per channel"),
        f"page {page + 1} of {search.pages(size)}",
        page,
    )


def _user_lookup(sources: Sources, query: str) -> SearchView:
    """`@login` in the search box: the user's page in short, with a link to it."""
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
