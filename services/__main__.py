"""python -m services {up,demo,down,status,init} [--config F]: local Kafka and Cassandra, topics/tables, the demo."""

from __future__ import annotations

import argparse
import sys

import services
from twitchcrement import config as configuration
from twitchcrement import logs
from twitchcrement.clients import ServiceUnavailable
from twitchcrement.jvm import JvmSetupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services", description=__doc__)
    parser.add_argument("action", choices=["up", "demo", "down", "status", "init"])
    parser.add_argument("--config", help="config file (default conf/twitchcrement.toml)")
    args = parser.parse_args(argv)
    try:
        config = configuration.load(args.config)
        logs.setup(config["logging.level"], config["logging.format"])
        if args.action == "up":
            statuses = services.up(config)
        elif args.action == "demo":
            statuses = services.demo(config)
        elif args.action == "down":
            services.down(config)
            statuses = services.status(config)
        elif args.action == "init":
            services.init(config)
            statuses = services.status(config)
        else:
            statuses = services.status(config)
    except (configuration.ConfigError, services.ServiceError, ServiceUnavailable, JvmSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for status in statuses:
        print(status.line())
    if args.action == "status" and any(s.state in ("stopped", "stale") for s in statuses):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
