"""Local secrets: the keys that seal secrets at rest and the bootstrap admin API key."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from apikeys import bootstrap
from devstack import postgres
from devstack.config import StackConfig
from devstack.proc import StackError, run_async


def ensure_sealing_keys(config: StackConfig) -> None:
    """The deployer's key for generated credentials, the request-api's for webhook secrets."""
    for key_file in (config.credentials_key_file, config.webhook_key_file):
        ensure_sealing_key(config, key_file)


def ensure_sealing_key(config: StackConfig, key_file: Path) -> Path:
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    if not key_file.exists():
        # Standard base64 of 32 random bytes: an AES-256 key.
        bootstrap.write_private(key_file, base64.b64encode(os.urandom(32)).decode())
    elif not _is_valid_key(key_file.read_text()):
        # Never replaced silently: credentials stored under the old key would become unreadable.
        raise StackError(f"{key_file} is not base64 of 32 bytes; delete it to get a new one")
    return key_file


def _is_valid_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text.strip(), validate=True)) == 32
    except ValueError:
        return False


def ensure_admin_key(config: StackConfig) -> str:
    """The admin key in `<root>/admin-api-key`, created (and stored) unless it still verifies."""
    key_file = config.admin_key_file
    current = key_file.read_text().strip() if key_file.exists() else None
    identity_url = postgres.sqlalchemy_url(config, "identity")
    key = run_async(bootstrap.ensure_admin_key(identity_url, current))
    if key != current:
        bootstrap.write_private(key_file, key)
    return key


def ensure_people_keys(config: StackConfig) -> list[Path]:
    """An API key for every person of the seed organisation, in `<root>/keys/<name>.key`."""
    organisation = json.loads((config.repo / config.seed_file).read_text())
    folder = config.root / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    identity_url = postgres.sqlalchemy_url(config, "identity")
    written = []
    for person in organisation.get("people", []):
        key_file = folder / f"{person['name']}.key"
        current = key_file.read_text().strip() if key_file.exists() else None
        key = run_async(
            bootstrap.ensure_key(
                identity_url,
                current,
                name=person["name"],
                scopes=["requests"],
                tenant=person["tenant"],
                roles=list(person["roles"]),
            )
        )
        if key != current:
            bootstrap.write_private(key_file, key)
        written.append(key_file)
    return written
