"""Where a drain's CPU goes: CPU seconds of every process on the machine that takes part, read from the kernel's
counters (psutil, /proc) before and after, so the split comes from outside the code under test. The Spark JVM is
split further by thread kind (its JIT compilers and garbage collectors against the rest: tasks, the driver's
scheduler, the connectors), because on 2 cores a fresh JVM's compiling is a large part of a short drain."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import psutil

KINDS = (
    "spark jvm: tasks and the rest",
    "spark jvm: JIT compiler",
    "spark jvm: GC",
    "python workers (decode, normalise, detection)",
    "driver (this Python process)",
    "datasketch process",
    "kafka broker",
    "cassandra",
)
# What runs the query's tasks: with more cores these grow with the work, the driver's share does not.
EXECUTOR_KINDS = (
    "spark jvm: tasks and the rest",
    "spark jvm: JIT compiler",
    "spark jvm: GC",
    "python workers (decode, normalise, detection)",
)
_JIT_THREAD = re.compile(r"^C\d CompilerThre|^Sweeper thread")
_GC_THREAD = re.compile(r"^(GC Thread|G1 |VM Periodic|Cleaner)")


def _kind(process: psutil.Process) -> str | None:
    if process.pid == os.getpid():
        return "driver (this Python process)"
    line = " ".join(process.cmdline())
    if "kafka.Kafka" in line:
        return "kafka broker"
    if "cassandra.config" in line or "CassandraDaemon" in line:
        return "cassandra"
    if "pyspark.daemon" in line or "pyspark.worker" in line:
        return "python workers (decode, normalise, detection)"
    if "java" in process.name() and "spark" in line.lower():
        return "spark jvm"
    return None


def _thread_seconds(pid: int, pattern: re.Pattern[str]) -> float:
    """CPU seconds of a process's live threads whose name matches (/proc/<pid>/task/*/stat, in clock ticks)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        if pattern.search(name):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def snapshot() -> dict[str, float]:
    """CPU seconds so far of each kind of process (a Python worker's children, reaped by its daemon, included)."""
    seconds = dict.fromkeys(KINDS, 0.0)
    for process in psutil.process_iter():
        try:
            kind = _kind(process)
            if kind is None:
                continue
            times = process.cpu_times()
            used = times.user + times.system
            if kind == "python workers (decode, normalise, detection)":
                used += times.children_user + times.children_system
            if kind == "driver (this Python process)":
                # the datasketch baseline runs as a child process of the bench and has ended (and been reaped)
                # before a drain's second snapshot: its CPU is in this process's children's counters
                seconds["datasketch process"] += times.children_user + times.children_system
            if kind == "spark jvm":
                jit = _thread_seconds(process.pid, _JIT_THREAD)
                gc = _thread_seconds(process.pid, _GC_THREAD)
                seconds["spark jvm: JIT compiler"] += jit
                seconds["spark jvm: GC"] += gc
                seconds["spark jvm: tasks and the rest"] += used - jit - gc
            else:
                seconds[kind] += used
        except (psutil.Error, OSError):
            continue  # gone meanwhile, or not ours to read
    return seconds


def spent_since(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each kind since `before` (a snapshot)."""
    now = snapshot()
    return {kind: max(0.0, now[kind] - before[kind]) for kind in KINDS}


def per_100k(seconds: dict[str, float], messages: int) -> dict[str, Any]:
    """CPU seconds of each kind, and in all, per 100,000 messages."""
    per = {kind: round(seconds[kind] * 100_000 / max(1, messages), 2) for kind in KINDS}
    return {"per_100k_messages": per, "total_per_100k_messages": round(sum(per.values()), 2)}


def table(systems: dict[str, dict[str, Any]]) -> list[str]:
    measured = {name: s["cpu"] for name, s in systems.items() if s.get("cpu")}
    if not measured:
        return []
    lines = [
        "## CPU by process in the capacity drains (CPU seconds per 100,000 messages, all repetitions)",
        "",
        "From the kernel's counters of every process taking part: wall time is what the table above reports, this",
        "is what the 2 cores spent meanwhile, so a system that waits shows less CPU than wall time.",
        "",
        "| process | " + " | ".join(measured) + " |",
        "|---|" + "---|" * len(measured),
    ]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(f"{c['per_100k_messages'][kind]:,}" for c in measured.values()) + " |")
    lines.append("| **all** | " + " | ".join(f"**{c['total_per_100k_messages']:,}**" for c in measured.values()) + " |")
    return lines
