"""User: the spam events one account took part in, by day and channel, with a timeline."""

from __future__ import annotations

import urllib.parse

import dash
from dash import Input, Output, dcc, html

from dashboard.app import sources
from dashboard.views.user import user_view

dash.register_page(__name__, path="/user", name="User", order=3)


def layout(login: str | None = None, **_: str) -> html.Div:
    return html.Div(
        [
            dcc.Location(id="user-url", refresh=False),  # the address follows the login: shareable, and Back works
            html.Div(
                [
                    dcc.Input(
                        id="user-login",
                        type="text",
                        value=login or "",
                        maxLength=60,
                        debounce=True,
                        placeholder="A user's login, e.g. nightbot",
                        className="search-box",
                    ),
                    html.Button("Look up", id="user-go", n_clicks=0),
                ],
                className="toolbar",
            ),
            html.P(id="user-message", className="message"),
            dcc.Graph(id="user-timeline", config={"displayModeBar": False}),
            html.Div(id="user-results"),
        ]
    )


@dash.callback(
    Output("user-message", "children"),
    Output("user-timeline", "figure"),
    Output("user-results", "children"),
    Output("user-url", "search"),
    Input("user-go", "n_clicks"),
    Input("user-login", "value"),
)
def look_up(_go: int, text: str | None) -> tuple:
    view = user_view(sources(), text)
    address = "?" + urllib.parse.urlencode({"login": view.login}) if view.login else ""
    return view.message, view.figure, view.results, address
