"""The settings as typed sections, so that code reads `config.detector.window_s` and mypy knows its type (and a
misspelt name). Each field is a setting of twitchcrement/settings.py, where its default, meaning and check are
declared; tests/test_config.py holds the two to the same names and types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Secret:
    """A password or key held by the config: shown as *** by str() and repr(), so a logged or printed config, or
    an error that quotes a value, does not carry it. reveal() is for the one place that hands it to a client."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret(***)" if self._value else "Secret('')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:  # pickled into Spark closures like any other config value
        return (Secret, (self._value,))


@dataclass(frozen=True)
class KafkaSection:
    bootstrap_servers: str | None
    chat_topic: str
    spam_topic: str
    deadletter_topic: str
    partitions: int
    replication_factor: int
    connect_timeout_s: float
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: Secret
    sasl_password_file: str
    ssl_cafile: str
    ssl_certfile: str
    ssl_keyfile: str
    ssl_key_password: Secret
    ssl_key_password_file: str
    ssl_check_hostname: bool


@dataclass(frozen=True)
class CassandraSection:
    hosts: str | None
    port: int | None
    keyspace: str
    replication_strategy: str
    replication_factor: int
    datacenters: dict[str, str]
    local_datacenter: str
    connect_timeout_s: float
    username: str
    password: Secret
    password_file: str
    ssl: bool
    ssl_cafile: str
    ssl_check_hostname: bool


@dataclass(frozen=True)
class LocalSection:
    data_dir: str
    kafka_port: int
    kafka_controller_port: int
    kafka_heap: str
    cassandra_port: int
    cassandra_storage_port: int
    cassandra_jmx_port: int
    cassandra_heap: str
    start_timeout_s: float


@dataclass(frozen=True)
class SparkSection:
    master: str
    app_name: str
    shuffle_partitions: int
    driver_memory: str
    checkpoint_dir: str
    conf: dict[str, str]


@dataclass(frozen=True)
class IngestSection:
    optout_channels: list[str]
    optout_users: list[str]
    buffer_records: int
    progress_every_s: float
    irc_host: str
    irc_port: int
    irc_tls: bool
    channels_file: str
    top_channels: int
    channels_refresh_s: float
    channels_topic: str
    helix_url: str
    channels_per_connection: int
    joins_per_10s: int
    join_window_s: float
    silence_timeout_s: float
    replay_speed: str
    synth_rate: float
    synth_channels: int
    synth_spam_share: float
    synth_seed: int
    metrics_port: int


@dataclass(frozen=True)
class DetectorSection:
    window_s: int
    watermark_s: float
    channel_lag_s: float
    trigger_s: float
    outage_limit_s: float
    starting_offsets: str
    max_offsets_per_trigger: int
    jaccard: float
    num_hash_tables: int
    rows_per_band: int
    num_features: int
    seed: int
    shingle_size: int
    min_shingles: int
    min_messages: int
    min_users: int
    flood_min_messages: int
    min_share: float
    open_events: bool
    topic_quiet_s: float
    metrics_port: int


@dataclass(frozen=True)
class DashboardSection:
    host: str
    port: int
    refresh_s: float
    chat_per_channel: int
    spam_per_channel: int
    max_channels: int
    history_s: int
    backfill_s: int
    search_max_chars: int
    page_size: int
    metrics_port: int


@dataclass(frozen=True)
class AlertsSection:
    webhooks: list[str]
    min_messages: int
    min_users: int
    min_rate: float
    campaign_channels: int
    channels: list[str]
    max_per_minute: int


@dataclass(frozen=True)
class EmotesSection:
    providers: list[str]
    bttv_url: str
    ffz_url: str
    seventv_url: str
    images_url: str
    refresh_s: float
    timeout_s: float
    cache_dir: str


@dataclass(frozen=True)
class LoggingSection:
    level: str
    format: str


# The section name in keys and in the config file ([kafka], ...) -> its type.
SECTIONS: dict[str, type] = {
    "kafka": KafkaSection,
    "cassandra": CassandraSection,
    "local": LocalSection,
    "spark": SparkSection,
    "ingest": IngestSection,
    "detector": DetectorSection,
    "dashboard": DashboardSection,
    "alerts": AlertsSection,
    "emotes": EmotesSection,
    "logging": LoggingSection,
}
