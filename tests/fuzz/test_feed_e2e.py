"""End to end: the real `dicom-bridge run --exit-when-caught-up` reads a fuzzed feed over
loopback HTTP with a file sink and a file dead-letter target. Every good entry lands in the
sink once, every poison entry in the dead-letter file with its reason and served bytes
(garbage answers only delay), the bridge exits 0 and the route's cursor is at the feed's
latest sequence."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given

from bridge.config import load_config
from bridge.ops import show_offsets
from tests.e2e.helpers import read_events, run_bridge, write_config
from tests.fuzz.feed_model import Feed, feeds
from tests.fuzz.feed_server import FeedServer
from tests.fuzz.settings import fuzz


@fuzz(4, deadline_ms=None)
@given(feed=feeds(max_sequence=40))
def test_poison_is_dead_lettered_with_its_reason_and_the_route_moves_on(feed: Feed) -> None:
    with tempfile.TemporaryDirectory() as directory, FeedServer(feed) as server:
        root = Path(directory)
        sink = {
            "name": "archive",
            "type": "file",
            "path": str(root / "events.jsonl"),
            "dead_letter": {"type": "file", "path": str(root / "dead.jsonl")},
        }
        feed_options = {
            "page_size": feed.page_size,
            "metadata_retries": 2,
            "retry": {"initial": "1ms", "max": "10ms"},
        }
        config = write_config(root / "bridge.yaml", server.url, [sink], feed=feed_options)

        result = run_bridge("run", "-c", str(config), "--exit-when-caught-up", timeout=90)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr

        events, broken = read_events(root / "events.jsonl")
        assert broken == 0
        delivered = [int(event["id"].rsplit("/", 1)[1]) for event in events]  # any casing
        assert sorted(delivered) == sorted(feed.good)
        assert all(
            event["data"] == feed.good[sequence]
            for sequence, event in zip(delivered, events, strict=True)
        )

        records, broken = read_events(root / "dead.jsonl")
        assert broken == 0
        assert len(records) == len(feed.poison)
        assert all(record["reason"] and record["sink"] == "archive" for record in records)
        by_sequence = {record["sequence"]: record for record in records}
        for row in feed.poison:
            if row.sequence_readable:
                assert by_sequence[row.sequence]["entry"] == row.value

        [cursor], problem = asyncio.run(show_offsets(load_config(config)))
        assert problem is None
        assert (cursor.sequence, cursor.lag) == (feed.latest, 0)
