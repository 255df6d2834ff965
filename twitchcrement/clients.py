"""Kafka and Cassandra clients built from the config, failing fast with one line that names the setting."""

from __future__ import annotations

import logging
from typing import Any

from twitchcrement.config import Config
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)


class ServiceUnavailable(UserError, ConnectionError):
    """A configured service did not answer; the message names the setting that points at it."""


def _kafka_where(config: Config) -> str:
    if config.kafka_is_local:
        return f"local Kafka at {config.kafka_bootstrap} (local.kafka_port; start it with `make services-up`)"
    return f"kafka.bootstrap_servers={config.kafka_bootstrap}"


def _cassandra_where(config: Config) -> str:
    hosts = ",".join(config.cassandra_hosts)
    if config.cassandra_is_local:
        return (
            f"local Cassandra at {hosts}:{config.cassandra_port} (local.cassandra_port; "
            f"start it with `make services-up`)"
        )
    return f"cassandra.hosts={hosts} port {config.cassandra_port}"


def _kafka_common(config: Config) -> dict[str, Any]:
    timeout_ms = int(config["kafka.connect_timeout_s"] * 1000)
    return {
        "bootstrap_servers": config.kafka_bootstrap.split(","),
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": max(timeout_ms, 30_000),
        "client_id": "twitchcrement",
    }


def _kafka(factory: Any, config: Config, *args: Any, **kwargs: Any) -> Any:
    from kafka.errors import KafkaConfigurationError, KafkaError, KafkaTimeoutError

    try:
        return factory(*args, **{**_kafka_common(config), **kwargs})
    except KafkaTimeoutError:
        timeout = config["kafka.connect_timeout_s"]
        raise ServiceUnavailable(f"no Kafka broker answered within {timeout:.0f} s: {_kafka_where(config)}") from None
    except KafkaConfigurationError:
        raise  # a programming error, not an unreachable broker
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka failed ({type(exc).__name__}: {exc}): {_kafka_where(config)}") from None


def kafka_producer(config: Config, **kwargs: Any) -> Any:
    from kafka import KafkaProducer

    # kafka-python 3 turns idempotence on by default, and its idempotent producer stalls for good once a batch has
    # expired during a broker outage (measured: a SIGKILLed broker, back after 30 s, and nothing more delivered).
    # Without it a retry after a lost acknowledgement can write a record twice; records carry ids for that.
    defaults = {
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "retries": 2**31 - 1,
        "enable_idempotence": False,
    }
    return _kafka(KafkaProducer, config, **{**defaults, **kwargs})


def kafka_consumer(config: Config, *topics: str, **kwargs: Any) -> Any:
    from kafka import KafkaConsumer

    return _kafka(KafkaConsumer, config, *topics, **kwargs)


def kafka_problem(config: Config, topic: str) -> str | None:
    """None when a Kafka broker answers and has the topic, else why not (one line): readiness checks."""
    try:
        consumer = kafka_consumer(config)
    except ServiceUnavailable as exc:
        return str(exc)
    try:
        if consumer.partitions_for_topic(topic) is None:
            return f"topic {topic!r} does not exist (create it: `twitchcrement services init`)"
        return None
    finally:
        consumer.close()


def kafka_admin(config: Config) -> Any:
    from kafka import KafkaAdminClient

    return _kafka(KafkaAdminClient, config)


def cassandra_cluster(config: Config) -> Any:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config["cassandra.local_datacenter"])),
        request_timeout=30.0,
    )
    return Cluster(
        contact_points=config.cassandra_hosts,
        port=config.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=config["cassandra.connect_timeout_s"],
        protocol_version=5,
    )


def cassandra_session(config: Config, *, keyspace: bool = True) -> Any:
    """A connected session (in the platform's keyspace unless keyspace=False). Close its cluster when done."""
    from cassandra import InvalidRequest
    from cassandra.cluster import NoHostAvailable

    cluster = cassandra_cluster(config)
    try:
        session = cluster.connect(config["cassandra.keyspace"] if keyspace else None)
    except NoHostAvailable:
        cluster.shutdown()
        raise ServiceUnavailable(f"no Cassandra node answered: {_cassandra_where(config)}") from None
    except InvalidRequest as exc:
        cluster.shutdown()
        raise ServiceUnavailable(
            f"Cassandra keyspace {config['cassandra.keyspace']!r} is not usable ({exc}); "
            f"create it with `make services-up` or `python -m services init`"
        ) from None
    return session
