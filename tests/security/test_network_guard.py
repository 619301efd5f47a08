"""The network guard of the test session (tests/network_guard.py): a connection outside
loopback is refused before anything is sent, in the test process and in the processes it
starts, and the test that tried fails (here the expected refusals are taken instead)."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest
import pytest_socket

from tests.network_guard import SUBPROCESS_GUARD, NetworkGuard

pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket")

OUTSIDE = ["169.254.169.254", "10.255.255.1"]  # the IMDS endpoint; a private address
_SIOCGIFADDR = 0x8915
#: Connects with Python's socket, with uvloop (as the bridge and the simulator run), and
#: looks a name up; prints each refusal's class.
_TRIES = """
import asyncio, socket, sys
import uvloop

address, port = sys.argv[1], int(sys.argv[2])

def attempt(what):
    try:
        what()
    except OSError as exc:
        print(type(exc).__name__, flush=True)

async def loop_connect():
    await asyncio.wait_for(asyncio.open_connection(address, port), 10)

attempt(lambda: socket.create_connection((address, port), timeout=10))
attempt(lambda: uvloop.run(loop_connect()))
attempt(lambda: socket.getaddrinfo("login.microsoftonline.com", 443))
"""


def own_address() -> str | None:
    """An IPv4 address of this machine outside loopback, if it has one (Linux)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name[:15].encode())
            try:
                answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address
            address = socket.inet_ntoa(answer[20:24])
            if not address.startswith("127."):
                return address
    return None


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A server socket on this machine's own address outside loopback: whatever the guard
    let through would arrive here."""
    address = own_address()
    if address is None:
        pytest.skip("this machine has no address outside loopback")
    with socket.create_server((address, 0)) as server:
        server.settimeout(30)
        yield server


def unguarded_connect(host: str, port: int) -> None:
    """Connect from a process without the guard and send `control` (the control attempt)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    script = (
        "import socket, sys\n"
        "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).sendall(b'control')"
    )
    subprocess.run([sys.executable, "-c", script, host, str(port)], env=env, check=True, timeout=30)


def first_arrival(server: socket.socket) -> bytes:
    connection, _ = server.accept()
    with connection:
        connection.settimeout(30)
        return connection.recv(16)


@pytest.mark.parametrize("address", OUTSIDE)
def test_the_test_process_cannot_leave_loopback(address: str, network_guard: NetworkGuard):
    with pytest.raises(pytest_socket.SocketConnectBlockedError):
        socket.create_connection((address, 80), timeout=10)
    [refused] = network_guard.take()
    assert f'host "{address}"' in refused


@pytest.mark.parametrize("address", OUTSIDE)
def test_the_processes_tests_start_cannot_leave_loopback(address: str, network_guard):
    ran = subprocess.run(
        [sys.executable, "-c", _TRIES, address, "80"], capture_output=True, text=True, timeout=60
    )
    assert ran.stdout.split() == ["NetworkGuardError"] * 3, ran.stderr
    refused = [line.split(": ", 1)[1] for line in network_guard.take()]
    assert refused == [
        f"network guard: {what} refused (the tests may only reach loopback)"
        for what in (
            f"lookup of {address}:80",  # socket.create_connection looks the address up first
            f"connect {address}:80",  # uvloop does it in C
            "lookup of login.microsoftonline.com:443",
        )
    ]


def test_nothing_is_sent_before_the_refusal(listener: socket.socket, network_guard):
    host, port = listener.getsockname()[:2]
    with pytest.raises(pytest_socket.SocketConnectBlockedError):
        socket.create_connection((host, port), timeout=10)
    ran = subprocess.run(
        [sys.executable, "-c", _TRIES, host, str(port)], capture_output=True, text=True, timeout=60
    )
    assert ran.stdout.split() == ["NetworkGuardError"] * 3, ran.stderr
    assert len(network_guard.take()) == 4
    unguarded_connect(host, port)
    assert first_arrival(listener) == b"control"  # nothing of the guarded attempts came first


def test_a_test_that_leaves_loopback_fails(pytester: pytest.Pytester):
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(SUBPROCESS_GUARD.parents[1])!r})\n"
        "from tests.conftest import network_guard, pytest_configure, pytest_unconfigure\n"
    )
    pytester.makepyfile(
        """
        import socket, subprocess, sys

        def test_swallows_the_refusal():
            try:
                socket.create_connection(("10.255.255.1", 80), timeout=10)
            except (OSError, RuntimeError):
                pass  # as code that retries any error would

        def test_starts_a_process_that_tries():
            script = (
                "import socket\\n"
                "try: socket.create_connection(('10.255.255.1', 80))\\n"
                "except OSError: pass"
            )
            subprocess.run([sys.executable, "-c", script], check=True)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--allow-hosts=127.0.0.0/8", "-W", "ignore"
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*the test tried to leave loopback*"])
