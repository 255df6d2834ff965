"""The dashboard against the real platform: chat replayed into Kafka, the streaming detector running in the test's
Spark session, history in Cassandra, the app served on loopback and driven by headless Chromium.

Callbacks are tested as plain functions (dashboard.views) against the same data; browser tests check what a user
sees, that chat text stays text, and save a screenshot of each page under test-artifacts/.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboard.app import DashboardError, create_app, credentials, is_loopback
from dashboard.history import History, SearchError
from dashboard.live import LiveFeed
from dashboard.views.common import Sources, chat_text, spam_text
from dashboard.views.live import event_details, event_users, live_events, selected_event
from dashboard.views.overview import overview_view
from dashboard.views.search import search_view
from dashboard.views.user import user_view
from ingest import replay
from ingest.captures import Capture
from ingest.sink import ChatSink
from ingest.synth import THIRD_PARTY_SETS
from jobs.keyed import KeyedBatch
from jobs.spam_detector import start, stop_between_batches
from tests.browser import chromium, click, page_text, type_text, until
from tests.detector_harness import LiveWave, fresh_config
from tests.test_metrics import ready, scrape
from tests.test_security import free_port
from twitchcrement import PROJECT_ROOT
from twitchcrement.config import Config
from twitchcrement.records import ChannelList, ChatMessage, SpamEvent

pytestmark = pytest.mark.slow

SAMPLE = PROJECT_ROOT / "data" / "samples" / "recentmessages-nymn.json"
XSS_SCRIPT = "<script>window.__xss = 1; alert(1)</script>"
XSS_IMG = '<img src=x onerror="window.__xss = 2"> hi chat'
EMOTE_TEXT = "Kappa hello chat PogChamp"
THIRD_PARTY_TEXT = "PepeHands so sad KEKW Sadge"  # a BTTV, an FFZ and a 7TV emote of the synthetic world
EMOTE_TAG = '25:0-4/305954156:17-24/x"><script>:6-10'


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout_s: float = 90.0,
    every_s: float = 0.5,
    shown: Callable[[], str] | None = None,
) -> Any:
    """Polls check until it is truthy; on timeout says what was awaited and, from shown, what there was instead."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            instead = f"; instead: {shown()!r}" if shown else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{instead}")
        time.sleep(every_s)


@dataclasses.dataclass
class World:
    config: Config
    tag: str  # a word only this test's spam contains, so searches find nothing else
    pasta: str
    variant: str
    campaign: str
    channel_a: str
    channel_b: str
    feed: LiveFeed
    history: History
    sources: Sources
    replayed: threading.Event


def scripted_chat(
    tag: str, pasta: str, variant: str, campaign: str, channel_a: str, channel_b: str, start_ms: int, seconds: int = 150
) -> list[ChatMessage]:
    """Spam waves every 5 s: the pasta in channel A, a mutated spelling of it in channel B, a campaign text in
    both, the XSS payloads in A."""
    messages = []
    for second in range(0, seconds, 5):
        ts = start_ms + second * 1000
        for i in range(6):
            messages.append(ChatMessage(channel=channel_a, user_login=f"pasta{i}", text=pasta, sent_ts=ts + i * 50))
            messages.append(ChatMessage(channel=channel_b, user_login=f"mutant{i}", text=variant, sent_ts=ts + i * 50))
            payload = XSS_SCRIPT if i % 2 else XSS_IMG
            messages.append(ChatMessage(channel=channel_a, user_login=f"xss{i}", text=payload, sent_ts=ts + 300 + i))
            for channel in (channel_a, channel_b):
                messages.append(ChatMessage(channel=channel, user_login=f"bot{i}", text=campaign, sent_ts=ts + 500 + i))
        messages.append(
            ChatMessage(channel=channel_a, user_login="bystander", text=f"{tag} just chatting", sent_ts=ts + 700)
        )
        # Twitch emotes, placed by the emotes tag (Kappa is emote 25, PogChamp 305954156); a tag with a hostile id
        # is skipped, not rendered.
        messages.append(
            ChatMessage(channel=channel_a, user_login="emoter", text=EMOTE_TEXT, sent_ts=ts + 800, emotes=EMOTE_TAG)
        )
        # BTTV, FFZ and 7TV emotes are plain words: ingest marks them from the providers' sets (the stand-in's)
        messages.append(ChatMessage(channel=channel_a, user_login="emoter", text=THIRD_PARTY_TEXT, sent_ts=ts + 900))
    return messages


