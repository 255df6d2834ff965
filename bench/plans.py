"""What a bench run measures: the plans (quick, full, the test suite's smoke run), the systems compared, the data
they read, and the run's progress lines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import subprocess
import time
from typing import Any

import psutil

from twitchcrement import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
SHARED = PROJECT_ROOT.parent / "shared" / "data" / "raw"
CAPTURES = [
    "admiralbulldog_irc/chat_admiralbulldog_4_30.log",
    "nymn_recentmessages/recentmessages-nymn.json",
    "multichannel_2017_clanghout/data.csv",
]
SYSTEMS = ("detector", "exact", "noop", "datasketch")
CUT_BATCH = 10_000  # the detector's capacity drain again, cut into micro-batches of this many messages
DETECTING = ("detector", "exact", "datasketch")
PER_CORE_SYSTEMS = ("detector", "exact")  # drained again on local[1] (Plan.per_core)
SUSTAINED_SHARE = 0.98
CATCH_UP_S = 10.0


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    prefill_rate: float
    prefill_seconds: float
    repeat: int
    offered_rates: tuple[int, ...]
    live_seconds: float
    grace_seconds: float
    oracle: bool
    ingest_messages: int
    dashboard_events: int
    endurance_seconds: float  # the long run for memory and state, at ENDURANCE_RATE (0: none)
    profile_rates: tuple[int, ...] = ()  # offered rates of the micro-batch profile (bench.profile)
    profile_seconds: float = 30
    stage_messages: int = 0  # the per-message cost of each stage of the plan (bench.stages; 0: none)
    per_core: bool = True  # the capacity drains again on local[1], once each (bench.phases.capacity_per_core)


ENDURANCE_RATE = 1000  # every detecting system sustains it (bench/reference/full-latest.md)
QUICK = Plan("quick", 5000, 12, 1, (1000, 10_000), 15, 18, False, 20_000, 0, 0, (100, 1000), 20, 50_000)
# phase 1 only, at the full plan's size with the real-capture oracle: the quality of every system in ~15 minutes
QUALITY = Plan("quality", 5000, 60, 1, (), 0, 0, True, 0, 0, 0)
SMOKE = Plan(
    "smoke", 500, 4, 1, (), 0, 0, False, 1_000, 0, 0, per_core=False
)  # the test suite's run: a bench leaves no trace
FULL = Plan(
    "full",
    5000,
    60,
    3,
    (1000, 5000, 10_000, 20_000, 50_000),
    40,
    25,
    True,
    100_000,
    1_000_000,
    600,
    (100, 1000, 10_000),
    40,
    200_000,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> dict[str, Any]:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "java": java[0] if java else "?",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
