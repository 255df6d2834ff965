"""The `twitchcrement` command, and what every command line of the platform shares: loading the config, setting up
logging from it, and showing a user's error (twitchcrement.errors.UserError) as one line with exit status 1."""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twitchcrement import config as configuration
from twitchcrement import logs
from twitchcrement.errors import UserError

COMMANDS = {
    "ingest": (
        "ingest.__main__",
        "chat into Kafka: Twitch IRC (twitch), chat logs (replay), labelled synthetic chat (synth)",
    ),
    "detector": (
        "jobs.spam_detector",
        "the spam detector: Spark Structured Streaming, Kafka in, Kafka and Cassandra out",
    ),
    "dashboard": ("dashboard.__main__", "the web dashboard: live, search, users, overview"),
    "services": (
        "services.__main__",
        "local Kafka and Cassandra (up, down, status), topics and tables (init), the demo",
    ),
    "bench": ("bench.run", "the benchmarks: detector, exact, noop and datasketch side by side"),
}
DESCRIPTION = "\n".join(
    [
        "Twitchcrement: real-time analytics of spam in Twitch chat.",
        "",
        *(f"  {name:<10} {what}" for name, (_, what) in COMMANDS.items()),
        "",
        "Each command's options: twitchcrement COMMAND --help (the python -m forms work too).",
    ]
)


def configure(path: str | None, **overrides: Any) -> configuration.Config:
    """The config (defaults < file < TWITCHCREMENT_* environment < overrides), with logging set up from it."""
    config = configuration.load(path)
    if overrides:
        config = config.with_overrides(**overrides)
    logs.setup(config.logging.level, config.logging.format)
    return config


def command(main: Callable[..., int]) -> Callable[..., int]:
    """A command line's main: a UserError anywhere in it is one line on stderr and exit status 1."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="twitchcrement", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help=", ".join(COMMANDS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's own (COMMAND --help)")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.main(argv[1:], prog=f"twitchcrement {args.command}") or 0)


if __name__ == "__main__":
    sys.exit(main())
