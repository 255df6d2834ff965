"""A local stand-in for the BetterTTV, FrankerFaceZ and 7TV emote APIs, for the demo, the tests and the benchmarks
(their servers cannot be reached from here).

It answers the paths twitchcrement.emotes asks, under /bttv, /ffz and /7tv, with bodies shaped as each API
documents them and its open-source clients read them: BTTV `GET /3/cached/emotes/global` (a list of {id, code,
imageType, animated, userId}) and `GET /3/cached/users/twitch/{id}` ({id, bots, avatar, channelEmotes,
sharedEmotes}); FFZ `GET /v1/set/global` ({default_sets, sets: {id: {id, title, emoticons: [{id, name, urls}]}},
users}) and `GET /v1/room/id/{id}` ({room: {..., set}, sets}); 7TV `GET /v3/emote-sets/global` ({id, name,
emotes: [{id, name, flags, data: {host}}]}) and `GET /v3/users/twitch/{id}` ({id, platform, username,
emote_set}). A channel a provider does not know is a 404 with that provider's error body. Every answer carries
`Cache-Control: public, max-age=...`. `down` makes every provider answer 503, as an outage would.

Its emotes are the synthetic world's, with made-up ids that no CDN has pictures of: at /images/PROVIDER/ID it
draws one for each (a badge with the emote's initials, an SVG), and for the synthetic world's Twitch emotes too
(PROVIDER twitch, so that the demo's pictures need no network); any other emote is redirected to its provider's
CDN. The demo's dashboard loads every emote picture from there (emotes.images_url).

    python -m services.emote_providers --port 8765   # the synthetic world's sets (ingest.synth)
"""

from __future__ import annotations

import argparse
import html
import json
import re
import threading
import urllib.parse
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from twitchcrement.emotes import image_url

# provider -> {"": global set, room id: that channel's set}, each set code -> id (as the provider spells ids)
Sets = dict[str, dict[str, dict[str, str]]]
FFZ_GLOBAL_SET = 3  # FFZ's global set id; its answer also lists a set that is not a default one (not for all)


def _bttv(emotes: dict[str, str], channel: bool) -> list[dict[str, Any]]:
    owner = {"id": "5561169bd6b9d206222a8c19", "name": "owner", "displayName": "Owner", "providerId": "1"}
    return [
        {"id": i, "code": c, "imageType": "png", "animated": False, **({"user": owner} if channel else {"userId": "1"})}
        for c, i in emotes.items()
    ]


def _ffz_set(set_id: int, emotes: dict[str, str]) -> dict[str, Any]:
    return {
        "id": set_id,
        "_type": 1,
        "title": "Global Emotes" if set_id == FFZ_GLOBAL_SET else "Channel Emotes",
        "emoticons": [
            {
                "id": int(i) if i.isdigit() else i,
                "name": c,
                "height": 32,
                "width": 32,
                "public": True,
                "hidden": False,
                "urls": {"1": f"https://cdn.frankerfacez.com/emote/{i}/1"},
            }
            for c, i in emotes.items()
        ],
    }


def _7tv_set(set_id: str, emotes: dict[str, str]) -> dict[str, Any]:
    return {
        "id": set_id,
        "name": "Global Emotes" if set_id == "global" else "Channel Emotes",
        "emotes": [
            {
                "id": i,
                "name": c,
                "flags": 0,
                "data": {
                    "id": i,
                    "name": c,
                    "animated": False,
                    "host": {"url": f"//cdn.7tv.app/emote/{i}", "files": []},
                },
            }
            for c, i in emotes.items()
        ],
    }


NOT_FOUND = {
    "bttv": {"message": "user not found"},
    "ffz": {"error": "Not Found", "message": "No such room", "status": 404},
    "7tv": {"status_code": 404, "error": "Unknown User", "error_code": 12000},
}


def picture(sets: Sets, path: str) -> bytes | str:
    """The SVG badge of the emote at /images/PROVIDER/ID, or the CDN address of one the stand-in does not have."""
    provider, _, emote_id = path.removeprefix("/images/").partition("/")
    emote_id = urllib.parse.unquote(emote_id.split("?")[0])
    codes = {i: c for room in sets.get(provider, {}).values() for c, i in room.items()}
    code = codes.get(emote_id)
    if code is None:
        return image_url(emote_id if provider == "twitch" else f"{provider}-{emote_id}")
    hue = zlib.crc32(code.encode()) % 360
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28" viewBox="0 0 28 28">'
        f'<rect width="28" height="28" rx="7" fill="hsl({hue},55%,45%)"/>'
        '<text x="14" y="19" font-family="sans-serif" font-size="12" font-weight="bold" fill="#fff" '
        f'text-anchor="middle">{html.escape(code[:2])}</text></svg>'
    ).encode()


