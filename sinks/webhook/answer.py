"""Reading a receiver's answer without trusting its size.

The sink needs an answer's status and headers and, for a refusal, an excerpt of its body:
it reads at most `BODY_CAP` bytes of the body, within the request's deadline (the caller's
`asyncio.timeout`). A longer body is not drained: closing a response read only in part
closes its connection (httpcore pools a connection only once its answer was read to the
end), so a receiver answering with a gigabyte costs a few reads, not a gigabyte.

Bodies are asked for and read uncompressed (`accept-encoding: identity`): a compressed
excerpt would be unreadable anyway, and inflating one could hold far more than the cap.
"""

from __future__ import annotations

from typing import Any

import httpx

BODY_CAP = 64 * 1024
REQUEST_HEADERS = {"accept-encoding": "identity"}


async def exchange(
    client: httpx.AsyncClient, method: str, url: str, **options: Any
) -> tuple[httpx.Response, bytes]:
    """Send one request; its answer (the body unread) and the first `BODY_CAP` bytes at
    most of its body."""
    async with client.stream(method, url, **options) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= BODY_CAP:
                break
    return response, b"".join(chunks)[:BODY_CAP]
