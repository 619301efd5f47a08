"""The hostile proxy serves each fault as its documentation claims (real sockets, loopback)."""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.hostile import payloads
from tests.hostile.proxy import Fault, HostileProxy
from tests.peers.simulator import SimulatorProcess

PAGE = "/v1/changefeed?offset=0&limit=100&includeMetadata=true"
OTHER_PAGE = "/v1/changefeed?offset=100&limit=100&includeMetadata=true"


def page(number: int) -> str:
    return f"/v1/changefeed?offset={100 * number}&limit=100&includeMetadata=true"


LATEST = "/v1/changefeed/latest?includeMetadata=false"


@pytest.fixture
def sim(simulator) -> SimulatorProcess:
    return simulator(entries=300, seed=5)


@pytest.fixture
def proxy(sim: SimulatorProcess) -> Iterator[HostileProxy]:
    """A proxy without faults; tests `add` theirs."""
    with HostileProxy(sim.url) as hostile:
        yield hostile


def direct(sim: SimulatorProcess, path: str) -> httpx.Response:
    return httpx.get(sim.url + path, timeout=30)


def via(proxy: HostileProxy, path: str) -> httpx.Response:
    return httpx.get(proxy.url + path, timeout=30)


def test_requests_without_faults_are_forwarded_unchanged(sim, proxy):
    for path in (PAGE, LATEST, "/v2/changefeed/latest", "/_sim/health"):
        real, proxied = direct(sim, path), via(proxy, path)
        assert proxied.status_code == real.status_code
        assert proxied.headers["content-type"] == real.headers["content-type"]
        assert proxied.content == real.content
    assert via(proxy, "/v3/changefeed").status_code == 400  # the simulator's own answer
    assert proxy.requests() == {"page": 2, "latest": 2, "other": 1}
    assert proxy.served() == {}


def test_a_page_fault_waits_for_its_window_count_then_sticks_to_a_fresh_window(sim, proxy):
    proxy.add(Fault("json-object", after=2, times=3))
    first, second, third = (page(n) for n in range(3))
    real = {path: direct(sim, path).content for path in (first, second, third)}
    assert via(proxy, first).content == real[first]
    assert via(proxy, first).content == real[first]  # a retry does not count
    assert via(proxy, second).content == real[second]
    assert via(proxy, first).content == real[first]  # armed, but for a window never asked
    assert via(proxy, third).content == payloads.JSON_OBJECT
    assert via(proxy, second).content == real[second]  # only that window
    assert via(proxy, third).content == payloads.JSON_OBJECT
    assert via(proxy, third).content == payloads.JSON_OBJECT
    assert via(proxy, third).content == real[third]  # three answers, then done
    assert proxy.served() == {("json-object", "page"): 3}


def test_latest_faults_leave_pages_alone(sim, proxy):
    proxy.add(Fault("json-object", "latest"))
    assert via(proxy, PAGE).content == direct(sim, PAGE).content
    assert via(proxy, LATEST).content == payloads.JSON_OBJECT
    assert via(proxy, LATEST).content == direct(sim, LATEST).content
    assert proxy.served() == {("json-object", "latest"): 1}


def test_a_maintenance_window_answers_html_with_200_to_everything_until_it_ends(sim, proxy):
    proxy.add(Fault("html", "any", after=1, seconds=1.0))
    assert via(proxy, PAGE).content == direct(sim, PAGE).content  # before it is armed
    for path in (PAGE, LATEST, OTHER_PAGE):
        answer = via(proxy, path)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.content == payloads.MAINTENANCE_PAGE
    deadline = time.monotonic() + 10
    while via(proxy, PAGE).content == payloads.MAINTENANCE_PAGE:
        assert time.monotonic() < deadline, "the maintenance window never ended"
        time.sleep(0.05)
    assert via(proxy, LATEST).content == direct(sim, LATEST).content
    assert proxy.served()[("html", "latest")] == 1


def test_a_json_object_comes_with_200_and_a_json_content_type(proxy):
    proxy.add(Fault("json-object"))
    answer = via(proxy, PAGE)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert list(orjson.loads(answer.content)) == ["error"]


def test_a_truncated_body_is_half_the_page_with_the_content_length_of_the_cut(sim, proxy):
    proxy.add(Fault("truncated"))
    real = direct(sim, PAGE).content
    answer = via(proxy, PAGE)
    assert answer.status_code == 200
    assert int(answer.headers["content-length"]) == len(answer.content) == len(real) // 2
    assert real.startswith(answer.content)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.content)


def test_a_lying_truncated_body_announces_the_whole_page_then_closes_early(sim, proxy):
    proxy.add(Fault("truncated-lying", times=2))
    real = direct(sim, PAGE).content
    with pytest.raises(httpx.RemoteProtocolError):
        via(proxy, PAGE)
    with _connect(proxy) as connection:
        head, body = _request(connection, PAGE)
        while chunk := connection.recv(1 << 16):
            body += chunk
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"content-length: {len(real)}\r\n".encode() in head.lower()
    assert body == real[: len(real) // 2]


def test_slow_loris_sends_the_head_at_once_then_one_byte_a_second_until_stopped(sim, proxy):
    proxy.add(Fault("slow-loris"))
    real = direct(sim, PAGE).content
    connection = _connect(proxy)
    with connection:
        head, body = _request(connection, PAGE)  # the head comes without waiting for bytes
        assert f"content-length: {len(real)}\r\n".encode() in head.lower()
        watched_until = time.monotonic() + 3.0
        while (left := watched_until - time.monotonic()) > 0:
            connection.settimeout(left)
            try:
                body += connection.recv(1 << 16)
            except TimeoutError:
                break
        assert 1 <= len(body) <= 4, f"{len(body)} bytes in 3 s"
        assert real.startswith(body)
        proxy.stop()  # a stopping proxy cuts the answer
        connection.settimeout(10)
        while connection.recv(1 << 16):
            pass


@pytest.mark.slow
def test_a_gzip_bomb_is_2_mb_on_the_wire_and_inflates_to_2_gib(proxy):
    proxy.add(Fault("gzip-bomb", "latest"))
    inflated = 0
    with httpx.stream("GET", proxy.url + LATEST, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        assert answer.headers["content-encoding"] == "gzip"
        assert int(answer.headers["content-length"]) < 2_200_000
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # checks the CRC and the length
        for data in answer.iter_raw():
            while data:
                inflated += len(inflater.decompress(data, 1 << 24))
                data = inflater.unconsumed_tail
    assert inflater.eof
    assert inflated == 2 * 1024**3


def test_junk_is_300_mib_streamed_without_the_proxy_holding_it(proxy):
    proxy.add(Fault("junk"))
    received, grown = 0, 0
    before = _rss_kb()
    with httpx.stream("GET", proxy.url + PAGE, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["transfer-encoding"] == "chunked"
        for number, data in enumerate(answer.iter_raw()):
            received += len(data)
            if number % 256 == 0:
                grown = max(grown, _rss_kb() - before)
    assert received == 300 * 1024 * 1024
    assert grown < 64 * 1024, f"this process grew by {grown} kB while the junk went through"


def _connect(proxy: HostileProxy) -> socket.socket:
    host, port = proxy.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _request(connection: socket.socket, path: str) -> tuple[bytes, bytes]:
    """Send a GET; the answer's head, and what came of its body with it."""
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(1 << 16)
        assert chunk, "the connection closed before the head"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head + b"\r\n", body


def _rss_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
