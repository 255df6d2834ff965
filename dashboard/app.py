"""The Dash app: pages (dashboard/pages), the data sources they share, the outage banner and optional basic auth."""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import dash
import flask
from dash import Input, Output, dcc, html

from dashboard.history import History
from dashboard.live import LiveFeed
from dashboard.views.common import Sources
from twitchcrement.config import Config
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SOURCES_KEY = "twitchcrement.sources"
USER_ENV, PASSWORD_ENV = "DASHBOARD_USER", "DASHBOARD_PASSWORD"


class DashboardError(UserError, ValueError):
    """The dashboard cannot start as configured; the message says which setting to change."""


def sources() -> Sources:
    """The data sources of the app serving the current request (callbacks run inside a Flask request)."""
    return flask.current_app.config[SOURCES_KEY]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def credentials(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    source = os.environ if environ is None else environ
    user, password = source.get(USER_ENV, ""), source.get(PASSWORD_ENV, "")
    if bool(user) != bool(password):
        raise DashboardError(f"set both {USER_ENV} and {PASSWORD_ENV} for basic auth, or neither")
    return (user, password) if user else None


def _require_basic_auth(server: flask.Flask, user: str, password: str) -> None:
    expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    @server.before_request
    def check() -> flask.Response | None:
        given = flask.request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return None
        return flask.Response(
            "Twitchcrement dashboard: sign in required", 401, {"WWW-Authenticate": 'Basic realm="twitchcrement"'}
        )


def create_app(config: Config, feed: LiveFeed, history: History, auth: tuple[str, str] | None = None) -> dash.Dash:
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        title="Twitchcrement",
        update_title="",
        suppress_callback_exceptions=True,
    )
    app.server.config[SOURCES_KEY] = Sources(
        feed,
        history,
        config.dashboard.page_size,
        int(config.dashboard.refresh_s * 1000),
        config.dashboard.search_max_chars,
        frozenset(u.lower() for u in config.ingest.optout_users),
        config.emotes.images_url,
    )
    if auth:
        _require_basic_auth(app.server, *auth)
    app.layout = html.Div(
        [
            html.Header(
                [
                    html.Span("Twitchcrement", className="brand"),
                    html.Nav(
                        [
                            dcc.Link(page["name"], href=page["relative_path"], className="nav-link")
                            for page in dash.page_registry.values()
                        ]
                    ),
                ]
            ),
            html.Div(id="banner", className="banner", hidden=True),
            dcc.Interval(id="banner-tick", interval=2000),
            html.Main(dash.page_container),
        ]
    )
    return app


@dash.callback(Output("banner", "children"), Output("banner", "hidden"), Input("banner-tick", "n_intervals"))
def banner(_: int | None) -> tuple[list, bool]:
    data = sources()
    problems = [
        f"Live chat paused: {data.feed.kafka_error}" if data.feed.kafka_error else None,
        f"History unavailable: {data.history.error}" if data.history.error else None,
    ]
    problems = [p for p in problems if p]
    return [html.Div(p) for p in problems], not problems
