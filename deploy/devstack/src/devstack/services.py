"""The six services as uvicorn processes: their environment, start, readiness and stop."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack import postgres, targets
from devstack.config import SERVICE_MODULES, SERVICES, StackConfig
from devstack.proc import (
    StackError,
    failure,
    live_pid,
    log_size,
    once_more_if_transient,
    spawn,
    stop_pid_files,
    wait_until_ready,
)

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Replica N of a service listens on its base port + N * REPLICA_PORT_STEP.
REPLICA_PORT_STEP = 10
MAX_REPLICAS = 8
USES_IDENTITY = ("request-api", "allocator", "deployer", "auditor")
# Those that decide what a tenant may be given (catalog entitlements).
USES_ENTITLEMENTS = ("request-api", "validator")
SERVER_POOL = [
    {"id": "pg-local", "capacity": {"postgres_database": 200, "postgres_schema": 100000}}
]


def instance_name(name: str, replica: int = 0) -> str:
    return name if replica == 0 else f"{name}-{replica}"


def port(config: StackConfig, name: str, replica: int = 0) -> int:
    return config.service_ports[name] + replica * REPLICA_PORT_STEP


def url(config: StackConfig, name: str, replica: int = 0) -> str:
    return f"http://127.0.0.1:{port(config, name, replica)}"


# A request whose name contains the marker fails at that point (test stack only).
FAULT_POINTS = {
    "validator": {"request.submitted": "fault_at_validate"},
    "allocator": {"request.validated": "fault_at_allocate"},
    "configurator": {"resource.allocated": "fault_at_configure"},
    "deployer": {
        "resource.configured": "fault_at_deploy",
        "deployer.verify": "fault_at_verify",
        "provisioning.failed": "fault_at_undo",
    },
}
# Faults that fail a message's first try only, so that the retry succeeds: a request whose
# data holds the marker takes one retry at that step.
TRANSIENT_FAULT_POINTS = {
    "validator": {"request.submitted": "retry_at_validate"},
    "allocator": {"request.validated": "retry_at_allocate"},
    "configurator": {"resource.allocated": "retry_at_configure"},
    "deployer": {"resource.configured": "retry_at_deploy"},
}


def environment(config: StackConfig, name: str, replica: int = 0) -> dict[str, str]:
    """The variables the stack sets for one service (on top of the caller's environment)."""
    module = SERVICE_MODULES[name]
    env = {
        "SERVICE_NAME": name,
        "SERVICE_INSTANCE": instance_name(name, replica),
        "DATABASE_URL": postgres.sqlalchemy_url(config, module, user=postgres.LOGINS[module]),
        "KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "TRACES_DIR": str(config.traces_dir),
        "METRICS_REFRESH_S": str(config.metrics_refresh_s),
    }
    if name in USES_IDENTITY:
        env["IDENTITY_DATABASE_URL"] = postgres.sqlalchemy_url(
            config, "identity", user=postgres.LOGINS[module]
        )
        # Access tokens of the receiver playing an identity provider are accepted too.
        env["OAUTH_ISSUER"] = config.oauth_issuer
        env["OAUTH_AUDIENCE"] = config.oauth_audience
        env["OAUTH_JWKS_URL"] = config.oauth_jwks_url
    if name in USES_ENTITLEMENTS:
        env["ENTITLEMENTS_FILE"] = str(config.repo / config.entitlements_file)
    if name == "request-api":
        env["DEPLOYER_URL"] = url(config, "deployer")
        env["ALLOCATOR_URL"] = url(config, "allocator")
    if name == "allocator":
        env["SERVER_POOL"] = json.dumps(SERVER_POOL)
        env["SEED_FILE"] = str(config.repo / config.seed_file)
    if name == "request-api":
        env["LEASE_SWEEP_INTERVAL_S"] = str(config.lease_sweep_interval_s)
        env["APPROVAL_SWEEP_INTERVAL_S"] = str(config.approval_sweep_interval_s)
        env["WEBHOOK_KEY_FILE"] = str(config.webhook_key_file)
        env["WEBHOOK_DELIVERY_INTERVAL_S"] = str(config.webhook_delivery_interval_s)
        env["WEBHOOK_BACKOFF_BASE_S"] = str(config.webhook_backoff_base_s)
        env["WEBHOOK_BACKOFF_CAP_S"] = str(config.webhook_backoff_cap_s)
        env["WEBHOOK_MAX_ATTEMPTS"] = str(config.webhook_max_attempts)
        env["WEBHOOK_TIMEOUT_S"] = str(config.webhook_timeout_s)
        # The tests' webhook subscribers listen on loopback, each on a port of its own.
        env["OUTBOUND_ALLOW_LIST"] = "127.0.0.1/32"
        env["STUCK_AFTER_S"] = str(config.stuck_after_s)
        env["STUCK_CHECK_INTERVAL_S"] = str(config.stuck_check_interval_s)
        if config.approval_time_cap_s is not None:
            env["APPROVAL_TIME_CAP_S"] = str(config.approval_time_cap_s)
    if config.inject_faults and name in FAULT_POINTS:
        env["INJECT_FAULTS"] = json.dumps(FAULT_POINTS[name])
        env["TRANSIENT_FAULTS"] = json.dumps(TRANSIENT_FAULT_POINTS[name])
    if name == "auditor":
        env["CHAIN_KEY_FILE"] = str(config.audit_chain_key_file)
        env["SIGNING_KEY_FILE"] = str(config.audit_signing_key_file)
        env["CHECKPOINT_FILE"] = str(config.audit_checkpoint_file)
        env["CHECKPOINT_EVERY_RECORDS"] = str(config.audit_checkpoint_every_records)
        env["CHECKPOINT_EVERY_S"] = str(config.audit_checkpoint_every_s)
    if name == "deployer":
        # The target cluster's administrator, which creates roles and databases there: not
        # the deployer's own login (DATABASE_URL), though locally it is the same cluster.
        target = {
            "admin_dsn": postgres.dsn(config, "postgres"),
            "host": "127.0.0.1",
            "port": config.pg_port,
        }
        env["TARGET_SERVERS"] = json.dumps({"pg-local": target})
        env.update(targets.deployer_environment(config))
        env["CREDENTIALS_KEY_FILE"] = str(config.credentials_key_file)
        env["DRIFT_CHECK_INTERVAL_S"] = str(config.drift_check_interval_s)
        env["UPKEEP_INTERVAL_S"] = str(config.upkeep_interval_s)
        env["TARGET_TIMEOUT_S"] = str(config.target_timeout_s)
        env["HANDLER_RETRY_BACKOFF_S"] = str(config.target_retry_backoff_s)
        if config.retention_cap_s is not None:
            env["RETENTION_CAP_S"] = str(config.retention_cap_s)
    return env


def command(config: StackConfig, name: str, replica: int = 0) -> list[str]:
    return [
        str(_uvicorn(config)),
        "--factory",
        f"{SERVICE_MODULES[name]}.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port(config, name, replica)),
        "--no-access-log",
    ]


def running_pid(config: StackConfig, name: str, replica: int = 0) -> int | None:
    return live_pid(config.pid_file(instance_name(name, replica)), _marker(name))


def start(
    config: StackConfig, names: Iterable[str] = SERVICES, scale: Mapping[str, int] | None = None
) -> None:
    """Run `scale[name]` replicas (default 1) of every named service: start the missing ones,
    stop those beyond the count, then wait until all of them are ready."""
    replicas = {name: (scale or {}).get(name, 1) for name in names}
    surplus = [
        (config.pid_file(instance_name(name, replica)), _marker(name))
        for name, replica in running_instances(config)
        if name in replicas and replica >= replicas[name]
    ]
    stop_pid_files(surplus, timeout=STOP_TIMEOUT)
    instances = [(name, replica) for name, count in replicas.items() for replica in range(count)]
    # Spawned all at once, so that their start-ups overlap; then waited for one by one.
    wait_ready(
        config, {instance: _spawn_unless_running(config, *instance) for instance in instances}
    )


def parse_scale(text: str) -> dict[str, int]:
    """`allocator=3 deployer=2` (spaces or commas between) as replicas per service."""
    scale: dict[str, int] = {}
    for part in text.replace(",", " ").split():
        name, _, count = part.partition("=")
        if name not in SERVICE_MODULES:
            raise StackError(f"SCALE: no service named {name!r} (one of {', '.join(SERVICES)})")
        if not count.isdigit() or not 1 <= int(count) <= MAX_REPLICAS:
            raise StackError(f"SCALE: {part!r}: replicas must be 1 to {MAX_REPLICAS}")
        scale[name] = int(count)
    return scale


def start_service(config: StackConfig, name: str, replica: int = 0) -> str:
    """Start one instance (a restart after a kill, or an extra replica) and return its URL."""
    wait_ready(config, {(name, replica): _spawn_unless_running(config, name, replica)})
    return url(config, name, replica)


def kill_service(
    config: StackConfig, name: str, sig: signal.Signals = signal.SIGKILL, replica: int = 0
) -> int | None:
    """Send `sig` to a running instance (crash tests); returns its pid, None if not running."""
    pid = running_pid(config, name, replica)
    if pid is not None:
        os.kill(pid, sig)
    return pid


def stop(config: StackConfig) -> None:
    targets = [
        (config.pid_file(instance_name(name, replica)), _marker(name))
        for name, replica in running_instances(config)
    ]
    stop_pid_files(targets, timeout=STOP_TIMEOUT)


def running_instances(config: StackConfig) -> list[tuple[str, int]]:
    """Every (service, replica) that has a pid file, whether or not it is alive."""
    found = []
    for name in SERVICE_MODULES:
        if config.pid_file(name).exists():
            found.append((name, 0))
        for pid_file in config.run_dir.glob(f"{name}-*.pid"):
            suffix = pid_file.stem.removeprefix(f"{name}-")
            if suffix.isdigit():
                found.append((name, int(suffix)))
    return found


@dataclass(frozen=True)
class Spawned:
    pid: int
    since: int  # where this start's output begins in the instance's log


def wait_ready(
    config: StackConfig,
    instances: Mapping[tuple[str, int], Spawned | None],
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until each instance answers /readyz; those spawned just now (None: running
    already) are started once more if they end for a transient cause (proc.transient_cause)."""
    with httpx.Client(timeout=2.0) as client:
        for (name, replica), spawned in instances.items():
            _wait_instance(config, client, name, replica, spawned, timeout)


def _wait_instance(
    config: StackConfig,
    client: httpx.Client,
    name: str,
    replica: int,
    spawned: Spawned | None,
    timeout: float,
) -> None:
    instance = instance_name(name, replica)
    log = config.log_file(instance)

    def ready() -> bool:
        return _is_ready(client, url(config, name, replica))

    if spawned is None:
        pid = running_pid(config, name, replica)
        if pid is None:
            raise StackError(failure(instance, "exited during start-up", log))
        wait_until_ready(instance, pid, log=log, ready=ready, timeout=timeout, interval=0.2)
        return
    # The first attempt waits for the instance spawned already, a second one spawns anew.
    first = [spawned]

    def start() -> None:
        attempt = first.pop() if first else _spawn(config, name, replica)
        wait_until_ready(
            instance,
            attempt.pid,
            log=log,
            since=attempt.since,
            ready=ready,
            timeout=timeout,
            interval=0.2,
        )

    once_more_if_transient(start, log=log)


def _spawn_unless_running(config: StackConfig, name: str, replica: int) -> Spawned | None:
    if running_pid(config, name, replica) is not None:
        return None
    return _spawn(config, name, replica)


def _spawn(config: StackConfig, name: str, replica: int) -> Spawned:
    instance = instance_name(name, replica)
    log = config.log_file(instance)
    config.traces_dir.mkdir(parents=True, exist_ok=True)
    since = log_size(log)
    pid = spawn(
        command(config, name, replica),
        log=log,
        pid_file=config.pid_file(instance),
        cwd=config.repo,
        # Unbuffered so a crash's last words reach the log file.
        env={**os.environ, **environment(config, name, replica), "PYTHONUNBUFFERED": "1"},
    )
    return Spawned(pid, since)


def _is_ready(client: httpx.Client, base_url: str) -> bool:
    try:
        return client.get(f"{base_url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _uvicorn(config: StackConfig) -> Path:
    beside_python = Path(sys.executable).parent / "uvicorn"
    return beside_python if beside_python.exists() else config.repo / ".venv" / "bin" / "uvicorn"


def _marker(name: str) -> str:
    return f"{SERVICE_MODULES[name]}.app:create_app"
