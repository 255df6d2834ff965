"""Load generator of the benchmarks: synthetic chat offered to Kafka at a fixed rate, stamped with the time it is
sent, through librdkafka (confluent-kafka): kafka-python tops out near 13,000 msg/s here, below the rates tested.

    .venv/bin/python -m bench.load --topic T --rate 20000 --seconds 30 [--stats FILE]

The messages come from the labelled generator (copypastas, emote waves, floods, evasions) over 40 channels; each
is re-stamped and encoded as it is sent. Writes {offered, seconds, achieved_per_s} to --stats, and with --waves
every labelled wave message as it was sent (the truth of bench/first_report.py): JSON lines of
[wave, channel, user, sent ms, text], a wave being one burst of the generator in one pass through the pool.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from confluent_kafka import Producer

from ingest.synth import Generator, SynthSettings
from twitchcrement import config as configuration
from twitchcrement.clients import librdkafka_security

POOL = 200_000  # distinct messages cycled through (generating them is slower than sending them)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="messages per second offered")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--spam-share", type=float, default=0.2, help="share of labelled spam in the chat")
    parser.add_argument("--stats")
    parser.add_argument("--waves", help="write the labelled wave messages offered here (JSON lines)")
    args = parser.parse_args(argv)
    config = configuration.load()
    pool = []
    generator = Generator(
        SynthSettings(
            rate=max(args.rate, 2000),
            seconds=POOL / max(args.rate, 2000),
            channels=40,
            seed=11,
            prefix="load",
            spam_share=args.spam_share,
        )
    )
    for message in generator:
        pool.append(message)
        if len(pool) == POOL:
            break
    wave_of = {m: b.burst_id for b in generator.bursts for m in b.message_ids}
    waves: list[list] = []
    producer = Producer(
        {
            "bootstrap.servers": config.kafka_bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "compression.type": "none",
            "acks": "1",
            **librdkafka_security(config),
        }
    )
    offered = 0
    started = time.time()
    step = 0.01  # send in 10 ms slices: steady enough for 10 s windows, cheap enough at 200k msg/s
    while True:
        now = time.time()
        elapsed = now - started
        if elapsed >= args.seconds:
            break
        due = int(min(elapsed + step, args.seconds) * args.rate)
        now_ms = int(now * 1000)
        while offered < due:
            message = pool[offered % POOL]
            message.sent_ts = now_ms
            try:
                producer.produce(args.topic, message.encode(), message.key)
            except BufferError:
                producer.poll(0.05)
                continue
            wave = wave_of.get(message.message_id)
            if args.waves and wave:
                waves.append([f"{offered // POOL}:{wave}", message.channel, message.user_login, now_ms, message.text])
            offered += 1
        producer.poll(0)
        pause = started + (elapsed + step) - time.time()
        if pause > 0:
            time.sleep(pause)
    producer.flush(120)
    seconds = time.time() - started
    result = {"offered": offered, "seconds": round(seconds, 2), "achieved_per_s": round(offered / seconds)}
    if args.stats:
        with open(args.stats, "w") as handle:
            json.dump(result, handle)
    if args.waves:
        with open(args.waves, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(w, ensure_ascii=False) + "\n" for w in waves)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
