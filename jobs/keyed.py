"""The per-channel detection on the executors, its state in Spark's state store.

    featured chat rows (jobs.pipeline) -> groupBy(Kafka partition).applyInPandasWithState(detect_partition)
      -> event, topic, dead-letter and summary rows -> foreachBatch (KeyedBatch): Spark jobs writing them to Kafka
         spammessage and Cassandra; the driver collects the summaries only

Why the key is the Kafka partition and not the channel: the chat topic is keyed by channel, so each channel lives
in one partition and sees its messages in offset order there. A channel may only be closed as silent once its
partition has been read to the end, and that fact comes from the batch itself only per partition: with a
processing-time timeout of 1 ms every partition's state is called in every micro-batch, and a call without rows
means the batch had nothing of that partition (Spark's Kafka source gives every partition with a lag at least one
row of a rate-limited batch). A partition still being read is caught up when its newest row is younger (Kafka time)
than detector.channel_lag_s. The processing time is the batch's own timestamp (`getCurrentProcessingTimeMs`), the
same when Spark runs the batch again, and the stream's event clock is Spark's watermark (0 s delay: the newest
event time seen), so a re-run computes what the first run computed. No EventTimeTimeout: Spark would then drop the
rows behind the global watermark before this function sees them, and each channel keeps its own clock instead.

The state of one partition is data (msgpack, STATE_VERSION), one entry per channel, each channel's detector packed
on its own so that the channels without new rows and nothing due are not unpacked. The settings that shape the
state are stored with it; a checkpoint made with others is refused in one line that names them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from jobs.alerts import ALERT_COLUMNS, Alerts
from jobs.detection import ChannelDetector, Settings
from jobs.pipeline import DEADLETTER_KEY, DetectorSettings
from jobs.sinks import OUTPUT_FIELDS, Sinks, kafka_record, mark_last_topic_updates
from twitchcrement.clients import kafka_consumer
from twitchcrement.config import Config
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)

# 2: windows keep their reported open events and clusters, closed ones their remnants; 3: each text its emotes;
# 4: each open window the texts in its events when last reported (Window.used)
STATE_VERSION = 4
READABLE_VERSIONS = (2, 3, 4)  # a version-2 text reads as one without emotes, an older window as one not reported
STATE_SCHEMA = "version int, shape string, body binary"
EVICT_AFTER_MS = 3_600_000  # a channel with nothing open, silent this long, is forgotten (bounded state)
USERS_TYPE = "array<struct<user:string,messages:long,first_ts:long,last_ts:long>>"
# What the stateful step outputs: detector rows (OUTPUT_FIELDS, kind event | topic) with their users, dead letters
# (kind dead), each with its Kafka record (key, value), and one summary per partition and batch (kind summary),
# which alone the driver collects.
KEYED_FIELDS = [
    *OUTPUT_FIELDS,
    ("users", USERS_TYPE),
    ("key", "binary"),
    ("value", "binary"),
    ("kafka_ts", "long"),
    ("partition", "int"),
    ("read_through", "long"),
    ("messages", "long"),
    ("late_dropped", "long"),
    ("channels", "long"),
    ("open_windows", "long"),
    ("open_texts", "long"),
    ("topics", "long"),
    ("state_bytes", "long"),
    ("events", "long"),
    ("open_reports", "long"),
    ("undone", "long"),
    ("topic_updates", "long"),
    ("dead_letters", "long"),
]
KEYED_COLUMNS = [name for name, _ in KEYED_FIELDS]
KEYED_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in KEYED_FIELDS)
SIZE_FIELDS = ["channels", "open_windows", "open_texts", "topics"]
COUNT_FIELDS = ["events", "open_reports", "undone", "topic_updates", "dead_letters"]  # a summary's output rows by kind
SUMMARY_COLUMNS = ["partition", "read_through", "kafka_ts", "messages", "late_dropped", "state_bytes"]
SUMMARY_COLUMNS += SIZE_FIELDS + COUNT_FIELDS


class StateShapeChanged(UserError, RuntimeError):
    """The checkpoint's state was made with settings that shape it differently."""


