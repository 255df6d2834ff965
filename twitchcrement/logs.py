"""Structured, quiet-by-default logging: one line per event, logfmt (key=value) or JSON."""

from __future__ import annotations

import collections
import json
import logging
import sys
import time

# Attributes every LogRecord has; anything else passed through `extra=` is a field of the event.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info).splitlines()[-1]
    return fields


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


def setup(level: str = "INFO", fmt: str = "logfmt") -> None:
    """Our loggers at `level`; third-party libraries (kafka, cassandra, py4j, urllib3) only from WARNING."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for ours in ("twitchcrement", "services", "ingest", "jobs", "dashboard", "bench"):
        logging.getLogger(ours).setLevel(level)
    # kafka-python logs every failed connection attempt (several a second while a broker is away) and warns about
    # its own event loop timing under load: not actionable. Each part says in one line of its own when Kafka is
    # away (the detector's "kafka unreachable", ingest's sink, the dashboard's banner). Its warnings are kept, not
    # shown: they are where a refused login or an untrusted certificate is told (twitchcrement.clients reads them).
    kafka = logging.getLogger("kafka")
    kafka.setLevel(logging.WARNING)
    kafka.propagate = False
    kafka.handlers[:] = [KAFKA_WARNINGS]


class RecentRecords(logging.Handler):
    """Keeps the last records it is given (time, message), for code that explains a failure after the fact."""

    def __init__(self, size: int = 5000):
        super().__init__()
        self.records: collections.deque[tuple[float, str]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, record.getMessage()))

    def since(self, started: float) -> list[str]:
        return [message for created, message in list(self.records) if created >= started]


KAFKA_WARNINGS = RecentRecords()


class quiet:
    """Silence some loggers for a while: e.g. a driver's connection errors while we poll a service that is starting."""

    def __init__(self, *names: str):
        self.loggers = [logging.getLogger(n) for n in names]
        self.saved: list[int] = []

    def __enter__(self) -> quiet:
        self.saved = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.CRITICAL + 1)
        return self

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self.loggers, self.saved, strict=True):
            lg.setLevel(level)
