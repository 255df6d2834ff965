"""A service that is away is told from a failure that retrying cannot fix by the errors' types (real Java and Kafka
client exceptions), and the detector's restarts while one is away are bounded."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError
from py4j.protocol import Py4JJavaError

from jobs.keyed import KeyedBatch
from jobs.outages import describe, is_outage
from jobs.spam_detector import supervise
from tests.conftest import test_config


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nobody listens once it is closed


def refused_connection(spark) -> None:
    """A real java.net.ConnectException, as a sink's client gets it from a service that is down."""
    spark.sparkContext._jvm.java.net.Socket("127.0.0.1", closed_port())


def bad_number(spark) -> None:
    spark.sparkContext._jvm.java.lang.Integer.parseInt("ten")


def test_errors_are_told_apart_by_their_types_not_their_words(spark) -> None:
    with pytest.raises(Py4JJavaError) as refused:
        refused_connection(spark)
    with pytest.raises(Exception) as malformed:  # pyspark raises it as its own NumberFormatException
        bad_number(spark)
    assert is_outage(refused.value)
    assert not is_outage(malformed.value)
    assert describe(refused.value).startswith("java.net.ConnectException")
    assert describe(malformed.value).startswith("java.lang.NumberFormatException")
    # as the cause of another error (a sink wrapping its client's)
    try:
        try:
            refused_connection(spark)
        except Py4JJavaError as cause:
            raise RuntimeError("the write failed") from cause
    except RuntimeError as wrapped:
        assert is_outage(wrapped)
    # the Kafka client's own retriable flag; and the words of an outage in a message make none
    assert is_outage(KafkaTimeoutError("no answer in 10 s"))
    assert is_outage(ConnectionRefusedError(111, "Connection refused"))
    assert not is_outage(TopicAuthorizationFailedError())
    assert not is_outage(ValueError("Connection refused: timed out, NoHostAvailable, not available"))


class FailingWrites(KeyedBatch):
    """The detector's foreachBatch, with every batch's write failing as `fail` does."""

    def __init__(self, fail):
        super().__init__(test_config())
        self.fail = fail

    def _write(self, batch, batch_id) -> None:
        self.fail()


def run_supervised(spark, writes: FailingWrites, outage_limit_s: float) -> tuple[int, int]:
    """supervise() over real queries (a rate source into the failing writes): its exit code and the starts."""
    starts: list[object] = []

    def launch():
        query = spark.readStream.format("rate").load().writeStream.foreachBatch(writes.bind(spark)).start()
        starts.append(query)
        return query

    stopping = threading.Event()
    try:
        code = supervise(launch, [], stopping, writes, outage_limit_s, max_wait_s=1.0)
    finally:
        writes.close()
    return code, len(starts)


def test_the_query_restarts_while_a_service_is_away_and_the_job_stops_after_the_limit(spark, caplog) -> None:
    caplog.set_level(logging.INFO, logger="jobs.spam_detector")
    code, starts = run_supervised(spark, FailingWrites(lambda: refused_connection(spark)), outage_limit_s=4)
    assert code == 1
    assert starts >= 2  # restarted after 1, 1, 1 ... s until 4 s had gone by without a batch written
    restarts = [r for r in caplog.records if r.getMessage().startswith("a service is away")]
    assert len(restarts) == starts - 1
    assert "java.net.ConnectException" in restarts[0].error
    assert any("away too long" in r.getMessage() for r in caplog.records)


def test_a_failure_that_retrying_cannot_fix_stops_the_job_at_once(spark, caplog) -> None:
    caplog.set_level(logging.INFO, logger="jobs.spam_detector")
    code, starts = run_supervised(spark, FailingWrites(lambda: bad_number(spark)), outage_limit_s=600)
    assert (code, starts) == (1, 1)
    [failed] = [r for r in caplog.records if r.getMessage() == "detector failed"]
    assert failed.error.startswith("java.lang.NumberFormatException")
