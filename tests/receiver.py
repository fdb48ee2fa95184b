"""A local HTTP receiver for delivery tests: aiohttp on 127.0.0.1 in a thread of its own."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.conftest import free_port


class HttpReceiver:
    """Answers POSTs to any path with ``handle``; subclasses (dataclasses) record what came."""

    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()
        self.port = free_port()

        def run() -> None:
            loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/{tail:.*}", self.handle)
            runner = web.AppRunner(app)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            self._loop = loop
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        assert ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class RecordingReceiver(HttpReceiver):
    """Records every POST it answers 200; a path in ``failures`` answers 500 that many times
    first (a flaky endpoint)."""

    failures: dict[str, int] = field(default_factory=dict)
    got: list[Received] = field(default_factory=list)  # 2xx answers only
    tries: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.got if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            n = self.tries[request.path] = self.tries.get(request.path, 0) + 1
            if n <= self.failures.get(request.path, 0):
                return web.Response(status=500)
            self.got.append(Received(request.path, dict(request.headers), body, time.time()))
        return web.Response(status=200, text="ok")
