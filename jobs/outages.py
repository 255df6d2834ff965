"""Is a failure a service being away (worth waiting for and trying again), or one that trying again cannot fix?

Told by the type of the error and of its causes, never by the words of its message: the Python errors of the Kafka
client and of the network, and across py4j the Java exceptions (and their causes) of Spark's Kafka source, of
spark-cassandra-connector and of the JVM's network. A Spark task's failure reaches the driver as a SparkException
whose cause is the task's own exception, so a Cassandra node that went away in a write task is found in the chain.
"""

from __future__ import annotations

from typing import Any

from kafka.errors import KafkaError
from py4j.protocol import Py4JJavaError

# Java classes (and their subclasses) of a service that is away or overloaded: the network, Kafka's own retriable
# errors (timeouts, a leader moving, a broker disconnecting), and the Cassandra driver's "no node could be reached",
# timeouts, closed connections and "not enough replicas up".
JAVA_OUTAGES = (
    "java.net.ConnectException",
    "java.net.SocketException",
    "java.net.SocketTimeoutException",
    "java.net.NoRouteToHostException",
    "java.nio.channels.ClosedChannelException",
    "java.util.concurrent.TimeoutException",
    "org.apache.kafka.common.errors.RetriableException",
    "org.apache.kafka.common.errors.TimeoutException",
    "com.datastax.oss.driver.api.core.AllNodesFailedException",
    "com.datastax.oss.driver.api.core.DriverTimeoutException",
    "com.datastax.oss.driver.api.core.connection.ClosedConnectionException",
    "com.datastax.oss.driver.api.core.connection.ConnectionInitException",
    "com.datastax.oss.driver.api.core.connection.HeartbeatException",
    "com.datastax.oss.driver.api.core.servererrors.UnavailableException",
    "com.datastax.oss.driver.api.core.servererrors.OverloadedException",
    "com.datastax.oss.driver.api.core.servererrors.QueryConsistencyException",  # read and write timeouts
)
# And exceptions of a general class that mean an outage only where they are thrown: the Cassandra driver's own
# connection machinery gives up with IllegalStateException ("Control channel not available, aborting schema
# refresh") when its node has gone while the connector writes.
JAVA_OUTAGES_FROM = (("java.lang.IllegalStateException", "com.datastax.oss.driver.internal.core."),)
MAX_CAUSES = 20  # a cause chain is short; this bounds a chain that loops


def is_outage(exc: BaseException) -> bool:
    """The error (or one of its causes) of a service that is down, unreachable or overloaded."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KafkaError):
            return bool(current.retriable)
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        java = _java_throwable(current)
        if java is not None and _java_outage(java):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException) -> str:
    """The error in one line: a Java exception as its class and message, not py4j's "error calling o123.save"."""
    java = _java_throwable(exc)
    text = str(java.toString()) if java is not None else f"{type(exc).__name__}: {exc}"
    return (text.strip().splitlines() or [type(exc).__name__])[0][:500]


def _java_throwable(exc: BaseException) -> Any:
    """The Java exception behind a py4j error or a PySpark CapturedException (StreamingQueryException, ...)."""
    if isinstance(exc, Py4JJavaError):
        return exc.java_exception
    return getattr(exc, "_origin", None)


def _java_outage(throwable: Any) -> bool:
    """Whether the Java exception, or one of its causes, is of a class in JAVA_OUTAGES or a subclass of one."""
    for _ in range(MAX_CAUSES):
        if throwable is None:
            return False
        java_class = throwable.getClass()
        while java_class is not None:
            if java_class.getName() in JAVA_OUTAGES:
                return True
            java_class = java_class.getSuperclass()
        if _thrown_by(throwable, JAVA_OUTAGES_FROM):
            return True
        cause = throwable.getCause()
        throwable = None if cause is None or cause.equals(throwable) else cause
    return False


def _thrown_by(throwable: Any, kinds: tuple[tuple[str, str], ...]) -> bool:
    """Whether the exception is of one of the classes, thrown in code under the package named with it."""
    name = throwable.getClass().getName()
    packages = [package for class_name, package in kinds if class_name == name]
    if not packages:
        return False
    frames = throwable.getStackTrace()
    return len(frames) > 0 and str(frames[0].getClassName()).startswith(tuple(packages))
