"""A TLS endpoint on loopback for the safe-default tests.

It terminates TLS with the server certificate of a throwaway CA (`make_pki`: valid for
127.0.0.1 only) and counts the handshakes that succeeded, so a test can tell a client that
verified the certificate (and refused it: none succeeded) from one that did not. With an
`upstream`, the decrypted bytes are forwarded to a plain-text peer (the simulator), which
makes that peer reachable over https://.

    with TlsEndpoint(pki, upstream=("127.0.0.1", 8080)) as endpoint:
        ...  # connect to endpoint.port
        await endpoint.wait_for_handshakes(1)    # once a client accepted the certificate
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from typing import Self

from tests.integration.webhook.certs import Pki


class TlsEndpoint:
    def __init__(
        self,
        pki: Pki,
        *,
        upstream: tuple[str, int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`host` other than 127.0.0.1 (say 127.0.0.2) makes the certificate's name wrong."""
        self.host, self.port = host, port
        self._upstream = upstream
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(pki.server_cert, pki.server_key)
        self._handshakes = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def handshakes(self) -> int:
        """TLS handshakes that succeeded so far."""
        with self._lock:
            return self._handshakes

    async def wait_for_handshakes(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` handshakes succeeded (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while self.handshakes < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.handshakes} of {count} TLS handshakes succeeded")
            await asyncio.sleep(0.02)

    def start(self) -> Self:
        """Listen (raises OSError if the port is taken), served by a thread of its own."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        listening = asyncio.start_server(
            self._accept, self.host, self.port, ssl=self._context, ssl_handshake_timeout=10
        )
        try:
            self._server = asyncio.run_coroutine_threadsafe(listening, self._loop).result(10)
        except BaseException:
            self._close_loop()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        server = self._server

        async def shutdown() -> None:
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._close_loop()

    def _close_loop(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Called once the handshake succeeded (failed ones never get here)."""
        with self._lock:
            self._handshakes += 1
        try:
            if self._upstream is None:
                await reader.read()  # until the client closes
            else:
                await self._forward(reader, writer, *self._upstream)
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()

    @staticmethod
    async def _forward(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()

        # TLS has no half-close: once either side is done, the connection is.
        pipes = {
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        }
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            up_writer.transport.abort()
