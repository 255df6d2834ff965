"""The local Kafka and Cassandra: idempotent start, status, topics and tables, and one-line failures."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

import services
from services.local import LocalCassandra, LocalKafka, ServiceError
from services.schema import HEALTH_TOPIC, cql_statements, ensure_topics, kafka_round_trip, platform_topics
from tests.conftest import test_config
from twitchcrement import PROJECT_ROOT, jvm
from twitchcrement.clients import cassandra_session, kafka_admin


def test_start_is_idempotent_and_status_reports_running(platform):
    before = {s.name: s.pid for s in services.status(platform)}
    again = services.up(platform)
    assert {s.name: s.pid for s in again} == before
    assert all(s.state == "running" and s.rss_mb > 0 for s in again)


def test_status_command_line(platform):
    result = subprocess.run(
        [sys.executable, "-m", "services", "status"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **_test_env()},
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "kafka: running at 127.0.0.1:19092" in result.stdout
    assert "cassandra: running at 127.0.0.1:19042" in result.stdout


def _test_env() -> dict[str, str]:
    from tests.conftest import TEST_ENVIRONMENT

    return dict(TEST_ENVIRONMENT)


def test_topics_and_tables_exist_and_creation_is_idempotent(platform):
    assert ensure_topics(platform) == []
    admin = kafka_admin(platform)
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(platform_topics(platform))}
    finally:
        admin.close()
    assert described == {topic: 4 for topic in platform_topics(platform)}
    services.init(platform)  # twice is fine
    session = cassandra_session(platform)
    try:
        query = session.prepare("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?")
        tables = {row.table_name for row in session.execute(query, [platform.cassandra.keyspace])}
    finally:
        session.cluster.shutdown()
    expected = {
        s.split("EXISTS ")[1].split(".")[1].split(" ")[0]
        for s in cql_statements(platform)
        if s.startswith("CREATE TABLE")
    }
    assert expected <= tables and "spam_events_by_channel" in tables


def test_kafka_readiness_is_a_real_round_trip(platform):
    kafka_round_trip(platform)
    admin = kafka_admin(platform)
    try:
        assert HEALTH_TOPIC in admin.list_topics()
    finally:
        admin.close()


def test_external_services_are_not_started(tmp_path):
    config = test_config(
        KAFKAPORT="127.0.0.1:1", CASSANDRA_ADDRESS="127.0.0.2", TWITCHCREMENT_LOCAL_DATA_DIR=str(tmp_path)
    )
    assert [s.state for s in services.status(config)] == ["external", "external"]
    assert LocalKafka(config).start().state == "external"
    assert not (tmp_path / "kafka").exists()


def test_port_taken_is_one_clear_line(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = test_config(
            TWITCHCREMENT_LOCAL_DATA_DIR=str(tmp_path),
            TWITCHCREMENT_LOCAL_KAFKA_PORT=str(port),
            TWITCHCREMENT_LOCAL_KAFKA_CONTROLLER_PORT=str(port + 1),
        )
        with pytest.raises(ServiceError, match=f"port {port} \\(local.kafka_port\\) is taken") as error:
            LocalKafka(config).start()
    assert "\n" not in str(error.value)


def test_a_service_that_dies_reports_its_log(tmp_path):
    # A heap too small for the JVM to boot: the process exits at once.
    config = test_config(
        TWITCHCREMENT_LOCAL_DATA_DIR=str(tmp_path),
        TWITCHCREMENT_LOCAL_CASSANDRA_HEAP="1k",
        TWITCHCREMENT_LOCAL_CASSANDRA_PORT="19142",
        TWITCHCREMENT_LOCAL_CASSANDRA_STORAGE_PORT="17100",
        TWITCHCREMENT_LOCAL_CASSANDRA_JMX_PORT="17299",
    )
    with pytest.raises(ServiceError) as error:
        LocalCassandra(config).start()
    first_line, _, tail = str(error.value).partition("\n")
    assert "local cassandra died during start-up" in first_line
    assert str(tmp_path / "cassandra" / "logs" / "stdout.log") in first_line
    assert "heap" in tail.lower()
    assert LocalCassandra(config).status().state == "stopped"


def test_java_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(jvm.JvmSetupError, match="Java not found"):
        jvm.java_executable()


def test_spark_classpath_has_no_jar_that_pyspark_ships():
    shipped = {j.name for j in jvm.pyspark_jars()}
    ours = {jvm.artifact_id(j): j.name for j in jvm.classpath("spark")}
    assert {"spark-sql-kafka-0-10_2.12", "spark-cassandra-connector_2.12", "kafka-clients"} <= set(ours)
    for clashing in ("scala-library", "lz4-java", "snappy-java", "slf4j-api", "commons-lang3", "spark-tags_2.12"):
        assert any(name.startswith(clashing + "-") for name in shipped)
        assert clashing not in ours
