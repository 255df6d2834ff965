"""The platform's infrastructure: local Kafka and Cassandra for the demo and tests, and the topics and tables.

    services.up(config)      start what is local (idempotent, waits until ready), then create topics and tables
    services.down(config)    stop the local services cleanly
    services.status(config)  one Status per service
"""

from __future__ import annotations

from twitchcrement.config import Config

from services.local import JavaService, LocalCassandra, LocalKafka, ServiceError, Status, all_services
from services.schema import ensure_tables, ensure_topics, init

__all__ = ["JavaService", "LocalCassandra", "LocalKafka", "ServiceError", "Status", "down", "ensure_tables",
           "ensure_topics", "init", "status", "up"]


def up(config: Config) -> list[Status]:
    statuses = [service.start() for service in all_services(config)]
    init(config)
    return statuses


def down(config: Config) -> None:
    for service in reversed(all_services(config)):
        service.stop()


def status(config: Config) -> list[Status]:
    return [service.status() for service in all_services(config)]
