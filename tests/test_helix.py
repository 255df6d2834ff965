"""The Helix client against a local HTTP server returning Helix's real response shapes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from ingest.channels import ChannelSource, HelixClient, HelixCredentials, HelixError, read_channels_file
from tests.conftest import test_config

TOKEN = "s3cr3t-app-token-value"


def stream(i: int, viewers: int) -> dict:
    # One element of GET /helix/streams' "data", as Twitch documents it.
    return {
        "id": str(40_000_000_000 + i),
        "user_id": str(1000 + i),
        "user_login": f"streamer{i}",
        "user_name": f"Streamer{i}",
        "game_id": "509658",
        "game_name": "Just Chatting",
        "type": "live",
        "title": "hi",
        "viewer_count": viewers,
        "started_at": "2026-11-24T01:00:00Z",
        "language": "en",
        "thumbnail_url": "https://example.invalid/{width}x{height}.jpg",
        "tag_ids": [],
        "tags": ["English"],
        "is_mature": False,
    }


class FakeHelix:
    """Pages of 100 by cursor; page 2 repeats two streams of page 1 (viewer counts moved); optional 429/401."""

    def __init__(self, total: int = 250, fail_first_with: int | None = None):
        self.streams = [stream(i, 100_000 - i * 10) for i in range(total)]
        self.requests: list[dict] = []
        self.fail_first_with = fail_first_with
        helix = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                query = parse_qs(urlparse(self.path).query)
                helix.requests.append(
                    {
                        "path": urlparse(self.path).path,
                        "query": query,
                        "client_id": self.headers.get("Client-Id"),
                        "auth": self.headers.get("Authorization"),
                    }
                )
                if helix.fail_first_with and len(helix.requests) == 1:
                    code = helix.fail_first_with
                    body = {
                        "error": "Too Many Requests" if code == 429 else "Unauthorized",
                        "status": code,
                        "message": "" if code == 429 else "Invalid OAuth token",
                    }
                    self.send_response(code)
                    self.send_header("Ratelimit-Limit", "800")
                    self.send_header("Ratelimit-Remaining", "0")
                    self.send_header("Ratelimit-Reset", str(int(time.time()) + 1))
                    self._json(body)
                    return
                start = int(query.get("after", ["0"])[0].removeprefix("cursor"))
                first = int(query.get("first", ["20"])[0])
                begin = max(0, start - 2) if start else 0  # the next page repeats two streams
                page = helix.streams[begin : begin + first]
                end = begin + len(page)
                body = {"data": page, "pagination": {"cursor": f"cursor{end}"} if end < len(helix.streams) else {}}
                self.send_response(200)
                self.send_header("Ratelimit-Limit", "800")
                self.send_header("Ratelimit-Remaining", "799")
                self.send_header("Ratelimit-Reset", str(int(time.time()) + 60))
                self._json(body)

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/helix"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def helix():
    servers: list[FakeHelix] = []

    def make(**kwargs) -> FakeHelix:
        servers.append(FakeHelix(**kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


CREDENTIALS = HelixCredentials("my-client-id", TOKEN)


def test_top_streams_paginates_and_dedupes_by_user_id(helix):
    server = helix(total=250)
    entries = HelixClient(server.url, CREDENTIALS).top_streams(230)
    assert len(entries) == 230
    assert len({e.login for e in entries}) == 230  # page overlaps removed
    assert [e.login for e in entries[:3]] == ["streamer0", "streamer1", "streamer2"]
    assert entries == sorted(entries, key=lambda e: e.viewers, reverse=True)
    assert all(r["query"]["first"] == ["100"] for r in server.requests)
    assert [r["query"].get("after") for r in server.requests] == [None, ["cursor100"], ["cursor198"]]
    assert all(r["client_id"] == "my-client-id" and r["auth"] == f"Bearer {TOKEN}" for r in server.requests)


def test_stops_when_helix_has_no_more_pages(helix):
    server = helix(total=120)
    assert len(HelixClient(server.url, CREDENTIALS).top_streams(500)) == 120


def test_429_waits_until_ratelimit_reset_then_retries(helix):
    server = helix(total=50, fail_first_with=429)
    waits: list[float] = []
    entries = HelixClient(server.url, CREDENTIALS, sleep=waits.append).top_streams(50)
    assert len(entries) == 50
    assert len(server.requests) == 2
    assert waits and 0 <= waits[0] <= 2.5


def test_401_is_one_clear_error_without_the_token(helix):
    server = helix(fail_first_with=401)
    with pytest.raises(HelixError, match="rejected the credentials \\(401\\).*TWITCH_CLIENT_ID") as error:
        HelixClient(server.url, CREDENTIALS).top_streams(10)
    assert TOKEN not in str(error.value) and TOKEN not in repr(CREDENTIALS)


def test_without_credentials_the_channels_file_is_used(tmp_path, caplog):
    channels = tmp_path / "channels.txt"
    channels.write_text("#NymN\nxqcow\n\n// a comment\nnymn\nforsen\n")
    assert [e.login for e in read_channels_file(channels)] == ["nymn", "xqcow", "forsen"]
    source = ChannelSource(test_config(), channels_file=str(channels), credentials=None)
    with caplog.at_level("INFO"):
        listing = source.fetch()
    assert (listing.source, listing.logins) == ("file", ["nymn", "xqcow", "forsen"])
    assert "reading the channels file" in caplog.text


def test_no_credentials_and_no_file_says_what_to_do():
    with pytest.raises(HelixError, match="TWITCH_CLIENT_ID and TWITCH_APP_TOKEN .* channels file"):
        ChannelSource(test_config(), credentials=None).fetch()


def test_helix_source_with_credentials(helix):
    server = helix(total=150)
    config = test_config(TWITCHCREMENT_INGEST_HELIX_URL=server.url, TWITCHCREMENT_INGEST_TOP_CHANNELS="120")
    listing = ChannelSource(config, credentials=CREDENTIALS).fetch()
    assert listing.source == "helix" and len(listing.channels) == 120 and listing.channels[0] == ["streamer0", 100000]
