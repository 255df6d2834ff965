"""Configuration: one TOML file in conf/, then environment overrides, then the original system's aliases.

Every setting is declared once in SETTINGS (name, type, default, meaning); the README's configuration reference
is generated from it. A wrong value fails at load time with an error naming the key.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twitchcrement import PROJECT_ROOT
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = PROJECT_ROOT / "conf" / "twitchcrement.toml"
ENV_PREFIX = "TWITCHCREMENT_"
CONFIG_FILE_ENV = "TWITCHCREMENT_CONFIG"


class ConfigError(UserError, ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key and where it came from."""


@dataclass(frozen=True)
class Setting:
    key: str  # "section.name"
    kind: str  # str | int | float | bool | list | table | hosts | port
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None  # returns a complaint, or None when the value is fine
    # A secret is read from its environment variable or from the file its `<key>_file` setting names, never from
    # the config file; Config holds it as a Secret, which prints as *** wherever the config is shown or logged.
    secret: bool = False

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.key.replace(".", "_").upper()


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _metrics_port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 1 to 65535, or 0 for no endpoint"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CQL_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_SIZE_RE = re.compile(r"^\d+[kmgKMG]$")


def _topic(value: str) -> str | None:
    return None if _TOPIC_RE.match(value) else "must be a Kafka topic name (letters, digits, '.', '_', '-')"


def _cql_name(value: str) -> str | None:
    return None if _CQL_NAME_RE.match(value) else "must be a lower-case CQL name (letters, digits, '_')"


def _jvm_size(value: str) -> str | None:
    return None if _SIZE_RE.match(value) else "must be a JVM memory size such as 512m or 2g"


def _speed(value: str) -> str | None:
    if value == "max":
        return None
    try:
        return None if float(value) > 0 else "must be greater than 0, or max"
    except ValueError:
        return "must be a number greater than 0, or max"


_DATACENTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _replication(value: dict[str, str]) -> str | None:
    names = [dc for dc in value if not _DATACENTER_RE.match(dc)]
    if names:
        return f"data centre names are letters, digits, '_', '.', '-' (not {', '.join(map(repr, names))})"
    wrong = [f"{dc} = {factor}" for dc, factor in value.items() if not (factor.isdigit() and int(factor) > 0)]
    return f"each data centre needs a whole replication factor above 0 (not {', '.join(wrong)})" if wrong else None


def _spark_conf(value: dict[str, str]) -> str | None:
    wrong = [k for k in value if not k.startswith("spark.")]
    return f"keys must start with 'spark.' (not {', '.join(wrong)})" if wrong else None


