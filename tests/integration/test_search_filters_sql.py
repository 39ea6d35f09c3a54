"""The SCIM filter translator's SQL, run by the real PostgreSQL: what each filter matches."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from devstack.stack import Stack
from request_api.search.filters import case_insensitive, scim_filter_to_sql

pytestmark = pytest.mark.integration

things = Table(
    "search_filter_things",
    MetaData(),
    Column("id", Uuid, primary_key=True),
    Column("name", String(10), nullable=False),
    Column("status", String(30), nullable=False),
    Column("catalog_item", String(100), nullable=False),
    Column("user_name", String(100)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("monthly_cost", Float, nullable=False),
    Column("active", Boolean, nullable=False),
    prefixes=["TEMPORARY"],
)
ATTRIBUTES: dict[str, ColumnElement[Any]] = {
    "id": things.c.id,
    "status": things.c.status,
    "catalog_item": things.c.catalog_item,
    "userName": case_insensitive(things.c.user_name),
    "created_at": things.c.created_at,
    "expires_at": things.c.expires_at,
    "version": things.c.version,
    "monthly_cost": things.c.monthly_cost,
    "active": things.c.active,
}
A_ID = uuid.uuid4()
ROWS = [
    {
        "id": A_ID,
        "name": "a",
        "status": "completed",
        "catalog_item": "postgres_schema",
        "user_name": "Bjensen",
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "expires_at": None,
        "version": 1,
        "monthly_cost": 0.5,
        "active": True,
    },
    {
        "id": uuid.uuid4(),
        "name": "b",
        "status": "failed",
        "catalog_item": "postgres_database",
        "user_name": None,
        "created_at": datetime(2026, 2, 1, tzinfo=UTC),
        "expires_at": datetime(2026, 3, 1, tzinfo=UTC),
        "version": 3,
        "monthly_cost": 10.0,
        "active": False,
    },
    {
        "id": uuid.uuid4(),
        "name": "c",
        "status": "50%_off",
        "catalog_item": "cloud_vm",
        "user_name": "",
        "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "expires_at": datetime(2027, 1, 1, tzinfo=UTC),
        "version": 2,
        "monthly_cost": 2.5,
        "active": True,
    },
    {
        "id": uuid.uuid4(),
        "name": "d",
        "status": "completed",
        "catalog_item": "postgres_schema",
        "user_name": "bjensen",
        # 2026-02-28T23:00Z: compared as a moment, not as text.
        "created_at": datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=1))),
        "expires_at": None,
        "version": 10,
        "monthly_cost": 100.0,
        "active": False,
    },
]


@pytest.fixture(scope="module")
async def connection(infra: Stack) -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(infra.database_url("request_api"))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(things.metadata.create_all)
            await connection.execute(insert(things), ROWS)
            yield connection
            await connection.rollback()
    finally:
        await engine.dispose()


CASES = [
    ('status eq "completed"', "ad"),
    ('status ne "completed"', "bc"),
    ('status co "%_"', "c"),
    ('status sw "50%"', "c"),
    ('status ew "_off"', "c"),
    ('status gt "d"', "b"),
    ('catalog_item sw "postgres_"', "abd"),
    ('userName eq "BJENSEN"', "ad"),
    ('userName co "JEN"', "ad"),
    ("userName pr", "ad"),
    ("not (userName pr)", "bc"),
    ('expires_at gt "2026-06-01T00:00:00Z"', "c"),
    ('not (expires_at gt "2026-06-01T00:00:00Z")', "abd"),
    ('expires_at ne "2026-03-01T00:00:00Z"', "acd"),
    ("expires_at eq null", "ad"),
    ('created_at lt "2026-03-01T00:00:00Z"', "abd"),
    ('created_at eq "2026-03-01T00:00:00+01:00"', "d"),
    ('created_at ge "2026-03-01T01:00:00+01:00"', "c"),
    ("version gt 2", "bd"),
    ("version ge 10", "d"),
    ("monthly_cost lt 2.5", "a"),
    ("active eq true", "ac"),
    ('status eq "completed" or status eq "failed" and active eq true', "ad"),
    ('(status eq "completed" or status eq "failed") and active eq true', "a"),
    (f'id eq "{A_ID}"', "a"),
    (f'id sw "{str(A_ID)[:8].upper()}"', "a"),
]


@pytest.mark.parametrize(("expression", "names"), CASES, ids=[c[0] for c in CASES])
async def test_postgresql_matches_what_the_filter_says(
    connection: AsyncConnection, expression: str, names: str
) -> None:
    condition = scim_filter_to_sql(expression, ATTRIBUTES)
    found = await connection.scalars(select(things.c.name).where(condition))
    assert "".join(sorted(found)) == names
