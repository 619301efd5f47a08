"""FeedClient against in-process fake responses (httpx.MockTransport)."""

import time
import types

import httpx
import orjson
import pytest

from bridge.core.azure import CredentialError
from bridge.core.backoff import Backoff
from bridge.core.secret import Secret
from bridge.feed import (
    METADATA_UNAVAILABLE,
    AzureAuth,
    BearerToken,
    FeedClient,
    FeedError,
    FeedRequestError,
)
from tests.peers.feed_mock import StreamingMock

FAST = Backoff(initial=0.001, maximum=0.004)


def entry(sequence, state="Current", metadata=False, timestamp="2024-05-10T16:14:11.9+00:00"):
    value = {
        "sequence": sequence,
        "partitionName": "Microsoft.Default",
        "studyInstanceUid": f"1.2.{sequence}",
        "seriesInstanceUid": f"1.3.{sequence}",
        "sopInstanceUid": f"1.4.{sequence}",
        "action": "Create",
        "timestamp": timestamp,
        "state": state,
    }
    if metadata and state in ("Current", "Replaced"):
        value["metadata"] = {"00080060": {"vr": "CS", "Value": ["CT"]}}
    return value


def client_for(handler, **options):
    options.setdefault("backoff", FAST)
    return FeedClient("http://dicom.test", "v1", transport=StreamingMock(handler), **options)


def v1_window(request, rows):
    """Serve `rows` (dicts) with v1 window semantics."""
    offset = int(request.url.params["offset"])
    limit = int(request.url.params["limit"])
    metadata = request.url.params["includeMetadata"] == "true"
    page = [
        entry(r["sequence"], r["state"], metadata)
        for r in rows
        if offset < r["sequence"] <= offset + limit
    ]
    return httpx.Response(200, content=orjson.dumps(page))


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(204),
        httpx.Response(200, content=b""),
        httpx.Response(200, content=b"null"),
    ],
)
async def test_empty_feed_latest_is_none(response):
    async with client_for(lambda request: response) as client:
        assert await client.latest() is None


async def test_latest_entry_and_request_shape():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, content=orjson.dumps(entry(42)))

    async with client_for(handler) as client:
        latest = await client.latest()
    assert latest.sequence == 42
    assert seen[0].url.path == "/v1/changefeed/latest"
    assert seen[0].url.params["includeMetadata"] == "false"


async def test_transient_failures_are_retried_until_success():
    answers = iter(
        [
            httpx.Response(503, text="busy"),
            httpx.Response(500, text="oops"),
            httpx.Response(429, text="slow down"),
            httpx.Response(200, content=b'[{"sequence": 1'),  # truncated
            httpx.Response(408),
        ]
    )

    def handler(request):
        if request.url.params["offset"] == "0":
            try:
                return next(answers)
            except StopIteration:
                pass
        return httpx.Response(200, content=orjson.dumps([entry(1), entry(2)]))

    async with client_for(handler, fallback_after=10) as client:
        entries = await client.sequence_window(0, 100, include_metadata=False)
    assert [e.sequence for e in entries] == [1, 2]


async def test_connection_errors_are_retried():
    calls = 0

    def handler(request):
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, content=b"[]")

    async with client_for(handler) as client:
        assert await client.sequence_window(0, 10, include_metadata=False) == []
    assert calls == 3


