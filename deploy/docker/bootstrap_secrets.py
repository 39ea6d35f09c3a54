"""The compose stack's secrets, each written to its volume unless already there.

The credentials key: base64 of 32 random bytes, the deployer's AES-GCM key for stored credentials.
The admin API key: the bootstrap key for /v1 calls; only its hash goes to the identity database.
A key file whose key no longer verifies (the database was wiped) gets a new key.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import apikeys

ADMIN_KEY_NAME = "bootstrap-admin"
ADMIN_SCOPES = ["admin"]


def ensure_credentials_key(path: Path) -> None:
    if not path.exists():
        write_private(path, base64.b64encode(os.urandom(32)).decode())


def ensure_admin_key(path: Path, identity_database_url: str) -> None:
    current = path.read_text().strip() if path.exists() else None
    key = asyncio.run(valid_admin_key(identity_database_url, current))
    if key != current:
        write_private(path, key)


async def valid_admin_key(identity_database_url: str, current: str | None) -> str:
    """`current` if it still verifies, else a new key stored in the identity database."""
    engine = create_async_engine(identity_database_url)
    try:
        await apikeys.ensure_schema(engine)
        # This script is the outermost caller, so it owns the transaction.
        async with AsyncSession(engine) as session, session.begin():
            if current and await apikeys.verify_key(session, current) is not None:
                return current
            return await apikeys.create_key(session, name=ADMIN_KEY_NAME, scopes=ADMIN_SCOPES)
    finally:
        await engine.dispose()


def write_private(path: Path, content: str) -> None:
    # Mode 600 from the first byte, then renamed into place: never readable by others.
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(content + "\n")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identity-database-url", required=True)
    parser.add_argument("--credentials-key-file", type=Path, required=True)
    parser.add_argument("--admin-key-file", type=Path, required=True)
    args = parser.parse_args()
    ensure_credentials_key(args.credentials_key_file)
    ensure_admin_key(args.admin_key_file, args.identity_database_url)
    print(f"credentials key in {args.credentials_key_file}, admin API key in {args.admin_key_file}")


if __name__ == "__main__":
    main()
