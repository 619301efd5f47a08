"""The sink registry and the route settings every sink shares."""

from __future__ import annotations

import sys
from io import BytesIO, TextIOWrapper
from typing import Any

import pytest

from bridge.core.configspec import tag_of_model
from bridge.core.entry import parse_entry
from bridge.core.sink import DELIVERED, SinkFatalError
from bridge.delivery.format import Formatter
from sinks import SINK_TYPES, FilterConfig, SinkConfig, config_models, create_sink


def entry(action: str = "Create", state: str | None = "Current", partition: str = "p1") -> Any:
    raw = {
        "sequence": 1,
        "partitionName": partition,
        "studyInstanceUid": "1",
        "seriesInstanceUid": "2",
        "sopInstanceUid": "3",
        "action": action,
        "timestamp": "2024-05-10T16:12:03+00:00",
    }
    if state is not None:
        raw["state"] = state
    return parse_entry(raw)


def test_every_registered_type_has_a_matching_config_model() -> None:
    models = config_models()
    assert set(models) == set(SINK_TYPES) >= {"file", "stdout"}
    for name, model in models.items():
        assert issubclass(model, SinkConfig)
        assert tag_of_model(model) == name


def test_create_sink_names_the_sink_after_the_route_unless_told() -> None:
    config = config_models()["stdout"](name="console", type="stdout")
    assert create_sink(config).name == "console"
    assert create_sink(config, name="console.dead_letter").name == "console.dead_letter"


def test_no_filter_admits_everything() -> None:
    admits = FilterConfig().admits
    assert all(admits(entry(a, s)) for a in ("Create", "Delete") for s in ("Current", None))


@pytest.mark.parametrize(
    ("options", "admitted", "dropped"),
    [
        ({"actions": ["delete"]}, entry("Delete"), entry("Create")),
        ({"states": ["CURRENT"]}, entry(state="Current"), entry(state="Replaced")),
        ({"partitions": ["p1"]}, entry(partition="p1"), entry(partition="p2")),
        (
            {"skip_deleted_creates": True},
            entry("Delete", "Deleted"),
            entry("Create", "Deleted"),
        ),
    ],
)
def test_filter(options: dict, admitted: Any, dropped: Any) -> None:
    route_filter = FilterConfig(**options)
    assert route_filter.admits(admitted)
    assert not route_filter.admits(dropped)


def test_filter_admits_what_it_cannot_classify() -> None:
    route_filter = FilterConfig(actions=["Delete"], states=["Current"])
    assert route_filter.admits(parse_entry({"sequence": "garbage"}))  # poison: to the DLQ
    assert route_filter.admits(entry("Delete", state=None))


async def test_stdout_sink_writes_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = BytesIO()
    monkeypatch.setattr(sys, "stdout", TextIOWrapper(buffer))
    sink = create_sink(config_models()["stdout"](name="console", type="stdout"))
    batch = [Formatter("http://h", "raw").event(entry(a)) for a in ("Create", "Delete")]
    await sink.open()
    assert await sink.send(batch) == [DELIVERED, DELIVERED]
    await sink.close()
    assert buffer.getvalue() == b"".join(event.body + b"\n" for event in batch)


async def test_stdout_closed_is_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenPipe(BytesIO):
        def write(self, data: Any) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", TextIOWrapper(BrokenPipe()))
    sink = create_sink(config_models()["stdout"](name="console", type="stdout"))
    with pytest.raises(SinkFatalError, match="broken pipe"):
        await sink.send([Formatter("http://h").event(entry())])
