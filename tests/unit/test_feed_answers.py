"""What the feed client makes of answers that are not a good page: page-level problems are
transient (retried, counted, shown), never poison; poison is confirmed by a second read and
keeps the element's served bytes; answers over `max_page_bytes` are read in smaller
windows; `max_requests_per_second` bounds every request."""

import asyncio
import json
import time
import tracemalloc

import httpx
import orjson
import pytest

from bridge.core.backoff import Backoff
from bridge.delivery.format import Formatter
from bridge.feed import METADATA_UNAVAILABLE, FeedClient, FeedSource, SequenceReader
from tests.peers.feed_mock import StreamingMock, streamed
from tests.peers.hostile_feed import MAINTENANCE, gzip_bomb
from tests.unit.test_feed_client import entry

FAST = Backoff(initial=0.001, maximum=0.004)
JSON = {"content-type": "application/json; charset=utf-8"}
START, END = "2024-05-10T16:00:00+00:00", "2024-05-10T17:00:00+00:00"


def client_for(handler, api_version="v1", **options):
    options.setdefault("backoff", FAST)
    options.setdefault("fallback_after", 2)
    transport = StreamingMock(handler)
    return FeedClient("http://dicom.test", api_version, transport=transport, **options)


def page(*values, pretty=False):
    if pretty:
        return httpx.Response(200, headers=JSON, content=json.dumps(list(values), indent=1))
    compact = json.dumps(list(values), separators=(",", ":"))  # orjson: no 128-bit numbers
    return httpx.Response(200, headers=JSON, content=compact)


def at(minute, sequence):
    return entry(sequence, timestamp=f"2024-05-10T16:{minute:02}:00+00:00")


GOOD = [entry(1), entry(2), entry(3)]


def answer(content, content_type="application/json; charset=utf-8"):
    return lambda: httpx.Response(200, headers={"content-type": content_type}, content=content)


def rows(*values):
    return lambda: page(*values)


NOT_A_PAGE = {  # factories: a streamed response is read once
    "html with 200": answer(MAINTENANCE, "text/html"),
    "html labelled json": answer(MAINTENANCE),
    "a json object": answer(b'{"message":"maintenance"}'),
    "a truncated body": answer(orjson.dumps(GOOD)[:50]),
    "an empty body": answer(b""),
    "null": answer(b"null"),
    "a text content type": answer(orjson.dumps(GOOD), "text/plain"),
    "a row outside the window": rows(*GOOD, entry(11)),
    "rows not ascending": rows(entry(2), entry(1), entry(3)),
    "a duplicated row": rows(entry(1), entry(1), entry(2), entry(3)),
}


@pytest.mark.parametrize("answer", NOT_A_PAGE.values(), ids=NOT_A_PAGE.keys())
async def test_an_answer_that_is_not_a_page_is_retried_never_poison(answer):
    """Regression: such pages were read entry by entry after a few attempts, and every
    entry became a poison dead letter with `"entry": null`; the cursor moved past them."""
    errors = []

    def handler(request):
        errors.append(client.last_error)
        return answer() if len(errors) <= 5 else page(*GOOD)

    client = client_for(handler)
    async with client:
        entries = await client.sequence_window(0, 10, include_metadata=False)
    assert [(e.sequence, e.poison) for e in entries] == [(1, False), (2, False), (3, False)]
    assert client.responses == {"invalid": 5, "200": 1}
    assert errors[0] is None and "http://dicom.test/v1/changefeed?offset=0" in errors[1]
    assert all(errors[1:]) and client.last_error is None


V2_NOT_A_PAGE = {
    "more rows than the limit": [at(10, 1), at(11, 2), at(12, 3)],
    "a row before startTime": [at(10, 1), entry(2, timestamp="2024-05-10T15:59:59.9999999Z")],
    "a row at endTime": [at(10, 1), entry(2, timestamp=END)],
    "rows out of time order": [at(11, 1), at(10, 2)],
    "rows out of sequence order at one time": [at(10, 2), at(10, 1)],
}


@pytest.mark.parametrize("served", V2_NOT_A_PAGE.values(), ids=V2_NOT_A_PAGE.keys())
async def test_v2_an_answer_that_is_not_a_page_is_retried(served):
    calls = 0

    def handler(request):
        nonlocal calls
        calls += 1
        return page(*served) if calls <= 3 else page(at(10, 1), at(11, 2))

    client = client_for(handler, "v2")
    async with client:
        entries = await client.time_window(START, END, 0, 2, include_metadata=False)
    assert [e.sequence for e in entries] == [1, 2] and not any(e.poison for e in entries)
    assert client.responses == {"invalid": 3, "200": 1}


