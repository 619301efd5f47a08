"""A real webhook receiver on loopback (uvicorn in a background thread, its own event loop).

Every POST is verified with the `standardwebhooks` reference library (401 if no configured
secret verifies it) and parsed with the `cloudevents` SDK's HTTP binding (structured,
binary, or a `application/cloudevents-batch+json` array; a plain JSON body is taken as a
raw entry); 400 if it cannot be parsed. Every request is recorded with its arrival time,
its answer and the events it carried; `accepted()` are those answered 2xx.

    with WebhookReceiver(secrets=[SECRET]) as receiver:
        receiver.set_faults(rate_503=0.2, script={17: ["429"]}, reject={42: 400})
        ...  # POST to receiver.url
        receiver.accepted_sequences()
        receiver.stop(); receiver.start()   # an outage: back on the same port, requests kept

Faults, checked in this order: `gone` (410 for everything), a bearer token mismatch (401),
the signature (401), parsing (400), `reject` (a status for every request carrying that
sequence), `script` (per sequence, the faults of the next requests carrying it, then
normal), then random ones: `rate_drop` (a 200 status line, then the connection closes
mid-body), `rate_stall` (no answer until the client gives up), `rate_503`, `rate_429`
(with `Retry-After: retry_after`), `rate_late` (accepted, so counted as delivered, but
answered only once the client gave up: an acknowledgement lost). A fault is `"503"`,
`"429"`, `"stall"`, `"drop"`, `"late"` or any status code.

`python -m tests.peers.webhook_receiver --secret S` serves in the foreground (for the
benchmark) and prints `webhook receiver listening on URL`; `GET /_receiver/stats` returns
counts (and the peak of concurrent requests), `POST /_receiver/reset` returns them too and
forgets them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvicorn
from cloudevents.core.bindings.http import HTTPMessage, from_http, from_structured
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

BATCH = "application/cloudevents-batch+json"
LISTENING = "webhook receiver listening on {url}"
STALL_CAP = 30.0  # seconds a stalled request waits for the client to give up
THREAD = "webhook-receiver"  # the name of the thread serving
_JSON = JSONFormat()


@dataclass(frozen=True, slots=True)
class Received:
    """One event a request carried: the CloudEvent's attributes (None for a raw entry)
    and its data, the change-feed entry."""

    attributes: dict[str, Any] | None
    data: dict[str, Any]

    @property
    def id(self) -> str | None:
        return None if self.attributes is None else self.attributes["id"]

    @property
    def sequence(self) -> int:
        return self.data["sequence"]

    @property
    def study(self) -> str:
        return self.data["studyInstanceUid"]


@dataclass(slots=True)
class Request:
    number: int
    method: str
    arrived: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes = b""
    events: list[Received] = field(default_factory=list)
    status: int | None = None  # None: no answer (stalled, dropped)
    fault: str | None = None
    answered: float | None = None  # just before the answer was written

    @property
    def sequences(self) -> list[int]:
        return [event.sequence for event in self.events]

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Faults:
    gone: bool = False
    reject: dict[int, int] = field(default_factory=dict)
    script: dict[int, list[str]] = field(default_factory=dict)
    rate_drop: float = 0.0
    rate_stall: float = 0.0
    rate_503: float = 0.0
    rate_429: float = 0.0
    retry_after: str = "1"
    rate_late: float = 0.0


class _Answer(Exception):
    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers or {}


class WebhookReceiver:
    def __init__(
        self,
        secrets: list[str] | tuple[str, ...] = (),
        *,
        bearer_token: str | None = None,
        seed: int = 0,
        **server_options: Any,
    ) -> None:
        """`server_options` go to `uvicorn.Config` (e.g. `ssl_certfile`, `ssl_keyfile`)."""
        self.keys = [Webhook(secret) for secret in secrets]
        self.bearer_token = bearer_token
        self.faults = Faults()
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server_options = server_options
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port = 0  # a free one at the first start, the same one at the next
        self.url = ""

    # -- control (any thread) -------------------------------------------------------------

    def set_faults(self, **settings: Any) -> None:
        with self._lock:
            for name, value in settings.items():
                if not hasattr(self.faults, name):
                    raise TypeError(f"unknown fault {name!r}")
                setattr(self.faults, name, value)

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[Request]:
        """POST requests answered 2xx, in the order they arrived."""
        return [r for r in self.snapshot() if r.method == "POST" and r.accepted]

    def accepted_sequences(self) -> set[int]:
        return {sequence for request in self.accepted() for sequence in request.sequences}

    def count(self, status: int | None) -> int:
        return sum(1 for request in self.snapshot() if request.status == status)

    def reset(self) -> None:
        """Forget the requests seen so far and the concurrency peak."""
        with self._lock:
            self.requests = []
            self.max_in_flight = self.in_flight

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        scheme = "https" if self._server_options.get("ssl_certfile") else "http"
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self._port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=1,
            **self._server_options,
        )
        sock = self._socket = config.bind_socket()
        self._port = sock.getsockname()[1]
        self.url = f"{scheme}://127.0.0.1:{self._port}/hooks/dicom"
        self._server = uvicorn.Server(config)
        _quiet_intended_disconnects()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._server.serve([sock]),), name=THREAD, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def wait(self) -> None:
        """Block until the server stops (the foreground mode of `main`)."""
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the ASGI app (the receiver's thread) ---------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        request = Request(0, scope["method"], time.monotonic(), headers)
        if scope["path"].startswith("/_receiver/"):
            stats = self._stats()  # as they were before a reset
            if scope["path"] == "/_receiver/reset":
                self.reset()
            await _respond(send, 200, orjson.dumps(stats), "application/json")
            return
        with self._lock:
            request.number = len(self.requests)
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._handle(request, receive, send)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _handle(self, request: Request, receive: Any, send: Any) -> None:
        try:
            self._admit(request)
            if request.method == "OPTIONS":
                raise _Answer(204, "", {"allow": "POST, OPTIONS", "webhook-allowed-origin": "*"})
            request.body = await _read_body(receive)
            self._verify(request)
            request.events = _parse(request)
            fault = self._fault(request)
            if fault is not None:
                request.fault = fault
                await self._inject(fault, request, receive, send)
                return
            raise _Answer(204, "")
        except _Answer as answer:
            request.status = answer.status
            request.answered = time.monotonic()  # before the client can have the answer
            await _respond(send, answer.status, answer.text.encode(), "text/plain", answer.headers)

    def _admit(self, request: Request) -> None:
        if self.faults.gone:
            raise _Answer(410, "this endpoint is gone")
        expected = None if self.bearer_token is None else f"Bearer {self.bearer_token}"
        if expected is not None and request.headers.get("authorization") != expected:
            raise _Answer(401, "bearer token missing or wrong")

    def _verify(self, request: Request) -> None:
        for key in self.keys:
            try:
                key.verify(request.body, request.headers, json_parse=False)
                return
            except WebhookVerificationError:
                continue
        if self.keys:
            raise _Answer(401, "no valid signature")

    def _fault(self, request: Request) -> str | None:
        with self._lock:
            faults = self.faults
            for sequence in request.sequences:
                if sequence in faults.reject:
                    return str(faults.reject[sequence])
            for sequence in request.sequences:
                if faults.script.get(sequence):
                    return faults.script[sequence].pop(0)
            draw = self._random.random()
            for fault, rate in (
                ("drop", faults.rate_drop),
                ("stall", faults.rate_stall),
                ("503", faults.rate_503),
                ("429", faults.rate_429),
                ("late", faults.rate_late),
            ):
                if draw < rate:
                    return fault
                draw -= rate
        return None

    async def _inject(self, fault: str, request: Request, receive: Any, send: Any) -> None:
        if fault == "late":  # accepted, but answered only once the client gave up
            await self._inject("stall", request, receive, send)
            raise _Answer(204, "")
        if fault == "stall":  # until the client gives up (it closes the connection)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STALL_CAP):
                    while (await receive())["type"] != "http.disconnect":
                        pass
            return
        if fault == "drop":  # announce a body, send none: uvicorn closes the connection
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"100")],
                }
            )
            return
        extra = {"retry-after": self.faults.retry_after} if fault == "429" else {}
        raise _Answer(int(fault), f"injected {fault}", extra)

    def _stats(self) -> dict[str, Any]:
        accepted = self.accepted()
        return {
            "requests": len(self.snapshot()),
            "accepted_requests": len(accepted),
            "accepted_events": sum(len(request.events) for request in accepted),
            "unauthorized": self.count(401),
            "max_in_flight": self.max_in_flight,
        }


def _parse(request: Request) -> list[Received]:
    """The events of a request, each carrying a change-feed entry; 400 otherwise."""
    try:
        received = _events(request)
        for event in received:
            if not isinstance(event.data, dict) or not isinstance(event.data.get("sequence"), int):
                raise ValueError("an event without a change-feed entry")
    except Exception as exc:  # any parse failure is the sender's fault
        raise _Answer(400, f"cannot parse the event: {type(exc).__name__}: {exc}") from None
    return received


def _events(request: Request) -> list[Received]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == BATCH:
        items = orjson.loads(request.body)
        events = [from_structured(HTTPMessage({}, orjson.dumps(item)), _JSON) for item in items]
    elif content_type == "application/cloudevents+json" or any(
        name.startswith("ce-") for name in request.headers
    ):
        events = [from_http(HTTPMessage(request.headers, request.body), _JSON)]
    else:
        return [Received(None, orjson.loads(request.body))]
    return [Received(event.get_attributes(), event.get_data()) for event in events]


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Answer(499, "client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(
    send: Any, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", content_type.encode())]
    raw += [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _IntendedDisconnect(logging.Filter):
    """The `drop` fault leaves the body unfinished on purpose; uvicorn would log an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def _quiet_intended_disconnects() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _IntendedDisconnect) for existing in logger.filters):
        logger.addFilter(_IntendedDisconnect())


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the test webhook receiver.")
    parser.add_argument("--secret", action="append", default=[], help="whsec_... (repeatable)")
    options = parser.parse_args()
    receiver = WebhookReceiver(options.secret).start()
    print(LISTENING.format(url=receiver.url), flush=True)
    try:
        receiver.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
