"""Sender links for sending one message per transfer, concurrently across studies.

Partitioned entities with duplicate detection refuse batches of distinct messages, so the
sink sends there one message at a time; to keep a route's throughput, several studies are
sent at once. The SDK's sender does not take concurrent sends, hence one link per study
being sent: at most `size` of them, attached when first needed and kept for the next sends.
A link lent to a study sends only that study's messages, one after the other, so each
study's messages are enqueued in feed order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusSender

CLOSE_TIMEOUT = 5.0


class Links:
    def __init__(self, size: int, attach: Callable[[], Awaitable[ServiceBusSender]]) -> None:
        self._free = asyncio.Semaphore(size)
        self._attach = attach
        self._idle: list[ServiceBusSender] = []
        self._lent: set[ServiceBusSender] = set()

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[ServiceBusSender]:
        """A link of one's own until the block ends (waiting while all are lent); `attach`'s
        errors go through."""
        async with self._free:
            sender = self._idle.pop() if self._idle else await self._attach()
            self._lent.add(sender)
            try:
                yield sender
            finally:
                if sender in self._lent:  # neither discarded nor closed meanwhile
                    self._lent.discard(sender)
                    self._idle.append(sender)

    def adopt(self, sender: ServiceBusSender) -> None:
        """Keep an attached link for the next lease (the batch link, once batches are off)."""
        self._idle.append(sender)

    async def discard(self, sender: ServiceBusSender) -> None:
        """Close a link that failed to answer; the next lease attaches a new one."""
        self._lent.discard(sender)
        await close_quietly(sender)

    async def close(self) -> None:
        senders = [*self._idle, *self._lent]
        self._idle.clear()
        self._lent.clear()
        await asyncio.gather(*(close_quietly(sender) for sender in senders))


async def close_quietly(resource: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(resource.close(), CLOSE_TIMEOUT)