def state_shape(settings: DetectorSettings) -> str:
    """The settings a stored state depends on, as `name=value` pairs (stored with every state)."""
    detection, hasher = settings.detection, settings.hasher
    return ",".join(
        f"{name}={value}"
        for name, value in [
            ("detector.window_s", detection.window_ms // 1000),
            ("detector.shingle_size", detection.shingle_size),
            ("detector.num_hash_tables", hasher.num_hash_tables),
            ("detector.rows_per_band", detection.rows_per_band),
            ("detector.num_features", hasher.num_features),
            ("detector.seed", hasher.seed),
        ]
    )


def shape_problem(stored: str, current: str) -> str | None:
    """One line naming the settings in which a stored state's shape differs from this job's, or None."""
    old = dict(p.split("=", 1) for p in stored.split(",") if "=" in p)
    new = dict(p.split("=", 1) for p in current.split(",") if "=" in p)
    changed = [f"{k} {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if not changed:
        return None
    return (
        f"the detector state in this checkpoint was made with other settings ({'; '.join(changed)}): "
        f"set them back, or start with a new checkpoint (--checkpoint) over the retained chat"
    )


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def output_frame(out: list[dict[str, Any]]) -> pd.DataFrame:
    """The stateful step's output rows (advance's, then a summary) as KEYED_FIELDS, with their Kafka records."""
    mark_last_topic_updates(out)
    for row in out:
        if row["kind"] in ("event", "topic", "dead"):
            row["key"], row["value"] = kafka_record(row)
        if row["kind"] == "event":
            row["users"] = [{"user": u, "messages": c, "first_ts": f, "last_ts": la} for u, c, f, la in row["users"]]
    return pd.DataFrame([[r.get(c) for c in KEYED_COLUMNS] for r in out], columns=KEYED_COLUMNS)


def output_counts(out: list[dict[str, Any]]) -> dict[str, int]:
    """COUNT_FIELDS of advance's output rows."""
    kinds = Counter(r.get("state") if r["kind"] == "event" else r["kind"] for r in out)
    return {
        "events": kinds["closed"],
        "open_reports": kinds["open"],
        "undone": kinds["undone"],
        "topic_updates": kinds["topic"],
        "dead_letters": kinds["dead"],
    }


def new_partition_state() -> dict[str, Any]:
    # channels: name -> [processing time of its last rows, its detector packed, open windows, open texts, topics]
    return {"channels": {}, "read_through": 0, "newest_kafka_ts": 0}


def advance(
    partition: dict[str, Any],
    frame: pd.DataFrame | None,
    now: int,
    stream_clock: int,
    drain: bool,
    detection: Settings,
) -> tuple[list[dict[str, Any]], int]:
    """One micro-batch of one Kafka partition: its rows (None: the batch had none) into its channels' detectors, then
    the silent channels' windows closed. Changes `partition` (new_partition_state's shape); returns the output rows
    (events, topic updates, dead letters) and the late messages dropped. now: the batch's processing time;
    stream_clock: the newest event time of the whole stream (Spark's watermark, 0 s delay)."""
    entries: dict[str, list[Any]] = partition["channels"]
    out: list[dict[str, Any]] = []
    detectors: dict[str, ChannelDetector] = {}

    def detector(channel: str) -> ChannelDetector:
        found = detectors.get(channel)
        if found is None:
            entry = entries.get(channel)
            found = ChannelDetector(channel) if entry is None else ChannelDetector.from_state(_unpack(entry[1]))
            detectors[channel] = found
        return found

    if frame is not None:
        frame = frame.sort_values("offset", kind="stable")
        partition["read_through"] = max(partition["read_through"], int(frame["offset"].iloc[-1]) + 1)
        partition["newest_kafka_ts"] = max(partition["newest_kafka_ts"], int(frame["kafka_ts"].max()))
        bad = frame["channel"] == DEADLETTER_KEY
        for dead in frame.loc[bad, ["reason", "raw", "kafka_ts"]].itertuples(index=False):
            out.append({"kind": "dead", "reason": dead.reason, "raw": dead.raw, "kafka_ts": int(dead.kafka_ts)})
        for channel, messages in frame[~bad].groupby("channel", sort=False):
            channel_detector = detector(channel)
            for ts, user, text, norm, signature, emotes in zip(
                messages["sent_ts"].tolist(),
                messages["user_login"].tolist(),
                messages["text"].tolist(),
                messages["norm"].tolist(),
                messages["signature"].tolist(),
                messages["emotes"].tolist(),
                strict=True,
            ):
                channel_detector.add(ts, user, text, norm, signature, detection, emotes)
            out.extend(channel_detector.take())
            out.extend(channel_detector.report_open(detection))
            entries.setdefault(channel, [now, b"", 0, 0, 0])[0] = now
    caught_up = frame is None or now - partition["newest_kafka_ts"] < detection.channel_lag_ms
    for channel, entry in list(entries.items()):
        silent_ms = now - entry[0]
        if drain and frame is None:
            out.extend(detector(channel).finish(detection))
        elif caught_up and silent_ms >= detection.channel_lag_ms:
            channel_detector = detector(channel)
            if stream_clock - channel_detector.newest_ts < detection.channel_lag_ms:
                continue
            out.extend(channel_detector.close_quiet(silent_ms, detection))
            if channel_detector.is_empty() and silent_ms >= EVICT_AFTER_MS:
                del entries[channel], detectors[channel]
    late = 0
    for channel, channel_detector in detectors.items():
        late += channel_detector.late_dropped
        channel_detector.late_dropped = 0
        windows = channel_detector.windows.values()
        entries[channel][1:] = [
            _pack(channel_detector.to_state()),
            len(windows),
            sum(len(w.texts) for w in windows),
            len(channel_detector.topics),
        ]
    return out, late


def detect_partition(
    settings: DetectorSettings, drain: bool
) -> Callable[[tuple[Any, ...], Iterator[pd.DataFrame], GroupState], Iterator[pd.DataFrame]]:
    """The function Spark calls once per Kafka partition and micro-batch. drain: the query reads what the topic
    held at its start (--available-now), so a call without rows is the end of the partition's input: every open
    window closes (ChannelDetector.finish)."""
    shape = state_shape(settings)

    def run(key: tuple[Any, ...], frames: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        batch = [f for f in frames if len(f)]
        if state.exists:
            version, stored_shape, body = state.get
            if version not in READABLE_VERSIONS:
                raise StateShapeChanged(
                    f"the detector state in this checkpoint has version {version}, this release reads "
                    f"{STATE_VERSION}: start with a new checkpoint (--checkpoint) over the retained chat"
                )
            problem = shape_problem(stored_shape, shape)
            if problem:
                raise StateShapeChanged(problem)
            partition = _unpack(body)
        else:
            partition = new_partition_state()
        frame = pd.concat(batch, ignore_index=True) if batch else None
        out, late = advance(
            partition,
            frame,
            state.getCurrentProcessingTimeMs(),
            state.getCurrentWatermarkMs(),
            drain,
            settings.detection,
        )
        body = _pack(partition)
        state.update((STATE_VERSION, shape, body))
        state.setTimeoutDuration(1)  # called again in the next batch, rows or not
        entries = partition["channels"].values()
        out.append(
            {
                "kind": "summary",
                "partition": int(key[0]),
                "read_through": partition["read_through"],
                "kafka_ts": partition["newest_kafka_ts"],
                "messages": 0 if frame is None else len(frame),
                "late_dropped": late,
                "channels": len(entries),
                "state_bytes": len(body),
                **{name: sum(e[i] for e in entries) for i, name in enumerate(SIZE_FIELDS[1:], start=2)},
                **output_counts(out),
            }
        )
        yield output_frame(out)

    return run


def detect(featured: DataFrame, settings: DetectorSettings, drain: bool) -> DataFrame:
    """The featured chat (jobs.pipeline.features) -> KEYED_FIELDS rows, per Kafka partition in Spark's state."""
    event_time = F.when(F.col("channel") == DEADLETTER_KEY, F.lit(0)).otherwise(F.col("sent_ts"))
    timed = featured.withColumn("event_time", F.timestamp_millis(event_time)).withWatermark("event_time", "0 seconds")
    function: Any = detect_partition(settings, drain)
    return timed.groupBy("partition").applyInPandasWithState(
        function,
        KEYED_SCHEMA,
        STATE_SCHEMA,
        "append",
        GroupStateTimeout.ProcessingTimeTimeout,
    )


class StopBetweenBatches(RuntimeError):
    """How a KeyedBatch ends its query when a stop was asked for (see KeyedBatch.request_stop)."""


class KeyedBatch:
    """The foreachBatch function of the detector: writes the stateful step's output (events, topic updates, dead
    letters) to Kafka and Cassandra by Spark jobs, and collects only its summaries (for the metrics and the
    counts) and, with webhooks, the columns the alert rules read. `drained_at` is the first batch in which no
    partition had rows, not counting the first of a start (a drain is then over)."""

    def __init__(self, config: Config):
        self.config = config
        self.totals: Counter[str] = Counter()
        self.timings: dict[str, float] = {}
        self.summaries: dict[int, dict[str, Any]] = {}  # partition -> its latest summary row
        self.drained_at: int | None = None
        self.drained = threading.Event()  # set with drained_at
        self._first_batch: int | None = None
        self.alerts = Alerts(config)
        self._sinks: Sinks | None = None
        self._consumer: Any = None
        self._stop_requested = threading.Event()
        self.batches_written = 0
        # What ended the last batch that failed: py4j hands Spark only its traceback's text, so the query's own
        # error does not say whether a service was away (jobs.spam_detector.supervise reads this one)
        self.failure: BaseException | None = None

    def bind(self, spark: SparkSession) -> KeyedBatch:
        """Ready for a (re)started query: sinks on its session, no stop asked for."""
        self.spark = spark
        self._sinks = Sinks(self.config, spark)
        self._stop_requested.clear()
        self._first_batch = None
        self.failure = None
        return self

    def request_stop(self) -> None:
        """End the query at the start of its next micro-batch, before any of its tasks runs: query.stop() cancels
        the running batch's tasks in the middle of their RocksDB work, and a cancelled task can still hold its
        state store while Spark unloads it (the JVM crashed so once in CI). The batch is not committed and runs
        again on the next start."""
        self._stop_requested.set()

    @property
    def stop_requested(self) -> bool:
        """A stop was asked for: the query's end with StopBetweenBatches is then no failure."""
        return self._stop_requested.is_set()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._write(batch, batch_id)
        except BaseException as exc:
            self.failure = exc
            raise
        self.batches_written += 1

    def _write(self, batch: DataFrame, batch_id: int) -> None:
        if self.stop_requested:
            raise StopBetweenBatches(f"stopped before micro-batch {batch_id}, as asked")
        if self._first_batch is None:
            self._first_batch = batch_id
        self.timings = {}
        began = time.perf_counter()
        # Each write below is a Spark job over the stateful step's output: kept, so that the step runs once.
        output = batch.persist()
        counts: Counter[str] = Counter()
        try:
            summaries = [
                r.asDict() for r in output.where(F.col("kind") == "summary").select(*SUMMARY_COLUMNS).collect()
            ]
            self.timings["executors: read, decode, minhash, detect (summaries collected)"] = round(
                time.perf_counter() - began, 4
            )
            for summary in summaries:
                self.summaries[int(summary["partition"])] = summary
                counts.update({name: int(summary[name]) for name in ("messages", "late_dropped", *COUNT_FIELDS)})
            assert self._sinks is not None, "KeyedBatch.bind(spark) must come first"
            self._sinks.write(output, counts, self.timings)
            if self.alerts.senders and counts["events"] + counts["open_reports"] + counts["topic_updates"]:
                rows = output.where(F.col("kind").isin("event", "topic")).select(*ALERT_COLUMNS).collect()
                self.alerts.observe([r.asDict() for r in rows])
        finally:
            output.unpersist()
        read = counts.pop("messages", 0)  # no summary when no partition has state yet
        self.totals.update(counts)
        self.totals["messages"] += read
        # The first batch of a start may be the empty batch the last run stopped before: the new chat comes after it.
        if read == 0 and self.drained_at is None and batch_id > self._first_batch:
            self.drained_at = batch_id
            self.drained.set()
        if read or any(counts[name] for name in COUNT_FIELDS):
            log.info("batch written", extra={"batch": batch_id, "read": read, **counts})

    @property
    def newest_read_ts(self) -> dict[int, int]:
        """Partition -> Kafka time (ms) of the newest record read (metrics)."""
        return {p: int(s["kafka_ts"]) for p, s in self.summaries.items() if s["kafka_ts"]}

    def consumer_lag(self) -> dict[int, int]:
        """Per partition, the records Kafka holds now that the detector has not read (asked at each scrape)."""
        from kafka import TopicPartition

        if not self.summaries:
            return {}
        if self._consumer is None:
            self._consumer = kafka_consumer(self.config, enable_auto_commit=False)
        topic = self.config.kafka.chat_topic
        ends = self._consumer.end_offsets([TopicPartition(topic, p) for p in self.summaries])
        read = {p: int(s["read_through"]) for p, s in self.summaries.items()}
        return {tp.partition: max(0, int(end) - read[tp.partition]) for tp, end in ends.items()}

    def snapshot_bytes(self) -> int:
        """The state's size in the store: the partitions' latest encoded states."""
        return sum(int(s["state_bytes"]) for s in self.summaries.values())

    def state_sizes(self) -> dict[str, int]:
        return {name: sum(int(s[name] or 0) for s in self.summaries.values()) for name in SIZE_FIELDS}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.alerts.close()
