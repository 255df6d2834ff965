"""`make bench` / `make bench-quick`: speed and quality of four systems, side by side in one run, on the same data.

    .venv/bin/python -m bench.run [--quick | --quality]

Systems (each reads the same Kafka topic):
- detector: the real job (jobs/spam_detector.py) on local[2]: Kafka in, Kafka and Cassandra out;
- exact: the original system's algorithm (identical text per channel per 10 s window, count > 1) as a Spark job;
- noop: a Spark query that only reads the topic and decodes its msgpack to columns (this machine's ceiling for a
  Python-decoding query);
- datasketch: one Python process with datasketch's MinHashLSH per channel-window (bench/datasketch_system.py).

Phases:
1. capacity and quality: a topic pre-filled with labelled synthetic chat (event times spread as in live chat) is
   drained by each system; msg/s = messages / wall time (median of the repetitions, min and max beside). The
   events of the first drain are scored against the labels (overall and per evasion kind); the full run also
   scores each system against the brute-force oracle on the real captures (../shared).
   `max_sustained_msgs_per_s` is this drain rate: the most a system takes in without a backlog growing.
2. live: the load generator (bench/load.py, librdkafka) offers chat stamped "now" at fixed rates while the system
   streams; a rate is sustained when the system has read >= 98% of it 10 s after the load stops. Latency: Kafka
   timestamp of each spam event minus its window's end; time to detect: minus the last message of its cluster.
   Resident memory (and state size where Spark reports it) is sampled every second.
3. the detector's micro-batch profile at fixed rates (bench/profile.py) and the per-message cost of each stage of
   its plan (bench/stages.py);
4. ingest parse and producer rates (bench/ingest.py), replay's reading rate of each chat-log format
   (bench/formats.py); dashboard callbacks with 1,000,000 events (full run only,
   bench/dashboard.py).
Writes bench/results/latest.json, latest.md and PNG plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import services
from bench import formats, profile, stages
from bench import ingest as ingest_bench
from bench.isolation import BenchSpace
from bench.phases import capacity_and_quality, capacity_per_core, live, prefill
from bench.plans import DETECTING, ENDURANCE_RATE, FULL, QUALITY, QUICK, RESULTS, SMOKE, SYSTEMS, Plan, log, machine
from bench.report import summarise, write_report
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.cli import command
from twitchcrement.spark import session


def parse_plan(argv: list[str] | None, prog: str) -> tuple[Plan, Path]:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rates, one repetition: under 5 minutes")
    parser.add_argument(
        "--quality", action="store_true", help="capacity and quality only, full size with the oracle: ~15 minutes"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run of every phase but the live ones (tests)")
    parser.add_argument("--out", default=str(RESULTS), help="where the report goes (default bench/results)")
    parser.add_argument("--rates", help="offered rates of the live runs, comma-separated (default: the plan's)")
    parser.add_argument(
        "--endurance-minutes",
        type=float,
        help=f"length of the memory run at {ENDURANCE_RATE:,} msg/s (default: full 10, quick none)",
    )
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else QUICK if args.quick else QUALITY if args.quality else FULL
    if args.rates:
        plan = dataclasses.replace(plan, offered_rates=tuple(int(r) for r in args.rates.split(",")))
    if args.endurance_minutes is not None:
        plan = dataclasses.replace(plan, endurance_seconds=args.endurance_minutes * 60)
    return plan, Path(args.out)


@command
def main(argv: list[str] | None = None, prog: str = "python -m bench.run") -> int:
    plan, out = parse_plan(argv, prog)
    logs.setup("WARNING")
    started = time.monotonic()
    base = configuration.load()
    log(f"bench {plan.name}: starting local services ...")
    services.up(base)
    report: dict[str, Any] = {
        "plan": plan.name,
        "machine": machine(),
        "repeat": plan.repeat,
        "prefill_messages": int(plan.prefill_rate * plan.prefill_seconds),
        "endurance_seconds": plan.endurance_seconds,
    }
    out.mkdir(parents=True, exist_ok=True)
    # Its own keyspace and topics: a bench never writes into the history the dashboard shows.
    with BenchSpace(base.with_overrides(spark__master="local[2]", detector__max_offsets_per_trigger=50_000)) as space:
        report.update(spark_phases(space, plan, out))
        if plan.ingest_messages:
            log("ingest ...")
            repeat = 1 if plan.repeat == 1 else 5
            report["ingest"] = ingest_bench.measure(space.config, plan.ingest_messages, repeat=repeat)
            log("replay: reading each chat-log format ...")
            report["replay_formats"] = formats.measure(plan.ingest_messages, repeat=1 if plan.repeat == 1 else 3)
    if plan.dashboard_events:
        log(f"dashboard callbacks with {plan.dashboard_events:,} events ...")
        command = [sys.executable, "-m", "bench.dashboard", "--events", str(plan.dashboard_events), "--out", str(out)]
        subprocess.run(command, cwd=PROJECT_ROOT, check=True)
        report["dashboard"] = json.loads((out / "dashboard.json").read_text())
    summarise(report)
    report["seconds"] = round(time.monotonic() - started)
    (out / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    write_report(report, out)
    log(f"wrote {out / 'latest.json'} and latest.md in {report['seconds']} s")
    print((out / "latest.md").read_text())
    return 0


def spark_phases(space: BenchSpace, plan: Plan, out: Path) -> dict[str, Any]:
    """Capacity and quality, the live runs, the micro-batch profile and the stages, in one Spark session."""
    # Runner.processed() sums the query's recent progress, which Spark caps at 100 micro-batches by default:
    # too few for the 10-minute run.
    spark = session(
        space.config, app_name="twitchcrement-bench", **{"spark.sql.streaming.numRecentProgressUpdates": 100_000}
    )
    spark.sparkContext.setLogLevel("ERROR")
    chat = prefill(space, plan)
    report: dict[str, Any] = {"systems": capacity_and_quality(spark, space, plan, chat)}
    for system in SYSTEMS:
        if system != "noop":
            report["systems"][system].update(live_runs(spark, space, plan, system))
    if plan.profile_rates:
        log("profile of a micro-batch ...")
        report["profile"] = profile.measure(space, spark, list(plan.profile_rates), plan.profile_seconds, [0.0, 0.2])
        profile.write_markdown(report["profile"], out)
    if plan.stage_messages:
        log("per-message cost of each stage ...")
        report["stages"] = stages.measure(space, spark, plan.stage_messages, repeat=3)
        stages.write_markdown(report["stages"], out)
    spark.stop()
    if plan.per_core:
        log("capacity on local[1] ...")
        report["per_core"] = {"local[1]": capacity_per_core(space, chat, 1)}
    return report


def live_runs(spark: Any, space: BenchSpace, plan: Plan, system: str) -> dict[str, Any]:
    """A system live at the plan's rates, up to the first it does not sustain; the detector again with events
    reported only when windows close; the endurance run."""
    runs: dict[str, Any] = {"live": []}
    for rate in plan.offered_rates:
        runs["live"].append(live(spark, space, plan, system, rate))
        if not runs["live"][-1]["sustained"]:
            break  # higher rates cannot do better
    if system == "detector":  # the same rates reported only when windows close: the early warning's gain
        runs["live_closed_only"] = [
            live(spark, space, plan, system, r["offered_per_s"], detector__open_events=False) for r in runs["live"]
        ]
    if plan.endurance_seconds and system in DETECTING:
        log(f"{system}: {plan.endurance_seconds / 60:g} minutes at {ENDURANCE_RATE:,} msg/s for memory ...")
        runs["endurance"] = live(spark, space, plan, system, ENDURANCE_RATE, seconds=plan.endurance_seconds)
    return runs


if __name__ == "__main__":
    sys.exit(main())
