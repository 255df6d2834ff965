"""Run the real streaming detector on a list of messages: produce them to a fresh topic, process everything
available (the same plan as production, trigger availableNow), and read back what reached Kafka."""

from __future__ import annotations

import uuid
from pathlib import Path

from ingest.sink import ChatSink
from jobs.sinks import BatchWriter
from jobs.spam_detector import start
from services.schema import ensure_topics
from tests.test_kafka_records import consume_all
from twitchcrement.config import Config
from twitchcrement.records import ChatMessage, SpamEvent, SpamTopic, decode_spam


def fresh_config(platform: Config) -> Config:
    suffix = uuid.uuid4().hex[:8]
    config = platform.with_overrides(kafka__chat_topic=f"test-chat-{suffix}", kafka__spam_topic=f"test-spam-{suffix}",
                                     kafka__deadletter_topic=f"test-dead-{suffix}",
                                     detector__starting_offsets="earliest")
    ensure_topics(config, [config["kafka.chat_topic"], config["kafka.spam_topic"], config["kafka.deadletter_topic"]])
    return config


def produce(config: Config, messages: list[ChatMessage], raw: list[bytes] = ()) -> None:
    sink = ChatSink(config)
    for message in messages:
        sink.offer(message, block=True)
    sink.close(timeout_s=600)
    if raw:
        from twitchcrement.clients import kafka_producer

        producer = kafka_producer(config)
        for value in raw:
            producer.send(config["kafka.chat_topic"], value)
        producer.flush(30)
        producer.close()


def flush_message(after_ts: int, seconds: int = 120) -> ChatMessage:
    """A message far later in event time: it moves the watermark past every window and topic before it."""
    return ChatMessage(channel=f"zz_flush_{uuid.uuid4().hex[:6]}", user_login="flush", text="flush",
                       sent_ts=after_ts + seconds * 1000)


def run(spark, config: Config, checkpoint: Path) -> BatchWriter:
    writer = BatchWriter(config)
    query = start(spark, config, available_now=True, checkpoint=str(checkpoint), writer=writer)
    query.awaitTermination(900)
    if query.exception():
        raise AssertionError(f"detector failed: {query.exception()}")
    return writer


def spam_records(config: Config, expected_at_least: int = 1) -> tuple[list[SpamEvent], list[SpamTopic]]:
    records = [decode_spam(r.value) for r in consume_all(config, config["kafka.spam_topic"], 10**9, timeout_s=8)]
    events = [r for r in records if isinstance(r, SpamEvent)]
    topics = [r for r in records if isinstance(r, SpamTopic)]
    return events, topics
