"""Debian's Chromium, headless, driven by Selenium as a user would: the browser tests' one way to start it."""

from __future__ import annotations

import base64
import os
import shutil
import time
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium(basic_auth: tuple[str, str] | None = None) -> Any:
    """A headless Chromium (quit it when done); basic_auth: sent with every request the pages make."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed (`make browser` installs Debian's chromium packages)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The machine's network is closed: without these Chromium keeps trying to reach Google's services.
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager look for a driver online
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if basic_auth is not None:
        driver.execute_cdp_cmd("Network.enable", {})
        token = base64.b64encode(":".join(basic_auth).encode()).decode()
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
    return driver


def page_text(driver: Any, element_id: str) -> str:
    """An element's text as a user reads it, emote pictures by their names (alt text); "" while the page has not
    drawn it yet."""
    # In one script call (a held element reference may go stale between two calls): each emote picture stands in
    # for a moment as its name, and is put back before the page can draw again.
    return driver.execute_script(
        f"const e = document.getElementById('{element_id}'); if (!e) return '';"
        "const swaps = [...e.querySelectorAll('img.emote')].map(i => {"
        "  const t = document.createTextNode(i.alt); i.replaceWith(t); return [t, i]; });"
        "const text = e.innerText;"
        "swaps.forEach(([t, i]) => t.replaceWith(i));"
        "return text;"
    )


def type_text(element: Any, text: str, *then: str, keys_per_s: float = 15.0) -> None:
    """Types text key by key at a quick typist's pace, then the keys in `then` (Enter, say). ChromeDriver's
    send_keys types a whole string in one burst, faster than any hand; Dash 4's debounced input (the search and
    user boxes) puts the caret back where it was one tick earlier after each key, so under such a burst on a busy
    machine the words came out scrambled ("WHO ASK NOBODY ... KEKWED LULW")."""
    for key in text:
        element.send_keys(key)
        time.sleep(1 / keys_per_s)
    if then:
        element.send_keys(*then)


def click(driver: Any, xpath: str, timeout_s: float = 30.0) -> None:
    """Clicks the element at xpath as a user would on a page that redraws itself every second: an element drawn
    anew between finding and clicking it (stale) is found again and clicked."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            driver.find_element("xpath", xpath).click()
            return
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
