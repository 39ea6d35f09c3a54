"""The PostgreSQL driver: databases, or schemas in a shared database, each with an owner login
role; verified by logging in over the network as that role.

A role carries a comment naming the request that created it (the mark of drivers/base.py),
and a database or schema is ours when that role owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from deployer.drivers.base import (
    Deployed,
    Placement,
    TargetConflict,
    TargetUnavailable,
    marker,
)
from deployer.scram import scram_sha256_verifier
from events import PermanentError
from events.contracts.configuration import PostgresConfiguration


class TargetServer(BaseModel):
    """How the deployer reaches a pool server (`admin_dsn`) and how requesters do."""

    admin_dsn: str = Field(repr=False)
    host: str
    port: int


_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCRAM_VERIFIER = re.compile(
    r"^SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$"
)


def ident(name: str) -> str:
    """A quoted identifier. Names were validated upstream; a driver never relies on that."""
    if not _IDENTIFIER.match(name):
        raise PermanentError(f"refusing an unexpected identifier {name[:80]!r}")
    return f'"{name}"'


def literal(text: str) -> str:
    """A quoted literal for DDL, which takes no parameters (standard_conforming_strings)."""
    return "'" + text.replace("'", "''") + "'"


def connect_group(database: str) -> str:
    """Members may connect to a shared database: one membership row per role, instead of an
    ever longer ACL on the database itself."""
    return f"{database}_connect"


_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresDriver:
    needs_secret = True

    def __init__(self, servers: dict[str, TargetServer], *, timeout_s: float) -> None:
        self._servers = servers
        self._timeout_s = timeout_s
        self._pools: dict[tuple[str, str], asyncpg.Pool] = {}
        self._lock = asyncio.Lock()
        self._shared_ready: set[tuple[str, str]] = set()

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await asyncio.wait_for(pool.close(), self._timeout_s)

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        server_id, wanted = placement.server_id, PostgresConfiguration.model_validate(configuration)
        server = self._server(server_id)
        async with self._target_errors(server_id):
            if wanted.schema_name is None:
                await self._ensure_role(server_id, wanted, placement.request_id, secret)
                await self._ensure_database(server_id, wanted)
            else:
                await self._ensure_shared_database(server_id, wanted.database)
                await self._ensure_role(
                    server_id,
                    wanted,
                    placement.request_id,
                    secret,
                    member_of=connect_group(wanted.database),
                )
                await self._ensure_schema(server_id, wanted)
        outputs: dict[str, str | int] = {
            "host": server.host,
            "port": server.port,
            "database": wanted.database,
            "username": wanted.owner_role,
        }
        if wanted.schema_name is not None:
            outputs["schema"] = wanted.schema_name
        return Deployed(outputs=outputs, username=wanted.owner_role)

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        server_id, wanted = placement.server_id, PostgresConfiguration.model_validate(configuration)
        async with self._target_errors(server_id):
            differences = await self._differences(placement, wanted)
            if not differences and secret is not None:
                differences = await self._log_in(self._server(server_id), wanted, secret)
        return differences

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """The role may no longer log in, and its sessions end; its data is kept."""
        wanted = PostgresConfiguration.model_validate(configuration)
        async with self._target_errors(placement.server_id):
            pool = await self._pool(placement.server_id)
            async with pool.acquire() as connection:
                if await self._mark_of(connection, wanted.owner_role) != marker(
                    placement.request_id
                ):
                    return
                await connection.execute(f"ALTER ROLE {ident(wanted.owner_role)} NOLOGIN")
                await connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    wanted.owner_role,
                )

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """Remove the role and its database or schema if this placement's request created
        them; whatever is not ours is left alone, what is gone already is fine."""
        wanted = PostgresConfiguration.model_validate(configuration)
        async with self._target_errors(placement.server_id):
            await self._remove(placement.server_id, wanted, placement.request_id)

    @contextlib.asynccontextmanager
    async def _target_errors(self, server_id: str) -> AsyncIterator[None]:
        """Bound the whole call, and make every connection or server error a retryable one."""
        try:
            async with asyncio.timeout(self._timeout_s * 3):
                yield
        except (PermanentError, TargetUnavailable):
            raise
        except _CONNECTION_ERRORS as error:
            raise TargetUnavailable(f"{server_id}: {type(error).__name__}: {error}") from error

    @staticmethod
    async def _mark_of(connection: asyncpg.Connection, role: str) -> str | None:
        found = await connection.fetchval(
            "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles"
            " WHERE rolname = $1",
            role,
        )
        return None if found is None else str(found)

    async def _differences(self, placement: Placement, wanted: PostgresConfiguration) -> list[str]:
        role = wanted.owner_role
        async with (await self._pool(placement.server_id)).acquire() as connection:
            found = await connection.fetchrow(
                "SELECT coalesce(shobj_description(oid, 'pg_authid'), '') AS mark,"
                " rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = $1",
                role,
            )
            if found is None:
                return ["missing: no role " + role]
            if found["mark"] != marker(placement.request_id):
                return [f"the role {role} is not the one this request created"]
            differences = []
            if not found["rolcanlogin"]:
                differences.append(f"the role {role} cannot log in")
            if found["rolconnlimit"] != wanted.connection_limit:
                differences.append(
                    f"connection limit is {found['rolconnlimit']}, not {wanted.connection_limit}"
                )
            database_owner = await connection.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                wanted.database,
            )
        if database_owner is None:
            return [*differences, f"missing: no database {wanted.database}"]
        if wanted.schema_name is None:
            if database_owner != role:
                differences.append(f"the database {wanted.database} is owned by {database_owner}")
            return differences
        pool = await self._pool(placement.server_id, wanted.database)
        async with pool.acquire() as connection:
            schema_owner = await connection.fetchval(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1",
                wanted.schema_name,
            )
        if schema_owner is None:
            differences.append(f"missing: no schema {wanted.schema_name}")
        elif schema_owner != role:
            differences.append(f"the schema {wanted.schema_name} is owned by {schema_owner}")
        return differences

    async def _remove(
        self, server_id: str, configuration: PostgresConfiguration, created_by: uuid.UUID
    ) -> None:
        role = configuration.owner_role
        async with (await self._pool(server_id)).acquire() as connection:
            mark = await self._mark_of(connection, role)
        if mark != marker(created_by):
            return  # no role (never created, or removed already), or not ours to remove
        if configuration.schema_name is None:
            async with (await self._pool(server_id)).acquire() as connection:
                owner = await connection.fetchval(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                    configuration.database,
                )
                if owner == role:
                    await self._close_pool(server_id, configuration.database)
                    await connection.execute(
                        f"DROP DATABASE IF EXISTS {ident(configuration.database)} WITH (FORCE)"
                    )
                await connection.execute(f"DROP ROLE IF EXISTS {ident(role)}")
            return
        pool = await self._pool(server_id, configuration.database)
        async with pool.acquire() as connection:
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1",
                configuration.schema_name,
            )
            if owner == role:
                await connection.execute(
                    f"DROP SCHEMA IF EXISTS {ident(configuration.schema_name)} CASCADE"
                )
            # Privileges and default privileges the role holds in this database go too.
            await connection.execute(f"DROP OWNED BY {ident(role)} CASCADE")
        async with (await self._pool(server_id)).acquire() as connection:
            await connection.execute(f"DROP ROLE IF EXISTS {ident(role)}")

    async def _close_pool(self, server_id: str, database: str) -> None:
        async with self._lock:
            pool = self._pools.pop((server_id, database), None)
        if pool is not None:
            await asyncio.wait_for(pool.close(), self._timeout_s)

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
        password: str | None,
        member_of: str | None = None,
    ) -> None:
        """Create the role, or bring ours up to date: a new password only when one is given
        (provision, rotation), and able to log in again (after a disable)."""
        role, mark = ident(configuration.owner_role), marker(request_id)
        in_group = f" IN ROLE {ident(member_of)}" if member_of else ""
        set_password = ""
        if password is not None:
            verifier = scram_sha256_verifier(password)
            if not _SCRAM_VERIFIER.match(verifier):
                raise PermanentError("unexpected SCRAM verifier format")
            set_password = f" PASSWORD {literal(verifier)}"
        limit = int(configuration.connection_limit)
        async with (await self._pool(server_id)).acquire() as connection:
            found = await connection.fetchrow(
                "SELECT shobj_description(oid, 'pg_authid') AS marker FROM pg_roles"
                " WHERE rolname = $1",
                configuration.owner_role,
            )
            if found is not None and found["marker"] != mark:
                raise TargetConflict(
                    f"role {configuration.owner_role} already exists in {server_id}"
                )
            if found is None:
                # One simple query: its statements commit together or not at all.
                await connection.execute(
                    f"CREATE ROLE {role} LOGIN{set_password}"
                    f" CONNECTION LIMIT {limit}{in_group};"
                    f" COMMENT ON ROLE {role} IS {literal(mark)}"
                )
            else:
                # Ours: an attempt whose outcome was lost, a modify, or a remediation.
                grant = f"; GRANT {ident(member_of)} TO {role}" if member_of else ""
                await connection.execute(
                    f"ALTER ROLE {role} LOGIN{set_password} CONNECTION LIMIT {limit}" + grant
                )

    async def _ensure_database(self, server_id: str, configuration: PostgresConfiguration) -> None:
        database, role = ident(configuration.database), ident(configuration.owner_role)
        async with (await self._pool(server_id)).acquire() as connection:
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                configuration.database,
            )
            if owner is None:
                await connection.execute(f"CREATE DATABASE {database} OWNER {role}")
            elif owner != configuration.owner_role:
                raise TargetConflict(f"database {database} already exists in {server_id}")
            # Only its own role may connect: not another tenant's login on the same cluster.
            await connection.execute(
                f"REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC;"
                f" GRANT CONNECT ON DATABASE {database} TO {role}"
            )
        if configuration.extensions:
            pool = await self._pool(server_id, configuration.database)
            async with pool.acquire() as connection:
                for extension in configuration.extensions:
                    await connection.execute(f"CREATE EXTENSION IF NOT EXISTS {ident(extension)}")

    async def _ensure_shared_database(self, server_id: str, database: str) -> None:
        if (server_id, database) in self._shared_ready:
            return
        group = ident(connect_group(database))
        async with (await self._pool(server_id)).acquire() as connection:
            if not await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", database
            ):
                # Another deployer replica may create it at the same time.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await connection.execute(f"CREATE DATABASE {ident(database)}")
            if not await connection.fetchval(
                "SELECT 1 FROM pg_roles WHERE rolname = $1", connect_group(database)
            ):
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await connection.execute(f"CREATE ROLE {group} NOLOGIN")
            await connection.execute(
                f"REVOKE CONNECT, TEMPORARY ON DATABASE {ident(database)} FROM PUBLIC;"
                f" GRANT CONNECT ON DATABASE {ident(database)} TO {group}"
            )
        self._shared_ready.add((server_id, database))

    async def _ensure_schema(self, server_id: str, configuration: PostgresConfiguration) -> None:
        assert configuration.schema_name is not None
        database, schema = configuration.database, configuration.schema_name
        role = ident(configuration.owner_role)
        async with (await self._pool(server_id, database)).acquire() as connection:
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
            )
            if owner is None:
                await connection.execute(f"CREATE SCHEMA {ident(schema)} AUTHORIZATION {role}")
            elif owner != configuration.owner_role:
                raise TargetConflict(f"schema {schema} already exists in {server_id}/{database}")

    async def _log_in(
        self, server: TargetServer, configuration: PostgresConfiguration, password: str
    ) -> list[str]:
        """Log in over the network as the role, as the requester will."""
        try:
            connection = await asyncpg.connect(
                host=server.host,
                port=server.port,
                user=configuration.owner_role,
                password=password,
                database=configuration.database,
                timeout=self._timeout_s,
            )
        except asyncpg.InvalidAuthorizationSpecificationError:
            return [f"cannot log in as {configuration.owner_role}"]
        try:
            user = await connection.fetchval("SELECT current_user")
            if user != configuration.owner_role:
                return [f"logged in as {user!r}, not {configuration.owner_role}"]
            if configuration.schema_name is not None:
                can_create = await connection.fetchval(
                    "SELECT has_schema_privilege($1, 'CREATE')", configuration.schema_name
                )
                if not can_create:
                    return [f"{configuration.owner_role} cannot create in its schema"]
        finally:
            await connection.close(timeout=self._timeout_s)
        return []
