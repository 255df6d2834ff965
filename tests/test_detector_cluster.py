"""The detector job unchanged on a real Spark standalone cluster: a master and two workers on loopback, started
from pyspark's own spark-class, the job submitted with spark-submit (--jars, --py-files: `make dist`'s wheel)
against the local Kafka and Cassandra."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ingest.synth import Generator, SynthSettings
from tests.conftest import TEST_ENVIRONMENT
from tests.detector_harness import flush_message, fresh_config, produce, spam_records
from tests.test_ingest_twitch import wait_for
from twitchcrement import PROJECT_ROOT, jvm

BIN = Path(sys.executable).parent
MASTER_PORT, MASTER_UI = 17077, 18080


def built_wheel() -> Path:
    """`make dist`'s wheel: what an operator ships to a cluster with --py-files."""
    subprocess.run(
        ["make", "--no-print-directory", "dist"], cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=600
    )
    (wheel,) = (PROJECT_ROOT / "dist").glob("twitchcrement-*.whl")
    return wheel


@pytest.mark.slow
def test_job_runs_unchanged_on_a_standalone_cluster(platform, runtime_python, tmp_path):
    config = fresh_config(platform)
    generator = Generator(
        SynthSettings(
            rate=200, seconds=30, channels=4, seed=31, prefix=f"cl{uuid.uuid4().hex[:6]}", start_ms=1_767_225_600_000
        )
    )
    messages = list(generator)
    produce(config, messages + [flush_message(max(m.sent_ts for m in messages))])

    # The driver and the executors run the Python of a plain `pip install .`: the runtime dependencies only.
    env = {
        **os.environ,
        **TEST_ENVIRONMENT,
        "PYSPARK_PYTHON": str(runtime_python),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_DRIVER_PYTHON": str(runtime_python),
        "SPARK_LOG_DIR": str(tmp_path),
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": config.kafka.chat_topic,
        "TWITCHCREMENT_KAFKA_SPAM_TOPIC": config.kafka.spam_topic,
        "TWITCHCREMENT_KAFKA_DEADLETTER_TOPIC": config.kafka.deadletter_topic,
        "TWITCHCREMENT_DETECTOR_STARTING_OFFSETS": "earliest",
    }
    master_url = f"spark://127.0.0.1:{MASTER_PORT}"
    daemons = []
    log = open(tmp_path / "cluster.log", "ab")
    try:
        daemons.append(
            subprocess.Popen(
                [
                    str(BIN / "spark-class"),
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(MASTER_PORT),
                    "--webui-port",
                    str(MASTER_UI),
                ],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
        for number in range(2):
            daemons.append(
                subprocess.Popen(
                    [
                        str(BIN / "spark-class"),
                        "org.apache.spark.deploy.worker.Worker",
                        master_url,
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "1",
                        "--memory",
                        "1g",
                        "--webui-port",
                        str(MASTER_UI + 1 + number),
                        "--work-dir",
                        str(tmp_path / f"worker{number}"),
                    ],
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
        wait_for(
            lambda: (tmp_path / "cluster.log").read_text(errors="replace").count("Registering worker") >= 2,
            120,
            "two workers registered with the master",
        )
        jars = ",".join(str(j) for j in jvm.classpath("spark"))
        submit = subprocess.run(
            [
                str(BIN / "spark-submit"),
                "--master",
                master_url,
                "--jars",
                jars,
                "--py-files",
                str(built_wheel()),
                "--conf",
                "spark.executor.memory=768m",
                "--conf",
                "spark.cores.max=2",
                str(PROJECT_ROOT / "jobs" / "spam_detector.py"),
                "--available-now",
                "--checkpoint",
                str(tmp_path / "checkpoint"),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert submit.returncode == 0, submit.stderr[-3000:]
        daemon_logs = (tmp_path / "cluster.log").read_text(errors="replace")
        assert "Registering app twitchcrement-spam-detector" in daemon_logs  # really ran on the cluster
        assert daemon_logs.count("Asked to launch executor") >= 2  # on both workers
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(30)
    events, topics = spam_records(config)
    assert len(events) >= 10 and topics
    assert {e.channel for e in events} <= set(generator.channels)