async def test_an_entry_corrupted_in_one_read_is_read_again_and_is_not_poison():
    broken = {k: v for k, v in entry(2).items() if k != "studyInstanceUid"}
    answers = iter([page(entry(1), broken, entry(3))])

    def handler(request):
        return next(answers, page(*GOOD))

    async with client_for(handler) as client:
        entries = await client.sequence_window(0, 10, include_metadata=False)
    assert [(e.sequence, e.poison) for e in entries] == [(1, False), (2, False), (3, False)]


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty-printed"])
async def test_a_confirmed_poison_entry_keeps_its_served_bytes(pretty):
    """A dead letter keeps the element as served, a 128-bit number included (the parsed
    value would say 1e+20)."""
    broken = {**entry(2), "studyInstanceUid": "", "big": 10**20}
    requests = 0

    def handler(request):
        nonlocal requests
        requests += 1
        return page(entry(1), broken, entry(3), pretty=pretty)

    async with client_for(handler) as client:
        entries = await client.sequence_window(0, 10, include_metadata=False)
    assert requests == 2  # read again to confirm
    assert [(e.sequence, e.poison) for e in entries] == [(1, False), (2, True), (3, False)]
    record = Formatter("http://dicom.test").dead_letter(entries[1], entries[1].problem, "s").body
    assert b"\n" not in record
    assert json.loads(record)["entry"] == broken
    assert b'"big":100000000000000000000' in record.replace(b": ", b":")


async def test_an_entry_that_cannot_be_read_at_all_is_retried_never_poison():
    """The metadata fallback keeps going for a page failing with metadata; the same page
    failing without metadata too is transient, read again until it answers."""
    plain = 0

    def handler(request):
        nonlocal plain
        params = request.url.params
        if params["includeMetadata"] == "true":
            if params["limit"] != "1" or params["offset"] == "2":
                return httpx.Response(500, text="An unexpected error occurred.")
        else:
            plain += 1
            if plain <= 6:
                return NOT_A_PAGE["a truncated body"]() if plain % 2 else httpx.Response(500)
        offset, limit = int(params["offset"]), int(params["limit"])
        md = params["includeMetadata"] == "true"
        return page(*[entry(s, metadata=md) for s in (1, 2, 3) if offset < s <= offset + limit])

    async with client_for(handler) as client:
        entries = await client.sequence_window(0, 10, include_metadata=True)
    assert [(e.sequence, e.poison, e.flags) for e in entries] == [
        (1, False, ()),
        (2, False, ()),
        (3, False, (METADATA_UNAVAILABLE,)),
    ]
    assert "metadata" in entries[0].raw and "metadata" not in entries[2].raw


def sized(sequence, metadata_bytes=None, extra_bytes=0):
    value = entry(sequence)
    if metadata_bytes is not None:
        value["metadata"] = {"00291010": {"vr": "UT", "Value": ["x" * metadata_bytes]}}
    if extra_bytes:
        value["extra"] = "y" * extra_bytes
    return value


def window_server(values, log):
    def handler(request):
        params = request.url.params
        offset, limit = int(params["offset"]), int(params["limit"])
        metadata = params["includeMetadata"] == "true"
        log.append((offset, limit, metadata))
        rows = [
            value if metadata else {k: v for k, v in value.items() if k != "metadata"}
            for value in values
            if offset < value["sequence"] <= offset + limit
        ]
        return page(*rows)

    return handler


async def test_a_window_over_the_cap_is_read_again_in_smaller_windows():
    values = [sized(s, metadata_bytes=400) for s in range(1, 11)]  # ~700 bytes each
    log = []
    async with client_for(window_server(values, log), max_page_bytes=2_000) as client:
        entries = await client.sequence_window(0, 10, include_metadata=True)
    assert [e.raw for e in entries] == values and not any(e.flags for e in entries)
    assert log[0] == (0, 10, True) and max(limit for _, limit, _ in log[1:]) < 10
    assert client.responses["oversize"] >= 1 and client.last_error is None


