"""Events/s the webhook sink delivers to a local receiver, against a bare httpx client.

Starts the change-feed simulator and the test webhook receiver (which verifies every
signature and parses every event with the cloudevents SDK) as subprocesses, then:

1. bridge: the whole pipeline in this process (feed pages -> route -> webhook sink, with
   per-study ordering and cursor commits) until it has caught up;
2. bare: an httpx.AsyncClient posting the same bodies, signed the same way, with the same
   concurrency, in no particular order (an upper bound: no feed, no ordering, no cursor).

It prints both rates and their ratio, and the peak of concurrent requests the receiver saw.
One run; not part of the test suite.

    python -m bench.webhook_rate --entries 5000 --concurrency 16
    python -m bench.webhook_rate --batch 50
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from standardwebhooks import Webhook

from bench.simulator_rate import cpu_seconds
from bridge.config import parse_config
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter
from bridge.runtime.pipeline import Pipeline
from bridge.simulator.process import SimulatorSubprocess
from sinks.webhook.request import BATCH_CONTENT_TYPE
from sinks.webhook.signing import batch_webhook_id, webhook_id

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=5_000, help="feed entries to deliver")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--batch", type=int, help="events per request (batch mode)")
    return parser.parse_args(argv)


class Receiver:
    """The test receiver (tests/peers/webhook_receiver.py) in a subprocess."""

    def __init__(self) -> None:
        argv = [sys.executable, "-m", "tests.peers.webhook_receiver", "--secret", SECRET]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # the child prints it once listening
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"the receiver did not start: {line!r}")
        self.url = line.split()[-1]
        self.base = self.url.split("/hooks")[0]

    def stats(self, reset: bool = False) -> dict:
        """Its counts (then forgotten, with `reset`) and the CPU seconds it used so far."""
        path = "/_receiver/reset" if reset else "/_receiver/stats"
        stats = httpx.request("POST" if reset else "GET", self.base + path).json()
        return stats | {"cpu": cpu_seconds(self.process.pid) or 0.0}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


async def run_bridge(feed_url: str, receiver: Receiver, args: argparse.Namespace) -> float:
    """Seconds the bridge takes to deliver the whole feed."""
    options = {"concurrency": args.concurrency}
    if args.batch:
        options["batch"] = args.batch
    with tempfile.TemporaryDirectory() as state:
        config = {
            "feed": {"url": feed_url},
            "offsets": {"path": str(Path(state) / "offsets.db")},
            "sinks": [
                {"name": "hooks", "type": "webhook", "url": receiver.url, "secret": SECRET}
                | options
            ],
        }
        pipeline = Pipeline(parse_config(yaml.safe_dump(config)))
        started = time.perf_counter()
        code = await pipeline.run(exit_when_caught_up=True)
        elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"the bridge exited with {code}")
    return elapsed


async def run_bare(feed_url: str, entries: list, receiver: Receiver, args) -> float:
    """Seconds a bare httpx client takes to post the same bodies, signed, concurrently."""
    formatter = Formatter(feed_url)
    events = [formatter.event(parse_entry(entry)) for entry in entries]
    size = args.batch or 1
    chunks = [events[start : start + size] for start in range(0, len(events), size)]
    key = Webhook(SECRET)
    limits = httpx.Limits(max_connections=args.concurrency)
    slots = asyncio.Semaphore(args.concurrency)

    async def post(client: httpx.AsyncClient, chunk: list) -> None:
        if args.batch:
            body = b"[" + b",".join(event.body for event in chunk) + b"]"
            msg_id, content_type = batch_webhook_id([e.id for e in chunk]), BATCH_CONTENT_TYPE
        else:
            body, msg_id, content_type = (
                chunk[0].body,
                webhook_id(chunk[0].id),
                chunk[0].content_type,
            )
        async with slots:
            now = datetime.now(UTC)
            headers = {
                "content-type": content_type,
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": key.sign(msg_id, now, body.decode()),
            }
            response = await client.post(receiver.url, content=body, headers=headers)
            response.raise_for_status()

    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        started = time.perf_counter()
        await asyncio.gather(*(post(client, chunk) for chunk in chunks))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    receiver = Receiver()
    try:
        with SimulatorSubprocess(entries=args.entries, seed=args.seed) as simulator:
            entries = httpx.get(f"{simulator.url}/_sim/entries?includeMetadata=false").json()
            idle = receiver.stats(reset=True)
            bridge_seconds = asyncio.run(run_bridge(simulator.url, receiver, args))
            bridge_stats = receiver.stats(reset=True)
            bare_seconds = asyncio.run(run_bare(simulator.url, entries, receiver, args))
            bare_stats = receiver.stats()
    finally:
        receiver.stop()
    count = len(entries)
    mode = f"batches of {args.batch}" if args.batch else "one event per request"
    print(f"{count} entries, concurrency {args.concurrency}, {mode}")
    busy = idle["cpu"]
    for label, seconds, stats in (
        ("bridge", bridge_seconds, bridge_stats),
        ("bare httpx", bare_seconds, bare_stats),
    ):
        print(
            f"{label}: {count / seconds:,.0f} events/s ({seconds:.2f} s; the receiver accepted "
            f"{stats['accepted_events']} events, at most {stats['max_in_flight']} requests at "
            f"once, and was busy {(stats['cpu'] - busy) / seconds:.0%} of the time)"
        )
        busy = stats["cpu"]
    print(f"ratio bridge / bare: {bare_seconds / bridge_seconds:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
