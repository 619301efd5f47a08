"""The azure_blob offset store against Azurite (a real emulator on loopback): the store
contract (load/commit/adopt/list/delete/check), compare-and-swap between two clients,
the lease and its fencing, and the engine restarting mid-commit.

Every test takes `open_blob_store`, a factory of stores on one container of its own: the
shape a parametrised store-contract suite can take over (one factory per backend).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.config.models import AzureBlobOffsetsConfig
from bridge.offsets import Fingerprint, LeaseLost, OffsetStoreError, open_store
from bridge.offsets.azure_blob import AzureBlobOffsetStore
from tests.peers.azurite import AzuriteProcess

Opener = Callable[..., AzureBlobOffsetStore]
FEED = "myws-mydicom.dicom.azurehealthcareapis.com"


def _opener(offsets: dict[str, Any], opened: list[AzureBlobOffsetStore]) -> Opener:
    def open_one(**options: Any) -> AzureBlobOffsetStore:
        store = open_store(AzureBlobOffsetsConfig.model_validate({**offsets, **options}))
        assert isinstance(store, AzureBlobOffsetStore)
        opened.append(store)
        return store

    return open_one


@pytest.fixture
async def open_blob_store(azurite_offsets: dict[str, Any]) -> AsyncIterator[Opener]:
    """Factory: a new client (store) on the test's container; all closed at teardown."""
    opened: list[AzureBlobOffsetStore] = []
    yield _opener(azurite_offsets, opened)
    for store in opened:
        await store.close()