async def test_a_single_entry_over_the_cap_is_read_without_metadata_and_flagged():
    values = [sized(1, 100), sized(2, 5_000), sized(3, 100)]
    log = []
    async with client_for(window_server(values, log), max_page_bytes=2_000) as client:
        entries = await client.sequence_window(0, 10, include_metadata=True)
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert [e.flags for e in entries] == [(), (METADATA_UNAVAILABLE,), ()]
    assert "metadata" not in entries[1].raw and "metadata" in entries[2].raw
    assert (1, 1, False) in log


async def test_a_single_entry_over_the_cap_without_metadata_is_transient():
    values = [sized(1), sized(2, extra_bytes=5_000), sized(3)]
    log = []
    errors = []
    served = window_server(values, log)

    def handler(request):
        errors.append(client.last_error)
        if len(log) == 8:
            values[1] = sized(2)  # e.g. a proxy's error page that ends
        return served(request)

    client = client_for(handler, max_page_bytes=2_000)
    async with client:
        entries = await client.sequence_window(0, 10, include_metadata=False)
    assert [(e.sequence, e.poison) for e in entries] == [(1, False), (2, False), (3, False)]
    assert any(error and "2000 bytes" in error for error in errors)


async def test_v2_a_page_over_the_cap_is_read_in_smaller_pages():
    values = [{**sized(s, metadata_bytes=400), "timestamp": at(10 + s, s)["timestamp"]}
              for s in range(1, 9)]  # fmt: skip
    limits = []

    def handler(request):
        params = request.url.params
        offset, limit = int(params["offset"]), int(params["limit"])
        limits.append(limit)
        return page(*values[offset : offset + limit])

    async with client_for(handler, "v2", max_page_bytes=2_000) as client:
        entries = await client.time_window(START, END, 0, 8, include_metadata=True)
    assert [e.raw for e in entries] == values
    assert limits[0] == 8 and max(limits[1:]) < 8


async def test_a_gzip_bomb_is_refused_while_decoding_with_bounded_memory():
    """Regression: httpx inflates each 64 KB network chunk whole (to ~66 MB), and the
    client kept the whole decoded body: a 2 MB answer took 2 GB."""
    bomb = gzip_bomb(256 << 20)
    log = []
    served = window_server(GOOD, log)

    def handler(request):
        if not log:
            log.append("bomb")
            return streamed(200, bomb, {**JSON, "content-encoding": "gzip"})
        return served(request)

    client = client_for(handler, max_page_bytes=1 << 20)
    tracemalloc.start()
    try:
        async with client:
            entries = await client.sequence_window(0, 10, include_metadata=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert peak - len(bomb) < 8 << 20, f"{peak >> 20} MiB traced"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br", "compress"])
async def test_an_encoding_that_cannot_be_bounded_is_refused_and_retried(encoding):
    calls = 0

    def handler(request):
        nonlocal calls
        calls += 1
        if calls <= 2:
            return streamed(200, b"\x1b\x00\x00\x00", {**JSON, "content-encoding": encoding})
        return page(*GOOD)

    async with client_for(handler) as client:
        entries = await client.sequence_window(0, 10, include_metadata=False)
    assert [e.sequence for e in entries] == [1, 2, 3]
    assert client.responses == {"invalid": 2, "200": 1}


@pytest.mark.parametrize("failing", [False, True], ids=["empty windows", "503s"])
async def test_max_requests_per_second_bounds_every_request(failing):
    """Regression: a latest of 2^63-1 made the v1 reader walk empty windows as fast as
    the service answered (~1,800 requests/s)."""
    times = []

    def handler(request):
        times.append(time.monotonic())
        if request.url.path.endswith("/latest"):
            return httpx.Response(200, headers=JSON, content=orjson.dumps(entry(2**63 - 1)))
        if failing:
            return httpx.Response(503, headers={"retry-after": "0"}, text="busy")
        return page()

    client = client_for(handler, max_requests_per_second=20)
    source = FeedSource(client, page_size=100, include_metadata=False)
    reader = SequenceReader(source, prefetch=8, poll_interval=0.01)

    async def read():
        async for _ in reader.pages(0):
            pass

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.5):
            await read()
    elapsed = time.monotonic() - started
    await source.close()
    assert 5 <= len(times) <= 20 * elapsed + 1, f"{len(times)} requests in {elapsed:.2f}s"
