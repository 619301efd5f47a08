"""The PostgreSQL offset store beyond the contract: its config, its errors, and a database
that goes away under it (a TCP proxy cut)."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import Iterator

import pytest

from bridge.config import ConfigError, PostgresOffsetsConfig, parse_config
from bridge.core.redact import scrub
from bridge.offsets import OffsetStoreError, open_store
from tests.peers import postgres
from tests.peers.tcp_proxy import TcpProxy

FEED = "hospital"


def _config(offsets: str, more: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        feed: {{url: "http://127.0.0.1:1"}}
        offsets: {offsets}
        sinks: [{{name: a, type: file, path: out.jsonl}}]
        """
        )
        + more
    )


def test_the_config_of_a_postgres_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASS_FOR_TEST", "s3cret-pass")
    config = parse_config(
        _config(
            '{type: postgres, dsn: "postgresql://bridge@db:5432/bridge", '
            'password: "${PGPASS_FOR_TEST}", sslmode: verify-full}',
            "ha: {lease_ttl: 6s}\n",
        )
    )
    offsets = config.offsets
    assert isinstance(offsets, PostgresOffsetsConfig)
    assert offsets.password is not None and offsets.password.get_secret_value() == "s3cret-pass"
    assert "s3cret-pass" not in repr(config)
    assert (offsets.table, offsets.sslmode) == ("dicom_bridge_offsets", "verify-full")
    assert config.ha is not None and (config.ha.lease_ttl, config.ha.interval) == (6, 2)


def test_ha_is_refused_with_sqlite() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config("{path: state/offsets.db}", "ha: {lease_ttl: 15s}\n"))
    assert "ha: needs a shared offset store" in str(caught.value)
    assert len(str(caught.value).strip().splitlines()) == 1


def test_a_renew_interval_too_long_for_the_ttl_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            _config(
                '{type: postgres, dsn: "postgresql://x@h/d"}',
                "ha: {lease_ttl: 10s, renew_interval: 6s}\n",
            )
        )
    assert "renew_interval: must be at most half of lease_ttl (5s)" in str(caught.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://bridge:hunter22@db/bridge",
        "host=db user=bridge password=hunter22 dbname=bridge",
        "host=db password = 'hunter22' dbname=bridge",
    ],
)
def test_a_password_in_the_dsn_is_masked(dsn: str) -> None:
    config = PostgresOffsetsConfig(type="postgres", dsn=dsn)
    assert "hunter22" not in repr(config) and "hunter22" not in str(config.model_dump())
    assert "hunter22" not in scrub(f"connection failed: password hunter22 refused ({dsn})")


async def test_an_unreachable_database_is_reported_at_once_before_the_first_connection() -> None:
    store = open_store(
        PostgresOffsetsConfig(
            type="postgres", dsn="postgresql://postgres:pw-never-shown@127.0.0.1:1/x"
        )
    )
    try:
        with pytest.raises(OffsetStoreError) as caught:
            await store.check()
    finally:
        await store.close()
    message = str(caught.value)
    assert message.startswith("offset store postgres 127.0.0.1:1/x table dicom_bridge_offsets:")
    assert "\n" not in message and "pw-never-shown" not in message


def test_an_invalid_dsn_is_one_line() -> None:
    with pytest.raises(OffsetStoreError, match="invalid postgres dsn"):
        open_store(PostgresOffsetsConfig(type="postgres", dsn="host=127.0.0.1 port"))


@pytest.fixture
def database() -> Iterator[str]:
    with postgres.temporary_database() as name:
        yield name


async def test_a_custom_table(database: str) -> None:
    dsn = postgres.dsn(database)
    store = open_store(PostgresOffsetsConfig(type="postgres", dsn=dsn, table="cursors"))
    try:
        await store.commit(FEED, "a", "1", 1)
        assert await store.acquire(FEED, "me", 10) == 1  # type: ignore[attr-defined]
    finally:
        await store.close()
    import psycopg

    with psycopg.connect(dsn) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    assert tables == [("cursors",), ("cursors_leases",)]


async def test_replicas_creating_the_tables_together(database: str) -> None:
    config = PostgresOffsetsConfig(type="postgres", dsn=postgres.dsn(database))
    stores = [open_store(config) for _ in range(4)]
    try:
        await asyncio.gather(*(s.commit(FEED, f"s{n}", "1", 1) for n, s in enumerate(stores)))
        assert len(await stores[0].list()) == 4
    finally:
        for store in stores:
            await store.close()


async def test_a_commit_waits_through_an_outage_and_lands(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "bridge.offsets")
    with TcpProxy(postgres.PORT) as proxy:
        dsn = postgres.dsn(database, port=proxy.port)
        store = open_store(PostgresOffsetsConfig(type="postgres", dsn=dsn, connect_timeout="2s"))
        try:
            await store.commit(FEED, "a", "1", 1)
            proxy.cut()
            committing = asyncio.create_task(store.commit(FEED, "a", "2", 2))
            async with asyncio.timeout(20):  # several attempts refused meanwhile
                while sum("retrying in" in r.message for r in caplog.records) < 3:
                    await asyncio.sleep(0.05)
            assert not committing.done()
            assert "(the routes wait)" in caplog.records[-1].message
            proxy.restore()
            await asyncio.wait_for(committing, 20)
            stored = await store.load(FEED, "a")
            assert stored is not None and stored.sequence == 2
            assert proxy.connections >= 2
        finally:
            await store.close()
