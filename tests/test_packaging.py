"""The project as people install it: `pip install .` in a new virtualenv gives a working `twitchcrement` command
with only the runtime dependencies, the `python -m` forms keep working, and the README's spark-submit line names the
connector versions the build resolves (jvm/spark.pom.xml)."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from twitchcrement import PROJECT_ROOT
from twitchcrement.cli import COMMANDS


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd="/")


@pytest.mark.slow
def test_pip_install_gives_a_twitchcrement_command_with_runtime_dependencies_only(runtime_python):
    twitchcrement = str(runtime_python.parent / "twitchcrement")
    top = run(twitchcrement, "--help")
    assert top.returncode == 0, top.stderr
    assert all(name in top.stdout for name in COMMANDS)
    detector = run(twitchcrement, "detector", "--help")
    assert detector.returncode == 0, detector.stderr
    assert "usage: twitchcrement detector" in detector.stdout and "--available-now" in detector.stdout
    # The installed package runs from site-packages (cwd is /, not the checkout) and carries its schema file.
    where = run(str(runtime_python), "-c", "import services.schema as s; print(s.__file__, s.CQL_FILE.is_file())")
    assert "site-packages" in where.stdout and where.stdout.split()[-1] == "True", where.stderr
    # No dev, notebooks or bench extra came with it.
    for extra_module in ("pytest", "selenium", "jupyterlab", "datasketch", "confluent_kafka", "ruff"):
        missing = run(str(runtime_python), "-c", f"import {extra_module}")
        assert missing.returncode != 0, f"{extra_module} is installed without its extra"


def test_a_wrong_config_value_is_one_line_from_every_command(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka]\npartitions = 'many'\n")
    for name in COMMANDS:
        if name == "bench":  # its own isolated config (bench.isolation); no --config
            continue
        args = {
            "ingest": ["synth", "--seconds", "1", "--labels", str(tmp_path / "labels.jsonl")],
            "services": ["status"],
        }.get(name, [])
        done = run(sys.executable, "-m", "twitchcrement.cli", name, "--config", str(bad), *args)
        assert done.returncode == 1, (name, done.stderr[-500:])
        assert done.stderr.strip().splitlines() == [
            f"error: config kafka.partitions = 'many' (file {bad}): must be a whole number"
        ], name


@pytest.mark.parametrize("module", ["ingest", "dashboard", "services", "bench.run", "twitchcrement.cli"])
def test_the_python_m_forms_keep_working(module):
    done = run(sys.executable, "-m", module, "--help")
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-500:]


def test_readme_spark_submit_packages_are_the_versions_the_build_resolves():
    pom = ElementTree.parse(PROJECT_ROOT / "jvm" / "spark.pom.xml")
    resolved = set()
    for dependency in pom.getroot().iter():
        if dependency.tag.rsplit("}", 1)[-1] == "dependency":
            fields = {child.tag.rsplit("}", 1)[-1]: child.text for child in dependency}
            resolved.add(f"{fields['groupId']}:{fields['artifactId']}:{fields['version']}")
    assert resolved
    lines = re.findall(r"--packages\s+(\S+)", (PROJECT_ROOT / "README.md").read_text())
    assert lines, "the README has no spark-submit --packages line"
    for line in lines:
        assert set(line.split(",")) == resolved, line


MISSING_JAR = """
from pyspark.sql import SparkSession
from jobs.pipeline import DetectorSettings, JvmFunctionMissing, register_signature_function
from twitchcrement import config
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
try:
    register_signature_function(spark, DetectorSettings.from_config(config.load()))
    print("registered")
except JvmFunctionMissing as exc:
    print(f"missing: {exc}")
"""


@pytest.mark.slow
def test_a_spark_without_the_detectors_jar_is_told_what_to_pass():
    """A cluster submitted without --jars: Spark runs, but the detector's JVM function is not there."""
    done = subprocess.run(
        [sys.executable, "-c", MISSING_JAR], capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == (
        "missing: the detector's JVM function twitchcrement.MinHashSignature is not on Spark's classpath: `make jars` "
        f"builds {PROJECT_ROOT}/.cache/jars/twitchcrement-udf.jar; with spark-submit pass dist/twitchcrement-udf.jar "
        "(`make dist`) with --jars"
    )
