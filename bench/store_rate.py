"""Offset stores compared: the W1 catch-up (entries without metadata, one file sink) with
the cursors in SQLite, in PostgreSQL, and in PostgreSQL under `ha:` (fenced commits, a
lease renewed), then the commits/s each store sustains on its own.

Needs the PostgreSQL of `--dsn` (default: the local server, trust auth for `postgres`); a
database of its own is created and dropped. One run; not part of the test suite.

    python -m bench.store_rate                 # 200,000 entries, ~2 minutes on 2 cores
    python -m bench.store_rate --entries 20000 --commits 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from bench.harness import run_bridge, simulator_get
from bridge.config import AzureBlobOffsetsConfig, PostgresOffsetsConfig, SqliteOffsetsConfig
from bridge.offsets import open_store
from bridge.simulator.process import SimulatorSubprocess
from tests.peers.azurite import AzuriteProcess


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--commits", type=int, default=2_000, help="commits per store")
    parser.add_argument("--latency-ms", type=int, default=20, help="per feed request")
    parser.add_argument("--prefetch", type=int, default=16)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args(argv)


@contextlib.contextmanager
def database(admin_dsn: str) -> Iterator[str]:
    """The DSN of a new database, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def catch_up(
    args: argparse.Namespace, work: Path, dsn: str, azurite: AzuriteProcess
) -> list[tuple[str, float]]:
    stores: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("sqlite", {"path": "state/offsets.db"}, {}),
        ("postgres", {"type": "postgres", "dsn": dsn, "table": "w1"}, {}),
        ("postgres, ha", {"type": "postgres", "dsn": dsn, "table": "w1ha"}, {"ha": {}}),
        ("azure_blob", azurite.offsets("w1-plain"), {}),
        ("azure_blob, ha", azurite.offsets("w1-ha"), {"ha": {}}),
    ]
    rows = []
    with SimulatorSubprocess(entries=args.entries, seed=1, latency_ms=args.latency_ms) as sim:
        total = orjson.loads(simulator_get(sim, "/_sim/state"))["visible"]
        for label, offsets, more in stores:
            config = {
                "feed": {"url": sim.url, "prefetch": args.prefetch, "poll_interval": "1s"},
                "offsets": offsets,
                "sinks": [{"name": "file", "type": "file", "path": "out/file.jsonl"}],
                **more,
            }
            run = run_bridge(work / label.replace(", ", "-"), config, sim)
            rows.append((label, total / run.seconds))
    return rows


async def commits(
    count: int, dsn: str, work: Path, azurite: AzuriteProcess
) -> list[tuple[str, float]]:
    rows = []
    blob = AzureBlobOffsetsConfig.model_validate(azurite.offsets("commits"))
    for label, config, fenced in (
        ("sqlite", SqliteOffsetsConfig(path=work / "commits.db"), False),
        ("postgres", PostgresOffsetsConfig(type="postgres", dsn=dsn, table="c"), False),
        ("postgres, fenced", PostgresOffsetsConfig(type="postgres", dsn=dsn, table="c"), True),
        ("azure_blob", blob, False),
        ("azure_blob, fenced", blob, True),
    ):
        store: Any = open_store(config)
        try:
            epoch = await store.acquire("bench", "me", 600) if fenced else None
            await store.commit("bench", "s", "0", 0, epoch=epoch)
            started = time.perf_counter()
            for n in range(1, count + 1):
                await store.commit("bench", "s", str(n), n, epoch=epoch)
            rows.append((label, count / (time.perf_counter() - started)))
        finally:
            await store.close()
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-stores-") as scratch,
        database(args.dsn) as dsn,
        AzuriteProcess(Path(tempfile.mkdtemp(prefix="bench-azurite-"))) as azurite,
    ):
        work = Path(scratch)
        rates = catch_up(args, work, dsn, azurite)
        per_second = asyncio.run(commits(args.commits, dsn, work, azurite))
    base = rates[0][1]
    print(f"W1 catch-up, {args.entries:,} entries, file sink, latency {args.latency_ms} ms")
    for label, rate in rates:
        print(f"  {label:<18} {rate:>10,.0f} entries/s  {rate / base:.2f}x sqlite")
    print(f"commits/s, one route, {args.commits:,} sequential commits")
    for label, rate in per_second:
        print(f"  {label:<18} {rate:>10,.0f} commits/s")


if __name__ == "__main__":
    main()
