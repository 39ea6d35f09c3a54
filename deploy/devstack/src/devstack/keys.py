"""Local secrets: the keys that seal secrets at rest, the bootstrap admin API key, and the
signing key of the receiver playing an OAuth2 identity provider."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import RSAAlgorithm

from apikeys import bootstrap
from devstack import postgres
from devstack.config import StackConfig
from devstack.proc import StackError, run_async


def ensure_sealing_keys(config: StackConfig) -> None:
    """The deployer's key for generated credentials, the request-api's for webhook secrets."""
    for key_file in (
        config.credentials_key_file,
        config.webhook_key_file,
        config.audit_chain_key_file,
    ):
        ensure_sealing_key(config, key_file)


def ensure_audit_signing_key(config: StackConfig) -> Path:
    """The auditor's Ed25519 key for checkpoints (mode 600), created once."""
    key_file = config.audit_signing_key_file
    if not key_file.exists():
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        bootstrap.write_private(key_file, pem.decode())
    return key_file


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


def ensure_idp_key(config: StackConfig) -> Path:
    """The identity provider's RSA signing key (mode 600), created once, and its public half
    as the JWKS the receiver serves (rewritten from the private key every time)."""
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    key_file = config.idp_private_key_file
    if not key_file.exists():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        bootstrap.write_private(key_file, pem.decode())
    jwk = RSAAlgorithm.to_jwk(_idp_private_key(config).public_key(), as_dict=True)
    jwk |= {"kid": idp_key_id(config), "use": "sig", "alg": "RS256"}
    config.idp_jwks_file.write_text(json.dumps({"keys": [jwk]}))
    return key_file


def idp_key_id(config: StackConfig) -> str:
    """A kid that changes with the key: a digest of its public half."""
    public = _idp_private_key(config).public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()[:16]


def idp_token(
    config: StackConfig,
    *,
    client_id: str,
    tenant: str,
    roles: list[str],
    ttl_s: float = 300.0,
    **claims: Any,
) -> str:
    """An access token as the test identity provider would issue for the client-credentials
    grant: for tests, and for trying the API with a token by hand."""
    now = int(time.time())
    payload = {
        "iss": config.oauth_issuer,
        "aud": config.oauth_audience,
        "sub": client_id,
        "client_id": client_id,
        "tenant": tenant,
        "roles": roles,
        "scope": "requests",
        "iat": now,
        "exp": now + int(ttl_s),
    } | claims
    key = _idp_private_key(config)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": idp_key_id(config)})


def _idp_private_key(config: StackConfig) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(config.idp_private_key_file.read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise StackError(f"{config.idp_private_key_file} is not an RSA private key")
    return key


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
