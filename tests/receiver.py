"""A local HTTP receiver for delivery tests: aiohttp on 127.0.0.1 in a thread of its own."""

from __future__ import annotations

import asyncio
import threading

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
