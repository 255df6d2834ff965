"""Configuration: precedence (file < environment < original aliases) and one clear error per wrong value."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time

import pytest

from twitchcrement import config as configuration
from twitchcrement.clients import ServiceUnavailable, cassandra_session, kafka_admin
from twitchcrement.config import SETTINGS, ConfigError, load
from twitchcrement.sections import SECTIONS, Secret


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "twitchcrement.toml"
    path.write_text(
        '[kafka]\nbootstrap_servers = "file-broker:9092"\npartitions = 8\n'
        '[cassandra]\nhosts = "file-cass"\nport = 9142\n'
    )
    return path


def test_defaults_point_at_the_local_services():
    config = load(environ={})
    assert config.kafka_is_local and config.cassandra_is_local
    assert config.kafka_bootstrap == "127.0.0.1:9092"
    assert (config.cassandra_hosts, config.cassandra_port) == (["127.0.0.1"], 9042)
    assert config.kafka.chat_topic == "chatmessage" and config.kafka.spam_topic == "spammessage"


def test_file_overrides_defaults(config_file):
    config = load(config_file, environ={})
    assert config.kafka_bootstrap == "file-broker:9092" and not config.kafka_is_local
    assert config.kafka.partitions == 8
    assert (config.cassandra_hosts, config.cassandra_port) == (["file-cass"], 9142)


def test_environment_overrides_file(config_file):
    config = load(
        config_file,
        environ={
            "TWITCHCREMENT_KAFKA_BOOTSTRAP_SERVERS": "env-broker:9093",
            "TWITCHCREMENT_KAFKA_PARTITIONS": "12",
            "TWITCHCREMENT_CASSANDRA_PORT": "9242",
        },
    )
    assert config.kafka_bootstrap == "env-broker:9093"
    assert config.kafka.partitions == 12
    assert config.cassandra_port == 9242


def test_original_aliases_override_environment(config_file):
    config = load(
        config_file,
        environ={
            "TWITCHCREMENT_KAFKA_BOOTSTRAP_SERVERS": "env-broker:9093",
            "KAFKAPORT": "alias-broker:9094",
            "TWITCHCREMENT_CASSANDRA_HOSTS": "env-cass",
            "CASSANDRA_ADDRESS": "alias-cass1,alias-cass2",
            "CASSANDRA_PORT": "9342",
        },
    )
    assert config.kafka_bootstrap == "alias-broker:9094"
    assert config.cassandra_hosts == ["alias-cass1", "alias-cass2"]
    assert config.cassandra_port == 9342


def test_zookeeper_alias_is_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        config = load(environ={"ZOOKEEPERPORT": "localhost:2181"})
    assert any("ZOOKEEPERPORT is ignored" in w for w in config.warnings)
    assert "ZOOKEEPERPORT is ignored" in caplog.text


def test_config_file_from_environment(config_file):
    assert load(environ={"TWITCHCREMENT_CONFIG": str(config_file)}).kafka.partitions == 8


BAD_FILES = {
    "unknown key": ('[kafka]\nbootstrap = "x:1"\n', "kafka.bootstrap .*unknown setting"),
    "unknown section": ("[kafak]\npartitions = 3\n", "kafak.partitions .*unknown setting"),
    "port out of range": ("[local]\nkafka_port = 70000\n", "local.kafka_port .*1 to 65535"),
    "port as text": ('[local]\ncassandra_port = "nine"\n', "local.cassandra_port .*whole number"),
    "zero partitions": ("[kafka]\npartitions = 0\n", "kafka.partitions .*greater than 0"),
    "bad topic": ('[kafka]\nchat_topic = "chat message!"\n', "kafka.chat_topic .*topic name"),
    "bad host": ('[kafka]\nbootstrap_servers = "bro ker:9092"\n', "kafka.bootstrap_servers .*host name"),
    "bad host port": ('[kafka]\nbootstrap_servers = "broker:99999"\n', "kafka.bootstrap_servers .*bad port"),
    "bad keyspace": ('[cassandra]\nkeyspace = "drop table;"\n', "cassandra.keyspace .*CQL name"),
    "bad heap": ('[local]\ncassandra_heap = "lots"\n', "local.cassandra_heap .*memory size"),
    "bad level": ('[logging]\nlevel = "LOUD"\n', "logging.level .*one of"),
    "bad spark conf": ('[spark.conf]\n"executor.memory" = "2g"\n', "spark.conf .*must start with 'spark.'"),
    "not toml": ("[kafka\n", "not valid TOML"),
    "value not section": ('kafka = "x"\n', "expected a \\[section\\]"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_values_fail_naming_the_key(tmp_path, name):
    text, message = BAD_FILES[name]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        load(path, environ={})
    assert "\n" not in str(error.value)


BAD_ENVIRONMENT = {
    "TWITCHCREMENT_KAFKA_PARTITION": ("x", "unknown setting"),
    "TWITCHCREMENT_LOCAL_KAFKA_PORT": ("-1", "local.kafka_port .*1 to 65535"),
    "TWITCHCREMENT_KAFKA_CONNECT_TIMEOUT_S": ("soon", "kafka.connect_timeout_s .*a number"),
    "KAFKAPORT": ("broker:port", "kafka.bootstrap_servers .*KAFKAPORT.*bad port"),
    "CASSANDRA_PORT": ("cql", "cassandra.port .*CASSANDRA_PORT.*whole number"),
}


@pytest.mark.parametrize("name", sorted(BAD_ENVIRONMENT))
def test_bad_environment_values_fail_naming_the_variable(name):
    value, message = BAD_ENVIRONMENT[name]
    with pytest.raises(ConfigError, match=message):
        load(environ={name: value})


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml", environ={})


def test_every_setting_has_a_documented_default_that_validates():
    for setting in SETTINGS:
        assert setting.doc
        if setting.default is not None:
            configuration._parse(setting, setting.default, "default")


def test_the_typed_sections_hold_every_setting_of_the_table_with_its_type():
    kinds = {"str": str, "int": int, "port": int, "float": float, "bool": bool, "list": list, "table": dict}
    typed = {f"{section}.{f.name}": f.type for section, kind in SECTIONS.items() for f in dataclasses.fields(kind)}
    assert len(typed) == len(SETTINGS) > 100 and set(typed) == {s.key for s in SETTINGS}
    config = load(environ={"TWITCHCREMENT_KAFKA_SASL_PASSWORD": "pw"})
    for setting in SETTINGS:
        section, name = setting.key.split(".")
        value = getattr(getattr(config, section), name)
        assert value is config.values[setting.key]  # the section holds the checked value itself
        expected = "Secret" if setting.secret else "str" if setting.kind == "hosts" else kinds[setting.kind].__name__
        assert str(typed[setting.key]).startswith(expected), (setting.key, typed[setting.key])
        assert value is None or isinstance(value, Secret if setting.secret else kinds.get(setting.kind, str))
    assert (
        config.kafka.sasl_password.reveal() == "pw"
        and config.with_overrides(detector__window_s=5).detector.window_s == 5
    )


@pytest.mark.parametrize(
    "line, complaint",
    [
        ("config.detector.window_s + 1", None),
        ("config.detector.windw_s", '"DetectorSection" has no attribute "windw_s"'),
        ("config.dectector.window_s", '"Config" has no attribute "dectector"'),
        ("config.kafka.chat_topic + 1", 'Unsupported operand types for + ("str" and "int")'),
    ],
)
def test_a_misspelt_setting_fails_the_type_check(tmp_path, line, complaint):
    code = tmp_path / "reads_config.py"
    code.write_text(f"from twitchcrement.config import load\n\nconfig = load()\nvalue = {line}\n")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(code)],
        capture_output=True,
        text=True,
        cwd=configuration.PROJECT_ROOT,
        timeout=300,
    )
    if complaint is None:
        assert checked.returncode == 0, checked.stdout
    else:
        assert checked.returncode == 1 and complaint in checked.stdout, checked.stdout


def test_readme_configuration_reference_is_current():
    readme = (configuration.PROJECT_ROOT / "README.md").read_text()
    assert configuration.reference_markdown() in readme, (
        "run `python -m twitchcrement.config --write-readme` to refresh the README table"
    )


def test_unreachable_kafka_fails_fast_naming_the_key():
    config = load(environ={"KAFKAPORT": "127.0.0.1:1", "TWITCHCREMENT_KAFKA_CONNECT_TIMEOUT_S": "2"})
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"kafka.bootstrap_servers=127.0.0.1:1"):
        kafka_admin(config)
    assert time.monotonic() - started < 30


def test_unreachable_cassandra_fails_fast_naming_the_key():
    config = load(
        environ={
            "CASSANDRA_ADDRESS": "127.0.0.1",
            "CASSANDRA_PORT": "1",
            "TWITCHCREMENT_CASSANDRA_CONNECT_TIMEOUT_S": "2",
        }
    )
    with pytest.raises(ServiceUnavailable, match=r"cassandra.hosts=127.0.0.1 port 1"):
        cassandra_session(config)


# --- security settings: secrets from the environment or files only, and settings that go together ----------------
def test_a_secret_in_the_config_file_is_refused_without_showing_it(tmp_path):
    path = tmp_path / "twitchcrement.toml"
    path.write_text('[kafka]\nsasl_password = "hunter2-in-clear"\n')
    with pytest.raises(ConfigError) as refused:
        load(path, environ={})
    message = str(refused.value)
    assert "kafka.sasl_password" in message and "TWITCHCREMENT_KAFKA_SASL_PASSWORD" in message
    assert "kafka.sasl_password_file" in message and "hunter2" not in message


def test_secrets_come_from_the_environment_or_a_file_and_never_print(tmp_path):
    secret_file = tmp_path / "cassandra-password"
    secret_file.write_text("from-a-file-3f9c\n")
    path = tmp_path / "twitchcrement.toml"
    path.write_text(
        f'[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_username = "tc"\n'
        f'[cassandra]\nusername = "tc"\npassword_file = "{secret_file}"\n'
    )
    config = load(path, environ={"TWITCHCREMENT_KAFKA_SASL_PASSWORD": "from-the-env-77a1"})
    assert config.kafka.sasl_password.reveal() == "from-the-env-77a1"
    assert config.cassandra.password.reveal() == "from-a-file-3f9c"  # its first line, without the newline
    shown = repr(config) + str(config.values) + f"{config.cassandra.password}"
    assert "from-the-env" not in shown and "from-a-file" not in shown and "***" in shown
    # A secret that fails its check is quoted as *** in the error, too.
    with pytest.raises(ConfigError, match=r"config kafka.sasl_password_file = '/nonexistent/pw': cannot read it"):
        config.with_overrides(kafka__sasl_password_file="/nonexistent/pw", kafka__sasl_password="")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TWITCHCREMENT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs kafka.sasl_username and a password"),
        (
            {"TWITCHCREMENT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TWITCHCREMENT_KAFKA_SASL_USERNAME": "tc"},
            "needs kafka.sasl_username and a password",
        ),
        ({"TWITCHCREMENT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        ({"TWITCHCREMENT_KAFKA_SASL_MECHANISM": "GSSAPI"}, "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        ({"TWITCHCREMENT_CASSANDRA_USERNAME": "tc"}, "a user name needs a password"),
        ({"TWITCHCREMENT_CASSANDRA_SSL_CAFILE": "/nonexistent/ca.pem"}, "cassandra.ssl_cafile .*no such file"),
        ({"TWITCHCREMENT_KAFKA_SSL_CERTFILE": "/etc/hostname"}, "needs its key, kafka.ssl_keyfile"),
        ({"TWITCHCREMENT_CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy"}, "cassandra.datacenters"),
        ({"TWITCHCREMENT_CASSANDRA_DATACENTERS": "dc1=three"}, "whole replication factor above 0"),
        ({"TWITCHCREMENT_CASSANDRA_DATACENTERS": "dc1"}, "key=value pairs"),
        ({"TWITCHCREMENT_CASSANDRA_DATACENTERS": "dc'1=3"}, "data centre names are letters"),
    ],
)
def test_security_settings_that_go_together_fail_in_one_line(environ, expected):
    with pytest.raises(ConfigError, match=expected) as refused:
        load(environ=environ)
    assert "\n" not in str(refused.value)


def test_keyspace_replication_follows_the_strategy():
    from services.schema import cql_statements

    simple = cql_statements(load(environ={"TWITCHCREMENT_CASSANDRA_REPLICATION_FACTOR": "3"}))[0]
    assert "{'class': 'SimpleStrategy', 'replication_factor': 3}" in simple
    spread = load(
        environ={
            "TWITCHCREMENT_CASSANDRA_REPLICATION_STRATEGY": "NetworkTopologyStrategy",
            "TWITCHCREMENT_CASSANDRA_DATACENTERS": "eu-west=3, us_east=2",
        }
    )
    assert "{'class': 'NetworkTopologyStrategy', 'eu-west': 3, 'us_east': 2}" in cql_statements(spread)[0]
