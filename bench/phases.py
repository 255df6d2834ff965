"""The phases that run the systems: capacity and quality (drains of a pre-filled topic, scored against the
generator's labels and the real captures' oracle) and live runs at fixed offered rates."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

import bench.load
from bench import cpu, first_report
from bench.isolation import BenchSpace
from bench.plans import (
    CAPTURES,
    CATCH_UP_S,
    CUT_BATCH,
    DETECTING,
    PER_CORE_SYSTEMS,
    SHARED,
    SUSTAINED_SHARE,
    SYSTEMS,
    Plan,
    log,
)
from bench.stats import flat, percentile
from bench.systems import Runner, closed, fill, read_output
from ingest.captures import Capture
from ingest.synth import EMOTES, THIRD_PARTY_SETS, Generator, SynthSettings
from jobs.detection import Settings
from jobs.evaluation import Cell, EmoteTruth, emote_truth, labelled_cells, oracle_cells, score, tagged_emote_words
from jobs.pipeline import DetectorSettings
from twitchcrement import config as configuration
from twitchcrement.spark import session

VOCABULARY = frozenset(EMOTES)  # the generator's emotes: the truth of which of its words are emotes
WORLD_EMOTES = frozenset(code for sets in THIRD_PARTY_SETS.values() for code in sets[""])  # what the stand-in serves


@dataclasses.dataclass(frozen=True)
class Drain:
    seconds: float
    cpu_seconds: dict[str, float]  # by process kind (bench.cpu.KINDS), from its query's start to its end


def drain(spark: Any, config: configuration.Config, system: str, chat_topic: str, out_topic: str) -> Drain:
    """One system draining the chat topic into out_topic: its wall time, and the CPU spent once its query had
    started (the plan's building is not per message)."""
    runner = Runner(spark, config, system)
    began = time.perf_counter()
    runner.start(chat_topic, out_topic, drain=True)
    before = cpu.snapshot()
    runner.wait()
    return Drain(time.perf_counter() - began, cpu.spent_since(before))


@dataclasses.dataclass(frozen=True)
class Prefilled:
    """The capacity phase's chat topic and its truths: labelled cells, emote truth, the real captures' oracle."""

    topic: str
    messages: int
    cells: list[Cell]
    emotes: EmoteTruth
    oracle: tuple[str, list[Cell], EmoteTruth] | None


def prefill(space: BenchSpace, plan: Plan) -> Prefilled:
    """A topic of labelled synthetic chat (and one of the real captures when the plan scores the oracle)."""
    config, settings = space.config, Settings()
    generator = Generator(
        SynthSettings(rate=plan.prefill_rate, seconds=plan.prefill_seconds, channels=40, seed=21, prefix="bench")
    )
    messages = list(generator)
    chat_topic = space.topic("chat")
    log(f"pre-filling {chat_topic} with {len(messages):,} labelled messages ...")
    fill(config, chat_topic, messages)
    cells = labelled_cells(messages, [b.label() for b in generator.bursts], settings)
    # emote waves that no label names (ordinary chat that is all emotes) are judged by the generator's vocabulary
    emotes = emote_truth(messages, settings, lambda m: [w in VOCABULARY for w in m.text.split()])
    oracle = None
    if plan.oracle and SHARED.exists():
        real = sorted((m for path in CAPTURES for m in Capture(SHARED / path)), key=lambda m: m.sent_ts)
        real_emotes = emote_truth(real, settings, lambda m: tagged_emote_words(m, WORLD_EMOTES))
        oracle = (space.topic("real"), oracle_cells(real, settings), real_emotes)
        fill(config, oracle[0], real)
    return Prefilled(chat_topic, len(messages), cells, emotes, oracle)


def capacity_and_quality(spark: Any, space: BenchSpace, plan: Plan, chat: Prefilled) -> dict[str, dict[str, Any]]:
    """Each system drains the same labelled chat `plan.repeat` times; its first drain's events are scored."""
    config, settings = space.config, Settings()
    chat_topic, cells, emotes, oracle = chat.topic, chat.cells, chat.emotes, chat.oracle
    drain(spark, config, "noop", chat_topic, "unused")  # the session's first query pays JVM and worker start-up
    results: dict[str, dict[str, Any]] = {}
    for system in SYSTEMS:
        runs, first_events = [], []
        spent = dict.fromkeys(cpu.KINDS, 0.0)  # during the drains only: reading and scoring their output is not theirs
        for repetition in range(plan.repeat):
            out_topic = space.topic(f"out-{system}")
            run = drain(spark, config, system, chat_topic, out_topic)
            runs.append(run.seconds)
            spent = {kind: spent[kind] + used for kind, used in run.cpu_seconds.items()}
            if repetition == 0 and system in DETECTING:
                first_events = read_output(config, out_topic)
        rates = [(chat.messages + 1) / r for r in runs]
        entry: dict[str, Any] = {
            "cpu": cpu.per_100k(spent, chat.messages * plan.repeat),
            "max_sustained_msgs_per_s": round(statistics.median(rates)),
            "drain_min_msgs_per_s": round(min(rates)),
            "drain_max_msgs_per_s": round(max(rates)),
            "drain_runs": len(runs),
            "precision": None,
            "recall": None,
        }
        if system in DETECTING:
            entry.update(_quality(first_events, cells, settings, emotes))
            if oracle:
                entry.update(_oracle_agreement(spark, space, system, *oracle, settings))
        if system == "detector":
            entry.update(_cut_drains(spark, space, plan, chat_topic, runs))
        results[system] = entry
        log(f"{system}: {entry}")
    return results


def _quality(
    records: list[dict[str, Any]], cells: list[Cell], settings: Settings, emotes: EmoteTruth
) -> dict[str, Any]:
    """Closed events scored against the labels (emote waves no label names: against the emote truth); the open
    records counted, and those undone at close."""
    quality = score(closed(records), cells, settings, emotes=emotes)
    return {
        "events_reported_open": len({r["event_id"] for r in records if r.get("state") == "open"}),
        "undone": len({r["event_id"] for r in records if r.get("state") == "undone"}),
        "precision": round(quality.precision, 4),
        "recall": round(quality.recall, 4),
        "events": quality.events,
        "labelled_cells": quality.cells,
        "recall_by_evasion": {k: round(v, 4) for k, v in quality.recall_by_tag.items()},
        "precision_by_evasion": {k: round(v, 4) for k, v in quality.precision_by_tag.items()},
    }


def _oracle_agreement(
    spark: Any,
    space: BenchSpace,
    system: str,
    real_topic: str,
    cells: list[Cell],
    emotes: EmoteTruth,
    settings: Settings,
) -> dict[str, Any]:
    out_topic = space.topic(f"out-{system}-real")
    runner = Runner(spark, space.config, system)
    runner.start(real_topic, out_topic, drain=True)
    runner.wait()
    agreement = score(closed(read_output(space.config, out_topic)), cells, settings, emotes=emotes)
    return {
        "oracle_precision": round(agreement.precision, 4),
        "oracle_recall": round(agreement.recall, 4),
        "oracle_cells": agreement.cells,
    }


def _cut_drains(spark: Any, space: BenchSpace, plan: Plan, chat_topic: str, one_batch: list[float]) -> dict[str, Any]:
    """The detector's drain again, cut into micro-batches of CUT_BATCH messages."""
    cut_config = space.config.with_overrides(detector__max_offsets_per_trigger=CUT_BATCH)
    out_topic = space.topic("out-detector-cut")
    cut_runs = [drain(spark, cut_config, "detector", chat_topic, out_topic).seconds for _ in range(plan.repeat)]
    cut = {
        "cut_batch": CUT_BATCH,
        "cut_drain_s": round(statistics.median(cut_runs), 2),
        "one_batch_drain_s": round(statistics.median(one_batch), 2),
        "cut_slowdown": round(statistics.median(cut_runs) / statistics.median(one_batch), 2),
    }
    log(f"detector, cut into micro-batches of {CUT_BATCH:,}: {cut}")
    return cut


def capacity_per_core(space: BenchSpace, chat: Prefilled, cores: int) -> dict[str, dict[str, Any]]:
    """The detector and exact draining the capacity topic once each on local[cores] (a session of its own: one
    Spark context per process, so the caller has stopped its own), with the CPU their executors spent: Spark's JVM
    (tasks, JIT, GC) and its Python workers, per message."""
    spark = session(space.config.with_overrides(spark__master=f"local[{cores}]"), app_name=f"bench-local-{cores}")
    spark.sparkContext.setLogLevel("ERROR")
    results: dict[str, dict[str, Any]] = {}
    try:
        drain(spark, space.config, "noop", chat.topic, "unused")  # as capacity_and_quality's warm-up
        for system in PER_CORE_SYSTEMS:
            run = drain(spark, space.config, system, chat.topic, space.topic(f"out-{system}-{cores}"))
            used = cpu.per_100k(run.cpu_seconds, chat.messages)["per_100k_messages"]
            results[system] = {
                "msgs_per_s": round((chat.messages + 1) / run.seconds),
                "executors_cpu_s_per_100k": round(sum(used[kind] for kind in cpu.EXECUTOR_KINDS), 2),
                "driver_cpu_s_per_100k": used["driver (this Python process)"],
            }
            log(f"{system} on local[{cores}]: {results[system]}")
    finally:
        spark.stop()
    return results


class MemorySampler:
    """Every second, in a thread: the resident memory of a system's processes and its state bytes."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.wait(1.0):
            rss = 0
            for process in self.runner.processes():
                try:
                    rss += process.memory_info().rss
                except psutil.Error:
                    continue
            self.samples.append(
                {
                    "t": round(time.monotonic() - began),
                    "rss_mb": round(rss / 2**20),
                    "state_bytes": self.runner.state_bytes(),
                }
            )


def live(
    spark: Any, space: BenchSpace, plan: Plan, system: str, rate: int, seconds: float | None = None, **overrides: Any
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
    waves = Path(tempfile.mkstemp(prefix="bench-waves-", suffix=".jsonl")[1])
    with MemorySampler(runner) as memory:
        load = bench.load.in_subprocess(chat_topic, rate, seconds, waves=waves)
        load_end_ms = int(time.time() * 1000)
        time.sleep(CATCH_UP_S)
        processed = runner.processed()
        time.sleep(max(0.0, plan.grace_seconds - CATCH_UP_S))
    runner.stop()
    records = read_output(config, out_topic)
    first = first_report.time_to_first_report(
        first_report.read_waves(waves), records, DetectorSettings.from_config(config).detection
    )
    waves.unlink()
    result = {
        "offered_per_s": rate,
        "achieved_offered_per_s": load["achieved_per_s"],
        "offered": load["offered"],
        "processed_within_10s": processed,
        "sustained": processed >= SUSTAINED_SHARE * load["offered"],
        **_latencies([e for e in closed(records) if e["window_end"] <= load_end_ms]),
        **first,
        **_memory(memory.samples, seconds if seconds > plan.live_seconds else 0),
    }
    log(f"live {system} at {rate:,}/s: {result}")
    return result


def _latencies(events: list[dict[str, Any]]) -> dict[str, Any]:
    """From each closed event's Kafka time: after its window's end (latency), after its last message (detect)."""
    latency = [(e["kafka_ms"] - e["window_end"]) / 1000 for e in events]
    detect = [(e["kafka_ms"] - e["last_ts"]) / 1000 for e in events if e.get("last_ts")]
    return {
        "events": len(events),
        "latency_p50_s": percentile(latency, 0.5),
        "latency_p95_s": percentile(latency, 0.95),
        "latency_p99_s": percentile(latency, 0.99),
        "time_to_detect_p50_s": percentile(detect, 0.5),
        "time_to_detect_p95_s": percentile(detect, 0.95),
    }


def _memory(samples: list[dict[str, Any]], endurance_s: float) -> dict[str, Any]:
    """Resident memory and state over a run; for the endurance run, also minute by minute and whether flat."""
    rss = [s["rss_mb"] for s in samples]
    memory = {
        "rss_mb_max": max(rss) if rss else None,
        "rss_mb_first": rss[0] if rss else None,
        "rss_mb_last": rss[-1] if rss else None,
        "state_bytes_max": max((s["state_bytes"] or 0 for s in samples), default=None) or None,
    }
    if endurance_s:
        minutes = [
            next(s for s in samples if s["t"] >= minute * 60)
            for minute in range(1, int(endurance_s // 60) + 1)
            if samples and samples[-1]["t"] >= minute * 60
        ]
        memory.update(
            {
                "seconds": endurance_s,
                "per_minute": minutes,
                "rss_flat": flat([s["rss_mb"] for s in minutes]),
                "state_flat": flat([s["state_bytes"] for s in minutes]),
            }
        )
    return memory
