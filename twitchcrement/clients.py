"""Kafka and Cassandra clients built from the config, failing fast with one line that names the setting."""

from __future__ import annotations

import logging
import re
import ssl
import time
from typing import Any

from twitchcrement import logs
from twitchcrement.config import Config, project_path
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)


class ServiceUnavailable(UserError, ConnectionError):
    """A configured service did not answer; the message names the setting that points at it."""


class ServiceRefused(ServiceUnavailable):
    """A service answered and turned the platform away (a login, a certificate, the protocol): waiting and
    retrying does not help, the config must change. The message says what was refused and which settings."""


def _kafka_where(config: Config) -> str:
    if config.kafka_is_local:
        return f"local Kafka at {config.kafka_bootstrap} (local.kafka_port; start it with `make services-up`)"
    return f"kafka.bootstrap_servers={config.kafka_bootstrap}"


def _cassandra_where(config: Config) -> str:
    hosts = ",".join(config.cassandra_hosts)
    if config.cassandra_is_local:
        return (
            f"local Cassandra at {hosts}:{config.cassandra_port} (local.cassandra_port; "
            f"start it with `make services-up`)"
        )
    return f"cassandra.hosts={hosts} port {config.cassandra_port}"


def _file(config: Config, key: str) -> str | None:
    return str(config.path(key)) if config[key] else None


def _sasl(config: Config) -> bool:
    return config.kafka.security_protocol.startswith("SASL_")


def _tls(config: Config) -> bool:
    return config.kafka.security_protocol.endswith("SSL")


def kafka_python_security(config: Config) -> dict[str, Any]:
    """kafka-python's settings for kafka.security_protocol and its credentials (ingest, dashboard, admin)."""
    settings: dict[str, Any] = {"security_protocol": config.kafka.security_protocol}
    if _sasl(config):
        settings["sasl_mechanism"] = config.kafka.sasl_mechanism
        settings["sasl_plain_username"] = config.kafka.sasl_username
        settings["sasl_plain_password"] = config.kafka.sasl_password.reveal()
    if _tls(config):
        settings["ssl_check_hostname"] = config.kafka.ssl_check_hostname
        settings["ssl_cafile"] = _file(config, "kafka.ssl_cafile")
        settings["ssl_certfile"] = _file(config, "kafka.ssl_certfile")
        settings["ssl_keyfile"] = _file(config, "kafka.ssl_keyfile")
        settings["ssl_password"] = config.kafka.ssl_key_password.reveal() or None
    return settings


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kafka_java_security(config: Config) -> dict[str, str]:
    """The same, as the Java client's properties (Spark's Kafka source takes them with a "kafka." prefix)."""
    settings = {"security.protocol": config.kafka.security_protocol}
    if _sasl(config):
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if config.kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        settings["sasl.mechanism"] = config.kafka.sasl_mechanism
        settings["sasl.jaas.config"] = (
            f"{module} required username={_jaas_quoted(config.kafka.sasl_username)} "
            f"password={_jaas_quoted(config.kafka.sasl_password.reveal())};"
        )
    if _tls(config):
        settings["ssl.endpoint.identification.algorithm"] = "https" if config.kafka.ssl_check_hostname else ""
        if config.kafka.ssl_cafile:
            settings["ssl.truststore.type"] = "PEM"
            settings["ssl.truststore.location"] = str(project_path(config.kafka.ssl_cafile))
        if config.kafka.ssl_certfile:
            # A PEM key store is one file with key and chain, or both inline: inline keeps the two files apart.
            settings["ssl.keystore.type"] = "PEM"
            settings["ssl.keystore.certificate.chain"] = project_path(config.kafka.ssl_certfile).read_text()
            settings["ssl.keystore.key"] = project_path(config.kafka.ssl_keyfile).read_text()
            if config.kafka.ssl_key_password:
                settings["ssl.key.password"] = config.kafka.ssl_key_password.reveal()
    return settings


def librdkafka_security(config: Config) -> dict[str, str]:
    """The same, for librdkafka (confluent-kafka: the benchmarks' load generator)."""
    settings = {"security.protocol": config.kafka.security_protocol.lower()}
    if _sasl(config):
        settings["sasl.mechanism"] = config.kafka.sasl_mechanism
        settings["sasl.username"] = config.kafka.sasl_username
        settings["sasl.password"] = config.kafka.sasl_password.reveal()
    if _tls(config):
        settings["ssl.endpoint.identification.algorithm"] = "https" if config.kafka.ssl_check_hostname else "none"
        optional = {
            "ssl.ca.location": _file(config, "kafka.ssl_cafile"),
            "ssl.certificate.location": _file(config, "kafka.ssl_certfile"),
            "ssl.key.location": _file(config, "kafka.ssl_keyfile"),
            "ssl.key.password": config.kafka.ssl_key_password.reveal(),
        }
        settings.update({k: v for k, v in optional.items() if v})
    return settings


