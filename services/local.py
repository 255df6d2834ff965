"""Single-node Kafka (KRaft) and Cassandra run from the Maven-resolved jars on 127.0.0.1, for the demo and tests.

Each service keeps its data, logs and pid under local.data_dir/NAME. Start is idempotent and returns only once
the service answers for real (a produce/consume round trip; a CQL query). Failures are one line that says
what went wrong and, when the service died, where its log is and how it ends.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from twitchcrement import jvm, logs
from twitchcrement.config import Config, project_path
from twitchcrement.errors import UserError

log = logging.getLogger(__name__)


class ServiceError(UserError, RuntimeError):
    """A local service could not be started, reached or stopped; the message says why in one line (plus log tail)."""


@dataclass(frozen=True)
class Status:
    name: str
    state: str  # running | stopped | external | stale (pid file of a dead process)
    pid: int | None
    address: str
    log: Path | None
    rss_mb: float | None = None

    def line(self) -> str:
        extra = f" pid={self.pid} rss={self.rss_mb:.0f}MB" if self.pid and self.rss_mb is not None else ""
        logpart = f" log={self.log}" if self.log else ""
        return f"{self.name}: {self.state} at {self.address}{extra}{logpart}"


def _not_transient() -> tuple[type[BaseException], ...]:
    from kafka.errors import KafkaConfigurationError, UnsupportedCodecError

    return (ImportError, NameError, AttributeError, TypeError, KafkaConfigurationError, UnsupportedCodecError)


_NOT_TRANSIENT = _not_transient()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(content[-lines:])


class ManagedProcess:
    """A long-running process started in its own session, tracked by a pid file under local.data_dir/NAME."""

    name = "process"
    program = "python"  # what the process's name contains, so a reused pid is not mistaken for ours

    def __init__(self, config: Config):
        self.config = config
        self.home = project_path(config.local.data_dir) / self.name
        self.pidfile = self.home / "pid"
        self.logfile = self.home / "logs" / "stdout.log"

    # --- what each process defines
    def command(self) -> list[str]:
        raise NotImplementedError

    def ports(self) -> dict[str, int]:
        return {}

    def is_external(self) -> bool:
        return False

    def address(self) -> str:
        return "-"

    def prepare(self) -> None:
        """Write config files and initialise storage before the first start."""

    def probe(self) -> None:
        """Raise if the process does not answer yet; return when it is really usable."""

    # --- shared lifecycle
    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or self.program not in proc.name():
                return None
        except psutil.Error:
            return None
        return pid

    def status(self) -> Status:
        if self.is_external():
            return Status(self.name, "external", None, self.address(), None)
        pid = self.pid()
        if pid is None:
            state = "stale" if self.pidfile.exists() else "stopped"
            return Status(self.name, state, None, self.address(), self.logfile)
        rss = psutil.Process(pid).memory_info().rss / 2**20
        return Status(self.name, "running", pid, self.address(), self.logfile, rss)

    def environment(self) -> dict[str, str] | None:
        """The process's environment (None: this one's)."""
        return None

    def start(self) -> Status:
        if self.is_external():
            log.info(
                "using external service, not starting a local one",
                extra={"service": self.name, "address": self.address()},
            )
            return self.status()
        if self.pid() is not None:
            self._wait_ready(None)
            return self.status()
        for key, port in self.ports().items():
            if not _port_free(port):
                raise ServiceError(
                    f"local {self.name} cannot start: port {port} ({key}) is taken by another "
                    f"process; free it or set {key} to another port"
                )
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        command = self.command()
        self.prepare()
        log.info("starting", extra={"service": self.name, "address": self.address(), "log": str(self.logfile)})
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
                env=self.environment(),
            )
        self.pidfile.write_text(str(proc.pid))
        started = time.monotonic()
        self._wait_ready(proc)
        log.info("ready", extra={"service": self.name, "seconds": round(time.monotonic() - started, 1)})
        return self.status()

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.config.local.start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = proc.poll() if proc is not None else (None if self.pid() is not None else -1)
            if code is not None:
                self.pidfile.unlink(missing_ok=True)
                raise ServiceError(
                    f"local {self.name} died during start-up (exit code {code}); "
                    f"log {self.logfile} ends with:\n{_tail(self.logfile)}"
                )
            try:
                with logs.quiet("cassandra", "kafka"):
                    self.probe()
                return
            except _NOT_TRANSIENT:
                raise  # a bug or a missing library, not a service that is still starting
            except Exception as exc:  # not ready yet: keep polling until the deadline
                last_error = exc
                time.sleep(1.0)
        raise ServiceError(
            f"local {self.name} did not become ready in {self.config.local.start_timeout_s:.0f} s "
            f"(last error: {last_error}); log {self.logfile} ends with:\n{_tail(self.logfile)}"
        )

    def stop(self, timeout_s: float = 60.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return
        log.info("stopping", extra={"service": self.name, "pid": pid})
        proc = psutil.Process(pid)
        os.killpg(pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except psutil.TimeoutExpired:
            log.warning("did not stop in time, killing", extra={"service": self.name, "pid": pid})
            os.killpg(pid, signal.SIGKILL)
            proc.wait(10)
        self.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests: no clean shutdown."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            psutil.Process(pid).wait(10)


class JavaService(ManagedProcess):
    """A JVM service run from the Maven-resolved jars of jvm/<jars>.pom.xml."""

    program = "java"
    jars = ""
    main_class = ""

    @property
    def classpath(self) -> str:
        return ":".join(str(j) for j in jvm.classpath(self.jars))

    def jvm_options(self) -> list[str]:
        raise NotImplementedError

    def arguments(self) -> list[str]:
        return []

    def command(self) -> list[str]:
        return [jvm.java_executable(), *self.jvm_options(), "-cp", self.classpath, self.main_class, *self.arguments()]


class LocalKafka(JavaService):
    name = "kafka"
    jars = "kafka"
    main_class = "kafka.Kafka"

    def ports(self) -> dict[str, int]:
        return {
            "local.kafka_port": self.config.local.kafka_port,
            "local.kafka_controller_port": self.config.local.kafka_controller_port,
        }

    def is_external(self) -> bool:
        return not self.config.kafka_is_local

    def address(self) -> str:
        return self.config.kafka_bootstrap

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    def jvm_options(self) -> list[str]:
        heap = self.config.local.kafka_heap
        return [
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
        ]

    def arguments(self) -> list[str]:
        return [str(self.properties_file)]

    def listener_properties(self) -> list[str]:
        """The broker's listeners: one plain one for clients and brokers, and the KRaft controller's."""
        port, controller = self.config.local.kafka_port, self.config.local.kafka_controller_port
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    def format_arguments(self) -> list[str]:
        """More arguments of the storage format that precedes the first start (e.g. SCRAM users to create)."""
        return []

    def prepare(self) -> None:
        data = self.home / "data"
        partitions = self.config.kafka.partitions
        self.properties_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.config.local.kafka_controller_port}",
                    "controller.listener.names=CONTROLLER",
                    *self.listener_properties(),
                    f"log.dirs={data}",
                    f"num.partitions={partitions}",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=24",
                    "log.segment.bytes=268435456",
                    "message.max.bytes=8388608",
                    "",
                ]
            )
        )
        (self.home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = error",
                    "appender.file.type = File",
                    "appender.file.name = file",
                    f"appender.file.fileName = {self.home / 'logs' / 'server.log'}",
                    "appender.file.layout.type = PatternLayout",
                    "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = info",
                    "rootLogger.appenderRef.file.ref = file",
                    "logger.kafka.name = kafka",
                    "logger.kafka.level = info",
                    "logger.apache.name = org.apache",
                    "logger.apache.level = warn",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            # KRaft needs its storage formatted once with a cluster id before the first start.
            result = subprocess.run(
                [
                    jvm.java_executable(),
                    "-cp",
                    self.classpath,
                    f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    uuid.uuid4().hex[:22],
                    "-c",
                    str(self.properties_file),
                    "--ignore-formatted",
                    *self.format_arguments(),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if result.returncode != 0:
                raise ServiceError(
                    f"formatting Kafka storage in {data} failed: "
                    f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}"
                )

    def probe(self) -> None:
        from services.schema import kafka_round_trip

        kafka_round_trip(self.config)


class LocalCassandra(JavaService):
    name = "cassandra"
    jars = "cassandra"
    main_class = "org.apache.cassandra.service.CassandraDaemon"

    def ports(self) -> dict[str, int]:
        return {
            "local.cassandra_port": self.config.local.cassandra_port,
            "local.cassandra_storage_port": self.config.local.cassandra_storage_port,
            "local.cassandra_jmx_port": self.config.local.cassandra_jmx_port,
        }

    def is_external(self) -> bool:
        return not self.config.cassandra_is_local

    def address(self) -> str:
        return f"{','.join(self.config.cassandra_hosts)}:{self.config.cassandra_port}"

    @property
    def yaml_file(self) -> Path:
        return self.home / "conf" / "cassandra.yaml"

    def jvm_options(self) -> list[str]:
        heap = self.config.local.cassandra_heap
        jamm = next((j for j in jvm.classpath("cassandra") if j.name.startswith("jamm-")), None)
        options = [
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:+ParallelRefProcEnabled",
            "-XX:MaxTenuringThreshold=1",
            "-XX:MaxGCPauseMillis=300",
            "-XX:+PerfDisableSharedMem",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.net.preferIPv4Stack=true",
            "-Djava.awt.headless=true",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config=file://{self.yaml_file}",
            f"-Dcassandra.storagedir={self.home / 'data'}",
            f"-Dcassandra.logdir={self.home / 'logs'}",
            f"-Dlogback.configurationFile={self.home / 'conf' / 'logback.xml'}",
            f"-Dcassandra.jmx.local.port={self.config.local.cassandra_jmx_port}",
            # A single node has nobody to gossip with: skip the waits meant for clusters.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=0",
            "-Dcassandra.superuser_setup_delay_ms=0",
            # Java 17 module access that Cassandra 5 needs (its conf/jvm17-server.options).
            "-Djdk.attach.allowAttachSelf=true",
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true",
            "-Dio.netty.allocator.maxOrder=11",
        ]
        for export in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        ):
            options += ["--add-exports", f"{export}=ALL-UNNAMED"]
        for opened in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
        ):
            options += ["--add-opens", f"{opened}=ALL-UNNAMED"]
        if jamm is not None:
            options.append(f"-javaagent:{jamm}")
        return options

    def security_yaml(self) -> str:
        """Who may connect, and how: anyone, in the clear (the local node is on loopback only)."""
        return "authenticator: AllowAllAuthenticator\nauthorizer: AllowAllAuthorizer"

    def prepare(self) -> None:
        conf, data = self.home / "conf", self.home / "data"
        conf.mkdir(parents=True, exist_ok=True)
        storage = self.config.local.cassandra_storage_port
        self.yaml_file.write_text(f"""\
cluster_name: twitchcrement-local
num_tokens: 16
allocate_tokens_for_local_replication_factor: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{storage}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage}
native_transport_port: {self.config.local.cassandra_port}
start_native_transport: true
data_file_directories: [{data / "data"}]
commitlog_directory: {data / "commitlog"}
saved_caches_directory: {data / "saved_caches"}
hints_directory: {data / "hints"}
cdc_raw_directory: {data / "cdc_raw"}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
storage_compatibility_mode: NONE
auto_snapshot: false
concurrent_reads: 8
concurrent_writes: 16
concurrent_counter_writes: 8
{self.security_yaml()}
sasi_indexes_enabled: false
materialized_views_enabled: false
""")
        (conf / "logback.xml").write_text(f"""\
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{self.home / "logs" / "system.log"}</file>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/><appender-ref ref="STDOUT"/></root>
</configuration>
""")

    def probe(self) -> None:
        from twitchcrement.clients import cassandra_session

        session = cassandra_session(self.config, keyspace=False)
        try:
            session.execute("SELECT release_version FROM system.local")
        finally:
            session.cluster.shutdown()


def all_services(config: Config) -> list[ManagedProcess]:
    return [LocalKafka(config), LocalCassandra(config)]
