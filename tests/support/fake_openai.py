"""A small OpenAI-compatible server on loopback that tests can tell to misbehave."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    # A hundred clients connecting at once (AGENT_MAX_CONCURRENT=100) overflow the default backlog of 5: the
    # connections past it were reset or stalled a second, which is the test server's limit, not the client's.
    request_queue_size = 1024


class FakeOpenAI:
    """Answers POST /v1/chat/completions. Modes: ok, slow, 429, 500, 400, broken_json, hang."""

    def __init__(self) -> None:
        self.mode, self.delay_seconds, self.retry_after = "ok", 0.0, None
        self.calls = 0
        self.answered_at: list[float] = []  # time.monotonic() of each reply sent (mode ok)
        self.concurrent = self.max_concurrent = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        handler = self._handler()
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def set(self, mode: str, *, delay_seconds: float = 0.0, retry_after: str | None = None) -> None:
        self.mode, self.delay_seconds, self.retry_after = mode, delay_seconds, retry_after

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes; no 40 ms stall

            def log_message(self, *_args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.calls += 1
                    fake.concurrent += 1
                    fake.max_concurrent = max(fake.max_concurrent, fake.concurrent)
                try:
                    self._answer(request)
                finally:
                    with fake._lock:
                        fake.concurrent -= 1

            def _answer(self, request: dict) -> None:
                mode = fake.mode
                if fake.delay_seconds:
                    time.sleep(fake.delay_seconds)
                if mode == "hang":
                    fake._release.wait(60)
                    return
                if mode in ("429", "500", "400"):
                    err = {"error": {"message": f"fake {mode}", "type": "fake", "code": mode}}
                    headers = {"Retry-After": fake.retry_after} if fake.retry_after else {}
                    self._send(int(mode), json.dumps(err).encode(), headers)
                    return
                if mode == "broken_json":
                    self._send(200, b'{"id": "x", "choices": [')
                    return
                user = request["messages"][-1]["content"]
                body = {"id": f"chatcmpl-{fake.calls}", "object": "chat.completion", "created": int(time.time()),
                        "model": request.get("model", "gpt-4o-mini"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "MODEL: " + user.split(": ", 1)[-1]}}],
                        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160}}
                self._send(200, json.dumps(body).encode())
                with fake._lock:
                    fake.answered_at.append(time.monotonic())

        return Handler
