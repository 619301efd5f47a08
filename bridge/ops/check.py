"""`dicom-bridge check`: validate the config (done by loading it) and probe the feed, the
offset store and every sink and dead-letter target, each within a deadline. Every
component is reported, whatever failed before it; nothing is created on disk (a store or
a sink's directory not there yet is checked as creatable)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bridge.config import BridgeConfig
from bridge.core.blockingio import os_reason, probe_creatable
from bridge.feed import FeedError
from bridge.offsets import open_store
from bridge.ops._probe import PROBE_TIMEOUT, one_line
from bridge.runtime.wiring import feed_client
from sinks import SinkConfig, create_sink


@dataclass
class Probe:
    ok: bool
    component: str
    detail: str


async def check(config: BridgeConfig) -> list[Probe]:
    """Reach the feed, the offset store and every sink (and dead-letter target)."""
    probes = [await _probe_feed(config), await _probe_store(config)]
    for sink_config in config.sinks:
        probes.append(await _probe_sink(sink_config, f"sink {sink_config.name}"))
        if sink_config.dead_letter is not None:
            probes.append(
                await _probe_sink(
                    sink_config.dead_letter,
                    f"sink {sink_config.name} dead_letter",
                    name=f"{sink_config.name}.dead_letter",
                )
            )
    return probes


async def _probe_store(config: BridgeConfig) -> Probe:
    """The offset store writable; one not there yet is not created: its directory is
    checked instead (`check` changes nothing on disk). A store on a server is asked."""
    path = Path(getattr(config.offsets, "path", ""))
    if config.offsets.type == "sqlite" and not path.exists():
        try:
            probe_creatable(path)
        except OSError as exc:
            return Probe(False, "offsets", f"offsets.path {path}: {os_reason(exc, path)}")
        return Probe(True, "offsets", f"{config.offsets.type} {path}: not there yet, creatable")
    try:
        store = open_store(config.offsets)
    except Exception as exc:
        return Probe(False, "offsets", one_line(exc))
    try:
        detail = await asyncio.wait_for(store.check(), PROBE_TIMEOUT)
        return Probe(True, "offsets", detail)
    except Exception as exc:
        return Probe(False, "offsets", one_line(exc))
    finally:
        await store.close()


async def _probe_feed(config: BridgeConfig) -> Probe:
    client = feed_client(config.feed)
    try:
        latest = await asyncio.wait_for(client.probe(), PROBE_TIMEOUT)
    except TimeoutError:
        return Probe(False, "feed", f"{config.feed.url}: no answer within {PROBE_TIMEOUT:.0f}s")
    except FeedError as exc:
        return Probe(False, "feed", str(exc))
    finally:
        await client.close()
    where = f"{config.feed.url} ({config.feed.api_version})"
    if latest is None:
        return Probe(True, "feed", f"{where}: reachable, the feed is empty")
    return Probe(True, "feed", f"{where}: reachable, latest sequence {latest.sequence}")


async def _probe_sink(sink_config: SinkConfig, component: str, name: str | None = None) -> Probe:
    try:
        sink = create_sink(sink_config, name=name)
        detail = await asyncio.wait_for(sink.check(), PROBE_TIMEOUT)
        return Probe(True, component, detail)
    except TimeoutError:
        return Probe(False, component, f"no answer within {PROBE_TIMEOUT:.0f}s")
    except Exception as exc:
        return Probe(False, component, one_line(exc))
