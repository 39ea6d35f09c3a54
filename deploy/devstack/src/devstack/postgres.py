"""A project-local PostgreSQL cluster run as the `postgres` user: init, start, stop, URLs."""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import asyncpg

from devstack.config import SERVICE_MODULES, StackConfig
from devstack.proc import (
    ExitedEarly,
    StackError,
    failure,
    is_alive,
    log_since,
    log_size,
    once_more_if_transient,
    run_async,
)

DATABASES = (
    "request_api",
    "validator",
    "allocator",
    "configurator",
    "deployer",
    "auditor",
    "identity",
)
PG_USER = "postgres"
# Seconds pg_ctl waits for the server to accept connections, or to be gone.
READY_TIMEOUT = 60
STOP_TIMEOUT = 60
# Every service runs as a login of its own that owns nothing: the owner (PG_USER) applies the
# migrations before the services start (devstack.migrations) and the login gets what each
# table allows.
LOGINS = {module: module for module in SERVICE_MODULES.values()}
# What each login may do with the API keys: the request-api issues, rotates and revokes them;
# the others only check them.
IDENTITY_PRIVILEGES = {
    "request_api": "SELECT, INSERT, UPDATE",
    "allocator": "SELECT",
    "deployer": "SELECT",
    "auditor": "SELECT",
}


def sqlalchemy_url(config: StackConfig, database: str, *, user: str = PG_USER) -> str:
    # Over the unix socket the port still matters: it names the socket file `.s.PGSQL.<port>`.
    return (
        f"postgresql+asyncpg://{user}@/{database}?host={config.pg_socket_dir}&port={config.pg_port}"
    )


def dsn(config: StackConfig, database: str) -> str:
    """A libpq-style DSN, as asyncpg.connect() takes it."""
    return f"postgresql://{PG_USER}@/{database}?host={config.pg_socket_dir}&port={config.pg_port}"


def bin_dir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(found.stdout.strip())
        if (candidate / "pg_ctl").exists():
            return candidate
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not versions:
        raise StackError("PostgreSQL server binaries not found (apt-get install postgresql-15)")
    return Path(versions[-1]).parent


