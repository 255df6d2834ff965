"""The platform against secured clusters, as an operator runs it: a Kafka broker that takes only SASL_SSL (SCRAM
users made by the broker's own tool, a CA and certificate made here by openssl and keytool) and a Cassandra node
with PasswordAuthenticator and client TLS, both started by this module beside the run's open services.

Every part runs as its own command (services init, ingest replay, the detector, the dashboard, the benchmarks' load
generator), configured through the environment and a password file; a browser searches the history. Refusals
(no credentials, a wrong password, an untrusted CA) are one line each; and no secret appears in any output, log
file or page the run produced: they are all scanned.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.browser import chromium, page_text, type_text
from tests.conftest import TEST_ENVIRONMENT
from tests.secured import (
    CASSANDRA_PASSWORD,
    CASSANDRA_SUPERUSER,
    CASSANDRA_USER,
    KAFKA_ADMIN,
    SECURED_ENVIRONMENT,
    Authority,
    SecuredCassandra,
    SecuredKafka,
)
from tests.test_dashboard import wait_for
from tests.test_kafka_records import consume_all
from tests.test_security import free_port
from twitchcrement import PROJECT_ROOT
from twitchcrement import config as configuration
from twitchcrement.clients import cassandra_session
from twitchcrement.config import project_path
from twitchcrement.records import SpamEvent, decode_spam

pytestmark = pytest.mark.slow

KAFKA_USER = "twitchcrement"


@dataclass
class Secured:
    env: dict[str, str]  # the platform's environment: user, password file, CA files
    folder: Path
    untrusted_ca: Path
    secrets: list[str]
    kafka: SecuredKafka
    cassandra: SecuredCassandra
    produced: list[str] = field(default_factory=list)  # every output and page, for the secret scan

    @property
    def config(self) -> configuration.Config:
        return configuration.load(environ=self.env)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, *args],
            env=command_environment(env or self.env),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.produced += [done.stdout, done.stderr]
        return done


def command_environment(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without any TWITCHCREMENT_* of the caller, plus the test's settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TWITCHCREMENT_")}, **env}


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Secured:
    folder = tmp_path_factory.mktemp("secured")
    authority = Authority.make(folder / "ca")
    untrusted = Authority.make(folder / "untrusted", name="a CA nobody trusts")
    admin_password, user_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    base = {
        **TEST_ENVIRONMENT,
        **SECURED_ENVIRONMENT,
        "TWITCHCREMENT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TWITCHCREMENT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TWITCHCREMENT_KAFKA_SSL_CAFILE": str(authority.ca),
        "TWITCHCREMENT_CASSANDRA_SSL": "true",
        "TWITCHCREMENT_CASSANDRA_SSL_CAFILE": str(authority.ca),
    }
    administrator = configuration.load(
        environ={
            **base,
            "TWITCHCREMENT_KAFKA_SASL_USERNAME": KAFKA_ADMIN,
            "TWITCHCREMENT_KAFKA_SASL_PASSWORD": admin_password,
            "TWITCHCREMENT_CASSANDRA_USERNAME": CASSANDRA_SUPERUSER[0],
            "TWITCHCREMENT_CASSANDRA_PASSWORD": CASSANDRA_SUPERUSER[1],
        }
    )
    kafka, cassandra = (
        SecuredKafka(administrator, authority, admin_password, {KAFKA_USER: user_password}),
        SecuredCassandra(administrator, authority),
    )
    for service in (kafka, cassandra):
        service.stop()  # a run that was killed may have left them running
    shutil.rmtree(project_path(administrator.local.data_dir), ignore_errors=True)
    kafka.start()
    cassandra.start()
    try:
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            kafka.add_user(mechanism, KAFKA_USER, user_password)
        cassandra.add_role()
        password_file = folder / "kafka-password"
        password_file.write_text(user_password + "\n")
        password_file.chmod(0o600)
        suffix = uuid.uuid4().hex[:8]
        env = {
            **base,
            "TWITCHCREMENT_KAFKA_SASL_USERNAME": KAFKA_USER,
            "TWITCHCREMENT_KAFKA_SASL_PASSWORD_FILE": str(password_file),  # one secret from a file ...
            "TWITCHCREMENT_CASSANDRA_USERNAME": CASSANDRA_USER,
            "TWITCHCREMENT_CASSANDRA_PASSWORD": CASSANDRA_PASSWORD,  # ... the other from the environment
            "TWITCHCREMENT_KAFKA_CHAT_TOPIC": f"secured-chat-{suffix}",
            "TWITCHCREMENT_KAFKA_SPAM_TOPIC": f"secured-spam-{suffix}",
            "TWITCHCREMENT_SPARK_CHECKPOINT_DIR": str(folder / "checkpoints"),
            "TWITCHCREMENT_DETECTOR_STARTING_OFFSETS": "earliest",
            "TWITCHCREMENT_DETECTOR_CHANNEL_LAG_S": "5",
            "TWITCHCREMENT_DASHBOARD_BACKFILL_S": "900",
        }
        yield Secured(env, folder, untrusted.ca, [user_password, admin_password, CASSANDRA_PASSWORD], kafka, cassandra)
    finally:
        kafka.stop()
        cassandra.stop()


def write_chat(path: Path, tag: str, pasta: str, now_ms: int) -> None:
    """A CSV chat log (channel, sender, date in Unix ms, message): a copypasta from seven users in two channels,
    between ordinary chat; then one line a minute later elsewhere, which tells the detector that the two channels
    have gone quiet (their windows close, as chat elsewhere moves on)."""
    with path.open("w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["channel", "sender", "date", "message"])
        for i in range(7):
            for channel in (f"{tag}_a", f"{tag}_b"):
                rows.writerow([channel, f"spammer{i}", now_ms + i * 300, pasta])
                rows.writerow([channel, f"viewer{i}", now_ms + i * 300 + 100, f"hello chat number {i} {tag}"])
        rows.writerow([f"{tag}_later", "viewer", now_ms + 60_000, "a minute later"])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8", errors="replace")


def wait_for_line(path: Path, pattern: str, timeout_s: float = 180) -> re.Match[str]:
    def found() -> re.Match[str] | None:
        return re.search(pattern, path.read_text(errors="replace")) if path.exists() else None

    return wait_for(f"{pattern!r} in {path.name}", found, timeout_s=timeout_s, shown=lambda: path.read_text()[-2000:])


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def test_replay_detector_history_and_dashboard_search_on_secured_clusters(secured: Secured, artifacts: Path) -> None:
    tag = "sec" + uuid.uuid4().hex[:6]
    today = dt.datetime.now(dt.UTC).date()
    pasta = f"{tag} this stream is protected by SCRAM and TLS now copy this message everyone"
    initialised = secured.run("-m", "services", "init")
    assert initialised.returncode == 0, initialised.stderr[-2000:]

    chat = secured.folder / "chat.csv"
    window_ms = 10_000
    write_chat(chat, tag, pasta, int(time.time() * 1000) // window_ms * window_ms + 1000)  # all in one window
    replayed = secured.run("-m", "ingest", "replay", str(chat), "--speed", "max")
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    # librdkafka's client (the benchmarks' load generator) gets in too.
    load_topic = f"secured-load-{uuid.uuid4().hex[:6]}"
    from services.schema import ensure_topics

    ensure_topics(secured.config, [load_topic])
    loaded = secured.run("-m", "bench.load", "--topic", load_topic, "--rate", "500", "--seconds", "2", timeout=180)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    offered = json.loads(loaded.stdout.strip().splitlines()[-1])["offered"]  # its last 10 ms slice may be cut
    assert offered >= 900 and len(consume_all(secured.config, load_topic, offered, timeout_s=30)) == offered

    detector_log = secured.folder / "detector.log"
    detector_metrics = free_port()
    with detector_log.open("w") as log_file:
        detector = subprocess.Popen(
            [sys.executable, "-m", "jobs.spam_detector"],
            env=command_environment({**secured.env, "TWITCHCREMENT_DETECTOR_METRICS_PORT": str(detector_metrics)}),
            cwd=PROJECT_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        ui = wait_for_line(detector_log, r"spark session ready.*ui=(http://\S+)").group(1)

        def pasta_events() -> list[SpamEvent]:
            records = consume_all(secured.config, secured.config.kafka.spam_topic, 10**6, timeout_s=5)
            spam = (decode_spam(record.value) for record in records)
            # closed records: an open one may come first, while the window still takes messages
            return [r for r in spam if isinstance(r, SpamEvent) and r.text == pasta and r.state == "closed"]

        events = wait_for(
            "the copypasta's events on the secured spammessage",
            pasta_events,
            timeout_s=240,
            shown=lambda: detector_log.read_text()[-3000:],
        )
        assert sorted((e.channel, e.distinct_users) for e in events) == [(f"{tag}_a", 7), (f"{tag}_b", 7)]
        # Spark's own pages and the job's metrics, while it runs: the secret scan reads them below.
        for page in ("/environment/", "/SQL/", "/StreamingQuery/", "/jobs/"):
            secured.produced.append(fetch(ui.rstrip("/") + page))
        environment = secured.produced[-4]
        assert "spark.cassandra.auth.password" in environment and "redacted" in environment
        secured.produced.append(fetch(f"http://127.0.0.1:{detector_metrics}/metrics"))
        session = cassandra_session(secured.config)
        try:
            by_channel = session.prepare("SELECT text FROM spam_events_by_channel WHERE channel = ? AND day = ?")
            wait_for(
                "both channels' events in the secured Cassandra",
                lambda: all(
                    pasta in {row.text for row in session.execute(by_channel, (f"{tag}_{side}", today))}
                    for side in "ab"
                ),
                timeout_s=120,
            )
        finally:
            session.cluster.shutdown()
    finally:
        stop(detector)
    secured.produced.append(detector_log.read_text())

    dashboard_log, port, dashboard_metrics = secured.folder / "dashboard.log", free_port(), free_port()
    with dashboard_log.open("w") as log_file:
        dashboard = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--port", str(port)],
            env=command_environment({**secured.env, "TWITCHCREMENT_DASHBOARD_METRICS_PORT": str(dashboard_metrics)}),
            cwd=PROJECT_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    browser = None
    try:
        wait_for_line(dashboard_log, "dashboard serving", timeout_s=120)
        browser = chromium()
        browser.get(f"http://127.0.0.1:{port}/search")
        wait_for("the search page", lambda: "Type or paste" in page_text(browser, "search-message"), timeout_s=60)
        from selenium.webdriver.common.keys import Keys

        type_text(browser.find_element("id", "search-text"), pasta, Keys.ENTER)
        wait_for(
            "both channels in the search results",
            lambda: f"{tag}_a" in page_text(browser, "search-results")
            and f"{tag}_b" in page_text(browser, "search-results"),
            timeout_s=90,
            shown=lambda: page_text(browser, "search-message") + " | " + dashboard_log.read_text()[-2000:],
        )
        browser.save_screenshot(str(artifacts / "secured-search.png"))
        secured.produced.append(browser.page_source)
        browser.get(f"http://127.0.0.1:{port}/")
        wait_for("the live page's channels", lambda: page_text(browser, "live-channel"), timeout_s=60)
        secured.produced.append(browser.page_source)
        secured.produced.append(fetch(f"http://127.0.0.1:{dashboard_metrics}/metrics"))
    finally:
        if browser is not None:
            browser.quit()
        stop(dashboard)
    secured.produced.append(dashboard_log.read_text())


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_sasl_mechanism_logs_in_with_the_python_and_the_java_client(secured: Secured, spark, mechanism) -> None:
    """kafka-python (`services init`) and Java's client (Spark's Kafka source, in the run's session) log in."""
    env = {**secured.env, "TWITCHCREMENT_KAFKA_SASL_MECHANISM": mechanism}
    initialised = secured.run("-m", "services", "init", env=env)
    assert initialised.returncode == 0, initialised.stderr[-2000:]
    from twitchcrement.spark import kafka_options

    config = configuration.load(environ=env)
    read = spark.read.format("kafka").options(**kafka_options(config)).option("subscribe", "twitchcrement-health")
    assert read.load().count() >= 1  # the health record the secured broker's start-up probe wrote


