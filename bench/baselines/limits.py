"""The practical ceilings on this machine, to compare the bridge with.

    python -m bench.baselines.limits feed --url URL --concurrency 16
    python -m bench.baselines.limits sink --url URL --sink kafka --target BOOTSTRAP/TOPIC
    python -m bench.baselines.limits composition --url URL --concurrency 16 --sink ...

- `feed`: the raw feed read rate: every v1 window up to `latest`, `concurrency` at a time,
  bare httpx + orjson, nothing else.
- `sink`: the raw sink rate: the same payloads the bridge sends (CloudEvents JSON), read
  from the feed first (not timed), then sent as fast as the bare client allows.
- `composition`: concurrent fetch + send with the same concurrency: each page is parsed and
  its entries sent as they are (no envelope), no cursor, no ordering, no retries.

Each prints one JSON line: entries, seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import orjson
import uvloop

from bench.baselines.sinks import bare_sink
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter


async def windows(args, http: httpx.AsyncClient, on_page=None) -> int:
    """Read every window concurrently; `on_page(entries)` gets each parsed page."""
    latest = orjson.loads(
        (await http.get("/changefeed/latest", params={"includeMetadata": "false"})).content
    )
    last = latest["sequence"]
    size = 100
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range((last + size - 1) // size):
        queue.put_nowait(index)
    total = 0
    metadata = "true" if args.metadata else "false"

    async def worker() -> None:
        nonlocal total
        while not queue.empty():
            index = queue.get_nowait()
            response = await http.get(
                "/changefeed",
                params={"offset": index * size, "limit": size, "includeMetadata": metadata},
            )
            page = orjson.loads(response.content)
            total += len(page)
            if on_page is not None and page:
                on_page(page)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return total


def client(args) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{args.url}/v1",
        timeout=60,
        limits=httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        ),
    )


async def feed(args) -> dict:
    async with client(args) as http:
        started = time.monotonic()
        entries = await windows(args, http)
    return {"entries": entries, "seconds": time.monotonic() - started}


async def sink(args) -> dict:
    formatter = Formatter(args.url)
    pages: list[list[dict]] = []
    async with client(args) as http:
        await windows(args, http, pages.append)
    batches = [[formatter.event(parse_entry(raw)) for raw in page] for page in pages]
    target = bare_sink(args.sink, args.target)
    started = time.monotonic()
    for events in batches:
        _send(args.sink, target, [e.body for e in events], [e.key.encode() for e in events])
    target.flush()
    seconds = time.monotonic() - started
    target.close()
    return {"entries": sum(map(len, batches)), "seconds": seconds}


async def composition(args) -> dict:
    target = bare_sink(args.sink, args.target)

    def send(page: list[dict]) -> None:
        bodies = [orjson.dumps(raw) for raw in page]
        keys = [raw["studyInstanceUid"].encode() for raw in page]
        _send(args.sink, target, bodies, keys)

    async with client(args) as http:
        started = time.monotonic()
        entries = await windows(args, http, send)
        target.flush()
        seconds = time.monotonic() - started
    target.close()
    return {"entries": entries, "seconds": seconds}


def _send(kind: str, target, bodies: list[bytes], keys: list[bytes]) -> None:
    if kind == "kafka":
        target.send_async(bodies, keys)
    else:
        target.send_async(bodies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["feed", "sink", "composition"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sink", choices=["file", "kafka"], default="file")
    parser.add_argument("--target", default="")
    parser.add_argument("--metadata", action="store_true")
    args = parser.parse_args()
    result = uvloop.run({"feed": feed, "sink": sink, "composition": composition}[args.what](args))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
