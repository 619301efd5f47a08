"""`retry.max_elapsed`: a budget for a route's transient failures; the feed's retries and a
dead-letter target's have none."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, parse_config

FILE_SINK = "{name: a, type: file, path: out/a.jsonl"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml")
    return caught.value.lines


def test_a_sink_takes_a_budget_and_has_none_by_default():
    text = f"feed: {{url: http://h}}\nsinks: [{FILE_SINK}, retry: {{max_elapsed: 10m}}}}]"
    assert parse_config(text).sinks[0].retry.max_elapsed == 600.0
    default = parse_config(f"feed: {{url: http://h}}\nsinks: [{FILE_SINK}}}]")
    assert default.sinks[0].retry.max_elapsed is None


def test_the_feed_never_gives_up():
    text = f"feed: {{url: http://h, retry: {{max_elapsed: 10m}}}}\nsinks: [{FILE_SINK}}}]"
    [problem] = problems(text)
    assert problem.startswith("feed.retry.max_elapsed: unknown key"), problem


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        (
            "dead_letter: {type: file, path: d.jsonl, retry: {max_elapsed: 1m}}",
            "sinks[0].dead_letter.retry.max_elapsed: a dead_letter target retries without "
            "limit (it has no dead_letter)",
        ),
        ("retry: {max_elapsed: 0s}", "sinks[0].retry.max_elapsed: must be greater than 0"),
        ("retry: {max_elapsed: soon}", "sinks[0].retry.max_elapsed: invalid duration 'soon'"),
    ],
)
def test_bad_budgets_are_refused(setting, line):
    [problem] = problems(f"feed: {{url: http://h}}\nsinks: [{FILE_SINK}, {setting}}}]")
    assert problem.startswith(line), problem
