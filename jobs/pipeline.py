"""The spam detector's streaming plan. Functions take DataFrames and return DataFrames; jobs.spam_detector.start
wires them to Kafka, and jobs.sinks writes each micro-batch to Kafka and Cassandra.

    Kafka chatmessage -> decode + normalise + shingles in one Python pass (bad records keyed to the dead-letter
         route) -> HashingTF -> MinHashLSH (Spark ML) -> signature
      -> watermark on tmi-sent-ts -> applyInPandasWithState per channel (jobs.detection: each channel's own
         watermark, windows, clusters, events, topics; the state store keeps open windows and active topics)
      -> foreachBatch: Kafka spammessage + dead-letter topic, Cassandra tables (idempotent upserts)

Spark 3.5 refuses a stateful operator after a streaming aggregation, so the 10 s windows are buffered in the same
per-channel state as the topics, instead of a `window()` aggregation before it.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pandas as pd
from pyspark.ml.feature import HashingTF, MinHashLSH, MinHashLSHModel
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from jobs.detection import ChannelDetector, Settings, packed_signature, signature_array
from twitchcrement.config import Config
from twitchcrement.records import ChatMessage, RecordError
from twitchcrement.textsim import MinHasher, band_buckets, normalise, shingles

log = logging.getLogger(__name__)
# pyspark 3.5's Arrow serializer concatenates frames in a way pandas 2.2 warns about, once per worker batch.
warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")

DEADLETTER_KEY = ""  # the channel key of records that could not be decoded (no real channel is empty)
SHORT_TEXT = "\x00short"  # the one shingle of texts too short for LSH: MinHashLSH rejects empty vectors
DECODED_FIELDS = [("channel", "string"), ("user_login", "string"), ("text", "string"), ("sent_ts", "long"),
                  ("message_id", "string"), ("reason", "string"), ("raw", "binary"), ("kafka_ts", "long"),
                  ("norm", "string"), ("shingles", "array<string>")]
DECODED_COLUMNS = [name for name, _ in DECODED_FIELDS]
DECODED_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in DECODED_FIELDS)
# What the detection step emits: kind is event | topic | deadletter | late; each kind fills its own columns.
OUTPUT_FIELDS = [
    ("kind", "string"), ("channel", "string"), ("event_kind", "string"), ("window_start", "long"),
    ("window_end", "long"), ("event_id", "string"), ("topic_id", "string"), ("text", "string"), ("norm", "string"),
    ("message_hash", "string"), ("message_count", "long"), ("distinct_users", "long"), ("variants", "long"),
    ("top_users", "array<struct<user:string,count:long>>"), ("top_variants", "array<struct<text:string,count:long>>"),
    ("first_ts", "long"), ("last_ts", "long"),
    ("buckets", "array<long>"), ("window_messages", "long"), ("windows_active", "long"), ("peak_rate", "double"),
    ("ended", "boolean"), ("reason", "string"), ("raw", "binary"), ("late", "long"),
]
OUTPUT_COLUMNS = [name for name, _ in OUTPUT_FIELDS]
OUTPUT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in OUTPUT_FIELDS)
STATE_SCHEMA = "detector binary"
NEVER_LATE = "9999-12-31 00:00:00"  # an event time no watermark reaches (see detect)


@dataclass(frozen=True)
class DetectorSettings:
    """Everything the job needs from the config, in one picklable value for the Python workers."""

    detection: Settings
    hasher: MinHasher
    trigger_s: float

    @classmethod
    def from_config(cls, config: Config) -> "DetectorSettings":
        return cls(
            detection=Settings(
                window_ms=config["detector.window_s"] * 1000, jaccard=config["detector.jaccard"],
                rows_per_band=config["detector.rows_per_band"], min_shingles=config["detector.min_shingles"],
                shingle_size=config["detector.shingle_size"],
                min_messages=config["detector.min_messages"], min_users=config["detector.min_users"],
                flood_min_messages=config["detector.flood_min_messages"], min_share=config["detector.min_share"],
                topic_quiet_ms=int(config["detector.topic_quiet_s"] * 1000),
                watermark_ms=int(config["detector.watermark_s"] * 1000),
                channel_lag_ms=int(config["detector.channel_lag_s"] * 1000)),
            hasher=MinHasher.from_config(config), trigger_s=config["detector.trigger_s"])


# --- decode and text features ------------------------------------------------------------------------------------
def decode_and_shingle(min_shingles: int, shingle_size: int = 3) -> Callable[[Iterator[pd.DataFrame]],
                                                                            Iterator[pd.DataFrame]]:
    """One Python pass per record: msgpack -> chat fields, normalised text and shingles (texts too short for LSH
    get the single SHORT_TEXT shingle). A value that is not a valid chat record keeps its bytes and the reason."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            columns: dict[str, list[Any]] = {name: [] for name in DECODED_COLUMNS}
            for value, kafka_ts in zip(batch["value"], batch["kafka_ts"]):
                try:
                    message: ChatMessage = ChatMessage.decode(value)  # type: ignore[assignment]
                    if not message.text.strip():
                        raise RecordError("chat message: field 'text' is empty")
                    norm = normalise(message.text)
                    grams = shingles(norm, shingle_size)
                    row = (message.channel, message.user_login, message.text, message.sent_ts, message.message_id,
                           None, None, int(kafka_ts), norm, grams if len(grams) >= min_shingles else [SHORT_TEXT])
                except RecordError as exc:
                    row = (DEADLETTER_KEY, "", "", int(kafka_ts), "", str(exc),
                           bytes(value) if value is not None else b"", int(kafka_ts), "", [SHORT_TEXT])
                for name, item in zip(DECODED_COLUMNS, row):
                    columns[name].append(item)
            yield pd.DataFrame(columns)

    return run