REFUSALS = {
    "kafka without credentials": (
        {"TWITCHCREMENT_KAFKA_SECURITY_PROTOCOL": "SSL"},
        r"^error: Kafka at \S+ closed every connection of this SSL client: .*credentials",
    ),
    "kafka wrong password": (
        {"TWITCHCREMENT_KAFKA_SASL_PASSWORD": "not-the-password"},
        r"^error: Kafka at \S+ refused the login of user 'twitchcrement' with SCRAM-SHA-512",
    ),
    "kafka untrusted CA": (
        {"TWITCHCREMENT_KAFKA_SSL_CAFILE": "UNTRUSTED"},
        r"^error: Kafka at \S+: its TLS certificate is not trusted \(.+\) by kafka.ssl_cafile=",
    ),
    "cassandra without credentials": (
        {"TWITCHCREMENT_CASSANDRA_USERNAME": "", "TWITCHCREMENT_CASSANDRA_PASSWORD": ""},
        r"^error: Cassandra at \S+ requires a login: set cassandra.username",
    ),
    "cassandra wrong password": (
        {"TWITCHCREMENT_CASSANDRA_PASSWORD": "not-the-password"},
        r"^error: Cassandra at \S+ refused the login of user 'twitchcrement'",
    ),
    "cassandra untrusted CA": (
        {"TWITCHCREMENT_CASSANDRA_SSL_CAFILE": "UNTRUSTED"},
        r"^error: Cassandra at \S+: its TLS certificate is not trusted \(.+\) by cassandra.ssl_cafile=",
    ),
}
COMMANDS = {"services init": ["-m", "services", "init"], "detector": ["-m", "jobs.spam_detector"]}


