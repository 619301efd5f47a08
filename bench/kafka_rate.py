"""How fast the bridge forwards the change feed to Kafka, next to a bare producer.

One run, two measurements against the same mock Kafka cluster (librdkafka's mock brokers,
held by their own process, see tests/peers/kafka_mock.py) and the same payloads:

1. bridge: the change-feed simulator (its own process) → the bridge (this process, the
   real `Pipeline` with one kafka route, exit when caught up) → topic `bench.bridge`;
2. bare: a confluent-kafka producer with the sink's producer settings sending the very
   events the bridge sent (same values, keys and headers) → topic `bench.bare`,
   pipelined (produce everything, poll, flush), timed once connected: the ceiling for
   this machine. The bridge is timed from its first acknowledged event (its start-up,
   connecting and reading the first page, is printed apart).

It prints entries/s of each and the ratio. Not part of the test suite.

    python -m bench.kafka_rate --entries 50000
    python -m bench.kafka_rate --batch-size 500 --max-in-flight 16 --format raw
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from confluent_kafka import Producer

from bridge.config import parse_config
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter
from bridge.runtime.pipeline import Pipeline
from bridge.simulator.process import SimulatorSubprocess
from sinks.kafka._records import RecordBuilder
from tests.peers.kafka_mock import KafkaMock


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000, help="feed entries to forward")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=6, help="partitions of each topic")
    parser.add_argument(
        "--format", default="cloudevents", choices=["cloudevents", "cloudevents-binary", "raw"]
    )
    parser.add_argument("--batch-size", type=int, help="route batch_size (default: the sink's)")
    parser.add_argument("--max-in-flight", type=int, help="route max_in_flight")
    parser.add_argument("--linger-ms", type=int, help="producer linger.ms (default: the sink's)")
    return parser.parse_args(argv)


def sink_settings(args: argparse.Namespace, bootstrap: str) -> dict:
    settings: dict = {
        "name": "bench",
        "type": "kafka",
        "bootstrap_servers": bootstrap,
        "topic": "bench.bridge",
        "format": args.format,
    }
    if args.batch_size:
        settings["batch_size"] = args.batch_size
        settings["max_pending"] = max(10_000, args.batch_size * 8)
    if args.max_in_flight:
        settings["max_in_flight"] = args.max_in_flight
    if args.linger_ms is not None:
        settings["producer"] = {"linger.ms": args.linger_ms}
    return settings


def run_bridge(sim_url: str, sink: dict, state: Path) -> tuple[float, float, int]:
    """(start-up seconds, delivering seconds, entries forwarded) of one caught-up run of
    the pipeline; delivering is timed from the first acknowledged event to the end."""
    config = parse_config(
        yaml.safe_dump(
            {
                "feed": {"url": sim_url, "poll_interval": "50ms"},
                "offsets": {"path": str(state / "offsets.db")},
                "sinks": [sink],
            }
        )
    )

    async def timed() -> tuple[int, float, float]:
        pipeline = Pipeline(config)
        route = pipeline.routes[0]
        started = time.perf_counter()
        running = asyncio.create_task(pipeline.run(exit_when_caught_up=True))
        while route.stats.forwarded == 0 and not running.done():
            await asyncio.sleep(0.001)
        first = time.perf_counter()
        code = await running
        if code != 0:
            raise SystemExit(f"the bridge failed: {route.failure}")
        return route.stats.forwarded, first - started, time.perf_counter() - first

    forwarded, startup, delivering = asyncio.run(timed())
    return startup, delivering, forwarded


def run_bare(sim_url: str, entries: list[dict], sink: dict) -> tuple[float, int]:
    """(seconds, records acknowledged) of a bare producer sending the bridge's records."""
    config = parse_config(
        yaml.safe_dump({"feed": {"url": sim_url}, "sinks": [{**sink, "topic": "bench.bare"}]})
    ).sinks[0]
    formatter = Formatter(sim_url, config.format)
    builder = RecordBuilder(config)
    records = [builder.build(formatter.event(parse_entry(entry))) for entry in entries]
    producer = Producer(config.librdkafka_properties("bench-bare"))
    acknowledged = 0

    def on_delivery(error, _message) -> None:
        nonlocal acknowledged
        if error is None:
            acknowledged += 1

    producer.produce(records[0].topic, b"warm-up")  # connected, producer id acquired
    producer.flush(30)
    started = time.perf_counter()
    for index, record in enumerate(records):
        while True:
            try:
                producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=record.headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.01)
        if index % 1000 == 0:
            producer.poll(0)  # serve delivery reports as a real application would
    producer.flush(60)
    elapsed = time.perf_counter() - started
    producer.close()
    return elapsed, acknowledged


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with (
        KafkaMock(brokers=3) as kafka,
        SimulatorSubprocess(entries=args.entries, seed=args.seed) as sim,
        tempfile.TemporaryDirectory() as state,
    ):
        for topic in ("bench.bridge", "bench.bare"):
            kafka.create_topic(topic, args.partitions)
        sink = sink_settings(args, kafka.bootstrap)
        entries = httpx.get(f"{sim.url}/_sim/entries?includeMetadata=false", timeout=60).json()
        startup, bridge_seconds, forwarded = run_bridge(sim.url, sink, Path(state))
        bare_seconds, acknowledged = run_bare(sim.url, entries, sink)

    print(
        f"{args.entries} feed entries, format {args.format}, {args.partitions} partitions, "
        "3 mock brokers"
    )
    rows = [
        ("bridge (simulator → bridge → kafka)", forwarded, bridge_seconds),
        ("bare confluent-kafka producer", acknowledged, bare_seconds),
    ]
    print(f"{'':<36}{'entries':>9}{'seconds':>9}{'entries/s':>11}")
    for label, count, seconds in rows:
        print(f"{label:<36}{count:>9}{seconds:>9.2f}{count / seconds:>11.0f}")
    ratio = (forwarded / bridge_seconds) / (acknowledged / bare_seconds)
    print(f"{'ratio bridge / bare':<36}{ratio:>29.2f}")
    print(f"(timed once delivering; the bridge's start-up took {startup:.2f}s before that)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
