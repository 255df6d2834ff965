"""Ingest benchmark: IRC parse rate on the real captures, and producer throughput to the local broker.

    .venv/bin/python -m bench.ingest [--messages N]

Figures are medians of 5 runs (min and max beside), measured side by side in one run: the parser against a plain
`str.split` tokeniser of the same lines (a floor for any parser), our bounded sink against kafka-python's bare
producer on the same records. Needs `make services-up` (or runs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import services
from ingest.irc_parser import ChatParser
from ingest.sink import ChatSink
from ingest.synth import Generator, SynthSettings
from services.schema import drop_topics, ensure_topics
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.clients import kafka_producer

SHARED = PROJECT_ROOT.parent / "shared" / "data" / "raw"


def raw_lines() -> list[str]:
    lines: list[str] = []
    log_file = SHARED / "admiralbulldog_irc" / "chat_admiralbulldog_4_30.log"
    if log_file.exists():
        for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            if " ;;; :" in line:
                lines.append(line.split(" ;;; ", 1)[1])
            elif line.startswith(":"):
                lines.append(line)
    sample = PROJECT_ROOT / "data" / "samples" / "recentmessages-nymn.json"
    lines += json.loads(sample.read_text(encoding="utf-8"))["messages"]
    return lines


def timed(fn, repeat: int = 5) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs)}


def rate(count: int, timing: dict[str, float]) -> dict[str, float]:
    return {
        "median_per_s": round(count / timing["median_s"]),
        "min_per_s": round(count / timing["max_s"]),
        "max_per_s": round(count / timing["min_s"]),
    }


def measure(config: configuration.Config, message_count: int, repeat: int = 5) -> dict:
    """Parse rate vs a split floor, and our sink vs kafka-python's bare producer (medians of `repeat` runs)."""
    lines = raw_lines()

    def parse_all() -> None:
        chat = ChatParser()
        for line in lines:
            chat.parse(line, received_at=1_704_557_990_000)

    def split_all() -> None:
        for line in lines:
            line.split(" ", 4)

    parse = rate(len(lines), timed(parse_all, repeat))
    split = rate(len(lines), timed(split_all, repeat))

    services.up(config)
    messages = list(Generator(SynthSettings(rate=message_count / 60, seconds=60, seed=3)))
    encoded = [(m.key, m.encode()) for m in messages]

    created: list[str] = []

    def new_topic() -> str:
        created.append(f"bench-ingest-{uuid.uuid4().hex[:8]}")
        ensure_topics(config, created[-1:])
        return created[-1]

    def through_sink() -> None:
        topic = new_topic()
        sink = ChatSink(config, topic=topic)
        for message in messages:
            sink.offer(message, block=True)
        sink.close(timeout_s=600)

    def bare_producer() -> None:
        topic = new_topic()
        producer = kafka_producer(config, linger_ms=50)
        for key, value in encoded:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=600)
        producer.close()

    try:
        sink = rate(len(messages), timed(through_sink, max(1, repeat - 2)))
        bare = rate(len(messages), timed(bare_producer, max(1, repeat - 2)))
    finally:
        drop_topics(config, created)  # the bench leaves no topics behind
    return {
        "parse_lines": len(lines),
        "parse": parse,
        "split_floor": split,
        "parse_vs_split": round(parse["median_per_s"] / split["median_per_s"], 3),
        "producer_messages": len(messages),
        "sink": sink,
        "bare_producer": bare,
        "sink_vs_bare_producer": round(sink["median_per_s"] / bare["median_per_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    logs.setup("WARNING")
    result = measure(configuration.load(), args.messages)
    out = PROJECT_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
