"""The PostgreSQL target driver: creates databases, schemas and owner roles, and verifies them
by logging in as the new role.

Every step is idempotent, because a crash after the target changed but before the deployer's
transaction committed redelivers the event: a role carries a comment naming the request that
created it, and a database or schema is ours when that role owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass

import asyncpg

from deployer.scram import scram_sha256_verifier
from deployer.settings import TargetServer
from events import PermanentError, RetryableError
from events.contracts.configuration import PostgresConfiguration
from events.errors import InjectedFault


class TargetUnavailable(RetryableError):
    """The target could not be reached or refused for a reason that may pass."""


class TargetConflict(PermanentError):
    """The name is taken in the target by something this request did not create."""


@dataclass(frozen=True)
class Deployed:
    username: str
    outputs: dict[str, str | int]


MARKER_PREFIX = "provisioned by request "


def _marker(request_id: uuid.UUID) -> str:
    return f"{MARKER_PREFIX}{request_id}"


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


class PostgresTargets:
    def __init__(
        self,
        servers: dict[str, TargetServer],
        *,
        timeout_s: float,
        verify_fault_marker: str | None = None,
    ) -> None:
        self._servers = servers
        self._verify_fault_marker = verify_fault_marker
        self._timeout_s = timeout_s
        self._pools: dict[tuple[str, str], asyncpg.Pool] = {}
        self._lock = asyncio.Lock()
        self._shared_ready: set[tuple[str, str]] = set()

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
                if configuration.schema_name is None:
                    await self._ensure_role(server_id, configuration, request_id, password)
                    await self._ensure_database(server_id, configuration)
                else:
                    await self._ensure_shared_database(server_id, configuration.database)
                    await self._ensure_role(
                        server_id,
                        configuration,
                        request_id,
                        password,
                        member_of=connect_group(configuration.database),
                    )
                    await self._ensure_schema(server_id, configuration)
                await self._before_verify(configuration)
                await self._verify(server, configuration, password)
        except PermanentError:
            raise
        except (TargetUnavailable, TargetConflict):
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

    async def remove(
        self,
        server_id: str,
        configuration: PostgresConfiguration,
        *,
        created_by: uuid.UUID | None = None,
    ) -> None:
        """Remove the role and its database or schema, if they are ours: created by
        `created_by` when given (a rollback), else by any request of this platform (a
        deprovision). Whatever is not ours is left alone; what is gone already is fine."""
        try:
            async with asyncio.timeout(self._timeout_s * 3):
                await self._remove(server_id, configuration, created_by)
        except (TargetConflict, TargetUnavailable):
            raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise TargetUnavailable(f"{server_id}: {type(error).__name__}: {error}") from error

    async def _remove(
        self,
        server_id: str,
        configuration: PostgresConfiguration,
        created_by: uuid.UUID | None,
    ) -> None:
        role = configuration.owner_role
        async with (await self._pool(server_id)).acquire() as connection:
            marker = await connection.fetchval(
                "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
                role,
            )
        if marker is None:
            return  # no role (never created, or removed already): nothing of ours is left
        expected = _marker(created_by) if created_by else None
        if (expected and marker != expected) or not str(marker).startswith(MARKER_PREFIX):
            return  # not ours to remove
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
        password: str,
        member_of: str | None = None,
    ) -> None:
        role, marker = ident(configuration.owner_role), _marker(request_id)
        in_group = f" IN ROLE {ident(member_of)}" if member_of else ""
        verifier = scram_sha256_verifier(password)
        if not _SCRAM_VERIFIER.match(verifier):
            raise PermanentError("unexpected SCRAM verifier format")
        limit = int(configuration.connection_limit)
        async with (await self._pool(server_id)).acquire() as connection:
            found = await connection.fetchrow(
                "SELECT shobj_description(oid, 'pg_authid') AS marker FROM pg_roles"
                " WHERE rolname = $1",
                configuration.owner_role,
            )
            if found is not None and found["marker"] != marker:
                raise TargetConflict(
                    f"role {configuration.owner_role} already exists in {server_id}"
                )
            if found is None:
                # One simple query: its statements commit together or not at all.
                await connection.execute(
                    f"CREATE ROLE {role} LOGIN PASSWORD {literal(verifier)}"
                    f" CONNECTION LIMIT {limit}{in_group};"
                    f" COMMENT ON ROLE {role} IS {literal(marker)}"
                )
            else:
                # Ours, from an attempt whose outcome was lost: only the new password counts.
                grant = f"; GRANT {ident(member_of)} TO {role}" if member_of else ""
                await connection.execute(
                    f"ALTER ROLE {role} PASSWORD {literal(verifier)} CONNECTION LIMIT {limit}"
                    + grant
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
            await connection.execute(
                f"REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC"
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

    async def _before_verify(self, configuration: PostgresConfiguration) -> None:
        """Chaos testing: fail after the target changed, which only a rollback can undo."""
        marker = self._verify_fault_marker
        if marker and marker in (configuration.schema_name or configuration.database):
            raise InjectedFault("fault injected at deployer.verify")

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
