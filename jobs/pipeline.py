"""The spam detector's streaming plan, the part that runs on the executors. Functions take DataFrames and return
DataFrames; jobs.spam_detector.start wires them to Kafka.

    Kafka chatmessage -> decode + normalise in one Python pass (bad records keyed to the dead-letter route)
      -> shingles, HashingTF + MinHashLSH (Spark ML) in one JVM call a row -> signature
      -> per Kafka partition in Spark's state (jobs.keyed): per channel, in offset order, windows, clusters,
         events, topics (jobs.detection) -> foreachBatch: Kafka spammessage + dead-letter topic, Cassandra (jobs.sinks)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from py4j.java_gateway import JavaClass
from pyspark.ml.feature import HashingTF, MinHashLSH, MinHashLSHModel
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.detection import Settings
from twitchcrement import jvm
from twitchcrement.config import Config
from twitchcrement.emotes import wave_emotes
from twitchcrement.errors import UserError
from twitchcrement.records import ChatMessage, RecordError
from twitchcrement.textsim import MinHasher, normalise

log = logging.getLogger(__name__)
# pyspark 3.5's Arrow serializer concatenates frames in a way pandas 2.2 warns about, once per worker batch.
warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")

DEADLETTER_KEY = ""  # the channel key of records that could not be decoded (no real channel is empty)
SIGNATURE_FUNCTION = "twitchcrement_minhash_signature"
DECODED_FIELDS = [
    ("channel", "string"),
    ("user_login", "string"),
    ("text", "string"),
    ("sent_ts", "long"),
    ("message_id", "string"),
    ("reason", "string"),
    ("raw", "binary"),
    ("kafka_ts", "long"),
    ("partition", "int"),
    ("offset", "long"),
    ("norm", "string"),
    ("emotes", "string"),  # the emotes of a message that is mostly emotes (twitchcrement.emotes.wave_emotes)
]
DECODED_COLUMNS = [name for name, _ in DECODED_FIELDS]
DECODED_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in DECODED_FIELDS)


@dataclass(frozen=True)
class DetectorSettings:
    """Everything the job needs from the config, in one picklable value for the Python workers."""

    detection: Settings
    hasher: MinHasher
    trigger_s: float

    @classmethod
    def from_config(cls, config: Config) -> DetectorSettings:
        return cls(
            detection=Settings(
                window_ms=config.detector.window_s * 1000,
                jaccard=config.detector.jaccard,
                rows_per_band=config.detector.rows_per_band,
                min_shingles=config.detector.min_shingles,
                shingle_size=config.detector.shingle_size,
                min_messages=config.detector.min_messages,
                min_users=config.detector.min_users,
                flood_min_messages=config.detector.flood_min_messages,
                min_share=config.detector.min_share,
                topic_quiet_ms=int(config.detector.topic_quiet_s * 1000),
                watermark_ms=int(config.detector.watermark_s * 1000),
                channel_lag_ms=int(config.detector.channel_lag_s * 1000),
                open_events=config.detector.open_events,
            ),
            hasher=MinHasher.from_config(config),
            trigger_s=config.detector.trigger_s,
        )


# --- decode and text features ------------------------------------------------------------------------------------
def decode_and_normalise(text_features: bool = True) -> Callable[[Iterable[pd.DataFrame]], Iterable[pd.DataFrame]]:
    """One Python pass per record: msgpack -> chat fields, the normalised text (the shingles are made in the JVM,
    see register_signature_function) and the emotes of a message that is mostly emotes (from its tags).
    A value that is not a valid chat record keeps its bytes and the reason.
    Without text_features only the fields (the benchmarks' floor of a Python-decoding job)."""

    def run(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            columns: dict[str, list[Any]] = {name: [] for name in DECODED_COLUMNS}
            for value, kafka_ts, partition, offset in zip(
                batch["value"], batch["kafka_ts"], batch["partition"], batch["offset"], strict=True
            ):
                try:
                    message: ChatMessage = ChatMessage.decode(value)  # type: ignore[assignment]
                    if not message.text.strip():
                        raise RecordError("chat message: field 'text' is empty")
                    row: tuple[Any, ...] = (
                        message.channel,
                        message.user_login,
                        message.text,
                        message.sent_ts,
                        message.message_id,
                        None,
                        None,
                        int(kafka_ts),
                        int(partition),
                        int(offset),
                        normalise(message.text) if text_features else "",
                        wave_emotes(message.text, message.emotes, message.extra_emotes) if text_features else "",
                    )
                except RecordError as exc:
                    row = (
                        DEADLETTER_KEY,
                        "",
                        "",
                        int(kafka_ts),
                        "",
                        str(exc),
                        bytes(value) if value is not None else b"",
                        int(kafka_ts),
                        int(partition),
                        int(offset),
                        "",
                        "",
                    )
                for name, item in zip(DECODED_COLUMNS, row, strict=True):
                    columns[name].append(item)
            yield pd.DataFrame(columns)

    return run


def decode(kafka: DataFrame, text_features: bool = True) -> DataFrame:
    """Kafka rows -> chat columns with norm (see decode_and_normalise), in one Python task per core: each task of a
    micro-batch costs a fixed 0.1-0.2 s, and a topic has more partitions than a small job has cores
    (bench/reference/profile-before.md)."""
    cores = kafka.sparkSession.sparkContext.defaultParallelism
    raw = kafka.coalesce(cores).select(
        F.col("value"), (F.col("timestamp").cast("double") * 1000).cast("long").alias("kafka_ts"), "partition", "offset"
    )
    return raw.mapInPandas(decode_and_normalise(text_features), DECODED_SCHEMA)


def minhash_model(spark: SparkSession, hasher: MinHasher) -> tuple[HashingTF, MinHashLSHModel]:
    """Spark ML's HashingTF and a MinHashLSH model; its coefficients depend only on seed and table count."""
    tf = HashingTF(inputCol="shingles", outputCol="features", numFeatures=hasher.num_features)
    sample = spark.createDataFrame([(Vectors.sparse(hasher.num_features, [0], [1.0]),)], ["features"])
    model = MinHashLSH(
        inputCol="features", outputCol="hashes", numHashTables=hasher.num_hash_tables, seed=hasher.seed
    ).fit(sample)
    return tf, model


class JvmFunctionMissing(UserError, RuntimeError):
    """The detector's JVM function (jvm/src) is not on Spark's classpath."""


def register_signature_function(spark: SparkSession, settings: DetectorSettings) -> None:
    """Registers SIGNATURE_FUNCTION (jvm/src/twitchcrement/MinHashSignature.java): a normalised text's shingles,
    HashingTF's term indices and the fitted MinHashLSH model's hash function in one JVM call per row, as big-endian
    int32 bytes (null: too short for LSH). The values of model.transform(tf.transform(...)) at a fraction of the
    cost: that path takes the shingles from Python and turns each row's sparse vector and its 32 one-value vectors
    into Spark rows and back (bench/reference/stages-before.md)."""
    _, model = minhash_model(spark, settings.hasher)
    jvm_view = spark.sparkContext._jvm
    # a JavaPackage, not a JavaClass, when the jar is missing
    entry = jvm_view.twitchcrement.MinHashSignature if jvm_view is not None else None
    if not isinstance(entry, JavaClass):
        raise JvmFunctionMissing(
            f"the detector's JVM function twitchcrement.MinHashSignature is not on Spark's "
            f"classpath: `make jars` builds {jvm.UDF_JAR}; with spark-submit pass "
            f"dist/{jvm.UDF_JAR.name} (`make dist`) with --jars"
        )
    entry.register(
        spark._jsparkSession,
        SIGNATURE_FUNCTION,
        settings.hasher.num_features,
        model._java_obj,
        settings.detection.shingle_size,
        settings.detection.min_shingles,
    )


def features(chat: DataFrame, spark: SparkSession, settings: DetectorSettings) -> DataFrame:
    """Adds signature: the MinHash values of the normalised text from Spark ML (see register_signature_function)."""
    register_signature_function(spark, settings)
    return chat.withColumn("signature", F.call_udf(SIGNATURE_FUNCTION, F.col("norm")))
