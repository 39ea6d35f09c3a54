"""The compose stack's secrets, each written to its volume unless already there.

The credentials key: base64 of 32 random bytes, the deployer's AES-GCM key for stored credentials.
The webhook key: the same kind of key, the request-api's for webhook signing secrets.
The audit chain key (the same kind) and the auditor's Ed25519 checkpoint signing key (PEM).
The admin API key: the bootstrap key for /v1 calls; only its hash goes to the identity database.
A key file whose key no longer verifies (the database was wiped) gets a new key.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from apikeys import bootstrap
from apikeys.bootstrap import write_private


def ensure_sealing_key(path: Path) -> None:
    if not path.exists():
        write_private(path, base64.b64encode(os.urandom(32)).decode())


def ensure_signing_key(path: Path) -> None:
    if not path.exists():
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem.decode())


def ensure_admin_key(path: Path, identity_database_url: str) -> None:
    current = path.read_text().strip() if path.exists() else None
    key = asyncio.run(bootstrap.ensure_admin_key(identity_database_url, current))
    if key != current:
        write_private(path, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identity-database-url", required=True)
    parser.add_argument("--credentials-key-file", type=Path, required=True)
    parser.add_argument("--webhook-key-file", type=Path, required=True)
    parser.add_argument("--audit-chain-key-file", type=Path, required=True)
    parser.add_argument("--audit-signing-key-file", type=Path, required=True)
    parser.add_argument("--admin-key-file", type=Path, required=True)
    args = parser.parse_args()
    ensure_sealing_key(args.credentials_key_file)
    ensure_sealing_key(args.webhook_key_file)
    ensure_sealing_key(args.audit_chain_key_file)
    ensure_signing_key(args.audit_signing_key_file)
    ensure_admin_key(args.admin_key_file, args.identity_database_url)
    print(
        f"credentials key in {args.credentials_key_file}, webhook key in "
        f"{args.webhook_key_file}, admin API key in {args.admin_key_file}"
    )


if __name__ == "__main__":
    main()
