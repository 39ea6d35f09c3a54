"""Least privilege in PostgreSQL: each service runs as a login of its own that is no superuser
and owns none of its tables; row-level security is forced on every tenant table; only the
logins that use a platform database may connect to it, so neither another service nor a
tenant database's login (on the same cluster) reaches it."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest
from tests.e2e.client import Platform, key_for, login

from devstack import postgres
from devstack.stack import Stack

pytestmark = pytest.mark.integration

SERVICE_DATABASES = ("request_api", "validator", "allocator", "configurator", "deployer", "auditor")
# Written out here rather than read from the stack's own table, so that the test checks it.
CHECKS_API_KEYS = ("request_api", "allocator", "deployer", "auditor")


async def connect_as(stack: Stack, user: str, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(stack.database_dsn(database), user=user)


async def as_owner(stack: Stack, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(stack.database_dsn(database))


async def test_each_service_runs_as_its_own_login_which_is_no_superuser_and_owns_nothing(
    stack: Stack,
):
    for database in SERVICE_DATABASES:
        owner = await as_owner(stack, database)
        try:
            role = await owner.fetchrow(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin"
                " FROM pg_roles WHERE rolname = $1",
                database,
            )
            assert role is not None, f"no login {database}"
            assert tuple(role) == (False, False, False, False, True), database
            owned = await owner.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = $1",
                database,
            )
            assert owned == [], database
            tables = await owner.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            )
            assert tables > 0, database
            # The running service holds its connections as that login, none as the owner.
            users = await owner.fetch(
                "SELECT DISTINCT usename FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            assert {row["usename"] for row in users} == {database}
        finally:
            await owner.close()


async def test_a_tenant_role_query_that_names_no_tenant_sees_only_its_tenants_rows(
    platform: Platform,
):
    mine = await platform.submit("postgres_schema", name=f"lp_{uuid.uuid4().hex[:8]}")
    # A tenant of its own: its request must not spend a seat another test counts.
    tenant = f"lp-{uuid.uuid4().hex[:8]}"
    other_key = await key_for(
        platform.stack, name="least-privilege", tenant=tenant, roles=["requester"]
    )
    async with httpx.AsyncClient(
        base_url=platform.stack.service_url("request-api"),
        headers={"Authorization": f"Bearer {other_key}"},
        timeout=30.0,
    ) as other_api:
        answer = await other_api.post(
            "/v1/requests",
            json={
                "catalog_item": "postgres_schema",
                "parameters": {"name": f"lp_{uuid.uuid4().hex[:8]}"},
            },
        )
        assert answer.status_code == 202, answer.text
        theirs = answer.json()
    service = await connect_as(platform.stack, "request_api", "request_api")
    try:
        # The login itself follows every tenant (its consumer does).
        everyone = {str(row["id"]) for row in await service.fetch("SELECT id FROM requests")}
        assert {mine["id"], theirs["id"]} <= everyone
        async with service.transaction():
            await service.execute("SET LOCAL ROLE request_api_tenant")
            await service.execute("SELECT set_config('app.tenant', $1, true)", tenant)
            rows = await service.fetch("SELECT * FROM requests")
    finally:
        await service.close()
    assert theirs["id"] in {str(row["id"]) for row in rows}
    assert {row["tenant"] for row in rows} == {tenant}


async def test_a_service_login_may_connect_only_to_the_databases_it_uses(stack: Stack):
    for user in SERVICE_DATABASES:
        uses = {user, "identity"} if user in CHECKS_API_KEYS else {user}
        for database in postgres.DATABASES:
            if database in uses:
                connection = await connect_as(stack, user, database)
                await connection.close()
            else:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await connect_as(stack, user, database)


async def test_only_the_request_apis_login_may_write_api_keys(stack: Stack):
    owner = await as_owner(stack, "identity")
    try:
        for user in CHECKS_API_KEYS:
            may = [
                await owner.fetchval("SELECT has_table_privilege($1, 'api_keys', $2)", user, what)
                for what in ("SELECT", "INSERT", "UPDATE", "DELETE")
            ]
            writes = user == "request_api"
            assert may == [True, writes, writes, False], user
    finally:
        await owner.close()


async def test_a_tenant_databases_login_reaches_no_platform_database_nor_another_tenants(
    platform: Platform,
):
    database = await platform.completed("postgres_database", name=f"lp_{uuid.uuid4().hex[:8]}")
    schema = await platform.completed("postgres_schema", name=f"lp_{uuid.uuid4().hex[:8]}")
    resources = []
    for request in (database, schema):
        resource = await platform.resource(request["resource_id"])
        resources.append((resource["outputs"], await platform.reveal(request["resource_id"])))
    for outputs, credentials in resources:
        own = await login(outputs, credentials)  # its own database: allowed
        await own.close()
        for platform_database in postgres.DATABASES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await login({**outputs, "database": platform_database}, credentials)
    (database_outputs, _), (_, schema_credentials) = resources
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await login(database_outputs, schema_credentials)


async def test_row_security_is_forced_on_every_table_with_a_tenant_column(stack: Stack):
    checked = 0
    for database in SERVICE_DATABASES:
        owner = await as_owner(stack, database)
        try:
            tables = await owner.fetch(
                "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_attribute a ON a.attrelid = c.oid"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
                " AND a.attname = 'tenant' AND NOT a.attisdropped"
            )
        finally:
            await owner.close()
        for table in tables:
            assert (table["relrowsecurity"], table["relforcerowsecurity"]) == (True, True), (
                f"{database}.{table['relname']}"
            )
        checked += len(tables)
    assert checked > 0
