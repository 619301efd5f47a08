"""A term that cannot even load its cursors (a newer leader stamped them first: the
azure_blob store says LeaseLost at `load`) ends as a term, not as the bridge."""

from __future__ import annotations

import orjson

from bridge.config import parse_config
from bridge.offsets import LeaseLost, StoredOffset
from bridge.runtime.pipeline import Pipeline
from tests.unit.test_leader import LeasedMemoryStore


class StampedOnce(LeasedMemoryStore):
    """The first load finds the cursor stamped by a later epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        if not self.refused:
            self.refused += 1
            raise LeaseLost("the cursor carries a later epoch: another replica leads")
        return await super().load(feed, sink)


async def test_a_lease_lost_while_loading_ends_the_term_and_the_next_one_delivers(
    simulator, tmp_path
):
    sim = simulator(entries=200, seed=5)
    out = tmp_path / "events.jsonl"
    config = parse_config(f"""
feed: {{url: "{sim.url}", poll_interval: 50ms}}
offsets: {{type: postgres, dsn: "postgresql://unused@127.0.0.1:1/none", commit_interval: 100ms}}
ha: {{lease_ttl: 2s}}
drain_timeout: 1s
sinks:
  - {{name: archive, type: file, path: "{out}"}}
""")
    store = StampedOnce()
    pipeline = Pipeline(config, store=store)

    assert await pipeline.run(exit_when_caught_up=True, deadline=30) == 0
    assert store.refused == 1
    sequences = {orjson.loads(line)["data"]["sequence"] for line in out.read_bytes().splitlines()}
    assert sequences == {entry["sequence"] for entry in sim.entries()}
