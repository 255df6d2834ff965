"""`make demo`: the local services plus the platform's components as background processes, on embedded chat:
the spam detector (Spark, local mode), ingest replaying chat into Kafka, and the dashboard.

The chat is the shipped #nymn capture replayed in a loop at its recorded pace (re-stamped to now) beside
labelled synthetic chat from 20 channels; the BTTV, FFZ and 7TV emote sets come from a local stand-in of their
APIs serving the synthetic world's sets. Each component is a ManagedProcess with its log under
local.data_dir/NAME/logs; `make services-down` stops them all.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.error
import urllib.request

import psutil

from services import emote_providers
from services.local import ManagedProcess, ServiceError
from twitchcrement import PROJECT_ROOT
from twitchcrement.config import Config, project_path

log = logging.getLogger(__name__)
SAMPLE = PROJECT_ROOT / "data" / "samples" / "recentmessages-nymn.json"
DEMO_EMOTE_PORT = 8765  # the stand-in of the BTTV, FFZ and 7TV APIs (services.emote_providers): no network needed
DEMO_SYNTH_RATE = 200  # messages per second across the synthetic channels: busy, and light on 2 cores
YEAR_S = 365 * 24 * 3600


class Component(ManagedProcess):
    """A Python entry point of the platform (`python -m MODULE ARGS` or a script) kept running in the background."""

    url = "-"

    def __init__(self, config: Config, name: str, *command: str, env: dict[str, str] | None = None):
        self.name = name
        super().__init__(config)
        self.arguments = command
        self.env = env or {}

    def environment(self) -> dict[str, str] | None:
        return {**os.environ, **self.env} if self.env else None

    def command(self) -> list[str]:
        return [sys.executable, *self.arguments]

    def address(self) -> str:
        return self.url

    def probe(self) -> None:
        # Nothing to ask a feeder; a process that stays up for two seconds has got past its start-up checks.
        pid = self.pid()
        if pid is None or time.time() - psutil.Process(pid).create_time() < 2.0:
            raise ServiceError(f"{self.name} is starting")


class Dashboard(Component):
    def __init__(self, config: Config):
        # the stand-in's emotes have made-up ids: their pictures come from the stand-in, not the providers' CDNs
        pictures = {"TWITCHCREMENT_EMOTES_IMAGES_URL": f"http://127.0.0.1:{DEMO_EMOTE_PORT}/images"}
        super().__init__(config, "dashboard", "-m", "dashboard", env=pictures)
        self.url = dashboard_url(config)

    def probe(self) -> None:
        try:
            urllib.request.urlopen(self.url, timeout=2).close()
        except urllib.error.HTTPError:
            return  # it answers (basic auth refused us): up
        except OSError as exc:
            raise ServiceError(f"dashboard is not answering at {self.url} yet ({exc})") from None


def dashboard_url(config: Config) -> str:
    host = config.dashboard.host
    return f"http://{'[' + host + ']' if ':' in host else host}:{config.dashboard.port}/"


def set_aside_outdated_checkpoint(config: Config) -> None:
    """The demo's detector resumes from its checkpoint; one that an older release wrote (see
    jobs.spam_detector.outdated_checkpoint) cannot be resumed by this one. The demo is a local playground: it
    moves such a checkpoint aside and starts afresh, where a production job stops and says so."""
    from jobs.spam_detector import QUERY_NAME, outdated_checkpoint

    location = project_path(config.spark.checkpoint_dir) / QUERY_NAME
    if not outdated_checkpoint(str(location)):
        return
    aside = location.with_name(f"{QUERY_NAME}.outdated-{int(time.time())}")
    location.rename(aside)
    log.warning(
        "the demo's checkpoint is from an older release; moved aside, starting afresh", extra={"to": str(aside)}
    )


def components(config: Config) -> list[ManagedProcess]:
    labels = project_path(config.local.data_dir) / "synth-labels.jsonl"
    emote_sets = emote_providers.environment(f"http://127.0.0.1:{DEMO_EMOTE_PORT}")
    return [
        Component(config, "emote-providers", "-m", "services.emote_providers", "--port", str(DEMO_EMOTE_PORT)),
        Component(config, "detector", str(PROJECT_ROOT / "jobs" / "spam_detector.py")),
        Component(
            config,
            "replay",
            *("-m", "ingest", "--no-progress", "replay", str(SAMPLE), "--loop", "--speed", "1"),
            env=emote_sets,
        ),
        Component(
            config,
            "synth",
            "-m",
            "ingest",
            "--no-progress",
            "synth",
            "--rate",
            str(DEMO_SYNTH_RATE),
            "--channels",
            "20",
            "--seconds",
            str(YEAR_S),
            "--labels",
            str(labels),
            # the replay's ingest has ingest.metrics_port; a second endpoint on it would only be refused
            env={"TWITCHCREMENT_INGEST_METRICS_PORT": "0", **emote_sets},
        ),
        Dashboard(config),
    ]
