"""Search: where else has this spam been seen? Exact text and, through the LSH buckets, similar spellings."""

from __future__ import annotations

import urllib.parse

import dash
from dash import Input, Output, State, ctx, dcc, html

from dashboard.app import sources
from dashboard.views.search import search_view

dash.register_page(__name__, path="/search", name="Search", order=1)


def layout(q: str | None = None, **_: str) -> html.Div:
    max_chars = sources().search_max_chars
    return html.Div(
        [
            dcc.Location(id="search-url", refresh=False),  # the address follows the query: shareable, and Back works
            html.Div(
                [
                    dcc.Input(
                        id="search-text",
                        type="text",
                        value=q or "",
                        maxLength=max_chars,
                        debounce=True,
                        placeholder="Paste a spam message, e.g. a copypasta",
                        className="search-box",
                    ),
                    html.Button("Search", id="search-go", n_clicks=0),
                ],
                className="toolbar",
            ),
            html.P(id="search-message", className="message"),
            html.Ul(id="search-matches", className="matches"),
            dcc.Graph(id="search-timeline", config={"displayModeBar": False}),
            html.Div(id="search-results"),
            html.Div(
                [
                    html.Button("Newer", id="search-prev", n_clicks=0),
                    html.Span(id="search-page-label"),
                    html.Button("Older", id="search-next", n_clicks=0),
                ],
                className="pager",
            ),
            dcc.Store(id="search-page", data=0),
        ]
    )


@dash.callback(
    Output("search-message", "children"),
    Output("search-matches", "children"),
    Output("search-results", "children"),
    Output("search-timeline", "figure"),
    Output("search-page-label", "children"),
    Output("search-page", "data"),
    Output("search-url", "search"),
    Input("search-go", "n_clicks"),
    Input("search-text", "value"),
    Input("search-prev", "n_clicks"),
    Input("search-next", "n_clicks"),
    State("search-page", "data"),
)
def search(_go: int, text: str | None, _prev: int, _next: int, page: int | None) -> tuple:
    page = {"search-prev": (page or 0) - 1, "search-next": (page or 0) + 1}.get(ctx.triggered_id, 0)
    view = search_view(sources(), text, max(page, 0))
    address = "?" + urllib.parse.urlencode({"q": text}) if text else ""
    return view.message, view.matches, view.results, view.figure, view.page_label, view.page, address
