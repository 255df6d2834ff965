"""python -m services {up,demo,down,status,init} [--config F]: local Kafka and Cassandra, topics/tables, the demo."""

from __future__ import annotations

import argparse
import sys

import services
from twitchcrement.cli import command, configure


@command
def main(argv: list[str] | None = None, prog: str = "python -m services") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(
        "action",
        choices=["up", "demo", "down", "status", "init"],
        help="up: start local Kafka and Cassandra; demo: the whole platform on replayed chat; "
        "down: stop them; status: what runs; init: create topics and tables (idempotent)",
    )
    parser.add_argument("--config", help="config file (default conf/twitchcrement.toml)")
    args = parser.parse_args(argv)
    config = configure(args.config)
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
    for status in statuses:
        print(status.line())
    if args.action == "status" and any(s.state in ("stopped", "stale") for s in statuses):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
