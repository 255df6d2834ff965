"""The spam detector: Kafka chatmessage -> Spark Structured Streaming (MinHashLSH) -> Kafka spammessage + Cassandra.

    spark-submit jobs/spam_detector.py [--config F] [--available-now]
    .venv/bin/python jobs/spam_detector.py ...          (the same, Spark in local mode from the config)

On a cluster, pass the connectors with --packages, the detector's JVM function with --jars and the project's code
with --py-files (see the README).
The query checkpoints under spark.checkpoint_dir/spam-detector: a restarted job resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from jobs import metrics
from jobs.keyed import KeyedBatch, detect
from jobs.outages import describe, is_outage
from jobs.pipeline import DetectorSettings, decode, features
from twitchcrement import config as configuration
from twitchcrement.cli import command, configure
from twitchcrement.clients import ServiceRefused, check_cassandra_login, kafka_problem
from twitchcrement.config import project_path
from twitchcrement.errors import UserError
from twitchcrement.spark import kafka_options, session

log = logging.getLogger("jobs.spam_detector")
QUERY_NAME = "spam-detector"


# Spark's own metrics in the Prometheus format on the Spark UI: /metrics/prometheus/ (driver, streaming query) and
# /metrics/executors/prometheus; named by a fixed namespace rather than each run's application id.
SPARK_METRICS = {
    "spark.sql.streaming.metricsEnabled": "true",
    "spark.metrics.namespace": "twitchcrement",
    "spark.ui.prometheus.enabled": "true",
    "spark.metrics.conf.*.sink.prometheusServlet.class": "org.apache.spark.metrics.sink.PrometheusServlet",
    "spark.metrics.conf.*.sink.prometheusServlet.path": "/metrics/prometheus",
}


class ProgressLog(StreamingQueryListener):
    """Each micro-batch's input rows, rate, processing time and state size, as a log line and as the latest
    metrics (`latest`, also written to metrics_file for other processes)."""

    def __init__(
        self,
        metrics_file: Path | None = None,
        batches: KeyedBatch | None = None,
        batch_seconds: Any = None,
        stopping: threading.Event | None = None,
    ):
        """batch_seconds: a prometheus-client Histogram observing each micro-batch's duration; stopping: set once
        the job is asked to stop (the query's end is then expected, not an error)."""
        self.stopping = stopping or threading.Event()
        self.latest: dict[str, Any] = {}
        self.metrics_file = metrics_file
        self.batches = batches
        self.batch_seconds = batch_seconds
        self.last_progress_at = time.monotonic()

    def onQueryStarted(self, event: Any) -> None:
        log.info("query started", extra={"id": str(event.id), "query": event.name})

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        sizes = self.batches.state_sizes() if self.batches is not None else {}
        metrics = {
            "batch": progress.batchId,
            "input_rows": progress.numInputRows,
            "input_rows_per_s": round(progress.inputRowsPerSecond or 0.0, 1),
            "processed_rows_per_s": round(progress.processedRowsPerSecond or 0.0, 1),
            "batch_ms": progress.batchDuration,
            "state_rows": sizes.get("open_texts", 0) + sizes.get("topics", 0),
            **sizes,
        }
        self.latest = metrics
        self.last_progress_at = time.monotonic()
        if self.batch_seconds is not None:
            self.batch_seconds.observe(progress.batchDuration / 1000)
        if progress.numInputRows:
            log.info("micro-batch", extra=metrics)
        if self.metrics_file is not None:
            self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
            self.metrics_file.write_text(json.dumps(metrics))

    def onQueryIdle(self, event: Any) -> None:
        self.last_progress_at = time.monotonic()  # nothing new, and Kafka said so

    def onQueryTerminated(self, event: Any) -> None:
        if self.stopping.is_set():  # a stop ends the query with an error on purpose (StopBetweenBatches)
            log.info("query stopped", extra={"id": str(event.id)})
            return
        first_line = (event.exception or "").strip().splitlines()[:1]
        log.info("query terminated", extra={"id": str(event.id), "error": first_line[0][:300] if first_line else ""})


def start(
    spark: SparkSession,
    config: configuration.Config,
    *,
    available_now: bool = False,
    checkpoint: str | None = None,
    writer: KeyedBatch | None = None,
    finish: bool = True,
) -> StreamingQuery:
    """Build the plan on the config's Kafka and Cassandra and start it; `writer` (bound here to the session)
    writes each micro-batch's events. An --available-now query closes the last windows once the topic is read to
    the end, unless not `finish` (a backfill that more chat will follow); see drain for how it ends."""
    location = checkpoint or str(project_path(config.spark.checkpoint_dir) / QUERY_NAME)
    problem = outdated_checkpoint(location)
    if problem:
        raise UserError(problem)
    settings = DetectorSettings.from_config(config)
    kafka = (
        spark.readStream.format("kafka")
        .options(**kafka_options(config))
        .option("subscribe", config.kafka.chat_topic)
        .option("startingOffsets", config.detector.starting_offsets)
        .option("maxOffsetsPerTrigger", config.detector.max_offsets_per_trigger)
        .option("failOnDataLoss", "false")
        .load()
    )
    chat = decode(kafka)
    results = detect(features(chat, spark, settings), settings, drain=available_now and finish)
    stream = results.writeStream.foreachBatch((writer or KeyedBatch(config)).bind(spark))
    stream = stream.queryName(QUERY_NAME).outputMode("append").option("checkpointLocation", location)
    stream = (
        stream.trigger(availableNow=True)
        if available_now
        else stream.trigger(processingTime=f"{int(settings.trigger_s * 1000)} milliseconds")
    )
    log.info(
        "starting",
        extra={
            "chat_topic": config.kafka.chat_topic,
            "checkpoint": location,
            "window_s": config.detector.window_s,
            "watermark_s": config.detector.watermark_s,
            "channel_lag_s": config.detector.channel_lag_s,
        },
    )
    return stream.start()


def outdated_checkpoint(location: str) -> str | None:
    """Why this release cannot resume the checkpoint at `location` (one line), or None. Releases before this one
    kept the detector state beside Spark's, in a `detector-state` folder, and their plan had other sources and no
    state operator: Spark would refuse it with an error about neither. (A local folder only: a checkpoint on HDFS
    or S3 of such a release is refused by Spark.)"""
    if (Path(location) / "detector-state").is_dir():
        return (
            f"the checkpoint {location} was written by a release that kept the detector state beside Spark's "
            f"(detector-state/); this one cannot resume it: start with a new checkpoint (--checkpoint) over the "
            f"retained chat"
        )
    return None


def drain(
    spark: SparkSession,
    config: configuration.Config,
    checkpoint: str,
    *,
    finish: bool = True,
    writer: KeyedBatch | None = None,
    timeout_s: float = 3600,
) -> KeyedBatch:
    """Process what the chat topic holds now, then (finish) close the last windows: a backfill, as
    `--available-now` runs it. Raises when the query fails."""
    writer = writer or KeyedBatch(config)
    query = start(spark, config, available_now=True, checkpoint=checkpoint, writer=writer, finish=finish)
    try:
        wait_for_drain(query, writer, timeout_s)
    finally:
        writer.close()
    return writer


def wait_for_drain(query: StreamingQuery, writer: KeyedBatch, timeout_s: float) -> None:
    """Wait until an --available-now query has written what the topic held, then stop it (see await_drained).
    Raises when the query fails or does not end within timeout_s."""
    await_drained(query, writer, timeout_s)
    ended_within(query, timeout_s)
    if query.exception() and not writer.stop_requested:
        raise RuntimeError(f"detector failed: {str(query.exception()).splitlines()[0][:500]}")
    if query.isActive:
        stop_between_batches(query, writer)
        raise TimeoutError(f"the drain did not end within {timeout_s:.0f} s")


def await_drained(
    query: StreamingQuery, writer: KeyedBatch, timeout_s: float, on_drained: Callable[[], None] = lambda: None
) -> None:
    """Stop an --available-now query once a batch without rows (in which every partition's windows closed) is
    committed: with a processing-time timeout Spark would go on running empty batches. It ends at the start of the
    next batch (see KeyedBatch.request_stop), with an error that `writer.stop_requested` tells apart from a
    failure; on_drained is called first."""
    deadline = time.monotonic() + timeout_s
    # Each look at the query is a call into the JVM: once a second until the writer says it has drained
    while not writer.drained.wait(1.0):
        if not query.isActive or time.monotonic() >= deadline:
            return
    while query.isActive and time.monotonic() < deadline:
        progress = query.lastProgress
        if progress is not None and progress["batchId"] >= (writer.drained_at or 0):
            on_drained()
            stop_between_batches(query, writer, max(deadline - time.monotonic(), 1.0))
            return
        time.sleep(0.2)


@command
def main(argv: list[str] | None = None, prog: str = "spam_detector") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="config file (default conf/twitchcrement.toml)")
    parser.add_argument(
        "--available-now", action="store_true", help="process what is in the topic now, then stop (backfills, tests)"
    )
    parser.add_argument("--checkpoint", help="checkpoint location (default spark.checkpoint_dir/spam-detector)")
    args = parser.parse_args(argv)
    config = configure(args.config)
    stopping = threading.Event()
    current: list[StreamingQuery] = []
    stoppers: list[threading.Thread] = []

    def stop(signum: int, _frame: Any) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()
        if current:
            # The handler runs inside the main thread's blocked awaitTermination call, so the query is stopped
            # from another thread; the SparkContext is stopped only once that thread is done with it.
            stoppers.append(threading.Thread(target=stop_between_batches, args=(current[-1], batches), daemon=True))
            stoppers[-1].start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    batches = KeyedBatch(config)
    registry = CollectorRegistry()
    listener = ProgressLog(
        project_path(config.local.data_dir) / "detector" / "metrics.json",
        batches,
        metrics.batch_histogram(registry),
        stopping,
    )
    watch = KafkaWatch(config, stopping, listener)

    def query_running() -> str | None:
        return None if current and current[-1].isActive else "the streaming query is not running (yet)"

    endpoint = metrics.serve(config, batches, lambda: listener.latest, registry, watch.reachable, query_running)
    try:
        check_cassandra_login(config)  # a refused login or certificate ends the job now, in one line
        reachable = watch.wait_until_reachable()  # before Spark starts: its Kafka source would wait without a word
    except ServiceRefused:
        endpoint.stop()
        raise
    if not reachable:
        endpoint.stop()
        return 0
    spark = session(config, app_name="twitchcrement-spam-detector", **SPARK_METRICS)
    spark.streams.addListener(listener)
    try:
        watch.start()

        def launch() -> StreamingQuery:
            query = start(spark, config, available_now=args.available_now, checkpoint=args.checkpoint, writer=batches)
            if args.available_now:
                threading.Thread(target=await_drained, args=(query, batches, 1e9, stopping.set), daemon=True).start()
            return query

        return supervise(launch, current, stopping, batches, config.detector.outage_limit_s)
    finally:
        stopping.set()
        for stopper in stoppers:
            stopper.join(timeout=10)
        batches.close()
        spark.stop()
        endpoint.stop()


