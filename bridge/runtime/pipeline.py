"""The running bridge: one shared feed source, one route per sink, a graceful shutdown.

Routes are independent (each its own cursor, queue and retries), so a slow or failing sink
never holds the others back; they share the feed's reads so N sinks do not multiply the load
on the DICOM service. Shutdown stops reading, lets admitted entries finish within
`drain_timeout`, commits what was delivered and closes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from bridge.config import BridgeConfig
from bridge.core.redact import scrub
from bridge.delivery.cursor import RouteFailed, adopt_legacy_cursors
from bridge.delivery.route import Route
from bridge.feed import FeedError, FeedSource
from bridge.offsets import LeaseLost, OffsetStore, open_store
from bridge.runtime.leader import Replica
from bridge.runtime.listener import Listener
from bridge.runtime.reporting import log_start
from bridge.runtime.status import JSON_TYPE, PAGE_TYPE, StatusBoard, page
from bridge.runtime.telemetry import Readiness, Telemetry
from bridge.runtime.wiring import build_route, feed_client, feed_lookup, feed_reader
from sinks import SinkConfig

log = logging.getLogger("bridge.pipeline")


class Pipeline:
    def __init__(self, config: BridgeConfig, *, store: OffsetStore | None = None) -> None:
        self.config = config
        self.telemetry = Telemetry() if config.http else None
        on_request = self.telemetry.observe_feed if self.telemetry else None
        self.source = FeedSource(
            feed_client(config.feed, on_request=on_request, helper=True),
            page_size=config.feed.page_size,
            include_metadata=config.feed.include_metadata,
            # A cache only helps routes that trail one another; one route needs none.
            cache_windows=8 * config.feed.prefetch if len(config.sinks) > 1 else 0,
        )
        self.store = store or open_store(config.offsets)
        self.feed_key = config.feed.key
        self.lookup = feed_lookup(config.feed, self.source.client)
        self._changed = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()  # set with _stopping
        self.interrupted_by = 0  # the signal that stopped the pipeline
        self.deadline_passed = False
        self.behind: list[Route] = []  # the routes not caught up when it stopped
        self._force = asyncio.Event()
        self._reopening: set[asyncio.Future[Any]] = set()  # SIGHUP's tasks, kept from the GC
        # Under `ha:` the routes of each term as leader (none while standing by), built over
        # the term's fenced store; the list object stays the one observers hold.
        self.replica: Replica | None = None
        if config.ha is not None:
            self.replica = Replica(self.store, self.feed_key, config.ha, self._changed.set)
            self.routes: list[Route] = []
        else:
            self.routes = [self._route(sink_config, self.store) for sink_config in config.sinks]
        self.listener: Listener | None = None
        self.readiness: Readiness | None = None
        self.status: StatusBoard | None = None
        if self.telemetry is not None and config.http is not None:  # both or neither
            self.telemetry.watch(self.source, self.routes)
            if self.replica is not None:
                self.telemetry.registry.register(self.replica)
            self.readiness = Readiness(self.source, self.routes, config.http.unready_after)
            self.status = status = StatusBoard(
                self.source,
                self.routes,
                url=config.feed.url,
                api_version=config.feed.api_version,
                sink_types={sink.name: sink.type for sink in config.sinks},
            )
            if self.replica is not None:
                status.role = self.replica.role
            self.listener = Listener(
                self.telemetry.exposition,
                self._readiness,
                config.http.host,
                config.http.port,
                pages={
                    "/": lambda: (page(), PAGE_TYPE),
                    "/status.json": lambda: (status.json(), JSON_TYPE),
                },
                details=self.replica.details if self.replica else None,
            )

    def _readiness(self) -> dict[str, str]:
        assert self.readiness is not None  # with the listener
        problems = self.readiness()
        if self.replica is not None and self.replica.problem:
            problems.setdefault("offsets", scrub(self.replica.problem))
        return problems

    def _route(self, sink_config: SinkConfig, store: OffsetStore) -> Route:
        return build_route(
            self.config,
            sink_config,
            reader=feed_reader(self.config.feed, self.source),
            store=store,
            lookup=self.lookup,
            on_change=self._changed.set,
            on_send=self.telemetry.observe_send if self.telemetry else None,
        )

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """First call: stop reading and drain. Second call: stop draining now."""
        if self._stopping:
            self._force.set()
        else:
            self.interrupted_by = signum
        self._stopping = True
        self._stopped.set()
        self._changed.set()

    async def run(self, *, exit_when_caught_up: bool = False, deadline: float | None = None) -> int:
        """Run until stopped (or, with `exit_when_caught_up`, until every route delivered
        and committed everything up to the feed's latest entry, for at most `deadline`
        seconds). Returns the exit code: 0, 1 (a route stopped, the deadline passed) or,
        when a signal stopped a run that was to catch up before it did, 128 + its number."""
        listener, http = self.listener, self.config.http
        serving: asyncio.Task[None] | None = None
        # The feed's latest entry, asked at once: lag is known before the first page.
        reading = asyncio.create_task(self._read_latest())
        sampling: asyncio.Task[None] | None = None
        try:
            if listener is not None and http is not None:
                serving = asyncio.create_task(listener.serve())
                await self._listening(listener, serving, http.listen)
            if self.status is not None:
                sampling = asyncio.create_task(self.status.run())
            if self.replica is None:
                await self._deliver(self.store, exit_when_caught_up, deadline)
            else:
                warming = asyncio.create_task(self._warm_up())
                try:
                    await self.replica.run(
                        lambda: self._term(exit_when_caught_up, deadline), self._stopped
                    )
                finally:
                    warming.cancel()
            self.behind = [route for route in self.routes if not route.caught_up]
        finally:
            reading.cancel()
            if sampling is not None:
                sampling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampling
            await self._shutdown()
            if listener is not None and serving is not None:
                listener.stop()
                await serving
        if not all(route.running for route in self.routes) or self.deadline_passed:
            return 1
        if exit_when_caught_up and self.behind:  # a signal stopped it first
            return 128 + self.interrupted_by
        return 0

    async def _deliver(
        self, store: OffsetStore, exit_when_caught_up: bool, deadline: float | None
    ) -> None:
        """Start the routes and wait until they are done (see `_done`)."""
        await adopt_legacy_cursors(store, self.config.feed)
        stored = {r.name: await store.load(self.feed_key, r.name) for r in self.routes}
        log_start(self.config, stored)
        for route in self.routes:
            try:
                await route.start()
            except RouteFailed as exc:
                route.failure = str(exc)
                log.error("%s", exc)
        try:
            async with asyncio.timeout(deadline):
                while not self._done(exit_when_caught_up):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            self.deadline_passed = True

    async def _warm_up(self) -> None:
        """A standby asks the feed for its latest entry once: the feed's connection (and
        HTTP helper) is ready when it takes over, and a feed it cannot reach is logged."""
        try:
            async with asyncio.timeout(self.config.feed.timeout):
                await self.source.client.probe()
        except (FeedError, TimeoutError) as exc:
            log.warning("standby: the feed does not answer yet (%s)", exc or "no answer")

    async def _term(self, exit_when_caught_up: bool, deadline: float | None) -> bool:
        """Deliver as the leader: True when the term ended (the routes stopped at once,
        nothing more committed), False when the bridge stops."""
        assert self.replica is not None
        store = self.replica.fenced()
        self.routes[:] = [self._route(sink_config, store) for sink_config in self.config.sinks]
        self._show_role()
        try:
            await self._deliver(store, exit_when_caught_up, deadline)
        except LeaseLost as exc:  # a newer leader stamped a cursor before this one loaded it
            store.term.end(str(exc))
        lost = [route for route in self.routes if isinstance(route.fatal, LeaseLost)]
        if not self.replica.ended() and not lost:
            return False
        if lost:
            store.term.end(str(lost[0].fatal))
        for route in self.routes:
            route.stop_intake()
        await asyncio.gather(*(route.close() for route in self.routes))  # commits refused
        self.routes.clear()
        self._show_role()
        return not self._stopping

    def _show_role(self) -> None:
        if self.status is not None and self.replica is not None:
            self.status.role = self.replica.role

    async def _listening(
        self, listener: Listener, serving: asyncio.Task[None], listen: str
    ) -> None:
        """Wait until the listener is bound, or raise why it could not bind."""
        while not listener.started:
            if serving.done():
                serving.result()  # raises the bind error
                raise OSError(f"cannot listen on {listen}")
            await asyncio.sleep(0.01)
        log.info(
            "status page on http://%s/ (metrics and health: /metrics, /healthz, /readyz)", listen
        )

    async def _read_latest(self) -> None:
        with contextlib.suppress(Exception):  # a route reading the feed reports its errors
            await self.source.latest()

    def _done(self, exit_when_caught_up: bool) -> bool:
        if self._stopping or any(route.fatal for route in self.routes):
            return True
        if self.replica is not None and self.replica.ended():
            return True
        live = [route for route in self.routes if route.running]
        if not live:
            return True
        return exit_when_caught_up and all(route.caught_up for route in live)

    async def _shutdown(self) -> None:
        for route in self.routes:
            route.stop_intake()
        draining = asyncio.gather(
            *(route.drain(self.config.drain_timeout) for route in self.routes if route.running)
        )
        forced = asyncio.ensure_future(self._force.wait())
        racing: list[asyncio.Future[Any]] = [draining, forced]
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        for pending in (draining, forced):
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining
        await asyncio.gather(*(route.close() for route in self.routes))
        if self.replica is not None:
            await self.replica.release()
        await self.source.close()
        await self.store.close()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reopen_sinks)

    def _reopen_sinks(self) -> None:
        """SIGHUP (logrotate's `postrotate`): sinks writing files open their paths again."""
        log.info("SIGHUP: sinks writing files open their paths again")
        sinks = [sink for route in self.routes for sink in (route.sink, route.dead_letter) if sink]
        reopening = [sink.reopen() for sink in sinks]
        task = asyncio.ensure_future(asyncio.gather(*reopening, return_exceptions=True))
        self._reopening.add(task)
        task.add_done_callback(self._reopening.discard)
