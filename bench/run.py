"""`make bench` / `make bench-quick`: speed and quality of four systems, side by side in one run, on the same data.

    .venv/bin/python -m bench.run [--quick]

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
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil

import services
from bench import cpu, first_report, formats, profile, stages
from bench import ingest as ingest_bench
from bench.isolation import BenchSpace
from bench.stats import flat, percentile
from ingest.captures import Capture
from ingest.sink import ChatSink
from ingest.synth import Generator, SynthSettings
from jobs.detection import Settings
from jobs.evaluation import labelled_cells, oracle_cells, score
from jobs.keyed import KeyedBatch
from jobs.pipeline import DetectorSettings, decode
from jobs.spam_detector import start as start_detector
from jobs.spam_detector import stop_between_batches, wait_for_drain
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.cli import command
from twitchcrement.clients import kafka_consumer
from twitchcrement.records import ChatMessage, RecordError, SpamEvent, decode_spam
from twitchcrement.spark import kafka_options, session

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


ENDURANCE_RATE = 1000  # every detecting system sustains it (bench/reference/full-latest.md)
QUICK = Plan("quick", 5000, 12, 1, (1000, 10_000), 15, 18, False, 20_000, 0, 0, (100, 1000), 20, 50_000)
SMOKE = Plan("smoke", 500, 4, 1, (), 0, 0, False, 1_000, 0, 0)  # the test suite's run: a bench leaves no trace
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


# --- data ---------------------------------------------------------------------------------------------------------
def fill(config: configuration.Config, topic: str, messages: list[ChatMessage]) -> None:
    sink = ChatSink(config, topic=topic)
    for message in messages:
        sink.offer(message, block=True)
    last = max(m.sent_ts for m in messages)
    # A later message moves every system's watermark past the last window, so each emits everything.
    sink.offer(ChatMessage(channel="zz_flush", user_login="flush", text="flush", sent_ts=last + 120_000), block=True)
    sink.close(timeout_s=1200)


def read_output(config: configuration.Config, topic: str) -> list[dict[str, Any]]:
    """Spam event records of one system's output topic, each with its Kafka timestamp (`kafka_ms`); the detector's
    have their event_id and state (open, closed, undone), the baselines' are all final."""
    consumer = kafka_consumer(
        config, topic, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=4000
    )
    events = []
    for record in consumer:
        if record.value[:1] == b"{":
            event = json.loads(record.value)  # the exact baseline's JSON (Spark writes it without a UDF)
        else:
            try:
                value = decode_spam(record.value)
            except RecordError:
                event = msgpack.unpackb(record.value)  # the datasketch baseline's plain maps
            else:
                if not isinstance(value, SpamEvent):
                    continue
                event = {
                    "event_id": value.event_id,
                    "state": value.state,
                    "channel": value.channel,
                    "window_start": value.window_start,
                    "window_end": value.window_end,
                    "text": value.text,
                    "message_count": value.message_count,
                    "last_ts": value.last_ts,
                    "top_variants": value.top_variants,
                }
        event["kafka_ms"] = record.timestamp
        events.append(event)
    consumer.close()
    return events


