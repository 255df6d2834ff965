"""Every setting, declared once: its key, type, default, meaning and check. The README's configuration
reference, the environment names and the typed sections (twitchcrement/sections.py) follow this table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twitchcrement.setting_checks import (
    cql_name,
    jvm_size,
    metrics_port,
    non_negative,
    one_of,
    positive,
    replication,
    spark_conf,
    speed,
    subset_of,
    topic,
)

ENV_PREFIX = "TWITCHCREMENT_"


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


SETTINGS: list[Setting] = [
    # Kafka
    Setting(
        "kafka.bootstrap_servers",
        "hosts",
        None,
        "Kafka bootstrap servers, host:port[,host:port]. Unset: the local broker that `make services-up` runs.",
    ),
    Setting("kafka.chat_topic", "str", "chatmessage", "Topic of chat records (msgpack, key = channel).", topic),
    Setting("kafka.spam_topic", "str", "spammessage", "Topic of spam events and topic updates.", topic),
    Setting(
        "kafka.deadletter_topic",
        "str",
        "chatmessage-deadletter",
        "Topic where records that cannot be decoded go, with the reason.",
        topic,
    ),
    Setting("kafka.partitions", "int", 4, "Partitions of each topic the platform creates.", positive),
    Setting("kafka.replication_factor", "int", 1, "Replication factor of the topics the platform creates.", positive),
    Setting("kafka.connect_timeout_s", "float", 15.0, "How long to wait for a broker before giving up.", positive),
    Setting(
        "kafka.security_protocol",
        "str",
        "PLAINTEXT",
        "How every Kafka client of the platform talks to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    ),
    Setting(
        "kafka.sasl_mechanism",
        "str",
        "SCRAM-SHA-512",
        "SASL mechanism of the SASL_* protocols: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
        one_of("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
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
    Setting("cassandra.keyspace", "str", "twitchcrement", "Keyspace of the platform's tables.", cql_name),
    Setting(
        "cassandra.replication_strategy",
        "str",
        "SimpleStrategy",
        "Replication of the keyspace `services init` creates: SimpleStrategy (cassandra.replication_factor "
        "copies) or NetworkTopologyStrategy (cassandra.datacenters).",
        one_of("SimpleStrategy", "NetworkTopologyStrategy"),
    ),
    Setting("cassandra.replication_factor", "int", 1, "SimpleStrategy replication factor of the keyspace.", positive),
    Setting(
        "cassandra.datacenters",
        "table",
        {},
        'NetworkTopologyStrategy copies per data centre, as dc = factor (environment: "dc1=3,dc2=2").',
        replication,
    ),
    Setting("cassandra.local_datacenter", "str", "datacenter1", "Data centre the drivers treat as local."),
    Setting("cassandra.connect_timeout_s", "float", 15.0, "How long to wait for a node before giving up.", positive),
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
    Setting("local.kafka_heap", "str", "512m", "Heap of the local Kafka broker.", jvm_size),
    Setting("local.cassandra_port", "port", 9042, "CQL port of the local Cassandra node."),
    Setting("local.cassandra_storage_port", "port", 7000, "Inter-node port of the local Cassandra node."),
    Setting("local.cassandra_jmx_port", "port", 7199, "JMX port (loopback only) of the local Cassandra node."),
    Setting("local.cassandra_heap", "str", "1g", "Heap of the local Cassandra node.", jvm_size),
    Setting("local.start_timeout_s", "float", 180.0, "How long a local service may take to become ready.", positive),
    # Spark
    Setting("spark.master", "str", "local[*]", "Spark master URL (local[*], spark://host:7077, yarn, k8s://...)."),
    Setting("spark.app_name", "str", "twitchcrement", "Spark application name."),
    Setting(
        "spark.shuffle_partitions",
        "int",
        0,
        "spark.sql.shuffle.partitions; 0: one per core Spark has. More partitions than cores slow every "
        "micro-batch (docs/operations.md); Spark's own default 200 made a job 18x slower.",
        non_negative,
    ),
    Setting("spark.driver_memory", "str", "2g", "Driver heap (local mode: the whole job).", jvm_size),
    Setting(
        "spark.checkpoint_dir",
        "str",
        "var/checkpoints",
        "Where streaming queries keep their checkpoints (relative to the project, or a URL).",
    ),
    Setting("spark.conf", "table", {}, 'Any other Spark settings, as "spark.x.y" = "value".', spark_conf),
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
        positive,
    ),
    Setting(
        "ingest.progress_every_s", "float", 10.0, "Seconds between ingest's progress and rate log lines.", positive
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
    Setting("ingest.top_channels", "int", 500, "How many of the top live channels to read.", positive),
    Setting("ingest.channels_refresh_s", "float", 3600.0, "Seconds between refreshes of the channel list.", positive),
    Setting(
        "ingest.channels_topic",
        "str",
        "channellist",
        "Compacted topic where the current channel list is published for the reader and the dashboard.",
        topic,
    ),
    Setting("ingest.helix_url", "str", "https://api.twitch.tv/helix", "Base URL of the Twitch Helix API."),
    Setting("ingest.channels_per_connection", "int", 90, "Most channels joined on one IRC connection.", positive),
    Setting("ingest.joins_per_10s", "int", 20, "JOINs sent per join window across the whole process.", positive),
    Setting(
        "ingest.join_window_s", "float", 10.0, "The window of ingest.joins_per_10s, in seconds (Twitch: 10).", positive
    ),
    Setting(
        "ingest.silence_timeout_s",
        "float",
        300.0,
        "An IRC connection that receives nothing (not even PING) this long is treated as dead.",
        positive,
    ),
    Setting("ingest.replay_speed", "str", "1", 'Replay speed factor (1, 10, ...) or "max".', speed),
    Setting("ingest.synth_rate", "float", 1000.0, "Synthetic chat: messages per second, all channels.", positive),
    Setting("ingest.synth_channels", "int", 40, "Synthetic chat: number of channels.", positive),
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
        metrics_port,
    ),
    # Detector
    Setting("detector.window_s", "int", 10, "Length of the tumbling event-time windows, in seconds.", positive),
    Setting(
        "detector.watermark_s",
        "float",
        3.0,
        "How late (event time, behind its channel's newest message) a message may arrive and still count in "
        "its window.",
        non_negative,
    ),
    Setting(
        "detector.channel_lag_s",
        "float",
        15.0,
        "How long a channel may be silent before its open windows close anyway: nothing from it for this long "
        "(processing time), its Kafka partition read to the end, and the rest of the stream this far ahead in "
        "event time. A channel whose partition is behind, or whose chat is delayed with everyone's, stays open.",
        non_negative,
    ),
    Setting("detector.trigger_s", "float", 1.0, "Micro-batch interval of the streaming job, in seconds.", positive),
    Setting(
        "detector.outage_limit_s",
        "float",
        3600.0,
        "How long the detector waits for Kafka or Cassandra to come back (restarting its query from the checkpoint "
        "with growing pauses) before it stops with an error for its supervisor to act on.",
        positive,
    ),
    Setting(
        "detector.starting_offsets",
        "str",
        "latest",
        "Where a new job (no checkpoint yet) starts reading chatmessage: latest or earliest.",
        one_of("latest", "earliest"),
    ),
    Setting(
        "detector.max_offsets_per_trigger",
        "int",
        500_000,
        "Most chat records one micro-batch reads (bounds a batch after downtime).",
        positive,
    ),
    Setting(
        "detector.jaccard",
        "float",
        0.6,
        "Shingle Jaccard similarity at which two texts are the same spam.",
        lambda v: None if 0 < v <= 1 else "must be greater than 0 and at most 1",
    ),
    Setting("detector.num_hash_tables", "int", 32, "MinHashLSH hash tables (MinHash values per text).", positive),
    Setting(
        "detector.rows_per_band",
        "int",
        3,
        "MinHash values ANDed into one LSH band (32 tables, 3 rows: 10 bands).",
        positive,
    ),
    Setting("detector.num_features", "int", 1 << 20, "HashingTF feature space for shingles.", positive),
    Setting("detector.seed", "int", 20240106, "MinHashLSH seed (the dashboard's fuzzy search must use the same)."),
    Setting(
        "detector.shingle_size",
        "int",
        3,
        "Character n-gram length of the shingles (beside the tokens) that MinHash and Jaccard compare.",
        positive,
    ),
    Setting(
        "detector.min_shingles",
        "int",
        5,
        "Texts with fewer shingles skip LSH (exact duplicates still count).",
        positive,
    ),
    Setting("detector.min_messages", "int", 5, "Messages a cluster needs in one window to be spam.", positive),
    Setting("detector.min_users", "int", 3, "Distinct users a cluster needs to be crowd spam.", positive),
    Setting(
        "detector.flood_min_messages",
        "int",
        5,
        "Messages one user needs in one window, on one text, to be a flood.",
        positive,
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
    Setting("detector.topic_quiet_s", "float", 30.0, "A spam topic ends after this long without spam.", positive),
    Setting(
        "detector.metrics_port",
        "int",
        9462,
        "Loopback port of the detector's /metrics (Prometheus), /healthz and /readyz; 0: none.",
        metrics_port,
    ),
    # Dashboard
    Setting(
        "dashboard.host",
        "str",
        "127.0.0.1",
        "Address the dashboard binds (anything but loopback: set DASHBOARD_USER and DASHBOARD_PASSWORD).",
    ),
    Setting("dashboard.port", "port", 8050, "Port of the dashboard."),
    Setting("dashboard.refresh_s", "float", 1.0, "Seconds between refreshes of the live views.", positive),
    Setting("dashboard.chat_per_channel", "int", 200, "Recent chat messages kept in memory per channel.", positive),
    Setting("dashboard.spam_per_channel", "int", 100, "Recent spam events kept in memory per channel.", positive),
    Setting(
        "dashboard.max_channels",
        "int",
        2000,
        "Channels kept in memory (the least recently active are forgotten first).",
        positive,
    ),
    Setting("dashboard.history_s", "int", 900, "Seconds of rates and spam volume kept for the charts.", positive),
    Setting(
        "dashboard.backfill_s",
        "int",
        300,
        "On start, read this many seconds of Kafka history so the live views are not empty.",
        non_negative,
    ),
    Setting("dashboard.search_max_chars", "int", 500, "Longest text the history search accepts.", positive),
    Setting("dashboard.page_size", "int", 20, "Rows per page of search results.", positive),
    Setting(
        "dashboard.metrics_port",
        "int",
        9463,
        "Loopback port of the dashboard's /metrics (Prometheus), /healthz and /readyz; 0: none.",
        metrics_port,
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
        non_negative,
    ),
    Setting(
        "alerts.min_users",
        "int",
        20,
        "Alert when a spam topic has this many users in one window (0: never).",
        non_negative,
    ),
    Setting(
        "alerts.min_rate",
        "float",
        10.0,
        "Alert when a spam topic peaks at this many messages/s (0: never).",
        non_negative,
    ),
    Setting(
        "alerts.campaign_channels",
        "int",
        3,
        "Alert when one spam text is active in this many channels at once (0: never).",
        non_negative,
    ),
    Setting("alerts.channels", "list", [], "Only these channels' topics alert (empty: every channel)."),
    Setting("alerts.max_per_minute", "int", 30, "At most this many alerts a minute per webhook.", positive),
    # Emote sets (twitchcrement/emotes.py): ingest marks the BTTV, FFZ and 7TV emotes in each message
    Setting(
        "emotes.providers",
        "list",
        ["bttv", "ffz", "7tv"],
        "Third-party emote providers whose global and channel sets ingest fetches (empty: Twitch's own only).",
        subset_of("bttv", "ffz", "7tv"),
    ),
    Setting("emotes.bttv_url", "str", "https://api.betterttv.net/3", "Base URL of the BetterTTV API."),
    Setting("emotes.ffz_url", "str", "https://api.frankerfacez.com/v1", "Base URL of the FrankerFaceZ API."),
    Setting("emotes.seventv_url", "str", "https://7tv.io/v3", "Base URL of the 7TV API."),
    Setting(
        "emotes.images_url",
        "str",
        "",
        "Where the dashboard loads emote pictures from: empty for each provider's own CDN (Twitch, BTTV, FFZ, 7TV); "
        "a base URL serves them as BASE/PROVIDER/ID, PROVIDER one of twitch, bttv, ffz, 7tv (the demo's stand-in "
        "does: it draws its made-up emotes and sends the rest on to the CDNs).",
    ),
    Setting(
        "emotes.refresh_s",
        "float",
        3600.0,
        "Seconds between fetches of one set (longer when the provider's Cache-Control max-age says so).",
        positive,
    ),
    Setting("emotes.timeout_s", "float", 5.0, "Seconds to wait for a provider's answer.", positive),
    Setting(
        "emotes.cache_dir",
        "str",
        "var/emotes",
        "Where fetched sets are kept; with no network, the sets found here are used as they are.",
    ),
    # Logging
    Setting(
        "logging.level",
        "str",
        "INFO",
        "Level of the platform's own loggers.",
        one_of("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Setting("logging.format", "str", "logfmt", "logfmt (key=value lines) or json.", one_of("logfmt", "json")),
]

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}
