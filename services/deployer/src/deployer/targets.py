"""The PostgreSQL target driver: creates databases, schemas and owner roles, and verifies them
by logging in as the new role.

Every step is idempotent, because a crash after the target changed but before the deployer's
transaction committed redelivers the event: a role carries a comment naming the request that
created it, and a database or schema is ours when that role owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from deployer.scram import scram_sha256_verifier
from deployer.settings import TargetServer
from events import PermanentError, RetryableError
from events.contracts.configuration import PostgresConfiguration


class TargetUnavailable(RetryableError):
    """The target could not be reached or refused for a reason that may pass."""


class TargetConflict(PermanentError):
    """The name is taken in the target by something this request did not create."""


@dataclass(frozen=True)
class Deployed:
    username: str
    outputs: dict[str, str | int]


def _marker(request_id: uuid.UUID) -> str:
    return f"provisioned by request {request_id}"


async def _ddl(connection: asyncpg.Connection, template: str, *args: Any) -> None:
    """Run DDL whose identifiers and literals are quoted by the server's own format()."""
    placeholders = ", ".join(f"${i + 1}::text" for i in range(len(args)))
    statement = await connection.fetchval(f"SELECT format('{template}', {placeholders})", *args)
    await connection.execute(statement)


class PostgresTargets:
    def __init__(self, servers: dict[str, TargetServer], *, timeout_s: float) -> None:
        self._servers = servers
        self._timeout_s = timeout_s
        self._pools: dict[tuple[str, str], asyncpg.Pool] = {}
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await asyncio.wait_for(pool.close(), self._timeout_s)

    async def deploy(
        self,
        server_id: str,
        configuration: PostgresConfiguration,
        *,
        request_id: uuid.UUID,
        password: str,
    ) -> Deployed:
        server = self._server(server_id)
        try:
            async with asyncio.timeout(self._timeout_s * 3):
                await self._ensure_role(server_id, configuration, request_id, password)
                if configuration.schema_name is None:
                    await self._ensure_database(server_id, configuration)
                else:
                    await self._ensure_schema(server_id, configuration)
                await self._verify(server, configuration, password)
        except (TargetConflict, TargetUnavailable):
            raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise TargetUnavailable(f"{server_id}: {type(error).__name__}: {error}") from error
        outputs: dict[str, str | int] = {
            "host": server.host,
            "port": server.port,
            "database": configuration.database,
            "username": configuration.owner_role,
        }
        if configuration.schema_name is not None:
            outputs["schema"] = configuration.schema_name
        return Deployed(username=configuration.owner_role, outputs=outputs)

    def _server(self, server_id: str) -> TargetServer:
        server = self._servers.get(server_id)
        if server is None:
            raise PermanentError(f"the deployer has no connection details for {server_id!r}")
        return server

    async def _pool(self, server_id: str, database: str | None = None) -> asyncpg.Pool:
        key = (server_id, database or "")
        async with self._lock:
            if key not in self._pools:
                extra = {"database": database} if database else {}
                self._pools[key] = await asyncpg.create_pool(
                    self._server(server_id).admin_dsn,
                    min_size=0,
                    max_size=4,
                    timeout=self._timeout_s,
                    command_timeout=self._timeout_s,
                    **extra,
                )
            return self._pools[key]

    async def _ensure_role(
        self,
        server_id: str,
        configuration: PostgresConfiguration,
        request_id: uuid.UUID,
        password: str,
    ) -> None:
        role, marker = configuration.owner_role, _marker(request_id)
        verifier = scram_sha256_verifier(password)
        limit = str(configuration.connection_limit)
        async with (await self._pool(server_id)).acquire() as connection:
            found = await connection.fetchrow(
                "SELECT shobj_description(oid, 'pg_authid') AS marker FROM pg_roles"
                " WHERE rolname = $1",
                role,
            )
            if found is not None and found["marker"] != marker:
                raise TargetConflict(f"role {role} already exists in {server_id}")
            async with connection.transaction():
                if found is None:
                    await _ddl(
                        connection,
                        "CREATE ROLE %I LOGIN PASSWORD %L CONNECTION LIMIT %s",
                        role,
                        verifier,
                        limit,
                    )
                    await _ddl(connection, "COMMENT ON ROLE %I IS %L", role, marker)
                else:
                    # Ours, from an attempt whose outcome was lost: only the new password counts.
                    await _ddl(
                        connection,
                        "ALTER ROLE %I PASSWORD %L CONNECTION LIMIT %s",
                        role,
                        verifier,
                        limit,
                    )

    async def _ensure_database(self, server_id: str, configuration: PostgresConfiguration) -> None:
        database, role = configuration.database, configuration.owner_role
        async with (await self._pool(server_id)).acquire() as connection:
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", database
            )
            if owner is None:
                await _ddl(connection, "CREATE DATABASE %I OWNER %I", database, role)
            elif owner != role:
                raise TargetConflict(f"database {database} already exists in {server_id}")
            await _ddl(connection, "REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC", database)
        if configuration.extensions:
            pool = await self._pool(server_id, database)
            async with pool.acquire() as connection:
                for extension in configuration.extensions:
                    await _ddl(connection, "CREATE EXTENSION IF NOT EXISTS %I", extension)

    async def _ensure_schema(self, server_id: str, configuration: PostgresConfiguration) -> None:
        assert configuration.schema_name is not None
        database, schema, role = (
            configuration.database,
            configuration.schema_name,
            configuration.owner_role,
        )
        async with (await self._pool(server_id)).acquire() as connection:
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", database
            )
            if exists is None:
                # Another deployer replica may create it at the same time.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await _ddl(connection, "CREATE DATABASE %I", database)
                await _ddl(
                    connection, "REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC", database
                )
            await _ddl(connection, "GRANT CONNECT ON DATABASE %I TO %I", database, role)
        async with (await self._pool(server_id, database)).acquire() as connection:
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
            )
            if owner is None:
                await _ddl(connection, "CREATE SCHEMA %I AUTHORIZATION %I", schema, role)
            elif owner != role:
                raise TargetConflict(f"schema {schema} already exists in {server_id}/{database}")

    async def _verify(
        self, server: TargetServer, configuration: PostgresConfiguration, password: str
    ) -> None:
        """Log in over the network as the new role, as the requester will."""
        connection = await asyncpg.connect(
            host=server.host,
            port=server.port,
            user=configuration.owner_role,
            password=password,
            database=configuration.database,
            timeout=self._timeout_s,
        )
        try:
            user = await connection.fetchval("SELECT current_user")
            if user != configuration.owner_role:
                raise TargetUnavailable(f"verification logged in as {user!r}")
            if configuration.schema_name is not None:
                can_create = await connection.fetchval(
                    "SELECT has_schema_privilege($1, 'CREATE')", configuration.schema_name
                )
                if not can_create:
                    raise TargetUnavailable("verification: the role cannot create in its schema")
        finally:
            await connection.close(timeout=self._timeout_s)