@pytest.fixture(scope="module")
def world(platform: Config, spark, tmp_path_factory) -> World:
    tag = "dash" + uuid.uuid4().hex[:6]
    config = fresh_config(platform).with_overrides(
        detector__starting_offsets="earliest", dashboard__backfill_s=900, dashboard__refresh_s=1.0
    )
    channel_a, channel_b = f"{tag}_a", f"{tag}_b"
    pasta = f"{tag} WHO ASKED LULW nobody asked this copypasta is everywhere today"
    variant = f"{tag} WHO ASKED LULW NOBODY ASKED this copypasta is everywhere todayy KEKW"
    campaign = f"{tag} follow my other channel for free giveaways PogChamp"
    checkpoint = tmp_path_factory.mktemp("dashboard-detector")
    batches = KeyedBatch(config)
    query = start(spark, config, checkpoint=str(checkpoint), writer=batches)
    now_ms = int(time.time() * 1000)
    # The capture is from another day: shift it onto today's clock beside the scripted spam; replay both at their
    # pace, restamped to now, as the demo does.
    nymn = list(Capture(SAMPLE))
    shift = now_ms - nymn[0].sent_ts
    chat = sorted(
        [
            *(dataclasses.replace(m, sent_ts=m.sent_ts + shift) for m in nymn),
            *scripted_chat(tag, pasta, variant, campaign, channel_a, channel_b, now_ms),
        ],
        key=lambda m: m.sent_ts,
    )
    stop, replayed = threading.Event(), threading.Event()
    sink = ChatSink(config)

    def feed_chat() -> None:
        try:
            replay.run(chat, sink, speed=1.0, restamp=True, progress=False, stop=stop.is_set)
        finally:
            sink.close(timeout_s=30)
            replayed.set()

    threading.Thread(target=feed_chat, name="test-replay", daemon=True).start()
    feed, history = LiveFeed(config).start(), History(config).start()
    sources = Sources(feed, history, page_size=5, refresh_ms=1000, search_max_chars=500)
    try:
        wait_for(
            "the history's Cassandra session",
            lambda: history.error is None,
            timeout_s=60,
            shown=lambda: str(history.error),
        )
        yield World(config, tag, pasta, variant, campaign, channel_a, channel_b, feed, history, sources, replayed)
    finally:
        stop.set()
        replayed.wait(60)
        stop_between_batches(query, batches)
        feed.stop()
        history.stop()


# --- data access and callbacks as plain functions ---------------------------------------------------------------
def test_live_feed_receives_chat_and_spam_events(world: World) -> None:
    wait_for("chat in the live feed", lambda: world.feed.chat(world.channel_a), timeout_s=30)
    events = wait_for("spam events in the live feed", lambda: world.feed.events(world.channel_a))
    texts = {e.text for e in events}
    assert world.pasta in texts
    pasta_event = next(e for e in events if e.text == world.pasta)
    assert pasta_event.distinct_users == 6 and pasta_event.message_count >= 6
    assert [world.pasta, 6] in pasta_event.top_variants or pasta_event.top_variants[0][0] == world.pasta
    assert {u for u, _ in pasta_event.top_users} < {f"pasta{i}" for i in range(6)}  # the top 5 of 6 users
    assert world.feed.kafka_error is None
    names = [c.login for c in world.feed.channels()]
    assert world.channel_a in names and "nymn" in names


def test_history_search_finds_exact_text_and_a_mutated_variant(world: World) -> None:
    found = wait_for(
        "the pasta in Cassandra's history",
        lambda: [s for s in world.history.search(world.pasta).sightings if s["channel"] == world.channel_b],
    )
    search = world.history.search(world.pasta)
    assert {m.text for m in search.matches} >= {world.pasta, world.variant}
    assert {s["channel"] for s in search.sightings} == {world.channel_a, world.channel_b}
    starts = [s["window_start"] for s in search.sightings]
    assert starts == sorted(starts, reverse=True), "sightings must be newest first"
    assert found
    # A spelling nobody sent, one edit from both, still finds both channels through the LSH buckets.
    unseen = world.pasta.replace("everywhere", "everywhere!!") + " xd"
    assert {s["channel"] for s in world.history.search(unseen).sightings} == {world.channel_a, world.channel_b}


