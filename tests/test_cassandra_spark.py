"""A DataFrame written to Cassandra through spark-cassandra-connector and read back, and seen by the Python driver."""

from __future__ import annotations

import datetime as dt
import uuid

from pyspark.testing import assertDataFrameEqual

from twitchcrement.clients import cassandra_session

CONNECTOR = "org.apache.spark.sql.cassandra"


def test_dataframe_round_trip_through_the_connector(platform, spark):
    channel = f"test_{uuid.uuid4().hex[:10]}"
    day = dt.date(2024, 1, 6)
    start = dt.datetime(2024, 1, 6, 16, 20, 0)
    written = spark.createDataFrame(
        [
            (
                channel,
                day,
                start + dt.timedelta(seconds=10 * i),
                f"event-{i}",
                "crowd",
                f"KEKW {i}",
                f"hash{i}",
                5 + i,
                3 + i,
                [("patixxl", 2 + i), ("nymn", 1)],
            )
            for i in range(20)
        ],
        "channel string, day date, window_start timestamp, event_id string, kind string, text string, "
        "message_hash string, message_count int, distinct_users int, "
        "top_users array<struct<user:string,count:int>>",
    )
    table = {"keyspace": platform.cassandra.keyspace, "table": "spam_events_by_channel"}
    written.write.format(CONNECTOR).options(**table).mode("append").save()

    read = (
        spark.read.format(CONNECTOR)
        .options(**table)
        .load()
        .where(f"channel = '{channel}' AND day = DATE'2024-01-06'")
        .select(*written.columns)
    )
    assertDataFrameEqual(read.selectExpr(*[c for c in written.columns if c != "top_users"]), written.drop("top_users"))
    assert sorted(tuple(tuple(u) for u in r.top_users) for r in read.collect()) == sorted(
        tuple(tuple(u) for u in r.top_users) for r in written.collect()
    )

    # Writing the same rows again overwrites them: the table is keyed by deterministic ids.
    written.write.format(CONNECTOR).options(**table).mode("append").save()
    session = cassandra_session(platform)
    try:
        count = session.execute(
            session.prepare("SELECT count(*) FROM spam_events_by_channel WHERE channel = ? AND day = ?"), [channel, day]
        ).one()[0]
        newest = (
            session.execute(
                session.prepare("SELECT event_id FROM spam_events_by_channel WHERE channel = ? AND day = ? LIMIT 1"),
                [channel, day],
            )
            .one()
            .event_id
        )
    finally:
        session.cluster.shutdown()
    assert count == 20
    assert newest == "event-19"  # clustering order: newest window first


def test_the_session_has_one_shuffle_partition_per_core_unless_configured(platform, spark):
    from twitchcrement.spark import spark_settings

    assert "spark.sql.shuffle.partitions" not in spark_settings(platform)  # the default, 0
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(spark.sparkContext.defaultParallelism) == "2"
    configured = platform.with_overrides(spark__shuffle_partitions=6)
    assert spark_settings(configured)["spark.sql.shuffle.partitions"] == "6"