async def test_retry_after_is_honoured():
    calls = []

    def handler(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, text="throttled")
        return httpx.Response(200, content=b"[]")

    async with client_for(handler) as client:
        await client.sequence_window(0, 10, include_metadata=False)
    assert calls[1] - calls[0] >= 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_refusals_raise_one_clear_line_naming_the_url(status):
    def handler(request):
        return httpx.Response(status, text=f"The query parameter 'limit' is invalid.\n({status})")

    async with client_for(handler) as client:
        with pytest.raises(FeedRequestError) as caught:
            await client.sequence_window(0, 10, include_metadata=False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{status} ")
    assert "http://dicom.test/v1/changefeed?offset=0&limit=10" in message
    assert caught.value.status == status


async def test_token_is_sent_and_never_in_errors(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("first-secret-token\n")
    seen = []

    def handler(request):
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") == "Bearer second-secret-token":
            return httpx.Response(200, content=b"[]")
        return httpx.Response(401, text="invalid token")

    async with client_for(handler, auth=BearerToken(Secret.from_file(token_file))) as client:
        with pytest.raises(FeedRequestError) as caught:
            await client.sequence_window(0, 10, include_metadata=False)
        assert "secret" not in str(caught.value)
        token_file.write_text("second-secret-token")  # rotated by a sidecar
        assert await client.sequence_window(0, 10, include_metadata=False) == []
    assert seen[0] == "Bearer first-secret-token"
    assert seen[-1] == "Bearer second-secret-token"


async def test_metadata_500_falls_back_and_flags_only_the_broken_entry():
    rows = [{"sequence": s, "state": "Current"} for s in (1, 2, 3, 5)]
    broken = 3

    def handler(request):
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        if request.url.params["includeMetadata"] == "true" and offset < broken <= offset + limit:
            return httpx.Response(500, text="An unexpected error occurred.")
        return v1_window(request, rows)

    async with client_for(handler, fallback_after=2) as client:
        entries = await client.sequence_window(0, 10, include_metadata=True)
    assert [e.sequence for e in entries] == [1, 2, 3, 5]
    assert [bool(e.raw.get("metadata")) for e in entries] == [True, True, False, True]
    assert [e.flags for e in entries] == [(), (), (METADATA_UNAVAILABLE,), ()]


async def test_a_general_outage_never_turns_entries_into_poison():
    calls = 0

    def handler(request):
        nonlocal calls
        calls += 1
        if calls <= 8:  # every request fails for a while, with and without metadata
            return httpx.Response(500, text="down")
        return v1_window(request, [{"sequence": 1, "state": "Current"}])

    async with client_for(handler, fallback_after=2) as client:
        entries = await client.sequence_window(0, 10, include_metadata=True)
    assert [e.sequence for e in entries] == [1]
    assert not entries[0].poison


async def test_v2_times_are_sent_with_an_encoded_plus():
    seen = []

    def handler(request):
        seen.append(request.url)
        return httpx.Response(200, content=b"[]")

    client = FeedClient("http://dicom.test/", "v2", transport=StreamingMock(handler))
    async with client:
        await client.time_window(
            "2024-05-10T16:12:03.1234567+00:00", "2024-05-10T17:00:00+00:00", 0, 200, False
        )
    query = seen[0].query.decode()
    assert "startTime=2024-05-10T16%3A12%3A03.1234567%2B00%3A00" in query
    assert "endTime=2024-05-10T17%3A00%3A00%2B00%3A00" in query
    assert seen[0].path == "/v2/changefeed"


class _FlakyIdentity:
    """An Entra identity whose token endpoint fails `failures` times, then answers."""

    def __init__(self, failures: int, *, refused: bool) -> None:
        self.failures, self.refused, self.asked = failures, refused, 0

    async def get_token(self, *scopes: str):
        self.asked += 1
        if self.asked <= self.failures:
            raise CredentialError("no Microsoft Entra ID token (test): down", refused=self.refused)
        return types.SimpleNamespace(token="entra-token", expires_on=time.time() + 3600)

    async def close(self) -> None:
        return None


async def test_an_unreachable_token_endpoint_is_retried_like_the_feed_itself():
    seen = []

    def handler(request):
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json=entry(7, "Current", False))

    identity = _FlakyIdentity(2, refused=False)
    async with client_for(handler, auth=AzureAuth(identity)) as client:
        latest = await client.latest()
    assert latest.sequence == 7 and identity.asked == 3
    assert seen == ["Bearer entra-token"]
    assert client.responses.get("error") == 2


async def test_a_refused_identity_stops_at_once_with_one_line():
    identity = _FlakyIdentity(1, refused=True)
    async with client_for(lambda request: httpx.Response(204), auth=AzureAuth(identity)) as client:
        with pytest.raises(FeedError, match="no Microsoft Entra ID token"):
            await client.latest()
    assert identity.asked == 1
