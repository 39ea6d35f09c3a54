"""Local secrets: the deployer's credentials key and the bootstrap admin API key."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import apikeys
from devstack import postgres
from devstack.config import StackConfig
from devstack.proc import StackError, run_async

ADMIN_KEY_NAME = "bootstrap-admin"
ADMIN_SCOPES = ["admin"]


def ensure_credentials_key(config: StackConfig) -> Path:
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    key_file = config.credentials_key_file
    if not key_file.exists():
        # Standard base64 of 32 random bytes: the deployer's AES-256 key.
        _write_private(key_file, base64.b64encode(os.urandom(32)).decode())
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
    key = run_async(_ensure_admin_key(postgres.sqlalchemy_url(config, "identity"), current))
    if key != current:
        _write_private(key_file, key)
    return key


async def _ensure_admin_key(identity_url: str, current: str | None) -> str:
    engine = create_async_engine(identity_url)
    try:
        await apikeys.ensure_schema(engine)
        # devstack owns this transaction: it is the outermost caller.
        async with AsyncSession(engine) as session, session.begin():
            if current and await apikeys.verify_key(session, current) is not None:
                return current
            return await apikeys.create_key(session, name=ADMIN_KEY_NAME, scopes=ADMIN_SCOPES)
    finally:
        await engine.dispose()


def _write_private(path: Path, content: str) -> None:
    # Created with mode 600 from the start, then renamed: the secret is never world-readable.
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content + "\n")
    tmp.replace(path)
