"""Debian's Chromium, headless, driven by Selenium as a user would: the browser tests' one way to start it."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable
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


def type_text(element: Any, text: str, *then: str, keys_per_s: float = 15.0, tries: int = 3) -> None:
    """Types text key by key at a quick typist's pace into an empty box, then the keys in `then` (Enter, say).
    ChromeDriver's send_keys types a whole string in one burst, faster than any hand; Dash 4's debounced input (the
    search and user boxes) puts the caret back where it was one tick earlier after each key, so under such a burst
    on a busy machine the words came out scrambled ("WHO ASK NOBODY ... KEKWED LULW"). As a user who sees the box
    does not say what they typed, it clears the box and types again, at half the pace each time (see `until` for
    keys that never arrive)."""
    from selenium.webdriver.common.keys import Keys

    seen: list[str] = []
    for attempt in range(tries):
        for key in text:
            element.send_keys(key)
            time.sleep(2**attempt / keys_per_s)
        settled = time.monotonic() + 15  # keys reach a busy page late (see `until`)
        while element.get_property("value") != text and time.monotonic() < settled:
            time.sleep(0.2)
        seen.append(element.get_property("value"))
        if seen[-1] == text:
            break
        element.send_keys(Keys.CONTROL, "a")  # clear() leaves a React-held value in place
        element.send_keys(Keys.DELETE)
    else:
        raise AssertionError(f"typed {text!r} {tries} times; the box said {seen!r}")
    if then:
        element.send_keys(*then)


def until(
    what: str,
    act: Callable[[], Any],
    done: Callable[[], Any],
    timeout_s: float = 60.0,
    again_s: float = 5.0,
    shown: Callable[[], str] | None = None,
) -> Any:
    """Acts (a click, a key) and waits for `done`, acting again each `again_s` as a user would whose click seemed
    to change nothing. The live page keeps the browser's main thread busy (a CPU profile of it over 15 s: 26 % of
    the samples idle, most of the rest the Dash renderer's store notifications), so ChromeDriver's input reaches
    the page late on a loaded machine: a click's mousedown arrived 30 s after the click, or not within 30 s (a
    listener on the document), and a box lost the first half of what was typed. Raises, saying what was awaited
    and (shown) what there was instead, after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        act()
        again = min(deadline, time.monotonic() + again_s)
        while time.monotonic() < again:
            result = done()
            if result:
                return result
            time.sleep(0.1)
        if time.monotonic() >= deadline:
            instead = f"; instead: {shown()!r}" if shown else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{instead}")


def click(driver: Any, xpath: str, timeout_s: float = 30.0) -> None:
    """Clicks the element at xpath as a user would on a page that redraws itself every second: an element drawn
    anew between finding and clicking it (stale), or moved by a newer row so that another would get the click
    (intercepted), is found again and clicked."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            driver.find_element("xpath", xpath).click()
            return
        except (StaleElementReferenceException, ElementClickInterceptedException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
