"""`feed.name` (the cursors' key and the event ids' prefix) and a route's `start`."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, default_feed_name, parse_config
from bridge.delivery.format import Formatter
from tests.factories import entry


def config(feed: str, sink: str = "") -> str:
    return f"feed: {feed}\nsinks: [{{name: a, type: file, path: out.jsonl{sink}}}]\n"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (
            "https://MyWS-MyDicom.dicom.azurehealthcareapis.com:443",
            "myws-mydicom.dicom.azurehealthcareapis.com",
        ),
        (
            "https://myws-mydicom.dicom.azurehealthcareapis.com/",
            "myws-mydicom.dicom.azurehealthcareapis.com",
        ),
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("http://LOCALHOST:80/dicom", "localhost"),
        ("https://h.example:8443", "h.example:8443"),
        ("http://[::1]:8080", "[::1]:8080"),
    ],
)
def test_the_default_name_is_the_host_lowercased_without_a_default_port(url, name) -> None:
    assert default_feed_name(url) == name
    assert parse_config(config(f'{{url: "{url}"}}')).feed.name == name


def test_a_name_set_is_kept_and_checked() -> None:
    loaded = parse_config(config("{url: 'https://dicom-pe.privatelink.example', name: MyDicom}"))
    assert loaded.feed.name == "MyDicom"
    with pytest.raises(ConfigError, match=r"feed\.name: invalid feed name 'my dicom/1'"):
        parse_config(config("{url: 'http://h', name: 'my dicom/1'}"))


def test_event_ids_carry_the_name_and_the_source_stays_the_url() -> None:
    formatter = Formatter("https://dicom-pe.privatelink.example", "cloudevents", "mydicom")
    event = formatter.event(entry(4))
    assert event.id == "mydicom/Microsoft.Default/4"
    assert event.attributes["source"] == "https://dicom-pe.privatelink.example"
    assert formatter.dead_letter(event, "x", "a").id == "mydicom/dead-letter/a/4"
    assert Formatter("https://DICOM.example:443/").event(entry(4)).id == (
        "dicom.example/Microsoft.Default/4"
    )


@pytest.mark.parametrize(
    ("value", "start"),
    [("", "earliest"), (", start: Latest", "latest"), (", start: 1200", 1200)],
)
def test_start_takes_earliest_latest_or_a_sequence(value, start) -> None:
    assert parse_config(config("{url: 'http://h'}", value)).sinks[0].start == start


@pytest.mark.parametrize("value", ["0", "newest", "-5", "1.5"])
def test_a_start_that_is_no_position_is_refused(value) -> None:
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.start: expected earliest, latest or a"):
        parse_config(config("{url: 'http://h'}", f", start: {value}"))
