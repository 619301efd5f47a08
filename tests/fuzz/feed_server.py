"""A `Feed` served over real HTTP on loopback, for the CLI to read (a stdlib threading server:
the feed is static, so nothing more is needed).

    with FeedServer(feed) as server:
        ...  # feed.url: http://127.0.0.1:<port>; GET /v1/changefeed, /v1/changefeed/latest
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from tests.fuzz.feed_model import Feed


class FeedServer:
    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _handler(owner: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the bridge's client expects

        def do_GET(self) -> None:
            status, body = owner.feed.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Requests are not logged: a feed read makes hundreds."""

    return Handler
