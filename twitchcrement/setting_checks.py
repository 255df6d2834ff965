"""The checks of setting values beyond their type: each returns a complaint a user understands, or None."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def metrics_port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 1 to 65535, or 0 for no endpoint"


def one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else f"must be one of {', '.join(choices)}"


_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CQL_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_SIZE_RE = re.compile(r"^\d+[kmgKMG]$")


def subset_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        unknown = [v for v in value if v not in choices]
        return f"unknown {', '.join(map(repr, unknown))}; choose among {', '.join(choices)}" if unknown else None

    return check


def topic(value: str) -> str | None:
    return None if _TOPIC_RE.match(value) else "must be a Kafka topic name (letters, digits, '.', '_', '-')"


def cql_name(value: str) -> str | None:
    return None if _CQL_NAME_RE.match(value) else "must be a lower-case CQL name (letters, digits, '_')"


def jvm_size(value: str) -> str | None:
    return None if _SIZE_RE.match(value) else "must be a JVM memory size such as 512m or 2g"


def speed(value: str) -> str | None:
    if value == "max":
        return None
    try:
        return None if float(value) > 0 else "must be greater than 0, or max"
    except ValueError:
        return "must be a number greater than 0, or max"


_DATACENTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def replication(value: dict[str, str]) -> str | None:
    names = [dc for dc in value if not _DATACENTER_RE.match(dc)]
    if names:
        return f"data centre names are letters, digits, '_', '.', '-' (not {', '.join(map(repr, names))})"
    wrong = [f"{dc} = {factor!r}" for dc, factor in value.items() if not (factor.isdigit() and int(factor) > 0)]
    return f"each data centre needs a whole replication factor above 0 (not {', '.join(wrong)})" if wrong else None


def spark_conf(value: dict[str, str]) -> str | None:
    wrong = [k for k in value if not k.startswith("spark.")]
    return f"keys must start with 'spark.' (not {', '.join(map(repr, wrong))})" if wrong else None  # one line
