"""msgpack chat records through the real broker, and through Spark's Kafka source."""

from __future__ import annotations

import uuid

from services.schema import ensure_topics
from tests.test_records import chat
from twitchcrement.clients import kafka_consumer, kafka_producer
from twitchcrement.records import ChatMessage, decode_chat


def produce(config, topic: str, messages: list[ChatMessage]) -> None:
    producer = kafka_producer(config)
    try:
        for message in messages:
            producer.send(topic, key=message.key, value=message.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


def consume_all(config, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = kafka_consumer(
        config,
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def messages(n: int) -> list[ChatMessage]:
    channels = ["nymn", "xqcow", "admiralbulldog"]
    return [
        chat(
            channel=channels[i % 3],
            text=f"message {i} KEKW",
            sent_ts=1_704_557_984_398 + i,
            message_id=str(uuid.uuid4()),
        )
        for i in range(n)
    ]


def test_chat_records_through_the_broker_are_byte_identical(platform):
    topic = f"test-chat-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    sent = messages(300)
    produce(platform, topic, sent)
    received = consume_all(platform, topic, len(sent))
    assert sorted(r.value for r in received) == sorted(m.encode() for m in sent)
    assert all(r.key == decode_chat(r.value).channel.encode() for r in received)
    # keyed by channel: every channel's messages land in one partition, in order
    for channel in ("nymn", "xqcow", "admiralbulldog"):
        partitions = {r.partition for r in received if r.key == channel.encode()}
        assert len(partitions) == 1
        in_order = [decode_chat(r.value).sent_ts for r in received if r.key == channel.encode()]
        assert in_order == sorted(in_order)


def test_spark_batch_read_of_the_chat_topic(platform, spark):
    topic = f"test-chat-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic])
    sent = messages(50)
    produce(platform, topic, sent)
    frame = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", platform.kafka_bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    rows = frame.select("key", "value").collect()
    assert sorted(bytes(r.value) for r in rows) == sorted(m.encode() for m in sent)
    assert sorted(decode_chat(bytes(r.value)).message_id for r in rows) == sorted(m.message_id for m in sent)
    assert {bytes(r.key).decode() for r in rows} == {"nymn", "xqcow", "admiralbulldog"}
