"""A long-running process's Prometheus metrics and health, on a loopback port of its own (`<part>.metrics_port`).

    GET /metrics   the process's metrics in the Prometheus text format (prometheus-client)
    GET /healthz   200 "ok" while the process runs
    GET /readyz    200 when everything it depends on answers (Kafka, Cassandra, the detector's query), else 503;
                   the JSON body names each check and, for a failing one, why

Each part registers its metrics in its own CollectorRegistry (several parts can share a process in tests) and
hands readiness checks that return None when fine, else one line saying what is wrong.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], "str | None"]  # None: ready; else why not, in one line


class Endpoint:
    """The HTTP server of one part's /metrics, /healthz and /readyz, in a daemon thread."""

    def __init__(
        self,
        part: str,
        port: int,
        registry: CollectorRegistry,
        checks: dict[str, Check] | None = None,
        host: str = "127.0.0.1",
    ):
        self.part, self.port, self.host = part, port, host
        self.registry = registry
        self.checks = dict(checks or {})
        self._server: ThreadingHTTPServer | None = None

    def readiness(self) -> dict[str, str | None]:
        problems: dict[str, str | None] = {}
        for name, check in self.checks.items():
            try:
                problems[name] = check()
            except Exception as exc:  # noqa: BLE001 - a check that fails says not ready, never breaks the endpoint
                problems[name] = f"{type(exc).__name__}: {exc}"[:300]
        return problems

    def start(self) -> Endpoint:
        """Serve on the port (0: the endpoint is off); a port in use is a warning, not a failure of the process."""
        if not self.port:
            return self
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(endpoint.registry))
                elif path == "/healthz":
                    self._send(200, "text/plain; charset=utf-8", b"ok\n")
                elif path == "/readyz":
                    problems = endpoint.readiness()
                    ready = not any(problems.values())
                    body = {"ready": ready, "checks": {k: v or "ok" for k, v in problems.items()}}
                    self._send(200 if ready else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: /metrics, /healthz or /readyz\n")

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:  # scrapes every few seconds: not worth a log line each
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            log.warning(
                "metrics endpoint not started",
                extra={
                    "part": self.part,
                    "port": self.port,
                    "error": exc.strerror or str(exc),
                    "setting": f"{self.part}.metrics_port",
                },
            )
            return self
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"{self.part}-metrics", daemon=True).start()
        log.info("metrics endpoint serving", extra={"part": self.part, "url": self.url})
        return self

    @property
    def url(self) -> str:
        port = self._server.server_address[1] if self._server else self.port
        return f"http://{self.host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
