"""python -m ingest {twitch,replay,synth}: chat into the Kafka topic `chatmessage` (msgpack, key = channel).

  python -m ingest twitch [--channels-file F] [--irc-host H] [--irc-port P] [--no-tls]
  python -m ingest replay PATH... [--speed X|max] [--restamp] [--loop] [--channel C] [--date D] [--timezone Z]
  python -m ingest synth --rate R --seconds S --labels OUT [--channels N] [--seed N] [--speed X|max] [--out F.jsonl]

Every option defaults to its `ingest.*` setting in the config. SIGTERM or Ctrl-C flushes what is buffered and exits.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import os
import signal
import sys
import threading
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry

from ingest import metrics, replay, twitch
from ingest.captures import Hints, captures, known_formats, merged
from ingest.channels import ChannelSource, HelixError, publish
from ingest.sink import ChatSink
from ingest.synth import Generator, SynthSettings, write_jsonl
from twitchcrement import config as configuration
from twitchcrement.cli import command, configure
from twitchcrement.records import ChannelList, ChatMessage

log = logging.getLogger("ingest")


class Stopper:
    """Set by SIGTERM/SIGINT so loops end cleanly and the sink gets flushed."""

    def __init__(self) -> None:
        self.event = threading.Event()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        self.event.set()

    def __call__(self) -> bool:
        return self.event.is_set()


def _speed(value: str) -> float | None:
    """A speed factor, or None for as fast as possible ("max")."""
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = 0.0
    if speed <= 0:
        raise configuration.ConfigError(f"--speed {value!r}: must be a number greater than 0, or max")
    return speed


def parser(prog: str = "python -m ingest") -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root.add_argument("--config", help="config file (default conf/twitchcrement.toml)")
    root.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    commands = root.add_subparsers(dest="command", required=True)

    twitch = commands.add_parser("twitch", help="read live Twitch chat of the top channels")
    twitch.add_argument("--channels-file", help="channels to join, one a line (default: Helix top channels)")
    twitch.add_argument("--irc-host")
    twitch.add_argument("--irc-port", type=int)
    twitch.add_argument("--no-tls", action="store_true", help="plain TCP instead of TLS")

    rep = commands.add_parser(
        "replay",
        help="replay recorded chat files",
        description=f"Replay chat logs (files, .gz files, directories). Formats, chosen by content: {known_formats()}.",
    )
    rep.add_argument("paths", nargs="+", metavar="PATH", help="a chat log, a gzipped one, or a directory of them")
    rep.add_argument("--speed", help="speed factor (1 = recorded pace) or max (default: ingest.replay_speed)")
    rep.add_argument("--restamp", action="store_true", help="shift event times so the replay starts now")
    rep.add_argument("--loop", action="store_true", help="replay again and again (implies --restamp)")
    rep.add_argument("--channel", help="channel of logs that name none, in their lines or file name")
    rep.add_argument(
        "--date",
        help="day (YYYY-MM-DD) of logs with times of day only, when neither their lines nor their file name give it",
    )
    rep.add_argument(
        "--timezone", help="time zone of IRC client logs, written in local time (default UTC), e.g. Europe/Berlin"
    )

    synth = commands.add_parser("synth", help="generate labelled synthetic chat")
    synth.add_argument("--rate", type=float, help="messages per second, all channels together")
    synth.add_argument("--seconds", type=float, required=True, help="how many seconds of chat")
    synth.add_argument("--labels", required=True, help="where to write the ground truth (JSON lines)")
    synth.add_argument("--channels", type=int)
    synth.add_argument("--seed", type=int)
    synth.add_argument("--spam-share", type=float)
    synth.add_argument("--speed", default="1", help="1 = in real time (default), max = as fast as possible")
    synth.add_argument("--out", help="write JSON lines to this file instead of Kafka")
    return root


def _to_kafka(
    config: configuration.Config,
    messages: Iterable[ChatMessage],
    *,
    speed: float | None,
    restamp: bool,
    label: str,
    total: int | None,
    progress: bool,
    stop: Stopper,
    problems: Callable[[], dict[str, int]] | None = None,
) -> tuple[int, int]:
    """Messages into Kafka, with the ingest's metrics endpoint up meanwhile; (exit status, messages produced)."""
    registry = CollectorRegistry()
    sink = ChatSink(config, delivery=metrics.delivery_histogram(registry))
    endpoint = metrics.serve(config, sink, registry, problems=problems)
    try:
        replay.run(
            messages,
            sink,
            speed=speed,
            restamp=restamp,
            total=total,
            label=label,
            stop=stop,
            progress=progress,
            log_every_s=config.ingest.progress_every_s,
        )
    finally:
        # On SIGTERM give Kafka a few seconds; a finished replay waits until everything is acknowledged.
        sink.close(timeout_s=8.0 if stop() else 600.0)
        endpoint.stop()
    stats = sink.stats
    log.info("done", extra={"produced": stats.produced, "dropped": stats.dropped, "opted_out": stats.opted_out})
    return (0 if stats.dropped == 0 else 2), stats.produced


def _hints(args: argparse.Namespace) -> Hints:
    """--channel, --date and --timezone, checked: a wrong value is one line, before anything is read."""
    try:
        day = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise configuration.ConfigError(f"--date {args.date!r}: expected a day as YYYY-MM-DD") from None
    try:
        zone = zoneinfo.ZoneInfo(args.timezone) if args.timezone else dt.UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise configuration.ConfigError(
            f"--timezone {args.timezone!r}: not a time zone name such as Europe/Berlin or UTC"
        ) from None
    channel = args.channel.lstrip("#").lower() if args.channel else None
    return Hints(channel=channel, date=day, timezone=zone)


