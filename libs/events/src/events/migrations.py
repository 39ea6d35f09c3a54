"""Schema changes as Alembic migrations, applied the same way everywhere: by `make up`, by
the compose one-shot jobs and by the Kubernetes init containers, each running

    python -m events.migrations upgrade <package>.migrations

as the database's owner (`SCHEMA_DATABASE_URL`), for the login in `DATABASE_URL`. A service
declares its database as a `Schema` in its `migrations` package, whose `env.py` calls
`run_env`. A service itself never changes its schema: at start it waits for its database to
be at its head revision (`wait_until_current`).

The step holds an advisory lock, so replicas or jobs starting together apply each revision
once. A database made by the old `create_all` at start (tables, but no `alembic_version`) is
stamped with the first revision, which creates exactly those tables, then upgraded: no row
is lost. Row security and the login's grants follow every upgrade: they are derived from the
tables (every table with a `tenant` column) and name the deployment's login, so they are
re-applied, idempotently, rather than written into revisions."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from events import tenancy
from events.errors import describe
from events.tables import RuntimeBase

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x5C4E_3A11
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class Schema:
    """A database's tables and the Alembic history that makes them. `location` is the
    history's package (`request_api:migrations`). `service`: whose tenant role and login get
    row security and grants after each upgrade; None for a database whose grants are the
    cluster's (the API keys' `identity`)."""

    location: str
    metadata: tuple[MetaData, ...]
    service: str | None = None

    @classmethod
    def of_service(cls, service: str, location: str, *metadata: MetaData) -> Schema:
        """A service's own database: its tables and the runtime's inbox and outbox."""
        return cls(location, (RuntimeBase.metadata, *metadata), service)

    def config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", self.location)
        config.attributes["connection"] = connection
        return config

    def heads(self) -> set[str]:
        return set(ScriptDirectory.from_config(self.config()).get_heads())

    def first_revision(self) -> str:
        (base,) = ScriptDirectory.from_config(self.config()).get_bases()
        return base


def run_env(schema: Schema) -> None:
    """The body of a history's `env.py`: migrate the connection the caller shares
    (`Schema.config`), or, from the `alembic` command line, one to `SCHEMA_DATABASE_URL`."""
    from alembic import context

    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection, schema)
        return
    url = context.config.get_main_option("sqlalchemy.url") or os.environ["SCHEMA_DATABASE_URL"]

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.begin() as shared:
                await shared.run_sync(_run_migrations, schema)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _run_migrations(connection: Connection, schema: Schema) -> None:
    from alembic import context

    context.configure(
        connection=connection,
        target_metadata=list(schema.metadata),
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def upgrade(
    schema: Schema, owner_url: str, *, login: str | None = None, deadline_s: float = 60.0
) -> None:
    """Bring the database at `owner_url` to its head revision, then re-apply row security
    and `login`'s grants (None: the owner is the service's login, as in a test database).
    Retries while the database cannot be reached, for up to `deadline_s`."""
    if schema.service is not None and login is None:
        login = "CURRENT_USER"
    engine = create_async_engine(owner_url, poolclass=pool.NullPool)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + deadline_s
    try:
        while True:
            try:
                async with engine.begin() as connection:
                    await _upgrade(connection, schema, login)
                return
            except Exception as error:
                if loop.time() > give_up_at:
                    raise
                log.warning("database not ready for migrations: %s", describe(error))
                await asyncio.sleep(1.0)
    finally:
        await engine.dispose()


async def _upgrade(connection: AsyncConnection, schema: Schema, login: str | None) -> None:
    await connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
    await connection.run_sync(_stamp_if_made_by_create_all, schema)
    await connection.run_sync(lambda sync: command.upgrade(schema.config(sync), "head"))
    if schema.service is None or login is None:
        return
    role = tenancy.tenant_role(schema.service)
    await tenancy.install_row_security(connection, schema.metadata, role)
    await tenancy.install_service_login(connection, schema.metadata, login=login, tenant_role=role)
    # What the service reads at start to know its schema is current.
    await connection.execute(text(f"GRANT SELECT ON {VERSION_TABLE} TO {login}"))


def _stamp_if_made_by_create_all(connection: Connection, schema: Schema) -> None:
    """A database from before migrations holds the first revision's tables and no version."""
    existing = set(inspect(connection).get_table_names())
    if VERSION_TABLE in existing:
        return
    tables = {name for metadata in schema.metadata for name in metadata.tables}
    if existing & tables:
        first = schema.first_revision()
        log.info("tables made before migrations: stamped with revision %s", first)
        command.stamp(schema.config(connection), first)


def current_revisions(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def wait_until_current(engine: AsyncEngine, schema: Schema, deadline_s: float = 60.0) -> None:
    """Return once the database is at the head revision of `schema` or at one this code does
    not know (a newer release migrated it: its revisions keep older code working). Raise if
    it is still behind after `deadline_s`: its migrations have not been applied."""
    heads = schema.heads()
    known = {
        revision.revision
        for revision in ScriptDirectory.from_config(schema.config()).walk_revisions()
    }
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + deadline_s
    while True:
        problem = ""
        try:
            async with engine.connect() as connection:
                current = await connection.run_sync(current_revisions)
            if current == heads or (current and not current <= known):
                return
            problem = f"at revision {sorted(current) or 'none'}, not {sorted(heads)}"
        except Exception as error:
            problem = describe(error)
        if loop.time() > give_up_at:
            raise RuntimeError(
                f"database schema not current ({problem}): run "
                f"`python -m events.migrations upgrade {schema.location.replace(':', '.')}`"
            )
        log.warning("waiting for the database's migrations: %s", problem)
        await asyncio.sleep(1.0)


def load(module: str) -> Schema:
    """The `SCHEMA` a history's package declares (`request_api.migrations`)."""
    schema = import_module(module).SCHEMA
    if not isinstance(schema, Schema):
        raise TypeError(f"{module}.SCHEMA is not an events.migrations.Schema")
    return schema


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m events.migrations",
        description="A database's Alembic history: upgrade it, add a revision, check drift.",
    )
    parser.add_argument("action", choices=["upgrade", "revision", "check"])
    parser.add_argument("package", help="the history's package, e.g. request_api.migrations")
    parser.add_argument(
        "--url",
        default=os.environ.get("SCHEMA_DATABASE_URL"),
        help="the database, as its owner (default: $SCHEMA_DATABASE_URL)",
    )
    parser.add_argument("-m", "--message", help="revision: what the change does")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no database: give --url or set SCHEMA_DATABASE_URL")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    schema = load(args.package)
    if args.action == "upgrade":
        # Grants go to the service's own login, the user of its DATABASE_URL.
        service_url = os.environ.get("DATABASE_URL")
        login = make_url(service_url).username if service_url else None
        asyncio.run(upgrade(schema, args.url, login=login))
        print(f"{args.package}: at {', '.join(sorted(schema.heads()))}")
        return
    config = schema.config()
    config.set_main_option("sqlalchemy.url", args.url.replace("%", "%%"))
    if args.action == "check":
        command.check(config)
        return
    if not args.message:
        parser.error("revision needs -m MESSAGE")
    number = len(list(ScriptDirectory.from_config(config).walk_revisions())) + 1
    command.revision(config, message=args.message, autogenerate=True, rev_id=f"{number:04d}")


if __name__ == "__main__":
    # Run as the module proper, not as `__main__`: a history's SCHEMA is of that module's class.
    from events.migrations import main as run

    run()
