"""`make demo` as a newcomer runs it: `python -m services demo` brings up the detector, the replay, the synthetic
chat and the dashboard on the test run's Kafka and Cassandra; the live page shows spam of a synthetic channel, sent
by the users the generator labelled as its spammers. Its screenshot is the README's first picture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.keys import Keys

from services.demo import components, dashboard_url
from tests.browser import chromium, click, page_text, until
from tests.conftest import TEST_ENVIRONMENT
from tests.test_dashboard import event_row_xpath, shown_events, wait_for
from tests.test_security import free_port
from twitchcrement import PROJECT_ROOT
from twitchcrement.config import Config, load, project_path

README_PICTURE = PROJECT_ROOT / "docs" / "dashboard-live.png"
CHANNEL = "synth_00"  # the demo's busiest synthetic channel (the generator weighs channel k by 1/(k+1))


def labelled_spammers(labels: Path, channel: str) -> set[str]:
    """The users of every burst the generator has finished in the channel (its labels, written as bursts end)."""
    if not labels.exists():
        return set()
    bursts = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {user for burst in bursts if channel in burst["channels"] for user in burst["users"]}


@pytest.fixture
def demo(platform: Config, tmp_path: Path) -> Any:
    """The demo on its own topics, keyspace, checkpoint and dashboard port, beside the test run's services."""
    tag = uuid.uuid4().hex[:8]
    environment = {
        **TEST_ENVIRONMENT,
        "TWITCHCREMENT_KAFKA_CHAT_TOPIC": f"demo-chat-{tag}",
        "TWITCHCREMENT_KAFKA_SPAM_TOPIC": f"demo-spam-{tag}",
        "TWITCHCREMENT_KAFKA_DEADLETTER_TOPIC": f"demo-deadletter-{tag}",
        "TWITCHCREMENT_INGEST_CHANNELS_TOPIC": f"demo-channels-{tag}",
        "TWITCHCREMENT_CASSANDRA_KEYSPACE": f"demo_{tag}",
        "TWITCHCREMENT_SPARK_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "TWITCHCREMENT_DASHBOARD_PORT": str(free_port()),
    }
    config = load(environ=environment)
    started = subprocess.run(
        [sys.executable, "-m", "services", "demo"],
        env={**os.environ, **environment},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        assert all(name in started.stdout for name in ("detector", "replay", "synth", "dashboard"))
        yield config
    finally:
        for component in components(config):
            component.stop()
        for component in components(config):
            shutil.rmtree(component.home, ignore_errors=True)


@pytest.mark.slow
def test_the_demo_shows_labelled_spam_on_the_live_page_and_makes_the_readme_picture(demo: Config, artifacts) -> None:
    browser = chromium()
    try:
        browser.get(dashboard_url(demo))
        # The channel picked as a user picks it: typed into the picker, then Enter.
        picker = wait_for("the channel picker", lambda: browser.find_elements("css selector", "#live-channel"), 60)
        picker[0].click()
        browser.switch_to.active_element.send_keys(CHANNEL, Keys.ENTER)
        wait_for(
            f"{CHANNEL} picked",
            lambda: CHANNEL in page_text(browser, "live-channel"),
            timeout_s=120,
            shown=lambda: page_text(browser, "live-channel"),
        )
        # Escape closes the picker's menu, as a user would, so that the picture shows the page, not the menu.
        browser.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait_for(
            "the channel picker's menu closed",
            lambda: not browser.find_elements("css selector", ".dash-dropdown-content"),
            timeout_s=30,
        )
        events = wait_for(
            "five spam events of the channel on the live page",
            lambda: len(shown_events(browser)) >= 5 and shown_events(browser),
            timeout_s=300,
            shown=lambda: page_text(browser, "live-events")[:300],
        )
        # BTTV, FFZ and 7TV emotes as pictures (the stand-in draws its made-up emotes: emotes.images_url)
        third_party = ", ".join(f"#live-chat img.emote[src*='/images/{p}/']" for p in ("bttv", "ffz", "7tv"))
        wait_for(
            "a third-party emote's picture loaded in the chat",
            lambda: browser.execute_script(
                "return [...document.querySelectorAll(arguments[0])].some(i => i.complete && i.naturalWidth > 0);",
                third_party,
            ),
            timeout_s=60,
        )
        browser.save_screenshot(str(artifacts / "demo-live.png"))
        shutil.copyfile(artifacts / "demo-live.png", README_PICTURE)
        # The newest event's users, as its detail lists them, are spammers the generator labelled in the channel.
        users = until(
            "the users of the clicked event",
            lambda: click(browser, event_row_xpath(events[0])),
            lambda: browser.execute_script(
                "return [...document.querySelectorAll('#event-users .ag-cell a')].map(a => a.textContent);"
            ),
            timeout_s=60,
            shown=lambda: page_text(browser, "live-detail")[:300],
        )
    finally:
        browser.quit()
    labels = project_path(demo.local.data_dir) / "synth-labels.jsonl"
    spammers = wait_for(
        "the generator's labels of the channel's bursts",
        lambda: labelled_spammers(labels, CHANNEL) >= set(users) and labelled_spammers(labels, CHANNEL),
        timeout_s=60,
        shown=lambda: f"{sorted(users)} not all in {sorted(labelled_spammers(labels, CHANNEL))[:20]}",
    )
    assert len(users) >= demo.detector.min_users and set(users) <= spammers