def test_search_rejects_empty_absurd_and_invisible_queries_with_a_message(world: World) -> None:
    for query, expected in (
        ("", "Type or paste"),
        ("   ", "Type or paste"),
        ("x" * 501, "at most 500"),
        ("\u200b\U000e0000 \ufeff", "Nothing searchable"),
    ):
        with pytest.raises(SearchError, match=expected):
            world.history.search(query)
        view = search_view(world.sources, query, 0)
        assert expected in view.message and view.results == []
    view = search_view(world.sources, f"zzqx {uuid.uuid4().hex} never said in any chat", 0)
    assert view.message.startswith("No spam like this")


def test_search_view_pages_newest_first(world: World) -> None:
    wait_for("several sightings", lambda: len(world.history.search(world.pasta).sightings) >= 8)
    first = search_view(world.sources, world.pasta, 0)
    second = search_view(world.sources, world.pasta, 1)
    assert first.page_label.startswith("page 1 of ") and second.page_label.startswith("page 2 of ")
    assert first.page == 0 and second.page == 1
    past_end = search_view(world.sources, world.pasta, 10_000)
    assert past_end.page == int(past_end.page_label.split()[-1]) - 1  # clamped to the last page


def test_live_view_tops_up_from_history_and_overview_shows_campaigns(world: World) -> None:
    wait_for(
        "the campaign",
        lambda: any(
            {world.channel_a, world.channel_b} <= c["channels"]
            for c in world.history.campaigns()
            if c["text"] == world.campaign
        ),
    )
    # A dashboard started now has an empty live buffer: the live view still lists today's events from Cassandra.
    fresh = Sources(LiveFeed(world.config), world.history)
    events, problem = live_events(fresh, world.channel_a)
    assert problem is None and world.pasta in {e["text"] for e in events}
    assert [e["window_start"] for e in events] == sorted((e["window_start"] for e in events), reverse=True)
    users, _ = event_users(fresh, events[0])
    details = str(event_details(events[0], users))
    assert "Users (" in details and "Top spellings" in details
    overview = overview_view(world.sources)
    assert world.tag in str(overview.campaigns)
    assert "chat messages/s in" in str(overview.totals)


def campaign_event(world: World, channel: str) -> dict[str, Any]:
    events, _ = live_events(world.sources, channel)
    return next(e for e in events if e["text"] == world.campaign)


def test_an_events_users_come_from_the_history_and_opted_out_users_are_left_out(world: World) -> None:
    event = wait_for(
        "a campaign event with its users written",
        lambda: next(
            (
                e
                for e in live_events(world.sources, world.channel_a)[0]
                if e["text"] == world.campaign
                and len(world.history.event_users(e["event_id"], e["window_start"], e["distinct_users"])) == 6
            ),
            None,
        ),
    )
    users, note = event_users(world.sources, event)
    assert note == "" and [u["user_login"] for u in users] == sorted(f"bot{i}" for i in range(6))
    assert sum(u["messages"] for u in users) == event["message_count"] and all(u["first_ts"] for u in users)
    # bot5 opts out after its chat was read: the dashboard no longer lists it, anywhere.
    private = dataclasses.replace(world.sources, hidden_users=frozenset({"bot5"}))
    users, _ = event_users(private, event)
    assert [u["user_login"] for u in users] == [f"bot{i}" for i in range(5)]
    assert user_view(private, "@bot5").message == "No spam by bot5 to show."
    assert "bot5" in user_view(world.sources, "bot5").message


def test_user_view_lists_a_users_events_in_both_channels(world: World) -> None:
    view = wait_for(
        "bot0's events in both channels",
        lambda: (lambda v: v if world.channel_b in v.message and world.channel_a in v.message else None)(
            user_view(world.sources, "  @Bot0 ")
        ),
        shown=lambda: user_view(world.sources, "bot0").message,
    )
    assert view.login == "bot0" and view.message.startswith("bot0 took part in ")
    assert "in 2 channels" in view.message
    assert {trace.name for trace in view.figure.data} == {world.channel_a, world.channel_b}
    search = search_view(world.sources, "@bot0", 0)
    assert search.message == view.message and "/user?login=bot0" in str(search.results)
    assert user_view(world.sources, f"nobody{uuid.uuid4().hex[:8]}").message.startswith("No spam by")


