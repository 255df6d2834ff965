"""The systems compared, each started on a chat topic and read back from its output topic: the detector, the
exact and noop Spark baselines, and the datasketch process."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import psutil

from ingest.sink import ChatSink
from jobs.keyed import KeyedBatch
from jobs.pipeline import decode
from jobs.spam_detector import start as start_detector
from jobs.spam_detector import stop_between_batches, wait_for_drain
from twitchcrement import PROJECT_ROOT
from twitchcrement import config as configuration
from twitchcrement.clients import kafka_consumer
from twitchcrement.records import ChatMessage, RecordError, SpamEvent, decode_spam
from twitchcrement.spark import kafka_options


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
                    "kind": value.kind,
                    "text": value.text,
                    "message_count": value.message_count,
                    "distinct_users": value.distinct_users,
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
            .option("subscribe", config.kafka.chat_topic)
            .option("startingOffsets", config.detector.starting_offsets)
            .option("maxOffsetsPerTrigger", config.detector.max_offsets_per_trigger)
            .load()
        )
        # msgpack decode to columns only: no normalisation or shingles (the floor of any Python-decoding job)
        chat = decode(kafka, text_features=False).where(F.col("channel") != "")
        if self.system == "noop":
            writer = chat.writeStream.format("noop")
        else:
            window = config.detector.window_s
            events = (
                chat.withColumn("event_time", F.timestamp_millis("sent_ts"))
                .withWatermark("event_time", f"{config.detector.watermark_s} seconds")
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
                .option("topic", config.kafka.spam_topic)
            )
        writer = writer.outputMode("append").option("checkpointLocation", checkpoint)
        writer = (
            writer.trigger(availableNow=True)
            if drain
            else writer.trigger(processingTime=f"{int(config.detector.trigger_s * 1000)} milliseconds")
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
        elif self.process is not None:
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
