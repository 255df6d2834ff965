"""The detector's Prometheus metrics, read when Prometheus scrapes from what the job keeps anyway (the listener's
latest progress, the micro-batch writer's totals, lag and state), and its readiness: Kafka and Cassandra answer and
the query runs. Spark's own metrics are on the Spark UI (`/metrics/prometheus/`, `/metrics/executors/prometheus`;
jobs.spam_detector.SPARK_METRICS turns them on)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from jobs.sinks import RETRIES
from twitchcrement.clients import cassandra_session
from twitchcrement.config import Config
from twitchcrement.metrics import Check, Endpoint

if TYPE_CHECKING:
    from jobs.keyed import KeyedBatch

PREFIX = "twitchcrement_detector"
BATCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120)


def batch_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        f"{PREFIX}_batch_duration_seconds",
        "Seconds a micro-batch took, trigger to commit.",
        buckets=BATCH_BUCKETS,
        registry=registry,
    )


class DetectorCollector(Collector):
    def __init__(self, batches: KeyedBatch, latest: Callable[[], dict[str, Any]]):
        self.batches, self.latest = batches, latest

    def collect(self) -> Iterator[Any]:
        totals = self.batches.totals
        for name, key, what in (
            ("input_rows", "messages", "Chat records read from Kafka (dead letters included)."),
            ("events", "events", "Spam events emitted."),
            ("topic_updates", "topic_updates", "Spam topic updates emitted."),
            ("late_dropped", "late_dropped", "Messages dropped as too late for their channel's closed window."),
            ("dead_letters", "dead_letters", "Records that did not decode, sent to the dead-letter topic."),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", what, value=totals[key])
        latest = self.latest()
        yield GaugeMetricFamily(
            f"{PREFIX}_processing_rows_per_second",
            "Rows per second the last micro-batch processed (Spark's processedRowsPerSecond).",
            value=latest.get("processed_rows_per_s", 0),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_input_rows_per_second",
            "Rows per second arriving, as of the last micro-batch (Spark's inputRowsPerSecond).",
            value=latest.get("input_rows_per_s", 0),
        )
        lag = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag_records",
            "Records in the chat topic not read yet, per partition (as of the last micro-batch's end).",
            labels=["partition"],
        )
        lag_seconds = GaugeMetricFamily(
            f"{PREFIX}_consumer_lag_seconds",
            "Age of the newest record read, per partition with records still unread (0: caught up).",
            labels=["partition"],
        )
        now_ms = time.time() * 1000
        for partition, behind in sorted(self.batches.consumer_lag().items()):
            lag.add_metric([str(partition)], behind)
            newest = self.batches.newest_read_ts.get(partition)
            lag_seconds.add_metric([str(partition)], max(0.0, (now_ms - newest) / 1000) if behind and newest else 0.0)
        yield lag
        yield lag_seconds
        sizes = self.batches.state_sizes()
        state = GaugeMetricFamily(f"{PREFIX}_state_rows", "What the detector's state holds, by kind.", labels=["kind"])
        for kind in ("channels", "open_windows", "open_texts", "topics"):
            state.add_metric([kind], sizes.get(kind, 0))
        yield state
        snapshot = self.batches.snapshot_bytes()
        if snapshot is not None:
            yield GaugeMetricFamily(f"{PREFIX}_state_bytes", "Size of the newest state snapshot.", value=snapshot)
        alerts = CounterMetricFamily(
            f"{PREFIX}_alerts", "Webhook alerts by outcome (sent, retried, failed, dropped).", labels=["outcome"]
        )
        counts = self.batches.alerts.counts()
        for outcome in ("sent", "retried", "failed", "dropped"):
            alerts.add_metric([outcome], counts[outcome])
        yield alerts
        retries = CounterMetricFamily(f"{PREFIX}_sink_retries", "Sink writes retried, by sink.", labels=["sink"])
        for sink, count in sorted(RETRIES.items()):
            retries.add_metric([sink], count)
        yield retries


class CassandraCheck:
    """Readiness of Cassandra for the detector, which writes through the Spark connector: a driver session of its
    own, kept and pinged (opened again after an outage)."""

    def __init__(self, config: Config):
        self.config = config.with_overrides(cassandra__connect_timeout_s=5.0)
        self.session: Any = None

    def __call__(self) -> str | None:
        try:
            if self.session is None:
                self.session = cassandra_session(self.config, keyspace=False)
            self.session.execute("SELECT release_version FROM system.local", timeout=5.0)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the next check tries again
            if self.session is not None:
                self.session.cluster.shutdown()
                self.session = None
            return f"Cassandra does not answer: {exc}"[:300]


def serve(
    config: Config,
    batches: KeyedBatch,
    latest: Callable[[], dict[str, Any]],
    registry: CollectorRegistry,
    kafka: Check,
    query_running: Check,
) -> Endpoint:
    registry.register(DetectorCollector(batches, latest))
    checks: dict[str, Check] = {"kafka": kafka, "cassandra": CassandraCheck(config), "query": query_running}
    return Endpoint("detector", config.detector.metrics_port, registry, checks).start()
