"""Events/s `dlq redrive` re-sends to a local webhook receiver, against the route itself.

Starts the change-feed simulator and the test webhook receiver as subprocesses, then, in one
run and to the same receiver:

1. route: the bridge delivers the whole feed (as `bench.webhook_rate` does);
2. redrive: the same entries, written as dead letters, sent again by `dlq redrive`'s work
   (`bridge.ops.redrive`) with the route's settings (lanes of `max_in_flight`);
3. one lane: the same with `max_in_flight: 1`, the former redrive (one batch at a time).

It prints the three rates and their ratios. Not part of the test suite.

    python -m bench.redrive_rate --entries 5000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.webhook_rate import SECRET, Receiver, run_bridge
from bridge.config import parse_config
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter
from bridge.ops import redrive
from bridge.simulator.process import SimulatorSubprocess


async def run_redrive(
    feed_url: str, entries: list, receiver: Receiver, max_in_flight: int
) -> tuple[float, int]:
    """Seconds `redrive` takes to re-send every entry, and how many it re-sent."""
    formatter = Formatter(feed_url)
    with tempfile.TemporaryDirectory() as state:
        dlq = Path(state) / "dlq.jsonl"
        lines = [
            formatter.dead_letter(formatter.event(parse_entry(e)), "HTTP 400", "hooks").body
            for e in entries
        ]
        dlq.write_bytes(b"\n".join(lines) + b"\n")
        sink = {
            "name": "hooks",
            "type": "webhook",
            "url": receiver.url,
            "secret": SECRET,
            "max_in_flight": max_in_flight,
            "dead_letter": {"type": "file", "path": str(dlq)},
        }
        config = {
            "feed": {"url": feed_url},
            "offsets": {"path": str(Path(state) / "offsets.db")},
            "sinks": [sink],
        }
        started = time.perf_counter()
        result = await redrive(parse_config(yaml.safe_dump(config)), "hooks")
        return time.perf_counter() - started, result.delivered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=5_000, help="feed entries to deliver")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.concurrency, args.batch = 16, None  # the webhook sink's defaults, for run_bridge
    receiver = Receiver()
    try:
        with SimulatorSubprocess(entries=args.entries, seed=args.seed, port=0) as simulator:
            entries = httpx.get(f"{simulator.url}/_sim/entries?includeMetadata=false").json()
            route = asyncio.run(run_bridge(simulator.url, receiver, args))
            routed = receiver.stats(reset=True)["accepted_events"]
            lanes, sent = asyncio.run(run_redrive(simulator.url, entries, receiver, 8))
            one, sent_one = asyncio.run(run_redrive(simulator.url, entries, receiver, 1))
    finally:
        receiver.stop()
    print(f"route:    {routed:,} events in {route:.2f}s = {routed / route:,.0f}/s")
    print(f"redrive:  {sent:,} events in {lanes:.2f}s = {sent / lanes:,.0f}/s (8 lanes)")
    print(f"one lane: {sent_one:,} events in {one:.2f}s = {sent_one / one:,.0f}/s (former redrive)")
    print(f"redrive / route: {(sent / lanes) / (routed / route):.2f}")
    print(f"redrive / one lane: {(sent / lanes) / (sent_one / one):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