@pytest.mark.parametrize(
    ("command", "case"),
    [("services init", case) for case in REFUSALS]
    # The detector checks both services before Spark starts, with the same clients: a login refused by each.
    + [("detector", "kafka wrong password"), ("detector", "cassandra wrong password")],
)
def test_a_refused_client_says_what_was_refused_in_one_line(secured: Secured, command: str, case: str) -> None:
    changes, expected = REFUSALS[case]
    env = {
        **secured.env,
        "TWITCHCREMENT_KAFKA_CONNECT_TIMEOUT_S": "5",  # a Kafka refusal is told once the bootstrap times out
        **{k: str(secured.untrusted_ca) if v == "UNTRUSTED" else v for k, v in changes.items()},
    }
    if "TWITCHCREMENT_KAFKA_SASL_PASSWORD" in changes:
        env.pop("TWITCHCREMENT_KAFKA_SASL_PASSWORD_FILE")
    started = time.monotonic()
    refused = secured.run(*COMMANDS[command], env=env, timeout=120)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:") or "level=error" in line]
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "Traceback" not in refused.stderr and len(errors) == 1, refused.stderr[-2000:]
    assert re.search(expected, errors[0]), errors[0]
    assert time.monotonic() - started < 90  # the connect timeout (5 s here) and start-up, not a hang


def test_no_secret_in_any_output_log_or_page(secured: Secured) -> None:
    """Runs last in this module: everything the commands printed, the pages fetched, and the log files of the
    platform and the secured services."""
    files = [p for p in project_path(secured.config.local.data_dir).rglob("*.log")]
    files += [p for p in (secured.folder / "checkpoints").rglob("*") if p.is_file()]
    texts = [*secured.produced, *(p.read_text(errors="replace") for p in files)]
    assert len(secured.produced) > 20 and files, "the scan needs the other tests' outputs"
    leaks = [
        f"text {number} ({len(text)} chars)"
        for number, text in enumerate(texts)
        for secret in secured.secrets
        if secret in text
    ]
    assert not leaks, f"a secret appears in: {', '.join(leaks)}"
