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
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from ingest.synth import Generator, SynthSettings
from twitchcrement import PROJECT_ROOT
from twitchcrement import config as configuration
from twitchcrement.clients import librdkafka_security
from twitchcrement.records import ChatMessage

POOL = 200_000  # distinct messages cycled through (generating them is slower than sending them)


def message_pool(rate: float, spam_share: float) -> tuple[list[ChatMessage], dict[str, str]]:
    """POOL labelled messages, offered round and round, and the wave each spam message belongs to."""
    generator = Generator(
        SynthSettings(
            rate=max(rate, 2000),
            seconds=POOL / max(rate, 2000),
            channels=40,
            seed=11,
            prefix="load",
            spam_share=spam_share,
        )
    )
    pool = list(itertools.islice(generator, POOL))
    return pool, {m: b.burst_id for b in generator.bursts for m in b.message_ids}


def offer(
    producer: Producer, topic: str, pool: list[ChatMessage], wave_of: dict[str, str], rate: float, seconds: float
) -> tuple[int, list[list[Any]]]:
    """The pool at `rate` for `seconds`, each message stamped now; the number offered, and the wave messages."""
    offered, waves = 0, []
    started = time.time()
    step = 0.01  # send in 10 ms slices: steady enough for 10 s windows, cheap enough at 200k msg/s
    while (elapsed := time.time() - started) < seconds:
        due = int(min(elapsed + step, seconds) * rate)
        now_ms = int(time.time() * 1000)
        while offered < due:
            message = pool[offered % POOL]
            message.sent_ts = now_ms
            try:
                producer.produce(topic, message.encode(), message.key)
            except BufferError:
                producer.poll(0.05)
                continue
            wave = wave_of.get(message.message_id)
            if wave:
                waves.append([f"{offered // POOL}:{wave}", message.channel, message.user_login, now_ms, message.text])
            offered += 1
        producer.poll(0)
        pause = started + (elapsed + step) - time.time()
        if pause > 0:
            time.sleep(pause)
    return offered, waves


def in_subprocess(topic: str, rate: int, seconds: float, spam_share: float = 0.2, waves: Path | None = None) -> Any:
    """Offer load from a process of its own (not to share the measuring process's CPU and GIL); its stats."""
    stats = Path(tempfile.mkstemp(prefix="bench-load-", suffix=".json")[1])
    command = ["--topic", topic, "--rate", str(rate), "--seconds", str(seconds), "--spam-share", str(spam_share)]
    command += ["--stats", str(stats), *(["--waves", str(waves)] if waves else [])]
    subprocess.run(
        [sys.executable, "-m", "bench.load", *command], cwd=PROJECT_ROOT, check=True, stdout=subprocess.DEVNULL
    )
    result = json.loads(stats.read_text())
    stats.unlink()
    return result


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
    pool, wave_of = message_pool(args.rate, args.spam_share)
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
    started = time.time()
    # Wave messages are kept only when asked for: at 50,000 msg/s they are a tenth of a million lists a second.
    offered, waves = offer(producer, args.topic, pool, wave_of if args.waves else {}, args.rate, args.seconds)
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