def decode(kafka: DataFrame, min_shingles: int, shingle_size: int = 3) -> DataFrame:
    """Kafka rows -> chat columns with norm and shingles (see decode_and_shingle)."""
    raw = kafka.select(F.col("value"), (F.col("timestamp").cast("double") * 1000).cast("long").alias("kafka_ts"))
    return raw.mapInPandas(decode_and_shingle(min_shingles, shingle_size), DECODED_SCHEMA)


def minhash_model(spark: SparkSession, hasher: MinHasher) -> tuple[HashingTF, MinHashLSHModel]:
    """Spark ML's HashingTF and a MinHashLSH model; its coefficients depend only on seed and table count."""
    tf = HashingTF(inputCol="shingles", outputCol="features", numFeatures=hasher.num_features)
    sample = spark.createDataFrame([(Vectors.sparse(hasher.num_features, [0], [1.0]),)], ["features"])
    model = MinHashLSH(inputCol="features", outputCol="hashes", numHashTables=hasher.num_hash_tables,
                       seed=hasher.seed).fit(sample)
    return tf, model


def features(chat: DataFrame, spark: SparkSession, settings: DetectorSettings) -> DataFrame:
    """Adds signature (MinHash values from Spark ML; null for texts too short for LSH) and event_time."""
    tf, model = minhash_model(spark, settings.hasher)
    hashed = model.transform(tf.transform(chat))
    signature = F.when(F.col("shingles")[0] == SHORT_TEXT, F.lit(None)).otherwise(
        F.transform("hashes", lambda v: vector_to_array(v)[0].cast("long")))
    return (hashed.withColumn("signature", signature)
            .withColumn("event_time", F.timestamp_millis("sent_ts"))
            .drop("shingles", "features", "hashes"))


# --- detection (stateful) ---------------------------------------------------------------------------------------
def _empty_row() -> dict[str, Any]:
    return {c: None for c in OUTPUT_COLUMNS}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    filled = []
    for row in rows:
        full = _empty_row()
        full.update({k: v for k, v in row.items() if k in full})
        filled.append(full)
    return pd.DataFrame(filled, columns=OUTPUT_COLUMNS)


def detection_step(settings: DetectorSettings) -> Callable[[tuple, Iterator[pd.DataFrame], GroupState],
                                                          Iterator[pd.DataFrame]]:
    detection = settings.detection

    def step(key: tuple, batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        channel = key[0]
        if channel == DEADLETTER_KEY:
            for batch in batches:
                yield _frame([{"kind": "deadletter", "reason": r, "raw": raw, "first_ts": ts}
                              for r, raw, ts in zip(batch["reason"], batch["raw"], batch["kafka_ts"])])
            return
        stream_watermark = state.getCurrentWatermarkMs()
        # A channel without state has nothing open: a window beyond the lag before the stream's watermark is over.
        detector: ChannelDetector = pickle.loads(state.get[0]) if state.exists else \
            ChannelDetector(channel, closed_through=stream_watermark - detection.channel_lag_ms)
        if not state.hasTimedOut:
            for batch in batches:
                for ts, user, text, norm, signature in zip(batch["sent_ts"], batch["user_login"], batch["text"],
                                                           batch["norm"], batch["signature"]):
                    detector.add(int(ts), user, text, norm, packed_signature(signature), detection)
        rows = detector.close_windows(detector.watermark(stream_watermark, detection), detection)
        for row in rows:
            if row["kind"] == "event":
                signature = row.pop("signature")
                row["buckets"] = [] if signature is None else \
                    band_buckets(signature_array(signature).tolist(), detection.rows_per_band)
        if detector.late_dropped:
            rows.append({"kind": "late", "channel": channel, "late": detector.late_dropped})
            detector.late_dropped = 0
        # The state is kept while a new one would not yet refuse what this one has closed (see closed_through).
        if detector.is_empty() and detector.closed_through <= stream_watermark - detection.channel_lag_ms:
            state.remove()
        else:
            state.update((pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL),))
            due = detector.next_deadline(detection) or detector.closed_through
            # Timeouts follow the stream's watermark: wake the channel when, quiet, it is due to close something.
            state.setTimeoutTimestamp(max(due + detection.channel_lag_ms, stream_watermark + 1))
        if rows:
            yield _frame(rows)

    return step


def detect(featured: DataFrame, settings: DetectorSettings) -> DataFrame:
    """Events, topic updates, dead letters and late counts, in OUTPUT_SCHEMA."""
    needed = ["channel", "sent_ts", "user_login", "text", "norm", "signature", "reason", "raw", "kafka_ts"]
    delay_ms = settings.detection.watermark_ms
    watermarked = featured.select(*needed, "event_time").withWatermark("event_time", f"{delay_ms} milliseconds")
    # Lateness is judged per channel (ChannelDetector), not against the stream's watermark: with an event-time
    # timeout Spark would drop every row behind the stream's watermark before the state function sees it. The
    # operator still needs a watermarked column to read that watermark, so it gets one that is never behind
    # (the same metadata key as withWatermark's).
    never_late = F.lit(NEVER_LATE).cast("timestamp").alias("event_time",
                                                                metadata={"spark.watermarkDelayMs": delay_ms})
    return (watermarked.select(*needed, never_late)
            .groupBy("channel")
            .applyInPandasWithState(detection_step(settings), OUTPUT_SCHEMA, STATE_SCHEMA, "append",
                                    GroupStateTimeout.EventTimeTimeout))
