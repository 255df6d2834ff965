"""The benchmarks leave the user's history alone: their own keyspace and topics, dropped when they end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import TEST_ENVIRONMENT
from twitchcrement import PROJECT_ROOT
from twitchcrement.clients import cassandra_session, kafka_admin


@pytest.mark.slow
def test_a_bench_run_writes_nothing_into_the_configured_keyspace_and_topics(platform, tmp_path):
    env = {**os.environ, **TEST_ENVIRONMENT, "TWITCHCREMENT_LOCAL_DATA_DIR": str(PROJECT_ROOT / "var" / "test")}
    admin = kafka_admin(platform)
    try:
        topics_before = set(admin.list_topics())
    finally:
        admin.close()
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = (tmp_path / "latest.md").read_text()
    assert "detector" in written and "Replay: reading each format" in written  # it measured something
    session = cassandra_session(platform, keyspace=False)
    try:
        keyspaces = {r.keyspace_name for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")}
        session.set_keyspace(platform.cassandra.keyspace)
        channels = {r.channel for r in session.execute("SELECT channel FROM spam_events_by_channel")}
    finally:
        session.cluster.shutdown()
    assert not [k for k in keyspaces if k.startswith("twitchcrement_bench")]
    assert not [c for c in channels if c.startswith(("bench", "load", "zz_flush"))]
    admin = kafka_admin(platform)
    try:
        left = [t for t in set(admin.list_topics()) - topics_before if t.startswith("bench")]
    finally:
        admin.close()
    assert left == []
