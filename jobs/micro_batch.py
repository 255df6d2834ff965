"""The foreachBatch function of the spam detector: one micro-batch from the executors' features to every sink.

    featured rows (Spark: decode, normalise, shingles + MinHashLSH) -> one collect to the driver (Arrow)
      -> DetectorState.apply: per channel, in Kafka offset order (jobs.state, jobs.detection)
      -> Sinks: Kafka spammessage and dead letters; the Cassandra tables while the next batch runs (jobs.sinks)
      -> the state, saved with the batch's facts (see below)

Exactly once, across crashes: each batch records the two facts that its result depends on besides the chat
itself, the processing time and the partition ends Kafka reported before it (`decisions/<batch id>`, a few bytes).
The whole state is snapshotted every `detector.state_snapshot_s` (in a forked child, so the batch does not wait
for it). A restarted job loads the newest snapshot before the batch Spark runs again, and replays the batches
between the two from Kafka with their recorded facts, reading the offsets from Spark's own offsets log: the
state it reaches is the one the killed job had, and the batch that Spark runs again computes what it computed.
The Cassandra history trails the batches (jobs.sinks): a snapshot carries the rows not yet known to be written,
and the restart writes them again, with the replayed batches' rows.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.alerts import Alerts
from jobs.pipeline import BATCH_COLUMNS, DEADLETTER_KEY, TICK_KEY, DetectorSettings, decode, features
from jobs.sinks import Sinks
from jobs.state import DetectorState, StateStore
from twitchcrement.clients import kafka_consumer
from twitchcrement.config import Config
from twitchcrement.spark import source_offsets

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_BATCHES = 50  # Spark keeps the offsets of the last 100 batches; a replay must stay within them
DECISIONS_KEPT = 1000


class MicroBatch:
    """Called by Spark once per micro-batch (foreachBatch); `finish` closes the last windows of a drain."""

    def __init__(self, config: Config):
        self.config = config
        self.settings = DetectorSettings.from_config(config)
        self.topic = config["kafka.chat_topic"]
        self.snapshot_every_s = config["detector.state_snapshot_s"]
        self.totals: Counter[str] = Counter()
        self.timings: dict[str, float] = {}  # seconds per stage of the latest micro-batch (bench.profile)
        self._bound: tuple[SparkSession, StateStore, Sinks] | None = None  # by bind(), before the first batch
        self.state: DetectorState | None = None
        self._partition_ends: dict[str, int] | None = None  # what Kafka reported after the last batch (JSON keys)
        self.newest_read_ts: dict[int, int] = {}  # partition -> Kafka time (ms) of the newest record read (metrics)
        self._consumer: Any = None
        self._snapshot_at = (time.monotonic(), -1)
        self._snapshot_child = 0
        self.alerts = Alerts(config)
        self._idle = threading.Condition()
        self._in_batch = False

    def bind(self, spark: SparkSession, checkpoint: str) -> MicroBatch:
        self._bound = (spark, StateStore(checkpoint, spark), Sinks(self.config, spark))
        return self

    def _services(self) -> tuple[SparkSession, StateStore, Sinks]:
        if self._bound is None:
            raise RuntimeError("MicroBatch.bind(spark, checkpoint) must come before the first micro-batch")
        return self._bound

    @property
    def spark(self) -> SparkSession:
        return self._services()[0]

    @property
    def store(self) -> StateStore:
        return self._services()[1]

    @property
    def sinks(self) -> Sinks:
        return self._services()[2]

    # --- one micro-batch
    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        with self._idle:
            self._in_batch = True
        try:
            self._run(batch, batch_id)
        except BaseException:
            # The state may hold half of this batch: the batch's next run starts from the saved state instead.
            self.state = None
            raise
        finally:
            with self._idle:
                self._in_batch = False
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no micro-batch is running here (True), or timeout_s passes (False): a query stopped then
        stops between batches, not in the middle of one's collect."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_batch, timeout_s)

    def _run(self, batch: DataFrame, batch_id: int) -> None:
        self.timings = {}
        began = time.perf_counter()
        frame: pd.DataFrame = batch.where(F.col("channel") != TICK_KEY).toPandas()
        self.timings["read+decode+minhash (collect)"] = round(time.perf_counter() - began, 4)
        state = self._state_before(batch_id)
        facts = self._facts(batch_id)
        began = time.perf_counter()
        rows, dead, late = self._apply(state, frame, facts)
        self.timings["detect"] = round(time.perf_counter() - began, 4)
        self.sinks.write(rows, dead, self.timings)
        self.alerts.observe(rows)  # hands alerts to their senders' threads: never waits for a webhook
        state.batch_id = batch_id
        self.state = state
        began = time.perf_counter()
        self._snapshot(state)
        self._partition_ends = self._fetch_partition_ends()
        self.timings["state snapshot + offsets"] = round(time.perf_counter() - began, 4)
        self._count(batch_id, rows, dead, late, len(frame))
        if len(frame):
            for partition, kafka_ts in frame.groupby("partition")["kafka_ts"].max().items():
                self.newest_read_ts[int(partition)] = int(kafka_ts)

    def _apply(
        self, state: DetectorState, frame: pd.DataFrame, facts: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[tuple[str, bytes, int]], int]:
        bad = frame["channel"] == DEADLETTER_KEY
        dead = list(zip(frame.loc[bad, "reason"], frame.loc[bad, "raw"], frame.loc[bad, "kafka_ts"], strict=True))
        ends = facts["partition_ends"]
        rows, late = state.apply(
            frame[~bad],
            facts["now_ms"],
            None if ends is None else {int(p): o for p, o in ends.items()},
            self.settings.detection,
        )
        return rows, dead, late

    def _count(self, batch_id: int, rows: list[dict[str, Any]], dead: list[Any], late: int, read: int) -> None:
        kinds = Counter(r["kind"] for r in rows)
        batch = {
            "events": kinds["event"],
            "topic_updates": kinds["topic"],
            "dead_letters": len(dead),
            "late_dropped": late,
        }
        self.totals.update(batch)
        self.totals["messages"] += read
        if read or rows:
            log.info("batch written", extra={"batch": batch_id, "read": read, **batch, **self.state_sizes()})

    # --- the end of a drain, and stopping
    def finish(self) -> None:
        """Close every open window (an --available-now drain has read all there is) and write what they emit."""
        committed = self.store.ids("commits")  # Spark's own log of the batches it has committed
        state = self.state if self.state is not None else self._state_before(committed[-1] + 1 if committed else 0)
        rows = state.finish(self.settings.detection)
        self.sinks.write(rows, [], self.timings)
        self.alerts.observe(rows)
        self.state = state
        self._snapshot(state, force=True)
        kinds = Counter(r["kind"] for r in rows)
        self.totals.update({"events": kinds["event"], "topic_updates": kinds["topic"]})
        log.info(
            "drain finished: last windows closed", extra={"events": kinds["event"], "topic_updates": kinds["topic"]}
        )

    def close(self) -> None:
        """Save the state as of the last batch (a restart then replays nothing), and close the clients."""
        if self.state is not None:
            try:
                self._snapshot(self.state, force=True)
            except Exception as exc:  # noqa: BLE001 - the last history write failed: keep the older snapshot
                log.error(
                    "the last history write failed; a restart replays and writes it again",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
                )
        self._wait_for_snapshot()
        self.alerts.close()
        if self._bound is not None:
            self.sinks.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def snapshot_bytes(self) -> int | None:
        return self.store.newest_snapshot_bytes() if self._bound is not None else None

    def consumer_lag(self) -> dict[int, int]:
        """Per partition, the records Kafka had (at the end of the last batch) that the detector has not read."""
        if self.state is None or self._partition_ends is None:
            return {}
        read = self.state.read_through
        return {int(p): max(0, end - read.get(int(p), 0)) for p, end in self._partition_ends.items()}

    def state_sizes(self) -> dict[str, int]:
        return self.state.sizes() if self.state is not None else {}

    # --- the state across crashes
    def _state_before(self, batch_id: int) -> DetectorState:
        if self.state is not None and self.state.batch_id == batch_id - 1:
            return self.state
        began = time.perf_counter()
        state = self.store.load_before(batch_id)
        replayed = self._replay(state, batch_id) if state.batch_id < batch_id - 1 else []
        # The history rows the snapshot carries were perhaps not written before the failure, and those of the
        # replayed batches were written in the background and may not have made it either: write them again
        # (the same keys, so nothing twice; the replayed batches' newer topic updates last).
        rewrite = [*getattr(state, "unwritten_history", []), *replayed]  # older snapshots have no such field
        state.unwritten_history = []
        if rewrite:
            self.sinks.wait_for_history(raise_error=False)  # a write still running from before the failure
            self.sinks.write_history(rewrite)
        self.timings["state restore"] = round(time.perf_counter() - began, 4)
        return state

    def _replay(self, state: DetectorState, batch_id: int) -> list[dict[str, Any]]:
        """Bring a snapshot up to the batch before batch_id: read the batches in between from Kafka (their offsets
        from Spark's offsets log) and apply each with its recorded facts."""
        first = state.batch_id + 1
        bounds = [self._offsets(i) for i in range(first - 1, batch_id)]  # bounds[k]: end of batch first - 1 + k
        log.info("replaying batches into the restored state", extra={"from_batch": first, "to_batch": batch_id - 1})
        settings = self.settings
        kafka = (
            self.spark.read.format("kafka")
            .option("kafka.bootstrap.servers", self.config.kafka_bootstrap)
            .option("assign", json.dumps({self.topic: sorted(int(p) for p in bounds[-1])}))
            .option("startingOffsets", json.dumps({self.topic: {str(p): o for p, o in bounds[0].items()}}))
            .option("endingOffsets", json.dumps({self.topic: {str(p): o for p, o in bounds[-1].items()}}))
            .option("failOnDataLoss", "false")
            .load()
        )
        chat = decode(kafka)
        frame: pd.DataFrame = features(chat, self.spark, settings).select(*BATCH_COLUMNS).toPandas()
        replayed: list[dict[str, Any]] = []
        for k, batch in enumerate(range(first, batch_id)):
            start, end = bounds[k], bounds[k + 1]
            in_batch = pd.Series(False, index=frame.index)
            for partition, end_offset in end.items():
                in_batch |= (
                    (frame["partition"] == int(partition))
                    & (frame["offset"] >= start.get(partition, 0))
                    & (frame["offset"] < end_offset)
                )
            facts = self.store.decision(batch) or {"now_ms": 0, "partition_ends": None}
            replayed += self._apply(state, frame[in_batch], facts)[0]
            state.batch_id = batch
        # Their Kafka output went out before they were committed: only their history is written again (the caller).
        log.info("state replayed", extra={"batches": batch_id - first, "messages": len(frame), **state.sizes()})
        return replayed

    def _offsets(self, batch_id: int) -> dict[int, int]:
        """The chat topic's offsets at the end of batch_id (-1: where the query started), from the checkpoint."""
        text = self.store.read_checkpoint_file("sources/0/0" if batch_id < 0 else f"offsets/{batch_id}")
        offsets = source_offsets(text, self.topic)  # Kafka is source 0, the ticks source 1
        if offsets is None:
            raise RuntimeError(f"no offsets of topic {self.topic!r} in the checkpoint's batch {batch_id}")
        return offsets

    def _facts(self, batch_id: int) -> dict[str, Any]:
        """The recorded facts of a batch that runs again, else this run's (recorded before anything is written)."""
        facts = self.store.decision(batch_id)
        if facts is None:
            facts = {"now_ms": int(time.time() * 1000), "partition_ends": self._partition_ends}
            self.store.save_decision(batch_id, facts)
            self.store.drop_decision(batch_id - DECISIONS_KEPT)
        return facts

    def _snapshot(self, state: DetectorState, force: bool = False) -> None:
        at, last_id = self._snapshot_at
        due = (
            force
            or time.monotonic() - at >= self.snapshot_every_s
            or state.batch_id - last_id >= SNAPSHOT_EVERY_BATCHES
        )
        if not due or (self._snapshot_running() and not force):
            return
        if force:
            self.sinks.wait_for_history()  # the end of a drain, or closing: the history is all written
        self._wait_for_snapshot()
        self._snapshot_at = (time.monotonic(), state.batch_id)
        # Otherwise the snapshot carries the history rows not yet known to be written, rather than wait for them
        # (a write is several connector jobs, and would hold this batch back by seconds); a restart writes them.
        state.unwritten_history = self.sinks.unconfirmed_history()
        try:
            self._save(state, in_background=self.store.local and not force)
        finally:
            state.unwritten_history = []

    def _save(self, state: DetectorState, in_background: bool) -> None:
        if not in_background:
            self.store.save(state)
            return
        # A forked child pickles and writes the state while this process goes on with the next batch (the copy is
        # the kernel's copy-on-write; the child touches nothing but the state and the file).
        child = os.fork()
        if child == 0:
            try:
                self.store.save(state)
                os._exit(0)
            except BaseException:  # noqa: BLE001 - the child must never return into the driver's code
                os._exit(1)
        self._snapshot_child = child

    def _snapshot_running(self) -> bool:
        if not self._snapshot_child:
            return False
        pid, status = os.waitpid(self._snapshot_child, os.WNOHANG)
        if pid == 0:
            return True
        self._snapshot_done(status)
        return False

    def _wait_for_snapshot(self) -> None:
        if self._snapshot_child:
            _, status = os.waitpid(self._snapshot_child, 0)
            self._snapshot_done(status)

    def _snapshot_done(self, status: int) -> None:
        self._snapshot_child = 0
        if os.waitstatus_to_exitcode(status) != 0:
            log.warning("a state snapshot failed; the next one is taken at once")
            self._snapshot_at = (0.0, -SNAPSHOT_EVERY_BATCHES)

    # --- Kafka
    def _fetch_partition_ends(self) -> dict[str, int] | None:
        """The chat topic's end offsets now: the next batch may treat a channel as silent only once its partition
        has been read that far."""
        try:
            from kafka import TopicPartition

            if self._consumer is None:
                self._consumer = kafka_consumer(self.config, enable_auto_commit=False)
            partitions = self._consumer.partitions_for_topic(self.topic) or set()
            ends = self._consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
            return {str(tp.partition): int(offset) for tp, offset in ends.items()}
        except Exception as exc:  # noqa: BLE001 - not known: no channel is taken for silent until it is
            log.warning(
                "could not read the chat topic's end offsets; quiet channels stay open meanwhile",
                extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            return None
