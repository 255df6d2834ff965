"""One Kafka, one Cassandra and one Spark session per test run, started here on ports apart from the demo's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import services
from services import emote_providers
from twitchcrement import PROJECT_ROOT, logs
from twitchcrement import config as configuration
from twitchcrement.config import project_path

# Set before pyspark.testing imports pyspark.pandas, which warns without it.
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "raw"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"

EMOTE_PROVIDERS_PORT = 18765
# The test run's own services: other ports and another data folder than `make demo`, so both can run at once.
TEST_ENVIRONMENT = {
    "TWITCHCREMENT_LOCAL_DATA_DIR": "var/test",
    "TWITCHCREMENT_LOCAL_KAFKA_PORT": "19092",
    "TWITCHCREMENT_LOCAL_KAFKA_CONTROLLER_PORT": "19093",
    "TWITCHCREMENT_LOCAL_CASSANDRA_PORT": "19042",
    "TWITCHCREMENT_LOCAL_CASSANDRA_STORAGE_PORT": "17000",
    "TWITCHCREMENT_LOCAL_CASSANDRA_JMX_PORT": "17199",
    "TWITCHCREMENT_SPARK_MASTER": "local[2]",
    "TWITCHCREMENT_SPARK_CHECKPOINT_DIR": "var/test/checkpoints",
    "TWITCHCREMENT_KAFKA_CONNECT_TIMEOUT_S": "10",
    # No metrics endpoints unless a test asks for one: the run starts many processes, and the demo may be up.
    "TWITCHCREMENT_INGEST_METRICS_PORT": "0",
    "TWITCHCREMENT_DETECTOR_METRICS_PORT": "0",
    "TWITCHCREMENT_DASHBOARD_METRICS_PORT": "0",
    # BTTV, FFZ and 7TV: the local stand-in (services.emote_providers) with the synthetic world's sets
    **emote_providers.environment(f"http://127.0.0.1:{EMOTE_PROVIDERS_PORT}"),
    "TWITCHCREMENT_EMOTES_CACHE_DIR": "var/test/emotes",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that kill or stop the shared services go last: clients of the run's Spark session (connector
    sessions, cached producers) are not then left to find their way back during other tests."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_services") is not None)


def test_config(**extra: str) -> configuration.Config:
    """The test run's config: the project's file plus TEST_ENVIRONMENT, ignoring the caller's environment."""
    return configuration.load(environ={**TEST_ENVIRONMENT, **extra})


test_config.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session", autouse=True)
def emote_providers():
    """The emote APIs' stand-in, up for the whole run: every process that writes chat marks emotes from it."""
    from ingest.synth import THIRD_PARTY_SETS
    from services.emote_providers import EmoteProviders

    stand_in = EmoteProviders(THIRD_PARTY_SETS, port=EMOTE_PROVIDERS_PORT)
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="session")
def config() -> configuration.Config:
    logs.setup("INFO")
    return test_config()


@pytest.fixture(scope="session")
def platform(config: configuration.Config):
    """Real Kafka and Cassandra for the whole run, with the topics and tables; stopped cleanly at the end.
    Each run starts from empty data, so no earlier run's topics, rows or schema leak into it."""
    services.down(config)
    shutil.rmtree(project_path(config.local.data_dir), ignore_errors=True)
    services.up(config)
    yield config
    services.down(config)


@pytest.fixture(scope="session")
def spark(platform: configuration.Config):
    from twitchcrement.spark import session

    spark = session(platform, app_name="twitchcrement-tests")
    yield spark
    gateway = spark.sparkContext._gateway
    spark.stop()
    # Stop the JVM too, before the services go: its Cassandra connector would otherwise log reconnect attempts.
    gateway.shutdown()
    gateway.proc.terminate()
    gateway.proc.wait(30)


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory) -> Path:
    """A new virtualenv with `pip install .` of the checkout and nothing else (no dev, notebooks or bench extras):
    what an operator installs, and what a Spark executor needs. Downloads come from pip's cache, which the
    project's own `make setup` filled."""
    venv = tmp_path_factory.mktemp("runtime-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(PROJECT_ROOT / "constraints.txt"),
            str(PROJECT_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    shutil.rmtree(PROJECT_ROOT / "build", ignore_errors=True)  # setuptools' in-tree build folder
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"the real captures are not here ({SHARED_DATA}): run beside ../shared")
    return SHARED_DATA


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def recovery():
    """Fault tests record how long recovery took; the run ends by writing them to test-artifacts/recovery.md."""
    measured: list[tuple[str, float, str]] = []
    yield lambda fault, seconds, detail="": measured.append((fault, seconds, detail))
    if measured:
        ARTIFACTS.mkdir(exist_ok=True)
        lines = ["| fault | recovered in s | detail |", "|---|---|---|"]
        lines += [f"| {fault} | {seconds:.1f} | {detail} |" for fault, seconds, detail in measured]
        (ARTIFACTS / "recovery.md").write_text("\n".join(lines) + "\n")
