"""An asyncio face on `confluent_kafka.Producer`: one poll thread, one future per batch.

Why a poll thread and not `confluent_kafka.aio.AIOProducer`: the aio producer is beta
(since 2.12) and puts a second buffering layer (its own batch size and a 1 s buffer
timeout) and a thread-pool hop per call in front of librdkafka, which already batches.
Here `produce()` is called straight from the event loop (it only appends to librdkafka's
queue), and a dedicated thread blocks in `poll()`. Delivery callbacks run on that thread
and fill in the batch's `Acks`; the last one hands the whole batch to the loop with a
single `call_soon_threadsafe`, so the loop does no work per record. A full local queue
(`BufferError`) is backpressure: the caller waits until deliveries free room
(`wait_for_room`) and produces again; nothing is dropped.

Fatal errors (an idempotent producer that lost its sequence state, say) surface as a
`KafkaException` raised by `poll()`; they leave the producer unusable, so `fatal` is set
and the sink replaces the producer. Authentication failures only reach `error_cb` (the
records would wait for their timeout): they fail every pending record at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Producer

from bridge.core.sink import SinkError, SinkFatalError
from sinks.kafka._errors import AUTHENTICATION, describe, error_of, fatal_reason, one_line

if TYPE_CHECKING:
    from confluent_kafka.admin import ClusterMetadata

    from sinks.kafka._records import Record

_POLL_INTERVAL = 0.1
#: Longest single metadata request while probing; the probe retries until its deadline.
_METADATA_ATTEMPT = 1.0


class ProducerClient:
    def __init__(
        self,
        properties: dict[str, str],
        *,
        log: logging.LoggerAdapter[logging.Logger],
        quiet: bool = False,
    ) -> None:
        """`quiet`: librdkafka's own log lines at DEBUG (a probe reports in one line)."""
        self._loop = asyncio.get_running_loop()
        self._log = log
        self.bootstrap = properties.get("bootstrap.servers", "")
        #: The fatal error that made the producer unusable, if any.
        self.fatal: KafkaError | None = None
        #: The authentication failure the cluster answered with, if any.
        self.refused: KafkaError | None = None
        self._all_brokers_down = False
        #: When librdkafka reported every broker down, until a record is acknowledged.
        self.down_since: float | None = None
        self._last_error: tuple[float, str] | None = None
        self._pending: set[Acks] = set()
        self._room = asyncio.Event()
        self._room_wanted = False
        self._closed = False
        self._calls = threading.Lock()  # a blocking call in progress keeps close() waiting
        try:
            self._producer = Producer(
                {
                    **properties,
                    "error_cb": self._on_error,
                    "logger": _LibrdkafkaLog(log, quiet),
                }
            )
        except KafkaException as exc:
            message = one_line(error_of(exc).str())
            raise SinkFatalError(f"kafka: invalid producer configuration: {message}") from None
        except (TypeError, ValueError) as exc:
            message = one_line(str(exc))
            raise SinkFatalError(f"kafka: invalid producer configuration: {message}") from None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    # -- producing (event loop) ----------------------------------------------------------

    def acks(self, size: int) -> Acks:
        """A batch of up to `size` records to produce (`produce(record, acks, index)`)."""
        acks = Acks(self, size)
        self._pending.add(acks)
        return acks

    def produce(self, record: Record, acks: Acks, index: int) -> None:
        """Enqueue `record` as record `index` of `acks`. Raises BufferError when
        librdkafka's queue is full, KafkaException when the record is refused at once
        (too large, unknown topic, the producer failed, refused or closed)."""
        if self._closed:
            raise KafkaException(KafkaError(KafkaError._DESTROY, "the producer was closed"))
        if self.refused is not None:
            raise KafkaException(self.refused)
        self._producer.produce(
            record.topic,
            record.value,
            record.key,
            headers=record.headers,
            on_delivery=acks.callback(index),
        )
        acks.expect()

    async def wait_for_room(self) -> None:
        """Wait until deliveries have freed room in the local queue (or a moment passed)."""
        self._room.clear()
        self._room_wanted = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), _POLL_INTERVAL * 5)

    def recent_error(self) -> str:
        """The last broker/network error librdkafka reported, with its age, or ''."""
        if self._last_error is None:
            return ""
        when, text = self._last_error
        return f"last broker error {time.monotonic() - when:.0f}s ago: {text}"

    def unreachable(self) -> str | None:
        """Why produced records wait, when every broker is down (records stay queued in
        librdkafka until one comes back, so the send itself neither fails nor ends)."""
        if self.down_since is None or not self._pending:
            return None
        down = time.monotonic() - self.down_since
        return f"kafka {self.bootstrap}: every broker down for {down:.0f}s, records waiting"

    def _finished(self, acks: Acks) -> None:
        self._pending.discard(acks)

    def _fail_pending(self, error: KafkaError) -> None:
        for acks in list(self._pending):
            acks.fail(error)

    # -- probing -------------------------------------------------------------------------

    async def probe(self, topic: str | None, timeout: float) -> ClusterMetadata:
        """Cluster metadata (of `topic` only, if given) once a broker answers.

        Raises SinkError when no broker answers within `timeout` (early, once every
        bootstrap broker is known to be down), SinkFatalError when the cluster refuses us.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.refused is not None:
                raise SinkFatalError(fatal_reason(self.refused, topic))
            attempt = min(_METADATA_ATTEMPT, max(0.05, deadline - time.monotonic()))
            try:
                return await asyncio.to_thread(self._list_topics, topic, attempt)
            except KafkaException as exc:
                error = error_of(exc)
            # A refusal reaches only error_cb: the metadata request fails as a transport error.
            cause = self.refused if self.refused is not None else error
            reason = fatal_reason(cause, topic)
            if reason is not None:
                raise SinkFatalError(reason)
            if self._all_brokers_down or time.monotonic() >= deadline:
                detail = self._last_error[1] if self._last_error else describe(error)
                raise SinkError(f"kafka {self.bootstrap}: unreachable ({detail})")

    def _list_topics(self, topic: str | None, timeout: float) -> ClusterMetadata:
        with self._calls:
            if self._closed:
                raise KafkaException(KafkaError(KafkaError._DESTROY, "the producer was closed"))
            metadata: ClusterMetadata = self._producer.list_topics(topic, timeout)
            return metadata

    # -- the poll thread -----------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            self._poll(_POLL_INTERVAL)

    def _poll(self, timeout: float) -> None:
        try:
            served = self._producer.poll(timeout)
        except KafkaException as exc:
            self._on_fatal(error_of(exc))
            served = 1
        if served and self._room_wanted:
            self._room_wanted = False
            self._call_soon(self._room.set)

    def _call_soon(self, callback: Callable[[], Any]) -> None:
        """Run `callback` on the event loop (from the poll thread)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(callback)

    def _on_error(self, error: KafkaError) -> None:
        text = describe(error)
        if error.fatal():
            self._on_fatal(error)
        elif error.code() in AUTHENTICATION:
            self.refused = error
            self._log.error("kafka refused the credentials: %s", text)
            self._call_soon(lambda: self._fail_pending(error))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._all_brokers_down = True
            if self.down_since is None:
                self.down_since = time.monotonic()
        else:
            self._last_error = (time.monotonic(), text)

    def _on_fatal(self, error: KafkaError) -> None:
        # produce() may have seen the fatal state first, as a bare _FATAL: keep the cause.
        if self.fatal is None or self.fatal.code() == KafkaError._FATAL:
            self.fatal = error
            self._log.error("kafka producer failed: %s", describe(error))

    # -- closing -------------------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Wait up to `timeout` for queued records, purge the rest, destroy the producer.
        Records not acknowledged resolve with `_DESTROY` (transient: sent again later)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown, timeout)
        # Batches completed during the shutdown were handed to the loop before this
        # coroutine resumed (FIFO), so only records never acknowledged are failed here.
        self._fail_pending(KafkaError(KafkaError._DESTROY, "the producer was closed"))

    def _shutdown(self, timeout: float) -> None:
        self._stopping.set()
        self._thread.join()
        deadline = time.monotonic() + timeout
        while len(self._producer) and time.monotonic() < deadline:
            self._poll(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
        if len(self._producer):
            self._producer.purge()
        self._poll(0)  # the purged records' reports, and a fatal error not yet raised
        with self._calls:
            self._producer.close()


_UNACKED: Any = object()


class Acks:
    """The outcomes of one batch of records: filled in by delivery callbacks on the poll
    thread; `wait()` returns them (None: acknowledged, else the KafkaError) once every
    record produced into the batch has one. Records never produced keep `_UNACKED`."""

    __slots__ = ("_acked", "_client", "_done", "_future", "_lock", "_produced", "errors")

    def __init__(self, client: ProducerClient, size: int) -> None:
        self._client = client
        self._future: asyncio.Future[list[Any]] = client._loop.create_future()
        self._lock = threading.Lock()  # the poll thread and the loop both update it
        self._produced = 0  # written by the loop thread only, read under the lock once done
        self._acked = 0
        self._done = False  # no more records will be produced into it
        self.errors: list[Any] = [_UNACKED] * size

    def callback(self, index: int) -> Callable[[KafkaError | None, Any], None]:
        return functools.partial(self._on_delivery, index)

    def expect(self) -> None:
        """One more record was produced into the batch (loop thread; no lock: the poll
        thread only compares the count once `wait()` published it under the lock)."""
        self._produced += 1

    async def wait(self) -> list[Any]:
        with self._lock:
            self._done = True
            complete = self._acked >= self._produced
        if complete:
            self._finish()
        return await self._future

    def fail(self, error: KafkaError) -> None:
        """Give every record still waiting `error` (loop thread). Called once the client
        takes no more records (refused credentials, closed), so none is produced after."""
        with self._lock:
            for index, outcome in enumerate(self.errors):
                if outcome is _UNACKED:
                    self.errors[index] = error
            self._acked = self._produced
            complete = self._done
        if complete:
            self._finish()

    def _on_delivery(self, index: int, error: KafkaError | None, _message: Any) -> None:
        with self._lock:  # on the poll thread
            if self.errors[index] is not _UNACKED:
                return  # failed already
            self.errors[index] = error
            self._acked += 1
            if error is None:
                self._client.down_since = None  # a broker is back
            complete = self._done and self._acked == self._produced
        if complete:
            self._client._call_soon(self._finish)

    def _finish(self) -> None:
        self._client._finished(self)
        if not self._future.done():
            self._future.set_result(self.errors)


class _LibrdkafkaLog:
    """librdkafka's log lines into the sink's logger: secrets masked, and ERROR lowered to
    WARNING (a broker outage is the bridge's to judge; it reports what it cannot retry)."""

    def __init__(self, log: logging.LoggerAdapter[logging.Logger], quiet: bool) -> None:
        self._log = log
        self._ceiling = logging.DEBUG if quiet else logging.WARNING

    def log(self, level: int, _fmt: str, facility: str, _name: str, text: str) -> None:
        level = min(level, self._ceiling)
        if self._log.isEnabledFor(level):
            self._log.log(level, "librdkafka %s: %s", facility, one_line(text))
