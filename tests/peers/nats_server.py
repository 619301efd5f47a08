"""A nats-server of the tests' own (the machine's binary) with JetStream and a user, and
reading a stream back with nats-py.

    server = NatsServer(workdir, user="u", password="p").start()
    server.set_password("other")      # config reloaded: connections with the old one refused
    read_stream(server.url, "S", user="u", password="p")  # [(subject, headers, data), ...]
    server.stop()
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Self

import nats

BINARY = shutil.which("nats-server") or "nats-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    def __init__(
        self,
        workdir: Path,
        *,
        user: str = "",
        password: str = "",
        tls: tuple[Path, Path] | None = None,
        authorization: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.authorization = authorization  # the block's body, instead of user/password
        self.tls = tls  # (certificate, key): clients must speak TLS
        self.port = free_port()
        self.user = user
        self.password = password
        self.config = workdir / "nats-server.conf"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._write()
        self.process = subprocess.Popen(
            [BINARY, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "nats-server.log").open("ab"),
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.05)

    def set_password(self, password: str) -> None:
        """Reload the server's config with another password for the user."""
        self.password = password
        self._write()
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def _write(self) -> None:
        store = self.workdir / "jetstream"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"jetstream {{ store_dir: {str(store)!r} }}\n"
            "authorization { "
            + (self.authorization or f"user: {self.user!r}, password: {self.password!r}")
            + " }\n"
            + (
                f"tls {{ cert_file: {str(self.tls[0])!r}, key_file: {str(self.tls[1])!r} }}\n"
                if self.tls
                else ""
            )
        )


def read_stream(url: str, stream: str, **auth: Any) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message the stream holds, in stream order (on a thread of its own: callers may
    be inside an event loop)."""
    found: list[tuple[str, dict[str, str], bytes]] = []
    failure: list[BaseException] = []

    async def read() -> None:
        client = await nats.connect(url, allow_reconnect=False, **auth)
        try:
            js = client.jetstream()
            try:
                info = await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return
            last = info.state.last_seq
            if info.state.messages == 0:
                return
            subscription = await js.subscribe(
                ">", stream=stream, ordered_consumer=True, deliver_policy="all"
            )
            try:
                while True:
                    message = await subscription.next_msg(timeout=5)
                    found.append((message.subject, dict(message.headers or {}), message.data))
                    if message.metadata.sequence.stream >= last:
                        break
            finally:
                await subscription.unsubscribe()
        finally:
            await client.close()

    def run() -> None:
        try:
            asyncio.run(read())
        except BaseException as exc:  # re-raised by the caller
            failure.append(exc)

    thread = threading.Thread(target=run, name="nats-reader")
    thread.start()
    thread.join(60)
    if failure:
        raise failure[0]
    return found


def refuses(url: str, **auth: Any) -> bool:
    """Whether the server refuses a connection with these credentials (on a thread)."""
    result: list[bool] = []

    async def attempt() -> None:
        async def quiet(exc: Exception) -> None:
            return None

        client = nats.NATS()
        try:
            await client.connect(
                url, allow_reconnect=False, max_reconnect_attempts=1, error_cb=quiet, **auth
            )
        except Exception:
            result.append(True)
        else:
            result.append(False)
        finally:
            await client.close()
            # a refused client is closed without its socket: close that too (no leftover)
            transport = getattr(client, "_transport", None)
            if transport is not None:
                transport.close()

    thread = threading.Thread(target=lambda: asyncio.run(attempt()), name="nats-reader")
    thread.start()
    thread.join(30)
    return result == [True]