def cmd_replay(config: configuration.Config, args: argparse.Namespace, stop: Stopper) -> int:
    speed = _speed(args.speed or config.ingest.replay_speed)
    files = captures(args.paths, _hints(args))

    def problems() -> dict[str, int]:
        """Bad lines so far, by kind, over the files (the IRC parser's and the format readers')."""
        kinds: Counter[str] = Counter()
        for capture in files:
            kinds.update(capture.parser.errors)
            kinds.update(capture.problems)
        return dict(kinds)

    if args.loop:

        def passes() -> Iterable[ChatMessage]:
            for number in itertools.count(1):
                yield from replay.paced(merged([c.fresh() for c in files]), speed, restamp=True)
                log.info("replay pass finished, starting again", extra={"pass": number})

        # paced() inside each pass keeps its timing; the outer run passes messages straight through.
        status, produced = _to_kafka(
            config,
            passes(),
            speed=None,
            restamp=False,
            label="replay (looping)",
            total=None,
            progress=not args.no_progress,
            stop=stop,
            problems=problems,
        )
    else:
        status, produced = _to_kafka(
            config,
            merged(files),
            speed=speed,
            restamp=args.restamp,
            label="replay",
            total=None,
            progress=not args.no_progress,
            stop=stop,
            problems=problems,
        )
    for capture in files:
        if capture.skipped:
            log.warning("capture had bad lines", extra={"capture": str(capture.path), **capture.summary()})
    if produced == 0 and not stop():
        log.error(
            "nothing replayed: no chat message could be read from the capture(s)",
            extra={"captures": len(files), "skipped": sum(c.skipped for c in files)},
        )
        return 3
    return status


def cmd_synth(config: configuration.Config, args: argparse.Namespace, stop: Stopper) -> int:
    settings = SynthSettings(
        rate=args.rate or config.ingest.synth_rate,
        seconds=args.seconds,
        channels=args.channels or config.ingest.synth_channels,
        spam_share=config.ingest.synth_spam_share if args.spam_share is None else args.spam_share,
        seed=config.ingest.synth_seed if args.seed is None else args.seed,
        start_ms=int(time.time() * 1000),
    )
    generator = Generator(settings, labels_path=args.labels)
    if args.out:
        count = write_jsonl(iter(generator), args.out)
        log.info("wrote synthetic chat", extra={"messages": count, "path": args.out})
        status = 0
    else:
        status, _ = _to_kafka(
            config,
            generator,
            speed=_speed(args.speed),
            restamp=False,
            label="synth",
            total=generator.total,
            progress=not args.no_progress,
            stop=stop,
        )
    log.info("wrote labels", extra={"path": args.labels})
    return status


def _refresh_channels(
    config: configuration.Config,
    source: ChannelSource,
    reader: twitch.TwitchReader,
    stop: Callable[[], bool],
    first: ChannelList,
) -> None:
    """Use the list fetched at start-up, then fetch again every ingest.channels_refresh_s; publish each list and
    hand it to the reader."""
    channels: ChannelList | None = first
    while not stop():
        try:
            channels = channels or source.fetch()
            reader.set_channels(channels.logins)
            publish(config, channels)
        except HelixError as exc:
            log.error("could not refresh the channel list; keeping the current one", extra={"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - publishing failed (Kafka down): the reader carries on
            log.error("could not publish the channel list", extra={"error": f"{type(exc).__name__}: {exc}"})
        channels = None
        deadline = time.monotonic() + config.ingest.channels_refresh_s
        while time.monotonic() < deadline and not stop():
            time.sleep(0.5)


def cmd_twitch(config: configuration.Config, args: argparse.Namespace, stop: Stopper) -> int:
    source = ChannelSource(config, channels_file=args.channels_file)
    first = source.fetch()  # fails now, with a clear message, if there is no usable channel list at all
    host = args.irc_host or config.ingest.irc_host
    port = args.irc_port or config.ingest.irc_port
    tls = config.ingest.irc_tls and not args.no_tls
    nick, token = os.environ.get(twitch.NICK_ENV), os.environ.get(twitch.TOKEN_ENV)
    if bool(nick) != bool(token):
        log.warning(f"set both {twitch.NICK_ENV} and {twitch.TOKEN_ENV} to log in; reading anonymously")
        nick = token = None
    registry = CollectorRegistry()
    sink = ChatSink(config, delivery=metrics.delivery_histogram(registry))
    reader = twitch.TwitchReader(config, sink, host, port, tls, nick=nick, token=token)
    endpoint = metrics.serve(config, sink, registry, reader=reader)
    log.info(
        "reading Twitch chat",
        extra={"server": f"{host}:{port}", "tls": tls, "login": reader.nick, "channels_from": source.kind},
    )
    refresher = threading.Thread(target=_refresh_channels, args=(config, source, reader, stop, first), daemon=True)
    refresher.start()
    try:
        reader.run(stop, config.ingest.progress_every_s)
    finally:
        sink.close(timeout_s=8.0)
        endpoint.stop()
    log.info(
        "stopped",
        extra={
            "messages": reader.messages,
            "produced": sink.stats.produced,
            "dropped": sink.stats.dropped,
            **reader.parser.summary(),
        },
    )
    return 0


@command
def main(argv: list[str] | None = None, prog: str = "python -m ingest") -> int:
    args = parser(prog).parse_args(argv)
    config = configure(args.config)
    stop = Stopper()
    if args.command == "replay":
        return cmd_replay(config, args, stop)
    if args.command == "synth":
        return cmd_synth(config, args, stop)
    return cmd_twitch(config, args, stop)


if __name__ == "__main__":
    sys.exit(main())
