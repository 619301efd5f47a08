"""`dicom-bridge demo`: the whole product on one machine, no Azure subscription needed.

Starts the change-feed simulator on a free loopback port with a deterministic history
(gaps, deletes, re-stores, updates), points `config/quickstart.yaml` at it through
`DICOM_FEED_URL`, and runs the bridge until every sink caught up (or, with `--follow`,
until Ctrl-C while the simulator keeps storing new studies). Run it twice: the second run
resumes from the stored cursors and has nothing left to do.

The demo owns its simulator, rebuilt from the same seed on every run: a `--follow` run
appends studies the next simulator does not have, and leaves cursors ahead of its latest
entry. Against a real service that means a reset and stops the route; here it means a new
demo, so the routes whose cursors are ahead start over from the beginning of the feed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bridge.simulator.process import SimulatorSubprocess

if TYPE_CHECKING:
    from bridge.config import BridgeConfig


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path("config/quickstart.yaml"),
        metavar="FILE",
        help="default config/quickstart.yaml",
    )
    parser.add_argument(
        "--entries",
        type=int,
        default=20_000,
        help="change-feed entries the simulator starts with (default 20000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="simulator port (default 8080, the quickstart config's default "
        "URL, so cursors carry over between runs; 0 picks a free one)",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep running after catching up; the simulator stores a new "
        "study every second until Ctrl-C",
    )


def run(args: argparse.Namespace) -> int:
    from bridge.cli.options import load
    from bridge.offsets.lock import state_lock
    from bridge.runtime.app import run_async, run_pipeline

    if not args.config.exists():
        raise FileNotFoundError(
            f"{args.config} not found: run the demo from the repository root or pass -c FILE"
        )
    with SimulatorSubprocess(entries=args.entries, seed=args.seed, port=args.port) as simulator:
        os.environ["DICOM_FEED_URL"] = simulator.url
        config = load(args.config)
        print(f"simulator: {args.entries:,} change-feed entries at {simulator.url}")
        for sink in config.sinks:
            print(f"sink {sink.name} ({sink.type}): {sink.where}")

        async def main() -> int:
            await _start_over_where_the_feed_differs(config)
            appending = asyncio.create_task(_append_studies(simulator.url)) if args.follow else None
            try:
                return await run_pipeline(config, exit_when_caught_up=not args.follow)
            finally:
                if appending is not None:
                    appending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await appending

        with state_lock(config, "run the demo"):
            code = run_async(main())
    if code == 0:
        print(
            "done: every sink is caught up. Run `make run` again: it resumes from the "
            f"stored cursors ({config.offsets.where})."
        )
    return code


async def _start_over_where_the_feed_differs(config: BridgeConfig) -> None:
    """Delete the cursors the fresh simulator does not hold: ahead of it (a `--follow` run
    appended studies) or standing on an entry it does not have (another `--seed` or
    `--entries`). The demo owns its simulator, so starting over is the honest answer."""
    from bridge.delivery.cursor import same_entry
    from bridge.offsets import open_store
    from bridge.ops import reset_offset
    from bridge.runtime.wiring import feed_client, feed_lookup

    store = open_store(config.offsets)
    try:
        stored = {row.sink: row for row in await store.list(config.feed.key)}
    finally:
        await store.close()
    client = feed_client(config.feed)
    ahead, elsewhere = [], []
    try:
        latest = await client.latest()
        lookup = feed_lookup(config.feed, client)
        for sink in config.sinks:
            row = stored.get(sink.name)
            fingerprint = row.fingerprint if row else None
            if row and (row.sequence or 0) > (latest.sequence or 0 if latest else 0):
                ahead.append(sink.name)
            elif fingerprint and not same_entry(
                fingerprint, await lookup.find(fingerprint.sequence, fingerprint.timestamp)
            ):
                elsewhere.append(sink.name)
    finally:
        await client.close()
    if ahead:
        print(
            f"cursors of {', '.join(ahead)} are ahead of this fresh simulator "
            "(a `demo --follow` run appended studies): starting them over"
        )
    if elsewhere:
        print(
            f"cursors of {', '.join(elsewhere)} stand on entries not in this fresh simulator "
            "(another --seed or --entries): starting them over"
        )
    for name in ahead + elsewhere:
        await reset_offset(config, name, to_latest=False)


async def _append_studies(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while True:
            await asyncio.sleep(1.0)
            await client.post("/_sim/store", json={"generate": {"studies": 1}})
