"""A Sentry ingest on loopback: accepts the SDK's envelopes, decodes them, and keeps the events for assertions."""
from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def decode_body(body: bytes, encoding: str) -> bytes:
    """Undo the SDK's Content-Encoding (gzip by default, brotli when the brotli module is installed)."""
    encoding = encoding.lower().strip()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only present when the SDK itself could use it

        return brotli.decompress(body)
    return body


def parse_envelope(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """The items of a Sentry envelope as (item header, payload bytes)."""
    _header, _, rest = raw.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        if not line.strip():
            continue
        item_header = json.loads(line)
        length = item_header.get("length")
        if length is not None:
            payload, rest = rest[:length], rest[length:].lstrip(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return items


class FakeSentry:
    """`dsn` points the SDK here; `events` holds every error event received (with its tags), in order."""

    def __init__(self, *, status: int = 200) -> None:
        self.status = status  # what the ingest answers; a refusal keeps nothing
        self.attempts: list[tuple[str, dict[str, Any]]] = []  # (event id, envelope header) of every POST, refused too
        self.events: list[dict[str, Any]] = []
        self.envelopes = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.server_address[1]}/42"

    def start(self) -> "FakeSentry":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def error_events(self) -> list[dict[str, Any]]:
        """Events that carry an exception or a message (not transactions or sessions)."""
        with self._lock:
            return [e for e in self.events if e.get("exception") or e.get("message") or e.get("logentry")]

    def _receive(self, raw: bytes, path: str) -> None:
        with self._lock:
            self.envelopes += 1
            if path.rstrip("/").endswith("/store"):
                self.events.append(json.loads(raw))
                return
            for header, payload in parse_envelope(raw):
                if header.get("type") == "event":
                    self.events.append(json.loads(payload))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                raw = decode_body(body, self.headers.get("Content-Encoding", ""))
                header = json.loads(raw.partition(b"\n")[0] or b"{}")
                fake.attempts.append((header.get("event_id", ""), header))
                if fake.status == 200:
                    fake._receive(raw, self.path)
                reply = b'{"id": "0"}' if fake.status == 200 else b'{"detail": "refused"}'
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        return Handler
