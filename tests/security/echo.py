"""Hostile HTTP peers that echo every credential they receive.

`EchoPeer` answers with the request's URL (query string included) and every header it
received (Authorization, webhook-signature, API keys), in its body as JSON and as plain
text, in `WWW-Authenticate` and another response header, and in the `Location` of a
redirect: whatever part of an answer the bridge logs, shows or dead-letters holds our
credentials. A `plan(number, request)` chooses each answer: an echo with a status, or
`FORWARD` to pass the request on to `upstream` (the simulator) unchanged.

    with EchoPeer(plan=lambda number, request: 500 if number < 3 else FORWARD,
                  upstream=sim.url) as feed:
        ...  # feed.url in front of the simulator: three echoing 500s, then the real feed
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import quote

import orjson

FORWARD = 0
"""The answer of a plan that passes the request on to the upstream."""


@dataclass(frozen=True)
class Seen:
    method: str
    url: str  # path and query string
    headers: dict[str, str]
    body: bytes


Plan = Callable[[int, Seen], int]
"""(number of the request, from 0; the request) → a status to echo with, or FORWARD."""


class EchoPeer:
    def __init__(self, plan: Plan, upstream: str | None = None) -> None:
        self.plan = plan
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.echoed = 0  # refusals and redirects that echoed credentials
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                peer._handle(self)

            do_POST = do_OPTIONS = do_GET

            def log_message(self, *args: object) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        seen = Seen(
            handler.command, handler.path, dict(handler.headers), handler.rfile.read(length)
        )
        with self._lock:
            number = len(self.seen)
            self.seen.append(seen)
        status = self.plan(number, seen)
        if status == FORWARD:
            self._forward(handler, seen)
            return
        if status >= 300:
            with self._lock:
                self.echoed += 1
        _echo(handler, status, seen)

    def _forward(self, handler: BaseHTTPRequestHandler, seen: Seen) -> None:
        assert self.upstream is not None, "a plan forwarding needs an upstream"
        request = urllib.request.Request(
            self.upstream + seen.url,
            data=seen.body or None,
            method=seen.method,
            headers={k: v for k, v in seen.headers.items() if k.lower() != "host"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as refused:
            status, headers, body = refused.code, refused.headers, refused.read()
        handler.send_response(status)
        handler.send_header("content-type", headers.get("content-type", "application/json"))
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def _echo(handler: BaseHTTPRequestHandler, status: int, seen: Seen) -> None:
    """Every credential of `seen`, everywhere an answer can carry it: the body starts with
    them (what a log or a dead letter quotes is its start), then holds them as JSON."""
    headers = dict(
        sorted(seen.headers.items(), key=lambda item: item[0].lower() != "authorization")
    )
    credentials = " ".join(f"{name}: {value}" for name, value in headers.items())
    document = {"error": f"refused {seen.method} {seen.url}", "received": headers}
    body = f"{credentials} | {seen.url} | ".encode() + orjson.dumps(document)
    authorization = seen.headers.get("Authorization", "")
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.send_header("WWW-Authenticate", f'Bearer error="invalid_token", got="{authorization}"')
    handler.send_header("X-Received-Authorization", authorization)
    if 300 <= status < 400:
        handler.send_header("Location", f"/moved/{quote(credentials, safe='')}?{seen.url}")
    handler.end_headers()
    handler.wfile.write(body)
