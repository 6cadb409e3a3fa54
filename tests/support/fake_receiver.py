"""Loopback stand-ins for alert contact points: a Slack-compatible webhook and SendGrid's mail-send API."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeReceiver:
    """Records every POST (path, headers, JSON body). `status` is what it answers; SendGrid's path without a
    bearer token gets 401, as the real API does."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies received (at PATH only, when given)."""
        with self._lock:
            return [r["json"] for r in self.received if path is None or r["path"] == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append({"path": self.path, "headers": dict(self.headers),
                                              "json": json.loads(body or b"null")})
                status = receiver.status
                if self.path == "/v3/mail/send" and not self.headers.get("Authorization", "").startswith("Bearer "):
                    status = 401
                elif self.path == "/v3/mail/send" and status == 200:
                    status = 202  # SendGrid accepts mail with 202
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