def answer(sets: Sets, path: str) -> tuple[int, Any]:
    """(status, JSON body) for a request path of the stand-in."""
    provider, _, rest = path.lstrip("/").partition("/")
    own = sets.get(provider, {})
    rest = "/" + rest.split("?")[0]
    room = re.fullmatch(r"/(?:cached/users/twitch|room/id|users/twitch)/(\w+)", rest)
    if provider == "bttv" and rest == "/cached/emotes/global":
        return 200, _bttv(own.get("", {}), channel=False)
    if provider == "ffz" and rest == "/set/global":
        given = {str(FFZ_GLOBAL_SET): _ffz_set(FFZ_GLOBAL_SET, own.get("", {}))}
        given["4330"] = _ffz_set(4330, {"NotForEveryone": "99999"})  # a set given to some users only
        return 200, {"default_sets": [FFZ_GLOBAL_SET], "sets": given, "users": {"4330": ["someone"]}}
    if provider == "7tv" and rest == "/emote-sets/global":
        return 200, _7tv_set("global", own.get("", {}))
    if room is None or provider not in NOT_FOUND:
        return 404, {"message": "no such path"}
    room_id = room.group(1)
    if room_id not in own:
        return 404, NOT_FOUND[provider]
    emotes = own[room_id]
    if provider == "bttv":
        channel = _bttv(emotes, channel=True)
        return 200, {"id": room_id, "bots": [], "avatar": "", "channelEmotes": channel[:1], "sharedEmotes": channel[1:]}
    if provider == "ffz":
        set_id = 100_000 + int(room_id) if room_id.isdigit() else 100_000
        room_body = {"_id": set_id, "twitch_id": room_id, "id": f"room{room_id}", "is_group": False, "set": set_id}
        return 200, {"room": room_body, "sets": {str(set_id): _ffz_set(set_id, emotes)}}
    return 200, {
        "id": room_id,
        "platform": "TWITCH",
        "username": f"room{room_id}",
        "emote_set": _7tv_set(room_id, emotes),
    }


@dataclass
class EmoteProviders:
    """The stand-in on 127.0.0.1 (port 0: any free one), in a thread; `requests` counts the paths asked."""

    sets: Sets
    port: int = 0
    max_age_s: int = 3600
    down: bool = False
    requests: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                stand_in.requests[self.path] += 1
                drawn = picture(stand_in.sets, self.path) if self.path.startswith("/images/") else None
                if isinstance(drawn, str):
                    self.send_response(302)
                    self.send_header("Location", drawn)
                    self.end_headers()
                    return
                if drawn is not None:
                    status, data, kind = 200, drawn, "image/svg+xml"
                else:
                    status, body = (503, {"message": "down"}) if stand_in.down else answer(stand_in.sets, self.path)
                    data, kind = json.dumps(body).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", f"public, max-age={stand_in.max_age_s}")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="emote-providers", daemon=True)
        self._thread.start()

    def urls(self) -> dict[str, str]:
        """The base URL of each provider (emotes.bttv_url, emotes.ffz_url, emotes.seventv_url)."""
        return {p: f"http://127.0.0.1:{self.port}/{p}" for p in ("bttv", "ffz", "7tv")}

    def environment(self) -> dict[str, str]:
        """The settings that point a platform process at this stand-in, as environment variables."""
        return environment(f"http://127.0.0.1:{self.port}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def environment(base_url: str) -> dict[str, str]:
    """The settings that point a platform process at a stand-in serving at base_url, as environment variables."""
    return {
        "TWITCHCREMENT_EMOTES_BTTV_URL": f"{base_url}/bttv",
        "TWITCHCREMENT_EMOTES_FFZ_URL": f"{base_url}/ffz",
        "TWITCHCREMENT_EMOTES_SEVENTV_URL": f"{base_url}/7tv",
    }


def main(argv: list[str] | None = None) -> int:
    from ingest.synth import THIRD_PARTY_SETS, TWITCH_EMOTES

    parser = argparse.ArgumentParser(prog="python -m services.emote_providers", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # and the synthetic world's Twitch emotes, whose pictures it draws too (see picture)
    stand_in = EmoteProviders({**THIRD_PARTY_SETS, "twitch": {"": TWITCH_EMOTES}}, port=args.port)
    try:
        stand_in._thread.join()
    except KeyboardInterrupt:
        stand_in.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