async def _poll(condition: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


# -- the store contract -------------------------------------------------------------------


async def test_commit_load_list_delete(open_blob_store: Opener) -> None:
    store = open_blob_store()
    assert await store.load(FEED, "kafka") is None
    fingerprint = Fingerprint(41, "2026-01-01T00:00:00Z", "1.2.3")
    await store.commit(FEED, "kafka", "41", 41, fingerprint)
    await store.commit(FEED, "kafka", "42", 42)
    await store.commit(FEED, "a/b c", "7", None)
    await store.commit("other:feed", "kafka", "1", 1)

    loaded = await store.load(FEED, "kafka")
    assert loaded is not None
    assert (loaded.position, loaded.sequence, loaded.fingerprint) == ("42", 42, None)
    assert loaded.updated_at.tzinfo is not None
    rows = [(row.feed, row.sink, row.position) for row in await store.list()]
    assert rows == [(FEED, "a/b c", "7"), (FEED, "kafka", "42"), ("other:feed", "kafka", "1")]
    assert [row.sink for row in await store.list(FEED)] == ["a/b c", "kafka"]

    await store.commit(FEED, "kafka", "43", 43, fingerprint)
    again = await open_blob_store().load(FEED, "kafka")  # another client sees it
    assert again is not None and again.fingerprint == fingerprint

    assert await store.delete(FEED, "kafka") is True
    assert await store.delete(FEED, "kafka") is False
    assert await store.load(FEED, "kafka") is None
    assert "writable, 2 cursor(s)" in await store.check()


async def test_adopt_moves_legacy_cursors_unless_taken(open_blob_store: Opener) -> None:
    store = open_blob_store()
    await store.commit("legacy", "kafka", "5", 5)
    await store.commit("legacy", "webhook", "6", 6)
    await store.commit(FEED, "webhook", "9", 9)
    assert await store.adopt(FEED, "legacy") == ["kafka"]
    assert [(r.sink, r.position) for r in await store.list(FEED)] == [
        ("kafka", "5"),
        ("webhook", "9"),
    ]
    assert await store.list("legacy") == []


async def test_check_creates_the_container(open_blob_store: Opener) -> None:
    assert "writable, 0 cursor(s)" in await open_blob_store().check()


# -- compare-and-swap ---------------------------------------------------------------------


async def test_two_clients_racing_never_fail_and_one_wins(open_blob_store: Opener) -> None:
    first, second = open_blob_store(), open_blob_store()
    await first.commit(FEED, "kafka", "0", 0)
    await second.load(FEED, "kafka")  # both now know the same version

    async def commits(store: AzureBlobOffsetStore, base: int) -> None:
        for n in range(10):
            await store.commit(FEED, "kafka", str(base + n), base + n)

    await asyncio.gather(commits(first, 100), commits(second, 200))
    final = await first.load(FEED, "kafka")
    assert final is not None and final.position in {"109", "209"}


async def test_a_write_lost_in_transit_is_not_written_again(
    open_blob_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first attempt lands but its answer is lost: the retry finds the condition failed
    and its own nonce in the blob, so the commit succeeds once."""
    from azure.core.exceptions import ServiceResponseError

    store = open_blob_store()
    await store.commit(FEED, "kafka", "1", 1)
    container = store.blobs.container
    real = container.get_blob_client
    failed: list[bool] = []

    def client(name: str) -> Any:
        blob = real(name)
        upload = blob.upload_blob

        async def landed_but_lost(*args: Any, **kwargs: Any) -> Any:
            result = await upload(*args, **kwargs)
            if not failed:
                failed.append(True)
                raise ServiceResponseError("connection reset")
            return result

        blob.upload_blob = landed_but_lost
        return blob

    monkeypatch.setattr(container, "get_blob_client", client)
    await store.commit(FEED, "kafka", "2", 2)
    assert failed
    loaded = await open_blob_store().load(FEED, "kafka")
    assert loaded is not None and loaded.position == "2"


# -- the lease and fencing ----------------------------------------------------------------


async def test_lease_acquire_renew_release(open_blob_store: Opener) -> None:
    one, two = open_blob_store(), open_blob_store()
    assert await one.holder(FEED) is None
    assert await one.acquire(FEED, "one", 30) == 1
    assert await two.acquire(FEED, "two", 30) is None
    assert await one.acquire(FEED, "one", 30) == 2  # its own, taken anew: a new term
    await one.renew(FEED, "one", 2, 30)
    holder = await two.holder(FEED)
    assert holder is not None and (holder.owner, holder.epoch) == ("one", 2)
    with pytest.raises(LeaseLost):
        await one.renew(FEED, "one", 1, 30)
    with pytest.raises(LeaseLost):
        await two.renew(FEED, "two", 2, 30)

    await one.release(FEED, "one", 2)
    assert await two.acquire(FEED, "two", 30) == 3
    with pytest.raises(LeaseLost, match="epoch 2 is stale"):
        await one.renew(FEED, "one", 2, 30)
    await one.release(FEED, "one", 2)  # no longer its own: left alone
    holder = await one.holder(FEED)
    assert holder is not None and (holder.owner, holder.epoch) == ("two", 3)


async def test_concurrent_commits_of_one_cursor_land_in_call_order(
    open_blob_store: Opener,
) -> None:
    store = open_blob_store()
    await asyncio.gather(*(store.commit(FEED, "a", str(n), n) for n in range(1, 31)))
    stored = await open_blob_store().load(FEED, "a")
    assert stored is not None and stored.sequence == 30


async def test_an_expired_lease_is_taken_over_by_the_services_clock(
    open_blob_store: Opener,
) -> None:
    one, two = open_blob_store(), open_blob_store()
    assert await one.acquire(FEED, "one", 1) == 1
    assert await two.acquire(FEED, "two", 1) is None
    taken: list[int | None] = []

    async def take() -> bool:
        taken.append(await two.acquire(FEED, "two", 30))
        return taken[-1] is not None

    await _poll(take, timeout=15)
    assert taken[-1] == 2
    with pytest.raises(LeaseLost):
        await one.renew(FEED, "one", 1, 30)


async def test_a_stale_epoch_cannot_commit(open_blob_store: Opener) -> None:
    old, new = open_blob_store(), open_blob_store()
    assert await old.acquire(FEED, "old", 30) == 1
    await old.commit(FEED, "kafka", "10", 10, epoch=1)
    await old.release(FEED, "old", 1)
    with pytest.raises(LeaseLost, match="released"):
        await old.commit(FEED, "kafka", "11", 11, epoch=1)

    assert await new.acquire(FEED, "new", 30) == 2
    loaded = await new.load(FEED, "kafka")
    assert loaded is not None and loaded.position == "10"
    with pytest.raises(LeaseLost, match="epoch 1 is stale"):
        await old.commit(FEED, "kafka", "12", 12, epoch=1)
    await new.commit(FEED, "kafka", "20", 20, epoch=2)
    loaded = await open_blob_store().load(FEED, "kafka")
    assert loaded is not None and loaded.position == "20"


async def test_fencing_holds_even_when_the_lease_check_is_passed(
    open_blob_store: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the stale leader read the lease just before the take-over. Once the new
    leader's routes loaded their cursors (stamped: an existing one, and a placeholder for
    one not yet written), the cursor blobs themselves refuse the stale leader's writes."""
    old, new = open_blob_store(), open_blob_store()
    assert await old.acquire(FEED, "old", 1) == 1
    await old.commit(FEED, "kafka", "10", 10, epoch=1)

    async def passed(feed: str, epoch: int) -> None:
        return None

    monkeypatch.setattr(old, "_check_lease", passed)
    await _poll(lambda: new.acquire(FEED, "new", 30))  # once expired: epoch 2
    await old.commit(FEED, "kafka", "11", 11, epoch=1)  # lands before the new term's load
    loaded = await new.load(FEED, "kafka")  # ... which therefore sees it
    assert loaded is not None and loaded.position == "11"
    assert await new.load(FEED, "webhook") is None  # a placeholder, stamped 2

    with pytest.raises(LeaseLost, match="written under epoch 2"):
        await old.commit(FEED, "kafka", "12", 12, epoch=1)
    with pytest.raises(LeaseLost, match="written under epoch 2"):
        await old.commit(FEED, "webhook", "12", 12, epoch=1)
    assert [(r.sink, r.position) for r in await new.list(FEED)] == [("kafka", "11")]
    await new.commit(FEED, "webhook", "30", 30, epoch=2)
    assert [(r.sink, r.position) for r in await new.list(FEED)] == [
        ("kafka", "11"),
        ("webhook", "30"),
    ]


async def test_a_load_after_a_take_over_is_refused(open_blob_store: Opener) -> None:
    """Paused between its acquire and its routes' loads, a replica finds its cursors
    stamped by the next leader: LeaseLost, not a cursor to deliver from."""
    old, new = open_blob_store(), open_blob_store()
    await new.commit(FEED, "kafka", "5", 5)
    assert await old.acquire(FEED, "old", 1) == 1
    await _poll(lambda: new.acquire(FEED, "new", 30))
    loaded = await new.load(FEED, "kafka")
    assert loaded is not None and loaded.position == "5"
    with pytest.raises(LeaseLost, match="written under epoch 2"):
        await old.load(FEED, "kafka")


async def test_replicas_racing_for_a_free_lease_one_wins(open_blob_store: Opener) -> None:
    stores = [open_blob_store() for _ in range(4)]
    won = await asyncio.gather(*(s.acquire(FEED, f"r{n}", 30) for n, s in enumerate(stores)))
    assert sorted(won, key=str) == [1, None, None, None]
    holder = await stores[0].holder(FEED)
    assert holder is not None and holder.owner == f"r{won.index(1)}"


async def test_a_commit_without_epoch_keeps_the_fence(open_blob_store: Opener) -> None:
    """`offsets set` (no epoch) under running replicas: the cursor keeps its epoch, so a
    stale leader is still refused at the cursor after it."""
    leader, operator = open_blob_store(), open_blob_store()
    assert await leader.acquire(FEED, "leader", 30) == 1
    await leader.commit(FEED, "kafka", "10", 10, epoch=1)
    await operator.commit(FEED, "kafka", "5", 5)
    found = await operator.blobs.get(operator._cursor(FEED, "kafka"))
    assert found is not None and (found.body["position"], found.body["epoch"]) == ("5", 1)


async def test_a_deleted_lease_blob_does_not_lock_the_feed_out(open_blob_store: Opener) -> None:
    """Cursors stamped with epoch 2, the lease blob deleted: the next holder takes epoch 3
    (past the cursors'), not 1, which every cursor would refuse."""
    first, second = open_blob_store(), open_blob_store()
    assert await first.acquire(FEED, "one", 30) == 1
    await first.commit(FEED, "kafka", "10", 10, epoch=1)
    await first.release(FEED, "one", 1)
    assert await second.acquire(FEED, "two", 30) == 2
    await second.load(FEED, "kafka")  # its route starts: the cursor is stamped 2
    lease = await second.blobs.get(second._lease(FEED))
    assert lease is not None and await second.blobs.delete(second._lease(FEED), lease.etag)

    third = open_blob_store()
    assert await third.acquire(FEED, "three", 30) == 3
    await third.load(FEED, "kafka")
    await third.commit(FEED, "kafka", "11", 11, epoch=3)
    with pytest.raises(LeaseLost):
        await second.commit(FEED, "kafka", "12", 12, epoch=2)


async def test_an_unreachable_service_fails_in_time_before_its_first_answer(
    open_blob_store: Opener,
) -> None:
    """A wrong endpoint (nothing listens there) fails `check` with one line instead of
    retrying for ever; only a service that answered once is waited for."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = open_blob_store(
        connection_string="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
        timeout="1s",
    )
    store.blobs.first_contact = 1.0
    with pytest.raises(OffsetStoreError, match=r"unreachable.*no answer for 1s") as caught:
        await store.check()
    assert "\n" not in str(caught.value)


def test_expiry_by_the_service_clock_allows_for_whole_seconds() -> None:
    """Last-Modified and Date are whole seconds: a lease written at 10.999 s (shown 10) and
    read at 13.0 s (shown 13) with a 3 s TTL has 0.001 s left, so it expires only when
    Date >= Last-Modified + TTL + 1 s."""
    from datetime import UTC, datetime, timedelta

    from bridge.offsets._blobs import Found
    from bridge.offsets.azure_blob import _expired, _expires_at

    written = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    body = {"owner": "a", "epoch": 1, "ttl": 3, "released": False}

    def lease(seconds_later: int, **more: Any) -> Found:
        read = written + timedelta(seconds=seconds_later)
        return Found({**body, **more}, '"e"', written, read)

    assert _expires_at(lease(0)) == written + timedelta(seconds=3)
    assert not _expired(lease(3))
    assert _expired(lease(4))
    assert _expired(lease(0, released=True))


def test_transport_errors_lose_url_queries() -> None:
    from azure.core.exceptions import ServiceRequestError

    from bridge.offsets._blobs import _classify

    error = ServiceRequestError("cannot connect to https://a.blob.core.windows.net/c?sig=SECRET x")
    transient, reason, _ = _classify(error)
    assert transient and "SECRET" not in reason and "a.blob.core.windows.net/c" in reason


# -- the engine restarting ----------------------------------------------------------------


async def test_commits_wait_out_an_engine_restart_and_lose_nothing(
    start_azurite: Callable[[], AzuriteProcess],
    azurite_container: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.offsets")
    azurite = start_azurite()
    opened: list[AzureBlobOffsetStore] = []
    store = _opener(azurite.offsets(azurite_container, timeout="2s"), opened)()
    try:
        await store.commit(FEED, "kafka", "1", 1)
        azurite.stop()
        commits = asyncio.create_task(_commit_range(store, 2, 20))

        async def retrying() -> bool:
            return any("retrying" in record.getMessage() for record in caplog.records)

        await _poll(retrying)
        assert not commits.done()
        await asyncio.to_thread(azurite.start)
        await asyncio.wait_for(commits, 60)
        loaded = await _opener(azurite.offsets(azurite_container), opened)().load(FEED, "kafka")
        assert loaded is not None and loaded.position == "20"
        assert any("connected again" in record.getMessage() for record in caplog.records)
    finally:
        for one in opened:
            await one.close()


async def _commit_range(store: AzureBlobOffsetStore, first: int, last: int) -> None:
    for n in range(first, last + 1):
        await store.commit(FEED, "kafka", str(n), n)


async def test_a_refusal_is_one_line_without_the_key(
    azurite: AzuriteProcess, azurite_container: str
) -> None:
    wrong = azurite.connection_string.replace("Eby8", "AAAA")
    store = open_store(
        AzureBlobOffsetsConfig.model_validate(
            {"type": "azure_blob", "container": azurite_container, "connection_string": wrong}
        )
    )
    try:
        with pytest.raises(OffsetStoreError) as caught:
            await store.check()
    finally:
        await store.close()
    message = str(caught.value)
    assert "403" in message and "\n" not in message and "AAAA" not in message


# -- config -------------------------------------------------------------------------------

_BASE = "feed: {url: http://127.0.0.1:1}\nsinks: [{type: stdout, name: out}]\noffsets: "


@pytest.mark.parametrize(
    ("offsets", "problem"),
    [
        ("{type: azure_blob, container: c01}", "exactly one of connection_string or account_url"),
        ("{type: azure_blob, container: Bad_Name, account_url: https://a.b}", "container name"),
        (
            "{type: azure_blob, container: abc, connection_string: 'AccountKey=s3cr3t'}",
            "not a storage connection string",
        ),
        (
            "{type: azure_blob, container: abc, account_url: 'AccountKey=s3cr3t;x=y'}",
            "connection string goes in connection_string",
        ),
        (
            "{type: azure_blob, container: abc, auth: azure, "
            "connection_string: 'AccountName=a;AccountKey=s3cr3t'}",
            "only with account_url",
        ),
    ],
)
def test_config_problems_are_named_without_secrets(offsets: str, problem: str) -> None:
    with pytest.raises(Exception) as caught:
        parse_config(_BASE + offsets)
    assert problem in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


async def test_account_url_opens_with_an_entra_identity() -> None:
    config = parse_config(
        _BASE + "{type: azure_blob, container: abc, account_url: "
        "'https://acct.blob.core.windows.net/', auth: azure, client_id: x}"
    )
    assert isinstance(config.offsets, AzureBlobOffsetsConfig)
    store = open_store(config.offsets)
    assert "acct.blob.core.windows.net/abc" in store.blobs.where  # type: ignore[attr-defined]
    await store.close()
