"""Runs the simulator under uvicorn (uvloop + httptools, no access log) until a signal.

Prints exactly one line on stdout, `simulator listening on http://HOST:PORT`, once the
socket accepts connections, so a parent process can wait for it and parse the port.
SIGTERM and SIGINT stop it cleanly: reads waiting for an in-flight commit answer 503, uvicorn
drains the connections (within `GRACE` seconds), then re-raises the signal it caught, which
our own handler turns into a normal return.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn
import uvloop

from bridge.simulator.app import SimulatorApp
from bridge.simulator.simulation import Service

GRACE = 1  # seconds
LISTENING = "simulator listening on http://{host}:{port}"


class Stopped(BaseException):
    """Raised by the SIGTERM/SIGINT handler; a normal way out, not an error."""


def stop_on_signals() -> None:
    """Turn SIGTERM and SIGINT into `Stopped`, also while the feed is being populated."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Stopped

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


class _IncompleteBodyIsIntended(logging.Filter):
    """The `disconnect` fault returns with the body unfinished on purpose; uvicorn then
    closes the connection (the point of the fault) and would log it as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, sock: socket.socket, service: Service) -> None:
        super().__init__(config)
        self._socket = sock
        self._service = service

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            port = self._socket.getsockname()[1]
            print(LISTENING.format(host=self.config.host, port=port), flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._service.sim.close()  # wake blocked readers, so connections drain at once
        await super().shutdown(sockets)


def serve(service: Service, host: str, port: int, log_level: str = "warning") -> None:
    """Serve until SIGTERM/SIGINT (raises `Stopped` then)."""
    config = uvicorn.Config(
        SimulatorApp(service),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level=log_level,
        timeout_graceful_shutdown=GRACE,
    )
    sock = config.bind_socket()
    server = _Server(config, sock, service)
    logging.getLogger("uvicorn.error").addFilter(_IncompleteBodyIsIntended())
    try:
        uvloop.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
        sys.stdout.flush()
