"""The feed's bounds in the config file, and their way to the feed client."""

import pytest

from bridge.config import ConfigError, parse_config
from bridge.runtime.wiring import feed_client


def feed_config(**feed):
    lines = "".join(f"  {key}: {value}\n" for key, value in feed.items())
    text = f"feed:\n  url: http://dicom.test\n{lines}sinks: [{{name: a, type: stdout}}]\n"
    return parse_config(text).feed


def test_defaults_bound_every_answer_but_not_the_rate():
    feed = feed_config()
    assert (feed.timeout, feed.max_page_bytes, feed.max_requests_per_second) == (30, 4e6, None)


async def test_the_bounds_reach_the_client():
    client = feed_client(
        feed_config(timeout="2s", max_page_bytes="1MiB", max_requests_per_second=2.5),
        helper=True,
    )
    async with client:
        fetcher = client._fetch
        assert (fetcher.timeout, fetcher.max_bytes, client.max_page_bytes) == (2, 1 << 20, 1 << 20)
        assert fetcher.limiter is not None and fetcher.limiter.time_period == 0.4


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("max_page_bytes", "1KB", "must be at least 65536"),
        ("max_page_bytes", "lots", "could not parse"),
        ("max_requests_per_second", 0, "greater than 0"),
        ("timeout", "0s", "greater than 0"),
    ],
)
def test_invalid_bounds_are_one_line_naming_the_key(key, value, message):
    with pytest.raises(ConfigError) as caught:
        feed_config(**{key: value})
    assert f"feed.{key}" in str(caught.value) and message in str(caught.value)