class KafkaWatch(threading.Thread):
    """Says in one line when the chat topic's broker cannot be reached, before the query starts (the query itself
    would wait for minutes without a word) and while it runs without progress; and again when it is back."""

    def __init__(self, config: configuration.Config, stopping: threading.Event, progress: ProgressLog):
        super().__init__(name="kafka-watch", daemon=True)
        self.config, self.stopping, self.progress = config, stopping, progress
        self.timeout_s = config.kafka.connect_timeout_s

    def reachable(self, raise_refused: bool = False) -> str | None:
        """None when a broker answers for the chat topic, else why not (one line); see kafka_problem."""
        return kafka_problem(self.config, self.config.kafka.chat_topic, raise_refused=raise_refused)

    def wait_until_reachable(self) -> bool:
        """Block until Kafka answers (True) or the job is stopped (False), retrying with backoff. A broker that
        refuses the config (login, certificate) raises ServiceRefused: waiting would not help."""
        wait = 1.0
        while not self.stopping.is_set():
            problem = self.reachable(raise_refused=True)
            if problem is None:
                return True
            log.error("kafka unreachable; retrying", extra={"error": problem, "retry_in_s": wait})
            self.stopping.wait(wait)
            wait = min(wait * 2, 30.0)
        return False

    def run(self) -> None:
        away = False
        while not self.stopping.wait(self.timeout_s):
            last = self.progress.last_progress_at
            if time.monotonic() - last < 2 * self.timeout_s and not away:
                continue
            problem = self.reachable()
            if problem and not away:
                log.error("kafka unreachable; the detector waits for it", extra={"error": problem})
            elif not problem and away:
                log.info("kafka reachable again")
            away = problem is not None


