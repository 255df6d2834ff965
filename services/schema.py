"""The platform's Kafka topics and Cassandra tables, created idempotently on whatever cluster the config names."""

from __future__ import annotations

import logging
import re
import time
import uuid
from pathlib import Path
from string import Template

from twitchcrement.clients import cassandra_session, kafka_admin, kafka_consumer, kafka_producer
from twitchcrement.config import Config

log = logging.getLogger(__name__)

CQL_FILE = Path(__file__).with_name("cassandra.cql")
HEALTH_TOPIC = "twitchcrement-health"


def platform_topics(config: Config) -> list[str]:
    return [config.kafka.chat_topic, config.kafka.spam_topic, config.kafka.deadletter_topic]


def compacted_topics(config: Config) -> list[str]:
    """Topics that hold the latest value per key (one partition, log compaction)."""
    return [config.ingest.channels_topic]


def ensure_topics(config: Config, topics: list[str] | None = None, partitions: int | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = platform_topics(config) + compacted_topics(config) if topics is None else topics
    compacted = set(compacted_topics(config))
    admin = kafka_admin(config)
    try:
        missing = [t for t in wanted if t not in set(admin.list_topics())]
        for topic in missing:
            if topic in compacted:
                new = NewTopic(topic, 1, config.kafka.replication_factor, topic_configs={"cleanup.policy": "compact"})
            else:
                new = NewTopic(topic, partitions or config.kafka.partitions, config.kafka.replication_factor)
            try:
                admin.create_topics([new])
            except TopicAlreadyExistsError:
                pass  # created by someone else meanwhile: fine
        if missing:
            log.info("created topics", extra={"topics": ",".join(missing)})
        return missing
    finally:
        admin.close()


def drop_topics(config: Config, topics: list[str]) -> None:
    """Delete these topics where they exist (the benchmarks' own topics, once a run is over)."""
    admin = kafka_admin(config)
    try:
        present = [t for t in topics if t in set(admin.list_topics())]
        if present:
            admin.delete_topics(present)
    finally:
        admin.close()


def kafka_round_trip(config: Config, timeout_s: float = 10.0) -> None:
    """Produce one record and read it back: the broker really stores and serves data."""
    from kafka import TopicPartition

    ensure_topics(config, [HEALTH_TOPIC], partitions=1)
    token = uuid.uuid4().bytes
    producer = kafka_producer(config, linger_ms=0, retries=3)
    try:
        offset = producer.send(HEALTH_TOPIC, token).get(timeout=timeout_s).offset
    finally:
        producer.close(timeout=5)
    consumer = kafka_consumer(config, enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000))
    try:
        partition = TopicPartition(HEALTH_TOPIC, 0)
        consumer.assign([partition])
        consumer.seek(partition, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                if any(r.value == token for r in records):
                    return
        raise TimeoutError(f"wrote offset {offset} of {HEALTH_TOPIC} but could not read it back")
    finally:
        consumer.close()


def replication(config: Config) -> str:
    """The keyspace's replication map, as CQL: SimpleStrategy with one factor, or NetworkTopologyStrategy with a
    factor per data centre (names and factors validated by the config)."""
    strategy = config.cassandra.replication_strategy
    if strategy == "SimpleStrategy":
        factors = {"replication_factor": int(config.cassandra.replication_factor)}
    else:
        factors = {dc: int(factor) for dc, factor in sorted(config.cassandra.datacenters.items())}
    return "{" + ", ".join([f"'class': '{strategy}'", *(f"'{dc}': {n}" for dc, n in factors.items())]) + "}"


def cql_statements(config: Config) -> list[str]:
    """services/cassandra.cql with the keyspace and its replication filled in, split into statements.

    DDL takes no bind markers, so these two values are substituted; the config validates both (a CQL
    identifier; a strategy, data centre names and whole factors).
    """
    template = Template(CQL_FILE.read_text())
    text = template.substitute(keyspace=config.cassandra.keyspace, replication=replication(config))
    text = re.sub(r"--[^\n]*", "", text)
    return [s.strip() for s in text.split(";") if s.strip()]


def ensure_tables(config: Config) -> None:
    session = cassandra_session(config, keyspace=False)
    try:
        for statement in cql_statements(config):
            session.execute(statement, timeout=60)
        log.info("keyspace and tables ready", extra={"keyspace": config.cassandra.keyspace})
    finally:
        session.cluster.shutdown()


def init(config: Config) -> None:
    ensure_topics(config)
    ensure_tables(config)
