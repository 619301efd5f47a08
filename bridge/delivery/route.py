"""A route: the feed, one sink, its own durable cursor.

The producer reads pages from the route's reader, filters and formats entries, and admits
each into the ack tracker (which bounds how far ahead it may run). The dispatcher hands
batches to up to `max_in_flight` concurrent deliveries; no study is in two batches at once.
A delivery retries transient failures with backoff until they succeed, sends permanent
failures and poison entries to the dead-letter target, and marks each entry handled. The
committer stores the tracker's watermark on an interval, on catch-up and on shutdown.

A route failure (a sink refusing our credentials, the feed refusing the request, a reset
feed: `bridge.delivery.cursor`) stops this route only, with its cursor at the last entry handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bridge.core.backoff import Backoff
from bridge.core.entry import Entry
from bridge.core.event import Event
from bridge.core.sink import Delivered, Outcome, Sink, SinkFatalError, Transient
from bridge.delivery.cursor import Cursor, FeedLookup, RouteFailed
from bridge.delivery.format import Formatter
from bridge.delivery.keyed_queue import KeyedQueue
from bridge.delivery.sender import RouteStats, Sender, raise_if_cancelled
from bridge.delivery.tracker import AckTracker, Slot
from bridge.feed import FeedError, Reader
from bridge.offsets import LeaseLost, OffsetStore, OffsetStoreError

if TYPE_CHECKING:
    from sinks import SinkConfig

log = logging.getLogger("bridge.route")
_UNSET: Any = object()


class _Item(Slot):
    """An admitted entry: its tracker slot, and the event to deliver (None for poison).
    Both go (None) once the entry is handled."""

    __slots__ = ("entry", "event")

    def __init__(self, entry: Entry, event: Event | None) -> None:
        size = len(event.body) if event is not None else 0
        super().__init__(entry.position, False, entry.timestamp, size)
        self.entry: Entry | None = entry
        self.event = event


class Route:
    def __init__(
        self,
        *,
        name: str,
        config: SinkConfig,
        sink: Sink,
        dead_letter: Sink | None,
        reader: Reader,
        formatter: Formatter,
        store: OffsetStore,
        feed_key: str,
        lookup: FeedLookup | None = None,
        commit_interval: float = 1.0,
        on_change: Callable[[], None] = lambda: None,
        on_send: Callable[[str, float], None] = lambda sink, seconds: None,
    ) -> None:
        self.name = name
        self.config = config
        self.sink = sink
        self.dead_letter = dead_letter
        self.reader = reader
        self.formatter = formatter
        self.store = store
        self.feed_key = feed_key
        self.commit_interval = commit_interval
        self.backoff = Backoff(config.retry.initial, config.retry.max)
        self.stats = RouteStats()
        self.log = logging.LoggerAdapter(log, {"sink": name})
        self._sender = Sender(
            sink,
            backoff=self.backoff,
            max_elapsed=config.retry.max_elapsed,
            give_up=self._dead_letter,
            stats=self.stats,
            log=self.log,
            on_send=on_send,
            on_outcomes=self._note_connection,
        )
        self._dead_letters: Sender | None = None
        if dead_letter is not None:
            self._dead_letters = Sender(  # retried without limit
                dead_letter,
                backoff=self.backoff,
                max_elapsed=None,
                give_up=self._refused_dead_letter,
                stats=RouteStats(),
                log=self.log,
                on_send=on_send,
                what="dead letters",
            )
        self.failure: str | None = None
        self.fatal: BaseException | None = None
        self.latest = 0
        self.connected = False
        self.last_error: str | None = None
        self.committed: Any = _UNSET
        self.caught_up_at: Any = _UNSET
        self._on_change = on_change
        self._admits = config.filter.admits if config.filter.restricts else None
        self._queue: KeyedQueue[_Item] = KeyedQueue()
        self._wakeup = asyncio.Event()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        # Its watermark is None until `start` knows where the route starts.
        self.tracker = AckTracker(None, config.max_pending, config.max_pending_bytes)
        self.cursor = Cursor(store, feed_key, name, reader, lookup, config.start, self.log)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the stored cursor and start working in the background."""
        stored, position = await self.cursor.load()
        self._track(position)
        self._task(self._produce(stored), "produce")

    def _track(self, position: Any) -> None:
        """Start tracking (and count as committed) at `position`, with nothing admitted yet."""
        self.tracker.watermark = position
        self.committed = position

    def _task(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` in the background: an error stops the route (the store's: the bridge)."""

        async def guarded() -> None:
            try:
                await work
            except OffsetStoreError as exc:
                self._die(exc)
            except (FeedError, RouteFailed, SinkFatalError) as exc:
                self._fail(str(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.debug("unexpected error", exc_info=True)
                self._fail(f"unexpected error: {type(exc).__name__}: {exc}")

        self._tasks.append(asyncio.create_task(guarded(), name=f"{self.name}:{what}"))

    @property
    def running(self) -> bool:
        return self.failure is None and self.fatal is None

    @property
    def caught_up(self) -> bool:
        """Everything up to the feed's latest entry (as last seen) is handled and committed."""
        return self.caught_up_at is not _UNSET and self.committed == self.caught_up_at

    @property
    def committed_position(self) -> Any:
        """The cursor last committed (None before the route started)."""
        return None if self.committed is _UNSET else self.committed

    @property
    def in_flight(self) -> int:
        return len(self._deliveries)

    @property
    def pending(self) -> int:
        """Entries admitted beyond the cursor, not yet handled."""
        return len(self.tracker)

    @property
    def oldest_timestamp(self) -> str | None:
        """The feed timestamp of the oldest admitted entry not yet handled."""
        return self.tracker.oldest_timestamp

    @property
    def unreachable(self) -> str | None:
        """Why the sink's peer cannot be reached while a send is pending, when the sink
        knows it (a Kafka producer with every broker down) before any outcome tells."""
        return self.sink.unreachable

    @property
    def position(self) -> Any:
        """The watermark: everything up to here was handled (not necessarily committed);
        None before the route started."""
        return self.tracker.watermark

    def stop_intake(self) -> None:
        if self._tasks:
            self._tasks[0].cancel()

    async def drain(self, timeout: float) -> None:
        """Let admitted entries finish delivering, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.running and not self.tracker.idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.log.warning(
                    "drain timeout: %d entries left undelivered; they will be "
                    "sent again after restart",
                    len(self.tracker),
                )
                return
            self.tracker.moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.tracker.moved.wait(), remaining)

    async def close(self) -> None:
        """Stop every task, commit what was handled, close the sinks."""
        for task in [*self._tasks, *self._deliveries]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._deliveries, return_exceptions=True)
        if self.committed is not _UNSET and self.fatal is None:  # started
            try:
                await self.commit()
            except OffsetStoreError as exc:
                self.fatal = exc
        for sink in (self.sink, self.dead_letter):
            if sink is not None:
                with contextlib.suppress(Exception):
                    await sink.close()

    # -- cursor ---------------------------------------------------------------------------

    async def commit(self) -> None:
        position = self.tracker.watermark
        if position == self.committed:
            return
        await self.cursor.commit(position)
        self.committed = position
        self._on_change()

    async def _commit_loop(self) -> None:
        while True:
            await self._commit_due()
            await self.commit()

    async def _commit_due(self) -> None:
        """Wait until there is something to commit and the route just caught up, or
        `commit_interval` passed, or half of `max_pending` entries were handled since the
        last commit: commits are batched, never late at catch-up, and the entries a crash
        makes us deliver again stay bounded (README, delivery guarantees)."""
        tracker = self.tracker
        deadline = time.monotonic() + self.commit_interval
        enough = tracker.handled + max(1, self.config.max_pending // 2)
        while True:
            if tracker.watermark != self.committed and (
                tracker.watermark == self.caught_up_at
                or tracker.handled >= enough
                or time.monotonic() >= deadline
            ):
                return
            remaining = deadline - time.monotonic()
            tracker.moved.clear()
            if remaining <= 0:
                await tracker.moved.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await tracker.moved.wait()

    # -- reading --------------------------------------------------------------------------

    async def _produce(self, stored: Any) -> None:
        position = await self.cursor.resolve(stored, self.committed)  # may wait for the feed
        if position != self.committed:  # the `start` position of a route without a cursor
            self._track(position)
        self._task(self._dispatch(), "dispatch")
        self._task(self._commit_loop(), "commit")
        self._task(self.cursor.watch(), "watch")
        await self._open_sinks()
        async for page in self.reader.pages(position):
            self.latest = page.latest
            self.cursor.note(page)
            tracker = self.tracker
            for entry in page.entries:
                if tracker.full:
                    await tracker.room()
                self._admit(entry)
            if tracker.full:
                await tracker.room()
            tracker.add(Slot(page.position, done=True))
            if page.caught_up:
                self.caught_up_at = page.position
                tracker.moved.set()
                self._on_change()

    def _admit(self, entry: Entry) -> None:
        if entry.poison:
            event = None
        elif self._admits is not None and not self._admits(entry):
            self.stats.filtered += 1
            self.tracker.add(Slot(entry.position, done=True))
            return
        else:
            event = self.formatter.event(entry)
        item = _Item(entry, event)
        self.tracker.add(item)
        self._queue.put(entry.study, item)
        self._wakeup.set()

    async def _open_sinks(self) -> None:
        attempt = 0
        for sink in (self.sink, self.dead_letter):
            while sink is not None:
                try:
                    await sink.open()
                    break
                except SinkFatalError:
                    raise
                except Exception as exc:
                    raise_if_cancelled()
                    delay = self.backoff.delay(attempt)
                    attempt += 1
                    self.last_error = f"cannot open sink {sink.name}: {exc}"
                    self.log.warning("%s; retrying in %.1fs", self.last_error, delay)
                    await asyncio.sleep(delay)
        self.connected = True
        self.last_error = None

    # -- delivering -----------------------------------------------------------------------

    async def _dispatch(self) -> None:
        limit = self.config.max_in_flight
        while True:
            while not (self._queue.ready and len(self._deliveries) < limit):
                self._wakeup.clear()
                await self._wakeup.wait()
            items, keys = self._queue.take(self.config.batch_size)
            task = asyncio.create_task(self._deliver(items))
            self._deliveries.add(task)
            task.add_done_callback(functools.partial(self._delivered, keys))

    def _delivered(self, keys: set[str], task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._queue.release(keys)
        self._wakeup.set()
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, OffsetStoreError):
            self._die(exc)
        elif isinstance(exc, (RouteFailed, SinkFatalError)):
            self._fail(str(exc))
        elif exc is not None:
            self._fail(f"unexpected error while delivering: {type(exc).__name__}: {exc}")

    async def _deliver(self, items: list[_Item]) -> None:
        pending: list[_Item] = []
        for item in items:
            if item.event is None:
                entry = item.entry
                assert entry is not None  # not handled yet
                self.stats.failed["poison"] += 1
                await self._dead_letter(entry, entry.problem or "poison entry")
                self._handled(item)
            else:
                pending.append(item)
        events = [item.event for item in pending if item.event is not None]
        await self._sender.deliver(events, lambda index: self._handled(pending[index]))

    def _handled(self, item: _Item) -> None:
        """The entry is delivered, dead-lettered or filtered: its slot stays until the
        watermark passes it, its payload (the event, the entry's bytes) goes now."""
        item.event = item.entry = None
        self.tracker.complete(item)

    async def _dead_letter(self, subject: Entry | Event, reason: str) -> None:
        entry = subject.entry if isinstance(subject, Event) else subject
        if self._dead_letters is None:
            raise RouteFailed(
                f"sink {self.name}: sequence {entry.sequence} was not delivered ({reason}) "
                "and the route has no dead_letter target; add one or fix the cause"
            )
        record = self.formatter.dead_letter(subject, reason, self.name)
        await self._dead_letters.deliver([record], lambda index: None)
        self.stats.dead_lettered += 1
        self.log.warning("sequence %s dead-lettered: %s", entry.sequence, reason)

    async def _refused_dead_letter(self, record: Event, reason: str) -> None:
        raise RouteFailed(
            f"sink {self.name}: the dead-letter target rejected sequence "
            f"{record.entry.sequence}: {reason}"
        )

    def _note_connection(self, outcomes: list[Outcome]) -> None:
        """A send with no delivery and a transient failure means the peer is unreachable
        (for readiness); any delivery means it is back."""
        if any(isinstance(outcome, Delivered) for outcome in outcomes):
            self.connected, self.last_error = True, None
        elif outcomes and isinstance(outcomes[0], Transient):
            self.connected, self.last_error = False, outcomes[0].reason

    # -- failure --------------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if self.failure is None and self.fatal is None:
            self.failure = reason
            self.log.error("route stopped: %s", reason)
            self.stop_intake()
            self._on_change()

    def _die(self, exc: BaseException) -> None:
        """An error the whole process must stop on (the offset store is not writable), or
        the replica's term as leader ended (LeaseLost: the pipeline stands by again)."""
        if self.fatal is None:
            self.fatal = exc
            self.log.log(
                logging.WARNING if isinstance(exc, LeaseLost) else logging.ERROR, "%s", exc
            )
            self.stop_intake()
            self._on_change()
