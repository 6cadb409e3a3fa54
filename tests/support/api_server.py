"""The agent API served by uvicorn on loopback, on its own thread: the checklist's HTTP checks call it for real."""
from __future__ import annotations

import threading
import time

import uvicorn
from sqlalchemy import Engine

from core.api import create_app
from tests.support.net import free_port


class LoopbackApi:
    """`with LoopbackApi(engine) as url:` serves the API at URL until the block ends."""

    def __init__(self, engine: Engine) -> None:
        self.port = free_port()
        config = uvicorn.Config(create_app(engine=engine), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the API did not start on loopback within 20 s")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
