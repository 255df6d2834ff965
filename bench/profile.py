"""Where a detector micro-batch spends its time: the live detector at fixed offered rates, batch by batch.

    .venv/bin/python -m bench.profile [--rates 100,1000,10000] [--seconds 40] [--spam-share 0.2]

For every micro-batch with input: Spark's own phases (durationMs: latestOffset, getBatch, queryPlanning,
addBatch, walCommit, commitOffsets), the stages the detector times itself inside addBatch (KeyedBatch.timings: the
executors' read, decode, MinHash and detection, collected as events; each sink write), the stateful step's rows,
bytes and commit time (Spark's stateOperators), and the Spark jobs and tasks the batch ran.
Medians over the batches of the run's middle (the first 10 s are warm-up). Writes bench/results/profile.json and
profile.md; `make bench` includes it in its report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import bench.load
from bench.isolation import BenchSpace, local_bench
from jobs.keyed import KeyedBatch
from jobs.spam_detector import start, stop_between_batches
from twitchcrement import PROJECT_ROOT
from twitchcrement import config as configuration

RESULTS = PROJECT_ROOT / "bench" / "results"
WARM_UP_S = 10


class TimedWriter(KeyedBatch):
    """The production writer, keeping each batch's stage timings and the Spark jobs and tasks it ran."""

    def __init__(self, config: configuration.Config):
        super().__init__(config)  # bound to the session by the detector's start, like the production writer
        self.batches: list[dict[str, Any]] = []

    def _jobs(self) -> dict[int, int]:
        """Every job of the application so far and its task count, from Spark's monitoring API: the status
        tracker only sees the jobs of one job group, and the sinks' writes run in threads of their own."""
        context = self.spark.sparkContext
        if not context.uiWebUrl:
            return {}  # spark.ui.enabled=false: no counts
        url = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/jobs"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return {job["jobId"]: job["numTasks"] for job in json.load(answer)}

    def __call__(self, output: Any, batch_id: int) -> None:
        before = self._jobs()
        began = time.perf_counter()
        super().__call__(output, batch_id)
        elapsed = time.perf_counter() - began
        after = self._jobs()
        jobs = [j for j in after if j not in before]
        tasks = sum(after[j] for j in jobs)
        self.batches.append(
            {
                "batch": batch_id,
                "at": time.monotonic(),
                "foreach_batch_s": round(elapsed, 4),
                "stages_s": dict(self.timings),
                "jobs_in_foreach_batch": len(jobs),
                "tasks_in_foreach_batch": tasks,
            }
        )


def profile_rate(spark: Any, space: BenchSpace, rate: int, seconds: float, spam_share: float) -> dict[str, Any]:
    chat_topic, out_topic = space.topic("profile-chat"), space.topic("profile-out")
    run_config = space.config.with_overrides(
        kafka__chat_topic=chat_topic, kafka__spam_topic=out_topic, detector__starting_offsets="latest"
    )
    writer = TimedWriter(run_config)
    query = start(spark, run_config, checkpoint=tempfile.mkdtemp(prefix="prof-"), writer=writer)
    try:
        deadline = time.monotonic() + 120
        while query.lastProgress is None and time.monotonic() < deadline:
            time.sleep(0.2)
        began = time.monotonic()
        bench.load.in_subprocess(chat_topic, rate, seconds, spam_share)
        time.sleep(3)
        progress = [p for p in query.recentProgress if p["numInputRows"]]
    finally:
        stop_between_batches(query, writer)
        writer.close()
    steady = [b for b in writer.batches if b["at"] - began >= WARM_UP_S]
    by_batch = {b["batch"]: b for b in steady}
    rows = [(p, by_batch[p["batchId"]]) for p in progress if p["batchId"] in by_batch]

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 4) if values else None

    phases = sorted({k for p, _ in rows for k in p["durationMs"]})
    stages = sorted({k for _, b in rows for k in b["stages_s"]})
    return {
        "offered_per_s": rate,
        "spam_share": spam_share,
        "batches": len(rows),
        "input_rows_median": median([p["numInputRows"] for p, _ in rows]),
        "batch_s_median": median([p["durationMs"].get("triggerExecution", 0) / 1000 for p, _ in rows]),
        "batch_s_p95": round(
            sorted(p["durationMs"].get("triggerExecution", 0) / 1000 for p, _ in rows)[int(0.95 * (len(rows) - 1))], 4
        )
        if rows
        else None,
        "spark_phases_s": {k: median([p["durationMs"].get(k, 0) / 1000 for p, _ in rows]) for k in phases},
        # a stage's median over the batches that ran it (sinks run only when there is something to write)
        "detector_stages_s": {k: median([b["stages_s"][k] for _, b in rows if k in b["stages_s"]]) for k in stages},
        "detector_stage_batches": {k: sum(1 for _, b in rows if k in b["stages_s"]) for k in stages},
        # the stateful step (Spark's progress): rows and bytes it holds, the time its commit took
        "state_rows_median": median([_state(p, "numRowsTotal") for p, _ in rows]),
        "state_bytes_median": median([_state(p, "memoryUsedBytes") for p, _ in rows]),
        "state_commit_s_median": median([_state(p, "commitTimeMs") / 1000 for p, _ in rows]),
        "jobs_per_batch": median([b["jobs_in_foreach_batch"] for _, b in rows]),
        "tasks_per_batch": median([b["tasks_in_foreach_batch"] for _, b in rows]),
    }


def _state(progress: dict[str, Any], metric: str) -> float:
    return float(sum(op.get(metric, 0) for op in progress.get("stateOperators", [])))


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Profile of a micro-batch (live, medians over the steady batches)",
        "",
        "| offered msg/s | spam share | rows/batch | batch s (p95) | Spark phases s | detector stages s | "
        "state rows | state bytes | state commit s | jobs | tasks |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        phases = ", ".join(f"{k} {v}" for k, v in r["spark_phases_s"].items() if k != "triggerExecution" and v)
        stages = ", ".join(f"{k} {v}" for k, v in r["detector_stages_s"].items())
        lines.append(
            f"| {r['offered_per_s']:,} | {r['spam_share']} | {r['input_rows_median']} | "
            f"{r['batch_s_median']} ({r['batch_s_p95']}) | {phases} | {stages} | {r['state_rows_median']} | "
            f"{r['state_bytes_median']} | {r['state_commit_s_median']} | {r['jobs_per_batch']} | "
            f"{r['tasks_per_batch']} |"
        )
    return lines


def write_markdown(results: list[dict[str, Any]], out: Path) -> str:
    text = "\n".join(table(results)) + "\n"
    (out / "profile.md").write_text(text)
    return text


def measure(
    space: BenchSpace, spark: Any, rates: list[int], seconds: float, spam_shares: list[float]
) -> list[dict[str, Any]]:
    results = []
    for rate in rates:
        for share in spam_shares:
            result = profile_rate(spark, space, rate, seconds, share)
            print(f"[{time.strftime('%H:%M:%S')}] profile at {rate:,}/s spam {share}: {json.dumps(result)}", flush=True)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="100,1000,10000")
    parser.add_argument("--spam-shares", default="0,0.2", help="share of spam in the offered chat, comma-separated")
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args(argv)
    with local_bench("twitchcrement-profile") as (space, spark):
        results = measure(
            space,
            spark,
            [int(r) for r in args.rates.split(",")],
            args.seconds,
            [float(s) for s in args.spam_shares.split(",")],
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile.json").write_text(json.dumps(results, indent=2))
    print(write_markdown(results, RESULTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
