"""Entries/s the bridge forwards to Redis Streams, NATS JetStream and RabbitMQ (the servers
running on this machine), each next to a bare client sending the same payloads.

Per server, one run each, to destinations of the run's own (deleted afterwards):

1. bridge: the change-feed simulator (its own process) → the bridge (this process, the
   real `Pipeline` with one route, exit when caught up, see `bench.kafka_rate`), timed
   from its first delivered event;
2. bare: the same events (formatted before the clock starts), with the same ids, sent
   by the server's client alone, as fast as it goes while still waiting for the server's
   word on each (the same durability the sink waits for), timed once connected:
   - redis: redis-py pipelines of `--window` XADDs, one after the other;
   - nats: `--window` JetStream publishes at a time, each awaiting its PubAck;
   - rabbitmq: aio-pika, `--window` persistent publishes at a time on one confirm channel.

    python -m bench.brokers_rate --entries 20000
    python -m bench.brokers_rate --only nats --format raw
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import nats
import redis.asyncio as aioredis

from bench.kafka_rate import run_bridge
from bridge.core.entry import parse_entry
from bridge.core.event import Event
from bridge.delivery.format import Formatter
from bridge.simulator.process import SimulatorSubprocess
from sinks.rabbitmq.sink import CE_PREFIX

SERVERS = ("redis", "nats", "rabbitmq")
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000, help="feed entries to forward")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=SERVERS, action="append", help="one server (repeat)")
    parser.add_argument("--format", default="cloudevents", choices=["cloudevents", "raw"])
    parser.add_argument("--window", type=int, default=1000, help="bare client: in flight")
    parser.add_argument("--batch-size", type=int, help="route batch_size (default: the sink's)")
    return parser.parse_args(argv)


def names() -> tuple[str, str]:
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    return f"bench.{tag}", f"BENCH_{tag}"


def sink_for(server: str, name: str, upper: str, args: argparse.Namespace) -> dict[str, Any]:
    common: dict[str, Any] = {"name": "bench", "format": args.format}
    if args.batch_size:
        common.update(batch_size=args.batch_size, max_pending=max(10_000, args.batch_size * 8))
    if server == "redis":
        return {**common, "type": "redis", "url": REDIS_URL, "stream": name + ".{action}"}
    if server == "nats":
        subject = name.replace(".", "_")
        return {
            **common,
            "type": "nats",
            "servers": NATS_URL,
            "subject": f"{subject}." + "{action}",
            "stream": upper,
        }
    return {**common, "type": "rabbitmq", "url": AMQP_URL, "exchange": name, "mandatory": False}


async def bare_redis(events: list[Event], name: str, window: int) -> float:
    client = aioredis.Redis.from_url(REDIS_URL)
    await client.ping()
    started = time.perf_counter()
    for start in range(0, len(events), window):
        pipeline = client.pipeline(transaction=False)
        for event in events[start : start + window]:
            stream = f"{name}.bare.{event.entry.action.lower()}"
            pipeline.xadd(stream, {"id": event.id, "event": event.body})
        await pipeline.execute()
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def bare_nats(events: list[Event], name: str, window: int) -> float:
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    stream = name.replace(".", "_").upper() + "_BARE"
    subject = name.replace(".", "_") + "_bare"
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    started = time.perf_counter()
    for start in range(0, len(events), window):
        await asyncio.gather(
            *(
                js.publish(
                    f"{subject}.{event.entry.action.lower()}",
                    event.body,
                    headers={"Nats-Msg-Id": event.id, "Content-Type": event.content_type},
                )
                for event in events[start : start + window]
            )
        )
    elapsed = time.perf_counter() - started
    await js.delete_stream(stream)
    await client.close()
    return elapsed


async def bare_rabbitmq(events: list[Event], name: str, window: int) -> float:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(
        f"{name}.bare", aio_pika.ExchangeType.TOPIC, durable=True
    )
    started = time.perf_counter()
    for start in range(0, len(events), window):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        event.body,
                        content_type=event.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=event.id,
                        headers=dict(event.ce_headers(CE_PREFIX)) or None,
                    ),
                    f"dicom.{event.entry.action.lower()}",
                    mandatory=False,
                )
                for event in events[start : start + window]
            )
        )
    elapsed = time.perf_counter() - started
    await exchange.delete()
    await connection.close()
    return elapsed


async def clean_up(server: str, name: str, upper: str) -> None:
    if server == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{name}.*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif server == "nats":
        client = await nats.connect(NATS_URL)
        await client.jetstream().delete_stream(upper)
        await client.close()
    else:
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        await channel.exchange_delete(name)
        await connection.close()


BARE: dict[str, Callable[[list[Event], str, int], Awaitable[float]]] = {
    "redis": bare_redis,
    "nats": bare_nats,
    "rabbitmq": bare_rabbitmq,
}
CLIENT = {"redis": "redis-py pipelines", "nats": "nats-py publishes", "rabbitmq": "aio-pika"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    with SimulatorSubprocess(entries=args.entries, seed=args.seed) as sim:
        entries = httpx.get(f"{sim.url}/_sim/entries?includeMetadata=false", timeout=60).json()
        formatter = Formatter(sim.url, args.format)
        events = [formatter.event(parse_entry(entry)) for entry in entries]
        for server in args.only or SERVERS:
            name, upper = names()
            try:
                with tempfile.TemporaryDirectory() as state:
                    sink = sink_for(server, name, upper, args)
                    startup, seconds, forwarded = run_bridge(sim.url, sink, Path(state))
                bare = asyncio.run(BARE[server](events, name, args.window))
            finally:
                asyncio.run(clean_up(server, name, upper))
            rows.append((server, forwarded, seconds, startup, len(events), bare))

    print(f"{args.entries} feed entries, format {args.format}, the machine's servers")
    print(f"{'':<40}{'entries':>9}{'seconds':>9}{'entries/s':>11}")
    for server, forwarded, seconds, startup, count, bare in rows:
        print(
            f"{'bridge -> ' + server:<40}{forwarded:>9}{seconds:>9.2f}{forwarded / seconds:>11.0f}"
        )
        label = f"  bare {CLIENT[server]} (window {args.window})"
        print(f"{label:<40}{count:>9}{bare:>9.2f}{count / bare:>11.0f}")
        ratio = (forwarded / seconds) / (count / bare)
        print(f"{'  ratio bridge / bare':<40}{ratio:>29.2f}   (bridge start-up {startup:.2f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
