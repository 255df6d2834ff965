"""Security checks: CQL only through prepared statements, secrets never in logs or error messages, and a
dependency audit. (The dashboard's XSS and bind/auth checks are in test_dashboard.)"""

from __future__ import annotations

import ast
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from services.schema import ensure_topics
from tests.conftest import TEST_ENVIRONMENT
from tests.fake_twitch import FakeTwitch
from tests.test_helix import FakeHelix
from tests.test_ingest_twitch import wait_for
from twitchcrement import PROJECT_ROOT

PACKAGES = ["twitchcrement", "services", "ingest", "jobs", "dashboard", "bench", "tests"]
CQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|TRUNCATE|DROP|ALTER|CREATE|USE)\b.*"
    r"\b(FROM|INTO|SET|TABLE|KEYSPACE|WHERE)\b",
    re.I | re.S,
)
# The names a CQL text may have filled in: the keyspace, which the config checks is a plain CQL name, and its
# replication map, built from the config's checked strategy, data centre names and whole factors; and the frames
# jobs/sinks.py hands to spark.sql(text, events=frame), which puts a temporary view's name there, never a value.
ALLOWED_PLACEHOLDERS = {"keyspace", "replication", "events", "topics", "users"}


def python_files() -> list[Path]:
    this = Path(__file__).resolve()  # its own examples of bad CQL are the point of it
    return sorted(f for package in PACKAGES for f in (PROJECT_ROOT / package).rglob("*.py") if f.resolve() != this)


def test_no_cql_is_built_by_string_formatting() -> None:
    """CQL values travel only as bound parameters of prepared statements: no f-string, %, + or .format() makes
    CQL text, except to fill in the validated keyspace name (a CQL identifier, which cannot be bound)."""
    problems = []
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(PROJECT_ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.JoinedStr):
                literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if CQL.search(literal):
                    problems.append(f"{where}: CQL in an f-string")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
                for side in (node.left, node.right):
                    if isinstance(side, ast.Constant) and isinstance(side.value, str) and CQL.search(side.value):
                        problems.append(f"{where}: CQL built with {'%' if isinstance(node.op, ast.Mod) else '+'}")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and CQL.search(node.value):
                names = set(re.findall(r"\{(\w*)\}", node.value)) | set(re.findall(r"\$\{(\w+)\}", node.value))
                if names - ALLOWED_PLACEHOLDERS or "%s" in node.value:
                    problems.append(f"{where}: CQL with placeholders {sorted(names) or '%s'}")
    assert not problems, "\n".join(problems)


