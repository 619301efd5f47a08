"""The machine's PostgreSQL (127.0.0.1:5432, trust for `postgres`): a database of the
test's own, created empty and dropped afterwards (connections still open are ended)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"


def dsn(database: str, *, host: str = HOST, port: int = PORT) -> str:
    return f"postgresql://{USER}@{host}:{port}/{database}"


@contextlib.contextmanager
def temporary_database() -> Iterator[str]:
    """The name of a new, empty database."""
    name = f"bridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
