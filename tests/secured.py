"""A secured Kafka broker (SASL_SSL, SCRAM) and a secured Cassandra node (PasswordAuthenticator, client TLS), with
a certificate authority made here by openssl and keytool: what an operator's production clusters ask of clients.

They run beside the test run's open services, on their own ports and data folder. Credentials are made per run;
the Cassandra role's password is the one constant (CQL DDL takes no bind markers), and no log may show any of them.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.local import LocalCassandra, LocalKafka, ServiceError
from twitchcrement import jvm
from twitchcrement.clients import kafka_java_security
from twitchcrement.config import Config

# The secured services' own ports and folder (the open test services use 19xxx and var/test).
SECURED_ENVIRONMENT = {
    "TWITCHCREMENT_LOCAL_DATA_DIR": "var/test-secured",
    "TWITCHCREMENT_LOCAL_KAFKA_PORT": "29092",
    "TWITCHCREMENT_LOCAL_KAFKA_CONTROLLER_PORT": "29093",
    "TWITCHCREMENT_LOCAL_CASSANDRA_PORT": "29042",
    "TWITCHCREMENT_LOCAL_CASSANDRA_STORAGE_PORT": "27000",
    "TWITCHCREMENT_LOCAL_CASSANDRA_JMX_PORT": "27199",
}
KAFKA_ADMIN = "broker-admin"  # the broker's own SCRAM user, made when its storage is formatted
CASSANDRA_SUPERUSER = ("cassandra", "cassandra")  # Cassandra's default superuser, used to create the platform's role
CASSANDRA_USER = "twitchcrement"
CASSANDRA_PASSWORD = "tc-cass-Pw-5d81e3a9c0"  # noqa: S105 - a test node's role, scanned for in every log


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)
    if result.returncode != 0:
        raise ServiceError(f"{what} failed: {(result.stderr or result.stdout).strip()[-2000:]}")


@dataclass(frozen=True)
class Authority:
    """A CA and one server certificate it signed, for localhost and 127.0.0.1."""

    folder: Path
    store_password: str

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def server_pem(self) -> Path:  # key (PKCS#8) then certificate: Kafka's PEM key store
        return self.folder / "server-keystore.pem"

    @property
    def server_p12(self) -> Path:  # Cassandra's key store
        return self.folder / "server.p12"

    @classmethod
    def make(cls, folder: Path, name: str = "twitchcrement test CA") -> Authority:
        folder.mkdir(parents=True, exist_ok=True)
        authority = cls(folder, secrets.token_hex(12))
        ca_key, key, csr, cert = (folder / n for n in ("ca.key", "server.key", "server.csr", "server.pem"))
        openssl = ["openssl"]
        _run(
            [*openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
             str(authority.ca), "-days", "3", "-subj", f"/CN={name}"],
            "making the test CA",
        )  # fmt: skip
        _run(
            [*openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj",
             "/CN=localhost"],
            "making the server's key",
        )  # fmt: skip
        extensions = folder / "san.ext"
        extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _run(
            [*openssl, "x509", "-req", "-in", str(csr), "-CA", str(authority.ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "3", "-extfile", str(extensions)],
            "signing the server's certificate",
        )  # fmt: skip
        authority.server_pem.write_text(key.read_text() + cert.read_text())
        _run(
            [*openssl, "pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-name", "server", "-out",
             str(authority.server_p12), "-passout", f"pass:{authority.store_password}"],
            "making the server's PKCS#12 key store",
        )  # fmt: skip
        # keytool reads the store back: Java (Cassandra) must accept it.
        _run(
            [jvm.jdk_tool("keytool"), "-list", "-keystore", str(authority.server_p12), "-storetype", "PKCS12",
             "-storepass", authority.store_password],
            "checking the key store with keytool",
        )  # fmt: skip
        return authority


class SecuredKafka(LocalKafka):
    """The local broker with one SASL_SSL listener for clients and brokers (PLAIN, SCRAM-SHA-256 and -512)."""

    name = "kafka-secured"

    def __init__(self, config: Config, authority: Authority, admin_password: str, plain_users: dict[str, str]):
        """plain_users: the PLAIN mechanism's users and passwords, which live in the broker's own config."""
        super().__init__(config)
        self.authority, self.admin_password, self.plain_users = authority, admin_password, plain_users

    def listener_properties(self) -> list[str]:
        port, controller = self.config.local.kafka_port, self.config.local.kafka_controller_port
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{KAFKA_ADMIN}" password="{self.admin_password}";'
        )
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required " + " ".join(
            f'user_{user}="{password}"' for user, password in self.plain_users.items()
        )
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=SASL_SSL://localhost:{port}",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={jaas}",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain};",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.authority.server_pem}",
            "ssl.truststore.type=PEM",  # the broker is its own client on the inter-broker listener
            f"ssl.truststore.location={self.authority.ca}",
        ]

    def format_arguments(self) -> list[str]:
        return ["--add-scram", f"SCRAM-SHA-512=[name={KAFKA_ADMIN},password={self.admin_password}]"]

    def add_user(self, mechanism: str, user: str, password: str) -> None:
        """Create a SCRAM user with the broker's own tool (kafka-configs), logged in as the broker's admin (this
        service's config is the admin's)."""
        properties = self.home / "admin.properties"
        # The platform's own Java client settings for the admin's config: the broker's tool logs in with them.
        properties.write_text("".join(f"{key}={value}\n" for key, value in kafka_java_security(self.config).items()))
        properties.chmod(0o600)
        _run(
            [jvm.java_executable(), "-cp", self.classpath,
             f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}", "kafka.admin.ConfigCommand",
             "--bootstrap-server", f"localhost:{self.config.local.kafka_port}",
             "--command-config", str(properties), "--alter", "--entity-type", "users", "--entity-name", user,
             "--add-config", f"{mechanism}=[password={password}]"],
            f"creating SCRAM user {user}",
        )  # fmt: skip


class SecuredCassandra(LocalCassandra):
    """The local node with PasswordAuthenticator and client-to-node TLS that is not optional."""

    name = "cassandra-secured"

    def __init__(self, config: Config, authority: Authority):
        super().__init__(config)
        self.authority = authority

    def security_yaml(self) -> str:
        return f"""\
authenticator: PasswordAuthenticator
authorizer: AllowAllAuthorizer
client_encryption_options:
  enabled: true
  optional: false
  keystore: {self.authority.server_p12}
  keystore_password: {self.authority.store_password}
  store_type: PKCS12
  require_client_auth: false"""

    def add_role(self) -> None:
        """The platform's role, created by the default superuser (as an operator's DBA would)."""
        from twitchcrement.clients import cassandra_session

        session = cassandra_session(self.config, keyspace=False)
        try:
            statement = (
                "CREATE ROLE IF NOT EXISTS twitchcrement WITH PASSWORD = 'tc-cass-Pw-5d81e3a9c0' AND LOGIN = true"
            )
            assert f"'{CASSANDRA_PASSWORD}'" in statement and CASSANDRA_USER in statement
            session.execute(statement)
        finally:
            session.cluster.shutdown()
