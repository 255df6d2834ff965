"""The platform's infrastructure: local Kafka and Cassandra for the demo and tests, and the topics and tables.

services.up(config)      start what is local (idempotent, waits until ready), then create topics and tables
services.demo(config)    up, then the platform's components on embedded chat (see services/demo.py)
services.down(config)    stop the demo's components and the local services cleanly
services.status(config)  one Status per service and component
"""

from __future__ import annotations

from services.demo import components, set_aside_outdated_checkpoint
from services.local import JavaService, LocalCassandra, LocalKafka, ManagedProcess, ServiceError, Status, all_services
from services.schema import ensure_tables, ensure_topics, init
from twitchcrement.config import Config

__all__ = [
    "JavaService",
    "LocalCassandra",
    "LocalKafka",
    "ManagedProcess",
    "ServiceError",
    "Status",
    "demo",
    "down",
    "ensure_tables",
    "ensure_topics",
    "init",
    "status",
    "up",
]


def up(config: Config) -> list[Status]:
    statuses = [service.start() for service in all_services(config)]
    init(config)
    return statuses


def demo(config: Config) -> list[Status]:
    statuses = up(config)
    if all(c.pid() is None for c in components(config)):  # not while a demo runs
        set_aside_outdated_checkpoint(config)
    return statuses + [component.start() for component in components(config)]


def down(config: Config) -> None:
    for process in reversed(all_services(config) + components(config)):
        process.stop()


def status(config: Config) -> list[Status]:
    running = [c.status() for c in components(config)]
    return [service.status() for service in all_services(config)] + [s for s in running if s.state != "stopped"]
