"""The metrics and health listener (`http.listen`; off when absent, loopback by default).

- `/metrics`: Prometheus text exposition.
- `/healthz`: 200 while the process runs (liveness).
- `/readyz`: 200 when the feed answers, the offset store writes and every sink is connected;
  503 otherwise, with a JSON body naming what is not ready (readiness; Docker HEALTHCHECK).

Served by uvicorn inside the bridge's event loop; uvicorn's own signal handling is turned
off so SIGTERM still reaches the pipeline's graceful shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import orjson
import uvicorn

from bridge.telemetry import Telemetry, readiness

if TYPE_CHECKING:
    from bridge.pipeline import Pipeline

log = logging.getLogger("bridge.listener")


class _Server(uvicorn.Server):
    def capture_signals(self):  # the pipeline owns SIGTERM/SIGINT
        return contextlib.nullcontext()


class Listener:
    def __init__(self, pipeline: Pipeline, telemetry: Telemetry, host: str, port: int) -> None:
        self.pipeline = pipeline
        self.telemetry = telemetry
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            interface="asgi3",
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = _Server(config)

    async def serve(self) -> None:
        await self.server.serve()

    def stop(self) -> None:
        self.server.should_exit = True

    @property
    def started(self) -> bool:
        return self.server.started

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self.server.servers[0].sockets[0].getsockname()[1]

    async def app(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await _respond(
                send, 200, self.telemetry.exposition(), "text/plain; version=0.0.4; charset=utf-8"
            )
        elif path == "/healthz":
            await _respond(send, 200, b'{"status":"alive"}', "application/json")
        elif path == "/readyz":
            problems = readiness(self.pipeline)
            body = orjson.dumps({"ready": not problems, "problems": problems})
            await _respond(send, 503 if problems else 200, body, "application/json")
        else:
            await _respond(
                send,
                404,
                b"not found: try /metrics, /healthz or /readyz",
                "text/plain; charset=utf-8",
            )


async def _respond(send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
