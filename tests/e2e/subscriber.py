"""A webhook subscriber run inside the test process, that a test can take down and bring back,
or make answer with an error."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def verified(self, secret: str) -> dict[str, Any]:
        """The event, once its Standard Webhooks signature checks out (raises otherwise)."""
        return dict(Webhook(secret).verify(self.body, self.headers))


@dataclass
class Subscriber:
    port: int = field(default_factory=lambda: _free_port())
    received: list[Received] = field(default_factory=list)
    # The status each path answers with (200 unless set).
    answers: dict[str, int] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def of(self, path: str, subject: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if r.path == path and (subject is None or r.event.get("subject") == subject)
        ]

    async def start(self) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        # Listening before uvicorn starts: no call can be refused once `start` returns.
        listening = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._task = asyncio.create_task(self._server.serve(sockets=[listening]))
        await asyncio.sleep(0)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def _receive(self, request: Request) -> Response:
        path = request.path_params["path"]
        status = self.answers.get(path, 200)
        if status < 300:
            body = (await request.body()).decode()
            self.received.append(Received(path, dict(request.headers), body))
        return Response(status_code=status)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
