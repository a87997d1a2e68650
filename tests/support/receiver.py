"""A real HTTP server on 127.0.0.1 that records what it receives: the far end of a webhook."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class Receiver:
    """An HTTP endpoint that records requests and replies with the next queued status.

    The status is 200 once the queue is empty. When the queued status is 2xx or the queue
    is empty, ``respond`` (if set) builds the response instead, so a fake service can
    speak its protocol.
    """

    host: str = "127.0.0.1"
    port: int = 0
    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    headers_for_status: dict[int, dict[str, str]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    respond: Callable[[ReceivedRequest], Response] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, request: Request) -> Response:
        received = ReceivedRequest(
            method=request.method,
            path=request.url.path,
            headers={key.lower(): value for key, value in request.headers.items()},
            body=await request.body(),
            query=request.url.query,
        )
        self.requests.append(received)
        self.arrived.set()
        status = self.statuses.popleft() if self.statuses else 200
        if status < 300 and self.respond is not None:
            return self.respond(received)
        return Response(
            content=b"ok" if status < 400 else b"receiver error",
            status_code=status,
            headers=self.headers_for_status.get(status, {}),
        )

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until ``count`` requests have arrived; fail the test after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningServer:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        receiver.port = receiver.port or free_port()
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    receiver._handle,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ]
        )
        config = uvicorn.Config(
            app,
            host=receiver.host,
            port=receiver.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Receiver:
        self.task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(10):
            while not self.server.started:
                await asyncio.sleep(0.01)
        return self.receiver

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
