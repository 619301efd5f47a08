"""Cursor commits per second: the azure_blob store on Azurite against SQLite and a bare SDK.

Starts Azurite (installed by `make azurite`) as a subprocess on loopback, then, one run
each, `--commits` commits of one cursor, one after the other (as a route commits):

1. sqlite: the embedded store (WAL, fsync on each commit), for scale;
2. bare SDK: azure-storage-blob's aio `upload_blob` with If-Match on the last ETag, the
   floor of a compare-and-swap write;
3. azure_blob: `commit` without a lease (one conditional write);
4. azure_blob under `ha:`: `commit(epoch=...)` (the lease blob read, then the write);
5. azure_blob, `--routes` routes committing at once (commits/s over all of them).

Commits are batched by `commit_interval` (1 s) in the bridge, so a route needs about one
commit a second: these rates are headroom, not throughput. Prints a table and the ratios.

    python -m bench.offset_commits --commits 500 --routes 8
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from azure.core import MatchConditions
from azure.storage.blob.aio import BlobServiceClient

from bridge.config import AzureBlobOffsetsConfig, SqliteOffsetsConfig
from bridge.offsets import open_store
from bridge.offsets.azure_blob import AzureBlobOffsetStore
from tests.peers.azurite import AzuriteProcess

FEED = "bench.example"


async def _rate(count: int, commit: Callable[[int], Awaitable[None]]) -> float:
    await commit(0)  # connecting, the container and the first version are not the rate
    start = time.perf_counter()
    for n in range(1, count + 1):
        await commit(n)
    return count / (time.perf_counter() - start)


async def _measure(
    azurite: AzuriteProcess, state: Path, count: int, routes: int
) -> list[tuple[str, float]]:
    rates: list[tuple[str, float]] = []

    sqlite = open_store(SqliteOffsetsConfig(path=state / "offsets.db"))
    rates.append(("sqlite", await _rate(count, lambda n: sqlite.commit(FEED, "s", str(n), n))))
    await sqlite.close()

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await service.create_container("bare")
        blob = service.get_blob_client("bare", "cursor.json")
        etag: list[str] = []

        async def bare(n: int) -> None:
            conditions = (
                {"etag": etag[-1], "match_condition": MatchConditions.IfNotModified} if etag else {}
            )
            written = await blob.upload_blob(
                b'{"position": "%d"}' % n, overwrite=True, **conditions
            )
            etag.append(written["etag"])

        rates.append(("bare SDK (If-Match)", await _rate(count, bare)))

    config = AzureBlobOffsetsConfig.model_validate(azurite.offsets("bench"))
    store = open_store(config)
    assert isinstance(store, AzureBlobOffsetStore)
    rates.append(("azure_blob", await _rate(count, lambda n: store.commit(FEED, "a", str(n), n))))
    epoch = await store.acquire(FEED, "bench", 60)
    assert epoch is not None

    async def fenced(n: int) -> None:
        await store.commit(FEED, "b", str(n), n, epoch=epoch)

    rates.append(("azure_blob, ha (epoch)", await _rate(count, fenced)))

    async def all_routes(n: int) -> None:
        await asyncio.gather(
            *(store.commit(FEED, f"r{route}", str(n), n) for route in range(routes))
        )

    per_round = await _rate(max(1, count // routes), all_routes)
    rates.append((f"azure_blob, {routes} routes at once", per_round * routes))
    await store.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--routes", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-offsets-") as directory:
        state = Path(directory)
        (state / "azurite").mkdir()
        with AzuriteProcess(state / "azurite") as azurite:
            rates = asyncio.run(_measure(azurite, state, args.commits, args.routes))
    baseline = dict(rates)["bare SDK (If-Match)"]
    print(f"{'store':<34} {'commits/s':>10} {'vs bare SDK':>12}")
    for name, rate in rates:
        print(f"{name:<34} {rate:>10.0f} {rate / baseline:>11.2f}x")


if __name__ == "__main__":
    main()
