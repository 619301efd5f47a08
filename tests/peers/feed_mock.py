"""An `httpx.MockTransport` whose answers stream as a network's do, for FeedClient tests.

The feed client reads answers as raw streams (it decodes and bounds them itself), and an
`httpx.Response(content=...)` built by a handler is already read: it is served again here
as a stream of its bytes. A handler that sets `Content-Encoding` must build its response
with `stream=httpx.ByteStream(...)` (its content would be decoded otherwise).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx


class StreamingMock(httpx.MockTransport):
    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        super().__init__(handler)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if not response.is_stream_consumed:
            return response
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(response.content),
        )


def streamed(
    status: int, content: bytes, headers: httpx.Headers | dict[str, str]
) -> httpx.Response:
    """A response whose bytes are served as they are (no decoding on construction)."""
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content))
