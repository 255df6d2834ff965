"""python -m dashboard [--host H] [--port P] [--config F]: serve the dashboard (loopback unless configured)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from twitchcrement.cli import command, configure

log = logging.getLogger("dashboard")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@command
def main(argv: list[str] | None = None, prog: str = "python -m dashboard") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", help="address to bind (default dashboard.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default dashboard.port, 8050)")
    parser.add_argument("--config", help="config file (default conf/twitchcrement.toml)")
    args = parser.parse_args(argv)
    from dashboard.app import DashboardError, create_app, credentials, is_loopback
    from dashboard.history import History
    from dashboard.live import LiveFeed

    overrides = {k: v for k, v in (("dashboard__host", args.host), ("dashboard__port", args.port)) if v}
    config = configure(args.config, **overrides)
    auth = credentials()
    host, port = config.dashboard.host, config.dashboard.port
    if not is_loopback(host) and auth is None:
        raise DashboardError(
            f"dashboard.host={host} is not loopback: set DASHBOARD_USER and DASHBOARD_PASSWORD "
            f"(basic auth) before serving chat history beyond this machine"
        )
    feed, history = LiveFeed(config).start(), History(config).start()
    app = create_app(config, feed, history, auth)
    from waitress import serve

    from dashboard import metrics

    endpoint = metrics.serve(config, app.server, feed, history)

    # SIGTERM ends the server like Ctrl-C does, so the consumer and the Cassandra session are closed on the way out.
    signal.signal(signal.SIGTERM, _interrupt)

    log.info("dashboard serving", extra={"url": f"http://{host}:{port}/", "auth": auth is not None})
    try:
        serve(app.server, host=host, port=port, threads=8, ident="twitchcrement")
    except KeyboardInterrupt:
        log.info("dashboard stopping")
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc.strerror or exc} (dashboard.port)", file=sys.stderr)
        return 1
    finally:
        endpoint.stop()
        feed.stop()
        history.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
