"""Tenant isolation in the database itself: PostgreSQL row-level security on every table that
has a `tenant` column.

A service's own login owns its tables and so is not subject to the policies: its consumer,
which follows every tenant's events, works as it. An API route acting for a caller works as
the service's tenant role, which sees and writes only the rows whose `tenant` is the
transaction's `app.tenant`, so a query that forgets to name the tenant still finds nothing
of another's."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

POLICY = "tenant_isolation"


def tenant_role(service: str) -> str:
    return service.replace("-", "_") + "_tenant"


def tenant_tables(metadata: Sequence[MetaData]) -> list[str]:
    return sorted(
        name for meta in metadata for name, table in meta.tables.items() if "tenant" in table.c
    )


async def install_row_security(
    connection: AsyncConnection, metadata: Sequence[MetaData], role: str
) -> None:
    """The tenant role, its grants, and one policy per table holding tenant data. Run under
    the schema lock: replicas starting together must not create them twice at once."""
    await connection.execute(
        text(
            f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    )
    for statement in (
        f"GRANT {role} TO CURRENT_USER",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ):
        await connection.execute(text(statement))
    for table in tenant_tables(metadata):
        await connection.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
        await connection.execute(text(f"DROP POLICY IF EXISTS {POLICY} ON {table}"))
        await connection.execute(
            text(
                f"CREATE POLICY {POLICY} ON {table} TO {role} "
                "USING (tenant = current_setting('app.tenant', true)) "
                "WITH CHECK (tenant = current_setting('app.tenant', true))"
            )
        )


async def enter_tenant(session: AsyncSession, role: str, tenant: str) -> None:
    """From here to the end of the transaction, act as `role` inside `tenant` only."""
    await session.execute(text(f"SET LOCAL ROLE {role}"))
    await session.execute(
        text("SELECT set_config('app.tenant', :tenant, true)"), {"tenant": tenant}
    )
