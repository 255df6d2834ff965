"""Where the detector's per-message time goes: its plan (jobs.pipeline), prefix by prefix, on one Kafka backlog.

    .venv/bin/python -m bench.stages [--messages 200000] [--repeat 3]

Each prefix of the executor plan runs as a batch query over the same pre-filled topic into Spark's `noop` sink
(every row and column computed, nothing kept). The last prefix is the detection itself, per Kafka partition on the
executors (jobs.keyed.advance, the function the stateful step runs) in `applyInPandas`: Spark runs
`applyInPandasWithState` in streaming queries only, so the state store's own cost is not in it (bench.profile shows
the state's commit time per batch). The time a stage adds is the difference between two prefixes (best of
`--repeat`), per message. Writes
bench/results/stages.json and stages.md; `make bench` includes it in its report.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from bench.isolation import BenchSpace, local_bench
from ingest.sink import ChatSink
from ingest.synth import Generator, SynthSettings
from jobs.keyed import advance, new_partition_state
from jobs.pipeline import DetectorSettings, decode, features
from twitchcrement import PROJECT_ROOT
from twitchcrement import config as configuration
from twitchcrement.spark import kafka_options

RESULTS = PROJECT_ROOT / "bench" / "results"


def fill(config: configuration.Config, topic: str, messages: int) -> int:
    generator = Generator(SynthSettings(rate=5000, seconds=messages / 5000, channels=40, seed=5, prefix="stages"))
    sink = ChatSink(config, topic=topic)
    count = 0
    for message in generator:
        sink.offer(message, block=True)
        count += 1
    sink.close(timeout_s=600)
    return count


def detected(featured: Any, settings: DetectorSettings) -> Any:
    """Each Kafka partition's rows through the stateful step's function, its windows closed at the end; one row
    per partition with the count of output rows (events, topic updates, dead letters)."""
    detection = settings.detection

    def partition(frame: pd.DataFrame) -> pd.DataFrame:
        now = int(time.time() * 1000)
        clock = int(frame["sent_ts"].max())
        state = new_partition_state()
        rows, _ = advance(state, frame, now, clock, False, detection)
        closed, _ = advance(state, None, now, clock, True, detection)
        return pd.DataFrame({"partition": [int(frame["partition"].iloc[0])], "rows": [len(rows) + len(closed)]})

    return featured.groupBy("partition").applyInPandas(partition, "partition int, rows long")


def best_of(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - began)
    return min(times), result


def write_noop(frame: Any) -> None:
    frame.write.format("noop").mode("overwrite").save()


def measure(space: BenchSpace, spark: Any, messages: int, repeat: int) -> dict[str, Any]:
    config = space.config
    topic = space.topic("stages")
    count = fill(config, topic, messages)
    settings = DetectorSettings.from_config(config)
    kafka = (
        spark.read.format("kafka")
        .options(**kafka_options(config))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    decoded = decode(kafka, text_features=False)
    normalised = decode(kafka)
    featured = features(normalised, spark, settings)
    prefixes = [
        ("Kafka read", kafka.select("value", "timestamp", "partition", "offset")),
        ("msgpack decode to columns (Python worker, Arrow both ways)", decoded),
        ("normalise (Python)", normalised),
        ("shingles + HashingTF + MinHashLSH -> signature (one JVM call a row)", featured),
        ("detection per Kafka partition: windows, clusters, events (Python workers)", detected(featured, settings)),
    ]
    stages: list[dict[str, Any]] = []
    previous = 0.0
    for name, frame in prefixes:
        write_noop(frame)  # warm-up: JVM code paths, Python workers
        seconds, _ = best_of(repeat, functools.partial(write_noop, frame))
        stages.append({"stage": name, "total_s": round(seconds, 3), "added_s": round(seconds - previous, 3)})
        previous = seconds
    for stage in stages:
        stage["us_per_message"] = round(stage["added_s"] / count * 1e6, 1)
    return {
        "messages": count,
        "cores": spark.sparkContext.defaultParallelism,
        "repeat": repeat,
        "stages": stages,
        "note": "Every stage runs on the executors, on all cores at once (detection: one Kafka partition a task).",
    }


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"## Per-message cost of each stage ({result['messages']:,} messages, {result['cores']} cores, best of "
        f"{result['repeat']})",
        "",
        "| stage | prefix s | stage adds s | us per message |",
        "|---|---|---|---|",
    ]
    for stage in result["stages"]:
        total = "" if stage["total_s"] is None else stage["total_s"]
        lines.append(f"| {stage['stage']} | {total} | {stage['added_s']} | {stage['us_per_message']} |")
    return lines + ["", result["note"]]


def write_markdown(result: dict[str, Any], out: Path) -> None:
    (out / "stages.md").write_text("\n".join(table(result)) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    with local_bench("twitchcrement-bench-stages") as (space, spark):
        result = measure(space, spark, args.messages, args.repeat)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stages.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, out)
    print((out / "stages.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