def _kafka_common(config: Config) -> dict[str, Any]:
    timeout_ms = int(config.kafka.connect_timeout_s * 1000)
    return {
        "bootstrap_servers": config.kafka_bootstrap.split(","),
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": max(timeout_ms, 30_000),
        "client_id": "twitchcrement",
        **kafka_python_security(config),
    }


_BOOTSTRAP_FAILED = re.compile(r"Bootstrap (connection|attempt) to \S+ failed: ")


def kafka_refusal(config: Config, warnings: list[str]) -> str | None:
    """What a broker refused, from kafka-python's warnings while it tried to connect (it does not raise them:
    it retries until its bootstrap times out). None when they show no refusal (a broker away, not answering)."""
    kafka = f"Kafka at {config.kafka_bootstrap}"
    protocol = config.kafka.security_protocol
    login = f"{kafka} refused the login of user {config.kafka.sasl_username!r} with {config.kafka.sasl_mechanism}"
    password = "kafka.sasl_username, TWITCHCREMENT_KAFKA_SASL_PASSWORD or kafka.sasl_password_file"
    failures = [w for w in warnings if _BOOTSTRAP_FAILED.match(w)]  # one per attempt, with why
    for warning in failures:
        if "SaslAuthenticationFailed" in warning:
            return f"{login}: wrong user name or password ({password})"
        if "CERTIFICATE_VERIFY_FAILED" in warning:
            return _untrusted(kafka, warning, config, "kafka")
        if "WRONG_VERSION_NUMBER" in warning or "record layer failure" in warning:
            return f"{kafka} does not speak TLS, which kafka.security_protocol = {protocol} expects"
    # A broker drops a client at once and every time when it fails its SASL login (kafka-python then often sees the
    # closed socket before the broker's answer), or when it speaks neither TLS nor SASL to a broker that wants
    # them; a broker that is away refuses the TCP connection instead, or does not answer. The attempt that the
    # bootstrap's deadline cut short (RequestTimedOutError) tells nothing either way.
    answered = [w for w in failures if "RequestTimedOutError" not in w]
    if len(answered) >= 3 and all("socket disconnected" in w or "Invalid frame length" in w for w in answered):
        if protocol.startswith("SASL_"):
            return (
                f"{login} (it closed every connection): wrong user name or password ({password}), or the broker "
                f"wants another kafka.sasl_mechanism or kafka.security_protocol"
            )
        return (
            f"{kafka} closed every connection of this {protocol} client: the broker asks for another "
            f"kafka.security_protocol, or credentials (kafka.sasl_username and a password)"
        )
    return None


def _untrusted(service: str, error: str, config: Config, section: str) -> str:
    """A certificate the client did not trust: why (OpenSSL's words) and what it trusts (which setting)."""
    reason = error.split("certificate verify failed:", 1)[-1].split("(_ssl")[0].strip()
    cafile = config[f"{section}.ssl_cafile"]
    trusted = f"{section}.ssl_cafile={cafile}" if cafile else f"the system's CAs (set {section}.ssl_cafile)"
    return f"{service}: its TLS certificate is not trusted ({reason}) by {trusted}"


def _kafka(factory: Any, config: Config, *args: Any, **kwargs: Any) -> Any:
    from kafka.errors import KafkaConfigurationError, KafkaError, KafkaTimeoutError

    started = time.time()
    try:
        return factory(*args, **{**_kafka_common(config), **kwargs})
    except KafkaTimeoutError:
        refusal = kafka_refusal(config, logs.KAFKA_WARNINGS.since(started))
        if refusal:
            raise ServiceRefused(refusal) from None
        timeout = config.kafka.connect_timeout_s
        raise ServiceUnavailable(f"no Kafka broker answered within {timeout:.0f} s: {_kafka_where(config)}") from None
    except KafkaConfigurationError:
        raise  # a programming error, not an unreachable broker
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka failed ({type(exc).__name__}: {exc}): {_kafka_where(config)}") from None


def kafka_producer(config: Config, **kwargs: Any) -> Any:
    from kafka import KafkaProducer

    # kafka-python 3 turns idempotence on by default, and its idempotent producer stalls for good once a batch has
    # expired during a broker outage (measured: a SIGKILLed broker, back after 30 s, and nothing more delivered).
    # Without it a retry after a lost acknowledgement can write a record twice; records carry ids for that.
    defaults = {
        "acks": "all",
        "linger_ms": 20,
        "batch_size": 256 * 1024,
        "retries": 2**31 - 1,
        "enable_idempotence": False,
    }
    return _kafka(KafkaProducer, config, **{**defaults, **kwargs})


