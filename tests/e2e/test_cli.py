"""The `dicom-bridge` command line: exit codes, one-line errors, operator commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.offsets import OffsetStoreError
from bridge.offsets.memory import MemoryOffsetStore
from tests.e2e.helpers import read_events, run_bridge, write_config

VALID = """
feed: {url: "http://127.0.0.1:9"}
sinks:
  - name: archive
    type: file
    path: out/events.jsonl
"""

BAD_CONFIGS = [
    ("feed: {url: 42}\nsinks: [{name: a, type: stdout}]", "feed.url: expected a string"),
    (VALID + "    paht: x\n", "sinks[0].paht: unknown key (did you mean 'path'?)"),
    ("feed: {api_version: v1}\nsinks: [{name: a, type: stdout}]", "feed.url: field required"),
    (
        VALID + "  - {name: b, type: stdout, retry: {initial: 5 parsecs}}",
        "sinks[1].retry.initial: invalid duration '5 parsecs'",
    ),
    (VALID + "  - {name: archive, type: stdout}", "sinks[1].name: duplicate sink name 'archive'"),
    (VALID + "  - {name: b, type: kafak}", "sinks[1].type: unknown type 'kafak'"),
    (
        "feed: {url: '${UNSET_FEED_URL_FOR_TEST}'}\nsinks: [{name: a, type: stdout}]",
        "feed.url: environment variable UNSET_FEED_URL_FOR_TEST is not set",
    ),
    (
        "feed: {url: 'http://h/v1'}\nsinks: [{name: a, type: stdout}]",
        "feed.url: must be the service's base URL",
    ),
    (
        "feed: {url: 'http://h', page_size: 150}\nsinks: [{name: a, type: stdout}]",
        "feed.page_size: must be between 1 and 100 for api_version v1",
    ),
    ("feed: {url: 'http://h'}\nsinks: []", "sinks: at least one sink is required"),
    (
        "feed: {url: 'http://h', poll_interval: -1s}\nsinks: [{name: a, type: stdout}]",
        "feed.poll_interval: invalid duration",
    ),
    (
        "feed: {url: 'http://h'}\nsinks: [{name: a, type: stdout, batch_size: many}]",
        "sinks[0].batch_size: expected an integer",
    ),
    (
        "feed: {url: 'http://h'}\nsinks: [{name: a, type: stdout}]\nhttp: {listen: nowhere}",
        "http.listen: invalid address 'nowhere'",
    ),
    ("feed: {url: 'http://h'\nsinks: [", "bad.yaml:2:1: expected ',' or '}'"),
]


@pytest.mark.parametrize("text, line", BAD_CONFIGS)
@pytest.mark.parametrize("command", [["run"], ["check"], ["offsets", "show"]])
def test_bad_config_exits_2_with_a_key_path_line(tmp_path, capsys, text, line, command):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main([*command, "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert line in err
    assert "Traceback" not in err
    assert all(row.startswith("dicom-bridge: config error: ") for row in err.splitlines())


def test_bad_config_from_a_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIGS[1][0])
    result = run_bridge("run", "-c", str(path))
    assert result.returncode == 2
    assert BAD_CONFIGS[1][1] in result.stderr and "Traceback" not in result.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run"])  # -c missing
    assert exited.value.code == 2


def test_check_reports_every_component(simulator, tmp_path, capsys):
    sim = simulator(entries=100, seed=41)
    good = write_config(
        tmp_path / "ok.yaml",
        sim.url,
        [
            {
                "name": "archive",
                "type": "file",
                "path": str(tmp_path / "out" / "a.jsonl"),
                "dead_letter": {"type": "file", "path": str(tmp_path / "out" / "dlq.jsonl")},
            },
        ],
    )
    assert main(["check", "-c", str(good)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok   feed: ") and "latest sequence" in out[0]
    assert [line.split(":")[0] for line in out] == [
        "ok   feed",
        "ok   offsets",
        "ok   sink archive",
        "ok   sink archive dead_letter",
    ]

    bad = write_config(
        tmp_path / "bad.yaml",
        "http://127.0.0.1:9",
        [
            {"name": "archive", "type": "file", "path": "/dev/full/x.jsonl"},
        ],
    )
    assert main(["check", "-c", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("FAIL feed: cannot reach http://127.0.0.1:9/v1/changefeed/latest")
    assert out[2].startswith("FAIL sink archive: ")
    assert len(out) == 3


def test_offsets_show_set_and_reset(simulator, tmp_path, capsys):
    sim = simulator(entries=1_000, seed=42)
    last = sim.entries()[-1]["sequence"]
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [
            {"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl")},
            {"name": "audit", "type": "file", "path": str(tmp_path / "b.jsonl")},
        ],
    )
    assert main(["run", "-c", str(config), "--exit-when-caught-up"]) == 0
    assert main(["offsets", "set", "-c", str(config), "--sink", "audit", "--sequence", "500"]) == 0
    capsys.readouterr()
    assert main(["offsets", "show", "-c", str(config), "--json"]) == 0
    rows = {row["sink"]: row for row in json.loads(capsys.readouterr().out)["sinks"]}
    assert rows["archive"]["sequence"] == last and rows["archive"]["lag"] == 0
    assert rows["audit"]["sequence"] == 500 and rows["audit"]["lag"] == last - 500
    assert rows["audit"]["latest"] == last

    assert main(["offsets", "show", "-c", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["SINK", "CURSOR", "LATEST", "LAG", "UPDATED"]
    assert table[2].split()[:4] == ["audit", "500", f"{last:,}", f"{last - 500:,}"]

    # replaying from 500 re-delivers exactly what follows it
    assert main(["run", "-c", str(config), "--exit-when-caught-up"]) == 0
    events, _ = read_events(tmp_path / "b.jsonl")
    replayed = [e["data"]["sequence"] for e in events]
    assert sorted(s for s in replayed if s > 500) == sorted(
        [e["sequence"] for e in sim.entries() if e["sequence"] > 500] * 2
    )

    assert main(["offsets", "reset", "-c", str(config), "--sink", "audit", "--to-latest"]) == 0
    assert main(["offsets", "reset", "-c", str(config), "--sink", "archive"]) == 0
    capsys.readouterr()
    assert main(["offsets", "show", "-c", str(config), "--json"]) == 0
    rows = {row["sink"]: row for row in json.loads(capsys.readouterr().out)["sinks"]}
    assert rows["audit"]["sequence"] == last and rows["archive"]["position"] is None

    assert main(["offsets", "set", "-c", str(config), "--sink", "nope", "--sequence", "1"]) == 2
    assert "no sink named 'nope'" in capsys.readouterr().err


class _FullStore(MemoryOffsetStore):
    async def commit(self, *cursor: object) -> None:
        raise OffsetStoreError("offset store state/offsets.db: database or disk is full")


def test_a_failing_offset_store_stops_the_bridge_with_one_line(
    simulator, tmp_path, capsys, monkeypatch
):
    # Found by the chaos suite: the error reaches every route, and each reported it.
    sim = simulator(entries=300, seed=9)
    sinks = [{"name": n, "type": "file", "path": str(tmp_path / f"{n}.jsonl")} for n in "abc"]
    config = write_config(tmp_path / "bridge.yaml", sim.url, sinks)
    monkeypatch.setattr("bridge.runtime.pipeline.open_store", lambda offsets: _FullStore())
    assert main(["run", "-c", str(config)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "dicom-bridge:" in line]
    assert errors == [
        "dicom-bridge: error: offset store state/offsets.db: database or disk is full"
    ]


def test_demo_runs_on_a_fresh_checkout_layout(tmp_path):
    shutil.copytree(Path(__file__).parents[2] / "config", tmp_path / "config")
    result = run_bridge("demo", "--entries", "3000", "--port", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "every sink is caught up" in result.stdout
    events, broken = read_events(tmp_path / "out" / "events.jsonl")
    assert len(events) == 3000 and broken == 0
    assert (tmp_path / "state" / "offsets.db").exists()


def test_a_sigterm_before_the_loop_runs_still_stops_cleanly(simulator, tmp_path, monkeypatch):
    """SIGTERM while the bridge reads its config (before the event loop handles signals)
    used to kill it with the default action (exit -15): it now stops cleanly."""
    from bridge.cli import commands

    sim = simulator(entries=500, seed=3)
    config = write_config(
        tmp_path / "bridge.yaml",
        sim.url,
        [{"name": "archive", "type": "file", "path": str(tmp_path / "a.jsonl")}],
    )
    real_load = commands.load

    def load_then_terminated(path):
        os.kill(os.getpid(), signal.SIGTERM)  # handled before load() returns
        return real_load(path)

    monkeypatch.setattr(commands, "load", load_then_terminated)
    unhandled: list[int] = []  # the signal reached the test's handler, not the bridge's
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: unhandled.append(signum))
    try:
        assert main(["run", "-c", str(config)]) == 0  # returns: it did not wait for more
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert unhandled == []
