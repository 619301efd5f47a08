"""Building bridge configs with webhook routes, running them, and checking what arrived."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bridge.config import BridgeConfig, parse_config
from bridge.runtime.pipeline import Pipeline
from tests.factories import events
from tests.peers.webhook_receiver import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example
OTHER_SECRET = "whsec_dGhlIG90aGVyIGtleSBvZiBhIHJvdGF0aW9uIQ=="
FAST_RETRY = {"initial": "20ms", "max": "200ms"}


def webhook(url: str, name: str = "hooks", **options: Any) -> dict[str, Any]:
    """A webhook route signing with SECRET and retrying quickly."""
    return {
        "name": name,
        "type": "webhook",
        "url": url,
        "secret": SECRET,
        "retry": FAST_RETRY,
        **options,
    }


def bridge_config(feed_url: str, tmp_path: Path, *sinks: dict[str, Any]) -> BridgeConfig:
    config = {
        "feed": {"url": feed_url, "poll_interval": "50ms"},
        "offsets": {"path": str(tmp_path / "offsets.db"), "commit_interval": "100ms"},
        "drain_timeout": "1s",
        "sinks": list(sinks),
    }
    return parse_config(yaml.safe_dump(config))


async def run(config: BridgeConfig, timeout: float = 60.0) -> tuple[int, Pipeline]:
    """Run until every route caught up (or stopped): the exit code and the pipeline."""
    pipeline = Pipeline(config)
    code = await asyncio.wait_for(pipeline.run(exit_when_caught_up=True), timeout)
    return code, pipeline


def out_of_order(receiver: WebhookReceiver) -> dict[str, list[int]]:
    """Studies whose events' last accepted copies are not in feed (sequence) order."""
    last: dict[int, tuple[int, int]] = {}
    study_of: dict[int, str] = {}
    for number, request in enumerate(receiver.accepted()):
        for index, event in enumerate(request.events):
            last[event.sequence] = (number, index)
            study_of[event.sequence] = event.study
    by_study: dict[str, list[int]] = defaultdict(list)
    for sequence in sorted(last, key=last.__getitem__):
        by_study[study_of[sequence]].append(sequence)
    return {study: seqs for study, seqs in by_study.items() if seqs != sorted(seqs)}


feed_events = partial(events, studies=3)