def pg_server_pid(config: StackConfig) -> int | None:
    """The postmaster's pid from `postmaster.pid`, whether or not it is still alive."""
    try:
        return int((config.pg_data / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def running_pid(config: StackConfig) -> int | None:
    pid = pg_server_pid(config)
    return pid if pid is not None and is_alive(pid) else None


def start(config: StackConfig) -> None:
    """Initialise the cluster if needed, start it unless running, create missing databases."""
    _prepare_dirs(config)
    if not (config.pg_data / "PG_VERSION").exists():
        _initdb(config)
    if running_pid(config) is None:
        once_more_if_transient(lambda: _start_server(config), log=config.log_file("postgres"))
    run_async(_create_databases(config))


def stop(config: StackConfig) -> None:
    if running_pid(config) is not None:
        _pg_ctl(config, "stop", "-w", "-t", str(STOP_TIMEOUT), "-m", "fast")


def _start_server(config: StackConfig) -> None:
    """pg_ctl start, which waits (-w) until the server accepts connections."""
    log = config.log_file("postgres")
    since = log_size(log)
    argv = ["start", "-w", "-t", str(READY_TIMEOUT), "-o", _server_options(config), "-l", str(log)]
    done = _run_as_postgres(config, [str(bin_dir() / "pg_ctl"), "-D", str(config.pg_data), *argv])
    if done.returncode == 0:
        return
    said = (done.stdout + done.stderr).strip()
    if running_pid(config) is None:
        problem = f"exited during start-up (pg_ctl: {said})"
        raise ExitedEarly(failure("postgres", problem, log, since), log_since(log, since))
    # pg_ctl gave up waiting; the server runs on, and a `make up` again will wait for it anew.
    problem = f"not ready after {READY_TIMEOUT} s (pg_ctl: {said})"
    raise StackError(failure("postgres", problem, log, since))


def _server_options(config: StackConfig) -> str:
    options = [
        f"-p {config.pg_port}",
        f"-k {shlex.quote(str(config.pg_socket_dir))}",
        "-c listen_addresses=127.0.0.1",
        "-c max_connections=300",
    ]
    if not config.pg_fsync:
        options.append("-c fsync=off")
    return " ".join(options)


def _prepare_dirs(config: StackConfig) -> None:
    for directory in (config.pg_data, config.pg_socket_dir, config.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for directory in (config.root, config.pg_socket_dir.parent, config.logs_dir):
        _make_traversable(directory)
    # initdb requires the data directory to be private to the server's user.
    config.pg_data.chmod(0o700)
    log = config.log_file("postgres")
    log.touch()
    for path in (config.pg_data, config.pg_socket_dir, log):
        shutil.chown(path, PG_USER, PG_USER)


def _make_traversable(directory: Path) -> None:
    """The `postgres` user must reach its data and socket dirs through our root-owned parents."""
    for path in (directory, *directory.parents):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)


def _initdb(config: StackConfig) -> None:
    _checked(
        config,
        [
            str(bin_dir() / "initdb"),
            "-D",
            str(config.pg_data),
            "-U",
            PG_USER,
            "--no-sync",
            "--no-instructions",
            "--encoding=UTF8",
            "--no-locale",
            "--auth-local=trust",
            # Password logins over TCP are real checks: the deployer verifies roles this way.
            "--auth-host=scram-sha-256",
        ],
        what="initdb",
    )


def _pg_ctl(config: StackConfig, *args: str) -> None:
    _checked(config, [str(bin_dir() / "pg_ctl"), "-D", str(config.pg_data), *args], what="pg_ctl")


def _checked(config: StackConfig, argv: list[str], *, what: str) -> None:
    done = _run_as_postgres(config, argv)
    if done.returncode != 0:
        problem = f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}"
        raise StackError(failure("postgres", problem, config.log_file("postgres")))


def _run_as_postgres(config: StackConfig, argv: list[str]) -> subprocess.CompletedProcess[str]:
    # The server refuses to run as root; cwd must be a directory `postgres` can enter.
    command = ["runuser", "-u", PG_USER, "--", *argv] if os.geteuid() == 0 else argv
    return subprocess.run(command, cwd=config.pg_data, capture_output=True, text=True, check=False)


def connect_grants() -> dict[str, list[str]]:
    """Who may connect to each platform database: the logins that use it, nobody else (a
    tenant's login on this cluster among them; the owner, a superuser, needs no grant)."""
    grants: dict[str, list[str]] = {database: [] for database in DATABASES}
    for module, login in LOGINS.items():
        grants[module].append(login)
    grants["identity"].extend(IDENTITY_PRIVILEGES)
    return grants


def cluster_statements() -> list[str]:
    """Run in any database: who may connect where. Idempotent, run at every start."""
    statements = []
    for database, logins in connect_grants().items():
        statements.append(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        statements += [f'GRANT CONNECT ON DATABASE "{database}" TO {login}' for login in logins]
    return statements


def identity_statements() -> list[str]:
    """Run in `identity`: the logins' privileges on the keys' tables, on those there already
    and on those the owner creates later (the request-api's identity migrations)."""
    statements = []
    for login, privileges in IDENTITY_PRIVILEGES.items():
        statements.append(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {PG_USER} IN SCHEMA public"
            f" GRANT {privileges} ON TABLES TO {login}"
        )
        statements.append(f"GRANT {privileges} ON ALL TABLES IN SCHEMA public TO {login}")
    return statements


async def _create_databases(config: StackConfig) -> None:
    connection = await asyncpg.connect(dsn(config, "postgres"))
    try:
        existing = {
            row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")
        }
        for database in DATABASES:
            if database not in existing:
                await connection.execute(f'CREATE DATABASE "{database}"')
        logins = {row["rolname"] for row in await connection.fetch("SELECT rolname FROM pg_roles")}
        for login in LOGINS.values():
            if login not in logins:
                # Local connections are trusted here (initdb --auth-local=trust).
                await connection.execute(f"CREATE ROLE {login} LOGIN")
        for statement in cluster_statements():
            await connection.execute(statement)
    finally:
        await connection.close()
    identity = await asyncpg.connect(dsn(config, "identity"))
    try:
        for statement in identity_statements():
            await identity.execute(statement)
    finally:
        await identity.close()
