"""Emote knowledge: which words of a chat message are emotes, and where their pictures are.

Twitch sends its own emotes with every message, in the IRC `emotes` tag (an id, then code-point ranges). The
emotes of BetterTTV, FrankerFaceZ and 7TV are plain words in chat: clients (Chatterino, pajbot, the browser
extensions) know them from each provider's public sets, one global and one per channel. `EmoteSets` fetches those
sets for the channels being read, keeps them in a cache on disk and refreshes them on a thread of its own; ingest
marks each message's third-party emotes with `tag_words`, in the shape of Twitch's tag with the provider in
the id ("bttv-5e76d338d6581c3724c0f0b2:0-8"), so every record says which of its words are emotes, as Twitch's own
tag does, and the detector and the dashboard need no lookup of their own (a replay gives the same answer again).

A channel with no set at a provider is normal (the API answers 404). An unreachable provider means the last cache
and one warning until it answers again, never a stopped ingest.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twitchcrement.config import Config, project_path

log = logging.getLogger(__name__)

PROVIDERS = ("bttv", "ffz", "7tv")
GLOBAL = ""  # the channel name of a provider's global set
# The picture of an emote, by the provider in its id (see tag_words); a bare id is Twitch's.
IMAGE_URLS = {
    "": "https://static-cdn.jtvnw.net/emoticons/v2/{id}/default/dark/1.0",
    "bttv": "https://cdn.betterttv.net/emote/{id}/1x",
    "ffz": "https://cdn.frankerfacez.com/emote/{id}/1",
    "7tv": "https://cdn.7tv.app/emote/{id}/1x.webp",
}
_WORD = re.compile(r"\S+")
MOSTLY = 0.5  # a message is "mostly emotes" when at least this share of its words are emotes


def image_url(emote_id: str, images_url: str = "") -> str:
    """The address of an emote's picture, from its id as the tags carry it (Twitch's bare, others prefixed): its
    provider's CDN, or images_url/PROVIDER/ID when that is set (emotes.images_url; PROVIDER twitch for Twitch's)."""
    provider, _, bare = emote_id.partition("-")
    if not (provider in IMAGE_URLS and bare):
        provider, bare = "", emote_id
    if images_url:
        return f"{images_url.rstrip('/')}/{provider or 'twitch'}/{urllib.parse.quote(bare, safe='')}"
    return IMAGE_URLS[provider].format(id=urllib.parse.quote(bare, safe=""))


def tag_words(text: str, codes: dict[str, str]) -> str:
    """The words of `text` that are emotes (codes: code -> id), as an emotes tag: ids with their inclusive
    code-point ranges, "bttv-54fa925e01e468494b85b54d:0-4,12-16/7tv-60ae3c2b:6-10" (Twitch's own: "25:0-4")."""
    if not codes:
        return ""
    ranges: dict[str, list[str]] = {}
    for match in _WORD.finditer(text):
        emote_id = codes.get(match.group())
        if emote_id:
            ranges.setdefault(emote_id, []).append(f"{match.start()}-{match.end() - 1}")
    return "/".join(f"{emote_id}:{','.join(spans)}" for emote_id, spans in ranges.items())


def _placed(tags: Iterable[str]) -> set[tuple[int, int]]:
    """The (start, end exclusive) ranges the tags mark; a malformed part marks nothing. (emote_spans, as lean as
    it can be: this runs for every chat message.)"""
    placed = set()
    for tag in tags:
        for part in tag.split("/") if tag else ():
            for span in part.partition(":")[2].split(","):
                first, _, last = span.partition("-")
                if first.isdigit() and last.isdigit():
                    placed.add((int(first), int(last) + 1))
    return placed


def emote_codes(text: str, *tags: str) -> tuple[list[str], float]:
    """The emotes a message shows (their codes, in order of first use, each once) from its tags, and the share of
    its words that are emotes. A tag marks whole words (Twitch's and tag_words's)."""
    if not any(tags):
        return [], 0.0  # most chat: no emote at all
    placed = _placed(tags)
    codes: list[str] = []
    words = emote_words = 0
    for match in _WORD.finditer(text):
        words += 1
        if match.span() in placed:
            emote_words += 1
            if match.group() not in codes:
                codes.append(match.group())
    return codes, emote_words / words if words else 0.0


def wave_emotes(text: str, *tags: str) -> str:
    """The emotes of a message that is mostly emotes (MOSTLY), space-separated; "" for any other message."""
    codes, share = emote_codes(text, *tags)
    return " ".join(codes) if share >= MOSTLY else ""


# --- the providers' public APIs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Provider:
    """One provider's API: where its global set and a channel's set are, and how to read their emotes (code -> id).
    Shapes as the providers document them and their open-source clients read them."""

    name: str
    global_path: str
    channel_path: str  # {room_id} (the channel's Twitch user id) and {login}
    global_emotes: Callable[[Any], Iterable[tuple[str, Any]]]
    channel_emotes: Callable[[Any], Iterable[tuple[str, Any]]]


def _bttv_emotes(emotes: Any) -> Iterable[tuple[str, Any]]:
    return ((e["code"], e["id"]) for e in emotes or [])


def _ffz_sets(body: Any) -> Iterable[tuple[str, Any]]:
    # {"sets": {"3": {"emoticons": [{"id": 25927, "name": "CatBag", "urls": {"1": ...}}]}}}; the global answer
    # also lists "default_sets", the sets every channel has
    wanted = body.get("default_sets")
    for set_id, emote_set in (body.get("sets") or {}).items():
        if wanted is None or int(set_id) in wanted:
            yield from ((e["name"], e["id"]) for e in emote_set.get("emoticons") or [])


def _7tv_set(emote_set: Any) -> Iterable[tuple[str, Any]]:
    # {"id", "name", "emotes": [{"id", "name", "data": {"host": {"url": "//cdn.7tv.app/emote/<id>"}}}]}
    return ((e["name"], e["id"]) for e in (emote_set or {}).get("emotes") or [])


API = {
    "bttv": Provider(
        "bttv",
        "/cached/emotes/global",  # [{"id", "code", "imageType", "animated", "userId"}]
        "/cached/users/twitch/{room_id}",  # {"id", "bots", "channelEmotes": [...], "sharedEmotes": [...]}
        _bttv_emotes,
        lambda body: [*_bttv_emotes(body.get("channelEmotes")), *_bttv_emotes(body.get("sharedEmotes"))],
    ),
    "ffz": Provider("ffz", "/set/global", "/room/id/{room_id}", _ffz_sets, _ffz_sets),
    "7tv": Provider(
        "7tv",
        "/emote-sets/global",
        "/users/twitch/{room_id}",  # {"id", "platform": "TWITCH", "username", "emote_set": {...}, "user": {...}}
        _7tv_set,
        lambda body: _7tv_set(body.get("emote_set")),
    ),
}


class ProviderDown(Exception):
    """A provider did not answer, or answered something that is not its API's shape."""


def max_age(cache_control: str | None) -> float | None:
    """Seconds from a Cache-Control header's max-age (None when it has none)."""
    match = re.search(r"max-age=(\d+)", cache_control or "")
    return float(match.group(1)) if match else None


@dataclass
class CachedSet:
    emotes: dict[str, str]  # code -> prefixed id
    fetched_at: float  # when the provider gave it (Unix s; 0: never, a placeholder after a failure)
    due_at: float  # when to fetch it again

    def due(self, now: float) -> bool:
        return now >= self.due_at


@dataclass
class ProviderStats:
    failures: int = 0
    down: bool = False  # warned once; the next answer says it is back


class EmoteSets:
    """The BTTV, FFZ and 7TV emote sets of the watched channels, cached on disk and refreshed in the background.

    `watch(channel, room_id)` adds a channel (each provider finds a channel by its Twitch user id); `codes`
    answers from memory at once; `refresh` fetches what is due, globals first; `start` runs it on a thread every
    few seconds. A set is fetched again after max(refresh_s, the answer's Cache-Control max-age); a failed fetch
    is tried again after retry_s, and until then the set on disk (or none) stands."""

    def __init__(
        self,
        urls: dict[str, str],
        cache_dir: Path,
        refresh_s: float = 3600.0,
        timeout_s: float = 5.0,
        retry_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        self.urls = {p: u.rstrip("/") for p, u in urls.items() if p in API and u}
        self.cache_dir = cache_dir
        self.refresh_s, self.timeout_s, self.retry_s, self.clock = refresh_s, timeout_s, retry_s, clock
        self.stats = {p: ProviderStats() for p in self.urls}
        self._sets: dict[tuple[str, str], CachedSet] = {}  # (provider, channel or GLOBAL) -> its set
        self._rooms: dict[str, str] = {}  # watched channel -> its Twitch user id ("" unknown)
        self._merged: dict[str, dict[str, str]] = {}  # channel -> code -> id, the channel's sets over the globals
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load_cache()

    @classmethod
    def from_config(cls, config: Config) -> EmoteSets | None:
        """The configured providers (emotes.providers), or None when there are none."""
        section = config.emotes
        urls = {"bttv": section.bttv_url, "ffz": section.ffz_url, "7tv": section.seventv_url}
        chosen = {p: urls[p] for p in section.providers}
        if not chosen:
            return None
        return cls(chosen, project_path(section.cache_dir), section.refresh_s, section.timeout_s)

    # --- what ingest asks
    def watch(self, channel: str, room_id: str = "") -> None:
        """Fetch this channel's sets too (soon, on the refresh thread); a known channel costs a dict lookup."""
        if self._rooms.get(channel) == room_id or (room_id == "" and channel in self._rooms):
            return
        with self._lock:
            self._rooms[channel] = room_id
        self._wake.set()

    def codes(self, channel: str) -> dict[str, str]:
        """code -> prefixed id of every third-party emote usable in the channel (its own sets over the globals)."""
        merged = self._merged.get(channel)
        return merged if merged is not None else self._merged.get(GLOBAL, {})

    def tag(self, channel: str, room_id: str, text: str) -> str:
        self.watch(channel, room_id)
        return tag_words(text, self.codes(channel))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per provider: sets held, emotes in them, when the newest was fetched (Unix s, also from the cache after a
        restart; 0: none), failed fetches; for the metrics."""
        with self._lock:
            sets = dict(self._sets)
        out = {}
        for provider, stats in self.stats.items():
            held = [s for (p, _), s in sets.items() if p == provider]
            out[provider] = {
                "sets": float(len(held)),
                "emotes": float(sum(len(s.emotes) for s in held)),
                "last_refresh": max((s.fetched_at for s in held), default=0.0),
                "failures": float(stats.failures),
            }
        return out

    # --- fetching
    def refresh(self) -> int:
        """Fetch every set that is due (globals, then the watched channels'); returns how many were fetched."""
        fetched = 0
        with self._lock:
            wanted = [(p, GLOBAL, "") for p in self.urls] + [
                (p, c, room) for c, room in self._rooms.items() for p in self.urls
            ]
        now = self.clock()
        for provider, channel, room_id in wanted:
            held = self._sets.get((provider, channel))
            if (held is not None and not held.due(now)) or (channel and not room_id):
                continue  # fresh; or no Twitch id to ask by (the globals stand for it)
            fetched += self._fetch(provider, channel, room_id)
        if fetched:
            self._merge()
        return fetched

    def start(self) -> EmoteSets:
        """Fetch what is due now (the globals before the first message is marked), then keep them fresh."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="emote-sets", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s * 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # a bug must not stop ingest: its messages go on with the sets held
                log.exception("emote sets: refresh failed")
            self._wake.wait(timeout=5.0)
            self._wake.clear()

    def _fetch(self, provider: str, channel: str, room_id: str) -> int:
        api, stats = API[provider], self.stats[provider]
        path = api.global_path if channel == GLOBAL else api.channel_path.format(room_id=room_id, login=channel)
        url = self.urls[provider] + path
        try:
            body, fresh_for = self._get(url)
            read = api.global_emotes if channel == GLOBAL else api.channel_emotes
            emotes = {} if body is None else {str(code): f"{provider}-{emote_id}" for code, emote_id in read(body)}
        except (ProviderDown, KeyError, TypeError, AttributeError, ValueError) as exc:
            stats.failures += 1
            if not stats.down:
                stats.down = True
                log.warning(
                    "emote sets: %s did not answer (%s); the sets held stay in use, tried again in %.0f s",
                    provider,
                    exc,
                    self.retry_s,
                )
            held = self._sets.get((provider, channel)) or CachedSet({}, 0.0, 0.0)
            with self._lock:  # tried again after retry_s, not at once; the set held (or none) stands until then
                self._sets[(provider, channel)] = CachedSet(held.emotes, held.fetched_at, self.clock() + self.retry_s)
            return 0
        if stats.down:
            log.info("emote sets: %s answers again", provider)
        stats.down = False
        now = self.clock()
        cached = CachedSet(emotes, now, now + max(self.refresh_s, fresh_for or 0.0))
        with self._lock:
            self._sets[(provider, channel)] = cached
        self._save(provider, channel, cached)
        return 1

    def _get(self, url: str) -> tuple[Any, float | None]:
        """The JSON body (None: the provider has no set there, 404) and the answer's max-age."""
        request = urllib.request.Request(url, headers={"User-Agent": "twitchcrement (emote sets)"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read()), max_age(response.headers.get("Cache-Control"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None, max_age(exc.headers.get("Cache-Control"))
            raise ProviderDown(f"HTTP {exc.code} from {url}") from exc
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
            raise ProviderDown(f"{type(exc).__name__} from {url}: {exc}") from exc

    # --- memory and disk
    def _merge(self) -> None:
        with self._lock:
            globals_ = {}
            for provider in self.urls:
                globals_.update(self._sets.get((provider, GLOBAL), CachedSet({}, 0, 0)).emotes)
            merged = {GLOBAL: globals_}
            for channel in self._rooms:
                own = dict(globals_)
                for provider in self.urls:
                    held = self._sets.get((provider, channel))
                    if held is not None:
                        own.update(held.emotes)
                merged[channel] = own
            self._merged = merged

    def _path(self, provider: str, channel: str) -> Path:
        return self.cache_dir / provider / f"{channel or '_global'}.json"

    def _save(self, provider: str, channel: str, cached: CachedSet) -> None:
        path = self._path(provider, channel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(
                json.dumps({"fetched_at": cached.fetched_at, "due_at": cached.due_at, "emotes": cached.emotes})
            )
            temporary.replace(path)
        except OSError as exc:
            log.warning("emote sets: cannot write the cache %s (%s); kept in memory only", path, exc)

    def _load_cache(self) -> None:
        for provider in self.urls:
            for path in sorted((self.cache_dir / provider).glob("*.json")):
                channel = "" if path.stem == "_global" else path.stem
                try:
                    data = json.loads(path.read_text())
                    cached = CachedSet(
                        {str(k): str(v) for k, v in data["emotes"].items()},
                        float(data["fetched_at"]),
                        float(data["due_at"]),
                    )
                except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.warning("emote sets: skipping the unreadable cache file %s (%s)", path, exc)
                    continue
                self._sets[(provider, channel)] = cached
                if channel:
                    self._rooms.setdefault(channel, "")
        self._merge()