def stop_between_batches(query: StreamingQuery, batches: KeyedBatch, timeout_s: float = 30.0) -> None:
    """Stop the query before its next micro-batch (see KeyedBatch.request_stop). One still running after timeout_s
    is stopped in the middle: Spark cancels its jobs under the Python code, the batch is not committed and runs
    again on restart."""
    # The query ends with StopBetweenBatches (or, after timeout_s, cancelled): an error on purpose, so neither
    # Spark's "terminated with error" and its stack nor py4j's traceback is logged.
    logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)
    context = batches.spark.sparkContext
    jvm: Any = context._jvm
    level = str(jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel())
    context.setLogLevel("FATAL")
    batches.request_stop()
    if not ended_within(query, timeout_s):
        log.info("stopping in the middle of a micro-batch; it runs again on restart", extra={"waited_s": timeout_s})
        stop_quietly(query)
    context.setLogLevel(level)  # for the session's next queries


def ended_within(query: StreamingQuery, timeout_s: float) -> bool:
    try:
        return bool(query.awaitTermination(math.ceil(timeout_s)))
    except Exception:  # noqa: BLE001 - it ended with an error: the one asked for, or a failure its runner reports
        return True


def stop_quietly(query: StreamingQuery) -> None:
    try:
        query.stop()
    except Exception as exc:  # noqa: BLE001 - stopping anyway: one line, not a traceback
        log.warning("the query did not stop cleanly", extra={"error": str(exc).splitlines()[0][:300]})