def test_the_scan_would_catch_formatted_cql(tmp_path) -> None:
    bad = ast.parse('channel = "x"\nsession.execute(f"SELECT * FROM t WHERE channel = {channel}")')
    joined = [n for n in ast.walk(bad) if isinstance(n, ast.JoinedStr)]
    assert joined and CQL.search("".join(v.value for v in joined[0].values if isinstance(v, ast.Constant)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_secrets_never_reach_logs_or_errors(platform, tmp_path) -> None:
    irc_token, app_token, password = (f"oauth:{uuid.uuid4().hex}", f"app{uuid.uuid4().hex}", f"pw{uuid.uuid4().hex}")
    secrets = [irc_token.removeprefix("oauth:"), app_token, password]
    topic = f"test-secrets-{uuid.uuid4().hex[:8]}"
    ensure_topics(platform, [topic, f"{topic}-list"])
    env = {
        "PATH": "/usr/bin:/bin",
        **TEST_ENVIRONMENT,
        "TWITCHCREMENT_LOGGING_LEVEL": "DEBUG",
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": topic,
        "TWITCHCREMENT_INGEST_CHANNELS_TOPIC": f"{topic}-list",
    }
    outputs = []
    # 1. Helix refuses the app token: the error names the problem, not the token.
    refusing = FakeHelix(fail_first_with=401)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ingest", "twitch"],
            env={
                **env,
                "TWITCH_CLIENT_ID": "client",
                "TWITCH_APP_TOKEN": app_token,
                "TWITCHCREMENT_INGEST_HELIX_URL": refusing.url,
            },
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        refusing.close()
    assert done.returncode == 1 and done.stderr.startswith("error: Helix rejected the credentials (401)")
    outputs.append(done.stdout + done.stderr)
    # 2. An IRC login with a token, and Helix accepting the app token: the reader runs, then stops on SIGTERM.
    server, helix = FakeTwitch().start(), FakeHelix(total=3)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ingest",
            "twitch",
            "--irc-host",
            "127.0.0.1",
            "--irc-port",
            str(server.port),
            "--no-tls",
        ],
        env={
            **env,
            "TWITCH_CLIENT_ID": "client",
            "TWITCH_APP_TOKEN": app_token,
            "TWITCHCREMENT_INGEST_HELIX_URL": helix.url,
            "TWITCH_IRC_NICK": "securitybot",
            "TWITCH_IRC_TOKEN": irc_token,
        },
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(server.joined()) == 3, 60, "the reader to join the channels")
        assert server.passwords == [irc_token]  # the token was really used
        reader.send_signal(signal.SIGTERM)
        out, err = reader.communicate(timeout=20)
    finally:
        if reader.poll() is None:
            reader.kill()
        server.stop()
        helix.close()
    outputs.append(out + err)
    # 3. The dashboard with basic auth: wrong and right passwords, then SIGTERM.
    port = free_port()
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--port", str(port)],
        env={**env, "DASHBOARD_USER": "mod", "DASHBOARD_PASSWORD": password},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"

        def answers() -> bool:
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as exc:
                return exc.code == 401
            except OSError:
                return False
            return False

        wait_for(answers, 60, "the dashboard to answer (401 without credentials)")
        import base64

        for user, given in (("mod", "wrong"), ("mod", password)):
            header = "Basic " + base64.b64encode(f"{user}:{given}".encode()).decode()
            try:
                status = urllib.request.urlopen(
                    urllib.request.Request(url, headers={"Authorization": header}), timeout=10
                ).status
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status == (200 if given == password else 401)
        began = time.monotonic()
        dashboard.send_signal(signal.SIGTERM)
        out, err = dashboard.communicate(timeout=20)
        assert time.monotonic() - began < 10
    finally:
        if dashboard.poll() is None:
            dashboard.kill()
    outputs.append(out + err)
    text = "\n".join(outputs)
    assert "Traceback" not in text  # every failure is one line
    for secret in secrets:
        assert secret not in text


def test_dependencies_have_no_known_vulnerability_with_a_fix() -> None:
    """pip-audit of the installed environment (constraints.txt and what it pulls in). Offline or with the
    vulnerability service down it reports and passes; it fails only when a fixed version exists."""
    done = subprocess.run(
        [sys.executable, "-m", "pip_audit", "--local", "--format", "json", "--progress-spinner", "off"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])  # the JSON follows a summary line
    except (IndexError, json.JSONDecodeError):
        print(f"pip-audit could not run: {done.stderr.strip().splitlines()[-1:]}")
        return
    dependencies = report.get("dependencies", [])
    skipped = [d["name"] for d in dependencies if "skip_reason" in d]
    print(
        f"pip-audit: {len(dependencies) - len(skipped)} of {len(dependencies)} dependencies audited"
        + (f"; {len(skipped)} skipped (the vulnerability service did not answer for them)" if skipped else "")
    )
    fixable, unfixed = [], []
    for dependency in dependencies:
        for vulnerability in dependency.get("vulns", []):
            entry = f"{dependency['name']} {dependency['version']}: {vulnerability['id']}"
            (fixable if vulnerability.get("fix_versions") else unfixed).append(
                entry
                + (
                    f" (fixed in {', '.join(vulnerability['fix_versions'])})"
                    if vulnerability.get("fix_versions")
                    else ""
                )
            )
    if unfixed:
        print("known vulnerabilities without a fixed version yet:", *unfixed, sep="\n  ")
    assert not fixable, "upgrade these pins in constraints.txt:\n" + "\n".join(fixable)
