"""The schema step of `make up`: every database's migrations, applied as its owner before any
service starts, by the command the compose jobs and the Kubernetes init containers run
(`python -m events.migrations upgrade <history>`). The services themselves only wait for
their schema to be current; none of them holds the owner's login."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg

from devstack import postgres
from devstack.config import SERVICE_MODULES, StackConfig
from devstack.proc import StackError, failure, log_size, run_async

# Each database's history; the request-api owns the API keys' `identity` (it writes them).
HISTORIES = {
    **{module: f"{module}.migrations" for module in SERVICE_MODULES.values()},
    "identity": "request_api.identity_migrations",
}
TIMEOUT_S = 120.0


def environment(config: StackConfig, database: str) -> dict[str, str]:
    """The owner's URL, and the login that gets the grants (none for `identity`, whose grants
    are the cluster's: postgres.identity_statements)."""
    env = {"SCHEMA_DATABASE_URL": postgres.sqlalchemy_url(config, database)}
    if database in postgres.LOGINS:
        login = postgres.LOGINS[database]
        env["DATABASE_URL"] = postgres.sqlalchemy_url(config, database, user=login)
    return env


def head_of(history: str) -> set[str]:
    """The head revision(s) of a history, read from its files (importing Alembic and a
    service costs each process seconds; most `make up`s have nothing to apply)."""
    spec = importlib.util.find_spec(history)
    if spec is None or spec.origin is None:
        raise StackError(f"no migrations package {history}")
    revisions, parents = set(), set()
    for script in (Path(spec.origin).parent / "versions").glob("*.py"):
        text = script.read_text()
        revision = re.search(r"^revision\b[^=]*=\s*[\"']([^\"']+)", text, re.MULTILINE)
        if revision:
            revisions.add(revision.group(1))
        down = re.search(r"^down_revision\b[^=]*=\s*(.+)$", text, re.MULTILINE)
        if down:
            parents.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    return revisions - parents


async def _current(config: StackConfig, database: str) -> set[str]:
    connection = await asyncpg.connect(postgres.dsn(config, database))
    try:
        if await connection.fetchval("SELECT to_regclass('alembic_version')") is None:
            return set()
        return {row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")}
    finally:
        await connection.close()


def behind(config: StackConfig) -> list[str]:
    """The databases not at their history's head."""
    return [
        database
        for database, history in HISTORIES.items()
        if run_async(_current(config, database)) != head_of(history)
    ]


def apply(config: StackConfig) -> None:
    """Upgrade every database not at its head revision, all at once (each its own process and
    log), and fail naming the first database whose migrations failed. A database already at
    head is left alone: its grants were given when it got there."""
    running = []
    due = behind(config)
    for database, history in HISTORIES.items():
        if database not in due:
            continue
        log = config.log_file(f"migrations-{database}")
        since = log_size(log)
        with log.open("a") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "events.migrations", "upgrade", history],
                env={**os.environ, **environment(config, database)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running.append((database, process, log, since))
    problems = []
    for database, process, log, since in running:
        try:
            code = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            problems.append(
                failure(f"migrations of {database}", f"not done in {TIMEOUT_S:.0f} s", log, since)
            )
            continue
        if code != 0:
            problems.append(failure(f"migrations of {database}", f"exited {code}", log, since))
    if problems:
        raise StackError("\n".join(problems))