def supervise(
    launch: Callable[[], StreamingQuery],
    current: list[StreamingQuery],
    stopping: threading.Event,
    batches: KeyedBatch,
    outage_limit_s: float,
    max_wait_s: float = 60.0,
) -> int:
    """Run the query; when it fails because Kafka or Cassandra is away, start it again from its checkpoint after
    1, 2, 4 ... (at most max_wait_s) seconds, for at most outage_limit_s without a batch written; then, or at once
    for any other failure, end the job with one line saying why (a supervisor, or the operator, acts on it)."""
    wait = 1.0
    away_since: float | None = None
    written = batches.batches_written
    while not stopping.is_set():
        current.append(launch())
        if stopping.is_set():  # SIGTERM came while the query was starting
            current[-1].stop()
            return 0
        try:
            current[-1].awaitTermination()
            return 0
        except Exception as exc:  # noqa: BLE001 - the query failed: restart or say why in one line
            if stopping.is_set():
                return 0
            failure = batches.failure or exc  # a failed batch's own error, else the query's (its source's)
            if not is_outage(failure):
                log.error("detector failed", extra={"error": describe(failure)})
                return 1
            if batches.batches_written > written:  # it got going again since the last failure
                away_since, wait, written = None, 1.0, batches.batches_written
            now = time.monotonic()
            away_since = now if away_since is None else away_since
            if now - away_since >= outage_limit_s:
                log.error(
                    "a service has been away too long; the detector stops (detector.outage_limit_s)",
                    extra={"error": describe(failure), "away_s": round(now - away_since)},
                )
                return 1
            log.warning(
                "a service is away; restarting the query from its checkpoint",
                extra={"error": describe(failure), "retry_in_s": wait},
            )
            if stopping.wait(wait):
                return 0
            wait = min(wait * 2, max_wait_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
