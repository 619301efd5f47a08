"""Size limits: batches are cut to the entity's limit, a batch the broker still refuses is
split, and an event too large even alone is dead-lettered while the route goes on."""

from __future__ import annotations

import math

import orjson

from bridge.core.sink import DELIVERED, Permanent
from sinks import create_sink
from sinks.servicebus.config import Config
from tests.e2e.helpers import read_events
from tests.factories import events
from tests.integration.servicebus.conftest import (
    QUEUE,
    run_pipeline,
    sink_config,
    stored_sequences,
)

LIMIT = 6000


async def test_batches_fit_the_limit_and_an_oversized_entry_is_dead_lettered(
    simulator, peer, tmp_path, record_property
):
    sim = simulator(entries=120, seed=21)
    big = sim.store(instances=[{"patient_name": "A" * 20000}])["entries"][0]["sequence"]
    sim.store(generate={"studies": 2, "series": 1, "instances": 10})
    truth = sim.entries(include_metadata=True)
    peer.set(max_message_size=LIMIT)  # advertised on the link, enforced on transfers
    dead_letters = tmp_path / "dead.jsonl"
    sink = sink_config(peer, batch_size=50, dead_letter={"type": "file", "path": str(dead_letters)})
    await run_pipeline(sim.url, tmp_path, sink, feed={"include_metadata": True})

    [record], broken = read_events(dead_letters)
    assert broken == 0
    assert record["sequence"] == big and record["sink"] == "queue"
    assert record["reason"].startswith("too large for Service Bus")
    assert f"exceeds the limit ({LIMIT} bytes)" in record["reason"]  # the broker's words
    assert record["event"]["data"]["sequence"] == big

    assert sorted(stored_sequences(peer)) == [e["sequence"] for e in truth if e["sequence"] != big]
    counters = peer.counters()
    assert counters["too_large"] == 1  # only the big one, tried alone; batches were cut
    assert counters["largest_transfer"] <= LIMIT
    body_bytes = sum(message["size"] for message in peer.messages(QUEUE))
    assert counters["transfers"] >= math.ceil(body_bytes / LIMIT) > 3
    assert counters["batches"] >= counters["transfers"] - 3  # batches of several, mostly
    for name in ("transfers", "batches", "largest_transfer", "too_large", "accepted"):
        record_property(name, counters[name])
    record_property("entries", len(truth))


async def test_a_batch_the_broker_refuses_as_too_large_is_split(peer):
    sink = create_sink(Config.model_validate(sink_config(peer)))
    await sink.open()  # the link advertises 256 KB
    try:
        peer.set(max_message_size=3000)  # the entity's real limit is lower
        batch = [*events(20, pad=100), *events(1, pad=5000)]
        outcomes = await sink.send(batch)
    finally:
        await sink.close()
    assert outcomes[:20] == [DELIVERED] * 20
    assert isinstance(outcomes[20], Permanent)
    assert "too large for Service Bus" in outcomes[20].reason
    assert "MessageSizeExceededError" in outcomes[20].reason
    stored = peer.messages(QUEUE)
    assert [orjson.loads(m["body"])["data"]["sequence"] for m in stored] == list(range(1, 21))
    counters = peer.counters()
    assert counters["too_large"] >= 2  # the whole batch, then halves, until they fit
    assert counters["largest_transfer"] <= 3000
