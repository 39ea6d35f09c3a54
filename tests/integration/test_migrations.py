"""Every database's Alembic history against the real PostgreSQL: a fresh database upgraded to
head holds exactly what the models describe (Alembic's drift check), and a database made the
old way, by `create_all` at start, is stamped and upgraded in place with every row kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from apikeys import create_key
from devstack import migrations as devstack_migrations
from devstack.migrations import HISTORIES
from devstack.stack import Stack
from events import migrations, tenancy
from events.migrations import Schema
from events.tables import InboxEntry, OutboxMessage

pytestmark = pytest.mark.integration

each_history = pytest.mark.parametrize("history", sorted(HISTORIES.values()))


@pytest.fixture
async def empty_database(infra: Stack) -> AsyncIterator[str]:
    """The owner's URL of a new, empty database, dropped afterwards."""
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.database_dsn("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(infra.database_url("postgres")).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def in_database(url: str, work: Callable[[Connection], Any]) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def contents(schema: Schema) -> Callable[[Connection], dict[str, list[tuple[Any, ...]]]]:
    def read(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
        return {
            name: sorted(tuple(row) for row in connection.execute(select(table)))
            for metadata in schema.metadata
            for name, table in metadata.tables.items()
        }

    return read


@each_history
async def test_a_fresh_database_upgraded_to_head_has_no_drift_from_the_models(
    history: str, empty_database: str
) -> None:
    schema = migrations.load(history)
    await migrations.upgrade(schema, empty_database, deadline_s=0)

    revisions = await in_database(empty_database, migrations.current_revisions)
    assert revisions == schema.heads()
    # `alembic check`: autogenerate finds nothing to add, drop or alter.
    await in_database(empty_database, lambda sync: command.check(schema.config(sync)))


@each_history
async def test_a_database_made_by_create_all_at_start_is_stamped_and_keeps_every_row(
    history: str, empty_database: str
) -> None:
    schema = migrations.load(history)

    def old_start(connection: Connection) -> None:
        """What a service's start did before migrations, with some rows written since."""
        for metadata in schema.metadata:
            metadata.create_all(connection)
        if schema.service is not None:
            connection.execute(insert(InboxEntry), [{"event_id": uuid.uuid4()} for _ in range(3)])
            connection.execute(
                insert(OutboxMessage), [{"topic": "t", "key": b"k", "value": b"v", "headers": []}]
            )

    await in_database(empty_database, old_start)
    engine = create_async_engine(empty_database)
    try:
        if schema.service is not None:
            async with engine.begin() as connection:
                role = tenancy.tenant_role(schema.service)
                await tenancy.install_row_security(connection, schema.metadata, role)
        else:
            async with AsyncSession(engine) as session, session.begin():
                await create_key(session, name="before", scopes=["admin"], roles=["admin"])
    finally:
        await engine.dispose()
    before = await in_database(empty_database, contents(schema))
    assert sum(len(rows) for rows in before.values()) > 0

    await migrations.upgrade(schema, empty_database, deadline_s=0)

    assert await in_database(empty_database, migrations.current_revisions) == schema.heads()
    assert await in_database(empty_database, contents(schema)) == before
    # Done again (the next `make up`), it changes nothing.
    await migrations.upgrade(schema, empty_database, deadline_s=0)
    assert await in_database(empty_database, contents(schema)) == before


async def test_a_service_starts_only_on_a_current_schema(empty_database: str) -> None:
    schema = migrations.load("validator.migrations")
    engine = create_async_engine(empty_database)
    try:
        with pytest.raises(RuntimeError, match=r"events\.migrations upgrade validator\.migrations"):
            await migrations.wait_until_current(engine, schema, deadline_s=0)
        await migrations.upgrade(schema, empty_database, deadline_s=0)
        await migrations.wait_until_current(engine, schema, deadline_s=0)
        # A newer release's revision, unknown to this code, keeps it working: it starts.
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = 'future'"))
        await migrations.wait_until_current(engine, schema, deadline_s=0)
    finally:
        await engine.dispose()


@each_history
def test_make_ups_quick_read_of_a_head_agrees_with_alembic(history: str) -> None:
    # `make up` skips a database at head without starting Alembic: it reads the files.
    assert devstack_migrations.head_of(history) == migrations.load(history).heads()