SETTINGS: list[Setting] = [
    # Kafka
    Setting(
        "kafka.bootstrap_servers",
        "hosts",
        None,
        "Kafka bootstrap servers, host:port[,host:port]. Unset: the local broker that `make services-up` runs.",
    ),
    Setting("kafka.chat_topic", "str", "chatmessage", "Topic of chat records (msgpack, key = channel).", _topic),
    Setting("kafka.spam_topic", "str", "spammessage", "Topic of spam events and topic updates.", _topic),
    Setting(
        "kafka.deadletter_topic",
        "str",
        "chatmessage-deadletter",
        "Topic where records that cannot be decoded go, with the reason.",
        _topic,
    ),
    Setting("kafka.partitions", "int", 4, "Partitions of each topic the platform creates.", _positive),
    Setting("kafka.replication_factor", "int", 1, "Replication factor of the topics the platform creates.", _positive),
    Setting("kafka.connect_timeout_s", "float", 15.0, "How long to wait for a broker before giving up.", _positive),
    Setting(
        "kafka.security_protocol",
        "str",
        "PLAINTEXT",
        "How every Kafka client of the platform talks to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        _one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    ),
    Setting(
        "kafka.sasl_mechanism",
        "str",
        "SCRAM-SHA-512",
        "SASL mechanism of the SASL_* protocols: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
        _one_of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    ),
    Setting("kafka.sasl_username", "str", "", "SASL user name (needed by the SASL_* protocols)."),
    Setting(
        "kafka.sasl_password",
        "str",
        "",
        "SASL password: environment only (or kafka.sasl_password_file), never in the config file.",
        secret=True,
    ),
    Setting("kafka.sasl_password_file", "str", "", "A file holding the SASL password (its first line)."),
    Setting(
        "kafka.ssl_cafile",
        "str",
        "",
        "PEM file of the CA certificates that sign the brokers' certificates (SSL, SASL_SSL); empty: the system's.",
    ),
    Setting(
        "kafka.ssl_certfile", "str", "", "PEM client certificate, for brokers that ask for one (with ssl_keyfile)."
    ),
    Setting("kafka.ssl_keyfile", "str", "", "PEM (PKCS#8) private key of kafka.ssl_certfile."),
    Setting(
        "kafka.ssl_key_password",
        "str",
        "",
        "Password of an encrypted kafka.ssl_keyfile: environment only (or kafka.ssl_key_password_file).",
        secret=True,
    ),
    Setting("kafka.ssl_key_password_file", "str", "", "A file holding the password of kafka.ssl_keyfile."),
    Setting(
        "kafka.ssl_check_hostname",
        "bool",
        True,
        "Check that each broker's certificate names the host connected to.",
    ),
    # Cassandra
    Setting(
        "cassandra.hosts",
        "hosts",
        None,
        "Cassandra contact points, host[,host]. Unset: the local node that `make services-up` runs.",
    ),
    Setting("cassandra.port", "port", None, "CQL native port of cassandra.hosts (default 9042 for external hosts)."),
    Setting("cassandra.keyspace", "str", "twitchcrement", "Keyspace of the platform's tables.", _cql_name),
    Setting(
        "cassandra.replication_strategy",
        "str",
        "SimpleStrategy",
        "Replication of the keyspace `services init` creates: SimpleStrategy (cassandra.replication_factor "
        "copies) or NetworkTopologyStrategy (cassandra.datacenters).",
        _one_of("SimpleStrategy", "NetworkTopologyStrategy"),
    ),
    Setting("cassandra.replication_factor", "int", 1, "SimpleStrategy replication factor of the keyspace.", _positive),
    Setting(
        "cassandra.datacenters",
        "table",
        {},
        'NetworkTopologyStrategy copies per data centre, as dc = factor (environment: "dc1=3,dc2=2").',
        _replication,
    ),
    Setting("cassandra.local_datacenter", "str", "datacenter1", "Data centre the drivers treat as local."),
    Setting("cassandra.connect_timeout_s", "float", 15.0, "How long to wait for a node before giving up.", _positive),
    Setting("cassandra.username", "str", "", "User name for PasswordAuthenticator (empty: no authentication)."),
    Setting(
        "cassandra.password",
        "str",
        "",
        "Password of cassandra.username: environment only (or cassandra.password_file), never in the config file.",
        secret=True,
    ),
    Setting("cassandra.password_file", "str", "", "A file holding the password of cassandra.username."),
    Setting("cassandra.ssl", "bool", False, "Talk to Cassandra over TLS (client_encryption_options)."),
    Setting(
        "cassandra.ssl_cafile",
        "str",
        "",
        "PEM file of the CA certificates that sign the nodes' certificates; empty: the system's.",
    ),
    Setting(
        "cassandra.ssl_check_hostname",
        "bool",
        True,
        "Check that each node's certificate names the host connected to (the Python driver; the Spark connector "
        "checks the CA only).",
    ),
    # Embedded services for the demo and the tests
    Setting(
        "local.data_dir",
        "str",
        "var/local",
        "Where the local Kafka and Cassandra keep data and logs (relative to the project).",
    ),
    Setting("local.kafka_port", "port", 9092, "Client port of the local Kafka broker."),
    Setting("local.kafka_controller_port", "port", 9093, "KRaft controller port of the local Kafka broker."),
    Setting("local.kafka_heap", "str", "512m", "Heap of the local Kafka broker.", _jvm_size),
    Setting("local.cassandra_port", "port", 9042, "CQL port of the local Cassandra node."),
    Setting("local.cassandra_storage_port", "port", 7000, "Inter-node port of the local Cassandra node."),
    Setting("local.cassandra_jmx_port", "port", 7199, "JMX port (loopback only) of the local Cassandra node."),
    Setting("local.cassandra_heap", "str", "1g", "Heap of the local Cassandra node.", _jvm_size),
    Setting("local.start_timeout_s", "float", 180.0, "How long a local service may take to become ready.", _positive),
    # Spark
    Setting("spark.master", "str", "local[*]", "Spark master URL (local[*], spark://host:7077, yarn, k8s://...)."),
    Setting("spark.app_name", "str", "twitchcrement", "Spark application name."),
    Setting(
        "spark.shuffle_partitions",
        "int",
        0,
        "spark.sql.shuffle.partitions; 0: one per core Spark has. More partitions than cores slow every "
        "micro-batch (docs/operations.md); Spark's own default 200 made a job 18x slower.",
        _non_negative,
    ),
    Setting("spark.driver_memory", "str", "2g", "Driver heap (local mode: the whole job).", _jvm_size),
    Setting(
        "spark.checkpoint_dir",
        "str",
        "var/checkpoints",
        "Where streaming queries keep their checkpoints (relative to the project, or a URL).",
    ),
    Setting("spark.conf", "table", {}, 'Any other Spark settings, as "spark.x.y" = "value".', _spark_conf),
    # Ingest
    Setting(
        "ingest.optout_channels",
        "list",
        [],
        "Channels whose chat is never produced (privacy opt-out), honoured before anything reaches Kafka.",
    ),
    Setting("ingest.optout_users", "list", [], "User logins whose messages are never produced (privacy opt-out)."),
    Setting(
        "ingest.buffer_records",
        "int",
        100_000,
        "How many chat records ingest holds while Kafka is unreachable; beyond that it drops and counts.",
        _positive,
    ),
    Setting(
        "ingest.progress_every_s", "float", 10.0, "Seconds between ingest's progress and rate log lines.", _positive
    ),
    Setting("ingest.irc_host", "str", "irc.chat.twitch.tv", "Twitch IRC server of `python -m ingest twitch`."),
    Setting("ingest.irc_port", "port", 6697, "Its port (6697: TLS, 6667: plain)."),
    Setting("ingest.irc_tls", "bool", True, "Connect to IRC with TLS."),
    Setting(
        "ingest.channels_file",
        "str",
        "",
        "Channels to read, one name a line, used when no Helix credentials are set (relative to the project).",
    ),
    Setting("ingest.top_channels", "int", 500, "How many of the top live channels to read.", _positive),
    Setting("ingest.channels_refresh_s", "float", 3600.0, "Seconds between refreshes of the channel list.", _positive),
    Setting(
        "ingest.channels_topic",
        "str",
        "channellist",
        "Compacted topic where the current channel list is published for the reader and the dashboard.",
        _topic,
    ),
    Setting("ingest.helix_url", "str", "https://api.twitch.tv/helix", "Base URL of the Twitch Helix API."),
    Setting("ingest.channels_per_connection", "int", 90, "Most channels joined on one IRC connection.", _positive),
    Setting("ingest.joins_per_10s", "int", 20, "JOINs sent per join window across the whole process.", _positive),
    Setting(
        "ingest.join_window_s", "float", 10.0, "The window of ingest.joins_per_10s, in seconds (Twitch: 10).", _positive
    ),
    Setting(
        "ingest.silence_timeout_s",
        "float",
        300.0,
        "An IRC connection that receives nothing (not even PING) this long is treated as dead.",
        _positive,
    ),
    Setting("ingest.replay_speed", "str", "1", 'Replay speed factor (1, 10, ...) or "max".', _speed),
    Setting("ingest.synth_rate", "float", 1000.0, "Synthetic chat: messages per second, all channels.", _positive),
    Setting("ingest.synth_channels", "int", 40, "Synthetic chat: number of channels.", _positive),
    Setting(
        "ingest.synth_spam_share",
        "float",
        0.2,
        "Synthetic chat: share of messages in spam bursts.",
        lambda v: None if 0 <= v < 1 else "must be from 0 up to (not including) 1",
    ),
    Setting("ingest.synth_seed", "int", 7, "Synthetic chat: random seed (same seed, same chat)."),
    Setting(
        "ingest.metrics_port",
        "int",
        9461,
        "Loopback port of the ingest's /metrics (Prometheus), /healthz and /readyz; 0: none.",
        _metrics_port,
    ),
    # Detector
    Setting("detector.window_s", "int", 10, "Length of the tumbling event-time windows, in seconds.", _positive),
    Setting(
        "detector.watermark_s",
        "float",
        3.0,
        "How late (event time, behind its channel's newest message) a message may arrive and still count in "
        "its window.",
        _non_negative,
    ),
    Setting(
        "detector.channel_lag_s",
        "float",
        15.0,
        "How long a channel may be silent before its open windows close anyway: nothing from it for this long "
        "(processing time), its Kafka partition read to the end, and the rest of the stream this far ahead in "
        "event time. A channel whose partition is behind, or whose chat is delayed with everyone's, stays open.",
        _non_negative,
    ),
    Setting("detector.trigger_s", "float", 1.0, "Micro-batch interval of the streaming job, in seconds.", _positive),
    Setting(
        "detector.starting_offsets",
        "str",
        "latest",
        "Where a new job (no checkpoint yet) starts reading chatmessage: latest or earliest.",
        _one_of("latest", "earliest"),
    ),
    Setting(
        "detector.max_offsets_per_trigger",
        "int",
        500_000,
        "Most chat records one micro-batch reads (bounds a batch after downtime).",
        _positive,
    ),
    Setting(
        "detector.jaccard",
        "float",
        0.6,
        "Shingle Jaccard similarity at which two texts are the same spam.",
        lambda v: None if 0 < v <= 1 else "must be greater than 0 and at most 1",
    ),
    Setting("detector.num_hash_tables", "int", 32, "MinHashLSH hash tables (MinHash values per text).", _positive),
    Setting(
        "detector.rows_per_band",
        "int",
        3,
        "MinHash values ANDed into one LSH band (32 tables, 3 rows: 10 bands).",
        _positive,
    ),
    Setting("detector.num_features", "int", 1 << 20, "HashingTF feature space for shingles.", _positive),
    Setting("detector.seed", "int", 20240106, "MinHashLSH seed (the dashboard's fuzzy search must use the same)."),
    Setting(
        "detector.shingle_size",
        "int",
        3,
        "Character n-gram length of the shingles (beside the tokens) that MinHash and Jaccard compare.",
        _positive,
    ),
    Setting(
        "detector.min_shingles",
        "int",
        5,
        "Texts with fewer shingles skip LSH (exact duplicates still count).",
        _positive,
    ),
    Setting("detector.min_messages", "int", 5, "Messages a cluster needs in one window to be spam.", _positive),
    Setting("detector.min_users", "int", 3, "Distinct users a cluster needs to be crowd spam.", _positive),
    Setting(
        "detector.flood_min_messages",
        "int",
        5,
        "Messages one user needs in one window, on one text, to be a flood.",
        _positive,
    ),
    Setting(
        "detector.min_share",
        "float",
        0.0,
        "Share of its channel-window's messages a cluster also needs (0 = off).",
        lambda v: None if 0 <= v < 1 else "must be from 0 up to (not including) 1",
    ),
    Setting(
        "detector.open_events",
        "bool",
        True,
        "Report a wave while its window is still open (records in state open, sent again as it grows, then closed); "
        "false: only when its window closes.",
    ),
    Setting("detector.topic_quiet_s", "float", 30.0, "A spam topic ends after this long without spam.", _positive),
    Setting(
        "detector.metrics_port",
        "int",
        9462,
        "Loopback port of the detector's /metrics (Prometheus), /healthz and /readyz; 0: none.",
        _metrics_port,
    ),
    # Dashboard
    Setting(
        "dashboard.host",
        "str",
        "127.0.0.1",
        "Address the dashboard binds (anything but loopback: set DASHBOARD_USER and DASHBOARD_PASSWORD).",
    ),
    Setting("dashboard.port", "port", 8050, "Port of the dashboard."),
    Setting("dashboard.refresh_s", "float", 1.0, "Seconds between refreshes of the live views.", _positive),
    Setting("dashboard.chat_per_channel", "int", 200, "Recent chat messages kept in memory per channel.", _positive),
    Setting("dashboard.spam_per_channel", "int", 100, "Recent spam events kept in memory per channel.", _positive),
    Setting(
        "dashboard.max_channels",
        "int",
        2000,
        "Channels kept in memory (the least recently active are forgotten first).",
        _positive,
    ),
    Setting("dashboard.history_s", "int", 900, "Seconds of rates and spam volume kept for the charts.", _positive),
    Setting(
        "dashboard.backfill_s",
        "int",
        300,
        "On start, read this many seconds of Kafka history so the live views are not empty.",
        _non_negative,
    ),
    Setting("dashboard.search_max_chars", "int", 500, "Longest text the history search accepts.", _positive),
    Setting("dashboard.page_size", "int", 20, "Rows per page of search results.", _positive),
    Setting(
        "dashboard.metrics_port",
        "int",
        9463,
        "Loopback port of the dashboard's /metrics (Prometheus), /healthz and /readyz; 0: none.",
        _metrics_port,
    ),
    # Alerts (jobs/alerts.py): the detector POSTs to these webhooks when a spam wave starts
    Setting(
        "alerts.webhooks",
        "list",
        [],
        "Webhooks to alert, each KIND:URL with KIND discord, slack or json (the URL holds a secret: prefer the "
        "environment variable to the config file).",
    ),
    Setting(
        "alerts.min_messages",
        "int",
        200,
        "Alert when a spam topic reaches this many messages (0: never).",
        _non_negative,
    ),
    Setting(
        "alerts.min_users",
        "int",
        20,
        "Alert when a spam topic has this many users in one window (0: never).",
        _non_negative,
    ),
    Setting(
        "alerts.min_rate",
        "float",
        10.0,
        "Alert when a spam topic peaks at this many messages/s (0: never).",
        _non_negative,
    ),
    Setting(
        "alerts.campaign_channels",
        "int",
        3,
        "Alert when one spam text is active in this many channels at once (0: never).",
        _non_negative,
    ),
    Setting("alerts.channels", "list", [], "Only these channels' topics alert (empty: every channel)."),
    Setting("alerts.max_per_minute", "int", 30, "At most this many alerts a minute per webhook.", _positive),
    # Logging
    Setting(
        "logging.level",
        "str",
        "INFO",
        "Level of the platform's own loggers.",
        _one_of("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Setting("logging.format", "str", "logfmt", "logfmt (key=value lines) or json.", _one_of("logfmt", "json")),
]

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}

# The original system's variable names; aliases win over the file and over TWITCHCREMENT_* variables.
ALIASES = {
    "KAFKAPORT": "kafka.bootstrap_servers",
    "CASSANDRA_ADDRESS": "cassandra.hosts",
    "CASSANDRA_PORT": "cassandra.port",
}
IGNORED_ALIASES = {"ZOOKEEPERPORT": "Kafka runs in KRaft mode without ZooKeeper"}


def _parse(setting: Setting, value: Any, source: str) -> Any:
    """Convert a value from a file or the environment to the setting's type, or raise ConfigError naming it."""

    def fail(why: str) -> ConfigError:
        shown = "***" if setting.secret else repr(value)
        return ConfigError(f"config {setting.key} = {shown} ({source}): {why}")

    from_env = isinstance(value, str) and source.startswith("environment")
    if setting.secret and source.startswith("file"):
        raise ConfigError(
            f"config {setting.key} ({source}): a secret is not read from the config file; set "
            f"{setting.env_name} or name a file holding it in {setting.key}_file"
        )
    kind = setting.kind
    if kind == "str":
        if not isinstance(value, str):
            raise fail("must be a string")
        parsed: Any = value
    elif kind in ("int", "port"):
        if from_env:
            try:
                value = int(value.strip())
            except ValueError:
                raise fail("must be a whole number") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("must be a whole number")
        if kind == "port" and not 1 <= value <= 65535:
            raise fail("must be a port number from 1 to 65535")
        parsed = value
    elif kind == "float":
        if from_env:
            try:
                value = float(value.strip())
            except ValueError:
                raise fail("must be a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("must be a number")
        parsed = float(value)
    elif kind == "bool":
        if from_env:
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise fail("must be true or false")
            value = lowered in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise fail("must be true or false")
        parsed = value
    elif kind == "list":
        if from_env:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail("must be a list of strings")
        parsed = value
    elif kind == "hosts":
        parsed = _parse_hosts(value, fail)
    elif kind == "table":
        if from_env:
            pairs = [pair.partition("=") for pair in value.split(",") if pair.strip()]
            if not all(sep for _, sep, _ in pairs):
                raise fail("must be key=value pairs separated by commas")
            value = {k.strip(): v.strip() for k, _, v in pairs}
        if not isinstance(value, dict):
            raise fail('must be a table of "key" = "value"')
        parsed = {str(k): str(v) for k, v in value.items()}
    else:  # pragma: no cover - a programming error in SETTINGS
        raise AssertionError(f"unknown setting kind {kind}")
    if setting.check is not None:
        complaint = setting.check(parsed)
        if complaint:
            raise fail(complaint)
    return parsed


_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _parse_hosts(value: Any, fail: Callable[[str], ConfigError]) -> str:
    """Hosts are kept as the comma-separated string that clients take; each host (and optional :port) is checked."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str) or not value.strip():
        raise fail("must be host[:port] entries separated by commas")
    entries = [v.strip() for v in value.split(",")]
    for entry in entries:
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if not host:
            host, port = entry, ""
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise fail(f"{entry!r} has a bad port (1 to 65535)")
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if not _HOST_RE.match(host):
                raise fail(f"{entry!r} is not a host name or address") from None
    return ",".join(entries)


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


def project_path(value: str) -> Path:
    """A path setting's value, relative ones resolved against the project root."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _read_secret_file(key: str, path: str) -> str:
    file = project_path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the path
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"config {key} = {path!r}: cannot read it ({why})") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"config {key} = {path!r}: the file is empty")
    return lines[0].strip()


def _resolve_secrets(values: dict[str, Any]) -> None:
    """Each secret from its environment value, else from the file its `_file` setting names, as a Secret."""
    for setting in SETTINGS:
        if setting.secret:
            value, file = values[setting.key], values[f"{setting.key}_file"]
            if isinstance(value, Secret):
                continue
            values[setting.key] = Secret(value or (_read_secret_file(f"{setting.key}_file", file) if file else ""))


def _check_together(values: dict[str, Any]) -> None:
    """Settings that only make sense together: one line naming what is missing."""
    protocol = values["kafka.security_protocol"]
    if protocol.startswith("SASL_") and not (values["kafka.sasl_username"] and values["kafka.sasl_password"]):
        raise ConfigError(
            f"config kafka.security_protocol = {protocol!r}: needs kafka.sasl_username and a password "
            f"(TWITCHCREMENT_KAFKA_SASL_PASSWORD or kafka.sasl_password_file)"
        )
    if bool(values["cassandra.username"]) != bool(values["cassandra.password"]):
        raise ConfigError(
            "config cassandra.username: a user name needs a password and a password a user name "
            "(cassandra.username with TWITCHCREMENT_CASSANDRA_PASSWORD or cassandra.password_file)"
        )
    if bool(values["kafka.ssl_certfile"]) != bool(values["kafka.ssl_keyfile"]):
        raise ConfigError("config kafka.ssl_certfile: a client certificate needs its key, kafka.ssl_keyfile (both)")
    for key in ("kafka.ssl_cafile", "kafka.ssl_certfile", "kafka.ssl_keyfile", "cassandra.ssl_cafile"):
        path = values[key]
        if path and not project_path(path).is_file():
            raise ConfigError(f"config {key} = {path!r}: no such file")
    if values["cassandra.replication_strategy"] == "NetworkTopologyStrategy" and not values["cassandra.datacenters"]:
        raise ConfigError(
            "config cassandra.replication_strategy = 'NetworkTopologyStrategy': needs the copies per data centre "
            "in cassandra.datacenters (e.g. { dc1 = 3, dc2 = 3 })"
        )


@dataclass(frozen=True)
class Config:
    values: dict[str, Any]
    source_file: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        if key not in SETTINGS_BY_KEY:
            raise KeyError(f"no setting {key!r}")
        return self.values[key]

    # Derived endpoints: unset addresses mean the local services.
    @property
    def kafka_is_local(self) -> bool:
        return self["kafka.bootstrap_servers"] is None

    @property
    def cassandra_is_local(self) -> bool:
        return self["cassandra.hosts"] is None

    @property
    def kafka_bootstrap(self) -> str:
        if self.kafka_is_local:
            return f"127.0.0.1:{self['local.kafka_port']}"
        return self["kafka.bootstrap_servers"]

    @property
    def cassandra_hosts(self) -> list[str]:
        return ["127.0.0.1"] if self.cassandra_is_local else self["cassandra.hosts"].split(",")

    @property
    def cassandra_port(self) -> int:
        if self["cassandra.port"] is not None:
            return self["cassandra.port"]
        return self["local.cassandra_port"] if self.cassandra_is_local else 9042

    def path(self, key: str) -> Path:
        """A path setting resolved against the project root."""
        return project_path(self[key])

    def with_overrides(self, **overrides: Any) -> Config:
        """A copy with some settings replaced (keys use '__' for '.'), validated like everything else."""
        values = dict(self.values)
        for name, value in overrides.items():
            key = name.replace("__", ".")
            if key not in SETTINGS_BY_KEY:
                raise ConfigError(f"config {key}: unknown setting")
            values[key] = value if value is None else _parse(SETTINGS_BY_KEY[key], value, "override")
            secret = SETTINGS_BY_KEY.get(key.removesuffix("_file"))
            if key.endswith("_file") and secret is not None and secret.secret:
                values[secret.key] = ""  # read again, from the new file
        _resolve_secrets(values)
        _check_together(values)
        return Config(values, self.source_file, list(self.warnings))


def _flatten(table: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for section, body in table.items():
        if not isinstance(body, dict):
            raise ConfigError(f"config {section} ({source}): expected a [section] table, found a value")
        for name, value in body.items():
            key = f"{section}.{name}"
            if key not in SETTINGS_BY_KEY:
                raise ConfigError(f"config {key} ({source}): unknown setting; known: {_near(key)}")
            flat[key] = value
    return flat


def _near(key: str) -> str:
    section = key.split(".")[0]
    same = [s.key for s in SETTINGS if s.key.startswith(section + ".")]
    return ", ".join(same) if same else ", ".join(sorted({s.key.split(".")[0] for s in SETTINGS}))


def load(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load the config: defaults < file < TWITCHCREMENT_* environment < original aliases."""
    env = dict(os.environ if environ is None else environ)
    warnings: list[str] = []
    chosen = path or env.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE
    config_file = Path(chosen)
    values = {s.key: s.default for s in SETTINGS}

    if config_file.exists():
        try:
            raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: not valid TOML: {exc}") from None
        for key, value in _flatten(raw, str(config_file)).items():
            values[key] = _parse(SETTINGS_BY_KEY[key], value, f"file {config_file}")
    elif path is not None or CONFIG_FILE_ENV in env:
        raise ConfigError(f"config file {config_file}: does not exist")

    known_env = {s.env_name: s for s in SETTINGS}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_ENV:
            continue
        if name not in known_env:
            raise ConfigError(f"environment {name}: unknown setting (known: {', '.join(sorted(known_env))})")
        setting = known_env[name]
        values[setting.key] = _parse(setting, value, f"environment {name}")

    for alias, key in ALIASES.items():
        if alias in env:
            values[key] = _parse(SETTINGS_BY_KEY[key], env[alias], f"environment {alias}")
    for alias, why in IGNORED_ALIASES.items():
        if alias in env:
            warning = f"environment {alias} is ignored: {why}"
            warnings.append(warning)
            log.warning(warning)

    _resolve_secrets(values)
    _check_together(values)
    return Config(values, config_file if config_file.exists() else None, warnings)


def reference_markdown() -> str:
    """The configuration reference table, as shown in the README."""
    rows = ["| key | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = "(unset)" if s.default is None else f"`{s.default}`"
        rows.append(f"| `{s.key}` | `{s.env_name}` | {default} | {s.doc} |")
    aliases = ", ".join(f"`{a}` = `{k}`" for a, k in ALIASES.items())
    rows.append("")
    rows.append(
        f"Aliases from the original system (they win over the file and `TWITCHCREMENT_*`): {aliases}; "
        f"`ZOOKEEPERPORT` is accepted and ignored with a warning."
    )
    return "\n".join(rows)


def write_readme_reference(readme: Path = PROJECT_ROOT / "README.md") -> None:
    """Replace the table between the README's config-reference markers with the current one."""
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    readme.write_text(head + start + reference_markdown() + "\n" + end + tail, encoding="utf-8")


if __name__ == "__main__":
    import sys

    if "--write-readme" in sys.argv:
        write_readme_reference()
    else:
        print(reference_markdown())
