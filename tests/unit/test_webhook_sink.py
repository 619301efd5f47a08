"""The webhook sink against in-process fakes (httpx.MockTransport): status handling,
signatures, bindings, per-study order, concurrency, batches, check, secrecy."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import unquote

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from bridge.core.sink import DELIVERED, Permanent, SinkError, SinkFatalError, Transient
from sinks.webhook.config import Config
from sinks.webhook.signing import batch_webhook_id, webhook_id
from sinks.webhook.sink import WebhookSink
from tests.integration.webhook.helpers import OTHER_SECRET, SECRET, feed_events

URL = "https://hooks.example/dicom?code=urlkey"


class Receiver:
    """A MockTransport handler recording requests; `answer(request)` picks the response."""

    def __init__(self, answer=None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(204))

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.answer(request)
        if asyncio.iscoroutine(response):
            response = await response
        # Streamed as from a network, not pre-read: the sink reads only the start of it.
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(response.content),
        )

    def sequences(self) -> list[int]:
        return [sequence_of(request) for request in self.requests]


def sequence_of(request: httpx.Request) -> int:
    return json.loads(request.content)["data"]["sequence"]


def make_sink(receiver: Receiver, **options) -> WebhookSink:
    settings = {"name": "hooks", "type": "webhook", "url": URL, "secret": [SECRET], **options}
    return WebhookSink(Config(**settings), name="hooks", transport=httpx.MockTransport(receiver))


async def send(receiver: Receiver, events, **options):
    sink = make_sink(receiver, **options)
    await sink.open()
    try:
        return await sink.send(events)
    finally:
        await sink.close()


# -- status codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_delivered(status: int) -> None:
    assert await send(Receiver(lambda r: httpx.Response(status)), feed_events(2)) == [DELIVERED] * 2


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (408, {}, None),
        (429, {"Retry-After": "7"}, 7.0),
        (500, {}, None),
        (502, {}, None),
        (503, {"Retry-After": "2"}, 2.0),
        (504, {}, None),
        (599, {}, None),
    ],
)
async def test_throttling_and_server_errors_are_transient(status, headers, retry_after) -> None:
    receiver = Receiver(lambda r: httpx.Response(status, headers=headers, text="busy now"))
    [outcome] = await send(receiver, feed_events(1))
    assert isinstance(outcome, Transient)
    assert outcome.retry_after == retry_after
    assert f"answered {status}" in outcome.reason and "busy now" in outcome.reason


@pytest.mark.parametrize("status", [400, 404, 409, 413, 415, 422])
async def test_other_4xx_is_permanent_with_an_excerpt(status: int) -> None:
    body = "  rejected:\n" + "x" * 500
    [outcome] = await send(Receiver(lambda r: httpx.Response(status, text=body)), feed_events(1))
    assert isinstance(outcome, Permanent)
    assert f"answered {status}" in outcome.reason
    assert "rejected: xxx" in outcome.reason and outcome.reason.endswith("...")
    assert len(outcome.reason) < 320


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (401, "refuses our credentials"),
        (403, "refuses our credentials"),
        (410, "the endpoint is gone"),
    ],
)
async def test_credentials_refused_or_endpoint_gone_is_fatal_and_stays_so(status, phrase) -> None:
    receiver = Receiver(lambda r: httpx.Response(status))
    sink = make_sink(receiver)
    await sink.open()
    with pytest.raises(SinkFatalError, match=phrase):
        await sink.send(feed_events(1))
    with pytest.raises(SinkFatalError, match=phrase):  # without another request
        await sink.send(feed_events(1, first=2))
    assert len(receiver.requests) == 1
    await sink.close()


async def test_redirects_are_not_followed_and_name_the_new_address() -> None:
    moved = {"Location": "https://new.example/hook?code=newkey"}
    receiver = Receiver(lambda r: httpx.Response(308, headers=moved))
    [outcome] = await send(receiver, feed_events(1))
    assert isinstance(outcome, Transient)
    assert "redirecting to https://new.example/hook;" in outcome.reason
    assert "set url to the final address" in outcome.reason and "newkey" not in outcome.reason
    assert len(receiver.requests) == 1


async def test_connection_errors_and_timeouts_are_transient() -> None:
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    [outcome] = await send(Receiver(refuse), feed_events(1))
    assert isinstance(outcome, Transient) and "ConnectError: connection refused" in outcome.reason

    async def stall(request):
        await asyncio.Event().wait()  # never answers; the sink's deadline cancels it

    started = time.monotonic()
    [outcome] = await send(Receiver(stall), feed_events(1), timeout="50ms")
    assert isinstance(outcome, Transient) and "no complete answer within 0.05s" in outcome.reason
    assert time.monotonic() - started < 2


# -- what is sent ---------------------------------------------------------------------------


async def test_signatures_verify_with_the_reference_library_for_each_secret() -> None:
    receiver = Receiver()
    [event] = feed_events(1)
    await send(receiver, [event], secret=[SECRET, OTHER_SECRET])
    [request] = receiver.requests
    headers = dict(request.headers)
    for secret in (SECRET, OTHER_SECRET):
        assert Webhook(secret).verify(request.content, headers) == json.loads(event.body)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(request.content, headers)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert "." not in headers["webhook-id"] and unquote(headers["webhook-id"]) == event.id
    assert request.content == event.body
    assert headers["content-type"] == "application/cloudevents+json; charset=utf-8"


async def test_without_a_secret_requests_carry_id_and_timestamp_only() -> None:
    receiver = Receiver()
    await send(receiver, feed_events(1), secret=[])
    [request] = receiver.requests
    assert "webhook-signature" not in request.headers
    assert {"webhook-id", "webhook-timestamp"} <= set(request.headers)


async def test_static_headers_bearer_token_and_user_agent() -> None:
    receiver = Receiver()
    await send(receiver, feed_events(1), bearer_token="t0k", headers={"X-Api-Key": "k3y"})
    [request] = receiver.requests
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["authorization"] == "Bearer t0k"
    assert request.headers["x-api-key"] == "k3y"
    assert request.headers["user-agent"].startswith("dicom-changefeed-bridge/")


async def test_binary_mode_headers_round_trip_through_the_cloudevents_sdk() -> None:
    [event] = feed_events(1, fmt="cloudevents-binary")
    event.attributes["dicombridgeflags"] = "metadata-unavailable 100%"  # space and % encoded
    receiver = Receiver()
    await send(receiver, [event], format="cloudevents-binary")
    [request] = receiver.requests
    assert request.headers["ce-dicombridgeflags"] == "metadata-unavailable%20100%25"
    assert request.headers["content-type"] == "application/json"
    parsed = from_http(HTTPMessage(dict(request.headers), request.content), JSONFormat())
    attributes = parsed.get_attributes()
    assert attributes["time"].isoformat().startswith("2024-05-10T16:12:03.123456")
    for name, value in event.attributes.items():
        if name != "time":
            assert attributes[name] == value
    assert parsed.get_data() == event.entry.raw


# -- order and concurrency ------------------------------------------------------------------


async def test_a_study_is_sent_in_order_and_stops_at_its_first_failure() -> None:
    events = feed_events(12, studies=3)  # study 1.2.k gets sequences k, k+3, k+6, k+9
    failing = events[4]  # the second event of its study
    receiver = Receiver(
        lambda r: (
            httpx.Response(503, headers={"Retry-After": "3"})
            if sequence_of(r) == failing.entry.sequence
            else httpx.Response(204)
        )
    )
    outcomes = await send(receiver, events)

    later = [e for e in events[5:] if e.key == failing.key]
    for event, outcome in zip(events, outcomes, strict=True):
        if event is failing:
            assert isinstance(outcome, Transient) and outcome.retry_after == 3.0
        elif event in later:  # not sent: the route re-sends them after the failed one
            assert isinstance(outcome, Transient) and outcome.reason.startswith("not sent after")
            assert "answered 503" in outcome.reason and outcome.retry_after == 3.0
        else:
            assert outcome == DELIVERED
    sent = receiver.sequences()
    assert not {event.entry.sequence for event in later} & set(sent)
    for study in {event.key for event in events}:
        mine = [s for s in sent if any(e.entry.sequence == s and e.key == study for e in events)]
        assert mine == sorted(mine)


async def test_concurrency_is_limited_across_all_sends_of_the_sink() -> None:
    in_flight = peak = 0

    async def slow(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)  # the receiver's service time
        in_flight -= 1
        return httpx.Response(204)

    sink = make_sink(Receiver(slow), concurrency=3)
    await sink.open()
    batches = [feed_events(20, studies=10, first=1), feed_events(20, studies=10, first=21)]
    results = await asyncio.gather(*(sink.send(batch) for batch in batches))
    await sink.close()
    assert all(outcome == DELIVERED for result in results for outcome in result)
    assert peak == 3


async def test_a_fatal_answer_cancels_the_other_lanes() -> None:
    cancelled = asyncio.Event()

    async def answer(request):
        if sequence_of(request) == 1:
            await asyncio.sleep(0.01)
            return httpx.Response(410)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(SinkFatalError, match="410 Gone"):
        await send(Receiver(answer), feed_events(2, studies=2))
    assert cancelled.is_set()


# -- batches --------------------------------------------------------------------------------


async def test_batches_are_json_arrays_with_a_deterministic_id() -> None:
    receiver = Receiver()
    events = feed_events(7, studies=2)
    assert await send(receiver, events, batch=3) == [DELIVERED] * 7
    assert await send(receiver, events, batch=3) == [DELIVERED] * 7
    first, again = receiver.requests[:3], receiver.requests[3:]
    assert [len(json.loads(r.content)) for r in first] == [3, 3, 1]
    assert [json.loads(r.content)[0]["data"]["sequence"] for r in first] == [1, 4, 7]
    assert {r.headers["content-type"] for r in first} == {
        "application/cloudevents-batch+json; charset=utf-8"
    }
    ids = [r.headers["webhook-id"] for r in first]
    assert ids == [r.headers["webhook-id"] for r in again]
    assert ids[0] == batch_webhook_id([e.id for e in events[:3]])
    assert len(set(ids)) == 3 and all(i.startswith("batch_") and "." not in i for i in ids)
    Webhook(SECRET).verify(first[0].content, dict(first[0].headers))


async def test_a_failed_batch_holds_back_later_batches_of_its_studies_only() -> None:
    # chunks of 2: [1, 2] and [3, 4] share studies 1.2.1 and 1.2.0; [103, 104] does not
    events = feed_events(4, studies=2) + feed_events(2, studies=7, first=103)
    receiver = Receiver(
        lambda r: (
            httpx.Response(503)
            if json.loads(r.content)[0]["data"]["sequence"] == 1
            else httpx.Response(204)
        )
    )
    outcomes = await send(receiver, events, batch=2)
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "Transient",
        "Transient",
        "Transient",
        "Transient",
        "Delivered",
        "Delivered",
    ]
    assert outcomes[2].reason.startswith("not sent after")
    assert len(receiver.requests) == 2


# -- check and secrecy ----------------------------------------------------------------------


async def test_check_sends_options_and_accepts_any_answer_but_refusals() -> None:
    receiver = Receiver(lambda r: httpx.Response(405))
    assert await make_sink(receiver).check() == (
        "webhook https://hooks.example/dicom: reachable (OPTIONS answered 405 Method Not Allowed)"
    )
    assert receiver.requests[0].method == "OPTIONS"
    for status, phrase in ((401, "Unauthorized"), (403, "Forbidden"), (410, "Gone")):
        sink = make_sink(Receiver(lambda r, status=status: httpx.Response(status)))
        with pytest.raises(SinkError, match=f"OPTIONS answered {status} {phrase}"):
            await sink.check()


async def test_check_fails_when_unreachable_or_silent() -> None:
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(SinkError, match="ConnectError"):
        await make_sink(Receiver(refuse)).check()

    async def stall(request):
        await asyncio.Event().wait()

    with pytest.raises(SinkError, match=r"no answer within 0\.05s"):
        await make_sink(Receiver(stall), timeout="50ms").check()


async def test_an_unreadable_ca_file_fails_open_with_one_line(tmp_path) -> None:
    sink = make_sink(Receiver(), tls={"ca_file": tmp_path / "missing.pem"})
    with pytest.raises(SinkError, match="cannot load the TLS files") as caught:
        await sink.open()
    assert not isinstance(caught.value, SinkFatalError)


async def test_no_secret_appears_in_outcomes_errors_or_repr() -> None:
    options = {"bearer_token": "t0k3n", "headers": {"X-Api-Key": "k3yv4l"}}
    answers = iter(
        [
            httpx.Response(400, text="bad"),
            httpx.Response(503),
            httpx.Response(301, headers={"Location": "/elsewhere?code=urlkey"}),
        ]
    )
    reasons = [
        outcome.reason
        for outcome in await send(
            Receiver(lambda r: next(answers)), feed_events(3, studies=3), **options
        )
    ]
    with pytest.raises(SinkFatalError) as fatal:
        await send(Receiver(lambda r: httpx.Response(401)), feed_events(1), **options)
    sink = make_sink(Receiver(), **options)
    shown = " ".join([*reasons, str(fatal.value), repr(sink), repr(sink._signer)])
    assert "https://hooks.example/dicom" in shown
    for secret in ("t0k3n", "k3yv4l", "urlkey", SECRET.removeprefix("whsec_")):
        assert secret not in shown


def test_webhook_ids_have_no_dots_and_decode_to_the_event_id() -> None:
    event_id = "my.host:8080/Microsoft.Default/42%"
    assert webhook_id(event_id) == "my%2Ehost:8080/Microsoft%2EDefault/42%25"
    assert unquote(webhook_id(event_id)) == event_id
    assert batch_webhook_id(["a.b/1", "a.b/2"]) == batch_webhook_id(["a.b/1", "a.b/2"])
    assert batch_webhook_id(["a.b/1", "a.b/2"]) != batch_webhook_id(["a.b/2", "a.b/1"])


async def test_an_empty_batch_sends_nothing() -> None:
    receiver = Receiver()
    assert await send(receiver, []) == []
    assert receiver.requests == []
