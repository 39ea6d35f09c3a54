"""The first admin key of a fresh installation, kept in a file only its owner can read."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from apikeys.store import create_key, verify_key

ADMIN_KEY_NAME = "bootstrap-admin"
# `platform`: the installation's operator, who may also issue the first key of a new tenant.
ADMIN_SCOPES = ["admin", "platform"]


async def ensure_admin_key(identity_database_url: str, current: str | None) -> str:
    """`current` if it still verifies, else a new admin key stored in the identity database."""
    return await ensure_key(
        identity_database_url,
        current,
        name=ADMIN_KEY_NAME,
        scopes=ADMIN_SCOPES,
        tenant="default",
        roles=["admin", "requester"],
    )


async def ensure_key(
    identity_database_url: str,
    current: str | None,
    *,
    name: str,
    scopes: list[str],
    tenant: str,
    roles: list[str],
) -> str:
    """`current` if it still verifies as this person's, else a new key for them. The keys'
    table must exist: the identity database's migrations come first."""
    engine = create_async_engine(identity_database_url)
    try:
        # The bootstrap is the outermost caller, so it owns the transaction.
        async with AsyncSession(engine) as session, session.begin():
            if current:
                key = await verify_key(session, current)
                if key is not None and (
                    key.name,
                    key.tenant,
                    sorted(key.roles),
                    sorted(key.scopes),
                ) == (name, tenant, sorted(roles), sorted(scopes)):
                    return current
            return await create_key(session, name=name, scopes=scopes, tenant=tenant, roles=roles)
    finally:
        await engine.dispose()


def write_private(path: Path, content: str) -> None:
    """Mode 600 from the first byte, then renamed into place: never readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content + "\n")
    tmp.replace(path)
