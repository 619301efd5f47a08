"""A TCP proxy on loopback in front of a real server, that can cut it off and restore it.

    with TcpProxy(6379) as proxy:        # listens on 127.0.0.1:<proxy.port>
        ...                              # point the client at proxy.port
        proxy.cut()                      # every connection reset, new ones refused
        proxy.restore()                  # listening again on the same port

With `tls` (a server context) it terminates TLS: a TLS listener in front of a plain one.
Cut is what a server stopped looks like from the client (connections reset, connects
refused) while the server keeps what it holds. The proxy runs its own event loop in a
thread named `tcp-proxy` (not the client's leftovers).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from typing import Self

THREAD = "tcp-proxy"


class TcpProxy:
    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tls = tls  # a server context: clients speak TLS to the proxy, it plain upstream
        with socket.socket() as probe:  # a free port, kept across cuts
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=THREAD, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> Self:
        self._thread.start()
        self.restore()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self) -> None:
        """Stop listening and reset every open connection (both sides)."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    @property
    def is_cut(self) -> bool:
        return self._server is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- on the proxy's loop ----------------------------------------------------------

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._connection, "127.0.0.1", self.port, reuse_address=True, ssl=self.tls
            )

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if self._server is None:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        if self._server is None:  # cut while connecting upstream: this one must not escape
            _reset(writer)
            _reset(up_writer)
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for each in (writer, up_writer):
            self._writers.discard(each)
            each.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if writer not in self._writers:
                    return
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if writer in self._writers:
                with contextlib.suppress(OSError):
                    writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed server's host does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    writer.transport.abort()