def test_live_feed_memory_is_bounded(platform: Config) -> None:
    config = platform.with_overrides(
        dashboard__chat_per_channel=10, dashboard__spam_per_channel=5, dashboard__max_channels=3
    )
    feed = LiveFeed(config)
    now = int(time.time() * 1000)
    for i in range(5000):
        feed.add_chat(ChatMessage(channel=f"chan{i % 7}", user_login="u", text=f"m{i}", sent_ts=now - i))
        if i % 10 == 0:
            feed.add_spam(
                SpamEvent(
                    event_id=f"e{i}",
                    kind="crowd",
                    channel=f"chan{i % 7}",
                    window_start=now,
                    window_end=now + 10_000,
                    text="t",
                    message_hash="h",
                    message_count=5,
                    distinct_users=3,
                )
            )
    assert len(feed._channels) == 3
    assert all(len(b.chat) <= 10 and len(b.events) <= 5 for b in feed._channels.values())
    assert all(len(b.bins) <= config.dashboard.history_s // 10 + 2 for b in feed._channels.values())
    feed.set_channel_list(ChannelList(source="file", updated_at=now, channels=[["bigstreamer", 50_000]]))
    assert feed.channels()[0].login == "bigstreamer"  # viewers known: listed first


def test_a_clicked_event_stays_in_the_detail_after_newer_events_push_it_off_the_list(platform: Config) -> None:
    feed = LiveFeed(platform)
    now = int(time.time() * 1000)
    for i in range(40):  # one event per window, the newest last: the first ten fall off a list of 30
        feed.add_spam(
            SpamEvent(
                event_id=f"e{i}",
                kind="crowd",
                channel="chan",
                window_start=now + i * 10_000,
                window_end=now + (i + 1) * 10_000,
                text=f"spam {i}",
                message_hash=f"h{i}",
                message_count=5 + i,
                distinct_users=3,
            )
        )
    sources = Sources(feed, History(platform))
    listed, problem = live_events(sources, "chan", 30)
    assert problem is None and [e["event_id"] for e in listed] == [f"e{i}" for i in range(39, 9, -1)]
    clicked = selected_event(sources, "chan", "e3", listed)
    assert clicked is not None and (clicked["text"], clicked["message_count"]) == ("spam 3", 8)
    assert selected_event(sources, "chan", "e39", listed) is listed[0]
    assert selected_event(sources, "chan", "gone", listed) is None
    assert selected_event(sources, "chan", None, listed) is None


def test_outages_show_in_the_sources_state_not_as_errors(platform: Config) -> None:
    nowhere = platform.with_overrides(
        kafka__bootstrap_servers="127.0.0.1:1",
        cassandra__hosts="127.0.0.1",
        cassandra__port=1,
        kafka__connect_timeout_s=1.0,
    )
    feed, history = LiveFeed(nowhere).start(), History(nowhere).start()
    try:
        wait_for(
            "the Kafka outage message", lambda: feed.kafka_error and "127.0.0.1:1" in feed.kafka_error, timeout_s=30
        )
        wait_for(
            "the Cassandra outage message",
            lambda: history.error and "no Cassandra node answered" in history.error,
            timeout_s=30,
        )
        view = search_view(Sources(feed, history), "some spam", 0)
        assert view.message.startswith("History is not available right now")
        events, problem = live_events(Sources(feed, history), "anyone")
        assert events == [] and "Cassandra" in problem
    finally:
        feed.stop(timeout_s=1)
        history.stop()


def test_public_bind_needs_basic_auth_credentials() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert credentials({}) is None
    assert credentials({"DASHBOARD_USER": "mod", "DASHBOARD_PASSWORD": "s3cret"}) == ("mod", "s3cret")
    with pytest.raises(DashboardError, match="DASHBOARD_PASSWORD"):
        credentials({"DASHBOARD_USER": "mod"})


def test_emote_tags_become_images_and_hostile_tags_are_skipped() -> None:
    from twitchcrement.records import emote_spans

    assert emote_spans(EMOTE_TAG, len(EMOTE_TEXT)) == [(0, 5, "25"), (17, 25, "305954156")]
    assert emote_spans("25:0-99", 5) == [] and emote_spans("garbage", 5) == [] and emote_spans("", 5) == []
    parts = chat_text(EMOTE_TEXT, EMOTE_TAG)
    assert [getattr(p, "alt", p) for p in parts] == ["Kappa", " hello chat ", "PogChamp"]
    assert parts[0].src == "https://static-cdn.jtvnw.net/emoticons/v2/25/default/dark/1.0"
    kappa = "https://static-cdn.jtvnw.net/emoticons/v2/25/default/dark/1.0"
    spam = spam_text("Kappa Kappa 7tvEmote", {"Kappa": kappa})
    assert [getattr(p, "alt", p) for p in spam] == ["Kappa", " ", "Kappa", " 7tvEmote"]
    assert spam[0].src == kappa
    # emotes.images_url: every picture from there (the demo's stand-in)
    parts = chat_text("Kappa PepeHands", "25:0-4", "bttv-5f1b0186cf6d2144653d2970:6-14", "http://127.0.0.1:9/images")
    assert [p.src for p in parts if hasattr(p, "src")] == [
        "http://127.0.0.1:9/images/twitch/25",
        "http://127.0.0.1:9/images/bttv/5f1b0186cf6d2144653d2970",
    ]


# --- the app in a real browser --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def serving(world: World) -> tuple[str, str]:
    """The app's address and its metrics endpoint's, as `python -m dashboard` serves them."""
    from waitress.server import create_server

    from dashboard import metrics

    # bot5 opted out after its chat was read (ingest had let it through): the pages must not show it.
    config = world.config.with_overrides(ingest__optout_users=["bot5"], dashboard__metrics_port=free_port())
    app = create_app(config, world.feed, world.history, auth=("mod", "s3cret"))
    endpoint = metrics.serve(config, app.server, world.feed, world.history)
    server = create_server(app.server, host="127.0.0.1", port=0, threads=6)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", endpoint.url
    server.close()
    endpoint.stop()


@pytest.fixture(scope="module")
def served(serving: tuple[str, str]) -> str:
    return serving[0]


@pytest.fixture(scope="module")
def browser(served: str):
    driver = chromium(basic_auth=("mod", "s3cret"))
    yield driver
    driver.quit()


def test_basic_auth_is_required_when_set(served: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(served + "/", timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(
        served + "/", headers={"Authorization": "Basic " + base64.b64encode(b"mod:s3cret").decode()}
    )
    assert urllib.request.urlopen(request, timeout=10).status == 200


def test_live_page_shows_new_chat_and_spam_and_keeps_chat_text_inert(
    world: World, served: str, browser: Any, artifacts: Path
) -> None:
    browser.get(f"{served}/?channel={world.channel_a}")
    before = page_text(browser, "live-chat")
    wait_for("chat on the live page", lambda: world.tag in page_text(browser, "live-chat"), timeout_s=20)
    wait_for("the chat list to move", lambda: page_text(browser, "live-chat") != before, timeout_s=20)
    wait_for(
        "a spam event on the live page",
        lambda: world.pasta in page_text(browser, "live-events"),
        shown=lambda: page_text(browser, "live-events")[:600],
    )
    # The payloads are on the page as literal characters, and nothing they contain ever ran.
    wait_for(
        "the XSS payloads as text",
        lambda: XSS_SCRIPT in page_text(browser, "live-chat") and XSS_IMG in page_text(browser, "live-chat"),
        timeout_s=20,
    )
    assert browser.execute_script("return window.__xss === undefined")
    assert browser.find_elements("css selector", "img[src='x']") == []
    assert browser.find_elements("xpath", "//main//script") == []
    # Twitch emotes are images from Twitch's CDN, with their code as alt text and tooltip (read in one script
    # call: the line may scroll off between two).
    kappa = wait_for(
        "an emote image in the chat",
        lambda: browser.execute_script(
            "const i = document.querySelector(\"#live-chat img.emote[alt='Kappa']\");"
            "return i ? [i.getAttribute('src'), i.getAttribute('title')] : null;"
        ),
        timeout_s=20,
    )
    assert kappa == ["https://static-cdn.jtvnw.net/emoticons/v2/25/default/dark/1.0", "Kappa"]
    # and BTTV, FFZ and 7TV emotes from their own CDNs, by the ids their APIs gave (here: the stand-in's sets)
    for code, provider, address in (
        ("PepeHands", "bttv", "https://cdn.betterttv.net/emote/{}/1x"),
        ("KEKW", "ffz", "https://cdn.frankerfacez.com/emote/{}/1"),
        ("Sadge", "7tv", "https://cdn.7tv.app/emote/{}/1x.webp"),
    ):
        image = wait_for(
            f"the {provider} emote {code} as an image",
            lambda code=code: browser.execute_script(
                f"const i = document.querySelector(\"#live-chat img.emote[alt='{code}']\");"
                "return i ? [i.getAttribute('src'), i.getAttribute('alt')] : null;"
            ),
            timeout_s=20,
        )
        assert image == [address.format(THIRD_PARTY_SETS[provider][""][code]), code]
    browser.save_screenshot(str(artifacts / "dashboard-live.png"))


def test_a_waves_message_count_grows_on_the_live_page_while_the_wave_goes_on(
    world: World, served: str, browser: Any
) -> None:
    """A wave written as it happens (84 messages from 12 users over 28 s): the live page shows an event of it marked
    live before the wave is over, each event's message count only going up while it goes on, and in the end every
    message of the wave counted in its closed events. Three windows long (an event in each): on a loaded 2-core
    machine the detector's micro-batches took 5-10 s each here (issue 30), so a wave of one window was over before
    its first report could show. How soon a wave is reported is the bench's measure, not this test's."""
    text = f"{world.tag} this wave grows while you watch it go up"  # no emote: the row shows it as text
    wave = LiveWave(world.config, f"{world.tag}_grow", text, users=12, count=84, every_s=0.33, windows=3)
    browser.get(f"{served}/?channel={wave.channel}")
    seen: dict[str, list[int]] = {}  # event id -> the message counts its row showed while marked live

    def rows() -> list[tuple[str, bool, int]]:
        """The wave's event rows: (event id, marked live, message count)."""
        found = browser.execute_script(
            "return [...document.querySelectorAll('#live-events .event')]"
            ".filter(r => r.textContent.includes(arguments[0]))"
            ".map(r => [r.querySelector('[data-event]').dataset.event,"
            "  [...r.querySelectorAll('.badge')].map(b => b.textContent)]);",
            wave.text,
        )
        return [
            (event_id, "live" in badges, int(next(b for b in badges if b.endswith(" msgs")).split()[0]))
            for event_id, badges in found
        ]

    def live_counts() -> dict[str, int]:
        live = {event_id: count for event_id, is_live, count in rows() if is_live}
        for event_id, count in live.items():
            if seen.setdefault(event_id, [])[-1:] != [count]:
                seen[event_id].append(count)
        return live

    wait_for(
        "an event of the wave marked live",
        live_counts,
        timeout_s=wave.window_start / 1000 - time.time() + 28,
        shown=lambda: f"{page_text(browser, 'live-events')[:300]} | feed: {world.feed.events(wave.channel)[:1]}",
    )
    assert not wave.done.is_set(), seen  # shown, and marked live, while the wave went on
    while not wave.done.is_set():
        live_counts()
        time.sleep(0.2)
    assert all(counts == sorted(counts) for counts in seen.values()), seen
    wait_for(
        "the whole wave in closed events",
        lambda: sum(count for _, is_live, count in rows() if not is_live) == wave.count,
        timeout_s=wave.window_end / 1000 - time.time() + 60,
        shown=lambda: str(rows()),
    )


VISIBLE_EVENTS = """return [...document.querySelectorAll('#live-events .event [data-event]')]
    .map(e => [Number(e.closest('.event').parentElement.style.order), e.dataset.event])
    .sort((a, b) => a[0] - b[0]).map(p => p[1]);"""  # a slot's CSS order (dashboard/slots.py) places it


def shown_events(browser: Any) -> list[str]:
    """The event ids of the live page's event list, top to bottom as a user sees them."""
    return browser.execute_script(VISIBLE_EVENTS)


def event_row_xpath(event_id: str) -> str:
    """The slot (dashboard/slots.py) that shows an event: the row a user clicks, which keeps its DOM node."""
    return f"//*[@data-event='{event_id}']/ancestor::div[contains(@class, 'event')]/.."


def test_ten_clicks_on_ten_events_each_show_their_detail_while_the_page_refreshes(
    world: World, served: str, browser: Any
) -> None:
    browser.get(f"{served}/?channel={world.channel_a}")
    wait_for("ten spam events on the live page", lambda: len(shown_events(browser)) >= 10, timeout_s=120)
    clicked_rows = {}
    # The ten newest as the page shows them now, clicked one after the other while new events push them down (an
    # open event merged into another meanwhile is gone from the list: there is nothing to click).
    for i, event_id in enumerate(shown_events(browser)[:10]):
        if event_id not in shown_events(browser):
            continue
        until(
            f"the detail of event {i + 1} of 10",
            lambda event_id=event_id: click(browser, event_row_xpath(event_id)),
            lambda event_id=event_id: event_id
            == browser.execute_script(
                "const d = document.querySelector('#live-detail [data-event]'); return d ? d.dataset.event : '';"
            ),
            timeout_s=90,
            again_s=10,
            shown=lambda: page_text(browser, "live-detail")[:200],
        )
        for row in browser.find_elements("xpath", event_row_xpath(event_id))[:1]:
            clicked_rows[event_id] = row
    assert len(clicked_rows) >= 5, clicked_rows
    assert world.tag in page_text(browser, "live-chat")  # the page went on refreshing meanwhile
    # Rows keep their identity while the list changes: once a newer event has arrived at the top, the rows held
    # from before are the very same DOM nodes, showing the same events; a closed event's row shows just what it
    # showed (an open one may have grown and closed since).
    closed = {
        event_id: row.get_attribute("textContent")
        for event_id, row in clicked_rows.items()
        if not row.find_elements("css selector", ".badge.live")
    }
    assert closed
    top = shown_events(browser)[0]
    # a newer wave of this test's own (the scripted chat may be over by now, on a slow machine)
    LiveWave(
        world.config, world.channel_a, f"{world.tag} a newer wave on top of the list", users=5, count=8, every_s=0.2
    )
    wait_for("a newer spam event", lambda: shown_events(browser)[0] != top, timeout_s=60)
    # (an event pushed off the end of the list meanwhile has no row any more: its slot shows a newer one)
    listed = set(shown_events(browser))
    held = {event_id: row for event_id, row in clicked_rows.items() if event_id in listed}
    assert held
    for event_id, row in held.items():
        assert row.find_element("css selector", "[data-event]").get_attribute("data-event") == event_id
        assert event_id not in closed or row.get_attribute("textContent") == closed[event_id]


def search_box(browser: Any) -> Any:
    return browser.find_element("id", "search-text")


def test_search_page_typing_and_enter_or_the_button_searches_and_the_address_follows(
    world: World, served: str, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    wait_for(
        "the variant in history",
        lambda: [s for s in world.history.search(world.pasta).sightings if s["channel"] == world.channel_b],
    )
    browser.get(f"{served}/search")
    # the page has answered once (its empty-box message): it is ready for keys
    wait_for("the search page", lambda: "Type or paste" in page_text(browser, "search-message"), timeout_s=60)
    type_text(search_box(browser), world.variant.upper())
    until(
        "search results after Enter",
        lambda: search_box(browser).send_keys(Keys.ENTER),
        lambda: world.channel_a in page_text(browser, "search-results")
        and world.channel_b in page_text(browser, "search-results"),
        timeout_s=60,
        again_s=10,
        shown=lambda: page_text(browser, "search-message")
        + " | box: "
        + str(browser.execute_script("return document.getElementById('search-text').value")),
    )
    wait_for(
        "the address to follow the query",
        lambda: urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query).get("q")
        == [world.variant.upper()],
        timeout_s=10,
        shown=lambda: browser.current_url,
    )
    assert "Seen" in page_text(browser, "search-message")
    browser.save_screenshot(str(artifacts / "dashboard-search.png"))
    # A second query typed into the same box and sent with the button.
    box = search_box(browser)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys("x" * 499)
    until(
        "a helpful message after the button",
        lambda: click(browser, "//*[@id='search-go']"),
        lambda: "No spam like this" in page_text(browser, "search-message"),
        timeout_s=60,
        again_s=10,
        shown=lambda: page_text(browser, "search-message"),
    )
    wait_for(
        "the address to follow the second query",
        lambda: "x" * 499 in browser.current_url,
        timeout_s=10,
        shown=lambda: browser.current_url,
    )
    # Back returns to the first search.
    browser.back()
    wait_for(
        "the first search again after Back",
        lambda: world.channel_b in page_text(browser, "search-results"),
        timeout_s=60,
        shown=lambda: browser.current_url + " | " + page_text(browser, "search-message"),
    )


def test_an_events_users_link_to_the_user_page_which_shows_both_channels(
    world: World, served: str, browser: Any, artifacts: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    wait_for("bot0 in both channels' history", lambda: world.channel_b in user_view(world.sources, "bot0").message)
    browser.get(f"{served}/?channel={world.channel_a}")
    campaign = wait_for(
        "a campaign event on the live page",
        lambda: browser.execute_script(
            "return [...document.querySelectorAll('#live-events .event [data-event]')]"
            ".filter(e => e.textContent.includes(arguments[0])).map(e => e.dataset.event)[0] || null;",
            world.campaign.rsplit(" ", 1)[0],
        ),  # its last word, PogChamp, shows as an emote image
        timeout_s=60,
    )
    # The users of the event, from the history: a user who opted out after the fact is not among them.
    users = until(
        "the event's users from the history",
        lambda: click(browser, event_row_xpath(campaign)),
        lambda: "still being written" not in page_text(browser, "live-detail")
        and browser.execute_script(
            "return [...document.querySelectorAll('#event-users .ag-cell a')].map(a => a.textContent);"
        )
        or None,
        timeout_s=30,
        shown=lambda: page_text(browser, "live-detail")[:300],
    )
    assert sorted(users) == [f"bot{i}" for i in range(5)]
    click(browser, "//*[@id='event-users']//a[text()='bot0']")
    wait_for(
        "bot0's page from the link",
        lambda: world.channel_b in page_text(browser, "user-message")
        and world.channel_a in page_text(browser, "user-message"),
        timeout_s=30,
        shown=lambda: browser.current_url + " | " + page_text(browser, "user-message"),
    )
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query)["login"] == ["bot0"]
    assert world.campaign in page_text(browser, "user-results")
    browser.save_screenshot(str(artifacts / "dashboard-user.png"))
    # Typed into the page's box: another user, and then the opted-out one, who is not shown.
    box = browser.find_element("id", "user-login")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    type_text(box, "@bot1", Keys.ENTER)
    wait_for(
        "bot1's page after Enter",
        lambda: page_text(browser, "user-message").startswith("bot1 took part in"),
        timeout_s=30,
        shown=lambda: page_text(browser, "user-message"),
    )
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    type_text(box, "bot5", Keys.ENTER)
    wait_for(
        "no page for the opted-out user",
        lambda: page_text(browser, "user-message") == "No spam by bot5 to show.",
        timeout_s=30,
        shown=lambda: page_text(browser, "user-message"),
    )
    assert "bot5" not in page_text(browser, "user-results")
    # The search page takes @name as a user lookup.
    browser.get(f"{served}/search")
    wait_for("the search page", lambda: "Type or paste" in page_text(browser, "search-message"), timeout_s=60)
    type_text(search_box(browser), "@bot2", Keys.ENTER)
    wait_for(
        "a user lookup from the search box",
        lambda: page_text(browser, "search-message").startswith("bot2 took part in")
        and world.channel_b in page_text(browser, "search-message"),
        timeout_s=30,
        shown=lambda: page_text(browser, "search-message"),
    )


def test_overview_page_shows_totals_topics_and_heatmap(
    world: World, served: str, browser: Any, artifacts: Path
) -> None:
    browser.get(f"{served}/overview")
    wait_for("totals", lambda: "chat messages/s in" in page_text(browser, "overview-totals"), timeout_s=20)
    wait_for("the campaign", lambda: world.tag in page_text(browser, "overview-campaigns"), timeout_s=30)
    wait_for(
        "the heatmap",
        lambda: browser.find_elements("css selector", "#overview-heatmap .heatmaplayer")
        or browser.find_elements("css selector", "#overview-heatmap .hm"),
        timeout_s=30,
    )
    browser.save_screenshot(str(artifacts / "dashboard-overview.png"))


def test_dashboard_metrics_time_the_callbacks_of_each_page_and_show_health(
    serving: tuple[str, str], browser: Any
) -> None:
    served, metrics_url = serving
    for page, ready_id in (
        ("/", "live-chat"),
        ("/search?q=hello", "search-message"),
        ("/user?login=bot0", "user-message"),
    ):
        browser.get(served + page)
        wait_for(f"{page} to answer", lambda ready_id=ready_id: page_text(browser, ready_id), timeout_s=60)
    samples = wait_for(
        "callback times of the live, search and user pages",
        lambda: (
            lambda s: s
            if all(
                s.get(("twitchcrement_dashboard_callback_duration_seconds_count", (("page", p),)), 0) >= 1
                for p in ("live", "search", "user")
            )
            else None
        )(scrape(metrics_url)),
        timeout_s=30,
    )
    assert samples[("twitchcrement_dashboard_service_up", (("service", "kafka"),))] == 1
    assert samples[("twitchcrement_dashboard_service_up", (("service", "cassandra"),))] == 1
    assert samples[("twitchcrement_dashboard_live_buffer_records", (("kind", "chat"),))] > 0
    assert ready(metrics_url) == {"ready": True, "checks": {"kafka": "ok", "cassandra": "ok"}}
