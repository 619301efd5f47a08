"""Reading the running bridge's Prometheus metrics (each route's pace) and readiness.

A route's pace is the entries it gets through per second: delivered
(`dicom_bridge_events_forwarded_total`) or left out by its filter
(`dicom_bridge_events_filtered_total`). Counting both keeps the pace of a filtering route
independent of how many entries of each kind a stretch of the feed happens to hold.
"""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

HANDLED = ("dicom_bridge_events_forwarded", "dicom_bridge_events_filtered")


def handled(port: int) -> dict[str, float]:
    """Entries each route delivered or filtered out so far; empty while the listener is
    not up."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in HANDLED:
            for sample in family.samples:
                if sample.name == f"{family.name}_total":
                    sink = sample.labels["sink"]
                    counts[sink] = counts.get(sink, 0.0) + sample.value
    return counts


def readiness(port: int) -> tuple[int, dict[str, str]]:
    """`/readyz`: its status and what it names as not ready."""
    response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    return response.status_code, response.json()["problems"]


class Sample:
    """The routes' handled counts at one moment."""

    def __init__(self, port: int) -> None:
        self.at = time.monotonic()
        self.counts = handled(port)

    def rates_since(self, earlier: Sample) -> dict[str, float]:
        """Entries per second of each route between `earlier` and this sample."""
        seconds = max(self.at - earlier.at, 1e-9)
        return {
            sink: (count - earlier.counts.get(sink, 0.0)) / seconds
            for sink, count in self.counts.items()
        }
