"""The one Spark session factory, used by the jobs, the notebooks and the tests."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from twitchcrement import jvm
from twitchcrement.clients import kafka_java_security
from twitchcrement.config import Config, project_path

log = logging.getLogger(__name__)
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
REDACTED_SETTINGS = r"(?i)secret|password|token|access[.]key|jaas|keystore[.]key|credential"
# The connector's default cipher suites (TLS_RSA_*) are ones Cassandra 5 on Java 17 no longer offers.
CASSANDRA_CIPHER_SUITES = (
    "TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256,"
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
)


def kafka_options(config: Config) -> dict[str, str]:
    """The Kafka source's and sink's connection options: bootstrap servers and the client's security settings."""
    return {
        "kafka.bootstrap.servers": config.kafka_bootstrap,
        **{f"kafka.{key}": value for key, value in kafka_java_security(config).items()},
    }


def cassandra_connector_security(config: Config) -> dict[str, str]:
    """spark-cassandra-connector's login and TLS. Its trust store must be a Java key store: the CA file is turned
    into a PKCS#12 one here (on a cluster, set spark.cassandra.connection.ssl.trustStore.path in spark.conf to a
    store every executor has)."""
    settings: dict[str, str] = {}
    if config.cassandra.username:
        settings["spark.cassandra.auth.username"] = config.cassandra.username
        settings["spark.cassandra.auth.password"] = config.cassandra.password.reveal()
    if config.cassandra.ssl:
        settings["spark.cassandra.connection.ssl.enabled"] = "true"
        settings["spark.cassandra.connection.ssl.enabledAlgorithms"] = CASSANDRA_CIPHER_SUITES
        if config.cassandra.ssl_cafile:
            store, password = jvm.trust_store(project_path(config.cassandra.ssl_cafile))
            settings["spark.cassandra.connection.ssl.trustStore.path"] = str(store)
            settings["spark.cassandra.connection.ssl.trustStore.password"] = password
            settings["spark.cassandra.connection.ssl.trustStore.type"] = "PKCS12"
    return settings


def spark_settings(config: Config) -> dict[str, str]:
    """Every Spark setting the platform makes, from the config (spark.conf entries win)."""
    settings = {
        "spark.driver.memory": config.spark.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        # Each commit uploads the changes (a changelog), not the whole store; snapshots are made in the background.
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.cassandra.connection.host": ",".join(config.cassandra_hosts),
        "spark.cassandra.connection.port": str(config.cassandra_port),
        "spark.cassandra.connection.localDC": config.cassandra.local_datacenter,
        "spark.cassandra.connection.timeoutMS": str(int(config.cassandra.connect_timeout_s * 1000)),
        # The connector's defaults retry a failed query 60 times, each waiting up to 2 minutes: a write to a node
        # that went away then hangs for hours. Fail within a minute instead; jobs.sinks retries with backoff.
        "spark.cassandra.query.retry.count": "3",
        "spark.cassandra.read.timeoutMS": "20000",
        # Spark shows its settings on the UI's environment page and in event logs: hide every credential there
        # (Spark's own pattern, plus the Kafka JAAS line and key material), and in the plans' data source options.
        "spark.redaction.regex": REDACTED_SETTINGS,
        "spark.sql.redaction.options.regex": REDACTED_SETTINGS + "|url",  # url: Spark's own default there
        **cassandra_connector_security(config),
    }
    if config.spark.master.startswith("local"):
        # Everything stays on loopback in local mode (the machine's other addresses are not for this traffic).
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.driver.bindAddress"] = "127.0.0.1"
    log4j = Path(__file__).with_name("log4j2-spark.properties")
    settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j}"
    settings["spark.executor.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j}"
    if config.spark.shuffle_partitions:
        settings[SHUFFLE_PARTITIONS] = str(config.spark.shuffle_partitions)
    settings.update(config.spark.conf)
    return settings


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands its gateway to Python; --packages/--jars then did the classpath.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session(config: Config, app_name: str | None = None, **extra: Any) -> Any:
    """A SparkSession: master and settings from the config, the connector jars from .cache/jars when run locally."""
    from pyspark.sql import SparkSession

    # Workers must run the same interpreter (pandas UDFs fail on a system Python without the project's packages).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    builder = SparkSession.builder.appName(app_name or config.spark.app_name)
    if not _launched_by_spark_submit():
        builder = builder.master(config.spark.master)
        builder = builder.config("spark.jars", ",".join(str(j) for j in jvm.classpath("spark")))
    for key, value in {**spark_settings(config), **{k: str(v) for k, v in extra.items()}}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not spark.sparkContext.getConf().contains(SHUFFLE_PARTITIONS):  # not set here, by spark-submit or defaults
        # One task per core: each shuffle task of the detector's stateful step has a fixed cost, so a second wave of
        # tasks on the same cores only adds to every micro-batch. The checkpoint of a running query keeps its count.
        spark.conf.set(SHUFFLE_PARTITIONS, str(spark.sparkContext.defaultParallelism))
    spark.sparkContext.setLogLevel("WARN")
    log.info(
        "spark session ready",
        extra={
            "master": spark.sparkContext.master,
            "shuffle_partitions": spark.conf.get(SHUFFLE_PARTITIONS),
            "ui": spark.sparkContext.uiWebUrl or "disabled",
        },
    )
    return spark


def checkpoint_offsets(checkpoint: Path, topic: str) -> int | None:
    """Records of `topic` a streaming query has planned to read, from its checkpoint's latest offsets log entry
    (None before its first batch). Lets other processes follow a query's progress without talking to it."""
    folder = checkpoint / "offsets"
    entries = (
        sorted((p for p in folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) if folder.exists() else []
    )
    if not entries:
        return None
    offsets = source_offsets(entries[-1].read_text(errors="replace"), topic)
    return sum(offsets.values()) if offsets is not None else None


def source_offsets(log_entry: str, topic: str) -> dict[int, int] | None:
    """A Kafka topic's partition offsets from one entry of a query's offsets log (offsets/N: a version line, the
    batch's metadata, then one line per source) or of a Kafka source's initial offsets (sources/I/0)."""
    for line in log_entry.splitlines():
        line = line.strip("\x00 ")
        if line.startswith("{") and f'"{topic}"' in line:
            return {int(p): int(o) for p, o in json.loads(line)[topic].items()}
    return None
