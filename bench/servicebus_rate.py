"""Entries/s the bridge forwards to Service Bus, against a bare SDK sender, on the AMQP peer.

Starts the change-feed simulator and the project's AMQP 1.0 peer (tests/peers/amqp_peer.py)
as subprocesses, then, one run each, on the same peer:

1. bridge: the real pipeline in this process (feed pages over HTTP, CloudEvents formatting,
   the route, the Service Bus sink) until it has caught up with every entry;
2. bare SDK: the same events (formatted before the clock starts) mapped to messages as
   the sink maps them (same bodies, ids, subjects, properties) and sent with
   azure-servicebus alone, `create_message_batch` filled to the limit and sent one batch
   after the other, the way the sink sends them. The limit leaves the sink's headroom for
   the batch envelope: a batch the SDK fills to the link's exact limit is a few hundred
   bytes over it on the wire, and the peer refuses it as Service Bus does.

Both timings include attaching the sender. Prints both rates and bridge/SDK.

    python -m bench.servicebus_rate --entries 50000
    python -m bench.servicebus_rate --format cloudevents-binary --sessions --batch-size 200
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from azure.servicebus.aio import ServiceBusClient

from bridge.config import parse_config
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter
from bridge.runtime.pipeline import Pipeline
from bridge.simulator.process import SimulatorSubprocess
from sinks.servicebus.config import Config
from sinks.servicebus.sink import ENVELOPE_HEADROOM, to_message
from tests.peers.amqp_peer import AmqpPeer

QUEUE = "bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", default="cloudevents", help="the route's event format")
    parser.add_argument("--sessions", action="store_true", help="session id = study UID")
    parser.add_argument("--batch-size", type=int, default=100, help="the route's batch_size")
    return parser.parse_args(argv)


def sink_settings(peer: AmqpPeer, args: argparse.Namespace) -> dict:
    return {
        "name": "bench",
        "type": "servicebus",
        "connection_string": peer.connection_string,
        "queue": QUEUE,
        "format": args.format,
        "sessions": args.sessions,
        "batch_size": args.batch_size,
    }


async def run_bridge(url: str, peer: AmqpPeer, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory() as state:
        config = {
            "feed": {"url": url, "poll_interval": "50ms"},
            "offsets": {"path": str(Path(state) / "offsets.db")},
            "sinks": [sink_settings(peer, args)],
        }
        pipeline = Pipeline(parse_config(yaml.safe_dump(config)))
        started = time.perf_counter()
        if await pipeline.run(exit_when_caught_up=True) != 0:
            raise SystemExit("the bridge failed")
        return time.perf_counter() - started


def same_events(sim: SimulatorSubprocess, args: argparse.Namespace) -> list:
    """The events the route formats from every entry, built before the clock starts."""
    entries = httpx.get(f"{sim.url}/_sim/entries", timeout=60).json()
    formatter = Formatter(sim.url, args.format)
    return [formatter.event(parse_entry(entry)) for entry in entries]


async def run_sdk(peer: AmqpPeer, events: list, config: Config) -> float:
    """Messages built (as the sink maps them) and sent in full batches, one at a time."""
    started = time.perf_counter()
    client = ServiceBusClient.from_connection_string(peer.connection_string)
    async with client, client.get_queue_sender(QUEUE) as sender:
        limit = (await sender.create_message_batch()).max_size_in_bytes - ENVELOPE_HEADROOM
        batch = await sender.create_message_batch(limit)
        for event in events:
            message = to_message(event, config)
            try:
                batch.add_message(message)
            except ValueError:  # MessageSizeExceededError: the batch is full
                await sender.send_messages(batch)
                batch = await sender.create_message_batch(limit)
                batch.add_message(message)
        await sender.send_messages(batch)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with (
        SimulatorSubprocess(entries=args.entries, seed=args.seed) as sim,
        AmqpPeer() as peer,
    ):
        bridge_seconds = asyncio.run(run_bridge(sim.url, peer, args))
        delivered = peer.stats()["queues"][QUEUE]
        peer.clear()
        events = same_events(sim, args)
        config = Config.model_validate(sink_settings(peer, args))
        sdk_seconds = asyncio.run(run_sdk(peer, events, config))
        sent = peer.stats()["queues"][QUEUE]
    if delivered != len(events) or sent != len(events):
        raise SystemExit(f"incomplete: bridge {delivered}, sdk {sent}, entries {len(events)}")
    bridge_rate, sdk_rate = delivered / bridge_seconds, sent / sdk_seconds
    print(
        f"entries {len(events)}, format {args.format}, batch_size {args.batch_size}, "
        f"sessions {args.sessions}"
    )
    print(f"bridge   {bridge_seconds:6.2f} s  {bridge_rate:8.0f} entries/s")
    print(f"bare SDK {sdk_seconds:6.2f} s  {sdk_rate:8.0f} messages/s")
    print(f"ratio bridge/SDK: {bridge_rate / sdk_rate:.2f}")


if __name__ == "__main__":
    main()
