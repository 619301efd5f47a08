"""Raw ASGI responses: the hot routes build them without any framework in the way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Header = tuple[bytes, bytes]

JSON = (b"content-type", b"application/json; charset=utf-8")
TEXT = (b"content-type", b"text/plain; charset=utf-8")


async def respond(
    send: Send, status: int, body: bytes = b"", headers: Iterable[Header] = ()
) -> None:
    """A complete response; no Content-Length on 204, which must not carry one."""
    head = list(headers)
    if status != 204:
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def respond_chunked(
    send: Send, status: int, chunks: Iterator[bytes], headers: Iterable[Header] = ()
) -> None:
    """A response of unknown length (chunked), produced while it is sent: a large body
    never sits in memory whole, and flow control paces the producer."""
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value
    return None