def kafka_consumer(config: Config, *topics: str, **kwargs: Any) -> Any:
    from kafka import KafkaConsumer

    return _kafka(KafkaConsumer, config, *topics, **kwargs)


def kafka_problem(config: Config, topic: str, *, raise_refused: bool = False) -> str | None:
    """None when a Kafka broker answers and has the topic, else why not (one line): readiness checks.
    raise_refused: a refusal (ServiceRefused) is raised instead, for callers that would otherwise wait for ever."""
    try:
        consumer = kafka_consumer(config)
    except ServiceUnavailable as exc:
        if raise_refused and isinstance(exc, ServiceRefused):
            raise
        return str(exc)
    try:
        if consumer.partitions_for_topic(topic) is None:
            return f"topic {topic!r} does not exist (create it: `twitchcrement services init`)"
        return None
    finally:
        consumer.close()


def kafka_admin(config: Config) -> Any:
    from kafka import KafkaAdminClient

    return _kafka(KafkaAdminClient, config)


def cassandra_cluster(config: Config) -> Any:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=config.cassandra.local_datacenter)),
        request_timeout=30.0,
    )
    return Cluster(
        contact_points=config.cassandra_hosts,
        port=config.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=config.cassandra.connect_timeout_s,
        protocol_version=5,
        auth_provider=_cassandra_auth(config),
        ssl_context=cassandra_tls(config),
    )


def _cassandra_auth(config: Config) -> Any:
    from cassandra.auth import PlainTextAuthProvider

    if not config.cassandra.username:
        return None
    return PlainTextAuthProvider(config.cassandra.username, config.cassandra.password.reveal())


def cassandra_tls(config: Config) -> ssl.SSLContext | None:
    """The TLS context of cassandra.ssl (None: plain connections)."""
    if not config.cassandra.ssl:
        return None
    context = ssl.create_default_context(cafile=_file(config, "cassandra.ssl_cafile"))
    context.check_hostname = config.cassandra.ssl_check_hostname
    return context


def cassandra_session(config: Config, *, keyspace: bool = True) -> Any:
    """A connected session (in the platform's keyspace unless keyspace=False). Close its cluster when done."""
    from cassandra import InvalidRequest
    from cassandra.cluster import NoHostAvailable

    cluster = cassandra_cluster(config)
    try:
        with logs.quiet("cassandra"):  # the driver logs each failed node; the one line below says it all
            session = cluster.connect(config.cassandra.keyspace if keyspace else None)
    except NoHostAvailable as exc:
        cluster.shutdown()
        refusal = cassandra_refusal(config, list(exc.errors.values()))
        if refusal:
            raise ServiceRefused(refusal) from None
        raise ServiceUnavailable(f"no Cassandra node answered: {_cassandra_where(config)}") from None
    except InvalidRequest as exc:
        cluster.shutdown()
        raise ServiceUnavailable(
            f"Cassandra keyspace {config.cassandra.keyspace!r} is not usable ({exc}); "
            f"create it with `make services-up` or `python -m services init`"
        ) from None
    return session


def check_cassandra_login(config: Config) -> None:
    """Raise ServiceRefused when Cassandra turns this config away (login, certificate); nodes that are away are not
    an error here: the writers wait for them and retry."""
    try:
        cassandra_session(config, keyspace=False).cluster.shutdown()
    except ServiceRefused:
        raise
    except ServiceUnavailable:
        pass


def cassandra_refusal(config: Config, errors: list[Any]) -> str | None:
    """What the nodes refused, from the driver's error per node; None when none was a refusal (nodes away)."""
    from cassandra import AuthenticationFailed

    cassandra = f"Cassandra at {','.join(config.cassandra_hosts)}:{config.cassandra_port}"
    for error in errors:
        text = str(error)
        if isinstance(error, AuthenticationFailed) and "requires authentication" in text:
            return (
                f"{cassandra} requires a login: set cassandra.username and its password "
                f"(TWITCHCREMENT_CASSANDRA_PASSWORD or cassandra.password_file)"
            )
        if isinstance(error, AuthenticationFailed):
            return (
                f"{cassandra} refused the login of user {config.cassandra.username!r}: wrong user name or "
                f"password (cassandra.username, TWITCHCREMENT_CASSANDRA_PASSWORD or cassandra.password_file)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in text:
            return _untrusted(cassandra, text, config, "cassandra")
        if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
            return f"{cassandra} does not speak TLS, which cassandra.ssl = true expects"
        if isinstance(error, ConnectionResetError) and not config.cassandra.ssl:
            return f"{cassandra} closed the connection at once: does it require TLS (cassandra.ssl = true)?"
    return None
