"""Overview: right now across all channels: totals, top spam topics, cross-channel campaigns, spam heatmap."""

from __future__ import annotations

import dash
from dash import Input, Output, dcc, html

from dashboard.app import sources
from dashboard.views.overview import overview_view

dash.register_page(__name__, path="/overview", name="Overview", order=2)

layout = html.Div(
    [
        dcc.Interval(id="overview-tick", interval=5000),
        html.Div(id="overview-totals", className="tiles"),
        html.Div(
            [
                html.Section([html.H3("Top spam topics, active now"), html.Div(id="overview-topics")], className="col"),
                html.Section(
                    [html.H3("Cross-channel campaigns today"), html.Div(id="overview-campaigns")], className="col"
                ),
            ],
            className="columns",
        ),
        dcc.Graph(id="overview-heatmap", config={"displayModeBar": False}),
    ]
)


@dash.callback(
    Output("overview-totals", "children"),
    Output("overview-topics", "children"),
    Output("overview-campaigns", "children"),
    Output("overview-heatmap", "figure"),
    Input("overview-tick", "n_intervals"),
)
def refresh(_: int | None) -> tuple:
    view = overview_view(sources())
    return view.totals, view.topics, view.campaigns, view.heatmap
