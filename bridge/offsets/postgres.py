"""Cursors and the replicas' lease in PostgreSQL (13 or later), on psycopg 3's async client.

Two tables, created if missing: the cursors, one row per (feed, sink), and the leases, one
row per feed with its owner (a replica id), its epoch (raised on every change of owner) and
its expiry by the server's clock, so the replicas' clocks need not agree. A commit is one
upsert; a fenced commit (`epoch` given) is the same upsert joined to the lease row locked
`FOR SHARE`, in one statement: a replica that took the lease over (its `acquire` locks the
row for update) either sees that commit or refuses it, never half of it.

One connection serves every route and the lease (each statement takes milliseconds), one
statement at a time. Once the store has connected, a lost connection is retried with
backoff until it comes back: the route waits, and a commit retried is the same write (a
route's commits are sequential, so a retried one can never overwrite a later one). Before
that first connection an error is reported at once (a wrong DSN, `dicom-bridge check`).
A statement the server does not answer within `connect_timeout` counts as a lost
connection (a network cut leaves a socket that never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bridge.core.backoff import Backoff
from bridge.core.redact import scrub
from bridge.offsets import Fingerprint, LeaseLost, LeaseState, OffsetStoreError, StoredOffset

if TYPE_CHECKING:
    from bridge.config import PostgresOffsetsConfig

T = TypeVar("T")
_Rows = list[tuple[Any, ...]]  # `list` is a method of the store
log = logging.getLogger("bridge.offsets")
_COLUMNS = "feed, sink, position, sequence, updated_at, fingerprint"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {offsets} (
    feed TEXT NOT NULL,
    sink TEXT NOT NULL,
    position TEXT NOT NULL,
    sequence BIGINT,
    updated_at TIMESTAMPTZ NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (feed, sink)
);
CREATE TABLE IF NOT EXISTS {leases} (
    feed TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)
"""
_UPSERT = """
ON CONFLICT (feed, sink) DO UPDATE SET
    position = excluded.position, sequence = excluded.sequence,
    updated_at = excluded.updated_at, fingerprint = excluded.fingerprint
"""
_COMMIT = "INSERT INTO {offsets} (" + _COLUMNS + ") VALUES (%s, %s, %s, %s, now(), %s)" + _UPSERT
_FENCED_COMMIT = (
    "WITH lease AS (SELECT 1 FROM {leases} WHERE feed = %s AND epoch = %s FOR SHARE) "
    "INSERT INTO {offsets} (" + _COLUMNS + ") SELECT %s, %s, %s, %s, now(), %s FROM lease" + _UPSERT
)
_ACQUIRE = """
INSERT INTO {leases} AS lease (feed, owner, epoch, expires_at)
VALUES (%(feed)s, %(owner)s, 1, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (feed) DO UPDATE SET
    owner = excluded.owner, epoch = lease.epoch + 1, expires_at = excluded.expires_at
WHERE lease.expires_at <= now() OR lease.owner = excluded.owner
RETURNING epoch
"""
_RENEW = """
UPDATE {leases} SET expires_at = now() + make_interval(secs => %s)
WHERE feed = %s AND owner = %s AND epoch = %s
"""
_RELEASE = "UPDATE {leases} SET expires_at = now() WHERE feed = %s AND owner = %s AND epoch = %s"