def closed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The final records: the detector's closed events (a baseline's records are all final)."""
    return [r for r in records if r.get("state", "closed") == "closed"]


# --- the systems ----------------------------------------------------------------------------------------------------
class Runner:
    """Starts one system on a chat topic, draining it (available now) or live, writing events to `out_topic`."""

    def __init__(self, spark: Any, config: configuration.Config, system: str):
        self.spark, self.config, self.system = spark, config, system
        self.query: Any = None
        self.batches: KeyedBatch | None = None  # the detector's foreachBatch function
        self.process: subprocess.Popen | None = None
        self.stats_file = Path(tempfile.mkstemp(prefix=f"bench-{system}-", suffix=".json")[1])

    def start(self, chat_topic: str, out_topic: str, drain: bool, seconds: float = 0) -> None:
        config = self.config.with_overrides(
            kafka__chat_topic=chat_topic,
            kafka__spam_topic=out_topic,
            detector__starting_offsets="earliest" if drain else "latest",
        )
        checkpoint = tempfile.mkdtemp(prefix=f"bench-{self.system}-")
        if self.system == "datasketch":
            command = [
                sys.executable,
                "-m",
                "bench.datasketch_system",
                "--chat-topic",
                chat_topic,
                "--spam-topic",
                out_topic,
                "--stats",
                str(self.stats_file),
            ]
            command += ["--drain"] if drain else ["--seconds", str(seconds)]
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT)
        elif self.system == "detector":
            self.batches = KeyedBatch(config)
            self.query = start_detector(
                self.spark, config, available_now=drain, checkpoint=checkpoint, writer=self.batches
            )
        else:
            self.query = self._baseline(config, checkpoint, drain)

    def _baseline(self, config: configuration.Config, checkpoint: str, drain: bool) -> Any:
        from pyspark.sql import functions as F

        kafka = (
            self.spark.readStream.format("kafka")
            .options(**kafka_options(config))
            .option("subscribe", config["kafka.chat_topic"])
            .option("startingOffsets", config["detector.starting_offsets"])
            .option("maxOffsetsPerTrigger", config["detector.max_offsets_per_trigger"])
            .load()
        )
        # msgpack decode to columns only: no normalisation or shingles (the floor of any Python-decoding job)
        chat = decode(kafka, text_features=False).where(F.col("channel") != "")
        if self.system == "noop":
            writer = chat.writeStream.format("noop")
        else:
            window = config["detector.window_s"]
            events = (
                chat.withColumn("event_time", F.timestamp_millis("sent_ts"))
                .withWatermark("event_time", f"{config['detector.watermark_s']} seconds")
                .groupBy("channel", F.window("event_time", f"{window} seconds"), "text")
                .agg(F.count("*").alias("message_count"), F.max("sent_ts").alias("last_ts"))
                .where(F.col("message_count") > 1)
            )
            value = F.to_json(
                F.struct(
                    "channel",
                    (F.unix_millis(F.col("window.start"))).alias("window_start"),
                    (F.unix_millis(F.col("window.end"))).alias("window_end"),
                    "text",
                    "message_count",
                    "last_ts",
                )
            )
            writer = (
                events.select(F.col("channel").cast("binary").alias("key"), value.cast("binary").alias("value"))
                .writeStream.format("kafka")
                .options(**kafka_options(config))
                .option("topic", config["kafka.spam_topic"])
            )
        writer = writer.outputMode("append").option("checkpointLocation", checkpoint)
        writer = (
            writer.trigger(availableNow=True)
            if drain
            else writer.trigger(processingTime=f"{int(config['detector.trigger_s'] * 1000)} milliseconds")
        )
        return writer.start()

    def ready(self) -> bool:
        """The system has resolved its starting offsets (a live run's load must not begin before)."""
        if self.query is not None:
            return self.query.lastProgress is not None
        return self.stats_file.stat().st_size > 0

    def processed(self) -> int:
        if self.query is not None:
            return sum(p["numInputRows"] for p in self.query.recentProgress)
        try:
            return json.loads(self.stats_file.read_text() or "{}").get("messages", 0)
        except json.JSONDecodeError:
            return 0

    def wait(self, timeout_s: float = 3600) -> None:
        """The end of a drain."""
        if self.batches is not None:
            wait_for_drain(self.query, self.batches, timeout_s)  # the detector's drain ends once it is read through
            self.batches.close()
        elif self.query is not None:
            self.query.awaitTermination(timeout_s)
            if self.query.exception():
                raise RuntimeError(f"{self.system} failed: {self.query.exception()}")
        else:
            self.process.wait(timeout_s)

    def stop(self) -> None:
        if self.batches is not None:
            stop_between_batches(self.query, self.batches)
            self.batches.close()
        elif self.query is not None:
            self.query.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def processes(self) -> list[psutil.Process]:
        if self.process is not None:
            return [psutil.Process(self.process.pid)]
        # local Spark: the JVM and its Python workers are children of this process (the load generator is not)
        found = []
        for child in psutil.Process().children(recursive=True):
            try:
                if not any("bench.load" in part or "datasketch" in part for part in child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue  # gone meanwhile, or a zombie
        return found

    def state_bytes(self) -> int | None:
        progress = self.query.lastProgress if self.query is not None else None
        if not progress or not progress.get("stateOperators"):
            return None
        return sum(op.get("memoryUsedBytes", 0) for op in progress["stateOperators"])


# --- phases --------------------------------------------------------------------------------------------------------
def drain_seconds(spark: Any, config: configuration.Config, system: str, chat_topic: str, out_topic: str) -> float:
    """Wall seconds of one system draining the chat topic into out_topic."""
    runner = Runner(spark, config, system)
    began = time.perf_counter()
    runner.start(chat_topic, out_topic, drain=True)
    runner.wait()
    return time.perf_counter() - began


def capacity_and_quality(spark: Any, space: BenchSpace, plan: Plan) -> dict[str, dict[str, Any]]:
    config = space.config
    settings = Settings()
    generator = Generator(
        SynthSettings(rate=plan.prefill_rate, seconds=plan.prefill_seconds, channels=40, seed=21, prefix="bench")
    )
    messages = list(generator)
    bursts = [b.label() for b in generator.bursts]
    chat_topic = space.topic("chat")
    log(f"pre-filling {chat_topic} with {len(messages):,} labelled messages ...")
    fill(config, chat_topic, messages)
    cells = labelled_cells(messages, bursts, settings)
    oracle = None
    if plan.oracle and SHARED.exists():
        real = sorted((m for path in CAPTURES for m in Capture(SHARED / path)), key=lambda m: m.sent_ts)
        real_topic = space.topic("real")
        fill(config, real_topic, real)
        oracle = (real_topic, oracle_cells(real, settings))
    results: dict[str, dict[str, Any]] = {}
    warm_up = Runner(spark, config, "noop")  # the session's first query pays JVM and worker start-up: not a system's
    warm_up.start(chat_topic, "unused", drain=True)
    warm_up.wait()
    for system in SYSTEMS:
        runs, first_events = [], []
        cpu_before = cpu.snapshot()
        for repetition in range(plan.repeat):
            out_topic = space.topic(f"out-{system}")
            runs.append(drain_seconds(spark, config, system, chat_topic, out_topic))
            if repetition == 0 and system in DETECTING:
                first_events = read_output(config, out_topic)
        rates = [(len(messages) + 1) / r for r in runs]
        cpu_used = cpu.used_since(cpu_before, len(messages) * plan.repeat)
        cut: dict[str, Any] = {}
        if system == "detector":
            cut_config = config.with_overrides(detector__max_offsets_per_trigger=CUT_BATCH)
            cut_runs = [
                drain_seconds(spark, cut_config, system, chat_topic, space.topic("out-detector-cut"))
                for _ in range(plan.repeat)
            ]
            cut = {
                "cut_batch": CUT_BATCH,
                "cut_drain_s": round(statistics.median(cut_runs), 2),
                "one_batch_drain_s": round(statistics.median(runs), 2),
                "cut_slowdown": round(statistics.median(cut_runs) / statistics.median(runs), 2),
            }
            log(f"detector, cut into micro-batches of {CUT_BATCH:,}: {cut}")
        entry: dict[str, Any] = {
            "cpu": cpu_used,
            "max_sustained_msgs_per_s": round(statistics.median(rates)),
            "drain_min_msgs_per_s": round(min(rates)),
            "drain_max_msgs_per_s": round(max(rates)),
            "drain_runs": len(runs),
            "precision": None,
            "recall": None,
        }
        if system in DETECTING:
            quality = score(closed(first_events), cells, settings)
            opened = {r["event_id"] for r in first_events if r.get("state") == "open"}
            entry.update(
                {
                    "events_reported_open": len(opened),
                    "undone": len({r["event_id"] for r in first_events if r.get("state") == "undone"}),
                    "precision": round(quality.precision, 4),
                    "recall": round(quality.recall, 4),
                    "events": quality.events,
                    "labelled_cells": quality.cells,
                    "recall_by_evasion": {k: round(v, 4) for k, v in quality.recall_by_tag.items()},
                    "precision_by_evasion": {k: round(v, 4) for k, v in quality.precision_by_tag.items()},
                }
            )
            if oracle:
                out_topic = space.topic(f"out-{system}-real")
                runner = Runner(spark, config, system)
                runner.start(oracle[0], out_topic, drain=True)
                runner.wait()
                agreement = score(closed(read_output(config, out_topic)), oracle[1], settings)
                entry.update(
                    {
                        "oracle_precision": round(agreement.precision, 4),
                        "oracle_recall": round(agreement.recall, 4),
                        "oracle_cells": agreement.cells,
                    }
                )
        entry.update(cut)
        results[system] = entry
        log(f"{system}: {entry}")
    return results


def live(
    spark: Any,
    space: BenchSpace,
    plan: Plan,
    system: str,
    rate: int,
    seconds: float | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """One live run at an offered rate; a long one (seconds) also keeps memory and state minute by minute.
    overrides: settings of the system's config for this run (config.with_overrides)."""
    seconds = seconds or plan.live_seconds
    config = space.config.with_overrides(**overrides)
    chat_topic, out_topic = space.topic("live"), space.topic("live-out")
    runner = Runner(spark, config, system)
    runner.start(chat_topic, out_topic, drain=False, seconds=seconds + plan.grace_seconds + 60)
    deadline = time.monotonic() + 120
    while not runner.ready() and time.monotonic() < deadline:
        time.sleep(0.5)
    samples: list[dict[str, Any]] = []
    stop = threading.Event()

    def sample() -> None:
        began = time.monotonic()
        while not stop.wait(1.0):
            rss = 0
            for process in runner.processes():
                try:
                    rss += process.memory_info().rss
                except psutil.Error:
                    continue
            samples.append(
                {
                    "t": round(time.monotonic() - began),
                    "rss_mb": round(rss / 2**20),
                    "state_bytes": runner.state_bytes(),
                }
            )

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stats = Path(tempfile.mkstemp(prefix="bench-load-", suffix=".json")[1])
    waves = Path(tempfile.mkstemp(prefix="bench-waves-", suffix=".jsonl")[1])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--topic",
            chat_topic,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--stats",
            str(stats),
            "--waves",
            str(waves),
        ],
        cwd=PROJECT_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    load = json.loads(stats.read_text())
    load_end_ms = int(time.time() * 1000)
    time.sleep(CATCH_UP_S)
    processed = runner.processed()
    time.sleep(max(0.0, plan.grace_seconds - CATCH_UP_S))
    stop.set()
    runner.stop()
    records = read_output(config, out_topic)
    first = first_report.time_to_first_report(
        first_report.read_waves(waves), records, DetectorSettings.from_config(config).detection
    )
    waves.unlink()
    events = [e for e in closed(records) if e["window_end"] <= load_end_ms]
    latency = [(e["kafka_ms"] - e["window_end"]) / 1000 for e in events]
    detect = [(e["kafka_ms"] - e["last_ts"]) / 1000 for e in events if e.get("last_ts")]
    rss = [s["rss_mb"] for s in samples]
    result = {
        "offered_per_s": rate,
        "achieved_offered_per_s": load["achieved_per_s"],
        "offered": load["offered"],
        "processed_within_10s": processed,
        "sustained": processed >= SUSTAINED_SHARE * load["offered"],
        "events": len(events),
        "latency_p50_s": percentile(latency, 0.5),
        "latency_p95_s": percentile(latency, 0.95),
        "latency_p99_s": percentile(latency, 0.99),
        "time_to_detect_p50_s": percentile(detect, 0.5),
        "time_to_detect_p95_s": percentile(detect, 0.95),
        **first,
        "rss_mb_max": max(rss) if rss else None,
        "rss_mb_first": rss[0] if rss else None,
        "rss_mb_last": rss[-1] if rss else None,
        "state_bytes_max": max((s["state_bytes"] or 0 for s in samples), default=None) or None,
    }
    if seconds > plan.live_seconds:  # the endurance run
        minutes = [
            next(s for s in samples if s["t"] >= minute * 60)
            for minute in range(1, int(seconds // 60) + 1)
            if samples and samples[-1]["t"] >= minute * 60
        ]
        result.update(
            {
                "seconds": seconds,
                "per_minute": minutes,
                "rss_flat": flat([s["rss_mb"] for s in minutes]),
                "state_flat": flat([s["state_bytes"] for s in minutes]),
            }
        )
    log(f"live {system} at {rate:,}/s: {result}")
    return result


# --- report ------------------------------------------------------------------------------------------------------
def _profiled_batch(report: dict[str, Any], rate: int, spam_share: float) -> float | None:
    """The median micro-batch of the profile at an offered rate and spam share."""
    return next(
        (
            r["batch_s_median"]
            for r in report["profile"]
            if r["offered_per_s"] == rate and r["spam_share"] == spam_share
        ),
        None,
    )


# The targets of the detector speed issue (README "Benchmarks"); a value that a plan does not measure is "-".
TARGETS = [
    (
        "detector capacity >= 20,000 msg/s on local[2]",
        lambda r: r["systems"]["detector"]["max_sustained_msgs_per_s"],
        lambda v: v >= 20_000,
    ),
    (
        "detector driver Python CPU <= 0.3 s per 100,000 messages (capacity drains)",
        lambda r: r["systems"]["detector"]["cpu"]["per_100k_messages"]["driver (this Python process)"],
        lambda v: v <= 0.3,
    ),
    (
        f"detector drain cut into micro-batches of {CUT_BATCH:,} <= 1.5x one batch",
        lambda r: r["systems"]["detector"]["cut_slowdown"],
        lambda v: v <= 1.5,
    ),
    ("detector/datasketch throughput >= 8", lambda r: r["ratios"]["detector_vs_datasketch"], lambda v: v >= 8),
    ("detector/exact throughput >= 0.9", lambda r: r["ratios"]["detector_vs_exact"], lambda v: v >= 0.9),
    ("detector/noop throughput >= 0.5", lambda r: r["ratios"]["detector_vs_noop"], lambda v: v >= 0.5),
    (
        "detector sustains >= 10,000 msg/s offered live",
        lambda r: r["systems"]["detector"]["highest_sustained_offered_per_s"],
        lambda v: v is not None and v >= 10_000,
    ),
    (
        "detector memory flat over the endurance run",
        lambda r: r["systems"]["detector"]["memory_flat"],
        lambda v: v is True,
    ),
    (
        "median micro-batch <= 0.5 s at 100 msg/s without spam",
        lambda r: _profiled_batch(r, 100, 0.0),
        lambda v: v is not None and v <= 0.5,
    ),
    (
        "median micro-batch <= 1 s at 100 msg/s with spam events to write",
        lambda r: _profiled_batch(r, 100, 0.2),
        lambda v: v is not None and v <= 1.0,
    ),
    (
        "detector p95 latency after window close <= 5 s",
        lambda r: r["systems"]["detector"]["latency_p95_s"],
        lambda v: v is not None and v <= 5,
    ),
    (
        "detector time to first report p95 <= 2 s at 1,000 msg/s",
        lambda r: _live_at(r, 1000).get("first_report_p95_s"),
        lambda v: v is not None and v <= 2,
    ),
    (
        "detector time to first report p95 <= 3 s at 10,000 msg/s",
        lambda r: _live_at(r, 10_000).get("first_report_p95_s"),
        lambda v: v is not None and v <= 3,
    ),
    (
        "detector precision >= 0.95 (synthetic labels)",
        lambda r: r["systems"]["detector"]["precision"],
        lambda v: v >= 0.95,
    ),
    ("detector recall >= 0.95 (synthetic labels)", lambda r: r["systems"]["detector"]["recall"], lambda v: v >= 0.95),
    (
        "detector precision >= 0.95 (oracle, real chat)",
        lambda r: r["systems"]["detector"].get("oracle_precision"),
        lambda v: v is not None and v >= 0.95,
    ),
    (
        "detector recall >= 0.95 (oracle, real chat)",
        lambda r: r["systems"]["detector"].get("oracle_recall"),
        lambda v: v is not None and v >= 0.95,
    ),
    (
        "detector recall >= 0.95 for every evasion kind (synthetic labels; the lowest)",
        lambda r: min(r["systems"]["detector"]["recall_by_evasion"].values()),
        lambda v: v >= 0.95,
    ),
    (
        "detector precision >= 0.95 for every evasion kind (synthetic labels; the lowest)",
        lambda r: min(r["systems"]["detector"]["precision_by_evasion"].values()),
        lambda v: v >= 0.95,
    ),
    (
        "detector recall on evasions above exact (mean over kinds; none below exact)",
        lambda r: evasion_margin(r["systems"]["detector"], r["systems"]["exact"]),
        lambda v: v is not None and v > 0,
    ),
]


def _live_at(report: dict[str, Any], rate: int) -> dict[str, Any]:
    """The detector's live run at this offered rate ({} when there was none)."""
    runs = report["systems"]["detector"].get("live", [])
    return next((r for r in runs if r["offered_per_s"] == rate), {})


def evasion_margin(detector: dict[str, Any], exact: dict[str, Any]) -> float | None:
    """Mean over evasion kinds of detector recall minus exact recall; negative when any kind is below exact."""
    gaps = [detector["recall_by_evasion"][k] - v for k, v in exact["recall_by_evasion"].items() if k != "none"]
    if not gaps:
        return None
    return round(min(gaps), 4) if min(gaps) < 0 else round(sum(gaps) / len(gaps), 4)


def summarise(report: dict[str, Any]) -> None:
    systems = report["systems"]
    for entry in systems.values():
        # Latency is only meaningful where the system keeps up: take it from the highest sustained offered rate.
        sustained = [r for r in entry.get("live", []) if r["sustained"] and r["events"]]
        best = max(sustained, key=lambda r: r["offered_per_s"]) if sustained else None
        for key in ("latency_p50_s", "latency_p95_s", "latency_p99_s"):
            entry[key] = best[key] if best else None
        entry["highest_sustained_offered_per_s"] = best["achieved_offered_per_s"] if best else None
        if entry.get("endurance"):
            entry["memory_flat"] = entry["endurance"]["rss_flat"]["flat"]
            entry["state_flat"] = entry["endurance"]["state_flat"]["flat"]
    rate = {n: systems[n]["max_sustained_msgs_per_s"] for n in systems}
    report["ratios"] = {
        "detector_vs_exact": round(rate["detector"] / rate["exact"], 3),
        "detector_vs_noop": round(rate["detector"] / rate["noop"], 3),
        "detector_vs_datasketch": round(rate["detector"] / rate["datasketch"], 3),
    }
    report["targets"] = []
    for label, value_of, met in TARGETS:
        try:
            value = value_of(report)
        except (KeyError, TypeError):
            value = None
        report["targets"].append({"target": label, "value": value, "met": bool(value is not None and met(value))})


def write_report(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = report["systems"]
    names = list(systems)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.bar(names, [systems[n]["max_sustained_msgs_per_s"] for n in names], color="#6c5ce7")
    axis.set_ylabel("msg/s (drain of a pre-filled topic)")
    axis.set_title("Capacity on local[2]")
    figure.tight_layout()
    figure.savefig(out / "latest-capacity.png", dpi=100)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for name in names:
        runs = systems[name].get("live", [])
        if runs:
            axis.plot(
                [r["achieved_offered_per_s"] for r in runs],
                [r["processed_within_10s"] / max(1, r["offered"]) for r in runs],
                marker="o",
                label=name,
            )
    axis.set_xscale("log")
    axis.set_xlabel("offered msg/s")
    axis.set_ylabel("share read 10 s after load end")
    axis.axhline(SUSTAINED_SHARE, color="grey", linestyle="--")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "latest-offered.png", dpi=100)
    plt.close(figure)

    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    lines = [
        f"# Benchmark report ({report['plan']})",
        "",
        f"Machine: {report['machine']['cores']} cores, {report['machine']['memory_gb']} GB, "
        f"{report['machine']['cpu']}, Python {report['machine']['python']}, {report['machine']['java']}; "
        f"{report['machine']['date']}. Capacity = drain of a pre-filled topic of "
        f"{report['prefill_messages']:,} labelled messages (median of {report['repeat']}, min-max).",
        "",
        "| system | msg/s (min-max) | highest sustained offered | latency p50/p95/p99 s there | precision | recall |"
        " oracle P/R |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        s = systems[name]
        lines.append(
            f"| {name} | {cell(s['max_sustained_msgs_per_s'])} ({cell(s['drain_min_msgs_per_s'])}-"
            f"{cell(s['drain_max_msgs_per_s'])}) | {cell(s['highest_sustained_offered_per_s'])} | "
            f"{cell(s['latency_p50_s'])} / {cell(s['latency_p95_s'])} / {cell(s['latency_p99_s'])} | "
            f"{cell(s['precision'])} | {cell(s['recall'])} | {cell(s.get('oracle_precision'))} / "
            f"{cell(s.get('oracle_recall'))} |"
        )
    lines += [
        "",
        "Ratios: " + ", ".join(f"{k} {v}" for k, v in report["ratios"].items()),
        "",
        f"Detector drain cut into micro-batches of {CUT_BATCH:,}: "
        f"{cell(systems['detector'].get('cut_drain_s'))} s against {cell(systems['detector'].get('one_batch_drain_s'))}"
        f" s in one batch ({cell(systems['detector'].get('cut_slowdown'))}x).",
        "",
        f"Detector events reported open in the first drain: {cell(systems['detector'].get('events_reported_open'))}, "
        f"of which undone at close: {cell(systems['detector'].get('undone'))}.",
        "",
        "## Recall and precision per evasion kind (synthetic labels: every message of a wave)",
        "",
        "| evasion | " + " | ".join(f"{n} recall | {n} precision" for n in DETECTING) + " |",
        "|---|" + "---|---|" * len(DETECTING),
    ]
    kinds = sorted(systems["detector"].get("recall_by_evasion", {}))
    for kind in kinds:
        lines.append(
            f"| {kind} | "
            + " | ".join(
                f"{cell(systems[n].get('recall_by_evasion', {}).get(kind))} | "
                f"{cell(systems[n].get('precision_by_evasion', {}).get(kind))}"
                for n in DETECTING
            )
            + " |"
        )
    lines += [
        "",
        "## Live runs (load generator at fixed offered rates)",
        "",
        "Time to first report: the Kafka time of an event's first record minus the send time of the message that "
        "made its wave spam (bench/first_report.py); waves reported: of the load's waves that reached the thresholds "
        "within some 10 s.",
        "",
        "| system | offered/s | achieved/s | read in 10 s | sustained | latency p95 s | time to detect p95 s |"
        " time to first report p50/p95 s | waves reported | RSS first/max/last MB | state max bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for r in systems[name].get("live", []):
            lines.append(
                f"| {name} | {r['offered_per_s']:,} | {r['achieved_offered_per_s']:,} | "
                f"{r['processed_within_10s']:,}/{r['offered']:,} | {'yes' if r['sustained'] else 'no'} | "
                f"{cell(r['latency_p95_s'])} | {cell(r['time_to_detect_p95_s'])} | "
                f"{cell(r.get('first_report_p50_s'))} / {cell(r.get('first_report_p95_s'))} | "
                f"{cell(r.get('waves_reported'))}/{cell(r.get('spam_waves'))} | {cell(r['rss_mb_first'])}/"
                f"{cell(r['rss_mb_max'])}/{cell(r['rss_mb_last'])} | {cell(r['state_bytes_max'])} |"
            )
    closed_only = systems["detector"].get("live_closed_only", [])
    if closed_only:
        lines += [
            "",
            "Time to first report p50/p95 s, the detector with open events (default) and with "
            "`detector.open_events=false` (reported when windows close, as before), one after the other in this run:",
            "",
            "| offered/s | open events | closed only | waves reported (open / closed only) |",
            "|---|---|---|---|",
        ]
        for opened, closed in zip(systems["detector"]["live"], closed_only, strict=False):
            lines.append(
                f"| {opened['offered_per_s']:,} | {cell(opened.get('first_report_p50_s'))} / "
                f"{cell(opened.get('first_report_p95_s'))} | {cell(closed.get('first_report_p50_s'))} / "
                f"{cell(closed.get('first_report_p95_s'))} | {cell(opened.get('waves_reported'))} / "
                f"{cell(closed.get('waves_reported'))} of {cell(opened.get('spam_waves'))} |"
            )
    endurance = {name: systems[name]["endurance"] for name in names if systems[name].get("endurance")}
    if endurance:
        lines += [
            "",
            f"## Memory and state over {report['endurance_seconds'] / 60:g} minutes at {ENDURANCE_RATE:,} msg/s",
            "",
            "Resident MB (the JVM and Python workers for the Spark systems, the process for datasketch) and "
            "state bytes at each minute. Flat: the last third within 10 % of the second third.",
            "",
            "| system | RSS MB per minute | RSS flat (growth) | state MB per minute | state flat (growth) | "
            "latency p95 s | sustained |",
            "|---|---|---|---|---|---|---|",
        ]

        def verdict(v: dict[str, Any]) -> str:
            return "-" if v["flat"] is None else f"{'yes' if v['flat'] else 'NO'} ({v['growth']:+.1%})"

        for name, run in endurance.items():
            rss = ", ".join(f"{m['rss_mb']:,}" for m in run["per_minute"])
            state = ", ".join(
                "-" if m["state_bytes"] is None else f"{m['state_bytes'] / 2**20:.1f}" for m in run["per_minute"]
            )
            lines.append(
                f"| {name} | {rss} | {verdict(run['rss_flat'])} | {state} | {verdict(run['state_flat'])} | "
                f"{cell(run['latency_p95_s'])} | {'yes' if run['sustained'] else 'no'} |"
            )
    lines += ["", "## Targets", ""] + [
        f"- {'met' if t['met'] else 'NOT met'}: {t['target']} (value: {cell(t['value'])})" for t in report["targets"]
    ]
    if any(s.get("cpu") for s in systems.values()):
        lines += [""] + cpu.table(systems)
    if report.get("profile"):
        lines += [""] + profile.table(report["profile"])
    if report.get("stages"):
        lines += [""] + stages.table(report["stages"])
    if report.get("ingest"):
        i = report["ingest"]
        lines += [
            "",
            "## Ingest",
            "",
            f"- IRC parse: {i['parse']['median_per_s']:,} lines/s ({i['parse_vs_split']}x of a bare split floor)",
            f"- our sink {i['sink']['median_per_s']:,} msg/s vs bare kafka-python producer "
            f"{i['bare_producer']['median_per_s']:,} msg/s ({i['sink_vs_bare_producer']}x)",
        ]
    if report.get("replay_formats"):
        lines += [""] + formats.table(report["replay_formats"])
    if report.get("dashboard"):
        lines += ["", f"## Dashboard callbacks with {report['dashboard']['events']:,} events in Cassandra", ""]
        lines += [
            f"- {name}: p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms, p99 {c['p99_ms']} ms"
            for name, c in report["dashboard"]["callbacks"].items()
        ]
    lines += ["", "![capacity](latest-capacity.png) ![offered](latest-offered.png)", ""]
    (out / "latest.md").write_text("\n".join(lines))


@command
def main(argv: list[str] | None = None, prog: str = "python -m bench.run") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rates, one repetition: under 5 minutes")
    parser.add_argument("--smoke", action="store_true", help="a tiny run of every phase but the live ones (tests)")
    parser.add_argument("--out", default=str(RESULTS), help="where the report goes (default bench/results)")
    parser.add_argument("--rates", help="offered rates of the live runs, comma-separated (default: the plan's)")
    parser.add_argument(
        "--endurance-minutes",
        type=float,
        help=f"length of the memory run at {ENDURANCE_RATE:,} msg/s (default: full 10, quick none)",
    )
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.rates:
        plan = dataclasses.replace(plan, offered_rates=tuple(int(r) for r in args.rates.split(",")))
    if args.endurance_minutes is not None:
        plan = dataclasses.replace(plan, endurance_seconds=args.endurance_minutes * 60)
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Its own keyspace and topics: a bench never writes into the history the dashboard shows.
    with BenchSpace(base.with_overrides(spark__master="local[2]", detector__max_offsets_per_trigger=50_000)) as space:
        # Runner.processed() sums the query's recent progress, which Spark caps at 100 micro-batches by default:
        # too few for the 10-minute run.
        spark = session(
            space.config, app_name="twitchcrement-bench", **{"spark.sql.streaming.numRecentProgressUpdates": 100_000}
        )
        spark.sparkContext.setLogLevel("ERROR")
        report["systems"] = capacity_and_quality(spark, space, plan)
        for system in SYSTEMS:
            if system == "noop":
                continue
            report["systems"][system]["live"] = []
            for rate in plan.offered_rates:
                run = live(spark, space, plan, system, rate)
                report["systems"][system]["live"].append(run)
                if not run["sustained"]:
                    break  # higher rates cannot do better
            if system == "detector":  # the same rates reported only when windows close: the early warning's gain
                report["systems"][system]["live_closed_only"] = [
                    live(spark, space, plan, system, r["offered_per_s"], detector__open_events=False)
                    for r in report["systems"][system]["live"]
                ]
            if plan.endurance_seconds and system in DETECTING:
                log(f"{system}: {plan.endurance_seconds / 60:g} minutes at {ENDURANCE_RATE:,} msg/s for memory ...")
                report["systems"][system]["endurance"] = live(
                    spark, space, plan, system, ENDURANCE_RATE, seconds=plan.endurance_seconds
                )
        if plan.profile_rates:
            log("profile of a micro-batch ...")
            report["profile"] = profile.measure(
                space, spark, list(plan.profile_rates), plan.profile_seconds, [0.0, 0.2]
            )
            profile.write_markdown(report["profile"], out)
        if plan.stage_messages:
            log("per-message cost of each stage ...")
            report["stages"] = stages.measure(space, spark, plan.stage_messages, repeat=3)
            stages.write_markdown(report["stages"], out)
        spark.stop()
        log("ingest ...")
        report["ingest"] = ingest_bench.measure(space.config, plan.ingest_messages, repeat=1 if plan.repeat == 1 else 5)
        log("replay: reading each chat-log format ...")
        report["replay_formats"] = formats.measure(plan.ingest_messages, repeat=1 if plan.repeat == 1 else 3)
    if plan.dashboard_events:
        log(f"dashboard callbacks with {plan.dashboard_events:,} events ...")
        subprocess.run(
            [sys.executable, "-m", "bench.dashboard", "--events", str(plan.dashboard_events)],
            cwd=PROJECT_ROOT,
            check=True,
        )
        report["dashboard"] = json.loads((RESULTS / "dashboard.json").read_text())
    summarise(report)
    report["seconds"] = round(time.monotonic() - started)
    (out / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    write_report(report, out)
    log(f"wrote {out / 'latest.json'} and latest.md in {report['seconds']} s")
    print((out / "latest.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
