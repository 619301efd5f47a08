"""Poison entries end to end: only an element a well-formed page serves the same way twice
is dead-lettered, with its bytes as served; `dlq show` and `dlq redrive` work on it."""

from __future__ import annotations

import json

import orjson

from bridge.cli import main
from bridge.core.entry import parse_served
from bridge.delivery.format import Formatter
from tests.e2e.helpers import read_events, run_bridge, sequences, write_config
from tests.peers.hostile_feed import HostileFeed, entry


def configure(root, url):
    sink = {
        "name": "archive",
        "type": "file",
        "path": str(root / "events.jsonl"),
        "dead_letter": {"type": "file", "path": str(root / "dead.jsonl")},
    }
    feed = {"retry": {"initial": "10ms", "max": "100ms"}, "page_size": 50}
    return write_config(root / "bridge.yaml", url, [sink], feed=feed)


def test_only_a_confirmed_poison_entry_is_dead_lettered_with_its_bytes(tmp_path, capsys):
    with HostileFeed(entries=300) as feed:
        feed.broken = {77}
        feed.script("corrupt", "truncate", "html", "object")
        config = configure(tmp_path, feed.url)
        result = run_bridge("run", "-c", str(config), "--exit-when-caught-up", timeout=90)
    assert result.returncode == 0, result.stderr
    events, _ = read_events(tmp_path / "events.jsonl")
    assert sorted(sequences(events)) == [s for s in range(1, 301) if s != 77]

    [line] = (tmp_path / "dead.jsonl").read_bytes().splitlines()
    record = orjson.loads(line)
    served = orjson.dumps({k: v for k, v in entry(77).items() if k != "studyInstanceUid"})
    assert record["sequence"] == 77 and "studyInstanceUid" in record["reason"]
    assert b'"entry":' + served in line  # the element's bytes as served, never null

    assert main(["dlq", "show", "-c", str(config), "--sink", "archive"]) == 0
    shown = capsys.readouterr()
    assert "77" in shown.out and "studyInstanceUid" in shown.out
    assert main(["dlq", "redrive", "-c", str(config), "--sink", "archive"]) == 0
    assert "0 re-sent, 1 left in the dead-letter file (1 still unreadable)" in (
        capsys.readouterr().out
    )


def test_redrive_delivers_a_poison_entry_the_bridge_can_parse_now(tmp_path, capsys):
    """A poison record from an older bridge whose parser refused an element this one
    understands: redrive sends it and removes it."""
    with HostileFeed(entries=0) as feed:
        config = configure(tmp_path, feed.url)
    value = {**entry(5), "big": 10**20}  # beyond 64 bits: a float once parsed, 1e+20
    served = json.dumps(value, separators=(",", ":")).encode()
    poison = parse_served(served)
    poison.problem = "invalid or missing action: 'Create'"  # the older bridge's verdict
    record = Formatter(feed.url).dead_letter(poison, poison.problem, "archive").body
    (tmp_path / "dead.jsonl").write_bytes(record + b"\n")

    assert main(["dlq", "redrive", "-c", str(config), "--sink", "archive"]) == 0
    assert "1 re-sent, 0 left" in capsys.readouterr().out
    [line] = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert line.endswith(b'"data":' + served + b"}")
    assert (tmp_path / "dead.jsonl").read_bytes() == b""
