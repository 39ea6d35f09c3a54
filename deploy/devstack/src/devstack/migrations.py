"""The schema step of `make up`: every database's migrations, applied as its owner before any
service starts, by the command the compose jobs and the Kubernetes init containers run
(`python -m events.migrations upgrade <history>`). The services themselves only wait for
their schema to be current; none of them holds the owner's login."""

from __future__ import annotations

import os
import subprocess
import sys

from devstack import postgres
from devstack.config import SERVICE_MODULES, StackConfig
from devstack.proc import StackError, failure, log_size

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


def apply(config: StackConfig) -> None:
    """Upgrade every database to its head revision, all at once (each its own process and log),
    and fail naming the first database whose migrations failed."""
    running = []
    for database, history in HISTORIES.items():
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
