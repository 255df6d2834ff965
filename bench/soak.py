"""`make soak`: the whole platform for a long run at a high offered rate, memory and state sampled every minute.

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 20000]

Kafka and Cassandra (local), the detector (jobs/spam_detector.py, its own process, local[2]), the dashboard
(reading the same topics), and the load generator (bench/load.py) offering synthetic chat at --rate. Every minute:
resident memory of each process (the detector with its JVM and Python workers), the detector's state rows and
bytes, and its backlog (chat records offered but not yet read). The report says whether memory and state stay flat
(last third of the run against the second third; the first third is warm-up) and whether the backlog grows.
Writes bench/results/soak.json, soak.md and soak.png.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

import services
from bench.isolation import BenchSpace
from bench.stats import flat
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.clients import kafka_consumer
from twitchcrement.spark import checkpoint_offsets

RESULTS = PROJECT_ROOT / "bench" / "results"


def tree_rss_mb(pid: int) -> float:
    try:
        process = psutil.Process(pid)
        return round(sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20)
    except psutil.Error:
        return float("nan")


def backlog(config: configuration.Config, topic: str, checkpoint: Path) -> int | None:
    from kafka import TopicPartition

    consumer = kafka_consumer(config, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        end = sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()
    read = checkpoint_offsets(checkpoint, topic)
    if read is None:
        return None
    return end - read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--sample-s", type=float, default=60)
    args = parser.parse_args(argv)
    logs.setup("WARNING")
    base = configuration.load()
    print(f"soak: {args.minutes:g} minutes at {args.rate:,} msg/s offered; starting local services ...", flush=True)
    services.up(base)
    with BenchSpace(base) as space:  # its own keyspace and topics, dropped at the end
        return soak(space, args)


def soak(space: BenchSpace, args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    processes = start_platform(space.config, work, args.rate, args.minutes * 60)
    try:
        samples = sample(space.config, processes, work, args.minutes * 60, args.sample_s)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    write_report(args, samples, work)
    return 0


def start_platform(base: configuration.Config, work: Path, rate: int, seconds: float) -> dict[str, subprocess.Popen]:
    """The detector and the dashboard as a user starts them, on the bench's topics and keyspace; then the load."""
    env = {
        **os.environ,
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": base.kafka.chat_topic,
        "TWITCHCREMENT_KAFKA_SPAM_TOPIC": base.kafka.spam_topic,
        "TWITCHCREMENT_KAFKA_DEADLETTER_TOPIC": base.kafka.deadletter_topic,
        "TWITCHCREMENT_CASSANDRA_KEYSPACE": base.cassandra.keyspace,
        "TWITCHCREMENT_SPARK_MASTER": "local[2]",
        "TWITCHCREMENT_LOCAL_DATA_DIR": str(work / "local"),
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dashboard_port = probe.getsockname()[1]

    def started(name: str, *command: str, log: bool = True) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, *command],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(work / f"{name}.log", "wb") if log else None,
            start_new_session=True,
        )

    checkpoint = work / "checkpoint"
    processes = {
        "detector": started("detector", "jobs/spam_detector.py", "--checkpoint", str(checkpoint)),
        "dashboard": started("dashboard", "-m", "dashboard", "--port", str(dashboard_port)),
    }
    while not (checkpoint / "offsets").exists() and processes["detector"].poll() is None:
        time.sleep(1)
    load = ("-m", "bench.load", "--topic", base.kafka.chat_topic, "--rate", str(rate), "--seconds", str(seconds))
    processes["load"] = started("load", *load, log=False)
    return processes


def sample(
    base: configuration.Config, processes: dict[str, subprocess.Popen], work: Path, seconds: float, every_s: float
) -> list[dict[str, Any]]:
    """Every `every_s` until the load ends (or a process stops early): memory, state and the detector's backlog."""
    kafka, cassandra = services.LocalKafka(base), services.LocalCassandra(base)
    samples: list[dict[str, Any]] = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        time.sleep(min(every_s, max(0.0, seconds - (time.monotonic() - began))))
        metrics_file = work / "local" / "detector" / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        measured = {
            "minute": round((time.monotonic() - began) / 60, 1),
            **{f"{name}_rss_mb": tree_rss_mb(p.pid) for name, p in processes.items() if name != "load"},
            "kafka_rss_mb": tree_rss_mb(kafka.pid() or 0),
            "cassandra_rss_mb": tree_rss_mb(cassandra.pid() or 0),
            "state_rows": metrics.get("state_rows"),
            "state_bytes": metrics.get("state_bytes"),
            "detector_rows_per_s": metrics.get("processed_rows_per_s"),
            "backlog": backlog(base, base.kafka.chat_topic, work / "checkpoint"),
        }
        samples.append(measured)
        print(json.dumps(measured), flush=True)
        dead = [name for name, p in processes.items() if p.poll() is not None and name != "load"]
        if dead:
            print(f"soak: {', '.join(dead)} stopped early; see {work}", flush=True)
            break
    return samples


def write_report(args: argparse.Namespace, samples: list[dict[str, Any]], work: Path) -> None:
    """soak.json, soak.md and the memory plot in bench/results."""
    series = {key: [s[key] for s in samples] for key in samples[0] if key != "minute"} if samples else {}
    verdict = {
        key: flat(values) for key, values in series.items() if key.endswith("_rss_mb") or key.startswith("state_")
    }
    backlogs = [b for b in series.get("backlog", []) if b is not None]
    report = {
        "minutes": args.minutes,
        "offered_per_s": args.rate,
        "samples": samples,
        "flat": verdict,
        "backlog_grows": bool(backlogs) and backlogs[-1] > 2 * max(1, backlogs[0]),
        "workdir": str(work),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Soak: {args.minutes:g} minutes at {args.rate:,} msg/s offered",
        "",
        "| minute | " + " | ".join(series) + " |",
        "|---|" + "---|" * len(series),
    ]
    lines += ["| " + " | ".join(str(s.get(k)) for k in ["minute", *series]) + " |" for s in samples]
    lines += [
        "",
        "Flat (last third within 10 % of the second third): "
        + ", ".join(
            f"{k} {'yes' if v['flat'] else 'no' if v['flat'] is not None else '-'} ({v['growth']})"
            for k, v in verdict.items()
        ),
        f"Backlog grows: {'yes' if report['backlog_grows'] else 'no'}",
        "",
        "![memory](soak.png)",
    ]
    (RESULTS / "soak.md").write_text("\n".join(lines))
    if samples:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(8, 3.5))
        for key in series:
            if key.endswith("_rss_mb"):
                axis.plot([s["minute"] for s in samples], series[key], marker="o", label=key.removesuffix("_rss_mb"))
        axis.set_xlabel("minute")
        axis.set_ylabel("resident MB")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(RESULTS / "soak.png", dpi=100)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
