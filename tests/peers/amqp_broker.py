"""The AMQP 1.0 peer's wire side: a proton reactor speaking enough of Service Bus for the
azure-servicebus SDK: SASL ANONYMOUS, CBS put-token answered on the
connection's `$cbs` link, sender links into queues (batch envelopes split), receiver links
out of them (pre-settled, or peek-lock settled with the outcome the client asked for), and
session receivers (`com.microsoft:session-filter`). Broker semantics live in `amqp_store`.

Control commands arrive as JSON lines on stdin (read by a thread and injected into the
reactor); each gets one JSON line on stdout. Closing stdin stops the peer.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from typing import Any

from proton import (
    Condition,
    Delivery,
    Endpoint,
    Handler,
    Message,
    Terminus,
    symbol,
    timestamp,
    ulong,
)
from proton.handlers import FlowController
from proton.reactor import ApplicationEvent, Container, EventInjector

from tests.peers.amqp_codec import decode, split_transfer
from tests.peers.amqp_store import Refused, Store

CBS = "$cbs"
SESSION_FILTER = symbol("com.microsoft:session-filter")
BATCH_SIZE_PROPERTY = symbol("com.microsoft:max-message-batch-size")
LOCKED_UNTIL = symbol("com.microsoft:locked-until-utc")
DOTNET_EPOCH_TICKS = 621355968000000000  # 0001-01-01 to 1970-01-01 in 100 ns ticks
LOCK_SECONDS = 300
CREDIT_WINDOW = 500


def entity_of(address: str | None) -> str:
    """`amqps://host:port/queue` (or a bare `queue`) -> `queue`."""
    address = address or ""
    if "://" in address:
        address = address.split("://", 1)[1].split("/", 1)[-1]
    return address.strip("/")


class Broker(Handler):
    def __init__(self, store: Store, host: str, port: int) -> None:
        super().__init__()
        self.handlers = [FlowController(CREDIT_WINDOW)]
        self.store = store
        self.host, self.port = host, port
        self.container: Container | None = None
        self.acceptor = None
        self.connections: list[Any] = []
        self.commands: queue.Queue[str | None] = queue.Queue()
        self.injector = EventInjector()

    # -- lifecycle ------------------------------------------------------------------------

    def on_reactor_init(self, event: Any) -> None:
        self.container = event.container
        self.container.selectable(self.injector)
        self._listen()
        reply({"listening": f"{self.host}:{self.port}"})

    def _listen(self) -> None:
        self.acceptor = self.container.listen(f"{self.host}:{self.port}")
        # Proton has no public accessor for the bound port (port 0: a free one, kept for
        # coming back after an outage).
        self.port = self.acceptor._selectable._delegate.getsockname()[1]

    def command(self, line: str | None) -> None:
        """Called from the stdin thread."""
        self.commands.put(line)
        self.injector.trigger(ApplicationEvent("command"))

    def on_command(self, event: Any) -> None:
        while not self.commands.empty():
            line = self.commands.get()
            if line is None:
                self._shutdown()
                return
            try:
                reply(self._control(json.loads(line)))
            except Exception as exc:
                reply({"error": f"{type(exc).__name__}: {exc}"})

    def _shutdown(self) -> None:
        for connection in list(self.connections):
            connection.close()
        if self.acceptor is not None:
            self.acceptor.close()
        self.injector.close()
        self.container.stop()

    # -- control --------------------------------------------------------------------------

    def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.pop("op")
        if op == "set":
            self.store.settings.update(request)
            return self.store.stats()
        if op == "entity":
            self.store.set_entity(request.pop("entity"), request)
            return self.store.stats()
        if op == "stats":
            return self.store.stats()
        if op == "messages":
            return self.store.view(request.get("entity"))
        if op == "arrivals":
            return {"arrivals": self.store.arrivals(request["entity"])}
        if op == "clear":
            self.store.clear()
            return self.store.stats()
        if op == "outage":
            seconds = request.get("seconds")
            self._outage(None if seconds is None else float(seconds))
            return {"down_for": seconds}
        if op == "restore":
            self._come_back()
            return {"listening": f"{self.host}:{self.port}"}
        raise ValueError(f"unknown op {op!r}")

    def _outage(self, seconds: float | None) -> None:
        """Stop listening and drop every connection; listen again on the same port after
        `seconds` (None: at the `restore` command)."""
        if self.acceptor is not None:
            self.acceptor.close()
            self.acceptor = None
        for connection in list(self.connections):
            transport = connection.transport
            if transport is not None:
                transport.close_tail()
                transport.close_head()
        if seconds is not None:
            self.container.schedule(seconds, _Call(self._come_back))

    def _come_back(self) -> None:
        if self.acceptor is not None:
            return  # listening already (restored before a scheduled return)
        try:
            self._listen()
        except OSError:
            self.container.schedule(0.05, _Call(self._come_back))

    # -- connections, sessions, links -----------------------------------------------------

    def on_connection_bound(self, event: Any) -> None:
        sasl = event.transport.sasl()
        sasl.allow_insecure_mechs = True
        sasl.allowed_mechs("ANONYMOUS")
        self.connections.append(event.connection)

    def on_connection_remote_open(self, event: Any) -> None:
        if event.connection.state & Endpoint.LOCAL_UNINIT:
            event.connection.open()

    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        link.source.address = link.remote_source.address
        link.target.address = link.remote_target.address
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        address = link.remote_target.address if link.is_receiver else link.remote_source.address
        entity = entity_of(address)
        link.entity = entity
        if entity == CBS:
            link.open()
            return
        if not self.store.exists(entity):
            # As Service Bus does: an attach without the terminus, then a detach with error.
            (link.target if link.is_receiver else link.source).type = Terminus.UNSPECIFIED
            link.open()
            link.condition = Condition(
                "amqp:not-found", f"The messaging entity '{entity}' could not be found."
            )
            link.close()
            return
        if link.is_receiver:
            size = self.store.settings_of(entity).max_message_size
            link.max_message_size = size
            link.properties = {BATCH_SIZE_PROPERTY: ulong(size)}
            link.open()
            return
        self._open_receiving(link, entity)

    def _open_receiving(self, link: Any, entity: str) -> None:
        """A client receiver: plain, or bound to one session (named, or the next available)."""
        link.session_id = None
        link.locked = set()  # sequences delivered and not yet settled by the client
        filters = _filters(link.remote_source.filter)
        if SESSION_FILTER in filters:
            session = filters[SESSION_FILTER]
            if session is None:
                available = self.store.queue(entity).sessions()
                if not available:
                    link.open()
                    link.condition = Condition("com.microsoft:timeout", "No session available.")
                    link.close()
                    return
                session = available[0]
            link.session_id = str(session)
            link.source.filter.put_dict({SESSION_FILTER: link.session_id})
            until = time.time() + LOCK_SECONDS
            link.properties = {LOCKED_UNTIL: int(until * 10_000_000) + DOTNET_EPOCH_TICKS}
        link.open()

    def on_link_remote_close(self, event: Any) -> None:
        self._release(event.link)
        if event.link.state & Endpoint.LOCAL_ACTIVE:
            event.link.close()

    def on_connection_remote_close(self, event: Any) -> None:
        if event.connection.state & Endpoint.LOCAL_ACTIVE:
            event.connection.close()

    def on_transport_closed(self, event: Any) -> None:
        connection = event.connection
        if connection in self.connections:
            self.connections.remove(connection)
        link = connection.link_head(0) if connection is not None else None
        while link is not None:
            self._release(link)
            link = link.next(0)

    def _release(self, link: Any) -> None:
        """Messages locked by a receiver that went away are available again."""
        locked = getattr(link, "locked", None)
        if not locked:
            return
        for sequence in locked:
            self.store.settle(link.entity, sequence, consumed=False)
        locked.clear()
        self._pump(link.entity)

    # -- transfers ------------------------------------------------------------------------

    def on_delivery(self, event: Any) -> None:
        link, delivery = event.link, event.delivery
        if link.is_receiver:
            if delivery.readable and not delivery.partial:
                self._incoming(link, delivery)
        elif delivery.updated:
            self._settled_by_client(delivery)

    def _incoming(self, link: Any, delivery: Any) -> None:
        payload = link.recv(delivery.pending)
        link.advance()
        if link.entity == CBS:
            self._answer_cbs(link.connection, decode(payload))
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
            return
        parts = split_transfer(payload)
        try:
            self.store.accept(link.entity, [(decode(p), len(p)) for p in parts], len(payload))
        except Refused as refused:
            # With `info` present: the SDK indexes all three fields of the error.
            info = {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())}
            delivery.local.condition = Condition(refused.condition, refused.description, info)
            delivery.update(Delivery.REJECTED)
        else:
            delivery.update(Delivery.ACCEPTED)
        delivery.settle()
        self._pump(link.entity)

    def _answer_cbs(self, connection: Any, request: Message) -> None:
        """Answer a put-token: application properties `type` (`jwt`; the SDK says so for its
        SAS tokens too) and `name` (the audience, `sb://<namespace>/<entity>`), the token
        in the body (an Entra ID access token, or `SharedAccessSignature sr=...`)."""
        properties = request.properties or {}
        status = self.store.put_token(
            _text(properties.get("type")), _text(properties.get("name")), _text(request.body)
        )
        response = Message(
            correlation_id=request.id,
            properties={
                "status-code": status,
                "status-description": "Accepted" if status < 300 else "Unauthorized",
            },
        )
        link = connection.link_head(0)
        while link is not None:
            if link.is_sender and getattr(link, "entity", None) == CBS:
                link.send(response)
                return
            link = link.next(0)

    def on_link_flow(self, event: Any) -> None:
        link = event.link
        if link.is_sender and getattr(link, "entity", CBS) != CBS:
            self._feed(link)

    def _pump(self, entity: str) -> None:
        for connection in self.connections:
            link = connection.link_head(Endpoint.LOCAL_ACTIVE | Endpoint.REMOTE_ACTIVE)
            while link is not None:
                if link.is_sender and getattr(link, "entity", None) == entity:
                    self._feed(link)
                link = link.next(Endpoint.LOCAL_ACTIVE | Endpoint.REMOTE_ACTIVE)

    def _feed(self, link: Any) -> None:
        """Send available messages while the client's receiver has credit."""
        queue_ = self.store.queue(link.entity)
        presettled = link.snd_settle_mode == link.SND_SETTLED
        while link.credit > 0:
            stored = queue_.next_available(getattr(link, "session_id", None))
            if stored is None:
                break
            stored.deliveries += 1
            message = stored.message
            annotations = dict(message.annotations or {})
            annotations[symbol("x-opt-sequence-number")] = stored.sequence
            annotations[symbol("x-opt-enqueued-time")] = timestamp(int(time.time() * 1000))
            if not presettled:
                until = int((time.time() + LOCK_SECONDS) * 1000)
                annotations[symbol("x-opt-locked-until")] = timestamp(until)
            message.annotations = annotations
            message.delivery_count = stored.deliveries - 1
            delivery = link.delivery(uuid.uuid4().bytes)  # the lock token
            link.send(message.encode())
            link.advance()
            if presettled:
                delivery.settle()
                self.store.settle(link.entity, stored.sequence, consumed=True)
            else:
                stored.locked = True
                link.locked.add(stored.sequence)
                delivery.sequence = stored.sequence  # tags need not be UTF-8: keep our own
        if link.drain_mode and link.credit > 0:
            link.drained()

    def _settled_by_client(self, delivery: Any) -> None:
        """Echo the client's outcome, settled (peek-lock); accepted or rejected (dead-letter)
        removes the message, released or modified makes it available again."""
        state = delivery.remote_state
        if state not in (
            Delivery.ACCEPTED,
            Delivery.REJECTED,
            Delivery.RELEASED,
            Delivery.MODIFIED,
        ):
            return
        delivery.update(state)
        delivery.settle()
        link = delivery.link
        sequence = getattr(delivery, "sequence", None)
        if sequence in link.locked:
            link.locked.discard(sequence)
            consumed = state in (Delivery.ACCEPTED, Delivery.REJECTED)
            self.store.settle(link.entity, sequence, consumed=consumed)
            if not consumed:
                self._pump(link.entity)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _filters(data: Any) -> dict[Any, Any]:
    if data is None:
        return {}
    data.rewind()
    if not data.next():
        return {}
    value = data.get_object()
    return dict(value) if isinstance(value, dict) else {}


class _Call(Handler):
    def __init__(self, function: Any) -> None:
        super().__init__()
        self.function = function

    def on_timer_task(self, event: Any) -> None:
        self.function()


_out = threading.Lock()


def reply(value: dict[str, Any]) -> None:
    with _out:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()


def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    """Run the peer until stdin is closed."""
    broker = Broker(Store(), host, port)
    container = Container(broker)
    container.allow_insecure_mechs = True

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip():
                broker.command(line)
        broker.command(None)

    threading.Thread(target=read_commands, daemon=True).start()
    container.run()
