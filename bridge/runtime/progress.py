"""A live one-line progress display for terminals: per sink, position / latest, rate, ETA.

Shown by `run` and `demo` only when stderr is a terminal; logs stay the record otherwise.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from bridge.delivery import Route


def sequence_of(position: Any) -> int:
    """The sequence a cursor position stands for (v1: itself, v2: its `sequence`)."""
    if position is None:
        return 0
    return position if isinstance(position, int) else position.sequence


class Progress:
    def __init__(
        self, routes: Sequence[Route], stream: TextIO | None = None, interval: float = 0.5
    ) -> None:
        self.routes = routes
        self.stream = stream or sys.stderr
        self.interval = interval
        self._samples: dict[str, tuple[float, int]] = {}

    @staticmethod
    def wanted(stream: TextIO | None = None) -> bool:
        return (stream or sys.stderr).isatty()

    async def run(self) -> None:
        try:
            while True:
                self.stream.write("\r" + self.render() + "\x1b[K")
                self.stream.flush()
                await asyncio.sleep(self.interval)
        finally:
            self.stream.write("\r" + self.render() + "\x1b[K\n")
            self.stream.flush()

    def render(self) -> str:
        return " | ".join(self._describe(route) for route in self.routes)

    def _describe(self, route: Route) -> str:
        if route.failure:
            return f"{route.name}: stopped"
        done = sequence_of(route.position)
        latest = max(route.latest, done)
        now = time.monotonic()
        handled = route.stats.forwarded + route.stats.filtered + route.stats.dead_lettered
        then, before = self._samples.setdefault(route.name, (now, handled))
        rate = (handled - before) / (now - then) if now > then else 0.0
        if now - then > 5:
            self._samples[route.name] = (now, handled)
        text = f"{route.name}: {done:,}/{latest:,}"
        if latest:
            text += f" ({100 * done / latest:.0f}%)"
        if rate > 0:
            text += f" {rate:,.0f}/s"
            if latest > done:
                text += f" ETA {(latest - done) / rate:,.0f}s"
        return text