class PostgresOffsetStore:
    def __init__(self, config: PostgresOffsetsConfig) -> None:
        self._config = config
        try:
            params = conninfo_to_dict(self._conninfo())
        except psycopg.Error as exc:
            raise OffsetStoreError(f"offset store: invalid postgres dsn: {_reason(exc)}") from None
        self.name = (
            f"postgres {params.get('host', 'localhost')}:{params.get('port', 5432)}/"
            f"{params.get('dbname', params.get('user', ''))} table {config.table}"
        )
        self._timeout = config.connect_timeout
        self._tables = {
            "offsets": sql.Identifier(config.table),
            "leases": sql.Identifier(f"{config.table}_leases"),
        }
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._connected_once = False
        self._closed = False
        self._lock = asyncio.Lock()
        self._backoff = Backoff(0.2, 5.0)

    # -- cursors --------------------------------------------------------------------------

    async def load(self, feed: str, sink: str) -> StoredOffset | None:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {{offsets}} WHERE feed = %s AND sink = %s", (feed, sink)
        )
        return _offset(rows[0]) if rows else None

    async def commit(
        self,
        feed: str,
        sink: str,
        position: str,
        sequence: int | None,
        fingerprint: Fingerprint | None = None,
        epoch: int | None = None,
    ) -> None:
        row = (feed, sink, position, sequence, fingerprint and fingerprint.encode())
        if epoch is None:
            await self._execute(_COMMIT, row)
        elif await self._execute(_FENCED_COMMIT, (feed, epoch, *row)) == 0:
            raise LeaseLost(
                f"offset store {self.name}: the lease of feed {feed!r} is no longer epoch "
                f"{epoch} (another replica took it over): commit refused"
            )

    async def adopt(self, feed: str, legacy: str) -> list[str]:
        async def adopt(connection: psycopg.AsyncConnection[Any]) -> list[str]:
            async with connection.transaction():
                moved = await connection.execute(
                    self._sql(
                        "UPDATE {offsets} AS old SET feed = %s WHERE feed = %s AND NOT EXISTS "
                        "(SELECT 1 FROM {offsets} AS new WHERE new.feed = %s "
                        "AND new.sink = old.sink) RETURNING sink"
                    ),
                    (feed, legacy, feed),
                )
                sinks = sorted(sink for (sink,) in await moved.fetchall())
                await connection.execute(
                    self._sql("DELETE FROM {offsets} WHERE feed = %s"), (legacy,)
                )
            return sinks

        if feed == legacy:
            return []
        return await self._run(adopt)

    async def list(self, feed: str | None = None) -> list[StoredOffset]:
        where, args = ("WHERE feed = %s", (feed,)) if feed is not None else ("", ())
        query = f"SELECT {_COLUMNS} FROM {{offsets}} {where} ORDER BY feed, sink"
        return [_offset(row) for row in await self._fetch(query, args)]

    async def delete(self, feed: str, sink: str) -> bool:
        query = "DELETE FROM {offsets} WHERE feed = %s AND sink = %s"
        return await self._execute(query, (feed, sink)) > 0

    async def check(self) -> str:
        rows = await self._fetch("SELECT count(*) FROM {offsets}", ())
        return f"{self.name}: writable, {rows[0][0]} cursor(s)"

    # -- the lease ------------------------------------------------------------------------

    async def acquire(self, feed: str, owner: str, ttl: float) -> int | None:
        rows = await self._fetch(_ACQUIRE, {"feed": feed, "owner": owner, "ttl": ttl})
        return int(rows[0][0]) if rows else None

    async def renew(self, feed: str, owner: str, epoch: int, ttl: float) -> None:
        if await self._execute(_RENEW, (ttl, feed, owner, epoch)) == 0:
            raise LeaseLost(
                f"offset store {self.name}: the lease of feed {feed!r} is no longer "
                f"{owner}'s epoch {epoch}: another replica took it over"
            )

    async def release(self, feed: str, owner: str, epoch: int) -> None:
        await self._execute(_RELEASE, (feed, owner, epoch))

    async def holder(self, feed: str) -> LeaseState | None:
        rows = await self._fetch(
            "SELECT feed, owner, epoch, expires_at FROM {leases} WHERE feed = %s", (feed,)
        )
        return LeaseState(*rows[0]) if rows else None

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            await self._disconnect()

    # -- the connection -------------------------------------------------------------------

    def _conninfo(self) -> str:
        """The DSN with the settings of the config; the password read now (a mounted
        secret file that changed is read again at the next connection)."""
        config = self._config
        extra: dict[str, Any] = {"application_name": "dicom-bridge"}
        extra["connect_timeout"] = max(1, round(config.connect_timeout))
        if config.password is not None:
            extra["password"] = config.password.get_secret_value()
        if config.sslmode is not None:
            extra["sslmode"] = config.sslmode
        return make_conninfo(config.dsn.get_secret_value(), **extra)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(**self._tables)

    async def _execute(self, query: str, args: Any) -> int:
        """Run `query`; the number of rows it wrote."""

        async def execute(connection: psycopg.AsyncConnection[Any]) -> int:
            return (await connection.execute(self._sql(query), args)).rowcount

        return await self._run(execute)

    async def _fetch(self, query: str, args: Any) -> _Rows:
        async def fetch(connection: psycopg.AsyncConnection[Any]) -> _Rows:
            return await (await connection.execute(self._sql(query), args)).fetchall()

        return await self._run(fetch)

    async def _run(self, call: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """`call` on the connection (opened, with the tables, when needed); retried while
        the connection is lost, once the store has connected."""
        attempt = 0
        while True:
            if self._closed:
                raise OffsetStoreError(f"offset store {self.name}: closed")
            async with self._lock:
                try:
                    async with asyncio.timeout(self._timeout):
                        return await call(await self._connect())
                except (psycopg.OperationalError, TimeoutError, OSError) as exc:
                    await self._disconnect()
                    problem = _reason(exc) if not isinstance(exc, TimeoutError) else None
                    problem = problem or f"no answer within {self._timeout:g}s"
                    if not self._connected_once:
                        raise OffsetStoreError(f"offset store {self.name}: {problem}") from None
                except psycopg.Error as exc:
                    raise OffsetStoreError(f"offset store {self.name}: {_reason(exc)}") from None
                except asyncio.CancelledError:
                    await self._disconnect()  # a statement cut short: its state is unknown
                    raise
            delay = self._backoff.delay(attempt)
            attempt += 1
            log.warning(
                "offset store %s: %s; retrying in %.1fs (the routes wait)",
                self.name,
                problem,
                delay,
            )
            await asyncio.sleep(delay)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            connection = await psycopg.AsyncConnection.connect(self._conninfo(), autocommit=True)
            try:
                async with connection.transaction():
                    # Replicas starting together: one creates the tables, the others wait.
                    await connection.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (str(self._tables),)
                    )
                    await connection.execute(self._sql(_SCHEMA))
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
            if self._connected_once:
                log.info("offset store %s: connected again", self.name)
            self._connected_once = True
        return self._connection

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 1)


def _reason(exc: BaseException) -> str:
    """psycopg's message on one line, with any password masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return scrub(text)


def _offset(row: tuple[Any, ...]) -> StoredOffset:
    feed, sink, position, sequence, updated_at, fingerprint = row
    return StoredOffset(feed, sink, position, sequence, updated_at, Fingerprint.decode(fingerprint))


def open_store(config: PostgresOffsetsConfig) -> PostgresOffsetStore:
    return PostgresOffsetStore(config)
