"""SCRAM-SHA-256 verifiers (RFC 5802 / 7677), as PostgreSQL stores them.

Roles are created with a verifier rather than the password, so the password never reaches
the target server: not its statement log, not an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def scram_sha256_verifier(
    password: str, *, iterations: int = 4096, salt: bytes | None = None
) -> str:
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
