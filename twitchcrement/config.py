"""Configuration: one TOML file in conf/, then environment overrides, then the original system's aliases.

Every setting is declared once in twitchcrement/settings.py (name, type, default, meaning); the README's
configuration reference is generated from it. A wrong value fails at load time with an error naming the key; code
reads the checked values as typed sections (`config.detector.window_s`, twitchcrement/sections.py).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from twitchcrement import PROJECT_ROOT
from twitchcrement.errors import UserError
from twitchcrement.sections import (
    SECTIONS,
    AlertsSection,
    CassandraSection,
    DashboardSection,
    DetectorSection,
    EmotesSection,
    IngestSection,
    KafkaSection,
    LocalSection,
    LoggingSection,
    Secret,
    SparkSection,
)
from twitchcrement.settings import ENV_PREFIX, SETTINGS, SETTINGS_BY_KEY, Setting

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = PROJECT_ROOT / "conf" / "twitchcrement.toml"
CONFIG_FILE_ENV = "TWITCHCREMENT_CONFIG"


class ConfigError(UserError, ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key and where it came from."""


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

    if setting.secret and source.startswith("file"):
        raise ConfigError(
            f"config {setting.key} ({source}): a secret is not read from the config file; set "
            f"{setting.env_name} or name a file holding it in {setting.key}_file"
        )
    from_env = isinstance(value, str) and source.startswith("environment")
    parsed = _CONVERTERS[setting.kind](value, from_env, fail)
    if setting.kind == "port" and not 1 <= parsed <= 65535:
        raise fail("must be a port number from 1 to 65535")
    if setting.check is not None:
        complaint = setting.check(parsed)
        if complaint:
            raise fail(complaint)
    return parsed


Fail = Callable[[str], ConfigError]


def _str(value: Any, from_env: bool, fail: Fail) -> str:
    if not isinstance(value, str):
        raise fail("must be a string")
    return value


def _int(value: Any, from_env: bool, fail: Fail) -> int:
    if from_env:
        try:
            value = int(value.strip())
        except ValueError:
            raise fail("must be a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail("must be a whole number")
    return value


def _float(value: Any, from_env: bool, fail: Fail) -> float:
    if from_env:
        try:
            value = float(value.strip())
        except ValueError:
            raise fail("must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail("must be a number")
    return float(value)


def _bool(value: Any, from_env: bool, fail: Fail) -> bool:
    if from_env:
        lowered = value.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise fail("must be true or false")
        value = lowered in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise fail("must be true or false")
    return value


def _list(value: Any, from_env: bool, fail: Fail) -> list[str]:
    if from_env:
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail("must be a list of strings")
    return value


def _table(value: Any, from_env: bool, fail: Fail) -> dict[str, str]:
    if from_env:
        pairs = [pair.partition("=") for pair in value.split(",") if pair.strip()]
        if not all(sep for _, sep, _ in pairs):
            raise fail("must be key=value pairs separated by commas")
        value = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(value, dict):
        raise fail('must be a table of "key" = "value"')
    return {str(k): str(v) for k, v in value.items()}


_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _hosts(value: Any, from_env: bool, fail: Fail) -> str:
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


# A setting's kind (settings.py) -> how a value from a file or the environment becomes one.
_CONVERTERS: dict[str, Callable[[Any, bool, Fail], Any]] = {
    "str": _str,
    "int": _int,
    "port": _int,
    "float": _float,
    "bool": _bool,
    "list": _list,
    "table": _table,
    "hosts": _hosts,
}


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
    """The settings, read as typed sections (`config.kafka.chat_topic`), built once the values are checked."""

    values: dict[str, Any]
    source_file: Path | None = None
    warnings: list[str] = field(default_factory=list)
    kafka: KafkaSection = field(init=False, repr=False, compare=False)
    cassandra: CassandraSection = field(init=False, repr=False, compare=False)
    local: LocalSection = field(init=False, repr=False, compare=False)
    spark: SparkSection = field(init=False, repr=False, compare=False)
    ingest: IngestSection = field(init=False, repr=False, compare=False)
    detector: DetectorSection = field(init=False, repr=False, compare=False)
    dashboard: DashboardSection = field(init=False, repr=False, compare=False)
    alerts: AlertsSection = field(init=False, repr=False, compare=False)
    emotes: EmotesSection = field(init=False, repr=False, compare=False)
    logging: LoggingSection = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for section, kind in SECTIONS.items():
            names = [f.name for f in fields(kind)]
            object.__setattr__(self, section, kind(**{n: self.values[f"{section}.{n}"] for n in names}))

    def __getitem__(self, key: str) -> Any:
        """A setting by its key, for code that has the key as data (tests, the reference); code reads sections."""
        if key not in SETTINGS_BY_KEY:
            raise KeyError(f"no setting {key!r}")
        return self.values[key]

    # Derived endpoints: unset addresses mean the local services.
    @property
    def kafka_is_local(self) -> bool:
        return self.kafka.bootstrap_servers is None

    @property
    def cassandra_is_local(self) -> bool:
        return self.cassandra.hosts is None

    @property
    def kafka_bootstrap(self) -> str:
        if self.kafka.bootstrap_servers is None:
            return f"127.0.0.1:{self.local.kafka_port}"
        return self.kafka.bootstrap_servers

    @property
    def cassandra_hosts(self) -> list[str]:
        return ["127.0.0.1"] if self.cassandra.hosts is None else self.cassandra.hosts.split(",")

    @property
    def cassandra_port(self) -> int:
        if self.cassandra.port is not None:
            return self.cassandra.port
        return self.local.cassandra_port if self.cassandra_is_local else 9042

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
