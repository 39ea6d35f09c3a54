"""The local stand-in for the licence vendor, the MDM and an identity provider: a small HTTP
app that takes signed Standard Webhooks calls, keeps its state in JSON files, and lets tests
inject faults.

This module is the receiver as a part of the stack: it starts and stops the process (for
`make up` and tests) and, inside it, builds the app from the environment `start` gave it.
`app` assembles the stand-ins (`vendor`, `mdm`, `identity_provider`) and the test routes
(`faults`); `calls` answers a signed call, `signing` checks its signature, `state` keeps what
the systems hold.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

import httpx
from fastapi import FastAPI

from apikeys import bootstrap
from devstack.config import StackConfig
from devstack.proc import live_pid, start_process, stop_pid_files, wait_until_ready
from devstack.receiver.app import create_app
from devstack.receiver.signing import SYSTEMS

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# uvicorn's factory, and what marks a process (its command line) as the receiver.
FACTORY = "devstack.receiver:create_app_from_env"


def create_app_from_env() -> FastAPI:
    """For `uvicorn --factory`: RECEIVER_STATE_DIR, RECEIVER_SECRET_FILES as JSON
    {system: path} (paths, so the secrets stay out of the environment and the command line),
    and RECEIVER_JWKS_FILE if it plays the identity provider."""
    state_dir = Path(os.environ["RECEIVER_STATE_DIR"])
    files = json.loads(os.environ["RECEIVER_SECRET_FILES"])
    secrets = {system: Path(files[system]).read_text().strip() for system in SYSTEMS}
    jwks_file = os.environ.get("RECEIVER_JWKS_FILE")
    return create_app(state_dir, secrets, Path(jwks_file) if jwks_file else None)


def secret_file(config: StackConfig, system: str) -> Path:
    """The file holding `system`'s signing secret, created (once, mode 600) if missing."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown webhook system {system!r}")
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    path = config.secrets_dir / f"webhook-{system}.secret"
    if not path.exists():
        bootstrap.write_private(path, "whsec_" + base64.b64encode(os.urandom(32)).decode())
    return path


def url(config: StackConfig) -> str:
    return f"http://{endpoint(config)}"


def endpoint(config: StackConfig) -> str:
    return f"127.0.0.1:{config.receiver_port}"


def running_pid(config: StackConfig) -> int | None:
    return live_pid(config.pid_file("receiver"), FACTORY)


def start(config: StackConfig) -> str:
    """Start the receiver unless it runs, wait until it answers, and return its URL."""
    log = config.log_file("receiver")
    with httpx.Client(timeout=2.0) as client:

        def ready() -> bool:
            try:
                return client.get(f"{url(config)}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        pid = running_pid(config)
        if pid is None:
            files = {system: str(secret_file(config, system)) for system in SYSTEMS}
            env = {
                **os.environ,
                "RECEIVER_STATE_DIR": str(config.receiver_dir),
                "RECEIVER_SECRET_FILES": json.dumps(files),
                "RECEIVER_JWKS_FILE": str(config.idp_jwks_file),
                "PYTHONUNBUFFERED": "1",
            }
            start_process(
                "receiver",
                _command(config),
                log=log,
                pid_file=config.pid_file("receiver"),
                cwd=config.repo,
                env=env,
                ready=ready,
                timeout=READY_TIMEOUT,
            )
        else:
            wait_until_ready("receiver", pid, log=log, ready=ready, timeout=READY_TIMEOUT)
    return url(config)


def stop(config: StackConfig) -> None:
    stop_pid_files([(config.pid_file("receiver"), FACTORY)], timeout=STOP_TIMEOUT)


def _command(config: StackConfig) -> list[str]:
    beside_python = Path(sys.executable).parent / "uvicorn"
    uvicorn = beside_python if beside_python.exists() else config.repo / ".venv" / "bin" / "uvicorn"
    return [
        str(uvicorn),
        "--factory",
        FACTORY,
        "--host",
        "127.0.0.1",
        "--port",
        str(config.receiver_port),
        "--no-access-log",
        # A call held by a delay fault must not hold up a stop.
        "--timeout-graceful-shutdown",
        "1",
    ]
