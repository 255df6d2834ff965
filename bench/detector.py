"""Detector throughput, side by side in one run: pre-fill a topic with synthetic chat (event times spread as in
live chat), then time how fast each query drains it on local[2]:

- detector: the real job (decode, MinHashLSH, per-channel windows and topics, Kafka + Cassandra sinks);
- exact: the original system's algorithm (identical text per channel per 10 s window) in the same harness;
- noop: read and decode only (the ceiling of this machine for a Python-decoding query).

    .venv/bin/python -m bench.detector [--rate 5000] [--seconds 60] [--repeat 3]

Writes bench/results/detector.json. Needs the local services (started if not running).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid

from pyspark.sql import functions as F

import services
from ingest.sink import ChatSink
from ingest.synth import Generator, SynthSettings
from jobs.pipeline import decode
from jobs.spam_detector import start
from services.schema import ensure_topics
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.records import ChatMessage
from twitchcrement.spark import session


def prefill(config: configuration.Config, rate: float, seconds: float) -> int:
    generator = Generator(SynthSettings(rate=rate, seconds=seconds, channels=40, seed=21, prefix="bench"))
    sink = ChatSink(config)
    count = 0
    last = 0
    for message in generator:
        sink.offer(message, block=True)
        count += 1
        last = max(last, message.sent_ts)
    sink.offer(ChatMessage(channel="zz_flush", user_login="flush", text="flush", sent_ts=last + 120_000), block=True)
    sink.close(timeout_s=1200)
    return count + 1


BATCH_MS: dict[str, list[int]] = {}


def drain(spark, config, which: str) -> float:
    checkpoint = tempfile.mkdtemp(prefix=f"bench-{which}-")
    started = time.perf_counter()
    if which == "detector":
        query = start(spark, config, available_now=True, checkpoint=checkpoint)
    else:
        kafka = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", config.kafka_bootstrap)
                 .option("subscribe", config["kafka.chat_topic"]).option("startingOffsets", "earliest")
                 .option("maxOffsetsPerTrigger", config["detector.max_offsets_per_trigger"]).load())
        chat = decode(kafka, config["detector.min_shingles"]).where(F.col("channel") != "")
        if which == "exact":
            frame = (chat.withColumn("event_time", F.timestamp_millis("sent_ts"))
                     .withWatermark("event_time", "3 seconds")
                     .groupBy("channel", F.window("event_time", "10 seconds"), "text").count()
                     .where(F.col("count") > 1))
        else:
            frame = chat
        query = (frame.writeStream.format("noop").outputMode("append").option("checkpointLocation", checkpoint)
                 .trigger(availableNow=True).start())
    query.awaitTermination()
    elapsed = time.perf_counter() - started
    BATCH_MS.setdefault(which, []).extend(p["durationMs"]["triggerExecution"] for p in query.recentProgress
                                          if p["numInputRows"])
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-offsets", type=int, default=50_000,
                        help="records per micro-batch (50,000 = 10 s of chat at 5,000 msg/s)")
    args = parser.parse_args()
    logs.setup("WARNING")
    base = configuration.load()
    services.up(base)
    topic = f"bench-chat-{uuid.uuid4().hex[:6]}"
    config = base.with_overrides(kafka__chat_topic=topic, kafka__spam_topic=f"bench-spam-{topic[-6:]}",
                                 spark__master="local[2]", detector__starting_offsets="earliest",
                                 detector__max_offsets_per_trigger=args.max_offsets)
    ensure_topics(config, [topic, config["kafka.spam_topic"]])
    messages = prefill(config, args.rate, args.seconds)
    spark = session(config, app_name="twitchcrement-bench")
    results: dict[str, dict[str, float]] = {}
    for which in ("noop", "exact", "detector"):
        runs = [drain(spark, config, which) for _ in range(args.repeat)]
        rates = [messages / r for r in runs]
        batches = sorted(BATCH_MS.get(which, [0]))
        results[which] = {"median_msgs_per_s": round(statistics.median(rates)), "min_msgs_per_s": round(min(rates)),
                          "max_msgs_per_s": round(max(rates)), "median_s": round(statistics.median(runs), 2),
                          "batch_ms_p50": batches[len(batches) // 2],
                          "batch_ms_p95": batches[min(len(batches) - 1, int(len(batches) * 0.95))]}
        print(which, results[which], flush=True)
    report = {"messages": messages, "event_seconds": args.seconds, "systems": results,
              "ratios": {"detector_vs_exact": round(results["detector"]["median_msgs_per_s"] /
                                                    results["exact"]["median_msgs_per_s"], 3),
                         "detector_vs_noop": round(results["detector"]["median_msgs_per_s"] /
                                                   results["noop"]["median_msgs_per_s"], 3)}}
    out = PROJECT_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "detector.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
