"""A misbehaving receiver: nothing lost, Retry-After honoured, 410 stops the route at its
cursor, a 400 dead-letters one event and the route goes on."""

from __future__ import annotations

import orjson

from tests.integration.webhook.helpers import bridge_config, out_of_order, run, webhook


async def test_faults_lose_nothing_and_retry_after_is_respected(simulator, receiver, tmp_path):
    sim = simulator(entries=400, seed=71)
    entries = sim.entries()
    throttled = [entries[index]["sequence"] for index in (10, 100, 200, 300, 390)]
    peer = receiver(seed=71)
    peer.set_faults(
        rate_503=0.2,
        rate_stall=0.02,
        rate_drop=0.03,
        script={sequence: ["429"] for sequence in throttled},
        retry_after="1",
    )
    code, pipeline = await run(
        bridge_config(
            sim.url,
            tmp_path,
            webhook(peer.url, timeout="250ms", retry={"initial": "10ms", "max": "100ms"}),
        ),
        timeout=80,
    )

    assert code == 0
    assert pipeline.routes[0].committed == entries[-1]["sequence"]
    assert peer.accepted_sequences() == {entry["sequence"] for entry in entries}
    assert out_of_order(peer) == {}
    requests = peer.snapshot()
    faults = {fault: sum(r.fault == fault for r in requests) for fault in ("503", "stall", "drop")}
    assert all(count > 0 for count in faults.values()), faults
    assert peer.count(401) == peer.count(400) == 0

    gaps = []
    for sequence in throttled:
        carrying = [request for request in requests if sequence in request.sequences]
        refused = next(request for request in carrying if request.status == 429)
        retry = carrying[carrying.index(refused) + 1]
        gaps.append(retry.arrived - refused.answered)
    assert min(gaps) >= 1.0, gaps
    print(
        f"{len(entries)} entries, {len(requests)} requests, faults {faults}, 429 x "
        f"{len(gaps)}: retries {min(gaps):.3f}..{max(gaps):.3f}s after the 429"
    )


async def test_410_stops_the_route_with_its_cursor_at_the_last_delivered_entry(
    simulator, receiver, tmp_path
):
    sim = simulator(entries=120, seed=72)
    entries = sim.entries()
    gone_at = entries[60]["sequence"]
    peer = receiver()
    peer.set_faults(reject={gone_at: 410})
    one_by_one = webhook(peer.url, batch_size=1, max_in_flight=1)
    config = bridge_config(sim.url, tmp_path, one_by_one)

    code, pipeline = await run(config)
    [route] = pipeline.routes
    assert code == 1
    assert "410 Gone" in route.failure and "endpoint is gone" in route.failure
    assert route.committed == entries[59]["sequence"]  # every entry before it delivered
    assert {entry["sequence"] for entry in entries[:60]} <= peer.accepted_sequences()
    assert gone_at not in peer.accepted_sequences()

    # The operator fixes the endpoint and restarts: delivery resumes at the refused entry
    # (later entries of other studies may have been delivered already: at least once).
    before = len(peer.snapshot())
    peer.set_faults(reject={})
    code, pipeline = await run(config)
    assert code == 0
    assert pipeline.routes[0].committed == entries[-1]["sequence"]
    assert peer.snapshot()[before].sequences == [gone_at]
    assert peer.accepted_sequences() == {entry["sequence"] for entry in entries}


async def test_a_400_dead_letters_that_event_and_the_route_continues(simulator, receiver, tmp_path):
    sim = simulator(entries=300, seed=73)
    entries = sim.entries()
    refused = entries[100]
    peer = receiver()
    peer.set_faults(reject={refused["sequence"]: 400})
    dead_letters = tmp_path / "dead-letters.jsonl"
    route = webhook(peer.url, dead_letter={"type": "file", "path": str(dead_letters)})
    code, pipeline = await run(bridge_config(sim.url, tmp_path, route))

    assert code == 0
    assert pipeline.routes[0].committed == entries[-1]["sequence"]
    everything = {entry["sequence"] for entry in entries}
    assert peer.accepted_sequences() == everything - {refused["sequence"]}
    [record] = [orjson.loads(line) for line in dead_letters.read_bytes().splitlines()]
    assert record["sequence"] == refused["sequence"]
    assert record["sink"] == "hooks"
    assert "400 Bad Request" in record["reason"] and "injected 400" in record["reason"]
    assert record["event"]["data"] == refused
    later_in_study = [
        entry["sequence"]
        for entry in entries[101:]
        if entry["studyInstanceUid"] == refused["studyInstanceUid"]
    ]
    assert set(later_in_study) <= peer.accepted_sequences()


async def test_a_receiver_failing_one_event_for_good_dead_letters_it_after_the_budget(
    simulator, receiver, tmp_path
):
    """The later events of its study, held back unsent meanwhile, are delivered after it."""
    sim = simulator(entries=40, seed=74)
    entries = sim.entries()
    failing = entries[5]
    peer = receiver()
    peer.set_faults(reject={failing["sequence"]: 503})
    dead_letters = tmp_path / "dead-letters.jsonl"
    route = webhook(
        peer.url,
        retry={"initial": "10ms", "max": "50ms", "max_elapsed": "300ms"},
        dead_letter={"type": "file", "path": str(dead_letters)},
    )
    code, pipeline = await run(bridge_config(sim.url, tmp_path, route))

    assert code == 0
    assert pipeline.routes[0].committed == entries[-1]["sequence"]
    [record] = [orjson.loads(line) for line in dead_letters.read_bytes().splitlines()]
    assert record["sequence"] == failing["sequence"]
    assert record["reason"].endswith(
        "503 Service Unavailable: injected 503 (still failing after retry.max_elapsed 0.3s)"
    )
    everything = {entry["sequence"] for entry in entries}
    assert peer.accepted_sequences() == everything - {failing["sequence"]}
    assert peer.count(503) >= 3  # retried before giving up


async def test_a_receiver_down_for_good_dead_letters_each_event_after_the_budget(
    simulator, receiver, tmp_path
):
    sim = simulator(entries=12, seed=75)
    entries = sim.entries()
    peer = receiver()
    peer.set_faults(rate_503=1.0)
    dead_letters = tmp_path / "dead-letters.jsonl"
    route = webhook(
        peer.url,
        retry={"initial": "10ms", "max": "50ms", "max_elapsed": "200ms"},
        dead_letter={"type": "file", "path": str(dead_letters)},
    )
    code, pipeline = await run(bridge_config(sim.url, tmp_path, route))

    assert code == 0
    assert pipeline.routes[0].committed == entries[-1]["sequence"]
    assert peer.accepted_sequences() == set()
    records = [orjson.loads(line) for line in dead_letters.read_bytes().splitlines()]
    assert sorted(record["sequence"] for record in records) == [e["sequence"] for e in entries]
    # Each was sent, and failed, before it was given up on.
    assert all(r["reason"].startswith("webhook ") for r in records)
    assert all("503 Service Unavailable" in r["reason"] for r in records)
    assert all("still failing after retry.max_elapsed 0.2s" in r["reason"] for r in records)
