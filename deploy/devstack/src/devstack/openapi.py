"""The services' OpenAPI documents, committed under docs/openapi/ so that clients can be
generated and reviewed without a running stack. Each is written from the code: the service's
app is built with the local stack's settings in a process of its own, nothing started, and
`/openapi.json` is what it would serve. A test fails when a committed document drifts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack import cloud, keys, ldap, services
from devstack.config import SERVICE_MODULES, SERVICES, StackConfig

_PRINT_DOCUMENT = (
    "import json, sys; from {module}.app import create_app; "
    "json.dump(create_app().openapi(), sys.stdout)"
)


def directory(repo: Path) -> Path:
    return repo / "docs" / "openapi"


def document(config: StackConfig, name: str) -> dict[str, object]:
    """What the service `name` serves at /openapi.json."""
    # The secrets an app reads as it is built (each made once, as `make up` would).
    keys.ensure_sealing_keys(config)
    keys.ensure_audit_signing_key(config)
    ldap.ensure_admin_password(config)
    cloud.credentials(config)
    built = subprocess.run(
        [sys.executable, "-c", _PRINT_DOCUMENT.format(module=SERVICE_MODULES[name])],
        env={**os.environ, **services.environment(config, name)},
        cwd=config.repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if built.returncode != 0:
        raise RuntimeError(f"{name}'s app could not be built:\n{built.stderr[-2000:]}")
    loaded: dict[str, object] = json.loads(built.stdout)
    return loaded


def rendered(doc: dict[str, object]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(config: StackConfig, repo: Path) -> list[Path]:
    target = directory(repo)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SERVICES:
        path = target / f"{name}.json"
        path.write_text(rendered(document(config, name)))
        written.append(path)
    return written


def drifted(config: StackConfig, repo: Path) -> list[str]:
    """The services whose committed document differs from what their code serves."""
    return [
        name
        for name in SERVICES
        if not (path := directory(repo) / f"{name}.json").exists()
        or path.read_text() != rendered(document(config, name))
    ]
