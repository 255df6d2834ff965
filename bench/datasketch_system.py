"""The "datasketch" system of the benchmarks: what a user might write instead of the Spark job. One Python process
consumes chatmessage, keeps a datasketch MinHashLSH per channel-window, and when a window closes (event time past
its end plus the watermark) clusters its texts and sends spam events to a Kafka topic (msgpack, like the detector).

It uses the same normalisation, shingles, thresholds and windows as the detector, so quality compares like with
like; the difference is the engine (datasketch's pure-Python MinHash, one process, one core).

    .venv/bin/python -m bench.datasketch_system --chat-topic T --spam-topic S [--drain] [--seconds N]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from dataclasses import dataclass, field

import msgpack
from datasketch import MinHash, MinHashLSH

from jobs.detection import Settings, UnionFind
from twitchcrement import config as configuration
from twitchcrement.clients import kafka_consumer, kafka_producer
from twitchcrement.records import RecordError, decode_chat
from twitchcrement.textsim import normalise, shingles

NUM_PERM = 32


@dataclass
class WindowTexts:
    counts: collections.Counter = field(default_factory=collections.Counter)
    last_ts: dict[str, int] = field(default_factory=dict)
    users: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    originals: dict[str, str] = field(default_factory=dict)


class DatasketchDetector:
    def __init__(self, settings: Settings, watermark_ms: int = 3000):
        self.settings = settings
        self.watermark_ms = watermark_ms
        self.windows: dict[tuple[str, int], WindowTexts] = {}
        self.partition_ts: dict[int, int] = {}  # newest event time per Kafka partition

    def assign(self, partitions: list[int]) -> None:
        self.partition_ts = {p: self.partition_ts.get(p, 0) for p in partitions}

    @property
    def watermark(self) -> int:
        # The slowest partition's newest event time (0 until it has data): a partition read ahead, or read first,
        # must not make the others late.
        return min(self.partition_ts.values(), default=0) - self.watermark_ms

    def add(self, partition: int, channel: str, user: str, text: str, ts: int) -> None:
        start = ts - ts % self.settings.window_ms
        if start + self.settings.window_ms <= self.watermark:
            return  # late
        window = self.windows.setdefault((channel, start), WindowTexts())
        norm = normalise(text)
        window.counts[norm] += 1
        window.users[norm][user] += 1
        window.originals.setdefault(norm, text)
        window.last_ts[norm] = max(window.last_ts.get(norm, 0), ts)
        self.partition_ts[partition] = max(self.partition_ts.get(partition, 0), ts)

    def close(self, everything: bool = False) -> list[dict]:
        limit = self.watermark
        done = [k for k in self.windows if everything or k[1] + self.settings.window_ms <= limit]
        events = []
        for key in done:
            events += self._cluster(key, self.windows.pop(key))
        return events

    def _cluster(self, key: tuple[str, int], window: WindowTexts) -> list[dict]:
        s = self.settings
        norms = list(window.counts)
        lsh = MinHashLSH(threshold=s.jaccard, num_perm=NUM_PERM)
        hashes: dict[int, MinHash] = {}
        found = UnionFind(len(norms))
        for i, norm in enumerate(norms):
            grams = shingles(norm)
            if len(grams) < s.min_shingles:
                continue  # exact duplicates still count below
            m = MinHash(num_perm=NUM_PERM)
            m.update_batch([g.encode("utf-8") for g in grams])
            for j in lsh.query(m):
                found.union(i, j)
            lsh.insert(i, m)
            hashes[i] = m
        clusters: dict[int, list[int]] = collections.defaultdict(list)
        for i in range(len(norms)):
            clusters[found.find(i)].append(i)
        events = []
        for members in clusters.values():
            count = sum(window.counts[norms[i]] for i in members)
            users: collections.Counter = collections.Counter()
            for i in members:
                users.update(window.users[norms[i]])
            crowd = count >= s.min_messages and len(users) >= s.min_users
            flood = users.most_common(1)[0][1] >= s.flood_min_messages and len(users) < s.min_users
            if crowd or flood:
                lead = max(members, key=lambda i: (window.counts[norms[i]], norms[i]))
                ranked = sorted(members, key=lambda i: (-window.counts[norms[i]], norms[i]))[:5]
                events.append(
                    {
                        "channel": key[0],
                        "window_start": key[1],
                        "window_end": key[1] + s.window_ms,
                        "text": window.originals[norms[lead]],
                        "message_count": count,
                        # the first spelling of its five most frequent texts, as the detector's top variants
                        "top_variants": [[window.originals[norms[i]], window.counts[norms[i]]] for i in ranked],
                        "distinct_users": len(users),
                        "last_ts": max(window.last_ts[norms[i]] for i in members),
                    }
                )
        return events


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.datasketch_system",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--chat-topic", required=True)
    parser.add_argument("--spam-topic", required=True)
    parser.add_argument("--drain", action="store_true", help="read the topic from the start to its end, then stop")
    parser.add_argument("--seconds", type=float, default=0, help="live mode: stop after this long (0: never)")
    parser.add_argument("--stats", help="write {messages, seconds} here as JSON when done")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = configuration.load()
    detector = DatasketchDetector(Settings())
    consumer = kafka_consumer(
        config,
        args.chat_topic,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.drain else "latest",
        max_poll_records=5000,
    )
    producer = kafka_producer(config)
    from kafka import TopicPartition

    partitions = sorted(consumer.partitions_for_topic(args.chat_topic) or [])
    detector.assign(partitions)
    end = consumer.end_offsets([TopicPartition(args.chat_topic, p) for p in partitions]) if args.drain else None
    started = last_stats = time.perf_counter()
    messages = bad = 0

    def write_stats() -> None:
        if args.stats:  # rewritten every second: the harness reads progress from it
            with open(args.stats + ".tmp", "w") as handle:
                json.dump({"messages": messages, "bad": bad, "seconds": time.perf_counter() - started}, handle)
            os.replace(args.stats + ".tmp", args.stats)

    first = True
    while True:
        batches = consumer.poll(timeout_ms=200)
        for partition, records in batches.items():
            for record in records:
                try:
                    chat = decode_chat(record.value)
                except RecordError:
                    bad += 1
                    continue
                detector.add(partition.partition, chat.channel, chat.user_login, chat.text, chat.sent_ts)
                messages += 1
        for event in detector.close():
            producer.send(args.spam_topic, msgpack.packb(event), key=event["channel"].encode())
        if first or time.perf_counter() - last_stats >= 1.0:  # the first stats say "positioned, reading"
            first = False
            write_stats()
            last_stats = time.perf_counter()
        if end is not None and all(consumer.position(p) >= o for p, o in end.items()):
            break
        if args.seconds and time.perf_counter() - started > args.seconds:
            break
    for event in detector.close(everything=args.drain):
        producer.send(args.spam_topic, msgpack.packb(event), key=event["channel"].encode())
    producer.flush(60)
    write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main())
