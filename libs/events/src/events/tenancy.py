"""Who may do what in a service's database. Tenant isolation in the database itself:
PostgreSQL row-level security, forced, on every table that has a `tenant` column; and the
grants of the login the service runs as, which is not its schema's owner.

The owner creates the schema at start and is itself subject to the policies (FORCE), with
none of its own: short of a superuser, it reads no tenant's rows. The service's login gets
only what each table allows and a policy of its own that shows it every row: its consumer,
which follows every tenant's events, works as it. An API route acting for a caller works as
the service's tenant role, which sees and writes only the rows whose `tenant` is the
transaction's `app.tenant`, so a query that forgets to name the tenant still finds nothing
of another's."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

POLICY = "tenant_isolation"
LOGIN_POLICY = "service_login"
# What a table lets the service's roles do unless it says otherwise in its `info`: an
# append-only table says `{"privileges": "SELECT, INSERT"}`.
PRIVILEGES = "privileges"
# Where a session remembers the tenant it acts for, so that what it stages names it.
SESSION_TENANT = "events.tenant"
ALL_DML = "SELECT, INSERT, UPDATE, DELETE"


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
    await connection.execute(text(f"GRANT {role} TO CURRENT_USER"))
    await _grant(connection, metadata, role)
    for table in tenant_tables(metadata):
        await connection.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
        # Else the owner would skip the policies: a leaked owner login would read everything.
        await connection.execute(text(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
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
    session.info[SESSION_TENANT] = tenant


async def install_service_login(
    connection: AsyncConnection, metadata: Sequence[MetaData], *, login: str, tenant_role: str
) -> None:
    """The service's login gets only what each table allows (an append-only table: no
    UPDATE, DELETE or TRUNCATE, whatever the code does), may act as its tenant role, and sees
    every tenant's rows (its consumer follows them all). `login` may be CURRENT_USER, where a
    service runs as its schema's owner (a test database)."""
    await _grant(connection, metadata, login)
    await connection.execute(text(f"GRANT {tenant_role} TO {login}"))
    for table in tenant_tables(metadata):
        await connection.execute(text(f"DROP POLICY IF EXISTS {LOGIN_POLICY} ON {table}"))
        await connection.execute(
            text(
                f"CREATE POLICY {LOGIN_POLICY} ON {table} TO {login} USING (true) WITH CHECK (true)"
            )
        )


async def _grant(connection: AsyncConnection, metadata: Sequence[MetaData], role: str) -> None:
    await connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    for table in (table for meta in metadata for table in meta.tables.values()):
        await connection.execute(text(f"GRANT {_privileges(table)} ON {table.name} TO {role}"))
    await connection.execute(
        text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
    )


def _privileges(table: Table) -> str:
    return str(table.info.get(PRIVILEGES, ALL_DML))
