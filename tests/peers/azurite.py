"""Azurite, Microsoft's Azure Storage emulator (blob service only), as a real subprocess.

`make azurite` installs it from npm into `.tools/` (`.ci/run` and `make test` do it first).
Each process listens on a free loopback port and keeps its data in a directory of its own,
so `stop()` then `start()` is the engine restarting with its data: the same port, the same
blobs. The port is taken below the kernel's ephemeral range, so that while Azurite is
stopped no outgoing connection can be given it and keep the restart from binding it.

Fixtures (registered for every test by `tests/conftest.py`):
- `azurite`: one Azurite per test session (per xdist worker), shared; use a container of
  your own (`azurite_container`) and it needs no cleanup. Outside fixtures, the same
  process is `shared_azurite()`.
- `azurite_container`: a container name unique to the test (not created).
- `azurite_offsets`: the `offsets:` config (a dict) of an azure_blob store on the shared
  Azurite, in that test's own container.
- `start_azurite`: factory of private Azurites (`start_azurite()` -> a started
  `AzuriteProcess`), for tests that stop and restart the engine; all closed at teardown.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from bridge.simulator.child import LineChild

ROOT = Path(__file__).resolve().parents[2]
#: Where `make azurite` installs it; AZURITE_BLOB names another executable.
INSTALLED = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
#: The emulator's well-known development account (public, the same in every Azurite).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LISTENING = re.compile(rb"successfully listens on (http://\S+)")
#: Ports tried: below Linux's default ephemeral range (32768-60999), above well-known ones.
PORTS = range(20000, 32000)
STARTS = 5


def _unused_port() -> int:
    """A port nothing listens on now, outside the ephemeral range."""
    for _ in range(100):
        port = random.choice(PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for Azurite")


def azurite_executable() -> str | None:
    """The azurite-blob to run, or None when it is not installed."""
    chosen = os.environ.get("AZURITE_BLOB")
    if chosen:
        return chosen
    if INSTALLED.exists():
        return str(INSTALLED)
    return shutil.which("azurite-blob")


class AzuriteProcess(LineChild):
    what = "Azurite"

    def __init__(self, location: Path, *, startup_timeout: float = 60.0) -> None:
        executable = azurite_executable()
        if executable is None:
            raise RuntimeError("azurite-blob is not installed: run `make azurite`")
        self.executable = executable
        self.location = location
        self.startup_timeout = startup_timeout
        self.port = 0  # chosen at the first start; then kept, so a restart keeps its address
        super().__init__([])

    def start(self) -> Self:
        if self.port:  # a restart: the same port
            return self._start()
        for _ in range(STARTS):  # another listener may take a port between probe and bind
            self.port = _unused_port()
            try:
                return self._start()
            except RuntimeError:
                if "EADDRINUSE" not in self.stderr():
                    raise
        raise RuntimeError(f"Azurite found no free port in {STARTS} tries")

    def _start(self) -> Self:
        if self._stderr is not None:  # a restart: the last run's stderr is of no use now
            self._stderr.close()
        self.argv = [
            self.executable,
            "--silent",
            "--disableTelemetry",  # it would call Application Insights otherwise
            "--skipApiVersionCheck",  # the SDK may be newer than the emulator
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.port),
            "--location",
            str(self.location),
        ]
        super().start()
        try:
            while True:
                match = _LISTENING.search(self.read_line(self.startup_timeout))
                if match:
                    self.port = int(match[1].rsplit(b":", 1)[1])
                    return self
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return self.connection_string_via(self.port)

    def connection_string_via(self, port: int) -> str:
        """The connection string reaching this Azurite through `port` (a proxy's)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )

    def offsets(self, container: str, *, via: int | None = None, **options: Any) -> dict[str, Any]:
        """The `offsets:` config of an azure_blob store in `container` here (through port
        `via`, a proxy's, when given)."""
        return {
            "type": "azure_blob",
            "container": container,
            "connection_string": self.connection_string_via(via or self.port),
            **options,
        }


_SHARED: list[AzuriteProcess] = []


def shared_azurite() -> AzuriteProcess:
    """The Azurite of this process (this xdist worker), started at the first call and
    stopped when the process exits: for fixtures of any scope and for helpers that are not
    fixtures (an engine table of a parametrised suite). Its containers are the tests' own
    (`unique_container`), so they need no cleanup. Skips the test (fails it under CI) when
    Azurite is not installed."""
    _require_azurite()
    if not _SHARED:
        location = Path(tempfile.mkdtemp(prefix="azurite-"))
        process = AzuriteProcess(location).start()
        _SHARED.append(process)

        def close() -> None:
            process.close()
            shutil.rmtree(location, ignore_errors=True)

        atexit.register(close)
    return _SHARED[0]


def unique_container() -> str:
    """A container name of our own (3-63 lowercase letters, digits and hyphens)."""
    return f"t-{uuid.uuid4().hex[:20]}"


def _require_azurite() -> None:
    if azurite_executable() is None:
        message = "azurite-blob is not installed (run `make azurite`: npm install into .tools/)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def azurite() -> AzuriteProcess:
    """One Azurite for the session (per xdist worker), shared by the tests."""
    return shared_azurite()


@pytest.fixture
def azurite_container() -> str:
    return unique_container()


@pytest.fixture
def azurite_offsets(azurite: AzuriteProcess, azurite_container: str) -> dict[str, Any]:
    return azurite.offsets(azurite_container)


@pytest.fixture
def start_azurite(tmp_path: Path) -> Iterator[Callable[[], AzuriteProcess]]:
    """Factory of private Azurites (for tests that stop and restart one)."""
    _require_azurite()
    started: list[AzuriteProcess] = []

    def start() -> AzuriteProcess:
        location = tmp_path / f"azurite-{len(started)}"
        location.mkdir()
        process = AzuriteProcess(location)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.close()
