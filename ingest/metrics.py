"""The ingest's Prometheus metrics: the counts its sink and reader keep anyway, read when Prometheus scrapes (no work
per message beyond what they do already), and the Kafka delivery latency the sink observes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from twitchcrement.clients import kafka_problem
from twitchcrement.config import Config
from twitchcrement.metrics import Check, Endpoint

if TYPE_CHECKING:
    from ingest.sink import ChatSink
    from ingest.twitch import TwitchReader

PREFIX = "twitchcrement_ingest"
# From a record handed to the producer to Kafka's acknowledgement: milliseconds normally, seconds in an outage.
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)


def delivery_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        f"{PREFIX}_kafka_delivery_seconds",
        "Seconds from a chat record sent to Kafka to its acknowledgement.",
        buckets=DELIVERY_BUCKETS,
        registry=registry,
    )


class IngestCollector(Collector):
    """Read at scrape time: the sink's counts, the buffer's fill, and (reading Twitch) the reader's per-connection
    counts, reconnects, JOINs and bad lines by kind; for a replay, the problems of the files read so far."""

    def __init__(
        self, sink: ChatSink, reader: TwitchReader | None = None, problems: Callable[[], dict[str, int]] | None = None
    ):
        self.sink, self.reader, self.problems = sink, reader, problems

    def collect(self) -> Iterator[Any]:
        stats = self.sink.stats
        for name, value, what in (
            ("messages_offered", stats.offered, "Chat messages handed to the sink (after the opt-out)."),
            ("messages_produced", stats.produced, "Chat messages Kafka acknowledged."),
            ("messages_dropped", stats.dropped, "Chat messages dropped: the buffer was full, or left at shutdown."),
            ("messages_opted_out", stats.opted_out, "Chat messages of opted-out channels or users, never produced."),
            ("messages_resent", stats.resent, "Chat messages Kafka did not take at first, sent again."),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", what, value=value)
        yield GaugeMetricFamily(
            f"{PREFIX}_buffer_records",
            "Chat messages held: queued or sent and not yet acknowledged.",
            value=self.sink.pending,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_buffer_capacity_records", "The buffer's bound (ingest.buffer_records).", value=self.sink.bound
        )
        yield from self._emote_sets()
        bad = CounterMetricFamily(f"{PREFIX}_bad_lines", "Lines that were not chat messages, by kind.", labels=["kind"])
        kinds = dict(self.reader.parser.errors) if self.reader is not None else {}
        if self.problems is not None:
            kinds.update(self.problems())
        for kind, count in sorted(kinds.items()):
            bad.add_metric([kind], count)
        yield bad
        if self.reader is None:
            return
        read = CounterMetricFamily(
            f"{PREFIX}_messages_read",
            "Chat messages read from Twitch IRC, per connection (channel shard).",
            labels=["shard"],
        )
        channels = GaugeMetricFamily(f"{PREFIX}_channels_joined", "Channels joined, per connection.", labels=["shard"])
        for shard in list(self.reader.shards):
            read.add_metric([str(shard.number)], shard.messages)
            channels.add_metric([str(shard.number)], len(shard.joined))
        yield read
        yield channels
        yield CounterMetricFamily(f"{PREFIX}_reconnects", "IRC reconnections.", value=self.reader.reconnects)
        yield CounterMetricFamily(f"{PREFIX}_joins_sent", "IRC JOINs sent.", value=self.reader.joins_sent)

    def _emote_sets(self) -> Iterator[Any]:
        if self.sink.emote_sets is None:
            return
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "sets": GaugeMetricFamily(
                f"{PREFIX}_emote_sets", "BTTV, FFZ and 7TV emote sets held (global and channels').", labels=["provider"]
            ),
            "emotes": GaugeMetricFamily(f"{PREFIX}_emotes", "Emotes in the sets held.", labels=["provider"]),
            "last_refresh": GaugeMetricFamily(
                f"{PREFIX}_emote_sets_refreshed_timestamp_seconds",
                "When the newest of the provider's sets was fetched (Unix seconds, also from the cache; 0: none).",
                labels=["provider"],
            ),
            "failures": CounterMetricFamily(
                f"{PREFIX}_emote_set_fetch_failures",
                "Emote set fetches that failed (the sets held stay in use).",
                labels=["provider"],
            ),
        }
        for provider, values in sorted(self.sink.emote_sets.summary().items()):
            for name, family in families.items():
                family.add_metric([provider], values[name])
        yield from families.values()


def serve(
    config: Config,
    sink: ChatSink,
    registry: CollectorRegistry,
    reader: TwitchReader | None = None,
    problems: Callable[[], dict[str, int]] | None = None,
) -> Endpoint:
    """The ingest's /metrics, /healthz and /readyz (ready: the sink's producer reaches a Kafka broker)."""
    registry.register(IngestCollector(sink, reader, problems))

    checks: dict[str, Check] = {"kafka": lambda: kafka_problem(config, sink.topic)}
    return Endpoint("ingest", config.ingest.metrics_port, registry, checks).start()
