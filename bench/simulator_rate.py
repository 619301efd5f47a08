"""How fast the change-feed simulator serves pages, measured from separate client processes.

The simulator must never be the bottleneck of the bridge's benchmarks. This starts it as a
subprocess (or uses --url), then reads pages with httpx.AsyncClient over several concurrent
keep-alive connections, parsing each body with orjson as a real client would, and prints
pages/s and entries/s. Each client process walks the feed page by page (v1 sequence windows
or v2 offsets) from its own starting point, wrapping around at the end, after a warm-up that
is not counted. httpx costs more CPU per page than the simulator does, so the printed rate
is usually the clients' limit: the simulator's own CPU time per page (read from /proc when
this script started it) shows how far it is from its limit.

    python -m bench.simulator_rate --entries 200000 --page-size 100 --concurrency 4
    python bench/simulator_rate.py --metadata-size 4096 --include-metadata --processes 2
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import orjson

from bridge.simulator.process import SimulatorSubprocess


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running simulator (default: start one)")
    parser.add_argument("--entries", type=int, default=200_000, help="rows to populate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=100, help="v1 limit (<=100), v2 (<=200)")
    parser.add_argument("--version", choices=["v1", "v2"], default="v1")
    parser.add_argument("--metadata-size", type=int, default=0, help="bytes of DICOM JSON")
    parser.add_argument("--include-metadata", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4, help="connections per process")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured")
    return parser.parse_args(argv)


def page_urls(base: str, args: argparse.Namespace, pages: int, first: int) -> Iterator[str]:
    """Every page of the feed from page `first`, round and round."""
    metadata = "true" if args.include_metadata else "false"
    for page in itertools.islice(itertools.cycle(range(pages)), first, None):
        yield (
            f"{base}/{args.version}/changefeed?offset={page * args.page_size}"
            f"&limit={args.page_size}&includeMetadata={metadata}"
        )


async def measure(base: str, args: argparse.Namespace, pages: int, first: int) -> tuple[int, int]:
    """(pages, entries) read by one process during the measured period."""
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    urls = page_urls(base, args, pages, first)
    counted = [0, 0]
    async with httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False) as client:

        async def worker(deadline: float, count: bool) -> None:
            while time.perf_counter() < deadline:
                response = await client.get(next(urls))
                response.raise_for_status()
                entries = len(orjson.loads(response.content))
                if count:
                    counted[0] += 1
                    counted[1] += entries

        for seconds, count in ((args.warmup, False), (args.duration, True)):
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(worker(deadline, count) for _ in range(args.concurrency)))
    return counted[0], counted[1]


def client_process(base: str, args: argparse.Namespace, pages: int, first: int) -> tuple[int, int]:
    return asyncio.run(measure(base, args, pages, first))


def feed_pages(base: str, args: argparse.Namespace) -> int:
    """How many pages the feed spans (sequence windows in v1, rows in v2)."""
    latest = httpx.get(f"{base}/{args.version}/changefeed/latest?includeMetadata=false")
    if args.version == "v1":
        span = orjson.loads(latest.content)["sequence"] if latest.content else 0
    else:
        span = orjson.loads(httpx.get(f"{base}/_sim/state").content)["visible"]
    return max(1, -(-span // args.page_size))


def run_clients(base: str, args: argparse.Namespace) -> tuple[int, int]:
    pages = feed_pages(base, args)
    starts = [pages * index // args.processes for index in range(args.processes)]
    with ProcessPoolExecutor(args.processes) as pool:
        futures = [pool.submit(client_process, base, args, pages, start) for start in starts]
        results = [future.result() for future in futures]
    return sum(pages for pages, _ in results), sum(entries for _, entries in results)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux), None elsewhere."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_cpu = None
    if args.url:
        pages, entries = run_clients(args.url.rstrip("/"), args)
    else:
        options = {"entries": args.entries, "seed": args.seed, "metadata_size": args.metadata_size}
        with SimulatorSubprocess(startup_timeout=300.0, **options) as simulator:
            assert simulator.process is not None
            before = cpu_seconds(simulator.process.pid)
            pages, entries = run_clients(simulator.url, args)
            after = cpu_seconds(simulator.process.pid)
            if before is not None and after is not None:
                server_cpu = after - before
    seconds = args.duration
    metadata = f"metadata ~{args.metadata_size} B" if args.include_metadata else "no metadata"
    print(
        f"{args.version} pages of {args.page_size} ({metadata}), "
        f"{args.processes} x {args.concurrency} connections: {pages / seconds:,.0f} pages/s, "
        f"{entries / seconds:,.0f} entries/s ({pages} pages in {seconds:.1f} s)"
    )
    if server_cpu:
        # Warm-up pages count too: the CPU sample spans the warm-up.
        total = pages * (args.duration + args.warmup) / args.duration
        print(
            f"simulator CPU: {server_cpu / total * 1e6:,.0f} us/page, "
            f"one core would serve ~{total / server_cpu:,.0f} pages/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
