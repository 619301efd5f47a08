"""The ASGI application: `/_sim/...` goes to the control API, everything else to the feed.

A bare ASGI callable rather than a framework app: the feed routes are the hot path of every
benchmark, and routing them takes one prefix test and one regular expression.
"""

from __future__ import annotations

from typing import Any

from bridge.simulator.control import ControlHandler
from bridge.simulator.feed import FeedHandler
from bridge.simulator.http import Receive, Send
from bridge.simulator.simulation import Service

CONTROL_PREFIX = "/_sim/"


class SimulatorApp:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._feed = FeedHandler(service)
        self._control = ControlHandler(service)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # served with lifespan and websockets off
        if scope["path"].startswith(CONTROL_PREFIX):
            await self._control(scope, receive, send)
        else:
            await self._feed(scope, send)
