"""The dashboard's Prometheus metrics: callback time by page (observed around each Dash callback request), Kafka
and Cassandra health as the app sees them, and the sizes of its live buffers (read when Prometheus scrapes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import flask
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dashboard.history import History
from dashboard.live import LiveFeed
from twitchcrement.config import Config
from twitchcrement.metrics import Endpoint

PREFIX = "twitchcrement_dashboard"
PAGES = ("live", "search", "user", "overview", "banner")  # the first word of every component id of a page
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class DashboardCollector(Collector):
    def __init__(self, feed: LiveFeed, history: History):
        self.feed, self.history = feed, history

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            f"{PREFIX}_service_up", "1 when the dashboard reaches the service now, else 0.", labels=["service"]
        )
        up.add_metric(["kafka"], 0 if self.feed.kafka_error else 1)
        up.add_metric(["cassandra"], 0 if self.history.error else 1)
        yield up
        buffers = GaugeMetricFamily(
            f"{PREFIX}_live_buffer_records", "Records the live buffers hold, by kind.", labels=["kind"]
        )
        for kind, count in self.feed.buffer_sizes().items():
            buffers.add_metric([kind], count)
        yield buffers
        yield CounterMetricFamily(
            f"{PREFIX}_bad_records", "Kafka records the live feed could not decode.", value=self.feed.bad_records
        )


def page_of(request: flask.Request) -> str | None:
    """The page a Dash callback request belongs to, from its output component ids (live-..., search-...)."""
    body = request.get_json(silent=True) or {}
    outputs = body.get("outputs") or [{}]
    first = outputs[0] if isinstance(outputs, list) else outputs
    component = first[0] if isinstance(first, list) and first else first  # a pattern-matching output is a list
    ident = component.get("id", "") if isinstance(component, dict) else ""
    name = ident.get("type", "") if isinstance(ident, dict) else str(ident)  # pattern ids: {"type": ..., ...}
    page = name.split("-", 1)[0]
    return page if page in PAGES else "other"


def instrument(server: flask.Flask, registry: CollectorRegistry) -> None:
    """Time every Dash callback request, labelled with its page."""
    seconds = Histogram(
        f"{PREFIX}_callback_duration_seconds",
        "Seconds a Dash callback request took, by page.",
        ["page"],
        buckets=CALLBACK_BUCKETS,
        registry=registry,
    )

    @server.before_request
    def started() -> None:
        flask.g.twitchcrement_started = time.perf_counter()

    @server.after_request
    def finished(response: flask.Response) -> flask.Response:
        began = getattr(flask.g, "twitchcrement_started", None)
        if began is not None and flask.request.path.endswith("/_dash-update-component"):
            seconds.labels(page_of(flask.request)).observe(time.perf_counter() - began)
        return response


def serve(config: Config, server: flask.Flask, feed: LiveFeed, history: History) -> Endpoint:
    registry = CollectorRegistry()
    registry.register(DashboardCollector(feed, history))
    instrument(server, registry)
    checks = {"kafka": lambda: feed.kafka_error, "cassandra": lambda: history.error}
    return Endpoint("dashboard", config.dashboard.metrics_port, registry, checks).start()
